//! Session ownership in etcd, off the media path: the first join of a session on this node
//! claims `sessions/<sid>` (onto the node lease, state live), the last leave deletes it, and a
//! new node lease (after etcd lost the old one) re-claims every live session. One task owns
//! this state; signaling talks to it through [`Ownership`].

use std::collections::HashMap;

use ion_cluster::model::SessionClass;
use ion_cluster::model::SessionRecord;
use ion_cluster::store::{Claim, EtcdOptions, IfUnplaced, LeaseId, Store, StoreError};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

use crate::drain::DrainState;
use crate::hold::{self, Hold};
use crate::sfu::{Command, Sfu};

#[derive(Debug, Error)]
pub enum ClaimError {
    #[error("session {sid} lives on node {node}{}; connect there", url.as_ref().map(|u| format!(" ({u})")).unwrap_or_default())]
    OtherNode {
        sid: String,
        node: String,
        url: Option<String>,
    },
    #[error(
        "session {sid} was not placed on this node; place it with `ionctl place` and join the node it names"
    )]
    NotPlaced { sid: String },
    #[error("this node is not registered in etcd yet; retry in a few seconds")]
    NotRegistered,
    #[error(
        "node {node} is draining and takes no new sessions; place session {sid} elsewhere (ionctl place)"
    )]
    Draining { node: String, sid: String },
    #[error("node {node} is held for session {held}; place session {sid} elsewhere (ionctl place)")]
    Held {
        node: String,
        held: String,
        sid: String,
    },
    #[error(
        "session {sid} is relayed here from node {origin}, which is not registered; place the session again"
    )]
    OriginGone { sid: String, origin: String },
    #[error("cannot claim session {sid} in etcd: {source}")]
    Store { sid: String, source: StoreError },
    #[error("the agent is shutting down")]
    Closed,
}

/// How this node takes part in a session it admitted a participant to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// The session is this node's: claimed in etcd, released by the last leave. `spans`:
    /// it has edges on other nodes (its record lists relays). `may_span`: a conference,
    /// which may gain edges later, whose speakers there this node must then pull.
    Owner { spans: bool, may_span: bool },
    /// This node is an edge of a session that lives on another node, which owns the record.
    Edge,
}

enum Message {
    Join {
        sid: String,
        reply: oneshot::Sender<Result<Membership, ClaimError>>,
    },
    Leave {
        sid: String,
    },
}

/// A handle for signaling: claim on join, release on leave.
#[derive(Clone)]
pub struct Ownership {
    tx: mpsc::Sender<Message>,
}

/// The channels that connect ownership to the rest of the agent.
pub struct OwnershipLinks {
    /// The node lease the reporter holds now.
    pub lease: watch::Receiver<Option<LeaseId>>,
    /// The lease this task has written the live sessions back on, for the reporter.
    pub reclaimed: watch::Sender<Option<LeaseId>>,
    pub drain: watch::Receiver<DrainState>,
    pub hold: watch::Sender<Hold>,
}

impl Ownership {
    pub fn start(
        etcd: EtcdOptions,
        node_id: String,
        allow_unplaced: bool,
        links: OwnershipLinks,
        sfu: Sfu,
    ) -> Self {
        let OwnershipLinks {
            lease,
            reclaimed,
            drain,
            hold,
        } = links;
        let (tx, rx) = mpsc::channel(256);
        let task = Task {
            sfu,
            etcd,
            node_id,
            allow_unplaced,
            lease,
            reclaimed,
            drain,
            hold,
            store: None,
            members: HashMap::new(),
            edges: HashMap::new(),
        };
        tokio::spawn(task.run(rx));
        Self { tx }
    }

    /// Counts a participant into `sid`, claiming the session on the first one; an edge's
    /// session is not counted (its origin owns it).
    pub async fn join(&self, sid: &str) -> Result<Membership, ClaimError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Message::Join {
                sid: sid.to_owned(),
                reply,
            })
            .await
            .map_err(|_| ClaimError::Closed)?;
        answer.await.map_err(|_| ClaimError::Closed)?
    }

    /// Counts a participant out; the last one deletes the session key.
    pub async fn leave(&self, sid: &str) {
        let _ = self
            .tx
            .send(Message::Leave {
                sid: sid.to_owned(),
            })
            .await;
    }
}

/// A session this node owns.
struct Member {
    participants: usize,
    membership: Membership,
    /// The record as last claimed: what a re-claim writes back if the key lapsed with a
    /// lost lease.
    record: SessionRecord,
}

struct Task {
    /// To end the participants here of a session another node took while this one was cut
    /// off from etcd.
    sfu: Sfu,
    etcd: EtcdOptions,
    node_id: String,
    allow_unplaced: bool,
    lease: watch::Receiver<Option<LeaseId>>,
    /// The lease every live session has been claimed on: the reporter keeps the node out of
    /// placement until it is the current one (see `Reporter::register_and_report`).
    reclaimed: watch::Sender<Option<LeaseId>>,
    drain: watch::Receiver<DrainState>,
    hold: watch::Sender<Hold>,
    store: Option<Store>,
    /// Participants per session on this node, and how it spans nodes.
    members: HashMap<String, Member>,
    /// Participants per session this node is an edge of (the origin owns the record).
    edges: HashMap<String, usize>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Message>) {
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    Some(Message::Join { sid, reply }) => {
                        let result = self.join(&sid).await;
                        let _ = reply.send(result);
                    }
                    Some(Message::Leave { sid }) => self.leave(&sid).await,
                    None => return,
                },
                changed = self.lease.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let lease = *self.lease.borrow_and_update();
                    self.reclaim_all().await;
                    self.reclaimed.send_replace(lease);
                }
            }
        }
    }

    async fn store(&mut self) -> Result<Store, StoreError> {
        if let Some(store) = &self.store {
            return Ok(store.clone());
        }
        let store = Store::connect(&self.etcd).await?;
        self.store = Some(store.clone());
        Ok(store)
    }

    /// Claims `sid` on this node; what happens when it has no record is `if_unplaced`'s.
    /// An owned session comes back with the record claimed.
    async fn claim(
        &mut self,
        sid: &str,
        if_unplaced: &IfUnplaced,
    ) -> Result<(Membership, Option<SessionRecord>), ClaimError> {
        let lease = (*self.lease.borrow()).ok_or(ClaimError::NotRegistered)?;
        let store = self.store().await.map_err(|source| ClaimError::Store {
            sid: sid.to_owned(),
            source,
        })?;
        let claim = store
            .claim_session(sid, &self.node_id, lease, if_unplaced)
            .await;
        match claim {
            Ok(Claim::Adopted(record) | Claim::Created(record)) => Ok((
                Membership::Owner {
                    spans: !record.relays.is_empty(),
                    may_span: record.class == SessionClass::Conference,
                },
                Some(record),
            )),
            Ok(Claim::Edge {
                signal_url: Some(_),
                ..
            }) => Ok((Membership::Edge, None)),
            Ok(Claim::Edge {
                origin,
                signal_url: None,
            }) => Err(ClaimError::OriginGone {
                sid: sid.to_owned(),
                origin,
            }),
            Ok(Claim::OtherNode { node, signal_url }) => Err(ClaimError::OtherNode {
                sid: sid.to_owned(),
                node,
                url: signal_url,
            }),
            Ok(Claim::NotPlaced) => Err(ClaimError::NotPlaced {
                sid: sid.to_owned(),
            }),
            Err(source) => {
                if source.is_unreachable() {
                    // Connect afresh next time.
                    self.store = None;
                }
                Err(ClaimError::Store {
                    sid: sid.to_owned(),
                    source,
                })
            }
        }
    }

    async fn join(&mut self, sid: &str) -> Result<Membership, ClaimError> {
        if let Some(member) = self.members.get_mut(sid) {
            // Existing sessions keep taking participants while the node drains.
            member.participants += 1;
            return Ok(member.membership.clone());
        }
        if let Some(count) = self.edges.get_mut(sid) {
            // A session relayed here keeps taking viewers while the node drains, as one it
            // owns does.
            *count += 1;
            return Ok(Membership::Edge);
        }
        if self.drain.borrow().draining() {
            return Err(ClaimError::Draining {
                node: self.node_id.clone(),
                sid: sid.to_owned(),
            });
        }
        let held_for_other = self.hold.borrow().clone().filter(|held| held != sid);
        let if_unplaced = if self.allow_unplaced {
            IfUnplaced::Create
        } else {
            IfUnplaced::Refuse
        };
        let (membership, record) = match held_for_other {
            None => self.claim(sid, &if_unplaced).await?,
            // Only a session placed here gets in: placement puts another session on a held
            // node once the held session is reserved here (the hold has done its job, and
            // sessions packed onto the same new instance follow it).
            Some(held) => match self.claim(sid, &IfUnplaced::Refuse).await {
                Err(ClaimError::NotPlaced { .. }) => {
                    return Err(ClaimError::Held {
                        node: self.node_id.clone(),
                        held,
                        sid: sid.to_owned(),
                    });
                }
                other => other?,
            },
        };
        hold::release(&self.hold, sid, "its session went live");
        let Some(record) = record else {
            tracing::debug!(%sid, "a participant of a session relayed from its origin");
            self.edges.insert(sid.to_owned(), 1);
            return Ok(membership);
        };
        tracing::info!(%sid, "session claimed in etcd");
        self.members.insert(
            sid.to_owned(),
            Member {
                participants: 1,
                membership: membership.clone(),
                record,
            },
        );
        Ok(membership)
    }

    async fn leave(&mut self, sid: &str) {
        if let Some(count) = self.edges.get_mut(sid) {
            *count -= 1;
            if *count == 0 {
                self.edges.remove(sid);
            }
            return;
        }
        let Some(member) = self.members.get_mut(sid) else {
            return;
        };
        member.participants -= 1;
        if member.participants > 0 {
            return;
        }
        self.members.remove(sid);
        let released = match self.store().await {
            Ok(store) => store.release_session(sid, &self.node_id).await,
            Err(error) => Err(error),
        };
        match released {
            Ok(()) => tracing::info!(%sid, "session ended; key deleted"),
            // The key is on the node lease, so it cannot outlive this node anyway.
            Err(error) => tracing::warn!(%sid, %error, "could not delete the session key"),
        }
    }

    /// After a new node lease, every live session moves onto it. A session whose key lapsed
    /// with the old lease (a partition longer than the TTL) is written back as it was, placed
    /// or not: its participants are here. One that another node claimed meanwhile is that
    /// node's now: its participants here are ended and told where it lives, so that one
    /// session never carries on as two.
    async fn reclaim_all(&mut self) {
        let sessions: Vec<(String, SessionRecord)> = self
            .members
            .iter()
            .map(|(sid, member)| (sid.clone(), member.record.clone()))
            .collect();
        for (sid, record) in sessions {
            match self.claim(&sid, &IfUnplaced::Restore(record)).await {
                Ok((membership, Some(record))) => {
                    tracing::info!(%sid, "live session re-claimed on the new lease");
                    if let Some(member) = self.members.get_mut(&sid) {
                        member.membership = membership;
                        member.record = record;
                    }
                }
                Ok((_, None)) => {
                    tracing::warn!(%sid, "a session this node owned is now relayed here from another node");
                }
                Err(error @ ClaimError::OtherNode { .. }) => {
                    tracing::warn!(
                        %sid,
                        %error,
                        "another node took this session while this node was cut off from etcd; \
                         ending its participants here so they rejoin there"
                    );
                    self.members.remove(&sid);
                    let command = Command::EndSession {
                        sid: sid.as_str().into(),
                        reason: error.to_string(),
                    };
                    let _ = self.sfu.worker_for(&sid).send(command).await;
                }
                Err(error) => {
                    tracing::warn!(%sid, %error, "could not re-claim a live session on the new lease");
                }
            }
        }
    }
}
