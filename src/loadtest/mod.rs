//! `ionctl loadtest`: webrtc-rs participants that join one session on an agent, publish
//! generated media at real rates and subscribe to each other, and the measurement of one
//! window: tracks and packets received of those expected, loss, one-way latency, and the
//! agent's CPU per forwarded packet. `--calibrate` ramps subscribers to measure
//! `units_per_vcpu`.
//!
//! - [`media`]: the generated VP8/Opus payloads and their stamps.
//! - [`signal`]: ion-sfu JSON-RPC over a WebSocket ([`ws`]); [`janus`]: the Janus API, for
//!   `--target janus`, and [`sfu`], which of the two a run drives.
//! - [`client`]: the webrtc-rs participant (publisher and subscriber PeerConnections);
//!   [`peer`] says what it is asked to do, [`pc`] builds its PeerConnections and [`send`]
//!   writes its media.
//! - [`stats`]: send logs, frame reassembly, per-track accounting.
//! - [`agent_cpu`]: `/proc` and `/metrics` readings.
//! - [`report`]: the results as data (the JSON of `-o json`).
//! - [`calibrate`]: the pure ramp decisions and the `units_per_vcpu` fit.
//!
//! This module runs them: [`run`] for one load test, [`run_calibration`] for the ramp.
//! Progress goes to a callback; nothing here prints.

pub mod agent_cpu;
pub mod calibrate;
pub mod client;
pub mod janus;
pub mod media;
pub mod pc;
pub mod peer;
pub mod report;
pub mod send;
pub mod sfu;
pub mod signal;
pub mod stats;
pub mod ws;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::model::NodeRecord;
use crate::store::Store;
use calibrate::{CalibrateError, Policy, Sample, Step, StopReason};
use media::{VideoShape, now_us};
use peer::{ClientError, JoinSpec, Publish};
use report::{
    AgentCpuFrom, AgentReport, CalibrationReport, ClientReport, CpuSource, NodeRow, PacketSource,
    PublisherTrackRow, Report, RunConfig, StepReport, Summary, TrackRow, WindowReport,
};
use sfu::{Joined, Sfu};
use signal::SignalError;
use stats::{Kind, SendLog, Window, account, latency_histogram};

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ws://host:port/ws` of the agent.
    pub url: String,
    /// The join token, if the agent wants one.
    pub token: Option<String>,
    /// The node, when known (for the etcd CPU reading and the report).
    pub node: Option<String>,
    pub session: String,
    pub publishers: u32,
    pub subscribers: u32,
    pub duration: Duration,
    pub video: VideoShape,
    pub audio: bool,
    /// Every PeerConnection offers and accepts RTX for VP8 (see [`JoinSpec::rtx`]).
    pub rtx: bool,
    /// Joins per second.
    pub ramp: f64,
    /// Time after the last join (and after tracks flow) before the window opens.
    pub warmup: Duration,
    /// Deadline of each network wait of a join.
    pub join_timeout: Duration,
    pub keyframe_interval: Duration,
    /// Which source of the agent's CPU to use.
    pub agent_cpu: AgentCpuFrom,
    /// Where each subscriber joins, when not at `url`: a session that spans nodes routes its
    /// viewers to its edges (`ionctl loadtest --place` asks the placer, role viewer).
    pub viewer_route: Option<ViewerRoute>,
    /// The SFU at `url`.
    pub sfu: Sfu,
}

/// A node to join: its signaling URL, the join token for it, and its id.
#[derive(Debug, Clone)]
pub struct JoinTarget {
    pub url: String,
    pub token: Option<String>,
    pub node: Option<String>,
}

/// A route's answer for one subscriber.
pub type RouteFuture = std::pin::Pin<Box<dyn Future<Output = Result<JoinTarget, String>> + Send>>;

/// Finds the node a subscriber (by uid) joins.
#[derive(Clone)]
pub struct ViewerRoute(pub Arc<dyn Fn(String) -> RouteFuture + Send + Sync>);

impl std::fmt::Debug for ViewerRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ViewerRoute")
    }
}

impl Config {
    /// The run's own description, for the report.
    fn describe(&self) -> RunConfig {
        RunConfig {
            target: self.sfu,
            url: self.url.clone(),
            node: self.node.clone(),
            session: self.session.clone(),
            publishers: self.publishers,
            subscribers: self.subscribers,
            duration_s: self.duration.as_secs_f64(),
            video_bitrate_bps: self.video.bitrate_bps,
            video_fps: self.video.fps,
            audio: self.audio,
            rtx: self.rtx,
            ramp_per_s: self.ramp,
            warmup_s: self.warmup.as_secs_f64(),
        }
    }
}

/// How the load test failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot reach the agent: {0}; is it running, and is the URL right (ws://HOST:PORT/ws)?"
    )]
    Unreachable(SignalError),
    #[error(
        "the agent refused the join of {uid} to session {sid}: {message} (JSON-RPC error {code})"
    )]
    Refused {
        uid: String,
        sid: String,
        code: i64,
        message: String,
    },
    #[error("{uid} could not join session {sid}: {source}")]
    Join {
        uid: String,
        sid: String,
        source: ClientError,
    },
    #[error("{uid} could not publish: {source}")]
    Publish { uid: String, source: ClientError },
    #[error(
        "calibration needs the agent's CPU: run it against a local agent (a loopback URL), or \
         give --etcd so its node record can be read"
    )]
    NoAgentCpu,
    #[error(transparent)]
    Calibrate(#[from] CalibrateError),
}

impl Error {
    fn join(uid: &str, sid: &str, error: ClientError) -> Self {
        match error {
            ClientError::Signal(
                e @ (SignalError::Connect { .. } | SignalError::ConnectTimeout { .. }),
            ) => Error::Unreachable(e),
            ClientError::Signal(SignalError::Rpc { code, message, .. }) => Error::Refused {
                uid: uid.to_owned(),
                sid: sid.to_owned(),
                code,
                message,
            },
            source => Error::Join {
                uid: uid.to_owned(),
                sid: sid.to_owned(),
                source,
            },
        }
    }

    /// The agent could not be reached or would not let the participants in.
    pub fn is_unreachable_or_refused(&self) -> bool {
        matches!(
            self,
            Error::Unreachable(_) | Error::Refused { .. } | Error::Join { .. }
        )
    }
}

/// What the run reports while it works.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Participants joined (or failed) of those to join.
    Joining {
        done: u32,
        total: u32,
    },
    /// Remote tracks flowing of those expected.
    Waiting {
        flowing: u64,
        expected: u64,
    },
    WarmingUp,
    /// Seconds measured of the window.
    Measuring {
        elapsed: Duration,
        total: Duration,
    },
    /// Calibration: a step with this many subscribers begins.
    Step {
        subscribers: u32,
    },
    Closing,
}

/// Where the agent's CPU is read.
pub enum AgentProbe {
    /// A process on this host.
    Local {
        pid: u32,
    },
    /// The node record in etcd; found by node id or by signal URL.
    Etcd {
        store: Box<Store>,
        node: Option<String>,
        url: String,
    },
    None,
}

impl AgentProbe {
    /// A local agent when `url`'s host is loopback and this user can see the process
    /// listening on its port; else etcd when a store is given.
    pub fn resolve(url: &str, store: Option<Store>, node: Option<String>) -> AgentProbe {
        if let Some(port) = local_port(url)
            && let Some(pid) = agent_cpu::pid_listening_on(port)
        {
            return AgentProbe::Local { pid };
        }
        match store {
            Some(store) => AgentProbe::Etcd {
                store: Box::new(store),
                node,
                url: url.to_owned(),
            },
            None => AgentProbe::None,
        }
    }

    async fn node_record(&self) -> Option<NodeRecord> {
        let AgentProbe::Etcd { store, node, url } = self else {
            return None;
        };
        let read = async {
            match node {
                Some(id) => store.get::<NodeRecord>(&store.keys().node(id)).await.ok()?,
                None => {
                    let bare = url.split('?').next().unwrap_or(url);
                    let nodes = store.nodes().await.ok()?;
                    nodes
                        .items
                        .into_iter()
                        .map(|(_, n)| n)
                        .find(|n| n.signal_url == bare)
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(3), read)
            .await
            .ok()
            .flatten()
    }
}

/// The host and port of `url` when its host is an address of this machine: `localhost`, a
/// loopback address, or an address one of its interfaces has (the SFU in a network
/// namespace, as `scripts/janus` runs Janus, is reached at such an address).
pub fn local_address(url: &str) -> Option<(IpAddr, u16)> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let port = parsed.port_or_known_default()?;
    let ip = match parsed.host_str()? {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        host => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?,
    };
    // Only an address of this machine can be bound (without IP_FREEBIND).
    let local = ip.is_loopback() || std::net::UdpSocket::bind((ip, 0)).is_ok();
    local.then_some((ip, port))
}

/// The port of `url` when the SFU there runs on this machine.
pub fn local_port(url: &str) -> Option<u16> {
    local_address(url).map(|(_, port)| port)
}

/// The address the PCs bind: the SFU's own for a local SFU, so that both ends gather
/// candidates on the same interface (webrtc-rs pairs no loopback candidate with another
/// interface's), and any address otherwise.
fn bind_address(url: &str) -> IpAddr {
    local_address(url).map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |(ip, _)| ip)
}

/// The `/metrics` URL beside `/ws`.
fn metrics_url(url: &str) -> Option<String> {
    let mut parsed = reqwest::Url::parse(url).ok()?;
    let scheme = if parsed.scheme() == "wss" {
        "https"
    } else {
        "http"
    };
    parsed.set_scheme(scheme).ok()?;
    parsed.set_path("/metrics");
    parsed.set_query(None);
    Some(parsed.to_string())
}

/// A publisher track of the run.
struct SourceTrack {
    index: u32,
    publisher: String,
    kind: Kind,
    log: Arc<SendLog>,
}

struct Member {
    participant: Arc<Joined>,
    /// The publisher track indexes it publishes (it expects all others).
    own: Vec<u32>,
    /// The node it joined, when known.
    node: Option<String>,
}

/// Participants in one session, and what they publish.
struct Session {
    config: Config,
    window: Arc<Window>,
    members: Vec<Member>,
    sources: Vec<SourceTrack>,
    join_errors: Vec<String>,
    next_subscriber: u32,
    bind: IpAddr,
}

impl Session {
    fn spec(&self, uid: &str) -> JoinSpec {
        JoinSpec {
            url: self.config.url.clone(),
            sid: self.config.session.clone(),
            uid: uid.to_owned(),
            token: self.config.token.clone(),
            config: None,
            timeout: self.config.join_timeout,
            bind: self.bind,
            rtx: self.config.rtx,
        }
    }

    /// Joins the publishers one by one (any failure ends the run) and starts their media.
    async fn start(
        config: Config,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Session, Error> {
        let mut session = Session {
            window: Arc::new(Window::default()),
            members: Vec::new(),
            sources: Vec::new(),
            join_errors: Vec::new(),
            next_subscriber: 0,
            bind: bind_address(&config.url),
            config,
        };
        let total = session.config.publishers + session.config.subscribers;
        for p in 0..session.config.publishers {
            let uid = format!("pub-{p}");
            let participant = Joined::join(
                session.config.sfu,
                &session.spec(&uid),
                session.window.clone(),
                session.config.publishers,
                false,
            )
            .await
            .map_err(|e| Error::join(&uid, &session.config.session, e))?;
            let participant = Arc::new(participant);
            let mut publish = Vec::new();
            let mut kinds = vec![Kind::Video];
            if session.config.audio {
                kinds.push(Kind::Audio);
            }
            for kind in kinds {
                let index = session.sources.len() as u32;
                let log = Arc::new(SendLog::default());
                session.sources.push(SourceTrack {
                    index,
                    publisher: uid.clone(),
                    kind,
                    log: log.clone(),
                });
                publish.push(Publish {
                    kind,
                    index,
                    log,
                    lower: None,
                });
            }
            if let Err(source) = participant
                .publish(
                    &publish,
                    session.config.video,
                    session.config.keyframe_interval,
                )
                .await
            {
                participant.close().await;
                return Err(Error::Publish { uid, source });
            }
            session.members.push(Member {
                participant,
                own: publish.iter().map(|p| p.index).collect(),
                node: session.config.node.clone(),
            });
            progress(Progress::Joining { done: p + 1, total });
        }
        let others = session.config.publishers.saturating_sub(1);
        for member in &session.members {
            let participant = &member.participant;
            if let Err(error) = participant.subscribe_to_other_publishers(others).await {
                let uid = participant.uid().to_owned();
                return Err(Error::join(&uid, &session.config.session, error));
            }
        }
        Ok(session)
    }

    /// Joins `count` more subscribers at the ramp rate, concurrently. When the very first
    /// participant cannot join, the run ends with that error; later failures are counted.
    async fn add_subscribers(
        &mut self,
        count: u32,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), Error> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let period = Duration::from_secs_f64(1.0 / self.config.ramp.max(0.001));
        let mut next = tokio::time::Instant::now();
        let (mut spawned, mut done) = (0u32, 0u32);
        let before = self.members.len() as u32;
        let total = self.config.publishers + self.next_subscriber + count;
        while done < count {
            tokio::select! {
                _ = tokio::time::sleep_until(next), if spawned < count => {
                    let uid = format!("sub-{}", self.next_subscriber);
                    self.next_subscriber += 1;
                    let mut spec = self.spec(&uid);
                    let mut node = self.config.node.clone();
                    let route = self.config.viewer_route.clone();
                    let (sfu, publishers) = (self.config.sfu, self.config.publishers);
                    let window = self.window.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        if let Some(route) = route {
                            match (route.0)(uid.clone()).await {
                                Ok(target) => {
                                    spec.url = target.url;
                                    spec.token = target.token;
                                    node = target.node;
                                }
                                Err(why) => {
                                    let _ = tx.send((uid, Err(JoinFailure::Route(why)), node));
                                    return;
                                }
                            }
                        }
                        let result = Joined::join(sfu, &spec, window, publishers, true).await;
                        let _ = tx.send((uid, result.map_err(JoinFailure::Join), node));
                    });
                    spawned += 1;
                    next += period;
                }
                Some((uid, result, node)) = rx.recv() => {
                    done += 1;
                    match result {
                        Ok(participant) => self.members.push(Member {
                            participant: Arc::new(participant),
                            own: Vec::new(),
                            node,
                        }),
                        Err(JoinFailure::Join(error)) if self.members.is_empty() => {
                            return Err(Error::join(&uid, &self.config.session, error));
                        }
                        Err(JoinFailure::Join(error)) => {
                            self.join_errors.push(format!("{uid} could not join: {error}"));
                        }
                        Err(JoinFailure::Route(why)) => {
                            self.join_errors.push(format!("{uid} could not be placed: {why}"));
                        }
                    }
                    progress(Progress::Joining { done: before + done, total });
                }
            }
        }
        Ok(())
    }

    /// (member, source) pairs that should flow.
    fn expected_pairs(&self) -> Vec<(usize, u32)> {
        let mut pairs = Vec::new();
        for (m, member) in self.members.iter().enumerate() {
            for source in &self.sources {
                if !member.own.contains(&source.index) {
                    pairs.push((m, source.index));
                }
            }
        }
        pairs
    }

    fn flowing_pairs(&self) -> HashSet<(usize, u32)> {
        let mut flowing = HashSet::new();
        for (m, member) in self.members.iter().enumerate() {
            for track in member.participant.tracks() {
                if let (Some(source), packets, _, _) = track.stats.peek()
                    && packets > 0
                {
                    flowing.insert((m, source));
                }
            }
        }
        flowing
    }

    /// Polls until every expected track flows, or `timeout`.
    async fn wait_flowing(&self, timeout: Duration, progress: &mut (dyn FnMut(Progress) + Send)) {
        let deadline = Instant::now() + timeout;
        let expected = self.expected_pairs();
        loop {
            let flowing = self.flowing_pairs();
            let count = expected.iter().filter(|p| flowing.contains(p)).count() as u64;
            progress(Progress::Waiting {
                flowing: count,
                expected: expected.len() as u64,
            });
            if count == expected.len() as u64 || Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// One measurement window of `duration`.
    async fn measure(
        &self,
        duration: Duration,
        probe: &AgentProbe,
        http: &reqwest::Client,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Measured {
        // Janus has no /metrics; its forwarded packets are counted where they arrive.
        let metrics = match self.config.sfu {
            Sfu::Ion => metrics_url(&self.config.url),
            Sfu::Janus => None,
        };
        let agent_pid = match probe {
            AgentProbe::Local { pid } => Some(*pid),
            _ => None,
        };
        // Open the window a little ahead, so every packet sent inside it is sent after the
        // receivers can see it is open.
        let start_us = now_us() + 200_000;
        self.window.open(start_us);
        sleep_until_us(start_us).await;
        let at0 = Instant::now();
        let agent0 = agent_pid.and_then(|pid| agent_cpu::process_cpu_seconds(Some(pid)));
        let client0 = agent_cpu::process_cpu_seconds(None);
        let client_cpus = agent_cpu::allowed_cpu_ids(None);
        let host0 = agent_cpu::cpu_jiffies(&client_cpus);
        let out0 = match &metrics {
            Some(url) => agent_cpu::scrape(http, url).await,
            None => None,
        };
        let counters0 = self.counters();
        while at0.elapsed() < duration {
            progress(Progress::Measuring {
                elapsed: at0.elapsed(),
                total: duration,
            });
            let left = duration.saturating_sub(at0.elapsed());
            tokio::time::sleep(left.min(Duration::from_millis(250))).await;
        }
        progress(Progress::Measuring {
            elapsed: duration,
            total: duration,
        });
        let end_us = now_us() + 50_000;
        self.window.close(end_us);
        sleep_until_us(end_us).await;
        let seconds = at0.elapsed().as_secs_f64();
        let agent1 = agent_pid.and_then(|pid| agent_cpu::process_cpu_seconds(Some(pid)));
        let client1 = agent_cpu::process_cpu_seconds(None);
        let host1 = agent_cpu::cpu_jiffies(&client_cpus);
        let out1 = match &metrics {
            Some(url) => agent_cpu::scrape(http, url).await,
            None => None,
        };
        let counters1 = self.counters();
        let record = probe.node_record().await;
        // Packets sent just before the end are still on their way.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let snapshots: Vec<Vec<stats::Received>> = self
            .members
            .iter()
            .map(|m| {
                m.participant
                    .tracks()
                    .iter()
                    .map(|t| t.stats.take())
                    .collect()
            })
            .collect();
        let agent_vcpus = match probe {
            AgentProbe::Local { pid } => agent_cpu::allowed_cpus(Some(*pid)).map(f64::from),
            _ => record.as_ref().map(|r| f64::from(r.vcpus)),
        };
        let (cpu_source, agent_cpu_seconds) = report::choose_agent_cpu(
            self.config.agent_cpu,
            agent0.zip(agent1).map(|(a, b)| b - a),
            out0.zip(out1)
                .and_then(|(a, b)| Some(b.cpu_seconds? - a.cpu_seconds?)),
            record
                .as_ref()
                .map(|r| r.stats.cpu * f64::from(r.vcpus) * seconds),
        );
        let rss = agent_pid
            .and_then(agent_cpu::rss_bytes)
            .or_else(|| out1.and_then(|o| o.rss_bytes).map(|b| b as u64));
        Measured {
            start_us,
            end_us,
            seconds,
            snapshots,
            counters0,
            counters1,
            packets_out: out0.zip(out1).map(|(a, b)| b.packets_out - a.packets_out),
            send_drops: out0
                .zip(out1)
                .and_then(|(a, b)| Some(b.send_drops? - a.send_drops?)),
            forward_errors: out0
                .zip(out1)
                .and_then(|(a, b)| Some(b.forward_errors? - a.forward_errors?)),
            host_busy: host0.zip(host1).and_then(|((b0, t0), (b1, t1))| {
                let total = t1.saturating_sub(t0);
                (total > 0).then(|| b1.saturating_sub(b0) as f64 / total as f64)
            }),
            agent_pid,
            agent_vcpus,
            cpu_source,
            agent_cpu_seconds,
            rss,
            client_cpu_seconds: client0.zip(client1).map(|(a, b)| b - a),
            client_vcpus: agent_cpu::allowed_cpus(None).map(f64::from),
        }
    }

    /// RTP packets and bytes per (member, source) so far.
    fn counters(&self) -> BTreeMap<(usize, u32), (u64, u64)> {
        let mut counters = BTreeMap::new();
        for (m, member) in self.members.iter().enumerate() {
            for track in member.participant.tracks() {
                if let (Some(source), packets, bytes, _) = track.stats.peek() {
                    let entry = counters.entry((m, source)).or_insert((0, 0));
                    entry.0 += packets;
                    entry.1 += bytes;
                }
            }
        }
        counters
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = self.join_errors.clone();
        for member in &self.members {
            let participant = &member.participant;
            for problem in participant.problems() {
                problems.push(format!("{}: {problem}", participant.uid()));
            }
            if let Some(reason) = participant.signal_closed() {
                problems.push(format!("{}: signaling closed: {reason}", participant.uid()));
            }
        }
        problems
    }

    /// The report of one window.
    fn report(&self, m: &Measured) -> Report {
        let window_from = m.start_us;
        let warmup_us = self.config.warmup.as_micros() as u64;
        let mut tracks = Vec::new();
        let mut per_source: BTreeMap<u32, (PublisherTrackRow, hdrhistogram::Histogram<u64>)> = self
            .sources
            .iter()
            .map(|s| {
                (
                    s.index,
                    (
                        PublisherTrackRow {
                            publisher: s.publisher.clone(),
                            kind: s.kind,
                            index: s.index,
                            sent: s.log.sent_between(m.start_us, m.end_us),
                            subscribers_expected: 0,
                            subscribers_receiving: 0,
                            packets_expected: 0,
                            packets_received: 0,
                            loss: 0.0,
                            bitrate_bps: 0.0,
                            latency_p50_ms: None,
                            latency_p99_ms: None,
                        },
                        latency_histogram(),
                    ),
                )
            })
            .collect();
        let mut all_latency = latency_histogram();
        // Per node the subscribers joined: (subscribers, expected, received, latency).
        let mut per_node: BTreeMap<
            String,
            (BTreeSet<usize>, u64, u64, hdrhistogram::Histogram<u64>),
        > = BTreeMap::new();
        let (mut expected_total, mut received_total) = (0u64, 0u64);
        let mut tracks_received = 0u64;
        let mut rtp_total = 0u64;
        let mut bits_total = 0.0;
        let expected = self.expected_pairs();
        for &(member, index) in &expected {
            let Some(source) = self.sources.iter().find(|s| s.index == index) else {
                continue;
            };
            let snapshots: Vec<&stats::Received> = m.snapshots[member]
                .iter()
                .filter(|s| s.source == Some(index))
                .collect();
            let first = snapshots.iter().filter_map(|s| s.first_stamp_us).min();
            let from = match first {
                Some(first) => window_from.max(first + warmup_us),
                None => window_from,
            };
            let arrivals: Vec<stats::Arrival> = snapshots
                .iter()
                .flat_map(|s| s.arrivals.iter().copied())
                .collect();
            let a = account(&arrivals, index, &source.log, from, m.end_us);
            let (p0, b0) = m.counters0.get(&(member, index)).copied().unwrap_or((0, 0));
            let (p1, b1) = m.counters1.get(&(member, index)).copied().unwrap_or((0, 0));
            let rtp_packets = p1.saturating_sub(p0);
            let bitrate = (b1.saturating_sub(b0) * 8) as f64 / m.seconds.max(1e-9);
            rtp_total += rtp_packets;
            bits_total += bitrate;
            expected_total += a.expected;
            received_total += a.received;
            if a.received > 0 {
                tracks_received += 1;
            }
            let _ = all_latency.add(&a.latency_us);
            if let Some(node) = &self.members[member].node {
                let entry = per_node
                    .entry(node.clone())
                    .or_insert_with(|| (BTreeSet::new(), 0, 0, latency_histogram()));
                entry.0.insert(member);
                entry.1 += a.expected;
                entry.2 += a.received;
                let _ = entry.3.add(&a.latency_us);
            }
            if let Some((row, hist)) = per_source.get_mut(&index) {
                row.subscribers_expected += 1;
                if a.received > 0 {
                    row.subscribers_receiving += 1;
                }
                row.packets_expected += a.expected;
                row.packets_received += a.received;
                row.bitrate_bps += bitrate;
                let _ = hist.add(&a.latency_us);
            }
            tracks.push(TrackRow {
                subscriber: self.members[member].participant.uid().to_owned(),
                publisher: source.publisher.clone(),
                kind: source.kind,
                index,
                rtp_packets,
                packets_expected: a.expected,
                packets_received: a.received,
                loss: report::loss(a.expected, a.received),
                bitrate_bps: bitrate,
                latency_p50_ms: report::percentile_ms(&a.latency_us, 0.5),
                latency_p99_ms: report::percentile_ms(&a.latency_us, 0.99),
            });
        }
        let publisher_tracks = per_source
            .into_values()
            .map(|(mut row, hist)| {
                row.loss = report::loss(row.packets_expected, row.packets_received);
                row.bitrate_bps /= f64::from(row.subscribers_receiving.max(1));
                row.latency_p50_ms = report::percentile_ms(&hist, 0.5);
                row.latency_p99_ms = report::percentile_ms(&hist, 0.99);
                row
            })
            .collect();
        let (packets_source, packets_forwarded) = match m.packets_out {
            Some(out) if out > 0.0 => (PacketSource::Metrics, out),
            _ => (PacketSource::Subscribers, rtp_total as f64),
        };
        let (per_million, per_core_second) =
            report::efficiency(m.agent_cpu_seconds, packets_forwarded);
        Report {
            schema: report::SCHEMA,
            config: self.config.describe(),
            window: WindowReport {
                start_us: m.start_us,
                end_us: m.end_us,
                seconds: m.seconds,
            },
            summary: Summary {
                participants_joined: self.members.len() as u32,
                join_errors: self.join_errors.len() as u32,
                tracks_expected: expected.len() as u64,
                tracks_received,
                packets_expected: expected_total,
                packets_received: received_total,
                loss: report::loss(expected_total, received_total),
                bitrate_bps: bits_total,
                latency_p50_ms: report::percentile_ms(&all_latency, 0.5),
                latency_p99_ms: report::percentile_ms(&all_latency, 0.99),
                latency_max_ms: (!all_latency.is_empty())
                    .then(|| all_latency.max() as f64 / 1000.0),
                errors: report::count_errors(self.problems()),
            },
            agent: AgentReport {
                cpu_source: m.cpu_source,
                pid: m.agent_pid,
                vcpus: m.agent_vcpus,
                cpu_seconds: m.agent_cpu_seconds,
                cores_busy: m.agent_cpu_seconds.map(|c| c / m.seconds.max(1e-9)),
                rss_bytes: m.rss,
                packets_source,
                packets_forwarded,
                send_drops: m.send_drops,
                forward_errors: m.forward_errors,
                cpu_seconds_per_million_packets: per_million,
                packets_per_core_second: per_core_second,
            },
            client: ClientReport {
                cpu_seconds: m.client_cpu_seconds,
                cores_busy: m.client_cpu_seconds.map(|c| c / m.seconds.max(1e-9)),
                vcpus: m.client_vcpus,
                host_busy: m.host_busy,
            },
            publisher_tracks,
            nodes: per_node
                .into_iter()
                .map(|(node, (members, expected, received, hist))| NodeRow {
                    node,
                    subscribers: members.len() as u32,
                    packets_expected: expected,
                    packets_received: received,
                    loss: report::loss(expected, received),
                    latency_p50_ms: report::percentile_ms(&hist, 0.5),
                    latency_p99_ms: report::percentile_ms(&hist, 0.99),
                })
                .collect(),
            tracks,
        }
    }

    /// Everyone leaves, concurrently, each within a bound.
    async fn close(self) {
        let closing: Vec<_> = self
            .members
            .into_iter()
            .map(|m| tokio::spawn(async move { m.participant.close().await }))
            .collect();
        for handle in closing {
            let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
        }
    }
}

/// Why a subscriber is not in the session.
enum JoinFailure {
    Route(String),
    Join(ClientError),
}

/// Raw readings of one window.
struct Measured {
    start_us: u64,
    end_us: u64,
    seconds: f64,
    snapshots: Vec<Vec<stats::Received>>,
    counters0: BTreeMap<(usize, u32), (u64, u64)>,
    counters1: BTreeMap<(usize, u32), (u64, u64)>,
    packets_out: Option<f64>,
    send_drops: Option<f64>,
    forward_errors: Option<f64>,
    host_busy: Option<f64>,
    agent_pid: Option<u32>,
    agent_vcpus: Option<f64>,
    cpu_source: CpuSource,
    agent_cpu_seconds: Option<f64>,
    rss: Option<u64>,
    client_cpu_seconds: Option<f64>,
    client_vcpus: Option<f64>,
}

async fn sleep_until_us(at_us: u64) {
    let now = now_us();
    if at_us > now {
        tokio::time::sleep(Duration::from_micros(at_us - now)).await;
    }
}

/// How long to wait for tracks to flow after the joins.
fn flow_timeout(config: &Config) -> Duration {
    Duration::from_secs(10) + Duration::from_millis(u64::from(config.subscribers) * 20)
}

/// One load test: join, warm up, measure one window, leave.
pub async fn run(
    config: Config,
    probe: &AgentProbe,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Report, Error> {
    let http = reqwest::Client::new();
    let subscribers = config.subscribers;
    let duration = config.duration;
    let warmup = config.warmup;
    let timeout = flow_timeout(&config);
    let mut session = Session::start(config, progress).await?;
    let outcome = async {
        session.add_subscribers(subscribers, progress).await?;
        session.wait_flowing(timeout, progress).await;
        progress(Progress::WarmingUp);
        tokio::time::sleep(warmup).await;
        let measured = session.measure(duration, probe, &http, progress).await;
        Ok::<_, Error>(session.report(&measured))
    }
    .await;
    progress(Progress::Closing);
    session.close().await;
    outcome
}

/// `--calibrate`: one publisher at the reference rate, subscribers ramped step by step by
/// [`calibrate::next_step`]; each step is measured for `config.duration`.
pub async fn run_calibration(
    config: Config,
    policy: Policy,
    probe: &AgentProbe,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<CalibrationReport, Error> {
    if matches!(probe, AgentProbe::None) {
        return Err(Error::NoAgentCpu);
    }
    let http = reqwest::Client::new();
    let url = config.url.clone();
    let duration = config.duration;
    let warmup = config.warmup;
    let mut session = Session::start(config, progress).await?;
    let mut samples: Vec<Sample> = Vec::new();
    let mut steps = Vec::new();
    let outcome = async {
        let reason = loop {
            let subscribers = match calibrate::next_step(&samples, &policy) {
                Step::Continue { subscribers } => subscribers,
                Step::Stop(reason) => break reason,
            };
            progress(Progress::Step { subscribers });
            let more = subscribers.saturating_sub(session.next_subscriber);
            session.config.subscribers = subscribers;
            session.add_subscribers(more, progress).await?;
            session
                .wait_flowing(flow_timeout(&session.config), progress)
                .await;
            progress(Progress::WarmingUp);
            tokio::time::sleep(warmup).await;
            let measured = session.measure(duration, probe, &http, progress).await;
            let report = session.report(&measured);
            let (Some(agent_cpu), Some(agent_vcpus)) =
                (report.agent.cpu_seconds, report.agent.vcpus)
            else {
                return Err(Error::NoAgentCpu);
            };
            let receiving = session.members.len().saturating_sub(1) as u32;
            samples.push(Sample {
                subscribers,
                units: f64::from(receiving),
                agent_cores_busy: agent_cpu / measured.seconds.max(1e-9),
                agent_vcpus,
                // A core shared with other work starves the load generator as surely as its own
                // load does: the busier of the two counts.
                client_cores_busy: report.client.cores_busy.unwrap_or(0.0).max(
                    report.client.host_busy.unwrap_or(0.0) * report.client.vcpus.unwrap_or(1.0),
                ),
                client_vcpus: report.client.vcpus.unwrap_or(1.0),
                loss: report.summary.loss,
            });
            steps.push(StepReport {
                subscribers,
                summary: report.summary,
                agent: report.agent,
                client: report.client,
            });
        };
        let calibration = calibrate::calibrate(&samples, reason, &policy)?;
        Ok::<_, Error>((reason, calibration))
    }
    .await;
    progress(Progress::Closing);
    session.close().await;
    let (_reason, calibration): (StopReason, _) = outcome?;
    let n = calibration.units_per_vcpu;
    Ok(CalibrationReport {
        schema: report::CALIBRATION_SCHEMA,
        url,
        policy,
        samples,
        steps,
        calibration,
        config_line: format!("units_per_vcpu = {n}"),
        env: format!("ION_AGENT_CLUSTER__UNITS_PER_VCPU={n}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_and_metrics() {
        assert_eq!(local_port("ws://127.0.0.1:7000/ws"), Some(7000));
        assert_eq!(local_port("ws://localhost:7000/ws"), Some(7000));
        assert_eq!(local_port("ws://[::1]:7000/ws"), Some(7000));
        // TEST-NET-2: documentation only, never a local address.
        assert_eq!(local_port("ws://198.51.100.7:7000/ws"), None);
        assert_eq!(local_port("ws://example.invalid:7000/ws"), None);
        assert_eq!(
            bind_address("ws://localhost:7000/ws"),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            bind_address("ws://198.51.100.7:7000/ws"),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
        assert_eq!(
            metrics_url("ws://127.0.0.1:7000/ws?access_token=x").as_deref(),
            Some("http://127.0.0.1:7000/metrics")
        );
    }
}
