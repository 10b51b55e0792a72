//! One relay from a node of the recorded session into the recorder: the recorder dials the
//! node's `GET /relay/v1/ws` as an edge would, but answers its offers with a str0m `Rtc` of
//! its own in frame mode, so it receives whole VP8 and Opus frames instead of forwarding
//! packets. It hands on only frames a decoder can use: a video track's frames are dropped
//! from a loss until the next keyframe, for which it asks (PLI, at most every
//! [`KEYFRAME_RETRY`]). Each frame carries its capture time on the sender's wall clock,
//! from the track's RTCP sender reports (arrival time until the first one), which is what
//! lines audio and video up in the file.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ion_cluster::backoff::Backoff;
use ion_cluster::loadtest::signal::Signal;
use ion_cluster::protocol::{DescParams, SessionDescription};
use ion_cluster::token::{self, JoinSecret};
use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::stopped;
use crate::relay::edge::Origin;

/// How long the recorder waits for a node's WebSocket to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a video track that waits for a keyframe asks again.
const KEYFRAME_RETRY: Duration = Duration::from_millis(500);

/// A participant's track announced or ended, or one frame a file can take.
#[derive(Debug, Clone)]
pub enum Received {
    /// The session's offer has a track of this kind for the participant: its file waits for
    /// the track's first frame (video: its keyframe) before it opens.
    Added {
        stream: String,
        kind: MediaKind,
    },
    Frame(Frame),
    /// A track ended (its publisher left or unpublished).
    Ended {
        stream: String,
        kind: MediaKind,
    },
}

#[derive(Debug, Clone)]
pub struct Frame {
    /// The participant: the msid stream id the origin gives its tracks (its uid).
    pub stream: String,
    pub kind: MediaKind,
    /// When the sender captured it, on the sender's clock.
    pub captured: SystemTime,
    pub keyframe: bool,
    pub data: Arc<[u8]>,
}

/// What one relay needs to know.
pub struct Source {
    pub sid: String,
    /// This recorder node's id: the name the relay is opened under.
    pub recorder: String,
    pub origin: Origin,
    pub secret: JoinSecret,
    /// The address the recorder's media socket binds to, and the one it announces (they
    /// differ behind 1:1 NAT or on a wildcard bind).
    pub bind_ip: IpAddr,
    pub media_ip: IpAddr,
}

/// Keeps a relay from `source` open, redialing with backoff, until `stop` flips.
pub async fn pull(source: Source, frames: mpsc::Sender<Received>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match relay_once(&source, &frames, &mut stop).await {
            Ok(()) => return,
            Err((why, connected)) => {
                if connected {
                    backoff.reset();
                }
                tracing::warn!(sid = %source.sid, node = %source.origin.node, %why, "recording relay ended; dialing again");
            }
        }
        tokio::select! {
            () = stopped(&mut stop) => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// A track as the recorder receives it.
struct Track {
    stream: String,
    kind: MediaKind,
    /// Video: no frame is handed on until a keyframe arrives.
    awaiting_keyframe: bool,
    last_keyframe_request: Option<Instant>,
    clock: TrackClock,
}

/// One relay connection; Ok when stopped, else why it ended and whether it had connected.
async fn relay_once(
    source: &Source,
    frames: &mpsc::Sender<Received>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), (String, bool)> {
    let token = token::issue_relay(
        &source.secret,
        &source.sid,
        &source.origin.node,
        SystemTime::now(),
        crate::relay::TOKEN_TTL,
    );
    let url = crate::relay::relay_url(
        &source.origin.signal_url,
        &source.sid,
        &source.recorder,
        &token,
    )
    .map_err(|why| (why, false))?;
    let (signal, mut incoming, tasks) = Signal::connect(&url, CONNECT_TIMEOUT)
        .await
        .map_err(|e| (e.to_string(), false))?;
    let socket = UdpSocket::bind(SocketAddr::new(source.bind_ip, 0))
        .await
        .map_err(|e| {
            (
                format!("cannot bind a media socket on {}: {e}", source.bind_ip),
                true,
            )
        })?;
    let port = socket
        .local_addr()
        .map_err(|e| (e.to_string(), true))?
        .port();
    let local = SocketAddr::new(source.media_ip, port);
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(Instant::now());
    let candidate = Candidate::host(local, "udp").map_err(|e| (e.to_string(), true))?;
    rtc.add_local_candidate(candidate);
    tracing::info!(sid = %source.sid, node = %source.origin.node, %local, "recording relay connected");

    let mut tracks: HashMap<Mid, Track> = HashMap::new();
    let mut buf = vec![0u8; 2000];
    let result = loop {
        let deadline = match drive(&mut rtc, &socket, &mut tracks, frames).await {
            Ok(deadline) => deadline,
            Err(why) => break Err(why),
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            () = stopped(stop) => break Ok(()),
            received = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = received else { continue };
                let Ok(contents) = buf[..n].try_into() else { continue };
                let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source: from, destination: local, contents });
                if let Err(e) = rtc.handle_input(input) {
                    break Err(format!("media from {from}: {e}"));
                }
            }
            _ = tokio::time::sleep(wait) => {
                if let Err(e) = rtc.handle_input(Input::Timeout(Instant::now())) {
                    break Err(e.to_string());
                }
            }
            offer = incoming.offers.recv() => {
                let Some(sdp) = offer else {
                    break Err(signal.closed_reason().unwrap_or_else(|| "the node closed the relay".to_owned()));
                };
                let answered = SdpOffer::from_sdp_string(&sdp)
                    .map_err(|e| format!("the node's offer is not valid SDP: {e}"))
                    .and_then(|offer| rtc.sdp_api().accept_offer(offer).map_err(|e| format!("answering the node's offer: {e}")))
                    .and_then(|answer| signal
                        .notify("answer", DescParams { desc: SessionDescription::answer(answer.to_sdp_string()) })
                        .map_err(|e| e.to_string()));
                if let Err(why) = answered {
                    break Err(why);
                }
            }
        }
    };
    for task in tasks {
        task.abort();
    }
    for track in tracks.into_values() {
        let ended = Received::Ended {
            stream: track.stream,
            kind: track.kind,
        };
        let _ = frames.send(ended).await;
    }
    result.map_err(|why| (why, true))
}

/// Sends what the `Rtc` wants sent and hands on its events until it next wants time.
async fn drive(
    rtc: &mut Rtc,
    socket: &UdpSocket,
    tracks: &mut HashMap<Mid, Track>,
    frames: &mpsc::Sender<Received>,
) -> Result<Instant, String> {
    loop {
        match rtc.poll_output().map_err(|e| e.to_string())? {
            Output::Timeout(at) => return Ok(at),
            Output::Transmit(t) => {
                let _ = socket.send_to(&t.contents, t.destination).await;
            }
            Output::Event(event) => match event {
                Event::MediaAdded(added) => {
                    let stream = rtc
                        .media(added.mid)
                        .map(|m| m.stream_id().to_owned())
                        .unwrap_or_default();
                    tracks.insert(
                        added.mid,
                        Track {
                            stream: stream.clone(),
                            kind: added.kind,
                            awaiting_keyframe: added.kind == MediaKind::Video,
                            last_keyframe_request: None,
                            clock: TrackClock::default(),
                        },
                    );
                    let announced = Received::Added {
                        stream,
                        kind: added.kind,
                    };
                    if frames.send(announced).await.is_err() {
                        return Err("the recording stopped".to_owned());
                    }
                }
                Event::MediaData(data) => {
                    if let Some(frame) = admit(rtc, tracks, data) {
                        // The writer is behind: wait for it rather than drop a frame.
                        if frames.send(Received::Frame(frame)).await.is_err() {
                            return Err("the recording stopped".to_owned());
                        }
                    }
                }
                Event::StreamPaused(_) | Event::MediaChanged(_) => {}
                Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                    return Err("ICE disconnected".to_owned());
                }
                _ => {}
            },
        }
    }
}

/// The frame a file can take from `data`, if any; asks for a keyframe when video needs one.
fn admit(rtc: &mut Rtc, tracks: &mut HashMap<Mid, Track>, data: MediaData) -> Option<Frame> {
    let track = tracks.get_mut(&data.mid)?;
    let keyframe = data.is_keyframe();
    if track.kind == MediaKind::Video {
        if !data.contiguous && !keyframe {
            track.awaiting_keyframe = true;
        }
        if keyframe {
            track.awaiting_keyframe = false;
        }
        if track.awaiting_keyframe {
            let due = track
                .last_keyframe_request
                .is_none_or(|at| at.elapsed() >= KEYFRAME_RETRY);
            if due && let Some(mut writer) = rtc.writer(data.mid) {
                let _ = writer.request_keyframe(data.rid, KeyframeRequestKind::Pli);
                track.last_keyframe_request = Some(Instant::now());
            }
            return None;
        }
    }
    Some(Frame {
        stream: track.stream.clone(),
        kind: track.kind,
        captured: track.clock.captured(&data),
        keyframe: keyframe || track.kind == MediaKind::Audio,
        data: data.data,
    })
}

/// When a track's frames were captured, on the sender's clock. Each frame's time is its
/// RTP time from one anchor, so a track's timestamps are as even as its RTP clock: each
/// sender report says where the anchor should be, and the track moves it only when the
/// report disagrees by more than [`REANCHOR`] (the first report after arrival times stood
/// in, a sender that jumps), not on every report's few milliseconds of jitter.
#[derive(Debug, Default)]
struct TrackClock {
    /// An RTP time (as str0m extends it) and its wall-clock time.
    anchor: Option<(u64, SystemTime)>,
    /// The anchor came from a sender report, not an arrival time.
    reported: bool,
}

/// How far a sender report may disagree with a track's anchor before the anchor moves.
const REANCHOR: Duration = Duration::from_millis(40);
/// How far from its arrival a report may put a frame before the report is disbelieved.
const IMPLAUSIBLE: Duration = Duration::from_secs(5);

impl TrackClock {
    fn captured(&mut self, data: &MediaData) -> SystemTime {
        let rate = data.time.denom();
        let rtp = data.time.numer();
        let reported = data
            .last_sender_info
            .as_ref()
            .map(|report| on_sender_clock(rtp, rate, report.rtp_time.numer(), report.ntp_time));
        let arrived = SystemTime::now() - data.network_time.elapsed();
        self.at(rtp, rate, reported, arrived)
    }

    /// The time of RTP time `rtp` at `rate` Hz, given where the latest sender report puts
    /// it (if any) and when it arrived.
    fn at(
        &mut self,
        rtp: u64,
        rate: u32,
        reported: Option<SystemTime>,
        arrived: SystemTime,
    ) -> SystemTime {
        // A report that puts the frame far from when it arrived describes another moment
        // (a stream's first report, sent before its first packet, maps RTP time 0): the
        // sender and this node share NTP time, so only a few ms of transit lie between.
        let reported = reported.filter(|at| {
            let apart = match at.duration_since(arrived) {
                Ok(later) => later,
                Err(earlier) => earlier.duration(),
            };
            apart <= IMPLAUSIBLE
        });
        let Some((anchor_rtp, anchor_at)) = self.anchor else {
            let at = reported.unwrap_or(arrived);
            self.anchor = Some((rtp, at));
            self.reported = reported.is_some();
            return at;
        };
        let ticks = rtp as i128 - anchor_rtp as i128;
        let offset = Duration::from_secs_f64(ticks.unsigned_abs() as f64 / f64::from(rate.max(1)));
        let mapped = if ticks >= 0 {
            anchor_at + offset
        } else {
            anchor_at - offset
        };
        if let Some(reported) = reported {
            let apart = match reported.duration_since(mapped) {
                Ok(later) => later,
                Err(earlier) => earlier.duration(),
            };
            if !self.reported || apart > REANCHOR {
                self.anchor = Some((rtp, reported));
                self.reported = true;
                return reported;
            }
        }
        mapped
    }
}

/// The wall-clock time of RTP time `rtp` (at `rate` Hz), given a sender report that put
/// `report_rtp` at `report_ntp`. In 32-bit RTP arithmetic: the report's timestamp and the
/// frame's may be extended to 64 bits differently, but they are close in time.
fn on_sender_clock(rtp: u64, rate: u32, report_rtp: u64, report_ntp: SystemTime) -> SystemTime {
    let ticks = (rtp as u32).wrapping_sub(report_rtp as u32) as i32;
    let offset = Duration::from_secs_f64(f64::from(ticks).abs() / f64::from(rate.max(1)));
    if ticks >= 0 {
        report_ntp + offset
    } else {
        report_ntp - offset
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::{TrackClock, on_sender_clock};

    #[test]
    fn a_tracks_clock_follows_rtp_and_moves_only_for_a_real_disagreement() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let ms = Duration::from_millis;
        let mut clock = TrackClock::default();
        // Before any report, the first arrival anchors it, and RTP time counts from there:
        // late arrivals do not move it.
        assert_eq!(clock.at(48_000, 48_000, None, t0), t0);
        assert_eq!(clock.at(48_960, 48_000, None, t0 + ms(90)), t0 + ms(20));
        // The first report takes over, even a few ms away.
        assert_eq!(
            clock.at(49_920, 48_000, Some(t0 + ms(35)), t0 + ms(60)),
            t0 + ms(35)
        );
        // A later report's jitter within 40 ms leaves the anchor: frames stay 20 ms apart.
        assert_eq!(
            clock.at(50_880, 48_000, Some(t0 + ms(75)), t0 + ms(80)),
            t0 + ms(55)
        );
        // A report 100 ms off is a jump of the sender's clock: the anchor follows it.
        assert_eq!(
            clock.at(51_840, 48_000, Some(t0 + ms(175)), t0 + ms(100)),
            t0 + ms(175)
        );
        assert_eq!(clock.at(52_800, 48_000, None, t0), t0 + ms(195));
        // A report that would put a frame hours from its arrival is not believed.
        let hours = t0 + Duration::from_secs(40_000);
        assert_eq!(
            clock.at(53_760, 48_000, Some(hours), t0 + ms(215)),
            t0 + ms(215)
        );
    }

    #[test]
    fn rtp_time_maps_onto_the_sender_reports_clock() {
        let ntp = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        // 90 kHz video, 1 s after the report.
        assert_eq!(
            on_sender_clock(190_000, 90_000, 100_000, ntp),
            ntp + Duration::from_secs(1)
        );
        // 48 kHz audio, 20 ms before it.
        assert_eq!(
            on_sender_clock(99_040, 48_000, 100_000, ntp),
            ntp - Duration::from_millis(20)
        );
        // Across the 32-bit wrap, extended differently: 91 ticks after.
        let after = on_sender_clock((1u64 << 32) + 80, 90_000, u64::from(u32::MAX - 10), ntp);
        assert_eq!(after.duration_since(ntp).unwrap().as_micros(), 1011);
    }
}
