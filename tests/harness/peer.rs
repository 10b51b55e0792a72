//! A test participant: two webrtc-rs PeerConnections (publisher and subscriber) that speak
//! ion-sfu JSON-RPC to an agent over a WebSocket, the way ion-sdk-js 1.8.2 does.
//!
//! - `join` offers a publisher PC carrying only the `ion-sfu` data channel; `publish` adds
//!   tracks and renegotiates with the `offer` call, as ion-sdk-js's `publish` does.
//! - The server's `offer` notifications (subscriber PC, renegotiations included) are answered
//!   with the `answer` notification, one at a time in arrival order.
//! - Local candidates are trickled (`target` 0 publisher, 1 subscriber).
//! - Published media is generated RTP: VP8 at 30 fps, one packet per frame with the marker
//!   bit (a valid payload descriptor, and a frame whose first byte marks key or delta), and
//!   Opus at 50 packets/s. Every packet carries `MAGIC` and a per-track number, so a receiver
//!   can count exactly which packets arrived. A benchmark may ask for larger video frames
//!   ([`Peer::set_video_packets_per_frame`]); then only a frame's first packet carries the
//!   number, and numbers count frames.
//! - Received tracks are counted per track id, and a track ends when the server's latest
//!   subscriber offer no longer sends it (or webrtc-rs ends it).
//! - PLI/FIR arriving at the publisher are counted and answered with a keyframe.
//!
//! Only loopback is used: every PC binds 127.0.0.1, has no ICE servers and no mDNS.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::rtp_transceiver::RtpTransceiver;

use ion_cluster::loadtest::client::candidate_init;
use ion_cluster::loadtest::pc::{self, OPUS_PT, VP8_PT, opus, vp8};
use ion_cluster::loadtest::signal::{Incoming, Signal, SignalError};
use ion_cluster::protocol::{
    DescParams, JoinConfig, JoinParams, SessionDescription, TrickleParams,
};

/// Marks the packet number inside every generated payload.
pub const MAGIC: &[u8; 4] = b"ION#";
pub const VIDEO_FPS: u32 = 30;
pub const AUDIO_PPS: u32 = 50;
/// A keyframe every this many video frames, besides those asked for by PLI/FIR.
const KEYFRAME_EVERY: u32 = 60;
/// How long a JSON-RPC call may wait for its reply.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A JSON-RPC error object the agent answered with.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub id: Value,
    pub code: i64,
    pub message: String,
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JSON-RPC error {}: {}", self.code, self.message)
    }
}

impl std::error::Error for RpcError {}

/// ion-sfu's join `config`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JoinOptions {
    pub no_publish: bool,
    pub no_subscribe: bool,
    pub no_auto_subscribe: bool,
}

/// Which media `publish` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Media {
    pub audio: bool,
    pub video: bool,
}

impl Media {
    pub const BOTH: Media = Media {
        audio: true,
        video: true,
    };
    pub const AUDIO: Media = Media {
        audio: true,
        video: false,
    };
    pub const VIDEO: Media = Media {
        audio: false,
        video: true,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Audio,
    Video,
}

impl Kind {
    fn of(kind: RtpCodecKind) -> Option<Kind> {
        match kind {
            RtpCodecKind::Audio => Some(Kind::Audio),
            RtpCodecKind::Video => Some(Kind::Video),
            _ => None,
        }
    }
}

/// What a subscriber saw of one remote track.
#[derive(Debug, Clone)]
pub struct RemoteTrack {
    pub track_id: String,
    /// The msid stream id; the agent uses the publisher's uid.
    pub stream_id: String,
    pub kind: Kind,
    /// RTP packets received, duplicates included.
    pub packets: u64,
    /// Distinct packet numbers (see [`MAGIC`]) received.
    numbers: BTreeSet<u32>,
    pub first_at: Instant,
    pub last_at: Instant,
    /// The server stopped sending it (renegotiated it away) or webrtc-rs ended it.
    pub ended: bool,
}

impl RemoteTrack {
    /// How many distinct numbered packets in `range` arrived.
    pub fn received_in(&self, range: Range<u32>) -> usize {
        self.numbers.range(range).count()
    }

    /// Packets arrived within the last `window`.
    pub fn flowing(&self, window: Duration) -> bool {
        self.packets > 0 && !self.ended && self.last_at.elapsed() < window
    }
}

/// A track this peer publishes.
#[derive(Clone)]
pub struct LocalTrack {
    pub kind: Kind,
    pub ssrc: u32,
    /// Packets handed to webrtc-rs so far; the next packet's number.
    pub sent: Arc<AtomicU32>,
    track: Arc<TrackLocalStaticRTP>,
    transceiver: Arc<dyn RtpTransceiver>,
    /// The generator and keyframe-request tasks of this track.
    tasks: Vec<tokio::task::AbortHandle>,
}

/// The state the peer's tasks and callbacks share.
#[derive(Default)]
struct Shared {
    remote: Mutex<HashMap<String, RemoteTrack>>,
    remote_handles: Mutex<HashMap<String, Arc<dyn TrackRemote>>>,
    /// Track id → whether the server's latest subscriber offer still sends it.
    offered: Mutex<HashMap<String, bool>>,
    /// Server offers answered (the first negotiation counts).
    renegotiations: AtomicU32,
    /// PLI/FIR that arrived at the publisher PC.
    keyframe_requests: AtomicU64,
    keyframe_wanted: AtomicBool,
    /// RTP packets per generated video frame; 0 means 1.
    video_packets_per_frame: AtomicU32,
    publisher_state: Mutex<Option<RTCPeerConnectionState>>,
    subscriber_state: Mutex<Option<RTCPeerConnectionState>>,
    /// Anything that went wrong in a background task, and stray JSON-RPC errors.
    problems: Mutex<Vec<String>>,
}

impl Shared {
    fn problem(&self, what: impl Into<String>) {
        self.problems.lock().expect("lock").push(what.into());
    }

    /// PLI/FIR arrived: count them and have the video generator send a keyframe next.
    fn keyframe_requested(&self, requests: u64) {
        self.keyframe_requests
            .fetch_add(requests, Ordering::Relaxed);
        self.keyframe_wanted.store(true, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Publisher,
    Subscriber,
}

impl Role {
    fn target(self) -> u8 {
        match self {
            Role::Publisher => 0,
            Role::Subscriber => 1,
        }
    }
}

struct Handler {
    role: Role,
    shared: Arc<Shared>,
    candidates: mpsc::UnboundedSender<(u8, RTCIceCandidateInit)>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let _ = self.candidates.send((self.role.target(), init));
            }
            Err(error) => self.shared.problem(format!("candidate to JSON: {error}")),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let slot = match self.role {
            Role::Publisher => &self.shared.publisher_state,
            Role::Subscriber => &self.shared.subscriber_state,
        };
        *slot.lock().expect("lock") = Some(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // The driver awaits this callback; the counting runs in its own task.
        tokio::spawn(count_track(self.shared.clone(), track));
    }
}

async fn count_track(shared: Arc<Shared>, track: Arc<dyn TrackRemote>) {
    let track_id = track.track_id().await.to_string();
    let stream_id = track.stream_id().await.to_string();
    let Some(kind) = Kind::of(track.kind().await) else {
        shared.problem(format!("track {track_id} has no media kind"));
        return;
    };
    let now = Instant::now();
    shared.remote.lock().expect("lock").insert(
        track_id.clone(),
        RemoteTrack {
            track_id: track_id.clone(),
            stream_id,
            kind,
            packets: 0,
            numbers: BTreeSet::new(),
            first_at: now,
            last_at: now,
            ended: false,
        },
    );
    shared
        .remote_handles
        .lock()
        .expect("lock")
        .insert(track_id.clone(), track.clone());
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                let number = packet_number(&packet.payload);
                let mut remote = shared.remote.lock().expect("lock");
                if let Some(t) = remote.get_mut(&track_id) {
                    t.packets += 1;
                    t.last_at = Instant::now();
                    if let Some(n) = number {
                        t.numbers.insert(n);
                    }
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    if let Some(t) = shared.remote.lock().expect("lock").get_mut(&track_id) {
        t.ended = true;
    }
}

/// The number after [`MAGIC`] in a payload, wherever the packetizer put it.
pub fn packet_number(payload: &[u8]) -> Option<u32> {
    let at = payload.windows(MAGIC.len()).position(|w| w == MAGIC)?;
    let bytes = payload.get(at + MAGIC.len()..at + MAGIC.len() + 4)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

async fn new_pc(
    role: Role,
    shared: &Arc<Shared>,
    candidates: &mpsc::UnboundedSender<(u8, RTCIceCandidateInit)>,
) -> anyhow::Result<Arc<dyn PeerConnection>> {
    let handler = Arc::new(Handler {
        role,
        shared: shared.clone(),
        candidates: candidates.clone(),
    });
    // Loopback only: no mDNS, no ICE servers, one socket on 127.0.0.1.
    Ok(pc::peer_connection(handler, role == Role::Publisher, "127.0.0.1").await?)
}

/// A call's failure as the tests see it: a JSON-RPC error answer is an [`RpcError`] inside
/// the `anyhow::Error`, so a test can downcast to it; anything else stays as the client said.
fn call_error(error: SignalError) -> anyhow::Error {
    match error {
        SignalError::Rpc { code, message, .. } => RpcError {
            id: Value::Null,
            code,
            message,
        }
        .into(),
        other => other.into(),
    }
}

/// One participant in a session.
pub struct Peer {
    pub uid: String,
    pub sid: String,
    signal: Signal,
    publisher: Arc<dyn PeerConnection>,
    subscriber: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    local: Mutex<Vec<LocalTrack>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Peer {
    /// Connects to `url` (ws://host:port/ws) and joins `sid`; a JSON-RPC error comes back as
    /// an [`RpcError`] inside the `anyhow::Error`.
    pub async fn join(
        url: &str,
        sid: &str,
        uid: &str,
        options: JoinOptions,
    ) -> anyhow::Result<Peer> {
        let shared = Arc::new(Shared::default());
        let (candidates_tx, mut candidates_rx) = mpsc::unbounded_channel();
        let publisher = new_pc(Role::Publisher, &shared, &candidates_tx).await?;
        let subscriber = new_pc(Role::Subscriber, &shared, &candidates_tx).await?;
        // ion-sdk-js's join offer carries only its API data channel.
        publisher.create_data_channel("ion-sfu", None).await?;

        // The library's ion-sfu client: calls, notifications, and what the server sends unasked.
        let (signal, incoming, signal_tasks) = Signal::connect(url, CALL_TIMEOUT)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let mut tasks = signal_tasks;
        let Incoming {
            offers: mut offers_rx,
            candidates: mut server_candidates,
        } = incoming;
        // Server candidates arrive as JSON; the PeerConnections want webrtc-rs candidates.
        let (remote_candidates_tx, mut remote_candidates_rx) =
            mpsc::unbounded_channel::<(u8, RTCIceCandidateInit)>();
        {
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                while let Some((target, candidate)) = server_candidates.recv().await {
                    match serde_json::from_value::<RTCIceCandidateInit>(candidate) {
                        Ok(candidate) => {
                            let _ = remote_candidates_tx.send((target, candidate));
                        }
                        Err(error) => {
                            shared.problem(format!("a malformed server candidate: {error}"))
                        }
                    }
                }
            }));
        }
        // Server offers are answered in order by one task.
        {
            let subscriber = subscriber.clone();
            let signal = signal.clone();
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(sdp) = offers_rx.recv().await {
                    if let Err(error) = answer_offer(&subscriber, &signal, &shared, sdp).await {
                        shared.problem(format!("answering a subscriber offer: {error:#}"));
                    }
                }
            }));
        }
        {
            let publisher = publisher.clone();
            let subscriber = subscriber.clone();
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                while let Some((target, candidate)) = remote_candidates_rx.recv().await {
                    let pc = if target == 0 { &publisher } else { &subscriber };
                    if let Err(error) = pc.add_ice_candidate(candidate).await {
                        shared.problem(format!("adding a server candidate: {error}"));
                    }
                }
            }));
        }

        let offer = publisher.create_offer(None).await?;
        publisher.set_local_description(offer.clone()).await?;
        let config = JoinConfig {
            no_publish: options.no_publish,
            no_subscribe: options.no_subscribe,
            no_auto_subscribe: options.no_auto_subscribe,
        };
        let params = JoinParams {
            sid: sid.to_owned(),
            uid: uid.to_owned(),
            offer: SessionDescription::offer(offer.sdp),
            config: (config != JoinConfig::default()).then_some(config),
            token: None,
        };
        // Candidates gathered so far wait in the channel until the join is on its way; the
        // server reads messages in order, so they arrive after it.
        let join = signal.send_call("join", params)?;
        {
            let signal = signal.clone();
            tasks.push(tokio::spawn(async move {
                while let Some((target, candidate)) = candidates_rx.recv().await {
                    let params = TrickleParams {
                        target,
                        candidate: candidate_init(candidate),
                    };
                    if signal.notify("trickle", params).is_err() {
                        break;
                    }
                }
            }));
        }
        let peer = Peer {
            uid: uid.to_owned(),
            sid: sid.to_owned(),
            signal,
            publisher,
            subscriber,
            shared,
            local: Mutex::new(Vec::new()),
            tasks: Mutex::new(tasks),
        };
        let answer = match join.wait(CALL_TIMEOUT).await {
            Ok(answer) => answer,
            Err(error) => {
                peer.close().await;
                return Err(call_error(error));
            }
        };
        let sdp = answer_sdp(&answer).context("the join result")?;
        peer.publisher
            .set_remote_description(RTCSessionDescription::answer(sdp)?)
            .await
            .context("applying the join answer")?;
        Ok(peer)
    }

    /// Adds tracks to the publisher PC and renegotiates with the `offer` call, then starts
    /// generating RTP on them.
    pub async fn publish(&self, media: Media) -> anyhow::Result<()> {
        let mut added = Vec::new();
        for (on, kind) in [(media.audio, Kind::Audio), (media.video, Kind::Video)] {
            if !on {
                continue;
            }
            let ssrc = rand_u32();
            let (codec, rtp_kind, label) = match kind {
                Kind::Audio => (opus(), RtpCodecKind::Audio, "audio"),
                Kind::Video => (vp8(), RtpCodecKind::Video, "video"),
            };
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                self.uid.clone(),
                format!("{}-{label}-{ssrc:08x}", self.uid),
                label.to_owned(),
                rtp_kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec,
                    ..Default::default()
                }],
            )));
            let transceiver = self
                .publisher
                .add_transceiver_from_track(
                    track.clone() as Arc<dyn TrackLocal>,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        streams: vec![self.uid.clone()],
                        send_encodings: vec![],
                    }),
                )
                .await?;
            added.push(LocalTrack {
                kind,
                ssrc,
                sent: Arc::new(AtomicU32::new(0)),
                track,
                transceiver,
                tasks: Vec::new(),
            });
        }
        self.renegotiate_publisher().await?;
        let mut tasks = Vec::new();
        for track in &mut added {
            let generator = tokio::spawn(generate(track.clone(), self.shared.clone()));
            track.tasks.push(generator.abort_handle());
            tasks.push(generator);
            if track.kind == Kind::Video {
                let shared = self.shared.clone();
                let watcher = tokio::spawn(pc::watch_keyframe_requests(
                    track.track.clone(),
                    move |requests| shared.keyframe_requested(requests),
                ));
                track.tasks.push(watcher.abort_handle());
                tasks.push(watcher);
            }
        }
        self.tasks.lock().expect("lock").extend(tasks);
        self.local.lock().expect("lock").extend(added);
        Ok(())
    }

    /// Stops publishing the track of `kind`, as ion-sdk-js `unpublish` does: the sender is
    /// removed and the publisher PC renegotiated with the `offer` call.
    pub async fn unpublish(&self, kind: Kind) -> anyhow::Result<()> {
        let track = {
            let mut local = self.local.lock().expect("lock");
            let at = local
                .iter()
                .position(|t| t.kind == kind)
                .ok_or_else(|| anyhow!("{} publishes no {kind:?} track", self.uid))?;
            local.remove(at)
        };
        for task in &track.tasks {
            task.abort();
        }
        let sender = track
            .transceiver
            .sender()
            .await?
            .ok_or_else(|| anyhow!("the {kind:?} transceiver has no sender"))?;
        self.publisher.remove_track(&sender).await?;
        self.renegotiate_publisher().await
    }

    /// Offers the publisher PC's current state with the `offer` call and applies the answer.
    async fn renegotiate_publisher(&self) -> anyhow::Result<()> {
        let offer = self.publisher.create_offer(None).await?;
        self.publisher.set_local_description(offer.clone()).await?;
        let answer = self
            .signal
            .call(
                "offer",
                DescParams {
                    desc: SessionDescription::offer(offer.sdp),
                },
                CALL_TIMEOUT,
            )
            .await
            .map_err(call_error)?;
        let sdp = answer_sdp(&answer).context("the offer result")?;
        self.publisher
            .set_remote_description(RTCSessionDescription::answer(sdp)?)
            .await
            .context("applying the answer to the publisher's offer")?;
        Ok(())
    }

    /// The tracks this peer publishes.
    pub fn local_tracks(&self) -> Vec<LocalTrack> {
        self.local.lock().expect("lock").clone()
    }

    /// Packets sent so far on this peer's track of `kind` (0 when it does not publish one).
    /// Makes each video frame published from now on `packets` full-size RTP packets (about
    /// 1.1 kB each), for a realistic bitrate: 2 packets per frame at 30 fps are ~500 kbit/s.
    pub fn set_video_packets_per_frame(&self, packets: u32) {
        self.shared
            .video_packets_per_frame
            .store(packets, Ordering::Relaxed);
    }

    pub fn sent(&self, kind: Kind) -> u32 {
        self.local
            .lock()
            .expect("lock")
            .iter()
            .find(|t| t.kind == kind)
            .map_or(0, |t| t.sent.load(Ordering::Relaxed))
    }

    /// Every remote track seen so far, with `ended` also reflecting the latest server offer.
    pub fn remote_tracks(&self) -> Vec<RemoteTrack> {
        let offered = self.shared.offered.lock().expect("lock").clone();
        let mut tracks: Vec<RemoteTrack> = self
            .shared
            .remote
            .lock()
            .expect("lock")
            .values()
            .cloned()
            .collect();
        for t in &mut tracks {
            if offered.get(&t.track_id) == Some(&false) {
                t.ended = true;
            }
        }
        tracks.sort_by(|a, b| a.track_id.cmp(&b.track_id));
        tracks
    }

    /// Live remote tracks from the publisher whose uid is `stream_id`.
    pub fn tracks_from(&self, stream_id: &str) -> Vec<RemoteTrack> {
        self.remote_tracks()
            .into_iter()
            .filter(|t| t.stream_id == stream_id && !t.ended)
            .collect()
    }

    /// Track ids the server's latest subscriber offer sends, and those it stopped.
    pub fn offered_tracks(&self) -> HashMap<String, bool> {
        self.shared.offered.lock().expect("lock").clone()
    }

    /// Server offers answered so far.
    pub fn renegotiations(&self) -> u32 {
        self.shared.renegotiations.load(Ordering::Relaxed)
    }

    /// PLI/FIR received by this peer's publisher PC.
    pub fn keyframe_requests(&self) -> u64 {
        self.shared.keyframe_requests.load(Ordering::Relaxed)
    }

    /// Sends a PLI for the remote video track `track_id`.
    pub async fn send_pli(&self, track_id: &str) -> anyhow::Result<()> {
        let track = self
            .shared
            .remote_handles
            .lock()
            .expect("lock")
            .get(track_id)
            .cloned()
            .ok_or_else(|| anyhow!("no remote track {track_id}"))?;
        let media_ssrc = *track
            .ssrcs()
            .await
            .first()
            .ok_or_else(|| anyhow!("track {track_id} has no SSRC yet"))?;
        track
            .write_rtcp(vec![Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            })])
            .await?;
        Ok(())
    }

    /// The publisher PC's connection state, once it has one.
    pub fn publisher_state(&self) -> Option<RTCPeerConnectionState> {
        *self.shared.publisher_state.lock().expect("lock")
    }

    /// The subscriber PC's connection state, once it has one.
    pub fn subscriber_state(&self) -> Option<RTCPeerConnectionState> {
        *self.shared.subscriber_state.lock().expect("lock")
    }

    /// Background failures and stray JSON-RPC errors so far (the client's and the signaling
    /// connection's).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.shared.problems.lock().expect("lock").clone();
        problems.extend(self.signal.problems());
        problems
    }

    /// Why the signaling connection closed, once it has.
    pub fn signal_closed(&self) -> Option<String> {
        self.signal.closed_reason()
    }

    /// Leaves: stops the generators, closes the WebSocket and both PeerConnections.
    pub async fn close(&self) {
        for task in self.tasks.lock().expect("lock").drain(..) {
            task.abort();
        }
        let _ = self.publisher.close().await;
        let _ = self.subscriber.close().await;
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

fn answer_sdp(result: &Value) -> anyhow::Result<String> {
    if result["type"] != "answer" {
        bail!("expected a description of type answer, got {result}");
    }
    result["sdp"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the answer has no sdp: {result}"))
}

async fn answer_offer(
    subscriber: &Arc<dyn PeerConnection>,
    signal: &Signal,
    shared: &Shared,
    sdp: String,
) -> anyhow::Result<()> {
    let tracks = sdp_tracks(&sdp);
    subscriber
        .set_remote_description(RTCSessionDescription::offer(sdp)?)
        .await
        .context("setting the server's offer")?;
    let answer = subscriber.create_answer(None).await?;
    subscriber.set_local_description(answer.clone()).await?;
    signal.notify(
        "answer",
        DescParams {
            desc: SessionDescription::answer(answer.sdp),
        },
    )?;
    {
        let mut offered = shared.offered.lock().expect("lock");
        for live in offered.values_mut() {
            *live = false;
        }
        for (track_id, live) in tracks {
            offered.insert(track_id, live);
        }
    }
    shared.renegotiations.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The msid track ids of an offer's media sections, and whether each is still being sent
/// (a port other than 0 and a sending direction).
pub fn sdp_tracks(sdp: &str) -> Vec<(String, bool)> {
    let mut tracks = Vec::new();
    for section in sdp.split("\nm=").skip(1) {
        let mut lines = section.lines();
        let header = lines.next().unwrap_or_default();
        if header.starts_with("application") {
            continue;
        }
        let port_open = header.split_whitespace().nth(1).is_some_and(|p| p != "0");
        let mut sending = true;
        let mut track_id = None;
        for line in lines {
            let line = line.trim_end();
            match line {
                "a=inactive" | "a=recvonly" => sending = false,
                _ => {}
            }
            if let Some(msid) = line.strip_prefix("a=msid:") {
                track_id = msid.split_whitespace().nth(1).map(str::to_owned);
            }
        }
        if let Some(track_id) = track_id {
            tracks.push((track_id, port_open && sending));
        }
    }
    tracks
}

/// Writes numbered RTP on `track` until aborted.
async fn generate(track: LocalTrack, shared: Arc<Shared>) {
    let (period, pt, step) = match track.kind {
        Kind::Video => (
            Duration::from_micros(1_000_000 / u64::from(VIDEO_FPS)),
            VP8_PT,
            90_000 / VIDEO_FPS,
        ),
        Kind::Audio => (
            Duration::from_micros(1_000_000 / u64::from(AUDIO_PPS)),
            OPUS_PT,
            48_000 / AUDIO_PPS,
        ),
    };
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sequence = rand_u32() as u16;
    let mut timestamp = rand_u32();
    let mut frame: u32 = 0;
    loop {
        ticker.tick().await;
        timestamp = timestamp.wrapping_add(step);
        let number = track.sent.load(Ordering::Relaxed);
        let payloads = match track.kind {
            Kind::Video => {
                let key = frame.is_multiple_of(KEYFRAME_EVERY)
                    || shared.keyframe_wanted.swap(false, Ordering::Relaxed);
                let packets = shared.video_packets_per_frame.load(Ordering::Relaxed);
                if packets > 1 {
                    vp8_large_frame(key, number, packets)
                } else {
                    vec![vp8_payload(key, number)]
                }
            }
            Kind::Audio => vec![opus_payload(number)],
        };
        let last = payloads.len() - 1;
        let mut written = true;
        for (i, payload) in payloads.into_iter().enumerate() {
            let marker = track.kind == Kind::Video && i == last;
            let packet = pc::rtp_packet(pt, sequence, timestamp, track.ssrc, marker, payload);
            // Fails until negotiation has bound the track; nothing was sent then.
            if track.track.write_rtp(packet).await.is_err() {
                written = false;
                break;
            }
            sequence = sequence.wrapping_add(1);
        }
        if written {
            track.sent.fetch_add(1, Ordering::Relaxed);
            frame += 1;
        }
    }
}

/// One VP8 frame in `packets` RTP payloads of about 1.1 kB: the first starts the partition
/// (S=1) and carries the frame tag and the number, the rest continue it (S=0).
fn vp8_large_frame(key: bool, number: u32, packets: u32) -> Vec<Vec<u8>> {
    const PAYLOAD: usize = 1100;
    let mut first = vp8_payload(key, number);
    first.resize(PAYLOAD, 0x55);
    let mut payloads = vec![first];
    for _ in 1..packets {
        let mut rest = vec![0x55; PAYLOAD];
        rest[0] = 0x00;
        payloads.push(rest);
    }
    payloads
}

/// One VP8 frame in one RTP payload: the payload descriptor (S=1, partition 0), then a frame
/// whose tag's bit 0 says key (0) or delta (1), then the number.
fn vp8_payload(key: bool, number: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(160);
    p.push(0x10);
    if key {
        // Frame tag (key, version 0, shown), start code, 320x240.
        p.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
    } else {
        p.extend_from_slice(&[0x11, 0x02, 0x00]);
    }
    p.extend_from_slice(MAGIC);
    p.extend_from_slice(&number.to_be_bytes());
    p.resize(160, 0x55);
    p
}

/// An Opus packet: a TOC byte (CELT fullband 20 ms, one frame), then the number.
fn opus_payload(number: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(80);
    p.push(0xfc);
    p.extend_from_slice(MAGIC);
    p.extend_from_slice(&number.to_be_bytes());
    p.resize(80, 0x33);
    p
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish() as u32
}

/// A bare signaling WebSocket for sending arbitrary (bad) messages and reading the replies.
pub struct RawSignal {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// What the server did next on a [`RawSignal`].
#[derive(Debug)]
pub enum Reply {
    Json(Value),
    Closed(Option<String>),
}

impl RawSignal {
    pub async fn connect(url: &str) -> anyhow::Result<RawSignal> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        Ok(RawSignal { ws })
    }

    pub async fn send_text(&mut self, text: impl Into<String>) -> anyhow::Result<()> {
        self.ws.send(Message::text(text.into())).await?;
        Ok(())
    }

    /// The next JSON message or the close, within `timeout`; pings and pongs are skipped.
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<Reply> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| anyhow!("no reply within {timeout:?}"))?;
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Ok(Reply::Json(
                        serde_json::from_str(text.as_str())
                            .with_context(|| format!("the reply is not JSON: {text}"))?,
                    ));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Ok(Reply::Closed(
                        frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)),
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Ok(Reply::Closed(Some(format!("error: {error}")))),
                None => return Ok(Reply::Closed(None)),
            }
        }
    }

    /// The next reply, which must be a JSON-RPC error.
    pub async fn expect_error(&mut self, timeout: Duration) -> anyhow::Result<RpcError> {
        match self.next(timeout).await? {
            Reply::Json(reply) => {
                let error = reply
                    .get("error")
                    .ok_or_else(|| anyhow!("expected a JSON-RPC error, got {reply}"))?;
                Ok(RpcError {
                    id: reply["id"].clone(),
                    code: error["code"]
                        .as_i64()
                        .ok_or_else(|| anyhow!("an error without a code: {reply}"))?,
                    message: error["message"].as_str().unwrap_or_default().to_owned(),
                })
            }
            Reply::Closed(reason) => bail!("the connection closed instead ({reason:?})"),
        }
    }
}
