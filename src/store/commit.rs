//! The race-free placement commit of docs/placement.md, and pending demands.
//!
//! A reservation creates `sessions/<sid>` and `placements/<node>/<sid>` on a reservation lease,
//! in one transaction that holds only if the session is absent and each chosen node's
//! revision key (`placement-revs/<node>`) exists and was last written at or before the revision
//! the decision was made at; the transaction rewrites those keys. Several reservations may
//! share one transaction (group commit); then all hold or none does.

use std::time::Duration;

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};

use super::{LeaseId, Store, StoreError};
use crate::model::{PendingDemand, SessionRecord};

/// The most reservations in one transaction: each takes at least 4 operations, and etcd allows
/// 128 by default (`--max-txn-ops`).
pub const MAX_RESERVATIONS_PER_TXN: usize = 32;
/// etcd's default `--max-txn-ops`: the most operations in one transaction.
pub const MAX_TXN_OPS: usize = 128;

/// The operations a reservation of `session` takes in the commit at most: the session, the
/// pending demand's delete, and a placement key and a revision bump on each node it spans. Its
/// compares (the session's, and two per node) never outnumber them by more than one.
pub fn reservation_ops(session: &SessionRecord) -> usize {
    2 + 2 * (1 + session.relays.len())
}

/// How long a pending demand waits for the autoscaler before it lapses.
pub const PENDING_TTL: Duration = Duration::from_secs(300);

/// What became of a reservation transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Every reservation is written, at this revision.
    Committed { revision: i64 },
    /// A session already existed or a chosen node took a placement after the decision; nothing
    /// was written. `revision` is etcd's revision at the time.
    Conflict { revision: i64 },
}

impl Store {
    /// Writes `sessions` (each naming its node) on `lease`, if each session is absent and no
    /// chosen node took demand after `decided_at`. Deletes each session's `pending/` entry in
    /// the same transaction.
    pub async fn commit_reservations(
        &self,
        sessions: &[SessionRecord],
        decided_at: i64,
        lease: LeaseId,
    ) -> Result<Commit, StoreError> {
        assert!(
            sessions.len() <= MAX_RESERVATIONS_PER_TXN
                && sessions.iter().map(reservation_ops).sum::<usize>() <= MAX_TXN_OPS,
            "callers batch at most {MAX_RESERVATIONS_PER_TXN} reservations and {MAX_TXN_OPS} operations"
        );
        let mut compares = Vec::with_capacity(sessions.len() * 3);
        let mut ops = Vec::with_capacity(sessions.len() * 4);
        let mut nodes: Vec<&str> = Vec::new();
        let on_lease = || Some(PutOptions::new().with_lease(lease));
        for session in sessions {
            let key = self.keys.session(&session.sid);
            compares.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
            // Serialising our own record cannot fail: no maps, no failing Serialize impls.
            let value = serde_json::to_vec(session).expect("SessionRecord serialises");
            ops.push(TxnOp::put(key, value, on_lease()));
            ops.push(TxnOp::put(
                self.keys.placement(&session.node, &session.sid),
                session.demand.to_string(),
                on_lease(),
            ));
            for edge in &session.relays {
                ops.push(TxnOp::put(
                    self.keys.placement(edge, &session.sid),
                    session.edge_demand.to_string(),
                    on_lease(),
                ));
            }
            ops.push(TxnOp::delete(self.keys.pending(&session.sid), None));
            for node in session.nodes() {
                if !nodes.contains(&node) {
                    nodes.push(node);
                }
            }
        }
        for node in &nodes {
            compares.extend(revision_guard(&self.keys.placement_rev(node), decided_at));
            ops.push(bump_revision(&self.keys.placement_rev(node)));
        }
        self.guarded_commit(compares, ops, &nodes).await
    }

    /// Adds `edge` to the spanning session `session` (already listing it): rewrites
    /// `sessions/<sid>` on the lease it is on and writes the edge's placement key on `lease`,
    /// if the session exists and changed no later than `decided_at`, and the edge took no
    /// demand after it. Deletes the session's `pending/` entry in the same transaction.
    pub async fn extend_session(
        &self,
        session: &SessionRecord,
        edge: &str,
        decided_at: i64,
        lease: LeaseId,
    ) -> Result<Commit, StoreError> {
        let key = self.keys.session(&session.sid);
        let edge_rev = self.keys.placement_rev(edge);
        let mut compares = vec![
            Compare::version(key.clone(), CompareOp::Greater, 0),
            Compare::mod_revision(key.clone(), CompareOp::Less, decided_at + 1),
        ];
        compares.extend(revision_guard(&edge_rev, decided_at));
        // Serialising our own record cannot fail: no maps, no failing Serialize impls.
        let value = serde_json::to_vec(session).expect("SessionRecord serialises");
        let ops = vec![
            TxnOp::put(key, value, Some(PutOptions::new().with_ignore_lease())),
            TxnOp::put(
                self.keys.placement(edge, &session.sid),
                session.edge_demand.to_string(),
                Some(PutOptions::new().with_lease(lease)),
            ),
            bump_revision(&edge_rev),
            TxnOp::delete(self.keys.pending(&session.sid), None),
        ];
        self.guarded_commit(compares, ops, &[edge]).await
    }

    /// Runs a commit; when it fails, reads the revision keys of `nodes` in the same
    /// transaction and creates the missing ones, so that the retry can hold.
    async fn guarded_commit(
        &self,
        compares: Vec<Compare>,
        ops: Vec<TxnOp>,
        nodes: &[&str],
    ) -> Result<Commit, StoreError> {
        let reads: Vec<TxnOp> = nodes
            .iter()
            .map(|node| {
                TxnOp::get(
                    self.keys.placement_rev(node),
                    Some(GetOptions::new().with_count_only()),
                )
            })
            .collect();
        let response = self
            .client
            .clone()
            .txn(Txn::new().when(compares).and_then(ops).or_else(reads))
            .await
            .map_err(|e| self.err(e))?;
        let revision = response.header().map_or(0, |h| h.revision());
        if response.succeeded() {
            return Ok(Commit::Committed { revision });
        }
        let counts = response.op_responses().into_iter().map(|op| match op {
            TxnOpResponse::Get(get) => get.count(),
            _ => 1,
        });
        for (node, count) in nodes.iter().zip(counts) {
            if count == 0 {
                self.create_placement_rev(node).await?;
            }
        }
        Ok(Commit::Conflict { revision })
    }

    /// Creates `placement-revs/<node>` on the lease of the node's record, so that it goes when
    /// the node does, if the record exists and the key does not. The agent creates it when it
    /// registers; this covers records written otherwise (by hand, by older agents).
    pub async fn create_placement_rev(&self, node: &str) -> Result<(), StoreError> {
        let node_key = self.keys.node(node);
        let mut client = self.client.clone();
        let response = client
            .get(node_key.as_str(), Some(GetOptions::new().with_keys_only()))
            .await
            .map_err(|e| self.err(e))?;
        let Some(lease) = response.kvs().first().map(|kv| kv.lease()) else {
            // The node is gone: the next decision will not choose it.
            return Ok(());
        };
        let rev = self.keys.placement_rev(node);
        let options = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        let txn = Txn::new()
            .when([
                Compare::create_revision(rev.as_str(), CompareOp::Equal, 0),
                Compare::lease(node_key.as_str(), CompareOp::Equal, lease),
            ])
            .and_then([TxnOp::put(rev.as_str(), "", options)]);
        // A lost race (created by another placer, or the record moved) is as good as done.
        client.txn(txn).await.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Writes `pending/<sid>` on a lease of [`PENDING_TTL`], replacing an earlier one, so the
    /// autoscaler sees the demand while the caller still wants it.
    pub async fn put_pending(&self, pending: &PendingDemand) -> Result<(), StoreError> {
        let lease = self.grant_lease(PENDING_TTL).await?;
        let value = serde_json::to_vec(pending).expect("PendingDemand serialises");
        self.client
            .clone()
            .put(
                self.keys.pending(&pending.sid),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Deletes one key; absent is fine.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .clone()
            .delete(key, None)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// The compares that hold only if the node whose revision key is `rev` took no demand after
/// `decided_at`: the key exists (it goes with the node's lease; an absent key could be one
/// that was bumped and then deleted) and was last written no later than the decision.
fn revision_guard(rev: &str, decided_at: i64) -> [Compare; 2] {
    [
        Compare::version(rev, CompareOp::Greater, 0),
        Compare::mod_revision(rev, CompareOp::Less, decided_at + 1),
    ]
}

/// Rewrites a node's revision key on the lease it is on. Only its `mod_revision` matters.
fn bump_revision(rev: &str) -> TxnOp {
    TxnOp::put(rev, "", Some(PutOptions::new().with_ignore_lease()))
}
