//! One media worker: a thread with its own current-thread runtime, one UDP socket, and every
//! session sharded to it. After any input it polls the touched PeerConnections until they
//! return a timeout, and passes effects between participants as data (`Effect`), applied one
//! at a time. Nothing here awaits etcd or takes a lock; per-peer failures remove that peer
//! and the loop goes on.
//!
//! The worker's [`State`] does no I/O, as str0m does none: datagrams, commands and the clock
//! come in as calls, and what the peers send waits in its outboxes until the loop
//! ([`Worker::event_loop`]) flushes them to the sockets after each step. So forwarding,
//! rewriting and timers are tested without UDP (`worker_tests.rs`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use str0m::change::{RtpSend, SendPlace};
use str0m::media::{KeyframeRequest, KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::net::{DatagramRecv, Protocol, Receive, Transmit};
use str0m::rtp::RtpPacket;
use str0m::{Candidate, Event, IceConnectionState, Input, Output};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::containment::{self, InHand};
use super::counters::WorkerCounters;
use super::forwarded::{Forwarded, MediaExtensions};
use super::keyframe::starts_keyframe;
use super::participant::{Link, OutState, Participant, ParticipantId, Pc, ResendHistory, Role};
use super::relay_socket::{self, RecvAny, RelaySocket};
use super::send_batch::SendBatch;
use super::session::{Session, Subscription, TrackId, TrackIn};
use super::{Command, LayerPreference, PeerEvent, SfuError, Target, VideoLayer};

/// Keyframe requests to one publisher track are sent at most this often.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// The layers a subscriber can want, in [`layer_index`] order.
const LAYERS: [VideoLayer; 3] = [VideoLayer::Low, VideoLayer::Medium, VideoLayer::High];
/// The loop wakes at least this often to expire dead participants.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// Timers due within one such slot of each other are handled in one wake-up: a viewer's
/// PeerConnections each keep their own RTCP, DTLS and SCTP timers, and with hundreds of
/// viewers waking for each one separately cost more than the work the timers do. RTCP and
/// keep-alives do not mind 10 ms.
const TIMER_SLOT: Duration = Duration::from_millis(10);
/// A timer this close is not moved to its slot: str0m asks for one a few microseconds ahead
/// to release queued packets, and media must not wait for the slot.
const TIMER_EXACT_WITHIN: Duration = Duration::from_millis(1);
/// Datagrams read in one go before the loop polls its peers again.
const READ_BATCH: usize = 64;
/// Timeouts already due that one poll handles at once before leaving the rest to the
/// timer; a bound, so a peer that keeps asking for "now" cannot hold the loop.
const MAX_DUE_TIMEOUTS: usize = 4;

/// Effects passed between participants of a session.
// A packet is large, but boxing it would allocate once per packet on the hot path.
#[allow(clippy::large_enum_variant)]
enum Effect {
    TrackPublished {
        origin: ParticipantId,
        sid: Arc<str>,
        mid: Mid,
        kind: MediaKind,
    },
    /// The publisher stopped sending on `mid` (ion-sdk-js `unpublish`: its re-offer turns the
    /// m-line inactive).
    TrackUnpublished {
        origin: ParticipantId,
        sid: Arc<str>,
        mid: Mid,
    },
    Media {
        origin: ParticipantId,
        sid: Arc<str>,
        /// The publisher's m-line and simulcast layer the packet came on.
        mid: Mid,
        rid: Option<Rid>,
        packet: RtpPacket,
    },
    KeyframeRequest {
        subscriber: ParticipantId,
        request: KeyframeRequest,
    },
    /// A subscriber's layer choice from its `ion-sfu` data channel.
    LayerPreference {
        subscriber: ParticipantId,
        preference: LayerPreference,
    },
}

pub struct Worker {
    index: usize,
    socket: Option<std::net::UdpSocket>,
    candidates: Vec<SocketAddr>,
    commands: mpsc::Receiver<Command>,
    counters: Arc<WorkerCounters>,
    shutdown: watch::Receiver<bool>,
    state: State,
}

/// Participants by id. The ids are the worker's own counter, so the fast non-keyed hash is
/// safe here; SipHash on these lookups, several per subscriber and forwarded packet, cost 2%.
type Participants = FxHashMap<ParticipantId, Participant>;

#[derive(Default)]
struct State {
    participants: Participants,
    sessions: HashMap<Arc<str>, Session>,
    /// Remote address → the PeerConnection that accepted it, so a datagram finds its peer
    /// without asking every `Rtc`.
    routes: HashMap<SocketAddr, (ParticipantId, Role)>,
    /// PeerConnections with input since their last poll.
    dirty: Vec<(ParticipantId, Role)>,
    effects: VecDeque<Effect>,
    /// Datagrams produced by this round's polls, sent by the loop when the round ends or a
    /// batch fills.
    outbox: SendBatch,
    /// Datagrams of edge ends of relays, each for its own socket.
    relay_outbox: Vec<(Arc<UdpSocket>, Transmit)>,
    /// What every PeerConnection made here keeps for resends.
    resend_history: ResendHistory,
    next_track: u64,
    /// When each PeerConnection wants its next timeout, earliest first, so a wake-up costs
    /// O(log n) rather than a scan of every peer (400 PeerConnections at 200 viewers, and
    /// the loop wakes thousands of times a second). Every change of a `Pc::timeout` pushes
    /// an entry; an entry whose time no longer matches its PeerConnection's is stale and
    /// skipped when it comes up.
    timers: BinaryHeap<Reverse<(Instant, ParticipantId, Role)>>,
    /// A participant failed this round: remove it now rather than at the next housekeeping.
    reap_soon: bool,
    /// Forwarded packets that str0m refused when their subscriber was polled (no stream
    /// for the mid any more, or a payload type it no longer has), which `drive` counts as
    /// forward errors.
    refused_forwards: u64,
    /// The sockets of this worker's edge ends of relays.
    relay_sockets: Vec<RelaySocket>,
    /// The IP the worker's socket is bound to; relay sockets bind it too.
    bind_ip: Option<std::net::IpAddr>,
    next_housekeeping: Option<Instant>,
    /// Whose input is being handled, for [`State::contain_panic`].
    in_hand: InHand,
}

enum Wake {
    Shutdown,
    Command(Option<Command>),
    Datagram(std::io::Result<(usize, SocketAddr)>),
    /// A datagram on the socket of an edge's end of a relay (the participant), sent to the
    /// address it announces.
    RelayDatagram(
        ParticipantId,
        SocketAddr,
        std::io::Result<(usize, SocketAddr)>,
    ),
    Timer,
}

impl Worker {
    pub fn new(
        index: usize,
        socket: std::net::UdpSocket,
        candidates: Vec<SocketAddr>,
        resend_history: ResendHistory,
        commands: mpsc::Receiver<Command>,
        counters: Arc<WorkerCounters>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            index,
            socket: Some(socket),
            candidates,
            commands,
            counters,
            shutdown,
            state: State {
                resend_history,
                ..State::default()
            },
        }
    }

    /// The thread body.
    pub fn run(self) {
        let index = self.index;
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(self.event_loop()),
            Err(error) => tracing::error!(worker = index, %error, "cannot start a media worker"),
        }
    }

    async fn event_loop(mut self) {
        let socket = match self.socket.take().map(UdpSocket::from_std) {
            Some(Ok(socket)) => socket,
            Some(Err(error)) => {
                tracing::error!(worker = self.index, %error, "cannot register the media socket");
                return;
            }
            None => return,
        };
        // Incoming datagrams are matched against this address; with 1:1 NAT it is the public
        // candidate, not the socket's private address.
        let destination = self
            .candidates
            .first()
            .copied()
            .unwrap_or_else(|| socket.local_addr().expect("a bound socket has an address"));
        tracing::info!(worker = self.index, addr = %destination, "media worker started");
        self.state.bind_ip = socket.local_addr().ok().map(|a| a.ip());
        let mut buf = vec![0u8; 2048];
        let mut relay_buf = vec![0u8; 2048];
        let counters = self.counters.clone();
        let counters = counters.as_ref();
        let epoch = Instant::now();
        loop {
            let now = Instant::now();
            let mut more = true;
            while more {
                more = false;
                self.state.step(counters, |s| more = s.drive(counters, now));
                self.state.flush(&socket, counters);
            }
            self.state.step(counters, |s| s.housekeeping(now, counters));
            let next = timer_slot(self.state.next_timeout(now + HOUSEKEEPING), now, epoch);
            let wake = tokio::select! {
                _ = self.shutdown.changed() => Wake::Shutdown,
                command = self.commands.recv() => Wake::Command(command),
                received = socket.recv_from(&mut buf) => Wake::Datagram(received),
                (relay, local, received) = RecvAny { sockets: &self.state.relay_sockets, buf: &mut relay_buf } => {
                    Wake::RelayDatagram(relay, local, received)
                }
                () = tokio::time::sleep_until(next.into()) => Wake::Timer,
            };
            let now = Instant::now();
            match wake {
                Wake::Shutdown | Wake::Command(None) => break,
                Wake::Command(Some(command)) => {
                    let candidates = &self.candidates;
                    self.state
                        .step(counters, |s| s.command(command, now, candidates, counters));
                }
                Wake::Datagram(Ok((len, source))) => {
                    let arrival = Arrival { destination, now };
                    let buf = &mut buf;
                    self.state.step(counters, |s| {
                        s.datagram(&buf[..len], source, &arrival, counters);
                        for _ in 0..READ_BATCH {
                            match socket.try_recv_from(buf) {
                                Ok((len, source)) => {
                                    s.datagram(&buf[..len], source, &arrival, counters)
                                }
                                Err(_) => break,
                            }
                        }
                    });
                }
                // ICMP errors (a peer's port closed) surface here on Linux; they concern one
                // peer, whose ICE will time out, never the socket.
                Wake::Datagram(Err(error)) => {
                    tracing::debug!(worker = self.index, %error, "media socket receive error");
                }
                Wake::RelayDatagram(relay, local, Ok((len, source))) => {
                    let arrival = Arrival {
                        destination: local,
                        now,
                    };
                    let data = &relay_buf[..len];
                    self.state.step(counters, |s| {
                        s.relay_datagram(relay, data, source, &arrival, counters)
                    });
                }
                Wake::RelayDatagram(_, _, Err(error)) => {
                    tracing::debug!(worker = self.index, %error, "relay socket receive error");
                }
                Wake::Timer => self.state.step(counters, |s| s.timeouts(now)),
            }
        }
        let ids: Vec<ParticipantId> = self.state.participants.keys().copied().collect();
        for id in ids {
            self.state.step(counters, |s| {
                s.remove(id, Some("the agent is shutting down"), counters)
            });
        }
        tracing::info!(worker = self.index, "media worker stopped");
    }
}

/// When the loop wakes for a timer due at `at`: the end of its [`TIMER_SLOT`] on a grid from
/// `epoch`, so that timers close together share one wake-up; at `at` itself if it is due
/// within [`TIMER_EXACT_WITHIN`].
fn timer_slot(at: Instant, now: Instant, epoch: Instant) -> Instant {
    if at <= now + TIMER_EXACT_WITHIN {
        return at;
    }
    let slot = TIMER_SLOT.as_nanos();
    let slots = at
        .saturating_duration_since(epoch)
        .as_nanos()
        .div_ceil(slot);
    epoch + Duration::from_nanos(u64::try_from(slots * slot).unwrap_or(u64::MAX))
}

/// Where and when a batch of datagrams arrived.
struct Arrival {
    /// The address they were sent to (the announced candidate).
    destination: SocketAddr,
    now: Instant,
}

impl State {
    /// Runs one step of the loop; a panic in it ends only the session it is charged to.
    fn step(&mut self, counters: &WorkerCounters, step: impl FnOnce(&mut State)) {
        self.in_hand = InHand::Nothing;
        if let Err(panic) = containment::contain(|| step(self)) {
            self.contain_panic(&panic, counters);
        }
        self.in_hand = InHand::Nothing;
    }

    /// After a panic: every participant on this worker of the session whose input was in hand
    /// is removed and told to join again; the other sessions keep their state and media.
    fn contain_panic(&mut self, panic: &str, counters: &WorkerCounters) {
        counters.panics.fetch_add(1, Relaxed);
        let sid = match std::mem::take(&mut self.in_hand) {
            InHand::Participant(id) => self.participants.get(&id).map(|p| p.sid.clone()),
            InHand::Session(sid) => Some(sid),
            InHand::Nothing => None,
        };
        let Some(sid) = sid else {
            tracing::error!(
                panic,
                "media worker panicked outside any session's input; going on"
            );
            return;
        };
        tracing::error!(
            sid = %sid,
            panic,
            "media worker panicked handling this session; ending its participants here"
        );
        let members: Vec<ParticipantId> = self
            .participants
            .values()
            .filter(|p| p.sid == sid)
            .map(|p| p.id)
            .collect();
        let orderly = containment::contain(|| {
            for id in &members {
                self.remove(*id, Some(containment::REASON), counters);
            }
        });
        if let Err(again) = orderly {
            // The half-done state trips `remove` too: drop the session's state unwalked.
            tracing::error!(sid = %sid, panic = again, "removing the session's participants panicked too; dropping them");
            for id in &members {
                if let Some(p) = self.participants.remove(id) {
                    let _ = p
                        .events
                        .send(PeerEvent::Removed(containment::REASON.to_owned()));
                }
            }
            let participants = &self.participants;
            self.routes
                .retain(|_, (owner, _)| participants.contains_key(owner));
            self.relay_sockets
                .retain(|r| participants.contains_key(&r.participant));
        }
        self.sessions.remove(&sid);
        update_gauges(&self.sessions, &self.participants, counters);
    }

    /// Queues both of a participant's PeerConnections for polling.
    fn mark(&mut self, id: ParticipantId) {
        for role in Role::BOTH {
            mark(&mut self.participants, &mut self.dirty, id, role);
        }
    }

    fn datagram(
        &mut self,
        data: &[u8],
        source: SocketAddr,
        arrival: &Arrival,
        counters: &WorkerCounters,
    ) {
        let (destination, now) = (arrival.destination, arrival.now);
        counters.packets_in.fetch_add(1, Relaxed);
        counters.bytes_in.fetch_add(data.len() as u64, Relaxed);
        let Ok(contents) = DatagramRecv::try_from(data) else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let known = self.routes.get(&source).copied().filter(|(id, role)| {
            self.participants
                .get(id)
                .and_then(|p| p.pc(*role))
                .is_some_and(|pc| pc.socket.is_none() && pc.rtc.accepts(&input))
        });
        let target = known.or_else(|| {
            self.participants.iter().find_map(|(id, p)| {
                [Role::Publisher, Role::Subscriber]
                    .into_iter()
                    .find_map(|role| {
                        p.pc(role)
                            // An edge end of a relay listens on its own socket only.
                            .filter(|pc| pc.socket.is_none() && pc.rtc.accepts(&input))
                            .map(|_| (*id, role))
                    })
            })
        });
        let Some((id, role)) = target else {
            tracing::trace!(%source, "no peer accepts this datagram");
            return;
        };
        if known.is_none() {
            self.routes.insert(source, (id, role));
        }
        self.deliver(id, role, input, arrival);
    }

    /// A datagram on the own socket of the relay `id` (an edge's end: its publisher).
    fn relay_datagram(
        &mut self,
        id: ParticipantId,
        data: &[u8],
        source: SocketAddr,
        arrival: &Arrival,
        counters: &WorkerCounters,
    ) {
        counters.packets_in.fetch_add(1, Relaxed);
        counters.bytes_in.fetch_add(data.len() as u64, Relaxed);
        let Ok(contents) = DatagramRecv::try_from(data) else {
            return;
        };
        let input = Input::Receive(
            arrival.now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: arrival.destination,
                contents,
            },
        );
        self.deliver(id, Role::Publisher, input, arrival);
    }

    /// Hands a datagram to the PeerConnection it is for.
    fn deliver(&mut self, id: ParticipantId, role: Role, input: Input<'_>, arrival: &Arrival) {
        let now = arrival.now;
        self.in_hand = InHand::Participant(id);
        if let Some(p) = self.participants.get_mut(&id)
            && let Some(pc) = p.pc_mut(role)
            && let Err(error) = pc.rtc.handle_input(input)
        {
            p.fail(format!("media input failed: {error}"));
            self.reap_soon = true;
        }
        if role == Role::Publisher {
            // In RTP mode str0m holds one received packet until the next poll, and the next
            // datagram's packet would replace it: take it now.
            self.poll(id, role, now);
        } else {
            mark(&mut self.participants, &mut self.dirty, id, role);
        }
    }

    /// Hands `Input::Timeout` to every PeerConnection whose timeout is due, and queues it
    /// for polling.
    fn timeouts(&mut self, now: Instant) {
        while let Some(&Reverse((at, id, role))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(p) = self.participants.get_mut(&id) else {
                continue;
            };
            let Some(pc) = p.pc_mut(role) else {
                continue;
            };
            if pc.timeout != at {
                continue;
            }
            self.in_hand = InHand::Participant(id);
            if let Err(error) = pc.rtc.handle_input(Input::Timeout(now)) {
                p.fail(format!("timer input failed: {error}"));
                self.reap_soon = true;
            }
            mark(&mut self.participants, &mut self.dirty, id, role);
        }
    }

    /// The earliest timeout any PeerConnection wants, or `latest`. Drops stale entries on
    /// the way.
    fn next_timeout(&mut self, latest: Instant) -> Instant {
        while let Some(&Reverse((at, id, role))) = self.timers.peek() {
            let current = self
                .participants
                .get(&id)
                .and_then(|p| p.pc(role))
                .is_some_and(|pc| pc.timeout == at);
            if current {
                return at.min(latest);
            }
            self.timers.pop();
        }
        latest
    }

    /// Removes participants that failed this round at once, and every `HOUSEKEEPING` those
    /// whose connection closed or timed out. Also keeps the timer heap from growing with
    /// stale entries (a PeerConnection whose timeout moves earlier leaves its later entry).
    fn housekeeping(&mut self, now: Instant, counters: &WorkerCounters) {
        let due = self.next_housekeeping.is_none_or(|at| now >= at);
        if !due && !std::mem::take(&mut self.reap_soon) {
            return;
        }
        self.reap(now, counters);
        if due {
            self.next_housekeeping = Some(now + HOUSEKEEPING);
            let peer_connections = 2 * self.participants.len();
            if self.timers.len() > 4 * peer_connections + 1024 {
                self.timers = self
                    .participants
                    .iter()
                    .flat_map(|(id, p)| {
                        Role::BOTH
                            .into_iter()
                            .filter_map(move |role| p.pc(role).map(|pc| (pc.timeout, *id, role)))
                    })
                    .map(Reverse)
                    .collect();
            }
        }
    }

    /// Polls touched peers and applies their effects until nothing is left to do; what they
    /// send waits in the outboxes for [`State::flush`]. Returns `true`, with work left, as
    /// soon as the outbox holds a full batch: a frame fanned out to 200 viewers then starts
    /// leaving after the first 64 are sealed, not after all 200.
    fn drive(&mut self, counters: &WorkerCounters, now: Instant) -> bool {
        let work_left = loop {
            if self.outbox.is_full() {
                break true;
            }
            while let Some(effect) = self.effects.pop_front() {
                self.apply(effect, now, counters);
            }
            let Some((id, role)) = self.dirty.pop() else {
                break false;
            };
            self.poll(id, role, now);
        };
        counters
            .forward_errors
            .fetch_add(std::mem::take(&mut self.refused_forwards), Relaxed);
        work_left
    }

    /// Sends what the round produced: the shared socket's datagrams in as few system calls
    /// as possible, each relay's from its own socket.
    fn flush(&mut self, socket: &UdpSocket, counters: &WorkerCounters) {
        self.outbox.flush(socket, counters);
        for (own, transmit) in self.relay_outbox.drain(..) {
            if own
                .try_send_to(&transmit.contents, transmit.destination)
                .is_ok()
            {
                counters.packets_out.fetch_add(1, Relaxed);
                counters
                    .bytes_out
                    .fetch_add(transmit.contents.len() as u64, Relaxed);
            } else {
                counters.send_drops.fetch_add(1, Relaxed);
            }
            // As for the shared socket's batch (str0m patch 6).
            str0m::net::recycle(transmit.contents);
        }
    }

    /// Polls one PeerConnection until it wants a timeout. Only the touched one: a packet
    /// forwarded to a subscriber leaves its publisher PeerConnection alone.
    fn poll(&mut self, id: ParticipantId, role: Role, now: Instant) {
        self.in_hand = InHand::Participant(id);
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        p.dirty[role.index()] = false;
        // What was forwarded to this PeerConnection since its last poll goes out at once,
        // sealed by str0m without its send queue, a timeout and a poll each (str0m patch
        // 12). Sealing here rather than in `forward` keeps each subscriber's datagrams
        // together for segmentation, and lets a full batch leave before the whole fan-out
        // is sealed.
        let mut refused = 0;
        if let Some(pc) = p.pc_mut(role)
            && !pc.forwarded.is_empty()
        {
            if !pc.rtc.is_alive() {
                pc.forwarded.clear();
            }
            for forwarded in pc.forwarded.drain(..) {
                let (mid, kept, write) = forwarded.into_write();
                let mut place = kept;
                let sent = pc
                    .rtc
                    .direct_api()
                    .send_rtp_at(mid, None, &mut place, now, write);
                if place != kept {
                    // A stream or m-line moved: every subscription here learns afresh.
                    pc.place_epoch = pc.place_epoch.wrapping_add(1).max(1);
                }
                match sent {
                    RtpSend::Sent(transmit) => match &pc.socket {
                        Some(own) => self.relay_outbox.push((own.clone(), transmit)),
                        None => self.outbox.push(transmit),
                    },
                    // Something queued on the stream goes first; the timeout below
                    // releases both.
                    RtpSend::Queued => pc.written = true,
                    RtpSend::NoStream | RtpSend::Dropped => refused += 1,
                }
            }
        }
        if refused > 0 {
            self.refused_forwards += refused;
            // A renegotiation may have moved the codec or the mid: match afresh.
            if let Some(session) = self.sessions.get_mut(&p.sid) {
                session
                    .tracks
                    .iter_mut()
                    .flat_map(|track| track.subscriptions.iter_mut())
                    .filter(|sub| sub.participant == id)
                    .for_each(|sub| sub.pt_map = None);
            }
        }
        let mut due_timeouts = 0;
        // A written packet is queued for sending on a timeout that str0m asks for at once.
        // Giving it that timeout before the first poll saves the poll that would only ask for
        // it: a walk of every subsystem of the PeerConnection, per subscriber and round.
        if let Some(pc) = p.pc_mut(role)
            && std::mem::take(&mut pc.written)
            && pc.rtc.is_alive()
        {
            due_timeouts += 1;
            if let Err(error) = pc.rtc.handle_input(Input::Timeout(now)) {
                p.fail(format!("timer input failed: {error}"));
                self.reap_soon = true;
            }
        }
        while let Some(pc) = p.pc_mut(role) {
            if !pc.rtc.is_alive() {
                break;
            }
            // After sends at once (str0m patch 12) there is most often nothing to poll:
            // the settled timeout says so without building an `Output` (patch 13).
            let output = match pc.rtc.settled_timeout() {
                Some(at) => Ok(Output::Timeout(at)),
                None => pc.rtc.poll_output(),
            };
            match output {
                // str0m releases a written packet on its next timeout, which it asks for at
                // once. Handling that here sends the packets in this round; leaving it to the
                // timer cost a whole extra pass of the loop per forwarded packet and
                // subscriber (a wake-up, a futile recvfrom, a scan of every peer).
                Ok(Output::Timeout(at)) if at <= now && due_timeouts < MAX_DUE_TIMEOUTS => {
                    due_timeouts += 1;
                    if let Err(error) = pc.rtc.handle_input(Input::Timeout(now)) {
                        p.fail(format!("timer input failed: {error}"));
                        self.reap_soon = true;
                        break;
                    }
                }
                Ok(Output::Timeout(at)) => {
                    // An unchanged timeout already has its entry, unless it is due (handled
                    // and popped, or past the due-timeout bound): then it needs one again.
                    if at != pc.timeout || at <= now {
                        self.timers.push(Reverse((at, id, role)));
                    }
                    pc.timeout = at;
                    break;
                }
                Ok(Output::Transmit(transmit)) => match &pc.socket {
                    // An edge's end of a relay sends from its own socket: one stream per
                    // relay, not one per viewer.
                    Some(own) => self.relay_outbox.push((own.clone(), transmit)),
                    None => self.outbox.push(transmit),
                },
                Ok(Output::Event(event)) => on_event(p, role, event, now, &mut self.effects),
                Err(error) => {
                    p.fail(format!("media output failed: {error}"));
                    self.reap_soon = true;
                    break;
                }
            }
        }
        if role == Role::Subscriber
            && let Some(offer) = p.negotiate()
        {
            // The change queued output on the subscriber; poll it again.
            let _ = p.events.send(PeerEvent::SubscriberOffer(offer));
            mark(
                &mut self.participants,
                &mut self.dirty,
                id,
                Role::Subscriber,
            );
        }
    }

    fn apply(&mut self, effect: Effect, now: Instant, counters: &WorkerCounters) {
        // A participant id, not the session's: no reference count touched per packet.
        self.in_hand = InHand::Participant(match &effect {
            Effect::TrackPublished { origin, .. }
            | Effect::TrackUnpublished { origin, .. }
            | Effect::Media { origin, .. } => *origin,
            Effect::KeyframeRequest { subscriber, .. }
            | Effect::LayerPreference { subscriber, .. } => *subscriber,
        });
        match effect {
            Effect::TrackPublished {
                origin,
                sid,
                mid,
                kind,
            } => self.publish_track(origin, &sid, mid, kind, counters),
            Effect::TrackUnpublished { origin, sid, mid } => {
                self.unpublish_track(origin, &sid, mid, counters)
            }
            Effect::Media {
                origin,
                sid,
                mid,
                rid,
                packet,
            } => self.forward(origin, &sid, mid, rid, packet, now, counters),
            Effect::KeyframeRequest {
                subscriber,
                request,
            } => self.relay_keyframe_request(subscriber, request, now),
            Effect::LayerPreference {
                subscriber,
                preference,
            } => self.prefer_layer(subscriber, preference),
        }
    }

    fn publish_track(
        &mut self,
        origin: ParticipantId,
        sid: &Arc<str>,
        mid: Mid,
        kind: MediaKind,
        counters: &WorkerCounters,
    ) {
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        if session.track_mut(origin, mid).is_some() {
            return;
        }
        let Some(publisher) = self.participants.get(&origin) else {
            return;
        };
        let relayed = publisher.link.is_relay();
        // A relayed track keeps the stream id its origin gave it: its publisher's uid.
        let origin_stream = publisher
            .publisher
            .as_ref()
            .filter(|_| relayed)
            .and_then(|pc| pc.rtc.media(mid))
            .map(|media| media.stream_id().to_owned());
        let stream_id = match origin_stream {
            Some(stream_id) => stream_id,
            None if publisher.uid.is_empty() => format!("p{}", origin.0),
            None => publisher.uid.clone(),
        };
        let id = TrackId(self.next_track);
        self.next_track += 1;
        tracing::debug!(sid = %sid, participant = origin.0, %mid, ?kind, "track published");
        for member in &session.members {
            if *member == origin {
                continue;
            }
            if let Some(q) = self.participants.get_mut(member)
                && q.subscriber.is_some()
                && !q.config.no_auto_subscribe
                // Split horizon: what came over a relay never goes into another.
                && !(relayed && q.link.is_relay())
            {
                q.open_out(id, kind, stream_id.clone());
                mark(
                    &mut self.participants,
                    &mut self.dirty,
                    *member,
                    Role::Subscriber,
                );
            }
        }
        session.tracks.push(TrackIn {
            id,
            origin,
            mid,
            kind,
            stream_id,
            layers: Default::default(),
            subscriptions: Vec::new(),
            last_keyframe_request: None,
            asked_upstream: None,
            params: None,
        });
        update_gauges(&self.sessions, &self.participants, counters);
    }

    /// The publisher stopped sending a track: it ends for every subscriber.
    fn unpublish_track(
        &mut self,
        origin: ParticipantId,
        sid: &Arc<str>,
        mid: Mid,
        counters: &WorkerCounters,
    ) {
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let Some(at) = session
            .tracks
            .iter()
            .position(|t| t.origin == origin && t.mid == mid)
        else {
            return;
        };
        let track = session.tracks.remove(at);
        tracing::debug!(sid = %sid, participant = origin.0, %mid, "track unpublished");
        stop_tracks(
            &session.members,
            &[track.id],
            &mut self.participants,
            &mut self.dirty,
        );
        update_gauges(&self.sessions, &self.participants, counters);
    }

    /// The hot path: one incoming RTP packet to every subscription of its track.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        origin: ParticipantId,
        sid: &Arc<str>,
        mid: Mid,
        rid: Option<Rid>,
        packet: RtpPacket,
        now: Instant,
        counters: &WorkerCounters,
    ) {
        let Some(track) = self
            .sessions
            .get_mut(sid)
            .and_then(|s| s.track_mut(origin, mid))
        else {
            return;
        };
        let pt = packet.header.payload_type;
        if track.params.is_none_or(|params| params.pt() != pt) {
            track.params = self
                .participants
                .get(&origin)
                .and_then(|p| p.publisher.as_ref())
                .and_then(|publisher| {
                    publisher
                        .rtc
                        .codec_config()
                        .iter()
                        .find(|params| params.pt() == pt)
                        .copied()
                });
        }
        let Some(params) = track.params else {
            // A payload type the publisher never negotiated: nothing can decode it.
            counters.forward_errors.fetch_add(1, Relaxed);
            return;
        };
        let spec = params.spec();
        let clock_rate = spec.clock_rate.get();
        let video = track.kind == MediaKind::Video;
        track.layers.observe(rid, packet.payload.len(), now);
        // The layer for each wanted one, by `layer_index`; all None without simulcast.
        let picks = if rid.is_some() {
            LAYERS.map(|layer| track.layers.pick(layer))
        } else {
            [None; 3]
        };
        let keyframe = rid.is_some() && starts_keyframe(spec.codec, &packet.payload);
        let extensions = MediaExtensions::of(&packet.header.ext_vals);
        let mut layer_switch_waiting = None;
        for sub in &mut track.subscriptions {
            if video && sub.wanted == VideoLayer::None {
                continue;
            }
            let wanted = picks[layer_index(sub.wanted)];
            if sub.layer.current != wanted {
                layer_switch_waiting.get_or_insert(wanted);
            }
            if !sub.layer.accept(rid, wanted, keyframe) {
                continue;
            }
            let Some(out) = sub.rewriter.rewrite(
                *packet.header.ssrc,
                *packet.seq_no,
                packet.header.timestamp,
                clock_rate,
                now,
            ) else {
                continue;
            };
            let Some(q) = self.participants.get_mut(&sub.participant) else {
                continue;
            };
            let Some(pc) = q.subscriber.as_mut() else {
                continue;
            };
            let to_pt = match sub.pt_map {
                Some((from, to)) if from == pt => Some(to),
                _ => pc.rtc.codec_config().match_params(params).map(|p| p.pt()),
            };
            sub.pt_map = to_pt.map(|to| (pt, to));
            if let Some(to_pt) = to_pt {
                if sub.place_epoch != pc.place_epoch {
                    sub.place = pc.rtc.direct_api().send_place(sub.mid, None);
                    sub.place_epoch = pc.place_epoch;
                }
                // Sealed and sent when the subscriber is polled (see `State::poll`).
                pc.forwarded.push(Forwarded {
                    mid: sub.mid,
                    place: sub.place,
                    pt: to_pt,
                    seq_no: out.seq_no.into(),
                    time: out.timestamp,
                    wallclock: packet.timestamp,
                    payload: packet.payload.clone(),
                    marker: packet.header.marker,
                    nackable: video,
                    extensions,
                });
            } else {
                // A renegotiation may have moved the codec: match afresh next time.
                sub.pt_map = None;
                counters.forward_errors.fetch_add(1, Relaxed);
            }
            mark(
                &mut self.participants,
                &mut self.dirty,
                sub.participant,
                Role::Subscriber,
            );
        }
        // A subscriber waiting to switch layers needs a keyframe of the wanted one. Losses
        // need nothing here: each subscriber sees the gap itself, NACKs, and asks for a
        // keyframe (relayed below) when the packet cannot be had.
        if video && let Some(wanted) = layer_switch_waiting {
            request_keyframe(
                track,
                &mut self.participants,
                &mut self.dirty,
                wanted,
                KeyframeRequestKind::Pli,
                now,
            );
        }
    }

    /// A subscriber's PLI/FIR goes to the publisher of that track, throttled per track.
    fn relay_keyframe_request(
        &mut self,
        subscriber: ParticipantId,
        request: KeyframeRequest,
        now: Instant,
    ) {
        let Some(q) = self.participants.get(&subscriber) else {
            return;
        };
        let Some(track_id) = q
            .outs
            .iter()
            .find(|o| o.state == OutState::Open(request.mid))
            .map(|o| o.track)
        else {
            return;
        };
        let sid = q.sid.clone();
        let Some(track) = self
            .sessions
            .get_mut(&sid)
            .and_then(|s| s.track_by_id_mut(track_id))
        else {
            return;
        };
        let rid = track
            .subscriptions
            .iter()
            .find(|s| s.participant == subscriber)
            .and_then(|s| s.layer.current)
            .or(track.layers.preferred());
        request_keyframe(
            track,
            &mut self.participants,
            &mut self.dirty,
            rid,
            request.kind,
            now,
        );
    }

    fn command(
        &mut self,
        command: Command,
        now: Instant,
        candidates: &[SocketAddr],
        counters: &WorkerCounters,
    ) {
        self.in_hand = match &command {
            Command::Join { sid, .. }
            | Command::OpenRelay { sid, .. }
            | Command::EndSession { sid, .. } => InHand::Session(sid.clone()),
            Command::Offer { participant, .. }
            | Command::Answer { participant, .. }
            | Command::Trickle { participant, .. }
            | Command::Leave { participant }
            | Command::PreferLayer { participant, .. } => InHand::Participant(*participant),
        };
        match command {
            Command::Join {
                participant,
                sid,
                uid,
                offer,
                config,
                link,
                events,
                reply,
            } => {
                let result = self.join(
                    participant,
                    sid,
                    uid,
                    offer,
                    config,
                    link,
                    events,
                    now,
                    candidates,
                );
                update_gauges(&self.sessions, &self.participants, counters);
                let _ = reply.send(result);
            }
            Command::OpenRelay {
                participant,
                sid,
                edge,
                events,
                reply,
            } => {
                let result = self.open_relay(participant, sid, edge, events, now, candidates);
                update_gauges(&self.sessions, &self.participants, counters);
                let _ = reply.send(result);
            }
            Command::Offer {
                participant,
                offer,
                reply,
            } => {
                let result = match self.participants.get_mut(&participant) {
                    Some(p) => p.accept_publisher_offer(offer),
                    None => Err(SfuError::UnknownParticipant),
                };
                self.mark(participant);
                let _ = reply.send(result);
            }
            Command::Answer {
                participant,
                answer,
                reply,
            } => {
                let result = self.answer(participant, answer, now);
                update_gauges(&self.sessions, &self.participants, counters);
                let _ = reply.send(result);
            }
            Command::Trickle {
                participant,
                target,
                candidate,
            } => self.trickle(participant, target, &candidate),
            Command::Leave { participant } => self.remove(participant, None, counters),
            Command::PreferLayer {
                participant,
                preference,
            } => self.prefer_layer(participant, preference),
            Command::EndSession { sid, reason } => {
                let members = self
                    .sessions
                    .get(&sid)
                    .map(|s| s.members.clone())
                    .unwrap_or_default();
                for id in members {
                    self.remove(id, Some(&reason), counters);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        id: ParticipantId,
        sid: Arc<str>,
        uid: String,
        offer: str0m::change::SdpOffer,
        config: super::JoinConfig,
        link: Link,
        events: mpsc::UnboundedSender<PeerEvent>,
        now: Instant,
        candidates: &[SocketAddr],
    ) -> Result<str0m::change::SdpAnswer, SfuError> {
        let from_origin = matches!(link, Link::FromOrigin { .. });
        let mut publisher = if from_origin {
            // The edge's end of a relay: its own socket, full ICE (see `relay_socket`).
            let bind_ip = self
                .bind_ip
                .ok_or_else(|| SfuError::Internal("the worker has no socket".to_owned()))?;
            let announce_ip = candidates.first().map_or(bind_ip, SocketAddr::ip);
            let relay = relay_socket::bind(id, bind_ip, announce_ip)?;
            let mut pc = Pc::new(
                now,
                &[relay.candidate],
                Role::Publisher,
                false,
                self.resend_history,
            )?;
            pc.socket = Some(relay.socket.clone());
            self.relay_sockets.push(relay);
            pc
        } else {
            Pc::new(now, candidates, Role::Publisher, true, self.resend_history)?
        };
        let answer = match publisher.rtc.sdp_api().accept_offer(offer) {
            Ok(answer) => answer,
            Err(error) => {
                self.relay_sockets.retain(|r| r.participant != id);
                return Err(SfuError::BadSdp(error.to_string()));
            }
        };
        let subscriber = if config.no_subscribe || from_origin {
            None
        } else {
            Some(Pc::new(
                now,
                candidates,
                Role::Subscriber,
                true,
                self.resend_history,
            )?)
        };
        let p = Participant::new(
            id,
            sid.clone(),
            uid,
            config,
            link,
            Some(publisher),
            subscriber,
            events,
            now,
        );
        let subscribe = p.subscriber.is_some() && !config.no_auto_subscribe;
        self.admit(p, subscribe, "joined");
        #[cfg(test)]
        containment::fault_point(&self.participants[&id].uid);
        Ok(answer)
    }

    /// Adds `p` to its session, subscribed (when `subscribe`) to every track the session has;
    /// a relay is not subscribed to tracks that came over another relay (split horizon).
    fn admit(&mut self, mut p: Participant, subscribe: bool, what: &'static str) {
        let (id, sid) = (p.id, p.sid.clone());
        let session = self.sessions.entry(sid.clone()).or_default();
        if subscribe {
            for track in &session.tracks {
                let relayed = self
                    .participants
                    .get(&track.origin)
                    .is_some_and(|origin| origin.link.is_relay());
                if relayed && p.link.is_relay() {
                    continue;
                }
                p.open_out(track.id, track.kind, track.stream_id.clone());
            }
        }
        session.members.push(id);
        tracing::info!(%sid, participant = id.0, uid = %p.uid, "{what}");
        self.participants.insert(id, p);
        self.mark(id);
    }

    fn open_relay(
        &mut self,
        id: ParticipantId,
        sid: Arc<str>,
        edge: String,
        events: mpsc::UnboundedSender<PeerEvent>,
        now: Instant,
        candidates: &[SocketAddr],
    ) -> Result<(), SfuError> {
        let subscriber = Pc::new(now, candidates, Role::Subscriber, true, self.resend_history)?;
        let uid = format!("relay:{edge}");
        let p = Participant::new(
            id,
            sid,
            uid,
            super::JoinConfig::default(),
            Link::ToEdge { edge },
            None,
            Some(subscriber),
            events,
            now,
        );
        self.admit(p, true, "relay to an edge opened");
        Ok(())
    }

    fn answer(
        &mut self,
        id: ParticipantId,
        answer: str0m::change::SdpAnswer,
        now: Instant,
    ) -> Result<(), SfuError> {
        let p = self
            .participants
            .get_mut(&id)
            .ok_or(SfuError::UnknownParticipant)?;
        let opened = p.accept_subscriber_answer(answer)?;
        let sid = p.sid.clone();
        self.mark(id);
        let Some(session) = self.sessions.get_mut(&sid) else {
            return Ok(());
        };
        for (track_id, mid) in opened {
            let Some(track) = session.track_by_id_mut(track_id) else {
                continue;
            };
            let wanted = self
                .participants
                .get(&id)
                .map_or(VideoLayer::High, |p| p.wanted_layer(&track.stream_id));
            track.subscriptions.push(Subscription {
                participant: id,
                mid,
                layer: Default::default(),
                wanted,
                pt_map: None,
                rewriter: Default::default(),
                place: SendPlace::UNKNOWN,
                place_epoch: 0,
            });
            // A new subscriber can decode nothing until the next keyframe.
            if track.kind == MediaKind::Video {
                let rid = track.layers.pick(wanted);
                request_keyframe(
                    track,
                    &mut self.participants,
                    &mut self.dirty,
                    rid,
                    KeyframeRequestKind::Pli,
                    now,
                );
            }
        }
        self.ask_upstream(&sid);
        Ok(())
    }

    /// A subscriber's choice of layer for the video of `preference.stream_id`, now and for
    /// tracks of that stream it subscribes to later.
    fn prefer_layer(&mut self, id: ParticipantId, preference: LayerPreference) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        p.set_wanted_layer(&preference.stream_id, preference.video);
        let sid = p.sid.clone();
        tracing::debug!(%sid, participant = id.0, stream = %preference.stream_id, layer = ?preference.video, "layer preference");
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        for track in &mut session.tracks {
            if track.kind != MediaKind::Video || track.stream_id != preference.stream_id {
                continue;
            }
            for sub in &mut track.subscriptions {
                if sub.participant == id {
                    sub.wanted = preference.video;
                }
            }
        }
        self.ask_upstream(&sid);
    }

    /// At an edge: asks each relay from an origin for the most that the viewers here want of
    /// each video track it relays, so that a layer no viewer here wants does not cross (and
    /// no video at all when no viewer here watches it).
    fn ask_upstream(&mut self, sid: &Arc<str>) {
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        for track in &mut session.tracks {
            if track.kind != MediaKind::Video {
                continue;
            }
            let Some(relay) = self
                .participants
                .get(&track.origin)
                .filter(|p| matches!(p.link, Link::FromOrigin { .. }))
            else {
                continue;
            };
            let most = track
                .subscriptions
                .iter()
                .map(|s| s.wanted)
                .max()
                .unwrap_or(VideoLayer::None);
            // Until asked, the origin sends the highest layer.
            if track.asked_upstream.unwrap_or(VideoLayer::High) == most {
                continue;
            }
            track.asked_upstream = Some(most);
            let _ = relay.events.send(PeerEvent::LayerWanted(LayerPreference {
                stream_id: track.stream_id.clone(),
                video: most,
                audio: true,
                framerate: None,
            }));
        }
    }

    fn trickle(&mut self, id: ParticipantId, target: Target, candidate: &str) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        let role = match target {
            Target::Publisher => Role::Publisher,
            Target::Subscriber => Role::Subscriber,
        };
        let text = candidate.trim().trim_start_matches("a=");
        match Candidate::from_sdp_string(text) {
            Ok(candidate) => {
                if let Some(pc) = p.pc_mut(role) {
                    pc.rtc.add_remote_candidate(candidate);
                }
                mark(&mut self.participants, &mut self.dirty, id, role);
            }
            // mDNS (.local) candidates cannot be resolved here, and an ICE-lite server does
            // not need them: the client's checks reveal its address.
            Err(error) => {
                tracing::debug!(participant = id.0, %error, candidate = text, "ignoring candidate")
            }
        }
    }

    /// Removes a participant: its tracks end for everyone, its subscriptions go.
    fn remove(&mut self, id: ParticipantId, reason: Option<&str>, counters: &WorkerCounters) {
        let Some(p) = self.participants.remove(&id) else {
            return;
        };
        self.in_hand = InHand::Session(p.sid.clone());
        self.routes.retain(|_, (owner, _)| *owner != id);
        self.relay_sockets.retain(|r| r.participant != id);
        if let Some(reason) = reason {
            let _ = p.events.send(PeerEvent::Removed(reason.to_owned()));
        }
        tracing::info!(sid = %p.sid, participant = id.0, reason = reason.unwrap_or("left"), "participant removed");
        if let Some(session) = self.sessions.get_mut(&p.sid) {
            session.members.retain(|m| *m != id);
            let gone: Vec<TrackId> = session
                .tracks
                .iter()
                .filter(|t| t.origin == id)
                .map(|t| t.id)
                .collect();
            session.tracks.retain(|t| t.origin != id);
            for track in &mut session.tracks {
                track.subscriptions.retain(|s| s.participant != id);
            }
            stop_tracks(
                &session.members,
                &gone,
                &mut self.participants,
                &mut self.dirty,
            );
            if session.members.is_empty() {
                self.sessions.remove(&p.sid);
            } else {
                self.ask_upstream(&p.sid);
            }
        }
        update_gauges(&self.sessions, &self.participants, counters);
    }

    fn reap(&mut self, now: Instant, counters: &WorkerCounters) {
        let expired: Vec<(ParticipantId, String)> = self
            .participants
            .values()
            .filter_map(|p| p.expired(now).map(|reason| (p.id, reason)))
            .collect();
        for (id, reason) in expired {
            self.remove(id, Some(&reason), counters);
        }
    }
}

/// Where `layer` is in [`LAYERS`]; no video (`None`) is the caller's to honour.
fn layer_index(layer: VideoLayer) -> usize {
    match layer {
        VideoLayer::None | VideoLayer::Low => 0,
        VideoLayer::Medium => 1,
        VideoLayer::High => 2,
    }
}

fn mark(
    participants: &mut Participants,
    dirty: &mut Vec<(ParticipantId, Role)>,
    id: ParticipantId,
    role: Role,
) {
    if let Some(p) = participants.get_mut(&id)
        && !p.dirty[role.index()]
    {
        p.dirty[role.index()] = true;
        dirty.push((id, role));
    }
}

/// Stops sending the `gone` tracks to `members`: each one's subscriber PeerConnection
/// renegotiates their m-lines away.
fn stop_tracks(
    members: &[ParticipantId],
    gone: &[TrackId],
    participants: &mut Participants,
    dirty: &mut Vec<(ParticipantId, Role)>,
) {
    if gone.is_empty() {
        return;
    }
    for member in members {
        if let Some(q) = participants.get_mut(member) {
            for track in gone {
                q.drop_track(*track);
            }
        }
        mark(participants, dirty, *member, Role::Subscriber);
    }
}

fn request_keyframe(
    track: &mut TrackIn,
    participants: &mut Participants,
    dirty: &mut Vec<(ParticipantId, Role)>,
    rid: Option<str0m::media::Rid>,
    kind: KeyframeRequestKind,
    now: Instant,
) {
    if track
        .last_keyframe_request
        .is_some_and(|at| now.saturating_duration_since(at) < KEYFRAME_REQUEST_INTERVAL)
    {
        return;
    }
    let Some(publisher) = participants
        .get_mut(&track.origin)
        .and_then(|p| p.publisher.as_mut())
    else {
        return;
    };
    // No stream for the rid: a layer that stopped, or one not seen yet; nothing to ask.
    if let Some(stream) = publisher.rtc.direct_api().stream_rx_by_mid(track.mid, rid) {
        stream.request_keyframe(kind);
        track.last_keyframe_request = Some(now);
    }
    mark(participants, dirty, track.origin, Role::Publisher);
}

fn on_event(
    p: &mut Participant,
    role: Role,
    event: Event,
    now: Instant,
    effects: &mut VecDeque<Effect>,
) {
    match event {
        Event::IceConnectionStateChange(state) => match state {
            IceConnectionState::Connected | IceConnectionState::Completed => {
                p.connected = true;
                p.disconnected_since = None;
            }
            IceConnectionState::Disconnected => {
                p.disconnected_since.get_or_insert(now);
            }
            _ => {}
        },
        Event::MediaAdded(added) if role == Role::Publisher => {
            if p.config.no_publish {
                tracing::debug!(participant = p.id.0, mid = %added.mid, "NoPublish: ignoring a published track");
            } else if added.direction.is_receiving() {
                effects.push_back(Effect::TrackPublished {
                    origin: p.id,
                    sid: p.sid.clone(),
                    mid: added.mid,
                    kind: added.kind,
                });
            }
        }
        // ion-sdk-js `unpublish` re-offers the m-line inactive; publishing again on the same
        // transceiver turns it back to sending.
        Event::MediaChanged(changed) if role == Role::Publisher && !p.config.no_publish => {
            if !changed.direction.is_receiving() {
                effects.push_back(Effect::TrackUnpublished {
                    origin: p.id,
                    sid: p.sid.clone(),
                    mid: changed.mid,
                });
            } else if let Some(kind) = p
                .publisher
                .as_ref()
                .and_then(|publisher| publisher.rtc.media(changed.mid))
                .map(|m| m.kind())
            {
                effects.push_back(Effect::TrackPublished {
                    origin: p.id,
                    sid: p.sid.clone(),
                    mid: changed.mid,
                    kind,
                });
            }
        }
        Event::RtpPacket(packet) if role == Role::Publisher && !p.config.no_publish => {
            let Some((mid, rid)) = p.publisher.as_mut().and_then(|publisher| {
                publisher
                    .rtc
                    .direct_api()
                    .stream_rx(&packet.header.ssrc)
                    .map(|stream| (stream.mid(), stream.rid()))
            }) else {
                return;
            };
            effects.push_back(Effect::Media {
                origin: p.id,
                sid: p.sid.clone(),
                mid,
                rid,
                packet,
            });
        }
        Event::KeyframeRequest(request) if role == Role::Subscriber => {
            effects.push_back(Effect::KeyframeRequest {
                subscriber: p.id,
                request,
            });
        }
        // ion-sdk-js's API channel: `preferLayer`, `mute` and `unmute` of a remote stream.
        Event::ChannelData(data) if role == Role::Subscriber && !data.binary => {
            match serde_json::from_slice::<LayerPreference>(&data.data) {
                Ok(preference) => effects.push_back(Effect::LayerPreference {
                    subscriber: p.id,
                    preference,
                }),
                Err(error) => {
                    tracing::debug!(participant = p.id.0, %error, "ignoring an unknown data channel message")
                }
            }
        }
        _ => {}
    }
}

fn update_gauges(
    sessions: &HashMap<Arc<str>, Session>,
    participants: &Participants,
    counters: &WorkerCounters,
) {
    let tracks_in: usize = sessions.values().map(|s| s.tracks.len()).sum();
    let tracks_out: usize = participants.values().map(Participant::open_out_count).sum();
    counters.sessions.store(sessions.len() as u64, Relaxed);
    // Relays are links between nodes, not people.
    let peers = participants.values().filter(|p| !p.link.is_relay()).count();
    counters.peers.store(peers as u64, Relaxed);
    counters.tracks_in.store(tracks_in as u64, Relaxed);
    counters.tracks_out.store(tracks_out as u64, Relaxed);
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
