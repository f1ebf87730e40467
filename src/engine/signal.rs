//! Stopping a worker cleanly when its process is asked to stop: `SIGINT`
//! (Ctrl-C) or `SIGTERM` (what ECS, Kubernetes, systemd and Lambda's
//! extensions send first) cancels the token the engine runs with, so the
//! engine finishes or releases what is in flight instead of being killed
//! mid-command.

use tokio_util::sync::CancellationToken;

/// A token cancelled when the process receives `SIGINT` or, on Unix,
/// `SIGTERM`. Pass it to [`Engine::run`](super::Engine::run); the engine
/// stops receiving, lets running plans end (or releases their deliveries)
/// and returns its summary.
///
/// Must be called inside a Tokio runtime (it spawns the listener). If a
/// signal handler cannot be installed, that is logged and the token is
/// cancelled only by its other clones.
pub fn shutdown_on_signal() -> CancellationToken {
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        tracing::warn!(
            signal,
            "stopping: finishing or releasing in-flight deliveries"
        );
        on_signal.cancel();
    });
    cancel
}

/// The name of the first stop signal received.
#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => Some(term),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the worker");
            None
        }
    };
    let term = async {
        match term.as_mut() {
            Some(term) => term.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => "SIGINT",
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGINT");
                std::future::pending().await
            }
        },
        _ = term => "SIGTERM",
    }
}

/// The name of the first stop signal received.
#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    match tokio::signal::ctrl_c().await {
        Ok(()) => "ctrl-c",
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for ctrl-c");
            std::future::pending().await
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sigterm_cancels_the_token() {
        let token = shutdown_on_signal();
        // Let the listener install its handlers before the signal is sent.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!token.is_cancelled());
        rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::TERM)
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), token.cancelled())
            .await
            .expect("SIGTERM cancels the token");
    }
}
