//! `ionctl bench fleet`: a synthetic fleet of N nodes kept alive from one process, so that
//! `ionctl nodes`, `ionctl top`, placement and the autoscaler can be measured against an etcd of
//! full size on one machine. Each node has a lease of its own (kept alive at a third of its
//! TTL, as an agent does), registers as an agent does (`nodes/<id>` and its placement revision
//! key on that lease), carries a few meetings on that lease, and rewrites its record at the
//! agents' stats budget: every heartbeat, and for a busy share of the nodes whose load moves
//! past the threshold, as often as the budget's minimum interval allows. Revoking the leases at
//! the end removes everything the fleet wrote.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use etcd_client::{LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn, TxnOp};
use serde::Serialize;

use crate::capacity::{ClassSpec, DEFAULT_UNITS_PER_VCPU, MachineType};
use crate::model::{NodeRecord, NodeStats, SessionClass, SessionRecord, SessionState};
use crate::store::{LeaseId, NodeWrite, Store, StoreError};

/// The machine types the fleet cycles through, so that capacities differ as in a real fleet.
pub const MACHINE_TYPES: [&str; 4] = [
    "n2-highcpu-4",
    "n2-highcpu-8",
    "n2-highcpu-16",
    "n2-highcpu-32",
];

/// Participants of each synthetic meeting.
const MEETING_SIZE: u32 = 6;

/// How the fleet behaves.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub nodes: u32,
    /// Meetings each node carries (on its lease).
    pub sessions_per_node: u32,
    pub lease_ttl: Duration,
    /// Every node writes its record at least this often (the agents' heartbeat).
    pub heartbeat: Duration,
    /// No node writes more often than this (the agents' budget).
    pub min_interval: Duration,
    /// Share of the nodes whose load moves past the budget's threshold all the time.
    pub busy_fraction: f64,
    /// Nodes registered or written at once while planting.
    pub concurrency: usize,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            nodes: 1000,
            sessions_per_node: 4,
            lease_ttl: Duration::from_secs(10),
            heartbeat: Duration::from_secs(10),
            min_interval: Duration::from_secs(2),
            busy_fraction: 0.1,
            concurrency: 64,
        }
    }
}

/// What a fleet did while it ran, as measured from etcd and from its own counts.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    pub nodes: u32,
    pub sessions: u64,
    pub seconds: f64,
    /// Stats writes of node records.
    pub stats_writes: u64,
    /// etcd's revision moved this much while the fleet ran: every write to etcd, from any
    /// client, including whatever runs beside the fleet (`ionctl bench place`).
    pub etcd_revisions: i64,
    pub writes_per_sec_per_node: f64,
    /// The fleet's own stats writes per second per node (what the agents' budget gives).
    pub stats_writes_per_sec_per_node: f64,
    pub keepalives: u64,
    /// Nodes that lost their lease (keep-alives answered too late) and registered again.
    pub reregistrations: u64,
    /// etcd's database size at the end, before the fleet's keys were removed.
    pub db_size_bytes: i64,
}

/// One synthetic node: its record, lease and keep-alive stream, and when it next writes.
struct Node {
    index: u32,
    record: NodeRecord,
    lease: LeaseId,
    keeper: LeaseKeeper,
    responses: LeaseKeepAliveStream,
    busy: bool,
    next_write: Instant,
    next_keepalive: Instant,
}

/// Counters shared by the fleet's workers.
#[derive(Default)]
struct Counts {
    writes: AtomicU64,
    keepalives: AtomicU64,
    /// Registrations after the first: nodes that lost their lease.
    registrations: AtomicU64,
}

/// A running fleet. [`Fleet::stop`] revokes every lease, which removes what it wrote.
pub struct Fleet {
    store: Store,
    options: FleetOptions,
    counts: Arc<Counts>,
    workers: Vec<tokio::task::JoinHandle<Vec<LeaseId>>>,
    stop: tokio::sync::watch::Sender<bool>,
    started: Instant,
    start_revision: i64,
}

impl Fleet {
    /// Registers the fleet under `store`'s prefix and starts keeping it alive. `progress` hears
    /// how far planting got.
    pub async fn start(
        store: &Store,
        options: FleetOptions,
        mut progress: impl FnMut(u32),
    ) -> Result<Self, StoreError> {
        let counts = Arc::new(Counts::default());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let shards = options.concurrency.clamp(1, 64);
        let mut planted: Vec<Vec<Node>> = (0..shards).map(|_| Vec::new()).collect();
        let ids: Vec<u32> = (0..options.nodes).collect();
        let mut done = 0;
        for chunk in ids.chunks(options.concurrency.max(1)) {
            let registering = chunk.iter().map(|&i| register(store, i, &options));
            for (node, i) in futures_util::future::try_join_all(registering)
                .await?
                .into_iter()
                .zip(chunk)
            {
                planted[*i as usize % shards].push(node);
            }
            done += chunk.len() as u32;
            progress(done);
        }
        let start_revision = store.revision().await?;
        let workers = planted
            .into_iter()
            .map(|nodes| {
                tokio::spawn(keep(
                    store.clone(),
                    nodes,
                    options.clone(),
                    counts.clone(),
                    stopped.clone(),
                ))
            })
            .collect();
        Ok(Self {
            store: store.clone(),
            options,
            counts,
            workers,
            stop,
            started: Instant::now(),
            start_revision,
        })
    }

    /// Stops the workers, measures, and revokes every lease (removing the fleet's keys).
    pub async fn stop(self) -> Result<FleetReport, StoreError> {
        let seconds = self.started.elapsed().as_secs_f64();
        let end_revision = self.store.revision().await?;
        let db_size_bytes = self
            .store
            .client()
            .status()
            .await
            .map_err(|e| self.store.classify(e))?
            .db_size();
        let _ = self.stop.send(true);
        let mut leases = Vec::new();
        for worker in self.workers {
            leases.extend(worker.await.expect("a fleet worker panicked"));
        }
        // A lease that cannot be revoked (already expired, or etcd gone) lapses within its
        // TTL anyway.
        for chunk in leases.chunks(self.options.concurrency.max(1)) {
            futures_util::future::join_all(chunk.iter().map(|l| self.store.revoke_lease(*l))).await;
        }
        let stats_writes = self.counts.writes.load(Ordering::Relaxed);
        let etcd_revisions = end_revision - self.start_revision;
        Ok(FleetReport {
            nodes: self.options.nodes,
            sessions: u64::from(self.options.nodes) * u64::from(self.options.sessions_per_node),
            seconds,
            stats_writes,
            etcd_revisions,
            writes_per_sec_per_node: etcd_revisions as f64
                / seconds
                / f64::from(self.options.nodes.max(1)),
            stats_writes_per_sec_per_node: stats_writes as f64
                / seconds
                / f64::from(self.options.nodes.max(1)),
            keepalives: self.counts.keepalives.load(Ordering::Relaxed),
            reregistrations: self.counts.registrations.load(Ordering::Relaxed),
            db_size_bytes,
        })
    }
}

/// The id of the fleet's node `i`.
pub fn node_id(i: u32) -> String {
    format!("fleet-{i:05}")
}

/// Registers node `i` as an agent does, then writes its meetings on its lease.
async fn register(store: &Store, i: u32, options: &FleetOptions) -> Result<Node, StoreError> {
    let machine = MachineType::by_name(MACHINE_TYPES[i as usize % MACHINE_TYPES.len()])
        .expect("in the catalogue");
    let capacity = machine.capacity(DEFAULT_UNITS_PER_VCPU);
    let now = SystemTime::now();
    let id = node_id(i);
    let mut record = NodeRecord {
        zone: format!("fleet-zone-{}", (b'a' + (i % 3) as u8) as char),
        signal_url: format!(
            "ws://10.{}.{}.{}:7000/ws",
            i / 65536,
            i / 256 % 256,
            i % 256
        ),
        address: format!("10.{}.{}.{}", i / 65536, i / 256 % 256, i % 256),
        ..NodeRecord::blank(&id, machine.name, machine.vcpus, capacity, now)
    };
    let demand = ClassSpec::of(SessionClass::Meeting)
        .demand(MEETING_SIZE)
        .expect("a meeting of 6 is valid");
    let sessions = options
        .sessions_per_node
        .min(ClassSpec::of(SessionClass::Meeting).limit(capacity) / demand.max(1));
    record.stats = NodeStats {
        sessions,
        peers: sessions * MEETING_SIZE,
        ..NodeStats::default()
    };
    let load = f64::from(sessions * demand) / f64::from(capacity.max(1));
    record = record.spending(load);
    let lease = store.grant_lease(options.lease_ttl).await?;
    match store.put_node(&record, lease).await? {
        NodeWrite::Written { .. } => {}
        NodeWrite::HeldByOtherLease { lease } => {
            return Err(StoreError::Rejected(format!(
                "node {id} is held by lease {lease:x}: another fleet runs under this prefix"
            )));
        }
    }
    let keys = store.keys();
    let on_lease = || Some(PutOptions::new().with_lease(lease));
    let mut ops = Vec::new();
    for s in 0..sessions {
        let sid = format!("{id}-m{s}");
        let session = SessionRecord {
            sid: sid.clone(),
            class: SessionClass::Meeting,
            size: MEETING_SIZE,
            demand,
            node: id.clone(),
            state: SessionState::Live,
            relays: Vec::new(),
            edge_demand: 0,
            created_at: now,
        };
        let value = serde_json::to_vec(&session).expect("SessionRecord serialises");
        ops.push(TxnOp::put(keys.session(&sid), value, on_lease()));
        ops.push(TxnOp::put(
            keys.placement(&id, &sid),
            demand.to_string(),
            on_lease(),
        ));
    }
    if !ops.is_empty() {
        ops.push(TxnOp::put(keys.placement_rev(&id), "", on_lease()));
        store
            .client()
            .txn(Txn::new().and_then(ops))
            .await
            .map_err(|e| store.classify(e))?;
    }
    let (keeper, responses) = store.keep_alive(lease).await?;
    let begun = Instant::now();
    // Spread the first writes and keep-alives over one interval, as agents started at
    // different times are.
    let offset = |period: Duration| period.mul_f64(f64::from(i % 997) / 997.0);
    Ok(Node {
        index: i,
        record,
        lease,
        keeper,
        responses,
        busy: f64::from(i % 100) < options.busy_fraction * 100.0,
        next_write: begun + offset(options.heartbeat),
        next_keepalive: begun + offset(options.lease_ttl / 3),
    })
}

/// Keeps one shard of the fleet alive until told to stop; returns its leases. A node whose
/// lease was lost (etcd too slow to answer a keep-alive in time, say) registers again, as an
/// agent does, and is counted.
async fn keep(
    store: Store,
    mut nodes: Vec<Node>,
    options: FleetOptions,
    counts: Arc<Counts>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<LeaseId> {
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return nodes.iter().map(|n| n.lease).collect(),
        }
        let now = Instant::now();
        for node in &mut nodes {
            let Err(error) = tend(&store, node, &options, &counts, now).await else {
                continue;
            };
            tracing::warn!(node = %node.record.id, %error, "fleet node lost its lease; registering again");
            let _ = store.revoke_lease(node.lease).await;
            match register(&store, node.index, &options).await {
                Ok(fresh) => {
                    *node = fresh;
                    counts.registrations.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    tracing::warn!(node = %node.record.id, %error, "fleet node cannot register; retrying");
                    node.next_keepalive = now + Duration::from_secs(1);
                    node.next_write = now + Duration::from_secs(1);
                }
            }
        }
    }
}

/// One node's due keep-alive and stats write.
async fn tend(
    store: &Store,
    node: &mut Node,
    options: &FleetOptions,
    counts: &Counts,
    now: Instant,
) -> Result<(), StoreError> {
    if node.next_keepalive <= now {
        node.keeper
            .keep_alive()
            .await
            .map_err(|e| store.classify(e))?;
        let answer = node
            .responses
            .message()
            .await
            .map_err(|e| store.classify(e))?;
        if answer.is_none_or(|a| a.ttl() <= 0) {
            return Err(StoreError::Rejected(format!(
                "lease {:x} has expired",
                node.lease
            )));
        }
        counts.keepalives.fetch_add(1, Ordering::Relaxed);
        node.next_keepalive = now + options.lease_ttl / 3;
    }
    if node.next_write <= now {
        if node.busy {
            // Load that moves past the budget's 0.10 threshold on every sample.
            let agent_cpu = node.record.stats.agent_cpu;
            let moved = if agent_cpu >= 0.5 {
                agent_cpu - 0.15
            } else {
                agent_cpu + 0.15
            };
            node.record = node.record.clone().spending(moved);
        }
        node.record.updated_at = SystemTime::now();
        if let NodeWrite::HeldByOtherLease { lease } =
            store.put_node(&node.record, node.lease).await?
        {
            return Err(StoreError::Rejected(format!(
                "the record is held by lease {lease:x}"
            )));
        }
        counts.writes.fetch_add(1, Ordering::Relaxed);
        node.next_write = now
            + if node.busy {
                options.min_interval
            } else {
                options.heartbeat
            };
    }
    Ok(())
}
