//! Session ownership for agents: claiming `sessions/<sid>` on the first join (adopting a
//! placer's reservation, or creating an unplaced session) and deleting it after the last
//! leave. The claim moves the session and its placement index onto the node's lease, so a
//! dead node's sessions disappear with it.

use std::time::SystemTime;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};

use super::lease::LeaseId;
use super::{Store, StoreError};
use crate::model::{NodeRecord, SessionClass, SessionRecord, SessionState};

/// What a claim does when the session has no record in etcd.
#[derive(Debug, Clone, PartialEq)]
pub enum IfUnplaced {
    /// Refuse: only a placed session is taken ([`Claim::NotPlaced`]).
    Refuse,
    /// Create a record with no demand (local use, `allow_unplaced`).
    Create,
    /// Write back this node's last record of the session: its key lapsed with a lease
    /// this node lost (a partition longer than the TTL) while its participants stayed.
    Restore(SessionRecord),
}

/// The result of a claim that etcd answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// A placer reserved the session for this node; it is now live on the node's lease.
    Adopted(SessionRecord),
    /// No record existed; the agent created one (unplaced sessions allowed) or restored its
    /// own after losing its lease.
    Created(SessionRecord),
    /// The session lives on another node.
    OtherNode {
        node: String,
        signal_url: Option<String>,
    },
    /// No reservation exists and this agent only takes placed sessions.
    NotPlaced,
    /// The session lives on `origin` and this node is one of its edges (`relays`): the
    /// agent takes its viewers and relays the session's tracks from the origin. The record
    /// stays the origin's.
    Edge {
        origin: String,
        signal_url: Option<String>,
    },
}

impl Store {
    /// Claims `sid` for `node_id` on `lease`. Retries a few times when the key changes under
    /// it (a placer or another claim racing).
    pub async fn claim_session(
        &self,
        sid: &str,
        node_id: &str,
        lease: LeaseId,
        if_unplaced: &IfUnplaced,
    ) -> Result<Claim, StoreError> {
        let key = self.keys.session(sid);
        let index = self.keys.placement(node_id, sid);
        let mut client = self.client.clone();
        for _attempt in 0..5 {
            let response = client
                .get(key.as_str(), None)
                .await
                .map_err(|e| self.err(e))?;
            let current = response.kvs().first();
            let (record, guard) = match current {
                Some(kv) => {
                    let mut record: SessionRecord =
                        serde_json::from_slice(kv.value()).map_err(|source| {
                            StoreError::Malformed {
                                key: key.clone(),
                                source,
                            }
                        })?;
                    if record.node != node_id {
                        let url = self
                            .get::<NodeRecord>(&self.keys.node(&record.node))
                            .await?
                            .map(|n| n.signal_url);
                        return Ok(if record.relays.iter().any(|r| r == node_id) {
                            Claim::Edge {
                                origin: record.node,
                                signal_url: url,
                            }
                        } else {
                            Claim::OtherNode {
                                node: record.node,
                                signal_url: url,
                            }
                        });
                    }
                    record.state = SessionState::Live;
                    (
                        record,
                        Compare::mod_revision(key.as_str(), CompareOp::Equal, kv.mod_revision()),
                    )
                }
                None => {
                    let record = match if_unplaced {
                        IfUnplaced::Restore(record) => SessionRecord {
                            node: node_id.to_owned(),
                            state: SessionState::Live,
                            ..record.clone()
                        },
                        IfUnplaced::Create => SessionRecord {
                            sid: sid.to_owned(),
                            // Unplaced sessions carry no demand; the node's CPU (observed
                            // units) accounts for them.
                            class: SessionClass::Meeting,
                            size: 0,
                            demand: 0,
                            node: node_id.to_owned(),
                            state: SessionState::Live,
                            relays: Vec::new(),
                            edge_demand: 0,
                            created_at: SystemTime::now(),
                        },
                        IfUnplaced::Refuse => return Ok(Claim::NotPlaced),
                    };
                    (
                        record,
                        Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
                    )
                }
            };
            let on_lease = || Some(PutOptions::new().with_lease(lease));
            // Serialising our own record types cannot fail.
            let value = serde_json::to_vec(&record).expect("SessionRecord serialises");
            let demand = record.demand.to_string();
            let mut ops = vec![
                TxnOp::put(key.as_str(), value, on_lease()),
                TxnOp::put(index.as_str(), demand, on_lease()),
            ];
            if current.is_none() {
                // Creating or restoring adds demand no placer committed: placers that decided
                // before it must not commit to this node (docs/placement.md). Adopting a
                // reservation only moves it onto this lease.
                ops.push(TxnOp::put(self.keys.placement_rev(node_id), "", on_lease()));
            }
            let txn = Txn::new().when([guard]).and_then(ops);
            let response = client.txn(txn).await.map_err(|e| self.err(e))?;
            if response.succeeded() {
                return Ok(if current.is_some() {
                    Claim::Adopted(record)
                } else {
                    Claim::Created(record)
                });
            }
        }
        Err(StoreError::Rejected(format!(
            "session {sid} kept changing while this node claimed it; try joining again"
        )))
    }

    /// Deletes `sid` and its placement index, if the session is still this node's.
    pub async fn release_session(&self, sid: &str, node_id: &str) -> Result<(), StoreError> {
        let key = self.keys.session(sid);
        let mut client = self.client.clone();
        let response = client
            .get(key.as_str(), None)
            .await
            .map_err(|e| self.err(e))?;
        let Some(kv) = response.kvs().first() else {
            return Ok(());
        };
        let owned =
            serde_json::from_slice::<SessionRecord>(kv.value()).is_ok_and(|r| r.node == node_id);
        if !owned {
            return Ok(());
        }
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                kv.mod_revision(),
            )])
            .and_then([
                TxnOp::delete(key.as_str(), None),
                TxnOp::delete(self.keys.placement(node_id, sid), None),
            ]);
        client.txn(txn).await.map_err(|e| self.err(e))?;
        Ok(())
    }
}
