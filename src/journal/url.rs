//! `--journal` URLs: which store a journal lives in.

use super::{JournalError, SqliteStore, Store};

/// Opens the store `url` names. `sqlite:PATH` is the embedded store (created when missing);
/// `sqlite::memory:` keeps it in memory (for tests).
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
    let scheme = url.split(':').next().unwrap_or_default();
    let hint = match scheme {
        "postgres" | "postgresql" => "PostgreSQL is not supported yet; use `sqlite:PATH`",
        _ => "the journal URL starts with `sqlite:` followed by a file path, e.g. `sqlite:flowrun.db`",
    };
    Err(JournalError::Url(format!(
        "`--journal {url}` is not a journal URL flowrun knows: {hint}"
    )))
}
