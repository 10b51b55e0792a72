//! A session on one worker: its participants and the tracks they publish. Each published
//! track lists its subscriptions, so forwarding a packet walks one short list and looks up
//! nothing else.

use std::time::Instant;

use str0m::change::SendPlace;
use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Mid, Pt, Rid};

use super::VideoLayer;
use super::layers::{LayerChoice, LayerMeter};
use super::participant::ParticipantId;
use super::rewrite::Rewriter;

/// A worker-unique track id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackId(pub u64);

/// One open forward of a track to a subscriber's m-line.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub participant: ParticipantId,
    pub mid: Mid,
    pub layer: LayerChoice<Rid>,
    /// The layer the subscriber asked for (video only; `None` stops its video).
    pub wanted: VideoLayer,
    /// The publisher's payload type last seen and the subscriber's matching one: matching
    /// codec parameters costs more than writing the packet, and the answer rarely changes.
    pub pt_map: Option<(Pt, Pt)>,
    /// The subscriber's sequence numbers and timestamps for this track.
    pub rewriter: Rewriter,
    /// Where the subscriber's str0m keeps this m-line's stream (str0m patch 23), learnt at
    /// the subscriber's `Pc::place_epoch` of `place_epoch`: a packet then goes out without
    /// a lookup among the subscriber's streams.
    pub place: SendPlace,
    pub place_epoch: u32,
}

/// A track published into the session.
#[derive(Debug)]
pub struct TrackIn {
    pub id: TrackId,
    pub origin: ParticipantId,
    /// The m-line on the publisher's PeerConnection.
    pub mid: Mid,
    pub kind: MediaKind,
    /// The msid stream id subscribers see, so a browser groups audio and video of one
    /// participant into one MediaStream.
    pub stream_id: String,
    pub layers: LayerMeter<Rid>,
    pub subscriptions: Vec<Subscription>,
    pub last_keyframe_request: Option<Instant>,
    /// At an edge, for a relayed video track: the layer last asked of the origin, the most
    /// any viewer here wants (None before the first ask: the origin sends the highest).
    pub asked_upstream: Option<VideoLayer>,
    /// The codec parameters of the payload type last received, looked up on the publisher's
    /// PeerConnection when the payload type changes.
    pub params: Option<PayloadParams>,
}

#[derive(Debug, Default)]
pub struct Session {
    pub members: Vec<ParticipantId>,
    pub tracks: Vec<TrackIn>,
}

impl Session {
    pub fn track_mut(&mut self, origin: ParticipantId, mid: Mid) -> Option<&mut TrackIn> {
        self.tracks
            .iter_mut()
            .find(|t| t.origin == origin && t.mid == mid)
    }

    pub fn track_by_id_mut(&mut self, id: TrackId) -> Option<&mut TrackIn> {
        self.tracks.iter_mut().find(|t| t.id == id)
    }
}
