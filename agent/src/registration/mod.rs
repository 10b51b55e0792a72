//! The node's presence in etcd: a lease (TTL 10 s) kept alive, the [`NodeRecord`] written on
//! it within the write budget, recovery with backoff when etcd or the lease is lost, and
//! revocation on shutdown so the node disappears at once. The media path never waits on any
//! of this: its workers count into atomics that this task samples.

mod budget;
mod host;
pub mod metadata;

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use ion_cluster::backoff::Backoff;
use ion_cluster::model::{NodeRecord, NodeState, NodeStats};
use ion_cluster::store::{EtcdOptions, LeaseId, NodeWrite, Store};
use tokio::sync::watch;

pub use budget::{LastWrite, Presence, WriteBudget};
pub use host::HostSampler;

use crate::config::AgentConfig;
use crate::drain::DrainState;
use crate::hold::Hold;
use crate::sfu::MediaSampler;

/// The parts of the node record that do not change while the agent runs.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub id: String,
    pub signal_url: String,
    pub address: String,
    pub zone: String,
    pub machine_type: String,
    pub vcpus: u32,
    pub capacity: u32,
    pub labels: std::collections::BTreeMap<String, String>,
    pub started_at: SystemTime,
    /// Other agents share this host (`[cluster] shared_host`).
    pub shared_host: bool,
}

/// Why a registration ended.
enum Ended {
    Shutdown,
}

pub struct Reporter {
    etcd: EtcdOptions,
    identity: NodeIdentity,
    budget: WriteBudget,
    lease_ttl: Duration,
    sample_interval: Duration,
    sampler: HostSampler,
    media: MediaSampler,
    shutdown: watch::Receiver<bool>,
    /// Publishes the current node lease, for session ownership.
    lease_out: watch::Sender<Option<LeaseId>>,
    /// The lease session ownership has re-claimed every live session on.
    reclaimed: watch::Receiver<Option<LeaseId>>,
    /// Live sessions are being written back on a new lease: the record says draining, so
    /// that no placement lands before their demand is back in etcd.
    restoring: bool,
    drain: watch::Receiver<DrainState>,
    hold: watch::Receiver<Hold>,
    problem: watch::Receiver<Option<String>>,
    /// The lease of the last registration, reused after an etcd restart when it is still
    /// alive so that keys on it (sessions) survive.
    lease: Option<LeaseId>,
    last_write: Option<LastWrite>,
}

/// The channels that connect the reporter to the rest of the agent.
pub struct ReporterLinks {
    pub media: MediaSampler,
    pub shutdown: watch::Receiver<bool>,
    pub lease_out: watch::Sender<Option<LeaseId>>,
    pub reclaimed: watch::Receiver<Option<LeaseId>>,
    pub drain: watch::Receiver<DrainState>,
    pub hold: watch::Receiver<Hold>,
    /// What the node reports as its problem (a failed recording), if anything.
    pub problem: watch::Receiver<Option<String>>,
}

impl Reporter {
    pub fn new(
        config: &AgentConfig,
        identity: NodeIdentity,
        sampler: HostSampler,
        links: ReporterLinks,
    ) -> Self {
        let ReporterLinks {
            media,
            shutdown,
            lease_out,
            reclaimed,
            drain,
            hold,
            problem,
        } = links;
        let report = &config.report;
        Self {
            etcd: config.etcd.clone(),
            identity,
            budget: WriteBudget {
                min_interval: report.min_write_interval,
                heartbeat_interval: report.heartbeat_interval,
                cpu_threshold: report.cpu_threshold,
                mem_threshold: report.mem_threshold,
            },
            lease_ttl: report.lease_ttl,
            sample_interval: report.sample_interval,
            sampler,
            media,
            shutdown,
            lease_out,
            reclaimed,
            restoring: false,
            drain,
            hold,
            problem,
            lease: None,
            last_write: None,
        }
    }

    /// Registers and reports until shutdown. Errors are logged and retried with backoff;
    /// this never returns early.
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(4));
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            match self.register_and_report(&mut backoff).await {
                Ok(Ended::Shutdown) => return,
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        error = format!("{error:#}"),
                        retry_in = ?delay,
                        "lost the etcd registration; registering again"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = self.shutdown.changed() => return,
                    }
                }
            }
        }
    }

    async fn register_and_report(&mut self, backoff: &mut Backoff) -> anyhow::Result<Ended> {
        let store = Store::connect(&self.etcd).await?;
        let lease = self.acquire_lease(&store).await?;
        let (mut keeper, mut keep_alive_replies) = store.keep_alive(lease).await?;
        self.last_write = None;
        // After a partition longer than the TTL, live sessions lost their keys with the old
        // lease and ownership writes them back on this one. Their demand is real; a placement
        // that landed here before it is back would not count it and could overbook the node.
        self.restoring = *self.lease_out.borrow() != Some(lease) && self.media.live_sessions() > 0;
        self.write(&store, lease).await?;
        tracing::info!(
            node = %self.identity.id,
            lease = format!("{lease:x}"),
            restoring = self.restoring,
            "registered in etcd"
        );
        backoff.reset();
        self.lease_out.send_if_modified(|current| {
            let changed = *current != Some(lease);
            *current = Some(lease);
            changed
        });
        if self.restoring {
            self.wait_reclaimed(lease).await;
            self.restoring = false;
            // Placeable again at once, not when the write budget next allows.
            self.last_write = None;
            self.write(&store, lease).await?;
        }

        let mut keep_alive_tick = tokio::time::interval(self.lease_ttl / 3);
        let mut sample_tick = tokio::time::interval(self.sample_interval);
        sample_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.shutdown.changed() => {
                    self.deregister(&store, lease).await;
                    return Ok(Ended::Shutdown);
                }
                _ = keep_alive_tick.tick() => {
                    keeper.keep_alive().await.context("sending a lease keep-alive")?;
                }
                reply = keep_alive_replies.message() => {
                    let reply = reply.context("reading lease keep-alive replies")?;
                    match reply {
                        Some(reply) if reply.ttl() > 0 => {}
                        Some(_) => {
                            self.lease = None;
                            bail!("lease {lease:x} expired");
                        }
                        None => bail!("etcd closed the lease keep-alive stream"),
                    }
                }
                _ = sample_tick.tick() => {
                    self.write(&store, lease).await?;
                }
                // A drain or hold starting or ending is written at the next chance the
                // budget allows.
                Ok(()) = self.drain.changed() => {
                    self.write(&store, lease).await?;
                }
                Ok(()) = self.hold.changed() => {
                    self.write(&store, lease).await?;
                }
                Ok(()) = self.problem.changed() => {
                    self.write(&store, lease).await?;
                }
            }
        }
    }

    /// Waits until ownership has claimed every live session on `lease`; bounded, since the
    /// keep-alives wait meanwhile.
    async fn wait_reclaimed(&mut self, lease: LeaseId) {
        let patience = self.lease_ttl / 3;
        let reclaimed = self.reclaimed.wait_for(|done| *done == Some(lease));
        if tokio::time::timeout(patience, reclaimed).await.is_err() {
            tracing::warn!(
                lease = format!("{lease:x}"),
                "live sessions not re-claimed within {patience:?}; taking placements anyway"
            );
        }
    }

    /// Reuses the previous lease while etcd still has it, else grants a new one.
    async fn acquire_lease(&mut self, store: &Store) -> anyhow::Result<LeaseId> {
        if let Some(lease) = self.lease
            && store.lease_ttl(lease).await?.is_some()
        {
            return Ok(lease);
        }
        let lease = store.grant_lease(self.lease_ttl).await?;
        self.lease = Some(lease);
        Ok(lease)
    }

    /// Samples stats and writes the record when the budget allows.
    async fn write(&mut self, store: &Store, lease: LeaseId) -> anyhow::Result<()> {
        let now = Instant::now();
        let stats = self.stats(now);
        let state = if self.restoring || self.drain.borrow().draining() {
            NodeState::Draining
        } else {
            NodeState::Ready
        };
        let presence = Presence {
            state,
            hold_for: self.hold.borrow().clone(),
            problem: self.problem.borrow().clone(),
        };
        if !self
            .budget
            .should_write(self.last_write.as_ref(), &stats, &presence, now)
        {
            return Ok(());
        }
        let record = self.record(stats.clone(), presence.clone());
        match store.put_node(&record, lease).await? {
            NodeWrite::Written { .. } => {
                self.last_write = Some(LastWrite {
                    at: now,
                    stats,
                    presence,
                });
                Ok(())
            }
            NodeWrite::HeldByOtherLease { lease: holder } => bail!(
                "node id {:?} is registered on another lease ({holder:x}): another agent uses \
                 this id, or this agent's previous run has not expired yet (up to the lease \
                 TTL); give each agent a unique [cluster] node_id",
                self.identity.id
            ),
        }
    }

    fn stats(&mut self, now: Instant) -> NodeStats {
        let host = self.sampler.sample();
        let media = self.media.sample(now);
        // Load is what this process spends, over the vCPUs the node's capacity is made of.
        let agent_cpu = host.agent_cores / f64::from(self.identity.vcpus.max(1));
        NodeStats {
            cpu: host.cpu,
            agent_cpu,
            other_cpu: host.other_cpu(),
            mem_used_bytes: host.mem_used_bytes,
            mem_total_bytes: host.mem_total_bytes,
            observed_units: agent_cpu * f64::from(self.identity.capacity),
            sessions: media.sessions,
            peers: media.peers,
            tracks_in: media.tracks_in,
            tracks_out: media.tracks_out,
            bitrate_in_bps: media.bitrate_in_bps,
            bitrate_out_bps: media.bitrate_out_bps,
            packets_out_per_sec: media.packets_out_per_sec,
        }
    }

    fn record(&self, stats: NodeStats, presence: Presence) -> NodeRecord {
        let id = &self.identity;
        NodeRecord {
            id: id.id.clone(),
            signal_url: id.signal_url.clone(),
            address: id.address.clone(),
            zone: id.zone.clone(),
            machine_type: id.machine_type.clone(),
            vcpus: id.vcpus,
            capacity: id.capacity,
            state: presence.state,
            hold_for: presence.hold_for,
            shared_host: id.shared_host,
            labels: id.labels.clone(),
            problem: presence.problem,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: id.started_at,
            stats,
            updated_at: SystemTime::now(),
        }
    }

    /// Revoking the lease deletes the node key (and everything else on the lease) at once.
    async fn deregister(&self, store: &Store, lease: LeaseId) {
        match tokio::time::timeout(Duration::from_secs(3), store.revoke_lease(lease)).await {
            Ok(Ok(())) => tracing::info!(node = %self.identity.id, "deregistered from etcd"),
            Ok(Err(error)) => tracing::warn!(%error, "could not revoke the node lease"),
            Err(_) => tracing::warn!("revoking the node lease timed out"),
        }
    }
}
