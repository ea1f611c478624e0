//! What stops a run from outside: Ctrl-C (SIGINT), SIGTERM — what service managers and
//! deploys send — and SIGHUP (the terminal went away). All three mean the same: stop at the
//! next step and let `finally` clean up (a pending PSR must not be left behind by a deploy).

/// Resolves when the first stop signal arrives, with words for it (`interrupted (Ctrl-C)`).
pub async fn stop_requested() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut hup = signal(SignalKind::hangup()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupted (Ctrl-C)",
            _ = next(term.as_mut()) => "terminated (SIGTERM)",
            _ = next(hup.as_mut()) => "hung up (SIGHUP)",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "interrupted (Ctrl-C)"
    }
}

/// The next delivery of a signal that could be listened to; never, for one that could not.
#[cfg(unix)]
async fn next(signal: Option<&mut tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}
