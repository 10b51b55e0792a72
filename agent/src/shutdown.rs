//! Signals. The first SIGINT or SIGTERM asks the agent to drain and leave (see
//! [`crate::drain`]); a second one exits at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Exit code after a second signal, as shells report an interrupted program.
const EXIT_INTERRUPTED: i32 = 130;

/// Installs the handlers and returns a receiver that flips on the first signal.
pub fn install() -> anyhow::Result<watch::Receiver<bool>> {
    let (tx, rx) = watch::channel(false);
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("signal received: draining, then exiting; a second signal exits at once");
        let _ = tx.send(true);
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(EXIT_INTERRUPTED);
    });
    Ok(rx)
}
