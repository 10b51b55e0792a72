//! The media engine, on str0m (sans-IO). Each worker thread owns one UDP socket and one event
//! loop, and sessions are sharded across workers by session id, so everything about a session
//! lives on one thread and needs no lock. Signaling talks to a worker by [`Command`]s and
//! hears back through [`PeerEvent`]s.
//!
//! Layout: `worker` (the loop and forwarding), `participant` (two PeerConnections and their
//! negotiation), `session` (tracks and subscriptions), `layers` (simulcast choice),
//! `rewrite` (each subscriber's sequence numbers and timestamps), `send_batch` (one
//! `sendmmsg` per round of output), `keyframe`, `counters`.
//!
//! Media is forwarded as RTP packets (str0m's RTP mode): a packet from a publisher is written
//! to each subscriber as it is, with the subscriber's own SSRC, payload type, sequence number
//! and timestamp, so no frame is reassembled and re-packetized per subscriber.

pub(crate) mod containment;
pub mod counters;
mod forwarded;
pub(crate) mod keyframe;
pub(crate) mod layers;
mod participant;
mod relay_socket;
pub(crate) mod rewrite;
mod send_batch;
mod session;
pub(crate) mod stun;
mod worker;

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use str0m::change::{SdpAnswer, SdpOffer};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

pub use counters::{MediaCounters, MediaSampler};
pub use participant::{Link, ParticipantId};

use crate::config::WebrtcConfig;

pub use ion_cluster::protocol::{JoinConfig, LayerPreference, VideoLayer};

/// Which PeerConnection a trickled candidate belongs to (ion-sfu: 0 publisher, 1 subscriber).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Publisher,
    Subscriber,
}

/// Requests from signaling to the worker that owns the session.
pub enum Command {
    Join {
        participant: ParticipantId,
        sid: Arc<str>,
        uid: String,
        offer: SdpOffer,
        config: JoinConfig,
        /// A client, or the edge's end of a relay (whose offers come from the origin).
        link: Link,
        events: mpsc::UnboundedSender<PeerEvent>,
        reply: oneshot::Sender<Result<SdpAnswer, SfuError>>,
    },
    /// The origin's end of a relay to an edge node: a subscriber to every track of the
    /// session published here (none that came over another relay). Its offers go out as
    /// [`PeerEvent::SubscriberOffer`]s, and the edge's answers come back as `Answer`.
    OpenRelay {
        participant: ParticipantId,
        sid: Arc<str>,
        edge: String,
        events: mpsc::UnboundedSender<PeerEvent>,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Offer {
        participant: ParticipantId,
        offer: SdpOffer,
        reply: oneshot::Sender<Result<SdpAnswer, SfuError>>,
    },
    Answer {
        participant: ParticipantId,
        answer: SdpAnswer,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Trickle {
        participant: ParticipantId,
        target: Target,
        candidate: String,
    },
    Leave {
        participant: ParticipantId,
    },
    /// The simulcast layer a subscriber wants of a stream's video: from a client (its data
    /// channel or the `layers` notification), or from an edge for all its viewers.
    PreferLayer {
        participant: ParticipantId,
        preference: LayerPreference,
    },
    /// Removes every participant of `sid`, telling each `reason`: the session ended
    /// elsewhere (the origin of a session this node is an edge of).
    EndSession {
        sid: Arc<str>,
        reason: String,
    },
}

/// What a worker tells a participant's signaling connection.
#[derive(Debug)]
pub enum PeerEvent {
    /// A new offer for the subscriber PeerConnection.
    SubscriberOffer(SdpOffer),
    /// The participant was removed by the worker (ICE failure, timeout).
    Removed(String),
    /// At an edge, to the relay from the origin: the most its viewers now want of the video
    /// of this stream; the edge sends it to the origin, so no other layer crosses.
    LayerWanted(LayerPreference),
}

#[derive(Debug, Error)]
pub enum SfuError {
    #[error("invalid SDP: {0}")]
    BadSdp(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("unknown participant; join first")]
    UnknownParticipant,
    #[error("the media worker is gone (the agent is shutting down)")]
    WorkerGone,
    #[error("internal error: {0}")]
    Internal(String),
}

/// A handle on the running workers.
#[derive(Clone)]
pub struct Sfu {
    workers: Arc<Vec<mpsc::Sender<Command>>>,
    addrs: Arc<Vec<SocketAddr>>,
    next_participant: Arc<std::sync::atomic::AtomicU64>,
    public_ip: Option<IpAddr>,
}

/// With `ice_servers` and no `nat1to1`, asks the first STUN server that answers for this
/// socket's public address. No answer from any of them is a start-up error: announcing an
/// unreachable private address would fail every client silently.
fn discover_public(
    config: &WebrtcConfig,
    socket: &std::net::UdpSocket,
) -> anyhow::Result<Option<SocketAddr>> {
    if !config.nat1to1.is_empty() || config.ice_servers.is_empty() {
        return Ok(None);
    }
    let mut failures = Vec::new();
    for url in &config.ice_servers {
        let Some(server) = stun::resolve(url) else {
            failures.push(format!("{url}: not a resolvable stun: URL"));
            continue;
        };
        match stun::discover(socket, server, std::time::Duration::from_secs(3)) {
            Ok(public) => {
                tracing::info!(%url, local = %socket.local_addr()?, %public, "discovered the public address");
                return Ok(Some(public));
            }
            Err(error) => failures.push(format!("{url}: {error}")),
        }
    }
    anyhow::bail!(
        "no [webrtc] ice_servers STUN server told this node its public address ({}); set \
         [webrtc] nat1to1 to the external IP instead",
        failures.join("; ")
    )
}

/// `[webrtc] resend_history` unless set: several round trips even on a long path, and about
/// a third of the memory of str0m's own 3 s (a viewer of 500 kbit/s video keeps about 60
/// packets instead of 190). Janus keeps at least 200 ms (`min_nack_queue`), more on a slow
/// path.
pub const DEFAULT_RESEND_HISTORY: std::time::Duration = std::time::Duration::from_secs(1);

impl Sfu {
    /// Binds one UDP socket per worker and starts the worker threads. They stop when
    /// `shutdown` flips.
    pub fn start(
        config: &WebrtcConfig,
        candidate_ips: &[IpAddr],
        counters: &MediaCounters,
        workers: usize,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let mut senders = Vec::with_capacity(workers);
        let mut addrs = Vec::with_capacity(workers);
        let mut public_ip = None;
        for index in 0..workers {
            let port = match config.udp_port {
                0 => 0,
                first => first.checked_add(u16::try_from(index)?).ok_or_else(|| {
                    anyhow::anyhow!("[webrtc] udp_port {first} + {index} workers passes 65535")
                })?,
            };
            let socket =
                std::net::UdpSocket::bind(SocketAddr::new(config.bind, port)).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot bind the media socket {}:{port}: {e}; pick another [webrtc] \
                         udp_port",
                        config.bind
                    )
                })?;
            if let Err(error) = ion_cluster::udp::send_atomic_datagrams(&socket) {
                // Only a cost: the kernel then draws an IP ID per datagram.
                tracing::warn!(%error, "media socket: cannot set IP_MTU_DISCOVER");
            }
            let local = socket.local_addr()?;
            let candidates: Vec<SocketAddr> = match discover_public(config, &socket)? {
                Some(public) => vec![public],
                None => candidate_ips
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, local.port()))
                    .collect(),
            };
            if let Some(first) = candidates.first() {
                public_ip.get_or_insert(first.ip());
            }
            socket.set_nonblocking(true)?;
            let (tx, rx) = mpsc::channel(1024);
            let worker = worker::Worker::new(
                index,
                socket,
                candidates,
                participant::ResendHistory(config.resend_history),
                rx,
                counters.worker(index),
                shutdown.clone(),
            );
            std::thread::Builder::new()
                .name(format!("media-{index}"))
                .spawn(move || worker.run())?;
            senders.push(tx);
            addrs.push(local);
        }
        Ok(Self {
            workers: Arc::new(senders),
            addrs: Arc::new(addrs),
            next_participant: Arc::default(),
            public_ip,
        })
    }

    /// The address announced to clients (nat1to1, STUN-discovered, or the bind address).
    pub fn public_ip(&self) -> Option<IpAddr> {
        self.public_ip
    }

    pub fn media_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn new_participant_id(&self) -> ParticipantId {
        ParticipantId(
            self.next_participant
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// The worker that owns session `sid`.
    pub fn worker_for(&self, sid: &str) -> mpsc::Sender<Command> {
        // SipHash with fixed keys: the same sid always lands on the same worker.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        sid.hash(&mut hasher);
        let index = (hasher.finish() % self.workers.len() as u64) as usize;
        self.workers[index].clone()
    }
}
