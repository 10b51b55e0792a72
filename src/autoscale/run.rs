//! The autoscaler loop: win the etcd election on `election/autoscaler`, then every tick read
//! a snapshot, keep the instance records and each node's idle time current, [`plan`], and carry
//! the actions out through the provider, in parallel. It reports what it does through a
//! callback; it never prints. On shutdown it resigns, so another replica takes over at once.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use etcd_client::{LeaderKey, ResignOptions};
use thiserror::Error;
use tokio::task::JoinSet;

use super::{Action, Cover, DRAIN_REASON_PREFIX, Policy, SPAWN_WINDOW, Snapshot, plan_detailed};
use crate::model::{DrainRequest, InstanceRecord, InstanceState, NodeRecord};
use crate::placer::Mirror;
use crate::provider::lifecycle::{self, LifecycleError, Outcome};
use crate::provider::{AgentBootstrap, InstanceSpec, Progress, Provider, generate_name};
use crate::store::{LeaseId, Store, StoreError};

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub policy: Policy,
    /// Time between ticks.
    pub interval: Duration,
    /// TTL of the election lease: a dead leader's successor takes over within it.
    pub lease_ttl: Duration,
    /// One tick, then resign and return.
    pub once: bool,
    /// This replica's name in the election.
    pub identity: String,
    /// The hold TTL passed to agents of held instances.
    pub hold_ttl: Option<Duration>,
}

/// What the loop tells its caller.
#[derive(Debug)]
pub enum Report {
    Campaigning {
        identity: String,
    },
    Leader {
        identity: String,
    },
    /// An action was carried out, or failed.
    Acted {
        action: Action,
        outcome: Box<Result<Outcome, LifecycleError>>,
    },
    /// An instance's agent registered: its record went from booting to ready.
    Registered {
        instance: String,
    },
    /// A demand's own instance registered but has not taken it; no other is spawned for it
    /// during the grace period. Reported when the reason changes.
    Waiting {
        sid: String,
        node: String,
        why: String,
    },
    Resigned,
}

#[derive(Debug, Error)]
pub enum AutoscaleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("etcd election on {key}: {source}")]
    Election {
        key: String,
        source: etcd_client::Error,
    },
    #[error("lost the autoscaler lease; another replica may lead now")]
    LostLease,
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
}

/// Campaigns, then runs ticks until `shutdown` resolves (or after one tick with `once`).
pub async fn run(
    store: Store,
    provider: Arc<dyn Provider>,
    settings: Settings,
    report: Arc<dyn Fn(Report) + Send + Sync>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AutoscaleError> {
    tokio::pin!(shutdown);
    let election = store.keys().autoscaler_election();
    let lease = store.grant_lease(settings.lease_ttl).await?;
    let alive = Arc::new(AtomicBool::new(true));
    let keeper = keep_alive(store.clone(), lease, settings.lease_ttl, alive.clone()).await?;
    report(Report::Campaigning {
        identity: settings.identity.clone(),
    });
    let mut client = store.client();
    let campaign = client.campaign(election.as_str(), settings.identity.as_str(), lease);
    let leader = tokio::select! {
        response = campaign => response.map_err(|source| AutoscaleError::Election { key: election.clone(), source })?,
        () = &mut shutdown => {
            keeper.abort();
            let _ = store.revoke_lease(lease).await;
            return Ok(());
        }
    };
    let Some(leader) = leader.leader().cloned() else {
        keeper.abort();
        return Err(AutoscaleError::LostLease);
    };
    report(Report::Leader {
        identity: settings.identity.clone(),
    });
    // Followed by a watch from here on, so a tick reads memory rather than the whole
    // cluster from etcd (docs/operations.md, "Autoscaling").
    let mirror = match Mirror::start(&store).await {
        Ok(mirror) => mirror,
        Err(error) => {
            resign(&store, leader, lease).await;
            keeper.abort();
            return Err(error.into());
        }
    };
    let mut autoscaler = Autoscaler {
        mirror,
        store: store.clone(),
        provider,
        settings: settings.clone(),
        idle_since: BTreeMap::new(),
        recent_spawns: BTreeMap::new(),
        report: report.clone(),
    };
    let result = async {
        let mut ticker = tokio::time::interval(settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = &mut shutdown => return Ok(()),
            }
            if !alive.load(Ordering::SeqCst) || !still_leader(&store, &leader).await? {
                return Err(AutoscaleError::LostLease);
            }
            if let Err(error) = autoscaler.tick().await {
                tracing::warn!(%error, "autoscaler tick failed; trying again next tick");
            }
            if settings.once {
                return Ok(());
            }
        }
    }
    .await;
    resign(&store, leader, lease).await;
    keeper.abort();
    report(Report::Resigned);
    result
}

async fn resign(store: &Store, leader: LeaderKey, lease: LeaseId) {
    let mut client = store.client();
    if let Err(error) = client
        .resign(Some(ResignOptions::new().with_leader(leader)))
        .await
    {
        tracing::warn!(%error, "cannot resign; the lease is revoked instead");
    }
    if let Err(error) = store.revoke_lease(lease).await {
        tracing::warn!(%error, "cannot revoke the autoscaler lease; it expires with its TTL");
    }
}

/// The leader key still exists: our lease has not expired.
async fn still_leader(store: &Store, leader: &LeaderKey) -> Result<bool, AutoscaleError> {
    let mut client = store.client();
    let response = client
        .get(leader.key(), None)
        .await
        .map_err(|e| AutoscaleError::Store(store.classify(e)))?;
    Ok(!response.kvs().is_empty())
}

/// Keeps the election lease alive at a third of its TTL; clears `alive` when that fails.
async fn keep_alive(
    store: Store,
    lease: LeaseId,
    ttl: Duration,
    alive: Arc<AtomicBool>,
) -> Result<tokio::task::JoinHandle<()>, AutoscaleError> {
    let (mut keeper, mut stream) = store.keep_alive(lease).await?;
    Ok(tokio::spawn(async move {
        let mut ticker = tokio::time::interval((ttl / 3).max(Duration::from_millis(300)));
        loop {
            ticker.tick().await;
            let ok = keeper.keep_alive().await.is_ok()
                && matches!(stream.message().await, Ok(Some(r)) if r.ttl() > 0);
            if !ok {
                alive.store(false, Ordering::SeqCst);
                return;
            }
        }
    }))
}

struct Autoscaler {
    /// The cluster, kept current by a watch.
    mirror: Mirror,
    store: Store,
    provider: Arc<dyn Provider>,
    settings: Settings,
    idle_since: BTreeMap<String, SystemTime>,
    /// Instance name → when it was asked for, for the spawns-per-minute cap: what this loop
    /// spawned (failures too) and what the instance records show (a previous leader's).
    recent_spawns: BTreeMap<String, SystemTime>,
    report: Arc<dyn Fn(Report) + Send + Sync>,
}

/// A node with nothing on it: no sessions reported, no peers, and none committed to it.
fn idle(node: &NodeRecord, carrying: &HashSet<&str>) -> bool {
    node.stats.sessions == 0 && node.stats.peers == 0 && !carrying.contains(node.id.as_str())
}

/// How long a tick waits for the mirror to reach etcd's current revision before it reads
/// etcd itself.
const MIRROR_WAIT: Duration = Duration::from_secs(1);

impl Autoscaler {
    /// The cluster at least as new as etcd was when the tick began: the mirror, once it has
    /// seen etcd's current revision (one small read), else a read of etcd. Never older, so
    /// an instance record this loop wrote last tick is always seen and not spawned again.
    async fn cluster(&self) -> Result<crate::store::Snapshot, AutoscaleError> {
        let current = self.store.revision().await?;
        if self.mirror.caught_up(current, MIRROR_WAIT).await {
            return Ok(self.mirror.read());
        }
        tracing::warn!(
            current,
            "the autoscaler's mirror lags etcd; reading etcd this tick"
        );
        Ok(self.store.snapshot().await?)
    }

    async fn tick(&mut self) -> Result<(), AutoscaleError> {
        let now = SystemTime::now();
        let mut read = self.cluster().await?;
        let instances = std::mem::take(&mut read.instances);
        let carrying: HashSet<&str> = read.sessions.iter().flat_map(|s| s.nodes()).collect();
        let registered: HashSet<&str> = read.nodes.iter().map(|n| n.id.as_str()).collect();
        // Idle since: set when a node is first seen idle, cleared the moment it carries anything.
        self.idle_since
            .retain(|id, _| registered.contains(id.as_str()));
        for node in &read.nodes {
            if idle(node, &carrying) {
                self.idle_since.entry(node.id.clone()).or_insert(now);
            } else {
                self.idle_since.remove(&node.id);
            }
        }
        // Booting → ready once the agent has registered.
        let mut current = Vec::with_capacity(instances.len());
        for mut instance in instances {
            if registered.contains(instance.name.as_str())
                && matches!(
                    instance.state,
                    InstanceState::Creating | InstanceState::Booting
                )
            {
                instance = lifecycle::registered(&self.store, instance, now).await?;
                (self.report)(Report::Registered {
                    instance: instance.name.clone(),
                });
            }
            current.push(instance);
        }
        for instance in &current {
            self.recent_spawns
                .entry(instance.name.clone())
                .or_insert(instance.created_at);
        }
        self.recent_spawns
            .retain(|_, at| now.duration_since(*at).unwrap_or_default() < SPAWN_WINDOW);
        let snapshot = Snapshot {
            now,
            nodes: read.nodes,
            sessions: read.sessions.into(),
            drains: read.drains.into_iter().collect(),
            pending: read.pending,
            instances: current,
            idle_since: self.idle_since.clone(),
            recent_spawns: self.recent_spawns.values().copied().collect(),
        };
        let planned = plan_detailed(&snapshot, &self.settings.policy);
        self.note_waiting(&snapshot, &planned.covers).await?;
        let mut tasks = JoinSet::new();
        for action in planned.actions {
            tracing::info!(%action, "autoscale action");
            let store = self.store.clone();
            let provider = self.provider.clone();
            let hold_ttl = self.settings.hold_ttl;
            let record = snapshot
                .instances
                .iter()
                .find(|i| matches!(&action, Action::Delete { instance, .. } if instance == &i.name))
                .cloned();
            let name = match &action {
                Action::Spawn { machine_type, .. } => {
                    let name = generate_name(machine_type);
                    self.recent_spawns.insert(name.clone(), now);
                    Some(name)
                }
                _ => None,
            };
            tasks.spawn(async move {
                let outcome =
                    execute(&store, provider.as_ref(), &action, record, name, hold_ttl).await;
                (action, outcome)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((action, outcome)) => {
                    if let Err(error) = &outcome {
                        let error = crate::text::error_line(error);
                        tracing::warn!(%action, %error, "autoscale action failed");
                    }
                    (self.report)(Report::Acted {
                        action,
                        outcome: Box::new(outcome),
                    });
                }
                Err(error) => tracing::error!(%error, "an autoscale action panicked"),
            }
        }
        Ok(())
    }

    /// Writes on each registered instance why the demands it was spawned for still wait (or
    /// clears it), and reports each new reason, so `ionctl top` and the log say why instead
    /// of another spawn.
    async fn note_waiting(
        &self,
        snapshot: &Snapshot,
        covers: &BTreeMap<String, Cover>,
    ) -> Result<(), AutoscaleError> {
        for instance in &snapshot.instances {
            let waiting: Vec<(&String, &String)> = covers
                .iter()
                .filter_map(|(sid, cover)| match cover {
                    Cover::BoundNode { node, why } if node == &instance.name => Some((sid, why)),
                    _ => None,
                })
                .collect();
            let note = (!waiting.is_empty()).then(|| {
                waiting
                    .iter()
                    .map(|(sid, why)| format!("{sid} waits: {why}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            if note == instance.note {
                continue;
            }
            for (sid, why) in &waiting {
                tracing::info!(%sid, node = %instance.name, %why, "demand waits for its own instance");
                (self.report)(Report::Waiting {
                    sid: (*sid).clone(),
                    node: instance.name.clone(),
                    why: (*why).clone(),
                });
            }
            lifecycle::noted(&self.store, instance.clone(), note).await?;
        }
        Ok(())
    }
}

/// Carries one action out through the instance lifecycle. A spawn creates the instance `name`.
async fn execute(
    store: &Store,
    provider: &dyn Provider,
    action: &Action,
    record: Option<InstanceRecord>,
    name: Option<String>,
    hold_ttl: Option<Duration>,
) -> Result<Outcome, LifecycleError> {
    match action {
        Action::Spawn {
            machine_type,
            hold_for,
            for_demands,
            ..
        } => {
            let spec = InstanceSpec {
                name: name.unwrap_or_else(|| generate_name(machine_type)),
                machine_type: machine_type.clone(),
                zone: None,
                labels: Default::default(),
                hold_for: hold_for.clone(),
                agent: AgentBootstrap {
                    etcd_endpoints: store.endpoints().to_vec(),
                    prefix: store.keys().prefix().to_owned(),
                    units_per_vcpu: None,
                    hold_ttl: hold_for.as_ref().and(hold_ttl),
                },
            };
            lifecycle::spawn(
                store,
                provider,
                &spec,
                for_demands.clone(),
                &Progress::none(),
            )
            .await
        }
        Action::Drain { node, reason } => {
            let request = DrainRequest {
                requested_at: SystemTime::now(),
                deadline: None,
                reason: Some(if reason.starts_with(DRAIN_REASON_PREFIX) {
                    reason.clone()
                } else {
                    format!("{DRAIN_REASON_PREFIX} {reason}")
                }),
            };
            lifecycle::drain(store, node, &request).await
        }
        Action::Delete { instance, .. } => {
            let zone = record.as_ref().map(|r| r.zone.clone()).unwrap_or_default();
            lifecycle::delete(store, provider, instance, &zone, record, &Progress::none()).await
        }
    }
}
