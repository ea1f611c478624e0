//! When a failed attempt is tried again, and how long to wait first.

use crate::flow::model::{Backoff, Retry};
use backon::BackoffBuilder;
use std::time::Duration;

/// Error codes the Interaction Service documents as temporary (read-only mode, timeouts).
pub const RETRYABLE_CODES: &[i64] = &[10019, 10055, 10056, 10094];

/// How a step's failed attempts are tried again, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 3).
    pub attempts: u32,
    /// How the wait grows between attempts (default exponential).
    pub backoff: Backoff,
    /// The first wait (default 200 ms); the constant one with a constant backoff.
    pub initial: Duration,
    /// The longest wait (default 5 s).
    pub max: Duration,
    /// API error codes worth another attempt (default [`RETRYABLE_CODES`]).
    pub on_codes: Vec<i64>,
}

impl RetryPolicy {
    /// The connection's settings with the step's over them, then the defaults.
    pub fn from_settings(connection: Option<&Retry>, step: Option<&Retry>) -> Self {
        let pick = |f: &dyn Fn(&Retry) -> bool| step.filter(|s| f(s)).or(connection.filter(|c| f(c)));
        RetryPolicy {
            attempts: pick(&|r| r.attempts.is_some())
                .and_then(|r| r.attempts)
                .unwrap_or(3),
            backoff: pick(&|r| r.backoff.is_some())
                .and_then(|r| r.backoff)
                .unwrap_or(Backoff::Exponential),
            initial: pick(&|r| r.initial.is_some())
                .and_then(|r| r.initial)
                .unwrap_or(Duration::from_millis(200)),
            max: pick(&|r| r.max.is_some())
                .and_then(|r| r.max)
                .unwrap_or(Duration::from_secs(5)),
            on_codes: pick(&|r| r.on_codes.is_some())
                .and_then(|r| r.on_codes.clone())
                .unwrap_or_else(|| RETRYABLE_CODES.to_vec()),
        }
    }

    /// The waits before attempts 2, 3, ...: exponential or constant, with jitter, never over
    /// `max` (backon's jitter adds up to a whole delay on top of it, so the cap comes last).
    pub fn delays(&self) -> Box<dyn Iterator<Item = Duration> + Send> {
        let retries = self.attempts.saturating_sub(1) as usize;
        let max = self.max;
        let delays: Box<dyn Iterator<Item = Duration> + Send> = match self.backoff {
            Backoff::Exponential => Box::new(
                backon::ExponentialBuilder::default()
                    .with_min_delay(self.initial)
                    .with_max_delay(self.max)
                    .with_max_times(retries)
                    .with_jitter()
                    .build(),
            ),
            Backoff::Constant => Box::new(
                backon::ConstantBuilder::default()
                    .with_delay(self.initial.min(self.max))
                    .with_max_times(retries)
                    .with_jitter()
                    .build(),
            ),
        };
        Box::new(delays.map(move |d| d.min(max)))
    }

    /// Whether a response is worth another attempt: 429, 5xx, or a retryable API error code.
    pub fn is_retryable(&self, status: u16, body: &serde_json::Value) -> bool {
        status == 429
            || (500..600).contains(&status)
            || api_code(body).is_some_and(|c| self.on_codes.contains(&c))
    }
}

/// The API error code of a response body: `{code}`, `{errorDetail: {code}}`, or the first
/// of a list of errors; codes may be numbers or numeric strings.
pub fn api_code(body: &serde_json::Value) -> Option<i64> {
    let code = body
        .get("code")
        .or_else(|| body.pointer("/errorDetail/code"))
        .or_else(|| body.pointer("/0/code"))
        .or_else(|| body.pointer("/errors/0/code"))?;
    code.as_i64().or_else(|| code.as_str()?.parse().ok())
}

/// A `Retry-After` header: seconds, or an HTTP date.
pub fn retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value.trim()).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn step_settings_override_the_connection_and_defaults_fill_the_rest() {
        let conn = Retry {
            attempts: Some(5),
            initial: Some(Duration::from_millis(50)),
            ..Default::default()
        };
        let step = Retry {
            attempts: Some(1),
            ..Default::default()
        };
        let p = RetryPolicy::from_settings(Some(&conn), Some(&step));
        assert_eq!(p.attempts, 1);
        assert_eq!(p.initial, Duration::from_millis(50));
        assert_eq!(p.max, Duration::from_secs(5));
        assert_eq!(p.delays().count(), 0);
        let p = RetryPolicy::from_settings(Some(&conn), None);
        let delays: Vec<_> = p.delays().collect();
        assert_eq!(delays.len(), 4);
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(5)));
    }

    #[test]
    fn jitter_never_takes_a_wait_past_max() {
        for backoff in [Backoff::Exponential, Backoff::Constant] {
            let p = RetryPolicy {
                attempts: 200,
                backoff,
                initial: Duration::from_millis(800),
                max: Duration::from_secs(1),
                on_codes: Vec::new(),
            };
            let delays: Vec<_> = p.delays().collect();
            assert_eq!(delays.len(), 199);
            assert!(delays.iter().all(|d| *d <= p.max), "{delays:?}");
            if backoff == Backoff::Constant {
                // The jitter still spreads them: 800 ms plus up to 800 ms is under the cap a
                // quarter of the time.
                assert!(delays.iter().any(|d| *d < p.max), "{delays:?}");
            }
        }
    }

    #[test]
    fn retryable_answers() {
        let p = RetryPolicy::from_settings(None, None);
        assert!(p.is_retryable(503, &json!(null)));
        assert!(p.is_retryable(429, &json!(null)));
        assert!(p.is_retryable(400, &json!({"code": 10019})));
        assert!(p.is_retryable(400, &json!({"success": false, "errorDetail": {"code": "10094"}})));
        assert!(!p.is_retryable(400, &json!({"code": 15103})));
        assert!(!p.is_retryable(404, &json!(null)));
        assert_eq!(retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(retry_after("soon"), None);
    }
}
