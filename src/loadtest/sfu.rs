//! Which SFU a load test drives (`--target`), and a joined participant of either kind, so
//! that the session, media and accounting code in this module is the same for both.

use std::sync::Arc;
use std::time::Duration;

use super::client::{self, RemoteTrack};
use super::janus;
use super::media::VideoShape;
use super::peer::{ClientError, JoinSpec, Publish};
use super::stats::Window;

/// The SFU at the load test's URL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sfu {
    /// An ion-agent (or ion-sfu): JSON-RPC signaling, one publisher and one subscriber PC.
    #[default]
    Ion,
    /// Janus's videoroom plugin over its WebSocket API.
    Janus,
}

/// A participant that has joined.
pub enum Joined {
    Ion(client::Participant),
    Janus(janus::Participant),
}

impl Joined {
    /// Joins the session of `spec` on `sfu`. A Janus room is made with room for `publishers`;
    /// with `subscribe`, a Janus participant also subscribes to all of them (an agent
    /// subscribes everyone to everything by itself).
    pub async fn join(
        sfu: Sfu,
        spec: &JoinSpec,
        window: Arc<Window>,
        publishers: u32,
        subscribe: bool,
    ) -> Result<Joined, ClientError> {
        match sfu {
            Sfu::Ion => client::Participant::join(spec, window)
                .await
                .map(Joined::Ion),
            Sfu::Janus => {
                let participant = janus::Participant::join(spec, window, publishers).await?;
                if subscribe && let Err(error) = participant.subscribe(publishers).await {
                    participant.close().await;
                    return Err(error);
                }
                Ok(Joined::Janus(participant))
            }
        }
    }

    pub fn uid(&self) -> &str {
        match self {
            Joined::Ion(p) => &p.uid,
            Joined::Janus(p) => &p.uid,
        }
    }

    /// Publishes `tracks` and starts their media (see `client::Participant::publish`).
    pub async fn publish(
        &self,
        tracks: &[Publish],
        shape: VideoShape,
        keyframe_interval: Duration,
    ) -> Result<(), ClientError> {
        match self {
            Joined::Ion(p) => p.publish(tracks, shape, keyframe_interval).await,
            Joined::Janus(p) => p.publish(tracks, shape, keyframe_interval).await,
        }
    }

    /// A publisher on Janus subscribes to the `others` once they all publish; on an agent
    /// it already receives them.
    pub async fn subscribe_to_other_publishers(&self, others: u32) -> Result<(), ClientError> {
        match self {
            Joined::Ion(_) => Ok(()),
            Joined::Janus(p) => p.subscribe(others).await,
        }
    }

    pub fn tracks(&self) -> Vec<Arc<RemoteTrack>> {
        match self {
            Joined::Ion(p) => p.tracks(),
            Joined::Janus(p) => p.tracks(),
        }
    }

    pub fn problems(&self) -> Vec<String> {
        match self {
            Joined::Ion(p) => p.problems(),
            Joined::Janus(p) => p.problems(),
        }
    }

    pub fn signal_closed(&self) -> Option<String> {
        match self {
            Joined::Ion(p) => p.signal_closed(),
            Joined::Janus(p) => p.signal_closed(),
        }
    }

    pub async fn close(&self) {
        match self {
            Joined::Ion(p) => p.close().await,
            Joined::Janus(p) => p.close().await,
        }
    }
}
