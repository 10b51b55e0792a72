//! One shutdown signal for the whole agent: SIGINT or SIGTERM flips a `watch` channel that
//! every task selects on. A second signal exits at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Installs the handlers and returns the receiver tasks select on.
pub fn install() -> anyhow::Result<watch::Receiver<bool>> {
    let (tx, rx) = watch::channel(false);
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down; a second signal exits at once");
        let _ = tx.send(true);
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    Ok(rx)
}
