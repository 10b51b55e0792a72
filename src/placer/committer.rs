//! The committer: one task per placer that decides queued requests against one snapshot and
//! commits the resulting reservations together (group commit). Placers in other processes are
//! kept out by the transaction's compares; placements within this process are decided one
//! after another on a snapshot that includes the earlier ones, so they never conflict with
//! each other.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::lease::Leases;
use super::view::View;
use super::{PlaceError, PlacerOptions};
use crate::model::{SessionRecord, SessionState};
use crate::placement::{Decision, Request, Snapshot, decide};
use crate::store::{Commit, MAX_RESERVATIONS_PER_TXN, Store, StoreError};

/// A decision as the committer answers it.
#[derive(Debug)]
pub(super) struct Decided {
    pub decision: Decision,
    /// The session for `Place` (now committed) and `Existing`.
    pub session: Option<SessionRecord>,
    pub signal_url: Option<String>,
    /// The revision of the snapshot behind the decision.
    pub revision: i64,
    pub attempts: u32,
}

pub(super) struct Job {
    pub request: Request,
    pub reply: oneshot::Sender<Result<Decided, PlaceError>>,
    pub attempts: u32,
}

pub(super) async fn run(
    store: Store,
    view: View,
    options: PlacerOptions,
    mut jobs: mpsc::Receiver<Job>,
) {
    let mut queue: VecDeque<Job> = VecDeque::new();
    let mut leases = Leases::new(options.reservation_ttl);
    let mut fresh = false;
    loop {
        if queue.is_empty() {
            match jobs.recv().await {
                Some(job) => queue.push_back(job),
                None => return,
            }
        }
        while let Ok(job) = jobs.try_recv() {
            queue.push_back(job);
        }
        let take = queue.len().min(MAX_RESERVATIONS_PER_TXN);
        let batch: Vec<Job> = queue.drain(..take).collect();
        let snapshot = match view.snapshot(&store, fresh).await {
            Ok(snapshot) => snapshot,
            Err(error) => {
                fail_all(batch, error);
                continue;
            }
        };
        fresh = false;
        let round = decide_batch(snapshot, batch, &options);
        for job in round.later.into_iter().rev() {
            queue.push_front(job);
        }
        if round.commits.is_empty() {
            continue;
        }
        let sessions: Vec<SessionRecord> = round.commits.iter().map(|c| c.1.clone()).collect();
        let result = match leases.current(&store).await {
            Ok(lease) => {
                store
                    .commit_reservations(&sessions, round.snapshot.revision, lease)
                    .await
            }
            Err(error) => Err(error),
        };
        match result {
            Ok(Commit::Committed { revision }) => {
                metrics::counter!("ion_placements_committed_total")
                    .increment(sessions.len() as u64);
                for (job, session) in round.commits {
                    let signal_url = round
                        .snapshot
                        .nodes
                        .iter()
                        .find(|n| n.id == session.node)
                        .map(|n| n.signal_url.clone());
                    let _ = job.reply.send(Ok(Decided {
                        decision: Decision::Place {
                            node: session.node.clone(),
                            demand: session.demand,
                        },
                        session: Some(session),
                        signal_url,
                        revision,
                        attempts: job.attempts + 1,
                    }));
                }
                // The next decisions must see these reservations, or they would conflict.
                view.caught_up(revision, Duration::from_secs(2)).await;
            }
            Ok(Commit::Conflict { revision }) => {
                metrics::counter!("ion_placement_conflicts_total").increment(1);
                tracing::debug!(
                    revision,
                    batch = sessions.len(),
                    "placement conflict; deciding again"
                );
                fresh = true;
                let mut retry = Vec::new();
                for (mut job, _) in round.commits {
                    job.attempts += 1;
                    if job.attempts >= options.max_attempts {
                        let _ = job.reply.send(Err(PlaceError::Conflicts {
                            attempts: job.attempts,
                        }));
                    } else {
                        retry.push(job);
                    }
                }
                if let Some(first) = retry.first() {
                    backoff(first.attempts).await;
                }
                for job in retry.into_iter().rev() {
                    queue.push_front(job);
                }
            }
            Err(error) if error.to_string().contains("lease not found") => {
                // The shared lease lapsed between grant and commit; take a new one.
                leases.forget();
                for (job, _) in round.commits.into_iter().rev() {
                    queue.push_front(job);
                }
            }
            Err(error) => fail_all(round.commits.into_iter().map(|c| c.0), error),
        }
    }
}

struct Round {
    snapshot: Snapshot,
    commits: Vec<(Job, SessionRecord)>,
    /// Jobs to decide again next round: a second request for a session this round reserves.
    later: Vec<Job>,
}

/// Decides each job in turn on `snapshot`, adding every reservation to it before the next
/// decision. Answers everything that needs no commit at once.
fn decide_batch(mut snapshot: Snapshot, batch: Vec<Job>, options: &PlacerOptions) -> Round {
    let mut commits: Vec<(Job, SessionRecord)> = Vec::new();
    let mut later = Vec::new();
    let first_new = snapshot.sessions.len();
    for job in batch {
        let decision = decide(&snapshot, &job.request, &options.policy);
        match decision {
            Decision::Place { node, demand } => {
                let session = SessionRecord {
                    sid: job.request.sid.clone(),
                    class: job.request.class,
                    size: job.request.size,
                    demand,
                    node,
                    state: SessionState::Reserved,
                    relays: Vec::new(),
                    created_at: snapshot.now,
                };
                snapshot.sessions.push(session.clone());
                commits.push((job, session));
            }
            Decision::Existing { node } => {
                let index = snapshot
                    .sessions
                    .iter()
                    .position(|s| s.sid == job.request.sid);
                if index.is_some_and(|i| i >= first_new) {
                    later.push(job);
                    continue;
                }
                let session = index.map(|i| snapshot.sessions[i].clone());
                let signal_url = snapshot
                    .nodes
                    .iter()
                    .find(|n| n.id == node)
                    .map(|n| n.signal_url.clone());
                let attempts = job.attempts + 1;
                let _ = job.reply.send(Ok(Decided {
                    decision: Decision::Existing { node },
                    session,
                    signal_url,
                    revision: snapshot.revision,
                    attempts,
                }));
            }
            other => {
                let attempts = job.attempts + 1;
                let _ = job.reply.send(Ok(Decided {
                    decision: other,
                    session: None,
                    signal_url: None,
                    revision: snapshot.revision,
                    attempts,
                }));
            }
        }
    }
    Round {
        snapshot,
        commits,
        later,
    }
}

fn fail_all(jobs: impl IntoIterator<Item = Job>, error: StoreError) {
    let error = Arc::new(error);
    for job in jobs {
        let _ = job.reply.send(Err(PlaceError::Store(error.clone())));
    }
}

/// A short random pause that grows with the attempt, so placers in several processes that
/// conflicted on one node do not collide again in lockstep.
async fn backoff(attempt: u32) {
    let ceiling_ms = 1u64 << attempt.min(6);
    let jitter = RandomState::new().hash_one(attempt) % (ceiling_ms * 1000);
    tokio::time::sleep(Duration::from_micros(jitter)).await;
}
