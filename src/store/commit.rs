//! The race-free placement commit of docs/placement.md, and pending demands.
//!
//! A reservation creates `sessions/<sid>` and `placements/<node>/<sid>` on a reservation lease,
//! in one transaction that holds only if the session is absent and nothing under
//! `placements/<node>/` changed after the revision the decision was made at. Several
//! reservations may share one transaction (group commit); then all hold or none does.

use std::time::Duration;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};

use super::{LeaseId, Store, StoreError};
use crate::model::{PendingDemand, SessionRecord};

/// The most reservations in one transaction: each takes 3 operations, and etcd allows 128 by
/// default (`--max-txn-ops`).
pub const MAX_RESERVATIONS_PER_TXN: usize = 32;
/// etcd's default `--max-txn-ops`: the most operations in one transaction.
pub const MAX_TXN_OPS: usize = 128;

/// The operations a reservation of `session` takes in the commit: the session, the pending
/// demand's delete and a placement key on each node it spans.
pub fn reservation_ops(session: &SessionRecord) -> usize {
    3 + session.relays.len()
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
    /// Runs a guarded reservation transaction and says what it came to, at etcd's revision
    /// then.
    async fn commit_txn(&self, txn: Txn) -> Result<Commit, StoreError> {
        let response = self
            .client
            .clone()
            .txn(txn)
            .await
            .map_err(|e| self.err(e))?;
        let revision = response.header().map_or(0, |h| h.revision());
        Ok(if response.succeeded() {
            Commit::Committed { revision }
        } else {
            Commit::Conflict { revision }
        })
    }

    /// Writes `sessions` (each naming its node) on `lease`, if each session is absent and no
    /// chosen node's placement index changed after `decided_at`. Deletes each session's
    /// `pending/` entry in the same transaction.
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
        let mut compares = Vec::with_capacity(sessions.len() * 2);
        let mut ops = Vec::with_capacity(sessions.len() * 3);
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
        for node in nodes {
            // Every key in the node's placement range must be older than the decision. An
            // empty range compares as revision 0 and holds.
            compares.push(
                Compare::mod_revision(
                    self.keys.placements_of(node),
                    CompareOp::Less,
                    decided_at + 1,
                )
                .with_prefix(),
            );
        }
        self.commit_txn(Txn::new().when(compares).and_then(ops))
            .await
    }

    /// Adds `edge` to the spanning session `session` (already listing it): rewrites
    /// `sessions/<sid>` on the lease it is on and writes the edge's placement key on `lease`,
    /// if the session exists and neither it nor the edge's placement index changed after
    /// `decided_at`. Deletes the session's `pending/` entry in the same transaction.
    pub async fn extend_session(
        &self,
        session: &SessionRecord,
        edge: &str,
        decided_at: i64,
        lease: LeaseId,
    ) -> Result<Commit, StoreError> {
        let key = self.keys.session(&session.sid);
        let compares = vec![
            Compare::version(key.clone(), CompareOp::Greater, 0),
            Compare::mod_revision(key.clone(), CompareOp::Less, decided_at + 1),
            Compare::mod_revision(
                self.keys.placements_of(edge),
                CompareOp::Less,
                decided_at + 1,
            )
            .with_prefix(),
        ];
        // Serialising our own record cannot fail: no maps, no failing Serialize impls.
        let value = serde_json::to_vec(session).expect("SessionRecord serialises");
        let ops = vec![
            TxnOp::put(key, value, Some(PutOptions::new().with_ignore_lease())),
            TxnOp::put(
                self.keys.placement(edge, &session.sid),
                session.edge_demand.to_string(),
                Some(PutOptions::new().with_lease(lease)),
            ),
            TxnOp::delete(self.keys.pending(&session.sid), None),
        ];
        self.commit_txn(Txn::new().when(compares).and_then(ops))
            .await
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
