//! The worker's [`State`] with no sockets: str0m client peers in memory, datagrams carried
//! between them and the state by hand, the clock advanced by the test. Forwarding (a
//! publisher's audio reaching a subscriber, payloads unchanged and in order, on the
//! subscriber's own SSRC), resends (a video packet lost on the way to a subscriber comes
//! back from the resend history, and not without one), a forward that str0m refuses
//! (counted, and the payload type matched afresh), timer handling (RTCP with no input at
//! all) and each subscription's kept stream place (str0m patch 23: learnt, and learnt
//! afresh when stale) are checked here without UDP; tests/media.rs covers forwarding and
//! timers over real sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use str0m::change::{SdpPendingOffer, SendPlace};
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::sync::{mpsc, oneshot};

use super::super::{Command, JoinConfig, PeerEvent};
use super::{Arrival, State, Subscription, TIMER_SLOT, timer_slot};
use crate::sfu::counters::WorkerCounters;
use crate::sfu::participant::{Link, ParticipantId};

/// The worker's announced candidate; nothing is bound to it.
const WORKER: &str = "10.99.0.1:5000";
/// Each step of the test clock.
const TICK: Duration = Duration::from_millis(5);

fn worker_addr() -> SocketAddr {
    WORKER.parse().expect("an address")
}

/// A client's PeerConnection: a str0m `Rtc` in frame mode at its own made-up address.
struct ClientPc {
    rtc: Rtc,
    addr: SocketAddr,
    /// Media payloads received, in order.
    received: Vec<Vec<u8>>,
    connected: bool,
}

impl ClientPc {
    fn new(addr: &str, now: Instant) -> ClientPc {
        let addr: SocketAddr = addr.parse().expect("an address");
        // VP8 comes with RTX, so a lost video packet is NACKed and resent.
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("a host candidate"));
        ClientPc {
            rtc,
            addr,
            received: Vec::new(),
            connected: false,
        }
    }

    /// Hands everything the client sends to the state, and notes what it received.
    fn pump(&mut self, state: &mut State, counters: &WorkerCounters, now: Instant) {
        loop {
            match self.rtc.poll_output().expect("the client polls") {
                Output::Timeout(_) => break,
                Output::Transmit(t) => {
                    let arrival = Arrival {
                        destination: t.destination,
                        now,
                    };
                    state.datagram(&t.contents, t.source, &arrival, counters);
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(data)) => self.received.push(data.data.to_vec()),
                Output::Event(_) => {}
            }
        }
    }

    fn receive(&mut self, source: SocketAddr, contents: &[u8], now: Instant) {
        let contents = DatagramRecv::try_from(contents).expect("a datagram str0m reads");
        self.rtc
            .handle_input(Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: self.addr,
                    contents,
                },
            ))
            .expect("the client takes the datagram");
    }
}

/// One ion-sdk-js-like participant: a publisher PC that offers, a subscriber PC that answers
/// the server's offers, and the events the worker sends it.
struct Client {
    id: ParticipantId,
    publisher: ClientPc,
    subscriber: ClientPc,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    /// The track it publishes, if any.
    track: Option<Mid>,
}

/// The state, its counters, the clients and the clock.
struct World {
    state: State,
    counters: WorkerCounters,
    clients: Vec<Client>,
    now: Instant,
    /// Datagrams the state sent to each client address.
    sent_to: Vec<SocketAddr>,
    /// The next RTP packet the state sends to this address is lost on the way.
    lose_next_rtp_to: Option<SocketAddr>,
}

impl World {
    fn new() -> World {
        World {
            state: State::default(),
            counters: WorkerCounters::default(),
            clients: Vec::new(),
            now: Instant::now(),
            sent_to: Vec::new(),
            lose_next_rtp_to: None,
        }
    }

    /// Joins a participant whose join offer carries one send-only track of the `publish`
    /// kind, or only a data channel.
    fn join(&mut self, n: u8, publish: Option<MediaKind>) -> usize {
        let now = self.now;
        let mut publisher = ClientPc::new(&format!("10.99.0.{}:6000", n + 10), now);
        let subscriber = ClientPc::new(&format!("10.99.0.{}:6001", n + 10), now);
        let mut change = publisher.rtc.sdp_api();
        let track =
            publish.map(|kind| change.add_media(kind, Direction::SendOnly, None, None, None));
        change.add_channel("ion-sfu".to_owned());
        let (offer, pending): (_, SdpPendingOffer) = change.apply().expect("an offer");
        let (events_tx, events) = mpsc::unbounded_channel();
        let (reply, answer) = oneshot::channel();
        let id = ParticipantId(u64::from(n));
        self.state.command(
            Command::Join {
                participant: id,
                sid: Arc::from("session"),
                uid: format!("user-{n}"),
                offer,
                config: JoinConfig::default(),
                link: Link::Client,
                events: events_tx,
                reply,
            },
            now,
            &[worker_addr()],
            &self.counters,
        );
        let answer = answer
            .blocking_recv()
            .expect("the state replies")
            .expect("the join is accepted");
        publisher
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("the client takes the answer");
        self.clients.push(Client {
            id,
            publisher,
            subscriber,
            events,
            track,
        });
        self.clients.len() - 1
    }

    /// One tick: clients send, the state drives, its datagrams reach the clients, server
    /// offers are answered, and every timer due is handled.
    fn step(&mut self) {
        self.now += TICK;
        let now = self.now;
        for client in &mut self.clients {
            for pc in [&mut client.publisher, &mut client.subscriber] {
                pc.rtc
                    .handle_input(Input::Timeout(now))
                    .expect("a client timeout");
                pc.pump(&mut self.state, &self.counters, now);
            }
        }
        self.state.timeouts(now);
        self.drive_and_deliver(now);
        for i in 0..self.clients.len() {
            while let Ok(event) = self.clients[i].events.try_recv() {
                if let PeerEvent::SubscriberOffer(offer) = event {
                    let answer = self.clients[i]
                        .subscriber
                        .rtc
                        .sdp_api()
                        .accept_offer(offer)
                        .expect("the client answers the server's offer");
                    let (reply, done) = oneshot::channel();
                    let participant = self.clients[i].id;
                    self.state.command(
                        Command::Answer {
                            participant,
                            answer,
                            reply,
                        },
                        now,
                        &[worker_addr()],
                        &self.counters,
                    );
                    done.blocking_recv()
                        .expect("the state replies")
                        .expect("the answer is accepted");
                }
            }
        }
        self.drive_and_deliver(now);
    }

    /// Drives the state until it has no work left, delivering each batch it produces.
    fn drive_and_deliver(&mut self, now: Instant) {
        while self.state.drive(&self.counters, now) {
            self.deliver(now);
        }
        self.deliver(now);
    }

    /// Carries the state's outbox to the clients, by destination.
    fn deliver(&mut self, now: Instant) {
        for t in self.state.outbox.take() {
            self.sent_to.push(t.destination);
            if self.lose_next_rtp_to == Some(t.destination) && is_rtp(&t.contents) {
                self.lose_next_rtp_to = None;
                continue;
            }
            let pc = self
                .clients
                .iter_mut()
                .flat_map(|c| [&mut c.publisher, &mut c.subscriber])
                .find(|pc| pc.addr == t.destination)
                .expect("the state sends only to clients' addresses");
            pc.receive(t.source, &t.contents, now);
        }
        assert!(
            self.state.relay_outbox.is_empty(),
            "no relay here, so nothing for a relay socket"
        );
    }

    fn step_until(&mut self, what: &str, limit: Duration, done: impl Fn(&World) -> bool) {
        let deadline = self.now + limit;
        while !done(self) {
            assert!(
                self.now < deadline,
                "{what}: not within {limit:?} of test time"
            );
            self.step();
        }
    }
}

/// The publisher's audio frames (Opus payloads are sent as written), numbered.
fn frame(i: u32) -> Vec<u8> {
    let mut frame = b"opus".to_vec();
    frame.extend_from_slice(&i.to_be_bytes());
    frame
}

fn send_frame(world: &mut World, publisher: usize, i: u32) {
    let now = world.now;
    let client = &mut world.clients[publisher];
    let mid = client.track.expect("a publishing client");
    let writer = client
        .publisher
        .rtc
        .writer(mid)
        .expect("the track's writer");
    let pt = writer
        .payload_params()
        .next()
        .expect("a codec negotiated")
        .pt();
    writer
        .write(pt, now, MediaTime::from_millis(u64::from(i) * 20), frame(i))
        .expect("the frame is written");
}

fn connected(world: &World) -> bool {
    world
        .clients
        .iter()
        .all(|c| c.publisher.connected && c.subscriber.connected)
}

/// Alice publishing a track of `kind` and Bob watching, both connected in `world`: the
/// world, Alice and Bob.
fn a_connected_call(mut world: World, kind: MediaKind) -> (World, usize, usize) {
    let alice = world.join(1, Some(kind));
    let bob = world.join(2, None);
    world.step_until(
        "both clients connect both PCs",
        Duration::from_secs(10),
        connected,
    );
    (world, alice, bob)
}

/// Alice publishing audio and Bob watching, both connected, and `frames` of Alice's audio
/// sent and arrived at Bob: the world, Alice and Bob.
fn a_call_with_media(frames: u32) -> (World, usize, usize) {
    let (mut world, alice, bob) = a_connected_call(World::new(), MediaKind::Audio);
    for i in 0..frames {
        send_frame(&mut world, alice, i);
        world.step();
    }
    world.step_until("the frames reach bob", Duration::from_secs(2), |w| {
        w.clients[bob].subscriber.received.len() >= frames as usize
    });
    (world, alice, bob)
}

#[test]
fn a_publishers_audio_reaches_the_subscriber_in_order_without_sockets() {
    let (world, alice, bob) = a_call_with_media(50);
    let received = &world.clients[bob].subscriber.received;
    let expected: Vec<Vec<u8>> = (0..50).map(frame).collect();
    assert_eq!(received, &expected, "every frame, unchanged and in order");
    assert!(
        world.clients[alice].subscriber.received.is_empty(),
        "a publisher does not receive its own track"
    );
    let bob_sub = world.clients[bob].subscriber.addr;
    assert!(world.sent_to.contains(&bob_sub));
}

#[test]
fn timers_alone_make_the_state_send_rtcp() {
    let (mut world, alice, bob) = a_call_with_media(10);
    // From here no client sends anything: only the clock moves, and what the state sends
    // comes from its timers (sender and receiver reports).
    world.sent_to.clear();
    let start = world.now;
    while world.now < start + Duration::from_secs(5) {
        world.now += TICK;
        let now = world.now;
        world.state.timeouts(now);
        loop {
            let more = world.state.drive(&world.counters, now);
            for t in world.state.outbox.take() {
                world.sent_to.push(t.destination);
            }
            if !more {
                break;
            }
        }
    }
    let to = |pc: SocketAddr| world.sent_to.iter().filter(|&&d| d == pc).count();
    let bob_sub = world.clients[bob].subscriber.addr;
    let alice_pub = world.clients[alice].publisher.addr;
    assert!(
        to(bob_sub) >= 2,
        "sender reports to the subscriber: {}",
        to(bob_sub)
    );
    assert!(
        to(alice_pub) >= 2,
        "receiver reports to the publisher: {}",
        to(alice_pub)
    );
}

#[test]
fn timers_close_together_share_one_wake_up_and_none_fires_early() {
    let epoch = Instant::now();
    let now = epoch + Duration::from_millis(3);
    // Already due, or due within the exact window: at that instant.
    assert_eq!(timer_slot(now, now, epoch), now);
    assert_eq!(timer_slot(epoch, now, epoch), epoch);
    let soon = now + Duration::from_micros(40);
    assert_eq!(timer_slot(soon, now, epoch), soon);
    let a = epoch + Duration::from_millis(11);
    let b = epoch + Duration::from_micros(19_999);
    assert_eq!(timer_slot(a, now, epoch), timer_slot(b, now, epoch));
    assert_eq!(timer_slot(a, now, epoch), epoch + Duration::from_millis(20));
    // On the grid: that instant itself.
    let c = epoch + Duration::from_millis(30);
    assert_eq!(timer_slot(c, now, epoch), c);
    for micros in (4_001..200_000).step_by(997) {
        let at = epoch + Duration::from_micros(micros);
        let wake = timer_slot(at, now, epoch);
        assert!(wake >= at && wake < at + TIMER_SLOT, "{micros} µs");
    }
}

/// RTP rather than RTCP, STUN or DTLS (RFC 7983's first byte, RFC 5761's payload types).
fn is_rtp(datagram: &[u8]) -> bool {
    matches!(datagram, [128..=191, second, ..] if !(192..=223).contains(second))
}

/// Alice publishing video and Bob watching, with the agent's subscriber PeerConnections
/// keeping `resend_history`. One of Alice's frames is lost on its way to Bob, and the next
/// is sent: whether the lost one reaches Bob within 2 s of test time.
fn a_lost_video_packet_reaches_the_subscriber(resend_history: Duration) -> bool {
    let mut world = World::new();
    world.state.resend_history = super::ResendHistory(resend_history);
    let (mut world, alice, bob) = a_connected_call(world, MediaKind::Video);
    let mut i = 0;
    while world.clients[bob].subscriber.received.len() < 3 {
        assert!(i < 200, "bob gets alice's video within 200 frames");
        send_frame(&mut world, alice, i);
        world.step();
        i += 1;
    }
    let (lost, next) = (i, i + 1);
    world.lose_next_rtp_to = Some(world.clients[bob].subscriber.addr);
    send_frame(&mut world, alice, lost);
    world.step();
    assert!(world.lose_next_rtp_to.is_none(), "a packet was lost");
    send_frame(&mut world, alice, next);
    let deadline = world.now + Duration::from_secs(2);
    while world.now < deadline {
        world.step();
        if world.clients[bob]
            .subscriber
            .received
            .contains(&frame(lost))
        {
            return true;
        }
    }
    false
}

#[test]
fn a_subscribers_nack_is_answered_from_the_resend_history_and_not_without_one() {
    assert!(
        a_lost_video_packet_reaches_the_subscriber(Duration::from_secs(1)),
        "resent from a 1 s history"
    );
    assert!(
        !a_lost_video_packet_reaches_the_subscriber(Duration::ZERO),
        "nothing kept, nothing resent"
    );
}

/// Every subscription of every session on the state.
fn subscriptions(state: &mut State) -> impl Iterator<Item = &mut Subscription> {
    state
        .sessions
        .values_mut()
        .flat_map(|s| s.tracks.iter_mut())
        .flat_map(|t| t.subscriptions.iter_mut())
}

#[test]
fn a_forward_that_str0m_refuses_is_counted_and_its_payload_type_matched_afresh() {
    let (mut world, alice, bob) = a_call_with_media(5);
    // As if a renegotiation had taken Bob's m-line away: his subscription names a mid his
    // PeerConnection no longer has, so str0m refuses the write when he is polled.
    for sub in subscriptions(&mut world.state) {
        assert!(
            sub.pt_map.is_some(),
            "the payload type was matched for the frames"
        );
        sub.mid = Mid::from("gone");
    }
    let errors = |world: &World| world.counters.forward_errors.load(Relaxed);
    assert_eq!(errors(&world), 0);

    send_frame(&mut world, alice, 5);
    world.step_until("the frame is refused", Duration::from_secs(2), |w| {
        errors(w) > 0
    });
    assert_eq!(errors(&world), 1, "one frame, one subscriber, one refusal");
    assert_eq!(
        world.clients[bob].subscriber.received.len(),
        5,
        "nothing more reaches Bob"
    );
    for sub in subscriptions(&mut world.state) {
        assert_eq!(sub.pt_map, None, "matched afresh on the next packet");
    }
}

/// Each subscription's kept place (str0m patch 23), and where str0m says the stream is.
fn places(state: &mut State) -> Vec<(SendPlace, SendPlace)> {
    let kept: Vec<(ParticipantId, Mid, SendPlace)> = subscriptions(state)
        .map(|sub| (sub.participant, sub.mid, sub.place))
        .collect();
    kept.into_iter()
        .map(|(id, mid, place)| {
            let pc = state
                .participants
                .get_mut(&id)
                .and_then(|p| p.subscriber.as_mut())
                .expect("the subscriber's PeerConnection");
            (place, pc.rtc.direct_api().send_place(mid, None))
        })
        .collect()
}

#[test]
fn a_subscription_keeps_its_streams_place_and_learns_it_afresh_when_it_is_stale() {
    let (mut world, alice, bob) = a_call_with_media(5);
    let learnt = places(&mut world.state);
    assert_eq!(learnt.len(), 1);
    assert!(
        learnt
            .iter()
            .all(|(kept, now)| kept == now && *kept != SendPlace::UNKNOWN),
        "the fan-out learnt where the stream is: {learnt:?}"
    );

    // As if a renegotiation had moved Bob's stream: the kept place no longer holds.
    for sub in subscriptions(&mut world.state) {
        sub.place = SendPlace::UNKNOWN;
    }
    for i in 5..7 {
        send_frame(&mut world, alice, i);
        world.step_until("the frame reaches Bob", Duration::from_secs(2), |w| {
            w.clients[bob].subscriber.received.len() > i as usize
        });
    }
    let expected: Vec<Vec<u8>> = (0..7).map(frame).collect();
    assert_eq!(
        world.clients[bob].subscriber.received, expected,
        "a stale place costs a lookup, never a frame"
    );
    assert_eq!(
        places(&mut world.state),
        learnt,
        "the first send found the place stale and the next forward learnt it afresh"
    );
}
