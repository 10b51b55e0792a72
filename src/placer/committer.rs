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
use crate::store::{
    Commit, MAX_RESERVATIONS_PER_TXN, MAX_TXN_OPS, Store, StoreError, reservation_ops,
};

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
        let round = match view
            .with_snapshot(&store, fresh, batch, |snapshot, batch| {
                decide_batch(snapshot, batch, &options)
            })
            .await
        {
            Ok(round) => round,
            Err((error, batch)) => {
                fail_all(batch, error);
                continue;
            }
        };
        fresh = false;
        for job in round.later.into_iter().rev() {
            queue.push_front(job);
        }
        if let Some((edge, reserved)) = round.extend {
            match extend_session(&store, &mut leases, &edge, reserved, round.revision).await {
                Extended::Done(revision) => {
                    view.caught_up(revision, Duration::from_secs(2)).await;
                }
                Extended::Again(job) => {
                    fresh = true;
                    queue.push_front(job);
                }
            }
        }
        if round.commits.is_empty() {
            continue;
        }
        let sessions: Vec<SessionRecord> =
            round.commits.iter().map(|c| c.session.clone()).collect();
        let result = match leases.current(&store).await {
            Ok(lease) => {
                store
                    .commit_reservations(&sessions, round.revision, lease)
                    .await
            }
            Err(error) => Err(error),
        };
        match result {
            Ok(Commit::Committed { revision }) => {
                metrics::counter!("ion_placements_committed_total")
                    .increment(sessions.len() as u64);
                for Reserved {
                    job,
                    session,
                    signal_url,
                } in round.commits
                {
                    let decision = if session.relays.is_empty() {
                        Decision::Place {
                            node: session.node.clone(),
                            demand: session.demand,
                        }
                    } else {
                        Decision::Split {
                            origin: session.node.clone(),
                            edges: session.relays.clone(),
                            origin_demand: session.demand,
                            edge_demand: session.edge_demand,
                        }
                    };
                    let _ = job.reply.send(Ok(Decided {
                        decision,
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
                for Reserved { mut job, .. } in round.commits {
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
                for Reserved { job, .. } in round.commits.into_iter().rev() {
                    queue.push_front(job);
                }
            }
            Err(error) => fail_all(round.commits.into_iter().map(|c| c.job), error),
        }
    }
}

/// A reservation decided this round, waiting for its commit.
struct Reserved {
    job: Job,
    session: SessionRecord,
    signal_url: Option<String>,
}

struct Round {
    /// The revision of the snapshot the round was decided on.
    revision: i64,
    commits: Vec<Reserved>,
    /// A spanning session to extend with an edge (the node named), committed on its own.
    extend: Option<(String, Reserved)>,
    /// Jobs to decide again next round: a second request for a session this round reserves.
    later: Vec<Job>,
}

/// Decides each job in turn on `snapshot`; once a reservation is made and more jobs follow,
/// they are decided on the snapshot with it added, and it is taken out again before the
/// round returns (a copy of the snapshot per round cost more than its decisions at 5,000
/// nodes). Answers everything that needs no commit at once.
fn decide_batch(snapshot: &mut Snapshot, batch: Vec<Job>, options: &PlacerOptions) -> Round {
    let mut commits: Vec<Reserved> = Vec::new();
    let mut extend: Option<(String, Reserved)> = None;
    let mut later = Vec::new();
    // The reservations added to the snapshot, with what each replaced, to take them out.
    let mut added: Vec<(String, Option<SessionRecord>)> = Vec::new();
    let count = batch.len();
    for (k, job) in batch.into_iter().enumerate() {
        let current = &*snapshot;
        let decision = decide(current, &job.request, &options.policy);
        let signal_url_of = |node: &str| {
            current
                .nodes
                .iter()
                .find(|n| n.id == node)
                .map(|n| n.signal_url.clone())
        };
        // A plain placement is a split without edges.
        let reservation = match decision {
            Decision::Place { node, demand } => Ok((node, demand, Vec::new(), 0)),
            Decision::Split {
                origin,
                edges,
                origin_demand,
                edge_demand,
            } => Ok((origin, origin_demand, edges, edge_demand)),
            other => Err(other),
        };
        match reservation {
            Ok((node, demand, relays, edge_demand)) => {
                let signal_url = signal_url_of(&node);
                let session = SessionRecord {
                    sid: job.request.sid.clone(),
                    class: job.request.class,
                    size: job.request.size,
                    demand,
                    node,
                    state: SessionState::Reserved,
                    relays,
                    edge_demand,
                    created_at: current.now,
                };
                // Splits take an operation per edge: what does not fit waits for the next round.
                let ops: usize = commits.iter().map(|c| reservation_ops(&c.session)).sum();
                if ops + reservation_ops(&session) > MAX_TXN_OPS {
                    later.push(job);
                    continue;
                }
                if k + 1 < count {
                    let replaced = snapshot.sessions.put(session.clone());
                    added.push((session.sid.clone(), replaced));
                }
                commits.push(Reserved {
                    job,
                    session,
                    signal_url,
                });
            }
            Err(Decision::Extend { edge, edge_demand }) => {
                // Rare (every edge full), so alone in its round with its own transaction.
                let Some(mut session) = current.sessions.get(&job.request.sid).cloned() else {
                    later.push(job);
                    continue;
                };
                if extend.is_some() || commits.iter().any(|c| c.session.sid == session.sid) {
                    later.push(job);
                    continue;
                }
                session.relays.push(edge.clone());
                session.edge_demand = edge_demand;
                let signal_url = signal_url_of(&edge);
                extend = Some((
                    edge,
                    Reserved {
                        job,
                        session,
                        signal_url,
                    },
                ));
            }
            Err(Decision::Existing { node }) => {
                if commits.iter().any(|c| c.session.sid == job.request.sid)
                    || extend
                        .as_ref()
                        .is_some_and(|(_, r)| r.session.sid == job.request.sid)
                {
                    later.push(job);
                    continue;
                }
                let session = current.sessions.get(&job.request.sid).cloned();
                let signal_url = signal_url_of(&node);
                let attempts = job.attempts + 1;
                let _ = job.reply.send(Ok(Decided {
                    decision: Decision::Existing { node },
                    session,
                    signal_url,
                    revision: snapshot.revision,
                    attempts,
                }));
            }
            Err(other) => {
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
    for (sid, replaced) in added.into_iter().rev() {
        match replaced {
            Some(record) => snapshot.sessions.put(record),
            None => snapshot.sessions.remove(&sid),
        };
    }
    Round {
        revision: snapshot.revision,
        commits,
        extend,
        later,
    }
}

enum Extended {
    /// Answered (committed, or failed for good), at this revision.
    Done(i64),
    /// Decide it again.
    Again(Job),
}

/// Commits the extension of a spanning session with `edge` and answers its job.
async fn extend_session(
    store: &Store,
    leases: &mut Leases,
    edge: &str,
    reserved: Reserved,
    decided_at: i64,
) -> Extended {
    let Reserved {
        mut job,
        session,
        signal_url,
    } = reserved;
    let result = match leases.current(store).await {
        Ok(lease) => {
            store
                .extend_session(&session, edge, decided_at, lease)
                .await
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(Commit::Committed { revision }) => {
            let _ = job.reply.send(Ok(Decided {
                decision: Decision::Extend {
                    edge: edge.to_owned(),
                    edge_demand: session.edge_demand,
                },
                session: Some(session),
                signal_url,
                revision,
                attempts: job.attempts + 1,
            }));
            Extended::Done(revision)
        }
        Ok(Commit::Conflict { revision }) => {
            job.attempts += 1;
            if job.attempts >= MAX_EXTEND_ATTEMPTS {
                let _ = job.reply.send(Err(PlaceError::Conflicts {
                    attempts: job.attempts,
                }));
                return Extended::Done(revision);
            }
            Extended::Again(job)
        }
        Err(error) => {
            fail_all([job], error);
            Extended::Done(decided_at)
        }
    }
}

/// How often an extension is decided again after a conflict before its caller hears of it.
const MAX_EXTEND_ATTEMPTS: u32 = 8;

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::SystemTime;

    use super::*;
    use crate::model::{NodeRecord, SessionClass};
    use crate::placement::{Role, Strategy};

    fn meeting_of_10(sid: &str) -> Job {
        Job {
            request: Request {
                sid: sid.to_owned(),
                class: SessionClass::Meeting,
                size: 10,
                strategy: Strategy::Binpack,
                role: Role::Publisher,
                uid: None,
            },
            reply: oneshot::channel().0,
            attempts: 0,
        }
    }

    /// The round decides on the snapshot with its own reservations added, and the snapshot
    /// (the mirror's, in a long-lived placer) is left with none of them.
    #[test]
    fn a_round_sees_its_own_reservations_and_leaves_the_snapshot_as_it_found_it() {
        let now = SystemTime::now();
        let node = |id: &str| NodeRecord {
            started_at: now - Duration::from_secs(3600),
            ..NodeRecord::blank(id, "n2-highcpu-4", 4, 600, now)
        };
        let existing = SessionRecord {
            sid: "old".to_owned(),
            class: SessionClass::Meeting,
            size: 10,
            demand: 300,
            node: "a".to_owned(),
            state: SessionState::Live,
            relays: Vec::new(),
            edge_demand: 0,
            created_at: now,
        };
        let mut snapshot = Snapshot {
            revision: 7,
            now,
            nodes: vec![node("a"), node("b")],
            sessions: vec![existing.clone()].into(),
            drains: BTreeSet::new(),
            pending: Vec::new(),
            instances: Vec::new(),
        };
        // A meeting of 10 costs 90 units; node a may carry 480 of its 600 for a meeting. It
        // holds 300: two more fit, the third would make 570 and goes to b, but only if each
        // decision sees the reservations made before it in the round.
        let jobs = ["m0", "m1", "m2"].map(meeting_of_10).into();
        let round = decide_batch(&mut snapshot, jobs, &PlacerOptions::default());
        let placed: Vec<(&str, &str)> = round
            .commits
            .iter()
            .map(|c| (c.session.sid.as_str(), c.session.node.as_str()))
            .collect();
        assert_eq!(placed, [("m0", "a"), ("m1", "a"), ("m2", "b")]);
        assert_eq!(round.revision, 7);
        assert_eq!(snapshot.sessions.len(), 1);
        assert_eq!(snapshot.sessions.get("old"), Some(&existing));
        assert_eq!(snapshot.sessions.on_node("a").committed(), 300);
        assert_eq!(snapshot.sessions.on_node("b").committed(), 0);
    }
}
