//! Fuzzing of what the agent takes from the network (issue 18): SDP offers and answers and
//! trickled candidates as signaling hands them to a media worker, UDP datagrams to a media
//! socket (STUN, DTLS, RTP), the RTP readers of the forwarding path (keyframes, simulcast
//! layer choice, sequence rewriting), the recorder's frame readers, and the STUN client's
//! response parser. The JSON-RPC messages themselves, tokens and etcd records are fuzzed in
//! the library (`src/fuzz_tests.rs`), whose runner and mutators this file shares.
//!
//! Property tests on stable Rust (proptest), not libFuzzer: each asserts that bad input gives
//! an error or is ignored, never a panic, and checks a cheap invariant where there is one.
//! The worker tests drive a real [`Sfu`] (one worker thread on 127.0.0.1) with the same
//! commands signaling sends, and count a worker that stops answering as a failure: a panic
//! there would end every session on it. `scripts/fuzz` runs them for longer.

#[path = "../../src/fuzz_tests/support.rs"]
mod support;

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestCaseResult};

use support::{Bytes, CHEAP, COSTLY, fuzz, mutated_bytes, mutated_lines};

fn fail(why: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(why.into())
}

/// An offer as Chrome sends it to ion-sfu: Opus with RED and DTMF, VP8 and H.264 with RTX in
/// three simulcast layers, and the data channel.
const OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1 2\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS alice\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 110\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:1467250027 1 udp 2122260223 192.168.0.196 46243 typ host generation 0 network-id 1\r\n\
a=candidate:3289912957 1 udp 1686052607 203.0.113.7 46243 typ srflx raddr 192.168.0.196 rport 46243 generation 0 network-id 1\r\n\
a=ice-ufrag:Oyef\r\n\
a=ice-pwd:7uB6VpyHvtHGbxdZDsP0kWbC\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 75:74:5A:A6:A4:E5:52:F4:A7:67:4C:01:C7:EE:91:3F:21:3D:A2:E3:53:7B:6F:30:86:F2:30:AA:65:FB:04:24\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=sendonly\r\n\
a=msid:alice alice-audio\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=ssrc:3735928559 cname:Y2nR8nBVqsGSVd6B\r\n\
a=ssrc:3735928559 msid:alice alice-audio\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Oyef\r\n\
a=ice-pwd:7uB6VpyHvtHGbxdZDsP0kWbC\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 75:74:5A:A6:A4:E5:52:F4:A7:67:4C:01:C7:EE:91:3F:21:3D:A2:E3:53:7B:6F:30:86:F2:30:AA:65:FB:04:24\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=extmap:14 urn:ietf:params:rtp-hdrext:toffset\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:13 urn:3gpp:video-orientation\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n\
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\n\
a=sendonly\r\n\
a=msid:alice alice-video\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 goog-remb\r\n\
a=rtcp-fb:96 transport-cc\r\n\
a=rtcp-fb:96 ccm fir\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\n\
a=rtcp-fb:102 nack pli\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:103 rtx/90000\r\n\
a=fmtp:103 apt=102\r\n\
a=rid:f send\r\n\
a=rid:h send\r\n\
a=rid:q send\r\n\
a=simulcast:send f;h;q\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Oyef\r\n\
a=ice-pwd:7uB6VpyHvtHGbxdZDsP0kWbC\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 75:74:5A:A6:A4:E5:52:F4:A7:67:4C:01:C7:EE:91:3F:21:3D:A2:E3:53:7B:6F:30:86:F2:30:AA:65:FB:04:24\r\n\
a=setup:actpass\r\n\
a=mid:2\r\n\
a=sctp-port:5000\r\n\
a=max-message-size:262144\r\n";

/// Line starts worth inserting into an SDP.
const SDP_LINES: &[&str] = &[
    "a=rid:",
    "a=simulcast:send ",
    "a=simulcast:recv ",
    "a=ssrc:",
    "a=ssrc-group:FID ",
    "a=extmap:",
    "a=fmtp:",
    "a=rtpmap:",
    "a=rtcp-fb:",
    "a=msid:",
    "a=mid:",
    "a=candidate:",
    "a=group:BUNDLE ",
    "a=setup:",
    "a=fingerprint:sha-256 ",
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=ice-lite",
    "a=sctp-port:",
    "a=max-message-size:",
    "a=sendrecv",
    "a=recvonly",
    "a=inactive",
    "a=end-of-candidates",
    "m=video 9 UDP/TLS/RTP/SAVPF ",
    "m=audio 9 UDP/TLS/RTP/SAVPF ",
    "m=application 9 UDP/DTLS/SCTP ",
    "m=video 0 UDP/TLS/RTP/SAVPF 96",
    "c=IN IP4 ",
    "c=IN IP6 ",
    "b=AS:",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "v=",
    "o=",
];

/// Trickled candidates as browsers send them: host, server-reflexive, TCP, mDNS, IPv6.
const CANDIDATES: &[&str] = &[
    "candidate:1467250027 1 udp 2122260223 192.168.0.196 46243 typ host generation 0 ufrag Oyef network-id 1",
    "candidate:3289912957 1 udp 1686052607 203.0.113.7 46243 typ srflx raddr 192.168.0.196 rport 46243 generation 0 ufrag Oyef network-id 1",
    "candidate:4233069003 1 tcp 1518280447 192.168.0.196 9 typ host tcptype active generation 0 ufrag Oyef network-id 1",
    "candidate:2983561038 1 udp 2122262783 2001:db8::1 51200 typ host generation 0 ufrag Oyef network-id 2",
    "candidate:1 1 udp 2113937151 5f1c0a6e-55a1-4f5e-9a8e-0a3c1b2d4e5f.local 54321 typ host generation 0 ufrag Oyef",
    "a=candidate:842163049 1 udp 1677729535 198.51.100.4 3478 typ relay raddr 0.0.0.0 rport 0 generation 0",
];

/// A mutated browser offer: its lines edited, then perhaps its bytes too.
fn offer_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => mutated_lines(OFFER, SDP_LINES),
        2 => mutated_bytes(OFFER.as_bytes().to_vec())
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => mutated_lines(OFFER, SDP_LINES).prop_flat_map(|t| mutated_bytes(t.into_bytes()))
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => any::<String>().prop_map(|s| format!("v=0\r\n{s}")),
    ]
}

fn candidate_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(CANDIDATES)
            .prop_flat_map(|c| mutated_bytes(c.as_bytes().to_vec()))
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        2 => prop::sample::select(CANDIDATES).prop_flat_map(word_replaced),
        1 => support::nasty_string(),
    ]
}

/// A candidate line with one of its words replaced by something odd.
fn word_replaced(line: &'static str) -> impl Strategy<Value = String> {
    let words: Vec<&'static str> = line.split(' ').collect();
    let count = words.len();
    (0..count, support::nasty_string()).prop_map(move |(at, word)| {
        let mut words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        words[at] = word;
        words.join(" ")
    })
}

mod sdp {
    //! SDP as signaling parses it (`connection::parse_offer` is a type check and
    //! `SdpOffer::from_sdp_string`; the relay's origin end parses answers the same way).

    use super::*;
    use str0m::change::{SdpAnswer, SdpOffer};

    /// The seeds are valid, so that their mutations reach past the first check.
    #[test]
    fn the_seeds_parse() {
        SdpOffer::from_sdp_string(OFFER).expect("the seed offer parses");
        for candidate in CANDIDATES {
            let text = candidate.trim_start_matches("a=");
            let parsed = str0m::Candidate::from_sdp_string(text);
            // An mDNS name cannot be resolved here; the worker ignores such candidates.
            assert_eq!(
                parsed.is_ok(),
                !text.contains(".local"),
                "{text}: {parsed:?}"
            );
        }
    }

    /// Parses or is refused; what parses serialises to SDP that parses again.
    #[test]
    fn offers_and_answers_parse_or_are_refused() {
        fuzz("sdp::parse", CHEAP, offer_text(), |text| {
            if let Ok(offer) = SdpOffer::from_sdp_string(&text) {
                let again = offer.to_sdp_string();
                SdpOffer::from_sdp_string(&again)
                    .map_err(|e| fail(format!("{again:?} does not parse again: {e}")))?;
            }
            if let Ok(answer) = SdpAnswer::from_sdp_string(&text) {
                let again = answer.to_sdp_string();
                SdpAnswer::from_sdp_string(&again)
                    .map_err(|e| fail(format!("{again:?} does not parse again: {e}")))?;
            }
            Ok(())
        });
    }

    #[test]
    fn candidates_parse_or_are_refused() {
        fuzz("sdp::candidates", CHEAP, candidate_text(), |text| {
            // What the worker does with a trickled candidate.
            let text = text.trim().trim_start_matches("a=");
            if let Ok(candidate) = str0m::Candidate::from_sdp_string(text) {
                let again = candidate.to_sdp_string();
                let again = again.trim_start_matches("a=");
                str0m::Candidate::from_sdp_string(again)
                    .map_err(|e| fail(format!("{again:?} does not parse again: {e}")))?;
            }
            Ok(())
        });
    }
}

mod worker {
    //! A real media worker, driven with the commands signaling sends it and with datagrams.

    use std::cell::RefCell;
    use std::net::{IpAddr, SocketAddr, UdpSocket};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use str0m::change::{SdpAnswer, SdpOffer};
    use str0m::ice::{StunMessage, TransId};
    use tokio::sync::{mpsc, oneshot, watch};

    use super::*;
    use crate::config::WebrtcConfig;
    use crate::sfu::{
        Command, JoinConfig, LayerPreference, Link, MediaCounters, ParticipantId, PeerEvent, Sfu,
        SfuError, Target, VideoLayer,
    };
    use support::{ByteEdit, apply_byte_edits, byte_edits};

    const SID: &str = "fuzz-room";
    /// How long a reply or a datagram may take before the worker counts as stuck: long,
    /// since the suite shares two cores with builds.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// One media worker thread on 127.0.0.1, as `Sfu::start` runs it in the agent.
    struct Media {
        sfu: Sfu,
        counters: MediaCounters,
        /// Dropping it stops the worker.
        _stop: watch::Sender<bool>,
    }

    impl Media {
        fn start() -> Self {
            crate::crypto::provider().install_process_default();
            let counters = MediaCounters::new(1);
            let (stop, shutdown) = watch::channel(false);
            let localhost = [IpAddr::from([127, 0, 0, 1])];
            let sfu = Sfu::start(&WebrtcConfig::default(), &localhost, &counters, 1, shutdown)
                .expect("a media worker starts on 127.0.0.1");
            Self {
                sfu,
                counters,
                _stop: stop,
            }
        }

        fn worker(&self) -> mpsc::Sender<Command> {
            self.sfu.worker_for(SID)
        }

        /// Sends a command and waits for its reply; `None`: the worker is gone (it panicked)
        /// or stuck (no reply within [`PATIENCE`]).
        fn call<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
            let (reply, mut answer) = oneshot::channel();
            self.worker().blocking_send(command(reply)).ok()?;
            let deadline = Instant::now() + PATIENCE;
            loop {
                match answer.try_recv() {
                    Ok(value) => return Some(value),
                    Err(oneshot::error::TryRecvError::Empty) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Err(_) => return None,
                }
            }
        }

        fn send(&self, command: Command) -> bool {
            self.worker().blocking_send(command).is_ok()
        }

        /// Whether the worker still answers commands, after everything sent before.
        fn alive(&self) -> bool {
            let answer = SdpAnswer::from_sdp_string(&probe_answer()).expect("the probe parses");
            self.call(|reply| Command::Answer {
                participant: ParticipantId(u64::MAX),
                answer,
                reply,
            })
            .is_some()
        }

        /// Joins `offer` as a client's signaling connection does; the participant, the
        /// worker's answer and the participant's events.
        fn join(&self, offer: SdpOffer, config: JoinConfig) -> Option<Joined> {
            self.join_session(SID, "alice", offer, config)
        }

        /// [`Media::join`] into session `sid` as `uid` (the harness has one worker: every
        /// session is on it).
        fn join_session(
            &self,
            sid: &str,
            uid: &str,
            offer: SdpOffer,
            config: JoinConfig,
        ) -> Option<Joined> {
            let participant = self.sfu.new_participant_id();
            let (events, events_rx) = mpsc::unbounded_channel();
            let answer = self.call(|reply| Command::Join {
                participant,
                sid: Arc::from(sid),
                uid: uid.to_owned(),
                offer,
                config,
                link: Link::Client,
                events,
                reply,
            })?;
            Some(Joined {
                participant,
                answer,
                events: events_rx,
            })
        }

        fn leave(&self, participant: ParticipantId) -> bool {
            self.send(Command::Leave { participant })
        }

        fn packets_in(&self) -> u64 {
            self.counters.totals().packets_in
        }

        fn addr(&self) -> SocketAddr {
            self.sfu.media_addrs()[0]
        }
    }

    struct Joined {
        participant: ParticipantId,
        answer: Result<SdpAnswer, SfuError>,
        events: mpsc::UnboundedReceiver<PeerEvent>,
    }

    /// An answer for nobody: the worker refuses it at once, which proves it alive.
    fn probe_answer() -> String {
        OFFER.replace("a=setup:actpass", "a=setup:active")
    }

    /// Runs `case` against the harness's worker; a worker that died is reported with the
    /// input and replaced, so that the next input (and shrinking) meets a live one.
    fn with_media(
        media: &RefCell<Media>,
        case: impl FnOnce(&Media) -> Result<(), TestCaseError>,
    ) -> TestCaseResult {
        let outcome = case(&media.borrow());
        let alive = media.borrow().alive();
        if !alive {
            *media.borrow_mut() = Media::start();
            return Err(fail(
                "the media worker stopped answering on this input (a panic above, or a hang)",
            ));
        }
        outcome
    }

    fn dead() -> TestCaseError {
        fail("the media worker stopped answering (a panic above, or a hang)")
    }

    fn join_config() -> impl Strategy<Value = JoinConfig> {
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(p, s, a)| JoinConfig {
            no_publish: p,
            no_subscribe: s,
            no_auto_subscribe: a,
        })
    }

    fn layer_preference() -> impl Strategy<Value = LayerPreference> {
        const LAYERS: &[VideoLayer] = &[
            VideoLayer::None,
            VideoLayer::Low,
            VideoLayer::Medium,
            VideoLayer::High,
        ];
        let video = prop::sample::select(LAYERS);
        let stream = prop_oneof![Just("alice".to_owned()), support::nasty_string()];
        (
            stream,
            video,
            any::<bool>(),
            prop::option::of(support::nasty_string()),
        )
            .prop_map(|(stream_id, video, audio, framerate)| LayerPreference {
                stream_id,
                video,
                audio,
                framerate,
            })
    }

    #[test]
    fn the_seed_offer_joins() {
        let media = Media::start();
        let offer = SdpOffer::from_sdp_string(OFFER).expect("the seed offer parses");
        let joined = media
            .join(offer, JoinConfig::default())
            .expect("the worker answers");
        let answer = joined.answer.expect("the seed offer is accepted");
        assert!(answer.to_sdp_string().contains("a=ice-lite"));
        assert!(media.alive());
    }

    /// A client's join and re-offer with a mutated offer, and a trickled candidate: the
    /// worker answers each (an answer or an error), an answer it gives parses, and it goes on.
    #[test]
    fn mutated_offers_join_or_are_refused() {
        let media = RefCell::new(Media::start());
        let input = (
            offer_text(),
            join_config(),
            offer_text(),
            candidate_text(),
            any::<bool>(),
        );
        fuzz(
            "worker::offers",
            COSTLY,
            input,
            |(first, config, second, candidate, target)| {
                with_media(&media, |media| {
                    let Ok(offer) = SdpOffer::from_sdp_string(&first) else {
                        return Ok(());
                    };
                    let joined = media.join(offer, config).ok_or_else(dead)?;
                    let participant = joined.participant;
                    if let Ok(answer) = &joined.answer {
                        let text = answer.to_sdp_string();
                        SdpAnswer::from_sdp_string(&text).map_err(|e| {
                            fail(format!("the worker's answer does not parse: {e}"))
                        })?;
                        if let Ok(offer) = SdpOffer::from_sdp_string(&second) {
                            let reoffer = media.call(|reply| Command::Offer {
                                participant,
                                offer,
                                reply,
                            });
                            let _ = reoffer.ok_or_else(dead)?;
                        }
                        let target = if target {
                            Target::Subscriber
                        } else {
                            Target::Publisher
                        };
                        let trickle = Command::Trickle {
                            participant,
                            target,
                            candidate,
                        };
                        if !media.send(trickle) {
                            return Err(dead());
                        }
                    }
                    media.leave(participant);
                    Ok(())
                })
            },
        );
    }

    /// The answer a client gives to the worker's subscriber offer, mutated: applied or
    /// refused, and the worker goes on.
    #[test]
    fn mutated_subscriber_answers_are_applied_or_refused() {
        let media = RefCell::new(Media::start());
        let edits = prop_oneof![
            byte_edits().prop_map(|edits| (edits, None)),
            (byte_edits(), prop::sample::select(SDP_LINES))
                .prop_map(|(edits, line)| (edits, Some(line))),
        ];
        fuzz("worker::answers", COSTLY, edits, |(edits, extra_line)| {
            with_media(&media, |media| {
                let offer = SdpOffer::from_sdp_string(OFFER).expect("the seed offer parses");
                let mut joined = media.join(offer, JoinConfig::default()).ok_or_else(dead)?;
                joined
                    .answer
                    .map_err(|e| fail(format!("the seed offer is refused: {e}")))?;
                let offer = subscriber_offer(&mut joined.events)
                    .ok_or_else(|| fail("no subscriber offer in time"))?;
                let mut text = client_answer(offer).into_bytes();
                if let Some(line) = extra_line {
                    text.extend_from_slice(format!("{line}0\r\n").as_bytes());
                }
                apply_byte_edits(&mut text, &edits);
                let text = String::from_utf8_lossy(&text);
                if let Ok(answer) = SdpAnswer::from_sdp_string(&text) {
                    let participant = joined.participant;
                    let applied = media.call(|reply| Command::Answer {
                        participant,
                        answer,
                        reply,
                    });
                    let _ = applied.ok_or_else(dead)?;
                }
                media.leave(joined.participant);
                Ok(())
            })
        });
    }

    fn subscriber_offer(events: &mut mpsc::UnboundedReceiver<PeerEvent>) -> Option<SdpOffer> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            match events.try_recv() {
                Ok(PeerEvent::SubscriberOffer(offer)) => return Some(offer),
                Ok(_) => {}
                Err(mpsc::error::TryRecvError::Empty) => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
            }
        }
        None
    }

    /// What a browser answers to `offer`: a str0m peer stands in for it.
    fn client_answer(offer: SdpOffer) -> String {
        let mut client = str0m::Rtc::builder().build(Instant::now());
        client
            .sdp_api()
            .accept_offer(offer)
            .expect("a str0m client accepts the worker's offer")
            .to_sdp_string()
    }

    /// Trickles and layer choices of a joined participant, any number and in any order.
    #[test]
    fn trickles_and_layer_choices_are_taken_or_ignored() {
        #[derive(Debug, Clone)]
        enum Op {
            Trickle(bool, String),
            Layer(LayerPreference),
        }
        let op = prop_oneof![
            (any::<bool>(), candidate_text()).prop_map(|(t, c)| Op::Trickle(t, c)),
            layer_preference().prop_map(Op::Layer),
        ];
        let media = RefCell::new(Media::start());
        let input = prop::collection::vec(op, 1..16);
        fuzz("worker::trickle_layers", COSTLY * 2, input, |ops| {
            with_media(&media, |media| {
                let offer = SdpOffer::from_sdp_string(OFFER).expect("the seed offer parses");
                let joined = media.join(offer, JoinConfig::default()).ok_or_else(dead)?;
                let participant = joined.participant;
                for op in ops {
                    let command = match op {
                        Op::Trickle(subscriber, candidate) => Command::Trickle {
                            participant,
                            target: if subscriber {
                                Target::Subscriber
                            } else {
                                Target::Publisher
                            },
                            candidate,
                        },
                        Op::Layer(preference) => Command::PreferLayer {
                            participant,
                            preference,
                        },
                    };
                    if !media.send(command) {
                        return Err(dead());
                    }
                }
                media.leave(participant);
                Ok(())
            })
        });
    }

    /// What a DTLS client says first: a DTLS 1.2 ClientHello record with the extensions
    /// WebRTC uses (use_srtp, groups, signature algorithms, extended master secret).
    fn client_hello() -> Vec<u8> {
        fn ext(kind: u16, body: &[u8]) -> Vec<u8> {
            let mut out = kind.to_be_bytes().to_vec();
            out.extend_from_slice(&(body.len() as u16).to_be_bytes());
            out.extend_from_slice(body);
            out
        }
        let mut extensions = Vec::new();
        extensions.extend(ext(0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]));
        extensions.extend(ext(0x000b, &[1, 0]));
        extensions.extend(ext(0x000d, &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]));
        extensions.extend(ext(0x000e, &[0, 4, 0x00, 0x07, 0x00, 0x01, 0]));
        extensions.extend(ext(0x0017, &[]));
        extensions.extend(ext(0xff01, &[0]));
        let mut hello = vec![0xfe, 0xfd];
        hello.extend((0..32u8).map(|i| i.wrapping_mul(37)));
        hello.push(0); // session id
        hello.push(0); // cookie
        hello.extend_from_slice(&[0, 6, 0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x0a]);
        hello.extend_from_slice(&[1, 0]); // compression: null
        hello.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        hello.extend(extensions);
        let len = hello.len() as u32;
        let mut handshake = vec![1];
        handshake.extend_from_slice(&len.to_be_bytes()[1..]);
        handshake.extend_from_slice(&[0, 0]); // message_seq
        handshake.extend_from_slice(&[0, 0, 0]); // fragment_offset
        handshake.extend_from_slice(&len.to_be_bytes()[1..]);
        handshake.extend(hello);
        let mut record = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0];
        record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
        record.extend(handshake);
        record
    }

    /// One datagram for the media socket.
    #[derive(Debug, Clone)]
    enum Datagram {
        Raw(Bytes),
        /// The client's signed binding request with these edits.
        Stun(Vec<ByteEdit>),
        Dtls(Bytes),
        /// A 12-byte RTP header (version 2) with any fields, and a payload.
        Rtp(Bytes),
        /// An RTCP header (version 2, types 192..=207), a length that may lie, a body.
        Rtcp(u8, u16, Bytes),
    }

    fn datagram() -> impl Strategy<Value = Datagram> {
        let payload = || prop::collection::vec(any::<u8>(), 0..1200);
        prop_oneof![
            2 => prop::collection::vec(any::<u8>(), 0..1500).prop_map(|b| Datagram::Raw(Bytes(b))),
            3 => byte_edits().prop_map(Datagram::Stun),
            3 => mutated_bytes(client_hello()).prop_map(|b| Datagram::Dtls(Bytes(b))),
            1 => (20u8..64, payload()).prop_map(|(first, mut b)| {
                b.insert(0, first);
                Datagram::Dtls(Bytes(b))
            }),
            2 => (any::<[u8; 12]>(), payload()).prop_map(|(mut header, body)| {
                header[0] = 0x80 | (header[0] & 0x3f);
                let mut b = header.to_vec();
                b.extend(body);
                Datagram::Rtp(Bytes(b))
            }),
            1 => (192u8..208, any::<u16>(), payload())
                .prop_map(|(kind, len, body)| Datagram::Rtcp(kind, len, Bytes(body))),
        ]
    }

    /// The client's ICE: a binding request from `client_ufrag` to the agent's `answer`,
    /// signed with the agent's password, nominating this address.
    fn binding_request(answer: &str, client_ufrag: &str) -> Option<Vec<u8>> {
        let value = |prefix: &str| {
            answer
                .lines()
                .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_owned))
        };
        let (ufrag, pwd) = (value("a=ice-ufrag:")?, value("a=ice-pwd:")?);
        let username = format!("{ufrag}:{client_ufrag}");
        let message =
            StunMessage::binding_request(&username, TransId::new(), true, 7, 1_853_824_767, true);
        let provider = str0m::crypto::from_feature_flags();
        let mut buf = vec![0; 1500];
        let len = message
            .to_bytes(Some(pwd.as_bytes()), &mut buf, |key, parts| {
                provider.sha1_hmac_provider.sha1_hmac(key, parts)
            })
            .ok()?;
        buf.truncate(len);
        Some(buf)
    }

    fn wait_for_packets(media: &Media, count: u64) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while media.packets_in() < count {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// The harness reaches past ICE: a signed binding request from the client's socket is
    /// answered, so the fuzzed DTLS and RTP below arrive from a nominated address.
    #[test]
    fn a_signed_binding_request_is_answered() {
        let media = Media::start();
        let offer = SdpOffer::from_sdp_string(OFFER).expect("the seed offer parses");
        let config = JoinConfig {
            no_subscribe: true,
            ..JoinConfig::default()
        };
        let joined = media.join(offer, config).expect("the worker answers");
        let answer = joined
            .answer
            .expect("the seed offer is accepted")
            .to_sdp_string();
        let client = UdpSocket::bind("127.0.0.1:0").expect("a client socket");
        client
            .set_read_timeout(Some(PATIENCE))
            .expect("a read timeout");
        let request = binding_request(&answer, "Oyef").expect("a binding request");
        client.send_to(&request, media.addr()).expect("sent");
        let mut buf = [0u8; 1500];
        let (len, _) = client.recv_from(&mut buf).expect("a binding response");
        let response = StunMessage::parse(&buf[..len]).expect("a STUN message");
        assert!(response.is_successful_binding_response(), "{response:?}");
        // The agent is the DTLS server: the seed ClientHello reaches its DTLS stack, which
        // answers it (a HelloVerifyRequest or ServerHello flight, content type 22).
        assert!(answer.contains("a=setup:passive"), "{answer}");
        client.send_to(&client_hello(), media.addr()).expect("sent");
        let (len, _) = client.recv_from(&mut buf).expect("a DTLS answer");
        assert_eq!(buf[..len].first(), Some(&22), "{:?}", &buf[..len]);
    }

    /// A panic while handling one session ends that session's participants on the worker,
    /// each told to join again; another session on the same worker keeps its participant,
    /// which still answers ICE, and new joins work.
    #[test]
    fn a_panic_in_one_session_ends_that_session_and_spares_the_others() {
        use crate::sfu::containment::{INJECT_PANIC, REASON};
        let media = Media::start();
        let offer = || SdpOffer::from_sdp_string(OFFER).expect("the seed offer parses");
        let config = JoinConfig {
            no_subscribe: true,
            ..JoinConfig::default()
        };
        let join = |sid: &str, uid: &str| {
            media
                .join_session(sid, uid, offer(), config)
                .expect("the worker answers")
        };
        let mut calm = join("calm", "alice");
        let calm_answer = calm.answer.as_ref().expect("accepted").to_sdp_string();
        let mut doomed = join("doomed", "bob");
        assert!(doomed.answer.is_ok());
        assert_eq!(media.counters.totals().sessions, 2);

        let tripped = media.join_session("doomed", INJECT_PANIC, offer(), config);
        assert!(tripped.is_none(), "the panic drops the join's reply");
        assert!(media.alive(), "the worker goes on after the panic");
        let totals = media.counters.totals();
        assert_eq!(totals.panics, 1);
        assert_eq!(
            (totals.sessions, totals.peers),
            (1, 1),
            "only `calm` is left"
        );
        match doomed.events.try_recv() {
            Ok(PeerEvent::Removed(reason)) => assert_eq!(reason, REASON),
            other => panic!("bob should be told to join again, got {other:?}"),
        }
        assert!(
            calm.events.try_recv().is_err(),
            "the other session's participant is not told anything"
        );

        // The surviving participant's ICE is answered: its media path is whole.
        let client = UdpSocket::bind("127.0.0.1:0").expect("a client socket");
        client
            .set_read_timeout(Some(PATIENCE))
            .expect("a read timeout");
        let request = binding_request(&calm_answer, "Oyef").expect("a binding request");
        client.send_to(&request, media.addr()).expect("sent");
        let mut buf = [0u8; 1500];
        let (len, _) = client.recv_from(&mut buf).expect("a binding response");
        let response = StunMessage::parse(&buf[..len]).expect("a STUN message");
        assert!(response.is_successful_binding_response(), "{response:?}");

        // Both sessions take new participants.
        assert!(join("calm", "carol").answer.is_ok());
        assert!(join("doomed", "bob").answer.is_ok());
        let totals = media.counters.totals();
        assert_eq!((totals.sessions, totals.peers), (2, 3));
    }

    /// Datagrams from a client that joined and passed ICE, or from anyone: whatever they
    /// hold, the worker goes on.
    #[test]
    fn datagrams_never_stop_the_worker() {
        let media = RefCell::new(Media::start());
        let client = UdpSocket::bind("127.0.0.1:0").expect("a client socket");
        let input = prop::collection::vec(datagram(), 1..8);
        fuzz("worker::datagrams", COSTLY, input, |datagrams| {
            with_media(&media, |media| {
                let offer = SdpOffer::from_sdp_string(OFFER).expect("the seed offer parses");
                let config = JoinConfig {
                    no_subscribe: true,
                    ..JoinConfig::default()
                };
                let joined = media.join(offer, config).ok_or_else(dead)?;
                let answer = joined
                    .answer
                    .map_err(|e| fail(format!("the seed offer is refused: {e}")))?
                    .to_sdp_string();
                let request = binding_request(&answer, "Oyef")
                    .ok_or_else(|| fail("no binding request for the worker's answer"))?;
                let mut sent = media.packets_in();
                let mut send = |bytes: &[u8]| {
                    if client.send_to(bytes, media.addr()).is_ok() {
                        sent += 1;
                    }
                };
                send(&request);
                for datagram in datagrams {
                    match datagram {
                        Datagram::Raw(b) | Datagram::Dtls(b) | Datagram::Rtp(b) => send(&b.0),
                        Datagram::Stun(edits) => {
                            let mut bytes = request.clone();
                            apply_byte_edits(&mut bytes, &edits);
                            send(&bytes);
                        }
                        Datagram::Rtcp(kind, len, body) => {
                            let mut bytes = vec![0x81, kind];
                            bytes.extend_from_slice(&len.to_be_bytes());
                            bytes.extend(body.0);
                            send(&bytes);
                        }
                    }
                }
                if !wait_for_packets(media, sent) {
                    return Err(fail("the worker did not read the datagrams in time"));
                }
                media.leave(joined.participant);
                Ok(())
            })
        });
    }
}

mod forwarding {
    //! The pure readers of the forwarding path, on payloads and numbers from any publisher.

    use std::time::{Duration, Instant};

    use str0m::format::Codec;

    use super::*;
    use crate::sfu::VideoLayer;
    use crate::sfu::keyframe::starts_keyframe;
    use crate::sfu::layers::{LayerChoice, LayerMeter};
    use crate::sfu::rewrite::Rewriter;

    const CODECS: &[Codec] = &[
        Codec::Opus,
        Codec::PCMU,
        Codec::PCMA,
        Codec::G722,
        Codec::CN,
        Codec::AmrWb,
        Codec::H264,
        Codec::H265,
        Codec::H266,
        Codec::Vp8,
        Codec::Vp9,
        Codec::Av1,
        Codec::Tele,
        Codec::Rtx,
        Codec::Red,
        Codec::Null,
        Codec::Unknown,
    ];

    /// H.264 payloads built the way RFC 6184 packs them, with sizes that may lie.
    fn h264_payload() -> impl Strategy<Value = Vec<u8>> {
        let nal = || prop::collection::vec(any::<u8>(), 0..64);
        prop_oneof![
            // Single NAL unit.
            (1u8..24, nal()).prop_map(|(kind, mut body)| {
                body.insert(0, 0x60 | kind);
                body
            }),
            // STAP-A: (size, NAL) pairs; the size may not match.
            prop::collection::vec((any::<u16>(), 0u8..32, nal()), 0..5).prop_map(|units| {
                let mut out = vec![0x78];
                for (size, kind, body) in units {
                    out.extend_from_slice(&size.to_be_bytes());
                    out.push(0x60 | kind);
                    out.extend(body);
                }
                out
            }),
            // FU-A: any FU header.
            (any::<u8>(), nal()).prop_map(|(fu, body)| {
                let mut out = vec![0x7c, fu];
                out.extend(body);
                out
            }),
        ]
    }

    /// VP8 payloads: a descriptor with any flags and extensions, then any bytes.
    fn vp8_payload() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..16),
        )
            .prop_map(|(first, ext, rest)| {
                let mut out = vec![first | 0x80, ext];
                out.extend(rest);
                out
            })
    }

    #[test]
    fn keyframes_of_any_payload() {
        let input = prop_oneof![
            (
                prop::sample::select(CODECS),
                prop::collection::vec(any::<u8>(), 0..1500)
            ),
            (Just(Codec::H264), h264_payload()),
            (Just(Codec::Vp8), vp8_payload()),
        ]
        .prop_map(|(codec, payload)| (codec, Bytes(payload)));
        fuzz(
            "forwarding::keyframes",
            CHEAP,
            input,
            |(codec, Bytes(payload))| {
                let key = starts_keyframe(codec, &payload);
                match codec {
                    Codec::Vp8 if key => {
                        // RFC 7741: only the start (S=1) of partition 0 (PID=0) starts a frame.
                        prop_assert!(payload.len() >= 2 && payload[0] & 0x17 == 0x10);
                    }
                    Codec::H264 => match payload.first().map(|b| b & 0x1f) {
                        Some(kind @ 1..=23) => {
                            prop_assert_eq!(key, kind == 5 || kind == 7);
                        }
                        Some(28) if key => {
                            prop_assert!(payload.get(1).is_some_and(|fu| fu & 0x80 != 0));
                        }
                        None => {
                            prop_assert!(!key);
                        }
                        _ => {}
                    },
                    Codec::Vp8 => {}
                    _ => {
                        prop_assert!(!key, "{codec:?} never switches layers");
                    }
                }
                Ok(())
            },
        );
    }

    #[derive(Debug, Clone)]
    struct Packet {
        source: u32,
        seq: u64,
        ts: u32,
        clock_rate: u32,
        at_ms: u64,
    }

    /// Packets as a publisher's streams may send them: any source, numbers that jump or go
    /// back, times that go back, any clock.
    fn packets() -> impl Strategy<Value = Vec<Packet>> {
        const CLOCK_RATES: &[u32] = &[0, 1, 8_000, 48_000, 90_000, u32::MAX];
        let step = (
            0u32..3,
            prop_oneof![4 => -3i64..4, 2 => -70_000i64..70_000, 1 => -(1i64 << 33)..(1i64 << 33)],
            any::<u32>(),
            prop::sample::select(CLOCK_RATES),
            -200i64..1_000,
        );
        (0u64..1 << 40, prop::collection::vec(step, 1..64)).prop_map(|(start, steps)| {
            let (mut seq, mut at) = (start as i64, 0i64);
            steps
                .into_iter()
                .map(|(source, delta, ts, clock_rate, dt)| {
                    seq = (seq + delta).clamp(0, (1 << 48) - 1);
                    at = (at + dt).max(0);
                    Packet {
                        source,
                        seq: seq as u64,
                        ts,
                        clock_rate,
                        at_ms: at as u64,
                    }
                })
                .collect()
        })
    }

    /// Whatever arrives, the subscriber's stream starts at rollover 0, keeps the order and
    /// gaps of each run, never reuses a number of an earlier run, continues a new run at
    /// the next number and moves its timestamps forward; only late packets of a run drop.
    #[test]
    fn rewritten_numbers_of_any_arrival() {
        fuzz("forwarding::rewrite", CHEAP, packets(), |packets| {
            let t0 = Instant::now();
            let mut rewriter = Rewriter::default();
            // (source, first number, offset out − in) of the current run.
            let mut run: Option<(u32, u64, u64)> = None;
            // The highest number written, with its timestamp; and before the current run.
            let mut highest: Option<(u64, u32)> = None;
            let mut before_run: Option<u64> = None;
            for p in packets {
                let now = t0 + Duration::from_millis(p.at_ms);
                let out = rewriter.rewrite(p.source, p.seq, p.ts, p.clock_rate, now);
                match run {
                    None => {
                        let out = out.ok_or_else(|| fail("the first packet was dropped"))?;
                        prop_assert_eq!(out.seq_no, p.seq & 0xffff);
                        run = Some((p.source, p.seq, out.seq_no.wrapping_sub(p.seq)));
                    }
                    Some((source, _, _)) if source != p.source => {
                        let out =
                            out.ok_or_else(|| fail("a new run's first packet was dropped"))?;
                        let (last, last_ts) = highest.expect("a run wrote a packet");
                        prop_assert_eq!(out.seq_no, last + 1);
                        let step = out.timestamp.wrapping_sub(last_ts);
                        prop_assert!((1..=u32::MAX / 2).contains(&step), "timestamp step {step}");
                        before_run = Some(last);
                        run = Some((p.source, p.seq, out.seq_no.wrapping_sub(p.seq)));
                    }
                    Some((_, start, offset)) => {
                        if p.seq < start {
                            prop_assert_eq!(out, None, "a packet from before its run");
                            continue;
                        }
                        let out = out.ok_or_else(|| fail("a packet of the run was dropped"))?;
                        prop_assert_eq!(out.seq_no, p.seq.wrapping_add(offset));
                        if let Some(before) = before_run {
                            prop_assert!(out.seq_no > before, "number {} reused", out.seq_no);
                        }
                    }
                }
                let out = out.expect("dropped packets continued above");
                if highest.is_none_or(|(h, _)| out.seq_no > h) {
                    highest = Some((out.seq_no, out.timestamp));
                }
            }
            Ok(())
        });
    }

    /// Layer choice on any traffic: a pick is a layer that was seen, high is what a
    /// subscriber without preference gets, no video reads as low, and a subscriber moves to
    /// another layer only to the one it wants, on its keyframe (or when it had none).
    #[test]
    fn layer_choice_of_any_traffic() {
        let observe = (prop::option::of(0u8..6), 0usize..65_536, 0u64..1_500);
        let choose = (
            prop::option::of(0u8..4),
            prop::option::of(0u8..4),
            any::<bool>(),
        );
        let input = (
            prop::collection::vec(observe, 0..64),
            prop::collection::vec(choose, 0..64),
        );
        fuzz("forwarding::layers", CHEAP, input, |(observed, choices)| {
            let t0 = Instant::now();
            let mut meter = LayerMeter::default();
            let mut seen = Vec::new();
            for (rid, bytes, at_ms) in observed {
                meter.observe(rid, bytes, t0 + Duration::from_millis(at_ms));
                seen.extend(rid);
                for want in [
                    VideoLayer::None,
                    VideoLayer::Low,
                    VideoLayer::Medium,
                    VideoLayer::High,
                ] {
                    if let Some(pick) = meter.pick(want) {
                        prop_assert!(seen.contains(&pick), "picked {pick}, never seen");
                    }
                }
                prop_assert_eq!(meter.preferred(), meter.pick(VideoLayer::High));
                prop_assert_eq!(meter.pick(VideoLayer::None), meter.pick(VideoLayer::Low));
            }
            let mut choice = LayerChoice::default();
            for (rid, wanted, keyframe) in choices {
                let before = choice.current;
                let accepted = choice.accept(rid, wanted, keyframe);
                if rid.is_none() || rid == before {
                    prop_assert!(accepted);
                }
                if choice.current != before {
                    prop_assert!(accepted && rid == wanted && choice.current == rid);
                    prop_assert!(keyframe || before.is_none());
                }
            }
            Ok(())
        });
    }
}

mod recorder {
    //! What the recorder reads from the frames it is sent.

    use super::*;
    use crate::recorder::files::{opus_duration_ms, vp8_size};

    #[test]
    fn opus_durations_of_any_packet() {
        let input = prop::collection::vec(any::<u8>(), 0..8).prop_map(Bytes);
        fuzz("recorder::opus", CHEAP, input, |Bytes(packet)| {
            let duration = opus_duration_ms(&packet);
            let code3_without_count =
                packet.first().is_some_and(|toc| toc & 3 == 3) && packet.len() < 2;
            prop_assert_eq!(duration.is_none(), packet.is_empty() || code3_without_count);
            // At most 63 frames of at most 60 ms (RFC 6716 §3.2.5).
            prop_assert!(duration.is_none_or(|ms| ms <= 63 * 60));
            Ok(())
        });
    }

    #[test]
    fn vp8_sizes_of_any_frame() {
        let keyframe = (
            any::<u8>(),
            any::<[u8; 2]>(),
            any::<u16>(),
            any::<u16>(),
            0usize..8,
        )
            .prop_map(|(tag, size, width, height, extra)| {
                let mut frame = vec![tag & !1, size[0], size[1], 0x9d, 0x01, 0x2a];
                frame.extend_from_slice(&width.to_le_bytes());
                frame.extend_from_slice(&height.to_le_bytes());
                frame.resize(frame.len() + extra, 0);
                frame
            });
        let input =
            prop_oneof![prop::collection::vec(any::<u8>(), 0..16), keyframe].prop_map(Bytes);
        fuzz("recorder::vp8", CHEAP, input, |Bytes(frame)| {
            if let Some((width, height)) = vp8_size(&frame) {
                prop_assert!(frame.len() >= 10 && frame[0] & 1 == 0);
                prop_assert!(width < 1 << 14 && height < 1 << 14);
                let read = |at: usize| u16::from_le_bytes([frame[at], frame[at + 1]]) & 0x3fff;
                prop_assert_eq!((width, height), (read(6), read(8)));
            }
            Ok(())
        });
    }
}

mod stun {
    //! The answer of a STUN server to the agent's public-address query: any datagram that
    //! reaches the socket while it waits.

    use std::net::{IpAddr, SocketAddr};

    use super::*;
    use crate::sfu::stun::parse_binding_response;

    const COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

    /// A Binding success response to `transaction` with a SOFTWARE attribute and the
    /// XOR-MAPPED-ADDRESS of `mapped`.
    fn response(transaction: [u8; 12], mapped: SocketAddr) -> Vec<u8> {
        let mut value = vec![0, if mapped.is_ipv4() { 1 } else { 2 }];
        value.extend_from_slice(&(mapped.port() ^ 0x2112).to_be_bytes());
        let mask: Vec<u8> = COOKIE.iter().chain(transaction.iter()).copied().collect();
        let octets = match mapped.ip() {
            IpAddr::V4(ip) => ip.octets().to_vec(),
            IpAddr::V6(ip) => ip.octets().to_vec(),
        };
        value.extend(octets.iter().zip(&mask).map(|(o, m)| o ^ m));
        let mut body = Vec::new();
        let software = b"fuzz";
        body.extend_from_slice(&[0x80, 0x22, 0, software.len() as u8]);
        body.extend_from_slice(software);
        body.extend_from_slice(&[0x00, 0x20]);
        body.extend_from_slice(&(value.len() as u16).to_be_bytes());
        body.extend(value);
        let mut message = vec![0x01, 0x01];
        message.extend_from_slice(&(body.len() as u16).to_be_bytes());
        message.extend_from_slice(&COOKIE);
        message.extend_from_slice(&transaction);
        message.extend(body);
        message
    }

    #[test]
    fn binding_responses_of_any_shape() {
        let input = (
            any::<[u8; 12]>(),
            any::<(IpAddr, u16)>().prop_map(|(ip, port)| SocketAddr::new(ip, port)),
            prop::option::of(support::byte_edits()),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
        );
        fuzz(
            "stun::responses",
            CHEAP,
            input,
            |(transaction, mapped, edits, raw)| {
                let mut message = response(transaction, mapped);
                if edits.is_none() && raw.is_none() {
                    prop_assert_eq!(parse_binding_response(&message, transaction), Some(mapped));
                }
                if let Some(edits) = edits {
                    support::apply_byte_edits(&mut message, &edits);
                }
                if let Some(raw) = raw {
                    message = raw;
                }
                if parse_binding_response(&message, transaction).is_some() {
                    prop_assert!(message.len() >= 20 && message[..2] == [0x01, 0x01]);
                    prop_assert!(message[4..8] == COOKIE && message[8..20] == transaction);
                }
                Ok(())
            },
        );
    }
}
