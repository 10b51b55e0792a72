//! One load-test participant: two webrtc-rs PeerConnections (publisher and subscriber) that
//! speak ion-sfu JSON-RPC to an agent the way ion-sdk-js 1.8.2 does.
//!
//! - `join` offers a publisher PC carrying only the `ion-sfu` data channel; `publish` adds
//!   tracks and renegotiates with the `offer` call.
//! - The server's `offer` notifications (the subscriber PC) are answered with the `answer`
//!   notification, one at a time in arrival order; candidates trickle with target 0 or 1.
//! - Published media comes from `media.rs` at real rates; PLI/FIR at the publisher PC ask the
//!   video generator for a keyframe. Received RTP goes to `stats.rs`.
//!
//! Loopback-friendly settings: no mDNS and no ICE servers; the PCs bind 127.0.0.1 for a local
//! agent and the unspecified address otherwise.
//!
//! This module belongs to the `ionctl` binary, not to the library: see
//! `super::peer` for why. The library drives it through `Connector` and `Peer`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde_json::Value;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};

use super::media::{
    AUDIO_CLOCK, AUDIO_PPS, VIDEO_CLOCK, VideoShape, now_us, opus_packet, vp8_frame,
};
use super::pc::{self, OPUS_PT, VP8_PT, opus, vp8};
use super::peer::{ClientError, Connector, JoinSpec, Peer, Publish};
use super::signal::{Signal, SignalError};
use super::stats::{Kind, RemoteTrackStats, Window};
use crate::protocol::{
    CandidateInit, DescParams, JoinParams, SessionDescription, TARGET_PUBLISHER, TARGET_SUBSCRIBER,
    TrickleParams,
};

fn webrtc<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> ClientError {
    move |e| ClientError::WebRtc {
        what,
        reason: e.to_string(),
    }
}

/// What a participant's tasks and callbacks share.
struct Shared {
    window: Arc<Window>,
    tracks: Mutex<Vec<Arc<RemoteTrackStats>>>,
    keyframe_wanted: AtomicBool,
    keyframe_requests: AtomicU64,
    /// Background failures (a PC that failed, an offer that could not be answered).
    problems: Mutex<Vec<String>>,
}

impl Shared {
    fn problem(&self, what: String) {
        self.problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(what);
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
                let target = if self.role == Role::Publisher {
                    TARGET_PUBLISHER
                } else {
                    TARGET_SUBSCRIBER
                };
                let _ = self.candidates.send((target, init));
            }
            Err(error) => self.shared.problem(format!("candidate to JSON: {error}")),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Failed {
            self.shared
                .problem(format!("the {:?} PeerConnection failed", self.role));
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // The driver awaits this callback; the counting runs in its own task.
        tokio::spawn(receive(self.shared.clone(), track));
    }
}

async fn receive(shared: Arc<Shared>, track: Arc<dyn TrackRemote>) {
    let kind = match track.kind().await {
        RtpCodecKind::Audio => Kind::Audio,
        RtpCodecKind::Video => Kind::Video,
        _ => return,
    };
    let stats = Arc::new(RemoteTrackStats::new(kind));
    shared
        .tracks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(stats.clone());
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => stats.packet(
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
}

async fn new_pc(
    role: Role,
    shared: &Arc<Shared>,
    candidates: &tokio::sync::mpsc::UnboundedSender<(u8, RTCIceCandidateInit)>,
    bind: &str,
) -> Result<Arc<dyn PeerConnection>, ClientError> {
    let handler = Arc::new(Handler {
        role,
        shared: shared.clone(),
        candidates: candidates.clone(),
    });
    pc::peer_connection(handler, role == Role::Publisher, bind).await
}

/// One participant in the load test.
pub struct Participant {
    pub uid: String,
    signal: Signal,
    publisher: Arc<dyn PeerConnection>,
    subscriber: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    timeout: Duration,
}

impl Participant {
    /// Connects and joins; every network wait is bounded by `spec.timeout`. `bind` is the
    /// local address the PCs use (127.0.0.1 for a local agent).
    pub async fn join(spec: &JoinSpec, window: Arc<Window>) -> Result<Participant, ClientError> {
        let bind = spec.bind;
        let shared = Arc::new(Shared {
            window,
            tracks: Mutex::default(),
            keyframe_wanted: AtomicBool::new(false),
            keyframe_requests: AtomicU64::new(0),
            problems: Mutex::default(),
        });
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
                    if let Err(error) = answer_offer(&subscriber, &signal, sdp).await {
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
                    let pc = if target == 0 { &publisher } else { &subscriber };
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
            tasks: Mutex::new(tasks),
            timeout: spec.timeout,
        };
        let joined = async {
            let offer = participant
                .publisher
                .create_offer(None)
                .await
                .map_err(webrtc("creating the join offer"))?;
            participant
                .publisher
                .set_local_description(offer.clone())
                .await
                .map_err(webrtc("setting the join offer"))?;
            let params = JoinParams {
                sid: spec.sid.clone(),
                uid: spec.uid.clone(),
                offer: SessionDescription::offer(offer.sdp),
                config: None,
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
            let sdp = answer_sdp(&answer, "join")?;
            participant
                .publisher
                .set_remote_description(
                    RTCSessionDescription::answer(sdp).map_err(webrtc("parsing the answer"))?,
                )
                .await
                .map_err(webrtc("applying the join answer"))?;
            Ok::<_, ClientError>(())
        };
        match joined.await {
            Ok(()) => Ok(participant),
            Err(error) => {
                participant.close().await;
                Err(error)
            }
        }
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `tracks` to the publisher PC, renegotiates with the `offer` call, and starts
    /// generating media on them.
    pub async fn publish(
        &self,
        tracks: &[Publish],
        shape: VideoShape,
        keyframe_interval: Duration,
    ) -> Result<(), ClientError> {
        let mut added = Vec::new();
        for publish in tracks {
            let ssrc = fastrand::u32(..);
            let (codec, rtp_kind, label) = match publish.kind {
                Kind::Audio => (opus(), RtpCodecKind::Audio, "audio"),
                Kind::Video => (vp8(), RtpCodecKind::Video, "video"),
            };
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                self.uid.clone(),
                format!("{}-{label}-{}", self.uid, publish.index),
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
            self.publisher
                .add_transceiver_from_track(
                    track.clone() as Arc<dyn TrackLocal>,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        streams: vec![self.uid.clone()],
                        send_encodings: vec![],
                    }),
                )
                .await
                .map_err(webrtc("adding a track"))?;
            added.push((publish.clone(), ssrc, track));
        }
        let offer = self
            .publisher
            .create_offer(None)
            .await
            .map_err(webrtc("creating the publish offer"))?;
        self.publisher
            .set_local_description(offer.clone())
            .await
            .map_err(webrtc("setting the publish offer"))?;
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
        let sdp = answer_sdp(&answer, "offer")?;
        self.publisher
            .set_remote_description(
                RTCSessionDescription::answer(sdp).map_err(webrtc("parsing the answer"))?,
            )
            .await
            .map_err(webrtc("applying the publish answer"))?;
        let keyframe_every =
            ((keyframe_interval.as_secs_f64() * f64::from(shape.fps)).round() as u32).max(1);
        let mut tasks = Vec::new();
        for (publish, ssrc, track) in added {
            match publish.kind {
                Kind::Video => {
                    tasks.push(tokio::spawn(send_video(
                        track.clone(),
                        ssrc,
                        shape,
                        keyframe_every,
                        publish,
                        self.shared.clone(),
                    )));
                    let shared = self.shared.clone();
                    tasks.push(tokio::spawn(pc::watch_keyframe_requests(
                        track,
                        move |requests| shared.keyframe_requested(requests),
                    )));
                }
                Kind::Audio => tasks.push(tokio::spawn(send_audio(track, ssrc, publish))),
            }
        }
        self.tasks().extend(tasks);
        Ok(())
    }

    /// The remote tracks seen so far.
    pub fn tracks(&self) -> Vec<Arc<RemoteTrackStats>> {
        self.shared
            .tracks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Background failures, stray JSON-RPC errors, and why signaling closed if it did.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self
            .shared
            .problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        problems.extend(self.signal.problems());
        if let Some(reason) = self.signal.closed_reason() {
            problems.push(format!("signaling closed: {reason}"));
        }
        problems
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

fn answer_sdp(result: &Value, method: &str) -> Result<String, ClientError> {
    if result["type"] != "answer" {
        return Err(SignalError::Protocol(format!(
            "the {method} result is not a description of type answer: {result}"
        ))
        .into());
    }
    result["sdp"].as_str().map(str::to_owned).ok_or_else(|| {
        SignalError::Protocol(format!("the {method} result has no sdp: {result}")).into()
    })
}

async fn answer_offer(
    subscriber: &Arc<dyn PeerConnection>,
    signal: &Signal,
    sdp: String,
) -> Result<(), ClientError> {
    subscriber
        .set_remote_description(
            RTCSessionDescription::offer(sdp).map_err(webrtc("parsing the server's offer"))?,
        )
        .await
        .map_err(webrtc("setting the server's offer"))?;
    let answer = subscriber
        .create_answer(None)
        .await
        .map_err(webrtc("creating the answer"))?;
    subscriber
        .set_local_description(answer.clone())
        .await
        .map_err(webrtc("setting the answer"))?;
    signal.notify(
        "answer",
        DescParams {
            desc: SessionDescription::answer(answer.sdp),
        },
    )?;
    Ok(())
}

/// VP8 frames at `shape` until aborted; a keyframe every `keyframe_every` frames and on
/// request.
async fn send_video(
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    shape: VideoShape,
    keyframe_every: u32,
    publish: Publish,
    shared: Arc<Shared>,
) {
    let mut ticker =
        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(shape.fps.max(1))));
    // Late ticks are caught up, so a busy load generator still sends at the requested rate.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let step = VIDEO_CLOCK / shape.fps.max(1);
    let mut sequence = fastrand::u16(..);
    let mut timestamp = fastrand::u32(..);
    let mut frame: u32 = 0;
    loop {
        ticker.tick().await;
        let key = frame.is_multiple_of(keyframe_every)
            || shared.keyframe_wanted.swap(false, Ordering::Relaxed);
        let sent_us = now_us();
        let payloads = vp8_frame(
            shape,
            key,
            publish.index,
            publish.log.next_number(),
            sent_us,
        );
        let count = payloads.len();
        let mut first_sent = false;
        for (i, payload) in payloads.into_iter().enumerate() {
            let packet = pc::rtp_packet(VP8_PT, sequence, timestamp, ssrc, i + 1 == count, payload);
            match track.write_rtp(packet).await {
                Ok(()) => {
                    first_sent |= i == 0;
                    sequence = sequence.wrapping_add(1);
                }
                // Fails until negotiation has bound the track: nothing of the frame left.
                Err(_) if i == 0 => break,
                Err(_) => sequence = sequence.wrapping_add(1),
            }
        }
        if first_sent {
            publish.log.record(count, sent_us);
            frame = frame.wrapping_add(1);
            timestamp = timestamp.wrapping_add(step);
        } else if key {
            shared.keyframe_wanted.store(true, Ordering::Relaxed);
        }
    }
}

/// Opus packets at 50/s until aborted.
async fn send_audio(track: Arc<TrackLocalStaticRTP>, ssrc: u32, publish: Publish) {
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / u64::from(AUDIO_PPS)));
    // Late ticks are caught up, so a busy load generator still sends at the requested rate.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let step = AUDIO_CLOCK / AUDIO_PPS;
    let mut sequence = fastrand::u16(..);
    let mut timestamp = fastrand::u32(..);
    loop {
        ticker.tick().await;
        let sent_us = now_us();
        let payload = opus_packet(publish.index, publish.log.next_number(), sent_us);
        if track
            .write_rtp(pc::rtp_packet(
                OPUS_PT, sequence, timestamp, ssrc, false, payload,
            ))
            .await
            .is_ok()
        {
            publish.log.record(1, sent_us);
            sequence = sequence.wrapping_add(1);
            timestamp = timestamp.wrapping_add(step);
        }
    }
}

/// Joins participants with webrtc-rs.
pub struct WebRtcConnector;

#[async_trait::async_trait]
impl Connector for WebRtcConnector {
    async fn join(
        &self,
        spec: &JoinSpec,
        window: Arc<Window>,
    ) -> Result<Box<dyn Peer>, ClientError> {
        Ok(Box::new(Participant::join(spec, window).await?))
    }
}

#[async_trait::async_trait]
impl Peer for Participant {
    fn uid(&self) -> &str {
        &self.uid
    }

    async fn publish(
        &self,
        tracks: &[Publish],
        shape: VideoShape,
        keyframe_interval: Duration,
    ) -> Result<(), ClientError> {
        Participant::publish(self, tracks, shape, keyframe_interval).await
    }

    fn tracks(&self) -> Vec<Arc<RemoteTrackStats>> {
        Participant::tracks(self)
    }

    fn problems(&self) -> Vec<String> {
        Participant::problems(self)
    }

    async fn close(&self) {
        Participant::close(self).await
    }
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
