//! What expressions read from the outside world — the clock, fresh ids, the environment —
//! behind small traits, so `flowrun test` can make a run deterministic.

use crate::base::secrets::Secrets;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The time source behind `now()` and `now_ms()`; a test run fixes it.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The source of the UUIDs `uuid()` returns; a test run makes them sequential.
pub trait Ids: Send + Sync {
    /// A new UUID in its hyphenated text form.
    fn uuid(&self) -> String;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// Random (v4) UUIDs, from a per-thread generator seeded once: request ids must be unique,
/// not unguessable, and a `getrandom` system call per id was a measurable share of a batch.
pub struct RandomIds;

impl Ids for RandomIds {
    fn uuid(&self) -> String {
        let bytes = fastrand::u128(..).to_le_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
    }
}

/// A clock that always answers the same time.
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

/// UUIDs from a counter: `00000000-0000-4000-8000-000000000001`, `...0002`, ...
#[derive(Default)]
pub struct SequentialIds(AtomicU64);

impl Ids for SequentialIds {
    fn uuid(&self) -> String {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        format!("00000000-0000-4000-8000-{n:012x}")
    }
}

/// Reads an environment variable.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Everything a run takes from outside the flow file.
#[derive(Clone)]
pub struct World {
    /// The clock `now()` and `now_ms()` read.
    pub clock: Arc<dyn Clock>,
    /// Where `uuid()` gets its ids.
    pub ids: Arc<dyn Ids>,
    /// How `env('NAME')` and `secret('NAME')` look variables up.
    pub env: EnvLookup,
    /// The registry each value `secret()` reads is added to, so output masks it.
    pub secrets: Secrets,
}

impl World {
    /// The real clock, random ids and the process environment.
    pub fn system() -> Self {
        World {
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
            env: Arc::new(|name| std::env::var(name).ok()),
            secrets: Secrets::default(),
        }
    }

    /// Frozen clock, sequential ids and the given variables only.
    pub fn deterministic(now_ms: i64, vars: Vec<(String, String)>) -> Self {
        World {
            clock: Arc::new(FixedClock(now_ms)),
            ids: Arc::new(SequentialIds::default()),
            env: Arc::new(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())),
            secrets: Secrets::default(),
        }
    }

    /// The current time as RFC 3339 with milliseconds, in UTC.
    pub fn now_rfc3339(&self) -> String {
        let ms = self.clock.now_ms().max(0) as u64;
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        humantime::format_rfc3339_millis(t).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| RandomIds.uuid()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 4, "{id}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
    }
}
