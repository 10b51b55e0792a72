//! What a participant (`client.rs`) is asked to do and how it fails: where and how to join
//! ([`JoinSpec`]), a track to publish ([`Publish`]), and [`ClientError`].

use std::sync::Arc;
use std::time::Duration;

use super::media::VideoShape;
use super::signal::SignalError;
use super::stats::{Kind, SendLog};
use crate::protocol::JoinConfig;

/// How joining, publishing or a request to the agent failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Signal(#[from] SignalError),
    #[error("{what}: {reason}")]
    WebRtc { what: &'static str, reason: String },
    #[error("this participant publishes no track with index {0}")]
    NotPublished(u32),
    #[error("no remote track {0} with an SSRC yet")]
    NoRemoteTrack(String),
    #[error("the server has not opened its `ion-sfu` data channel yet")]
    NoApiChannel,
}

/// Maps a webrtc-rs error to [`ClientError::WebRtc`], saying what was being done.
pub fn webrtc<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> ClientError {
    move |e| ClientError::WebRtc {
        what,
        reason: e.to_string(),
    }
}

/// Where and how to join.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    pub url: String,
    pub sid: String,
    pub uid: String,
    /// A join token, sent in the join params.
    pub token: Option<String>,
    /// ion-sfu's join `config` (`NoPublish`, `NoSubscribe`, `NoAutoSubscribe`); ion-sdk-js
    /// 1.8.2 sends none.
    pub config: Option<JoinConfig>,
    /// Deadline of the WebSocket connect and of each call.
    pub timeout: Duration,
    /// The local address the PCs bind (the agent's own for a local agent).
    pub bind: std::net::IpAddr,
    /// Offer and accept RTX (RFC 4588) for VP8, as Chrome does: the SFU then keeps sent video
    /// packets for resending.
    pub rtx: bool,
}

/// A track to publish: its kind, its index (written into every stamp, and unique among the
/// tracks one participant publishes) and the log its sends go to.
#[derive(Debug, Clone)]
pub struct Publish {
    pub kind: Kind,
    pub index: u32,
    pub log: Arc<SendLog>,
    /// For video: a lower simulcast layer sent beside it. The track then has two layers,
    /// rids `f` (this one) and `q` (the lower), as ion-sdk-js names them.
    pub lower: Option<LowerLayer>,
}

/// The lower simulcast layer of a video track: its own stamps' index, send log and shape.
#[derive(Debug, Clone)]
pub struct LowerLayer {
    pub index: u32,
    pub log: Arc<SendLog>,
    pub shape: VideoShape,
}
