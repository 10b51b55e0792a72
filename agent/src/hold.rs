//! Holds: a node spawned for one session (by `ionctl spawn --hold` or the autoscaler) takes
//! only that session until the hold ends — when the session goes live here, or after
//! `hold_ttl`, so a node whose session never comes is not stranded.

use std::time::Duration;

use tokio::sync::watch;

/// The current hold: the session id this node is reserved for, if any.
pub type Hold = Option<String>;

/// Starts the hold (if `hold_for` is not empty) and its expiry timer.
pub fn start(hold_for: &str, ttl: Duration) -> (watch::Sender<Hold>, watch::Receiver<Hold>) {
    let initial = (!hold_for.is_empty()).then(|| hold_for.to_owned());
    let (tx, rx) = watch::channel(initial.clone());
    if let Some(sid) = initial {
        tracing::info!(%sid, ttl = ?ttl, "held for one session");
        let tx = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            release(&tx, &sid, "the hold expired before the session went live");
        });
    }
    (tx, rx)
}

/// Ends the hold on `sid`, if it is still the one held.
pub fn release(hold: &watch::Sender<Hold>, sid: &str, why: &str) {
    hold.send_if_modified(|current| {
        if current.as_deref() != Some(sid) {
            return false;
        }
        tracing::info!(%sid, why, "hold released");
        *current = None;
        true
    });
}
