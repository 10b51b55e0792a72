//! One participant: a publisher PeerConnection (the client offers) and a subscriber
//! PeerConnection (the server offers and renegotiates as tracks come and go), each a str0m
//! `Rtc` owned by the worker thread.
//!
//! A relay between two nodes is a participant too ([`Link`]): at the origin it has only a
//! subscriber PeerConnection, which the edge answers; at the edge only a publisher one,
//! whose offers come from the origin. So relayed media goes through the same forwarding.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::rtp::{Extension, ExtensionMap};
use str0m::{Candidate, Rtc};
use tokio::sync::mpsc;

use super::forwarded::Forwarded;
use super::session::TrackId;
use super::{JoinConfig, PeerEvent, SfuError, VideoLayer};

/// The data channel ion-sdk-js waits for on the subscriber PeerConnection before `join`
/// resolves.
pub const API_CHANNEL: &str = "ion-sfu";

/// How long a PeerConnection keeps sent video to answer NACKs with resends (`[webrtc]
/// resend_history`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResendHistory(pub Duration);

impl Default for ResendHistory {
    fn default() -> Self {
        Self(super::DEFAULT_RESEND_HISTORY)
    }
}

/// A worker-unique participant id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

/// Which of a participant's two PeerConnections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Publisher,
    Subscriber,
}

impl Role {
    pub const BOTH: [Role; 2] = [Role::Publisher, Role::Subscriber];

    pub fn index(self) -> usize {
        match self {
            Role::Publisher => 0,
            Role::Subscriber => 1,
        }
    }
}

/// Whether a participant is a client or one end of a relay between two nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Client,
    /// At a session's origin: sends the session's tracks to the edge node `edge`.
    ToEdge {
        edge: String,
    },
    /// At an edge: publishes the tracks the origin node `origin` relays.
    FromOrigin {
        origin: String,
    },
}

impl Link {
    pub fn is_relay(&self) -> bool {
        !matches!(self, Link::Client)
    }
}

/// A str0m `Rtc` and when it next wants a timeout.
pub struct Pc {
    pub rtc: Rtc,
    pub timeout: Instant,
    /// Packets forwarded to this PeerConnection since its last poll, which sends them.
    pub forwarded: Vec<Forwarded>,
    /// Moves on whenever a send found a stream away from the place its subscription kept
    /// (a renegotiation moved it): every subscription to this PeerConnection then asks
    /// str0m for its place afresh (str0m patch 23). Starts at 1, so a new subscription's
    /// epoch of 0 asks once.
    pub place_epoch: u32,
    /// Media was queued in str0m since the last poll: str0m sends a queued packet only
    /// after its next timeout, which it will want at once.
    pub written: bool,
    /// The socket of an edge's end of a relay (see `relay_socket`); None: the worker's.
    pub socket: Option<Arc<tokio::net::UdpSocket>>,
}

impl Pc {
    /// A PeerConnection with this node's host candidates. `ice_lite` is false only for an
    /// edge's end of a relay: str0m cannot connect two ICE-lite ends, so the edge does the
    /// checks to the origin.
    pub fn new(
        now: Instant,
        candidates: &[SocketAddr],
        role: Role,
        ice_lite: bool,
        resend_history: ResendHistory,
    ) -> Result<Self, SfuError> {
        let mut rtc = Rtc::builder()
            // str0m keeps 3 s by default (str0m patch 11 makes it a setting).
            .set_send_buffer_max_age(resend_history.0)
            // The server has public host candidates; the client does the checks and
            // nominates, so mDNS or hidden client addresses do not matter.
            .set_ice_lite(ice_lite)
            // Packets in and out, not frames: see the module doc of `sfu`.
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .set_extension_map(extensions(role))
            .build(now);
        for addr in candidates {
            let candidate = Candidate::host(*addr, "udp")
                .map_err(|e| SfuError::Internal(format!("host candidate {addr}: {e}")))?;
            rtc.add_local_candidate(candidate);
        }
        Ok(Self {
            rtc,
            timeout: now,
            forwarded: Vec::new(),
            place_epoch: 1,
            written: false,
            socket: None,
        })
    }
}

/// The RTP header extensions a PeerConnection offers or accepts: str0m's standard set, less
/// these on the subscriber side.
/// - Transport-wide sequence numbers: with them every viewer sends transport-cc feedback about
///   ten times a second, one datagram each that wakes the worker, is decrypted and parsed,
///   and is then unused, since the agent forwards without estimating bandwidth. (Put them
///   back if the agent ever adapts layers to viewer bandwidth.)
/// - MID and RTP stream ids: the agent's offer names every SSRC it sends (`a=ssrc`), so the
///   viewer binds each stream to its m-line from the SDP (RFC 8843 §9.2), and the agent
///   sends no simulcast to viewers. str0m 0.25 would otherwise write the MID, a string, on
///   every video packet: it stops only on a receiver report for an SSRC without RTX.
///
/// The publisher side keeps them all: the sender's congestion control needs our feedback,
/// and simulcast layers arrive identified by their rid.
fn extensions(role: Role) -> ExtensionMap {
    let standard = ExtensionMap::standard();
    if role == Role::Publisher {
        return standard;
    }
    let mut map = ExtensionMap::empty();
    for (id, extension) in standard.iter() {
        let unused = matches!(
            extension,
            Extension::TransportSequenceNumber
                | Extension::RtpMid
                | Extension::RtpStreamId
                | Extension::RepairedRtpStreamId
        );
        if !unused {
            map.set(id, extension.clone());
        }
    }
    map
}

/// Negotiation state of one track sent to this participant (chat.rs's lifecycle: open,
/// negotiate, stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    ToOpen,
    Negotiating(Mid),
    Open(Mid),
    ToStop(Mid),
    NegotiatingStop(Mid),
}

#[derive(Debug, Clone)]
pub struct TrackOut {
    pub track: TrackId,
    pub kind: MediaKind,
    pub stream_id: String,
    pub state: OutState,
    /// The publisher left while this was being negotiated: stop it once the answer is in.
    pub orphaned: bool,
}

pub struct Participant {
    pub id: ParticipantId,
    pub sid: Arc<str>,
    pub uid: String,
    pub config: JoinConfig,
    pub link: Link,
    /// None only for the origin's end of a relay.
    pub publisher: Option<Pc>,
    pub subscriber: Option<Pc>,
    pub events: mpsc::UnboundedSender<PeerEvent>,
    pub outs: Vec<TrackOut>,
    /// The video layer this subscriber wants of each stream id (ion-sfu's `preferLayer`),
    /// kept for subscriptions that open after the request.
    pub wanted_layers: Vec<(String, VideoLayer)>,
    pending_offer: Option<SdpPendingOffer>,
    api_channel_offered: bool,
    /// Some out is to open or stop: [`Participant::negotiate`] has work. Kept so that the
    /// check after every poll reads this, not `outs`, which is out of the cache by then.
    outs_waiting: bool,
    pub joined_at: Instant,
    pub connected: bool,
    pub disconnected_since: Option<Instant>,
    /// Set when the participant must go; the worker removes it after the current pass.
    pub failed: Option<String>,
    /// Per PeerConnection (by [`Role::index`]): queued in the worker's dirty list, so it is
    /// not queued twice.
    pub dirty: [bool; 2],
}

/// How long ICE may stay disconnected before the participant is removed.
const DISCONNECTED_GRACE: Duration = Duration::from_secs(15);
/// How long a new participant has to connect at all.
const CONNECT_DEADLINE: Duration = Duration::from_secs(30);

impl Participant {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: ParticipantId,
        sid: Arc<str>,
        uid: String,
        config: JoinConfig,
        link: Link,
        publisher: Option<Pc>,
        subscriber: Option<Pc>,
        events: mpsc::UnboundedSender<PeerEvent>,
        now: Instant,
    ) -> Self {
        Self {
            id,
            sid,
            uid,
            config,
            // A relay carries media only: no API channel to offer, and no SCTP to keep up.
            api_channel_offered: link.is_relay(),
            link,
            publisher,
            subscriber,
            events,
            outs: Vec::new(),
            wanted_layers: Vec::new(),
            pending_offer: None,
            outs_waiting: false,
            joined_at: now,
            connected: false,
            disconnected_since: None,
            failed: None,
            dirty: [false; 2],
        }
    }

    /// The video layer this subscriber wants of `stream_id`; high unless it said otherwise.
    pub fn wanted_layer(&self, stream_id: &str) -> VideoLayer {
        self.wanted_layers
            .iter()
            .find(|(stream, _)| stream == stream_id)
            .map_or(VideoLayer::High, |(_, layer)| *layer)
    }

    pub fn set_wanted_layer(&mut self, stream_id: &str, layer: VideoLayer) {
        match self.wanted_layers.iter_mut().find(|(s, _)| s == stream_id) {
            Some(entry) => entry.1 = layer,
            None => self.wanted_layers.push((stream_id.to_owned(), layer)),
        }
    }

    pub fn pc(&self, role: Role) -> Option<&Pc> {
        match role {
            Role::Publisher => self.publisher.as_ref(),
            Role::Subscriber => self.subscriber.as_ref(),
        }
    }

    pub fn pc_mut(&mut self, role: Role) -> Option<&mut Pc> {
        match role {
            Role::Publisher => self.publisher.as_mut(),
            Role::Subscriber => self.subscriber.as_mut(),
        }
    }

    pub fn fail(&mut self, reason: impl Into<String>) {
        if self.failed.is_none() {
            self.failed = Some(reason.into());
        }
    }

    /// Why the participant should be removed now, if it should.
    pub fn expired(&self, now: Instant) -> Option<String> {
        if let Some(reason) = &self.failed {
            return Some(reason.clone());
        }
        for role in Role::BOTH {
            if self.pc(role).is_some_and(|pc| !pc.rtc.is_alive()) {
                return Some(format!("the {role:?} connection closed").to_lowercase());
            }
        }
        if let Some(since) = self.disconnected_since
            && now.saturating_duration_since(since) >= DISCONNECTED_GRACE
        {
            return Some(format!(
                "ICE stayed disconnected for {}s",
                DISCONNECTED_GRACE.as_secs()
            ));
        }
        if !self.connected && now.saturating_duration_since(self.joined_at) >= CONNECT_DEADLINE {
            return Some(format!(
                "ICE did not connect within {}s of the join",
                CONNECT_DEADLINE.as_secs()
            ));
        }
        None
    }

    /// The client's (re)offer on the publisher connection.
    pub fn accept_publisher_offer(&mut self, offer: SdpOffer) -> Result<SdpAnswer, SfuError> {
        let publisher = self.publisher.as_mut().ok_or_else(|| {
            SfuError::BadRequest("this end of a relay takes no offers".to_owned())
        })?;
        publisher
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::BadSdp(e.to_string()))
    }

    /// Starts a subscriber renegotiation when tracks are waiting to open or stop and none is
    /// in flight; returns the offer to send.
    pub fn negotiate(&mut self) -> Option<SdpOffer> {
        // Runs after every poll of the subscriber, i.e. for every forwarded packet: settle the
        // common case without building a change, and without reading `outs` (at 1 -> 200, a
        // scan of it was 5% of the media thread's user time, nearly all of it cache misses).
        debug_assert!(
            self.outs_waiting
                || !self
                    .outs
                    .iter()
                    .any(|o| matches!(o.state, OutState::ToOpen | OutState::ToStop(_))),
            "an out waits to open or stop, but outs_waiting was not set"
        );
        if self.pending_offer.is_some() || (self.api_channel_offered && !self.outs_waiting) {
            return None;
        }
        let subscriber = self.subscriber.as_mut()?;
        let mut change = subscriber.rtc.sdp_api();
        let mut opening_channel = false;
        if !self.api_channel_offered {
            change.add_channel(API_CHANNEL.to_owned());
            opening_channel = true;
        }
        for out in &mut self.outs {
            match out.state {
                OutState::ToOpen => {
                    let mid = change.add_media(
                        out.kind,
                        Direction::SendOnly,
                        Some(out.stream_id.clone()),
                        Some(format!("{}-{}", out.stream_id, out.track.0)),
                        None,
                    );
                    out.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(mid) => {
                    change.stop_media(mid);
                    out.state = OutState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        // Every out that waited is now in negotiation.
        self.outs_waiting = false;
        if !change.has_changes() {
            return None;
        }
        let (offer, pending) = change.apply()?;
        self.api_channel_offered |= opening_channel;
        self.pending_offer = Some(pending);
        Some(offer)
    }

    /// The client's answer to our subscriber offer. Returns the tracks that are now open, and
    /// on which m-line, for the caller to start forwarding.
    pub fn accept_subscriber_answer(
        &mut self,
        answer: SdpAnswer,
    ) -> Result<Vec<(TrackId, Mid)>, SfuError> {
        let pending = self.pending_offer.take().ok_or_else(|| {
            SfuError::BadRequest("there is no subscriber offer waiting for an answer".to_owned())
        })?;
        let subscriber = self.subscriber.as_mut().ok_or_else(|| {
            SfuError::BadRequest("this participant does not subscribe".to_owned())
        })?;
        subscriber
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| SfuError::BadSdp(e.to_string()))?;
        let mut opened = Vec::new();
        for out in &mut self.outs {
            if let OutState::Negotiating(mid) = out.state {
                if out.orphaned {
                    out.state = OutState::ToStop(mid);
                    self.outs_waiting = true;
                } else {
                    out.state = OutState::Open(mid);
                    opened.push((out.track, mid));
                }
            }
        }
        self.outs
            .retain(|o| !matches!(o.state, OutState::NegotiatingStop(_)));
        Ok(opened)
    }

    /// Sends `track` to this subscriber from the next negotiation on.
    pub fn open_out(&mut self, track: TrackId, kind: MediaKind, stream_id: String) {
        self.outs.push(TrackOut {
            track,
            kind,
            stream_id,
            state: OutState::ToOpen,
            orphaned: false,
        });
        self.outs_waiting = true;
    }

    /// The publisher of `track` left: stop sending it.
    pub fn drop_track(&mut self, track: TrackId) {
        self.outs.retain_mut(|out| {
            if out.track != track {
                return true;
            }
            match out.state {
                OutState::ToOpen => false,
                OutState::Negotiating(_) => {
                    out.orphaned = true;
                    true
                }
                OutState::Open(mid) => {
                    out.state = OutState::ToStop(mid);
                    self.outs_waiting = true;
                    true
                }
                OutState::ToStop(_) | OutState::NegotiatingStop(_) => true,
            }
        });
    }

    pub fn open_out_count(&self) -> usize {
        self.outs
            .iter()
            .filter(|o| matches!(o.state, OutState::Open(_)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(map: &ExtensionMap, wanted: &Extension) -> bool {
        map.iter().any(|(_, extension)| extension == wanted)
    }

    #[test]
    fn viewers_get_no_feedback_or_stream_id_extensions_and_publishers_keep_them() {
        let publisher = extensions(Role::Publisher);
        let subscriber = extensions(Role::Subscriber);
        for extension in [
            Extension::TransportSequenceNumber,
            Extension::RtpMid,
            Extension::RtpStreamId,
            Extension::RepairedRtpStreamId,
        ] {
            assert!(has(&publisher, &extension), "publisher lacks {extension:?}");
            assert!(
                !has(&subscriber, &extension),
                "subscriber has {extension:?}"
            );
        }
        for extension in [Extension::AudioLevel, Extension::VideoOrientation] {
            assert!(
                has(&subscriber, &extension),
                "subscriber lacks {extension:?}"
            );
        }
    }
}
