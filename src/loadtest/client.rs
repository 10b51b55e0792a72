//! The project's one WebRTC participant: two webrtc-rs PeerConnections (publisher and
//! subscriber) that speak ion-sfu JSON-RPC to an agent the way ion-sdk-js 1.8.2 does.
//! `ionctl loadtest` runs hundreds of them; the integration tests' harness
//! (`tests/harness/peer.rs`) wraps one per test participant.
//!
//! - `join` offers a publisher PC carrying only the `ion-sfu` data channel; `publish` adds
//!   tracks and renegotiates with the `offer` call; `unpublish` removes one the same way.
//! - The server's `offer` notifications (the subscriber PC, renegotiations included) are
//!   answered with the `answer` notification, one at a time in arrival order; which tracks
//!   the latest offer still sends is kept (`offered_tracks`). Candidates trickle with
//!   target 0 or 1.
//! - Published media comes from `send.rs` at real rates; PLI/FIR at the publisher PC ask the
//!   track's video generator for a keyframe. Received RTP goes to `stats.rs`, per remote
//!   track with its msid track and stream ids.
//!
//! Loopback-friendly settings: no mDNS and no ICE servers; the PCs bind 127.0.0.1 for a local
//! agent and the unspecified address otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde_json::Value;
use tokio::task::{AbortHandle, JoinHandle};
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::rtp_transceiver::RtpTransceiver;

use super::media::VideoShape;
use super::pc::{self, opus, vp8};
use super::peer::{ClientError, JoinSpec, Publish, webrtc};
use super::send::{self, send_audio, send_video};
use super::signal::{Signal, SignalError};
use super::stats::{Kind, RemoteTrackStats, Window};
use crate::protocol::{
    CandidateInit, DescParams, JoinParams, LayerPreference, SessionDescription, TARGET_PUBLISHER,
    TARGET_SUBSCRIBER, TrickleParams, VideoLayer,
};

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every guarded value here stays valid if a holder panicked: counters and lists.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One track the server sends this participant.
pub struct RemoteTrack {
    /// The msid track id; the agent keeps the publisher's.
    pub track_id: String,
    /// The msid stream id; the agent uses the publisher's uid.
    pub stream_id: String,
    pub kind: Kind,
    /// What arrived on it.
    pub stats: RemoteTrackStats,
    ended: AtomicBool,
    handle: Arc<dyn TrackRemote>,
}

impl RemoteTrack {
    /// webrtc-rs ended the track. A track the server renegotiated away may not be ended
    /// yet: see [`Participant::offered_tracks`].
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }
}

/// A track this participant publishes.
pub(super) struct LocalTrack {
    index: u32,
    transceiver: Arc<dyn RtpTransceiver>,
    /// Its generator and keyframe-request watcher.
    tasks: Vec<AbortHandle>,
}

/// What a participant's tasks and callbacks share.
pub(super) struct Shared {
    window: Arc<Window>,
    tracks: Mutex<Vec<Arc<RemoteTrack>>>,
    /// Track id → whether the server's latest subscriber offer still sends it.
    offered: Mutex<HashMap<String, bool>>,
    /// Server offers answered (the first negotiation counts).
    renegotiations: AtomicU32,
    keyframe_requests: AtomicU64,
    publisher_state: Mutex<Option<RTCPeerConnectionState>>,
    subscriber_state: Mutex<Option<RTCPeerConnectionState>>,
    /// Background failures (a PC that failed, an offer that could not be answered).
    problems: Mutex<Vec<String>>,
    /// The server's `ion-sfu` data channel on the subscriber PC, once it opened it.
    api: Mutex<Option<Arc<dyn DataChannel>>>,
    /// The participant's PCs offer and accept RTX for VP8.
    rtx: bool,
}

impl Shared {
    /// Nothing received yet; media is counted against `window`.
    pub(super) fn new(window: Arc<Window>, rtx: bool) -> Arc<Shared> {
        Arc::new(Shared {
            window,
            rtx,
            tracks: Mutex::default(),
            offered: Mutex::default(),
            renegotiations: AtomicU32::new(0),
            keyframe_requests: AtomicU64::new(0),
            publisher_state: Mutex::default(),
            subscriber_state: Mutex::default(),
            problems: Mutex::default(),
            api: Mutex::default(),
        })
    }

    /// The remote tracks seen so far, in arrival order.
    pub(super) fn tracks(&self) -> Vec<Arc<RemoteTrack>> {
        lock(&self.tracks).clone()
    }

    /// Background failures so far.
    pub(super) fn problems(&self) -> Vec<String> {
        lock(&self.problems).clone()
    }

    pub(super) fn problem(&self, what: String) {
        lock(&self.problems).push(what);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Publisher,
    Subscriber,
}

struct Handler {
    role: Role,
    shared: Arc<Shared>,
    candidates: tokio::sync::mpsc::UnboundedSender<(u8, RTCIceCandidateInit)>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let target = match self.role {
                    Role::Publisher => TARGET_PUBLISHER,
                    Role::Subscriber => TARGET_SUBSCRIBER,
                };
                let _ = self.candidates.send((target, init));
            }
            Err(error) => self.shared.problem(format!("candidate to JSON: {error}")),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let slot = match self.role {
            Role::Publisher => &self.shared.publisher_state,
            Role::Subscriber => &self.shared.subscriber_state,
        };
        *lock(slot) = Some(state);
        if state == RTCPeerConnectionState::Failed {
            self.shared
                .problem(format!("the {:?} PeerConnection failed", self.role));
        }
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        if self.role == Role::Subscriber && channel.label().await.is_ok_and(|l| l == "ion-sfu") {
            *lock(&self.shared.api) = Some(channel);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // The driver awaits this callback; the counting runs in its own task.
        tokio::spawn(receive(self.shared.clone(), track));
    }
}

async fn receive(shared: Arc<Shared>, handle: Arc<dyn TrackRemote>) {
    let kind = match handle.kind().await {
        RtpCodecKind::Audio => Kind::Audio,
        RtpCodecKind::Video => Kind::Video,
        _ => return,
    };
    let track = Arc::new(RemoteTrack {
        track_id: handle.track_id().await.to_string(),
        stream_id: handle.stream_id().await.to_string(),
        kind,
        stats: RemoteTrackStats::new(kind),
        ended: AtomicBool::new(false),
        handle: handle.clone(),
    });
    lock(&shared.tracks).push(track.clone());
    while let Some(event) = handle.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => track.stats.packet(
                &shared.window,
                packet.header.sequence_number,
                packet.header.timestamp,
                packet.header.marker,
                &packet.payload,
            ),
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    track.ended.store(true, Ordering::Relaxed);
}

pub(super) async fn new_pc(
    role: Role,
    shared: &Arc<Shared>,
    candidates: &tokio::sync::mpsc::UnboundedSender<(u8, RTCIceCandidateInit)>,
    bind: std::net::IpAddr,
) -> Result<Arc<dyn PeerConnection>, ClientError> {
    let handler = Arc::new(Handler {
        role,
        shared: shared.clone(),
        candidates: candidates.clone(),
    });
    let rtx = shared.rtx;
    pc::peer_connection(handler, role == Role::Publisher, rtx, bind).await
}

/// One participant of a session.
pub struct Participant {
    pub uid: String,
    signal: Signal,
    publisher: Arc<dyn PeerConnection>,
    subscriber: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    local: Mutex<Vec<LocalTrack>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    timeout: Duration,
}

impl Participant {
    /// Connects and joins; every network wait is bounded by `spec.timeout`. Received media
    /// is counted against `window`.
    pub async fn join(spec: &JoinSpec, window: Arc<Window>) -> Result<Participant, ClientError> {
        let bind = spec.bind;
        let shared = Shared::new(window, spec.rtx);
        // Connect first: an unreachable agent fails before any PC is built.
        let (signal, mut incoming, mut tasks) = Signal::connect(&spec.url, spec.timeout).await?;
        let (candidates_tx, mut candidates_rx) = tokio::sync::mpsc::unbounded_channel();
        let abort = |tasks: &mut Vec<JoinHandle<()>>| tasks.drain(..).for_each(|t| t.abort());
        let pcs = async {
            let publisher = new_pc(Role::Publisher, &shared, &candidates_tx, bind).await?;
            let subscriber = new_pc(Role::Subscriber, &shared, &candidates_tx, bind).await?;
            // ion-sdk-js's join offer carries only its API data channel.
            publisher
                .create_data_channel("ion-sfu", None)
                .await
                .map_err(webrtc("creating the data channel"))?;
            Ok::<_, ClientError>((publisher, subscriber))
        };
        let (publisher, subscriber) = match pcs.await {
            Ok(pcs) => pcs,
            Err(error) => {
                abort(&mut tasks);
                return Err(error);
            }
        };
        {
            // Server offers are answered in order by one task.
            let subscriber = subscriber.clone();
            let signal = signal.clone();
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(sdp) = incoming.offers.recv().await {
                    if let Err(error) = answer_offer(&subscriber, &signal, &shared, sdp).await {
                        shared.problem(format!("answering a subscriber offer: {error}"));
                    }
                }
            }));
        }
        {
            let publisher = publisher.clone();
            let subscriber = subscriber.clone();
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                while let Some((target, candidate)) = incoming.candidates.recv().await {
                    let candidate = match serde_json::from_value::<RTCIceCandidateInit>(candidate) {
                        Ok(candidate) => candidate,
                        Err(error) => {
                            shared.problem(format!("a malformed server candidate: {error}"));
                            continue;
                        }
                    };
                    let pc = if target == TARGET_PUBLISHER {
                        &publisher
                    } else {
                        &subscriber
                    };
                    if let Err(error) = pc.add_ice_candidate(candidate).await {
                        shared.problem(format!("adding a server candidate: {error}"));
                    }
                }
            }));
        }
        let participant = Participant {
            uid: spec.uid.clone(),
            signal: signal.clone(),
            publisher,
            subscriber,
            shared,
            local: Mutex::default(),
            tasks: Mutex::new(tasks),
            timeout: spec.timeout,
        };
        let joined = async {
            let offer = local_offer(
                &participant.publisher,
                "creating the join offer",
                "setting the join offer",
            )
            .await?;
            let params = JoinParams {
                sid: spec.sid.clone(),
                uid: spec.uid.clone(),
                offer: SessionDescription::offer(offer.sdp),
                config: spec.config,
                token: spec.token.clone(),
            };
            // Candidates gathered so far wait in the channel until the join is on its way;
            // the server reads messages in order, so they arrive after it.
            let reply = signal.send_call("join", params)?;
            let trickle = {
                let signal = signal.clone();
                tokio::spawn(async move {
                    while let Some((target, candidate)) = candidates_rx.recv().await {
                        let params = TrickleParams {
                            target,
                            candidate: candidate_init(candidate),
                        };
                        if signal.notify("trickle", params).is_err() {
                            break;
                        }
                    }
                })
            };
            participant.tasks().push(trickle);
            let answer = reply.wait(spec.timeout).await?;
            participant.apply_answer(&answer, "join").await
        };
        match joined.await {
            Ok(()) => Ok(participant),
            Err(error) => {
                participant.close().await;
                Err(error)
            }
        }
    }

    fn tasks(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        lock(&self.tasks)
    }

    /// Adds `tracks` to the publisher PC, renegotiates with the `offer` call, and starts
    /// generating media on them at `shape`, with a video keyframe every `keyframe_interval`
    /// and on PLI/FIR. A track's msid is `<uid>-<kind>-<index>` in stream `<uid>`.
    pub async fn publish(
        &self,
        tracks: &[Publish],
        shape: VideoShape,
        keyframe_interval: Duration,
    ) -> Result<(), ClientError> {
        let added = add_tracks(&self.publisher, &self.uid, tracks).await?;
        self.renegotiate_publisher("publish").await?;
        let (tasks, local) = start_media(&self.shared, added, shape, keyframe_interval).await?;
        self.tasks().extend(tasks);
        lock(&self.local).extend(local);
        Ok(())
    }

    /// Asks for `layer` of the video of `stream_id`, as ion-sdk-js `preferLayer` does: over
    /// the server's `ion-sfu` data channel, waiting for it at most the call timeout.
    pub async fn prefer_layer(
        &self,
        stream_id: &str,
        layer: VideoLayer,
    ) -> Result<(), ClientError> {
        let preference = LayerPreference {
            stream_id: stream_id.to_owned(),
            video: layer,
            audio: true,
            framerate: Some("high".to_owned()),
        };
        let text = serde_json::to_string(&preference).expect("plain data serialises");
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let channel = lock(&self.shared.api).clone();
            // Not there, or not open yet: both pass within a round trip or two.
            if let Some(channel) = channel
                && channel.send_text(&text).await.is_ok()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::NoApiChannel);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops publishing the track published with `index`, as ion-sdk-js `unpublish` does:
    /// its generator stops, its sender is removed and the publisher PC renegotiated with the
    /// `offer` call.
    pub async fn unpublish(&self, index: u32) -> Result<(), ClientError> {
        let track = {
            let mut local = lock(&self.local);
            let at = local
                .iter()
                .position(|t| t.index == index)
                .ok_or(ClientError::NotPublished(index))?;
            local.remove(at)
        };
        for task in &track.tasks {
            task.abort();
        }
        let sender = track
            .transceiver
            .sender()
            .await
            .map_err(webrtc("reading the track's sender"))?
            .ok_or(ClientError::WebRtc {
                what: "removing the track",
                reason: "its transceiver has no sender".to_owned(),
            })?;
        self.publisher
            .remove_track(&sender)
            .await
            .map_err(webrtc("removing the track"))?;
        self.renegotiate_publisher("unpublish").await
    }

    /// Offers the publisher PC's current state with the `offer` call and applies the answer.
    async fn renegotiate_publisher(&self, why: &'static str) -> Result<(), ClientError> {
        let offer = local_offer(
            &self.publisher,
            "creating the publisher's offer",
            "setting the publisher's offer",
        )
        .await?;
        let answer = self
            .signal
            .call(
                "offer",
                DescParams {
                    desc: SessionDescription::offer(offer.sdp),
                },
                self.timeout,
            )
            .await?;
        self.apply_answer(&answer, why).await
    }

    /// Applies the server's answer to the publisher PC's offer of `why` (join, publish...).
    async fn apply_answer(&self, result: &Value, why: &str) -> Result<(), ClientError> {
        let sdp = answer_sdp(result, why)?;
        self.publisher
            .set_remote_description(
                RTCSessionDescription::answer(sdp).map_err(webrtc("parsing the answer"))?,
            )
            .await
            .map_err(webrtc("applying the answer"))
    }

    /// The remote tracks seen so far, in arrival order.
    pub fn tracks(&self) -> Vec<Arc<RemoteTrack>> {
        lock(&self.shared.tracks).clone()
    }

    /// Track ids of the server's latest subscriber offer, each with whether it still sends
    /// it; a track renegotiated away stays in the map as `false`.
    pub fn offered_tracks(&self) -> HashMap<String, bool> {
        lock(&self.shared.offered).clone()
    }

    /// Server offers answered so far (the first negotiation counts).
    pub fn renegotiations(&self) -> u32 {
        self.shared.renegotiations.load(Ordering::Relaxed)
    }

    /// PLI/FIR that arrived at the publisher PC.
    pub fn keyframe_requests(&self) -> u64 {
        self.shared.keyframe_requests.load(Ordering::Relaxed)
    }

    /// Asks the publisher of the remote track `track_id` for a keyframe, with a PLI.
    pub async fn send_pli(&self, track_id: &str) -> Result<(), ClientError> {
        let no_track = || ClientError::NoRemoteTrack(track_id.to_owned());
        let handle = self
            .tracks()
            .into_iter()
            .rev()
            .find(|t| t.track_id == track_id)
            .map(|t| t.handle.clone())
            .ok_or_else(no_track)?;
        let media_ssrc = *handle.ssrcs().await.first().ok_or_else(no_track)?;
        handle
            .write_rtcp(vec![Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            })])
            .await
            .map_err(webrtc("sending a PLI"))
    }

    /// The publisher PC's connection state, once it has one.
    pub fn publisher_state(&self) -> Option<RTCPeerConnectionState> {
        *lock(&self.shared.publisher_state)
    }

    /// The subscriber PC's connection state, once it has one.
    pub fn subscriber_state(&self) -> Option<RTCPeerConnectionState> {
        *lock(&self.shared.subscriber_state)
    }

    /// Background failures and stray JSON-RPC errors so far.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = lock(&self.shared.problems).clone();
        problems.extend(self.signal.problems());
        problems
    }

    /// Why the signaling connection closed, once it has.
    pub fn signal_closed(&self) -> Option<String> {
        self.signal.closed_reason()
    }

    /// Leaves: stops the generators, closes the WebSocket and both PCs (each within 2 s).
    pub async fn close(&self) {
        for task in self.tasks().drain(..) {
            task.abort();
        }
        let bound = Duration::from_secs(2);
        let _ = tokio::time::timeout(bound, self.publisher.close()).await;
        let _ = tokio::time::timeout(bound, self.subscriber.close()).await;
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        for task in self.tasks().drain(..) {
            task.abort();
        }
    }
}

/// A track added to a publisher PC and not sending yet.
pub(super) struct AddedTrack {
    publish: Publish,
    ssrcs: [u32; 2],
    track: Arc<TrackLocalStaticRTP>,
    transceiver: Arc<dyn RtpTransceiver>,
}

/// Adds `tracks` to a publisher PC as sendonly transceivers, not yet negotiated. A track's
/// msid is `<uid>-<kind>-<index>` in stream `<uid>`.
pub(super) async fn add_tracks(
    publisher: &Arc<dyn PeerConnection>,
    uid: &str,
    tracks: &[Publish],
) -> Result<Vec<AddedTrack>, ClientError> {
    let mut added = Vec::new();
    for publish in tracks {
        let ssrc = fastrand::u32(..);
        let (codec, rtp_kind) = match publish.kind {
            Kind::Audio => (opus(), RtpCodecKind::Audio),
            Kind::Video => (vp8(), RtpCodecKind::Video),
        };
        let encoding = |rid: &str, ssrc: u32| RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                rid: rid.to_owned(),
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: codec.clone(),
            ..Default::default()
        };
        let lower_ssrc = fastrand::u32(..);
        let encodings = match &publish.lower {
            Some(_) => vec![
                encoding(send::TOP_RID, ssrc),
                encoding(send::LOWER_RID, lower_ssrc),
            ],
            None => vec![encoding("", ssrc)],
        };
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            uid.to_owned(),
            format!("{uid}-{}-{}", publish.kind, publish.index),
            publish.kind.to_string(),
            rtp_kind,
            encodings,
        )));
        let transceiver = publisher
            .add_transceiver_from_track(
                track.clone() as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: vec![uid.to_owned()],
                    send_encodings: vec![],
                }),
            )
            .await
            .map_err(webrtc("adding a track"))?;
        added.push(AddedTrack {
            publish: publish.clone(),
            ssrcs: [ssrc, lower_ssrc],
            track,
            transceiver,
        });
    }
    Ok(added)
}

/// Starts generating media on tracks negotiated on a publisher PC, at `shape`, with a video
/// keyframe every `keyframe_interval` and on PLI/FIR: the tasks, and each track's handle.
pub(super) async fn start_media(
    shared: &Arc<Shared>,
    added: Vec<AddedTrack>,
    shape: VideoShape,
    keyframe_interval: Duration,
) -> Result<(Vec<JoinHandle<()>>, Vec<LocalTrack>), ClientError> {
    let keyframe_every =
        ((keyframe_interval.as_secs_f64() * f64::from(shape.fps)).round() as u32).max(1);
    let mut tasks = Vec::new();
    let mut local = Vec::new();
    for AddedTrack {
        publish,
        ssrcs: [ssrc, lower_ssrc],
        track,
        transceiver,
    } in added
    {
        let index = publish.index;
        let mut own = Vec::new();
        match publish.kind {
            Kind::Video => {
                // A request for either layer makes both send a keyframe, as an encoder
                // restarting its simulcast streams would.
                let mut wanted = Vec::new();
                let mut layers = vec![(None, ssrc, shape, publish.clone())];
                if let Some(lower) = &publish.lower {
                    let mid = transceiver
                        .mid()
                        .await
                        .map_err(webrtc("reading the track's MID"))?
                        .ok_or(ClientError::WebRtc {
                            what: "publishing simulcast",
                            reason: "the negotiated track has no MID".to_owned(),
                        })?;
                    let layer = |rid| send::Layer {
                        mid: mid.clone(),
                        rid,
                    };
                    layers[0].0 = Some(layer(send::TOP_RID));
                    let lower_publish = Publish {
                        kind: Kind::Video,
                        index: lower.index,
                        log: lower.log.clone(),
                        lower: None,
                    };
                    layers.push((
                        Some(layer(send::LOWER_RID)),
                        lower_ssrc,
                        lower.shape,
                        lower_publish,
                    ));
                }
                for (rid, ssrc, shape, publish) in layers {
                    let keyframe_wanted = Arc::new(AtomicBool::new(false));
                    own.push(tokio::spawn(send_video(
                        track.clone(),
                        ssrc,
                        rid,
                        shape,
                        keyframe_every,
                        publish,
                        keyframe_wanted.clone(),
                    )));
                    wanted.push(keyframe_wanted);
                }
                let shared = shared.clone();
                own.push(tokio::spawn(pc::watch_keyframe_requests(
                    track,
                    move |requests| {
                        shared
                            .keyframe_requests
                            .fetch_add(requests, Ordering::Relaxed);
                        for keyframe_wanted in &wanted {
                            keyframe_wanted.store(true, Ordering::Relaxed);
                        }
                    },
                )));
            }
            Kind::Audio => own.push(tokio::spawn(send_audio(track, ssrc, publish))),
        }
        local.push(LocalTrack {
            index,
            transceiver,
            tasks: own.iter().map(JoinHandle::abort_handle).collect(),
        });
        tasks.extend(own);
    }
    Ok((tasks, local))
}

fn answer_sdp(result: &Value, why: &str) -> Result<String, ClientError> {
    if result["type"] != "answer" {
        return Err(SignalError::Protocol(format!(
            "the {why} result is not a description of type answer: {result}"
        ))
        .into());
    }
    result["sdp"].as_str().map(str::to_owned).ok_or_else(|| {
        SignalError::Protocol(format!("the {why} result has no sdp: {result}")).into()
    })
}

/// Makes an offer on `pc` and applies it as the local description. `creating` and
/// `setting` name the two steps in errors.
pub(super) async fn local_offer(
    pc: &Arc<dyn PeerConnection>,
    creating: &'static str,
    setting: &'static str,
) -> Result<RTCSessionDescription, ClientError> {
    let offer = pc.create_offer(None).await.map_err(webrtc(creating))?;
    pc.set_local_description(offer.clone())
        .await
        .map_err(webrtc(setting))?;
    Ok(offer)
}

/// Applies the server's offer `sdp` to `pc` and makes and applies its answer.
pub(super) async fn answer_remote_offer(
    pc: &Arc<dyn PeerConnection>,
    sdp: String,
) -> Result<RTCSessionDescription, ClientError> {
    pc.set_remote_description(
        RTCSessionDescription::offer(sdp).map_err(webrtc("parsing the server's offer"))?,
    )
    .await
    .map_err(webrtc("setting the server's offer"))?;
    let answer = pc
        .create_answer(None)
        .await
        .map_err(webrtc("creating the answer"))?;
    pc.set_local_description(answer.clone())
        .await
        .map_err(webrtc("setting the answer"))?;
    Ok(answer)
}

async fn answer_offer(
    subscriber: &Arc<dyn PeerConnection>,
    signal: &Signal,
    shared: &Shared,
    sdp: String,
) -> Result<(), ClientError> {
    let sent = sent_tracks(&sdp);
    let answer = answer_remote_offer(subscriber, sdp).await?;
    signal.notify(
        "answer",
        DescParams {
            desc: SessionDescription::answer(answer.sdp),
        },
    )?;
    {
        let mut offered = lock(&shared.offered);
        for live in offered.values_mut() {
            *live = false;
        }
        offered.extend(sent);
    }
    shared.renegotiations.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The msid track ids of an offer's media sections, and whether each is still being sent
/// (a port other than 0 and a sending direction).
pub fn sent_tracks(sdp: &str) -> Vec<(String, bool)> {
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
        for line in lines.map(str::trim_end) {
            if matches!(line, "a=inactive" | "a=recvonly") {
                sending = false;
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

/// A webrtc-rs candidate as ion-sfu's `trickle` carries it.
pub fn candidate_init(candidate: RTCIceCandidateInit) -> CandidateInit {
    CandidateInit {
        candidate: candidate.candidate,
        sdp_mid: candidate.sdp_mid,
        sdp_m_line_index: candidate.sdp_mline_index.map(u32::from),
        username_fragment: candidate.username_fragment,
    }
}

#[cfg(test)]
mod tests {
    use super::sent_tracks;

    #[test]
    fn an_offer_says_which_tracks_it_still_sends() {
        let sdp = "v=0\r\n\
            m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\na=msid:alice alice-audio-0\r\n\
            m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=msid:alice alice-video-1\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=inactive\r\na=msid:bob bob-video-3\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\na=msid:bob bob-video-4\r\n";
        assert_eq!(
            sent_tracks(sdp),
            vec![
                ("alice-audio-0".to_owned(), true),
                ("alice-video-1".to_owned(), false),
                ("bob-video-3".to_owned(), false),
                ("bob-video-4".to_owned(), true),
            ]
        );
    }
}
