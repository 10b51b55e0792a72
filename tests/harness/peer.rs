//! A test participant: a thin wrapper over the library's webrtc-rs participant
//! ([`ion_cluster::loadtest::client::Participant`]) with the vocabulary the tests speak.
//!
//! - It binds 127.0.0.1 and waits at most 10 s for each reply.
//! - It publishes one Opus track and one VP8 track at 30 fps, one small packet per frame
//!   unless a benchmark asks for more ([`Peer::set_video_packets_per_frame`]).
//! - A JSON-RPC error comes back as an [`RpcError`] inside the `anyhow::Error`.
//! - Every packet carries the library's stamp with its number on its track.
//!   [`RemoteTrack::received_in`] counts which numbers arrived. [`Peer::sent`] says how
//!   many went out.
//! - A remote track ends when webrtc-rs ends it or the server's latest offer stops sending it.
//!
//! [`RawSignal`] is the other tool here: a bare WebSocket for sending malformed messages.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use webrtc::peer_connection::RTCPeerConnectionState;

use ion_cluster::loadtest::client::Participant;
use ion_cluster::loadtest::media::{
    AUDIO_PPS as LIBRARY_AUDIO_PPS, MAX_PAYLOAD, VideoShape, now_us,
};
use ion_cluster::loadtest::peer::{ClientError, JoinSpec, LowerLayer, Publish};
use ion_cluster::loadtest::signal::SignalError;
use ion_cluster::loadtest::stats::{SendLog, Window};
use ion_cluster::protocol::{JoinConfig, VideoLayer};

pub use ion_cluster::loadtest::stats::Kind;

pub const VIDEO_FPS: u32 = 30;
pub const AUDIO_PPS: u32 = LIBRARY_AUDIO_PPS;
/// A keyframe this often, besides those asked for by PLI/FIR.
const KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);
/// How long the connect and each JSON-RPC call may wait.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a video frame when it is one packet: small, so that many peers fit on two cores.
const SMALL_FRAME_BYTES: u64 = 160;

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

/// A failure as the tests see it: a JSON-RPC error answer is an [`RpcError`], so a test can
/// downcast to it; anything else stays as the client said.
fn test_error(error: ClientError) -> anyhow::Error {
    match error {
        ClientError::Signal(SignalError::Rpc { code, message, .. }) => RpcError {
            id: Value::Null,
            code,
            message,
        }
        .into(),
        other => other.into(),
    }
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

/// What a subscriber saw of one remote track.
#[derive(Debug, Clone)]
pub struct RemoteTrack {
    pub track_id: String,
    /// The msid stream id; the agent uses the publisher's uid.
    pub stream_id: String,
    pub kind: Kind,
    /// RTP packets received, duplicates included.
    pub packets: u64,
    /// Distinct packet numbers received.
    numbers: BTreeSet<u32>,
    /// Stamps received by the publisher's stamp index: which simulcast layers arrived.
    pub sources: BTreeMap<u32, u64>,
    /// When the last packet arrived, µs of wall clock.
    last_us: u64,
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
        self.packets > 0
            && !self.ended
            && now_us().saturating_sub(self.last_us) < window.as_micros() as u64
    }
}

/// One participant in a session.
pub struct Peer {
    pub uid: String,
    pub sid: String,
    participant: Participant,
    /// Send logs of the tracks published now, by kind.
    published: Mutex<HashMap<Kind, Publish>>,
    next_index: AtomicU32,
    /// RTP packets per generated video frame; 0 means 1.
    video_packets_per_frame: AtomicU32,
    /// Numbers received per track id, gathered from the library's arrivals.
    numbers: Mutex<HashMap<String, BTreeSet<u32>>>,
    /// Stamps received per track id and publisher stamp index (a simulcast layer has its own).
    sources: Mutex<HashMap<String, BTreeMap<u32, u64>>>,
}

impl Peer {
    /// Connects to `url` (ws://host:port/ws) and joins `sid`, with ion-sfu's `config` when it
    /// is not the default.
    pub async fn join(url: &str, sid: &str, uid: &str, config: JoinConfig) -> anyhow::Result<Peer> {
        Self::join_from("127.0.0.1", url, sid, uid, config).await
    }

    /// As [`Peer::join`], with media sockets bound to `bind` (an address with a route to the
    /// agent, as the host end of a test's veth link).
    pub async fn join_from(
        bind: &'static str,
        url: &str,
        sid: &str,
        uid: &str,
        config: JoinConfig,
    ) -> anyhow::Result<Peer> {
        let spec = JoinSpec {
            url: url.to_owned(),
            sid: sid.to_owned(),
            uid: uid.to_owned(),
            token: None,
            config: (config != JoinConfig::default()).then_some(config),
            timeout: CALL_TIMEOUT,
            bind: bind
                .parse()
                .map_err(|e| anyhow::anyhow!("bind address {bind:?}: {e}"))?,
            rtx: false,
        };
        // Open from the start: every arrival is recorded, for `received_in`.
        let window = Arc::new(Window::default());
        window.open(0);
        let participant = Participant::join(&spec, window).await.map_err(test_error)?;
        Ok(Peer {
            uid: uid.to_owned(),
            sid: sid.to_owned(),
            participant,
            published: Mutex::default(),
            next_index: AtomicU32::new(0),
            video_packets_per_frame: AtomicU32::new(0),
            numbers: Mutex::default(),
            sources: Mutex::default(),
        })
    }

    /// Adds tracks to the publisher PC, renegotiates with the `offer` call, then starts
    /// generating RTP on them.
    pub async fn publish(&self, media: Media) -> anyhow::Result<()> {
        let mut tracks = Vec::new();
        for (on, kind) in [(media.audio, Kind::Audio), (media.video, Kind::Video)] {
            if on {
                tracks.push(self.new_track(kind));
            }
        }
        self.publish_tracks(tracks).await
    }

    /// Publishes a video track with two simulcast layers (rids `f` and `q`): the top one
    /// shaped as [`Peer::set_video_packets_per_frame`] says, the lower one small packet per
    /// frame. Returns the stamp index of each, top first.
    pub async fn publish_simulcast_video(&self) -> anyhow::Result<[u32; 2]> {
        let mut track = self.new_track(Kind::Video);
        let lower = LowerLayer {
            index: self.next_index.fetch_add(1, Ordering::Relaxed),
            log: Arc::new(SendLog::default()),
            shape: VideoShape {
                bitrate_bps: SMALL_FRAME_BYTES * 8 * u64::from(VIDEO_FPS),
                fps: VIDEO_FPS,
            },
        };
        let indices = [track.index, lower.index];
        track.lower = Some(lower);
        self.publish_tracks(vec![track]).await?;
        Ok(indices)
    }

    fn new_track(&self, kind: Kind) -> Publish {
        Publish {
            kind,
            index: self.next_index.fetch_add(1, Ordering::Relaxed),
            log: Arc::new(SendLog::default()),
            lower: None,
        }
    }

    async fn publish_tracks(&self, tracks: Vec<Publish>) -> anyhow::Result<()> {
        let packets = u64::from(self.video_packets_per_frame.load(Ordering::Relaxed).max(1));
        let frame_bytes = if packets == 1 {
            SMALL_FRAME_BYTES
        } else {
            packets * (MAX_PAYLOAD as u64 - 1)
        };
        let shape = VideoShape {
            bitrate_bps: frame_bytes * 8 * u64::from(VIDEO_FPS),
            fps: VIDEO_FPS,
        };
        self.participant
            .publish(&tracks, shape, KEYFRAME_INTERVAL)
            .await
            .map_err(test_error)?;
        let mut published = self.published.lock().expect("lock");
        for track in tracks {
            published.insert(track.kind, track);
        }
        Ok(())
    }

    /// Stops publishing the track of `kind`, as ion-sdk-js `unpublish` does.
    pub async fn unpublish(&self, kind: Kind) -> anyhow::Result<()> {
        let index = self
            .published
            .lock()
            .expect("lock")
            .remove(&kind)
            .ok_or_else(|| anyhow!("{} publishes no {kind:?} track", self.uid))?
            .index;
        self.participant.unpublish(index).await.map_err(test_error)
    }

    /// Makes each video frame published from now on `packets` full-size RTP packets (about
    /// 1.1 kB each), for a realistic bitrate: 2 packets per frame at 30 fps are ~500 kbit/s.
    pub fn set_video_packets_per_frame(&self, packets: u32) {
        self.video_packets_per_frame
            .store(packets, Ordering::Relaxed);
    }

    /// Packets sent so far on this peer's track of `kind` (0 when it does not publish one).
    pub fn sent(&self, kind: Kind) -> u32 {
        self.published
            .lock()
            .expect("lock")
            .get(&kind)
            .map_or(0, |t| t.log.total() as u32)
    }

    /// Every remote track seen so far, with `ended` also reflecting the latest server offer.
    pub fn remote_tracks(&self) -> Vec<RemoteTrack> {
        let offered = self.participant.offered_tracks();
        let mut numbers = self.numbers.lock().expect("lock");
        let mut sources = self.sources.lock().expect("lock");
        let mut tracks: Vec<RemoteTrack> = self
            .participant
            .tracks()
            .iter()
            .map(|track| {
                let received = track.stats.take();
                let seen = numbers.entry(track.track_id.clone()).or_default();
                seen.extend(received.arrivals.iter().map(|a| a.number));
                let by_source = sources.entry(track.track_id.clone()).or_default();
                for arrival in &received.arrivals {
                    *by_source.entry(arrival.track).or_default() += 1;
                }
                RemoteTrack {
                    track_id: track.track_id.clone(),
                    stream_id: track.stream_id.clone(),
                    kind: track.kind,
                    packets: received.packets,
                    numbers: seen.clone(),
                    sources: by_source.clone(),
                    last_us: received.last_us,
                    ended: track.ended() || offered.get(&track.track_id) == Some(&false),
                }
            })
            .collect();
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

    /// Waits (at most 20 s) until this peer receives flowing audio and video from `uid`.
    pub async fn wait_flowing_from(&self, uid: &str) {
        let what = format!("{} to receive audio and video from {uid}", self.uid);
        super::wait_for(&what, Duration::from_secs(20), || async {
            let tracks = self.tracks_from(uid);
            let flowing = |kind| {
                tracks
                    .iter()
                    .any(|t| t.kind == kind && t.flowing(Duration::from_millis(500)))
            };
            (flowing(Kind::Audio) && flowing(Kind::Video)).then_some(())
        })
        .await;
    }

    /// Stamps received so far on the live video tracks from `stream_id`, by the publisher's
    /// stamp index: with simulcast, which layers arrived and how much of each.
    pub fn video_layers_from(&self, stream_id: &str) -> BTreeMap<u32, u64> {
        let mut layers = BTreeMap::new();
        for track in self.tracks_from(stream_id) {
            if track.kind == Kind::Video {
                for (index, count) in track.sources {
                    *layers.entry(index).or_default() += count;
                }
            }
        }
        layers
    }

    /// Waits until this peer receives layer `only` of `stream_id`'s video and no other: over
    /// one poll interval `only` grew and every other layer stood still.
    pub async fn wait_only_layer(&self, stream_id: &str, only: u32, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut before = self.video_layers_from(stream_id);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.video_layers_from(stream_id);
            let grew = |index: &u32| now.get(index) > before.get(index);
            if grew(&only) && !now.keys().filter(|i| **i != only).any(grew) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} still does not receive only layer {only} of {stream_id}'s video after \
                 {timeout:?}: stamps by layer {before:?} then {now:?}",
                self.uid
            );
            before = now;
        }
    }

    /// Track ids the server's latest subscriber offer sends, and those it stopped.
    pub fn offered_tracks(&self) -> HashMap<String, bool> {
        self.participant.offered_tracks()
    }

    /// Server offers answered so far.
    pub fn renegotiations(&self) -> u32 {
        self.participant.renegotiations()
    }

    /// PLI/FIR received by this peer's publisher PC.
    pub fn keyframe_requests(&self) -> u64 {
        self.participant.keyframe_requests()
    }

    /// Asks for `layer` of the video of `stream_id` over the `ion-sfu` data channel, as
    /// ion-sdk-js `preferLayer` does.
    pub async fn prefer_layer(&self, stream_id: &str, layer: VideoLayer) -> anyhow::Result<()> {
        self.participant
            .prefer_layer(stream_id, layer)
            .await
            .map_err(test_error)
    }

    /// Sends a PLI for the remote video track `track_id`.
    pub async fn send_pli(&self, track_id: &str) -> anyhow::Result<()> {
        self.participant
            .send_pli(track_id)
            .await
            .map_err(test_error)
    }

    /// The publisher PC's connection state, once it has one.
    pub fn publisher_state(&self) -> Option<RTCPeerConnectionState> {
        self.participant.publisher_state()
    }

    /// The subscriber PC's connection state, once it has one.
    pub fn subscriber_state(&self) -> Option<RTCPeerConnectionState> {
        self.participant.subscriber_state()
    }

    /// Fails the test, naming this peer, if it had any background failure or stray JSON-RPC
    /// error.
    #[track_caller]
    pub fn assert_no_problems(&self) {
        let problems = self.problems();
        assert!(problems.is_empty(), "{}: {problems:?}", self.uid);
    }

    /// Background failures and stray JSON-RPC errors so far.
    pub fn problems(&self) -> Vec<String> {
        self.participant.problems()
    }

    /// Why the signaling connection closed, once it has.
    pub fn signal_closed(&self) -> Option<String> {
        self.participant.signal_closed()
    }

    /// Leaves: stops the generators, closes the WebSocket and both PeerConnections.
    pub async fn close(&self) {
        self.participant.close().await;
    }
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
