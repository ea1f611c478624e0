//! `--journal` URLs: which store a journal lives in.

use super::{JournalError, PostgresStore, SqliteStore, Store};

/// Opens the store `url` names. `sqlite:PATH` is the embedded store (created when missing);
/// `sqlite::memory:` keeps it in memory (for tests); `postgres://...` is a shared PostgreSQL
/// database (its schema created or brought up to date).
pub fn open(url: &str, create: bool) -> Result<Box<dyn Store>, JournalError> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(JournalError::Url(format!(
                "`--journal {url}` names no file; write `sqlite:PATH`, e.g. `sqlite:flowrun.db`"
            )));
        }
        if !create && path != ":memory:" && !std::path::Path::new(path).exists() {
            return Err(JournalError::Url(format!(
                "there is no journal at `{path}` (check --journal or FLOWRUN_JOURNAL)"
            )));
        }
        return Ok(Box::new(SqliteStore::open(path)?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Box::new(PostgresStore::open(url)?));
    }
    Err(JournalError::Url(format!(
        "`--journal {}` is not a journal URL flowrun knows: write `sqlite:PATH` (e.g. `sqlite:flowrun.db`) or `postgres://USER@HOST:PORT/DATABASE`",
        clip_password(url)
    )))
}

/// `url` with the password of `scheme://user:password@host` masked, for messages.
pub fn clip_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{name}:***@{host}")
        }
        _ => url.to_string(),
    }
}
