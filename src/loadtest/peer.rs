//! The seam between the load test's orchestration and the WebRTC client that does the
//! joining: [`Connector`] joins one participant, [`Peer`] is a joined one.
//!
//! The client itself is webrtc-rs (`client.rs`); the seam keeps the orchestration testable
//! apart from it.

use std::sync::Arc;
use std::time::Duration;

use super::media::VideoShape;
use super::signal::SignalError;
use super::stats::{Kind, RemoteTrackStats, SendLog, Window};

/// How joining or publishing failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Signal(#[from] SignalError),
    #[error("{what}: {reason}")]
    WebRtc { what: &'static str, reason: String },
}

/// Where and how to join.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    pub url: String,
    pub sid: String,
    pub uid: String,
    /// A join token, sent in the join params.
    pub token: Option<String>,
    /// Deadline of the WebSocket connect and of each call.
    pub timeout: Duration,
    /// The local address the PeerConnections bind (127.0.0.1 for a local agent).
    pub bind: &'static str,
}

/// A track to publish: its kind, its index in the run (written into every stamp) and the
/// log its sends go to.
#[derive(Debug, Clone)]
pub struct Publish {
    pub kind: Kind,
    pub index: u32,
    pub log: Arc<SendLog>,
}

/// Joins participants.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// Connects and joins; every network wait is bounded by `spec.timeout`. Received media
    /// is counted against `window`.
    async fn join(
        &self,
        spec: &JoinSpec,
        window: Arc<Window>,
    ) -> Result<Box<dyn Peer>, ClientError>;
}

/// A joined participant.
#[async_trait::async_trait]
pub trait Peer: Send + Sync {
    fn uid(&self) -> &str;

    /// Adds `tracks`, renegotiates, and starts generating media on them at `shape`, with a
    /// keyframe every `keyframe_interval` and on PLI/FIR.
    async fn publish(
        &self,
        tracks: &[Publish],
        shape: VideoShape,
        keyframe_interval: Duration,
    ) -> Result<(), ClientError>;

    /// The remote tracks seen so far.
    fn tracks(&self) -> Vec<Arc<RemoteTrackStats>>;

    /// Background failures, stray JSON-RPC errors, and why signaling closed if it did.
    fn problems(&self) -> Vec<String>;

    /// Leaves, within a few seconds.
    async fn close(&self);
}
