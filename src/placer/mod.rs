//! The placer: the I/O shell around [`crate::placement::decide`]. It reads the cluster (fresh
//! or from a watched mirror), decides, commits the reservation with the race-free transaction
//! of docs/placement.md, decides again on conflict within a bounded number of attempts, and writes
//! `pending/<sid>` when no node fits. `ionctl place`, `ionctl serve` and `ionctl bench place`
//! all go through it. See `docs/placement.md` for the invariant and why it holds.

mod committer;
mod lease;
mod request;
mod view;

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::model::{PendingDemand, SessionRecord};
use crate::placement::{Decision, Policy, Request};
use crate::store::{PENDING_TTL, Store, StoreError};
use committer::{Decided, Job};
pub use request::{InvalidRequest, checked_request};
pub(crate) use view::Mirror;
use view::View;

/// The shortest gap between two decisions of one waiting request: a cluster of many nodes
/// changes many times a second, and each change need not cost a decision.
pub const RECHECK_INTERVAL: Duration = Duration::from_millis(250);

/// How a placer runs.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacerOptions {
    pub policy: Policy,
    /// The lease of a reservation nobody has joined yet.
    pub reservation_ttl: Duration,
    /// Decisions per request before giving up on conflicts with other placers.
    pub max_attempts: u32,
    /// Keep a watched in-memory copy of the cluster instead of reading etcd per decision:
    /// for long-lived placers.
    pub mirror: bool,
}

impl Default for PlacerOptions {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            reservation_ttl: Duration::from_secs(60),
            max_attempts: 32,
            mirror: false,
        }
    }
}

/// What a placement request came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The session is reserved on a node (`existing` false) or already lived there.
    Placed {
        session: SessionRecord,
        /// The node the participant joins: the session's origin, or for a viewer of a
        /// session that spans nodes, the edge with the most room.
        node: String,
        /// Where clients connect; `None` when the node's record is gone.
        signal_url: Option<String>,
        existing: bool,
    },
    /// No node fits; `pending` was written for the autoscaler. `booting` names the instance
    /// already started for this session, which it waits for.
    NoCapacity {
        pending: PendingDemand,
        count: u32,
        hold_for: Option<String>,
        booting: Option<String>,
    },
    /// The request cannot be served whatever capacity is added.
    Refused { reason: String },
}

/// Why a request got no answer.
#[derive(Debug, Clone, Error)]
pub enum PlaceError {
    #[error(transparent)]
    Store(Arc<StoreError>),
    #[error(
        "the placement conflicted with other placers {attempts} times in a row; try again, or \
         look for a placer that loops"
    )]
    Conflicts { attempts: u32 },
    #[error("the placer has stopped")]
    Stopped,
}

impl PlaceError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, PlaceError::Store(e) if e.is_unreachable())
    }
}

impl From<StoreError> for PlaceError {
    fn from(error: StoreError) -> Self {
        PlaceError::Store(Arc::new(error))
    }
}

/// What `place_waiting` reports while it waits.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// No node fits yet; `pending/<sid>` is written and the cluster is watched. `booting`
    /// names the instance started for this session that the wait is for.
    Waiting {
        pending: PendingDemand,
        booting: Option<String>,
        remaining: Duration,
    },
    /// Something changed in the cluster; deciding again.
    Changed { revision: i64 },
}

/// Places sessions. Cheap to share behind an `Arc`; requests from many tasks are committed
/// together.
pub struct Placer {
    store: Store,
    jobs: mpsc::Sender<Job>,
}

impl Placer {
    /// Starts the placer's committer (and mirror, when asked) on the current runtime.
    pub async fn start(store: Store, options: PlacerOptions) -> Result<Self, StoreError> {
        let view = if options.mirror {
            View::Mirror(Mirror::start(&store).await?)
        } else {
            View::Fresh
        };
        let (jobs, queue) = mpsc::channel(1024);
        tokio::spawn(committer::run(store.clone(), view, options, queue));
        Ok(Self { store, jobs })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Places one session: answers at once, writing `pending/<sid>` when no node fits.
    pub async fn place(&self, request: Request) -> Result<Outcome, PlaceError> {
        Ok(self.place_once(request, true).await?.0)
    }

    /// One decision (and commit). On `NeedCapacity`, writes `pending/<sid>` when
    /// `write_pending`.
    async fn place_once(
        &self,
        request: Request,
        write_pending: bool,
    ) -> Result<(Outcome, i64), PlaceError> {
        let started = Instant::now();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request: request.clone(),
            reply,
            attempts: 0,
        };
        self.jobs.send(job).await.map_err(|_| PlaceError::Stopped)?;
        let decided: Decided = answer.await.map_err(|_| PlaceError::Stopped)??;
        let revision = decided.revision;
        let outcome = match decided.decision {
            Decision::Place { .. }
            | Decision::Existing { .. }
            | Decision::Split { .. }
            | Decision::Extend { .. } => {
                let (node, existing) = match &decided.decision {
                    Decision::Existing { node } => (node.clone(), true),
                    Decision::Extend { edge, .. } => (edge.clone(), true),
                    Decision::Place { node, .. } => (node.clone(), false),
                    Decision::Split { origin, .. } => (origin.clone(), false),
                    _ => unreachable!("matched above"),
                };
                match decided.session {
                    Some(session) => Outcome::Placed {
                        session,
                        node,
                        signal_url: decided.signal_url,
                        existing,
                    },
                    None => unreachable!("the committer answers Place and Existing with a session"),
                }
            }
            Decision::NeedCapacity {
                demand,
                machine_type,
                count,
                hold_for,
                booting,
            } => {
                let pending = PendingDemand {
                    sid: request.sid.clone(),
                    class: request.class,
                    size: request.size,
                    demand,
                    machine_type: Some(machine_type),
                    since: std::time::SystemTime::now(),
                };
                if write_pending {
                    self.store.put_pending(&pending).await?;
                }
                Outcome::NoCapacity {
                    pending,
                    count,
                    hold_for,
                    booting,
                }
            }
            Decision::Refuse { reason } => Outcome::Refused { reason },
        };
        let kind = match &outcome {
            Outcome::Placed { existing: true, .. } => "existing",
            Outcome::Placed { .. } => "placed",
            Outcome::NoCapacity { .. } => "no_capacity",
            Outcome::Refused { .. } => "refused",
        };
        metrics::counter!("ion_placements_total", "outcome" => kind).increment(1);
        metrics::histogram!("ion_placement_seconds").record(started.elapsed().as_secs_f64());
        tracing::debug!(sid = %request.sid, outcome = kind, attempts = decided.attempts, "placed");
        Ok((outcome, revision))
    }

    /// Places one session, and when no node fits, watches the cluster and decides again after
    /// changes until one does or `wait` runs out. `progress` hears about the wait once a second
    /// and about each change. However busy the cluster, it decides at most every
    /// [`RECHECK_INTERVAL`], and it rewrites `pending/<sid>` only when its lease is half gone.
    pub async fn place_waiting(
        &self,
        request: Request,
        wait: Duration,
        mut progress: impl FnMut(Progress),
    ) -> Result<Outcome, PlaceError> {
        let deadline = Instant::now() + wait;
        let mut pending_written: Option<Instant> = None;
        loop {
            let write_pending = pending_written.is_none_or(|at| at.elapsed() >= PENDING_TTL / 2);
            let decided = Instant::now();
            let (outcome, revision) = self.place_once(request.clone(), write_pending).await?;
            let Outcome::NoCapacity {
                pending, booting, ..
            } = &outcome
            else {
                return Ok(outcome);
            };
            if write_pending {
                pending_written = Some(decided);
            }
            let change = self.next_change(revision);
            tokio::pin!(change);
            let changed = loop {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    return Ok(outcome);
                }
                progress(Progress::Waiting {
                    pending: pending.clone(),
                    booting: booting.clone(),
                    remaining,
                });
                let tick = remaining.min(Duration::from_secs(1));
                if let Ok(changed) = tokio::time::timeout(tick, &mut change).await {
                    break changed?;
                }
            };
            progress(Progress::Changed { revision: changed });
            let next = (decided + RECHECK_INTERVAL).min(deadline);
            tokio::time::sleep_until(next.into()).await;
        }
    }

    /// The revision of the first change after `revision` that could free or add capacity: any
    /// key but the pending demands, which only the placers themselves write.
    async fn next_change(&self, revision: i64) -> Result<i64, StoreError> {
        let keys = self.store.keys().clone();
        let pendings = keys.pendings();
        let mut watch = self.store.watch_all(revision).await?;
        loop {
            let events = watch.next().await?;
            if let Some(event) = events.iter().find(|e| !e.key.starts_with(&pendings)) {
                return Ok(event.revision);
            }
        }
    }
}
