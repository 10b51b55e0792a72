//! Leases and the node record: what an agent needs to register itself and keep its record
//! alive. A node record is only ever written on the writer's own lease, so two agents that
//! were given the same node id cannot silently overwrite each other.

use std::time::Duration;

use etcd_client::{Compare, CompareOp, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn, TxnOp};

use super::{Store, StoreError};
use crate::model::NodeRecord;

pub type LeaseId = i64;

/// The outcome of writing a node record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeWrite {
    /// Written at this revision.
    Written { revision: i64 },
    /// Another lease holds the node key: another agent with the same id, or this agent's
    /// previous life whose lease has not expired yet.
    HeldByOtherLease { lease: LeaseId },
}

impl Store {
    pub async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let ttl_secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let response = self
            .client
            .clone()
            .lease_grant(ttl_secs, None)
            .await
            .map_err(|e| self.err(e))?;
        Ok(response.id())
    }

    /// Opens the keep-alive stream of `lease`. Send on the keeper, read TTLs from the stream;
    /// a TTL of 0 means the lease is gone.
    pub async fn keep_alive(
        &self,
        lease: LeaseId,
    ) -> Result<(LeaseKeeper, LeaseKeepAliveStream), StoreError> {
        self.client
            .clone()
            .lease_keep_alive(lease)
            .await
            .map_err(|e| self.err(e))
    }

    /// The remaining TTL of `lease`, or `None` when it has expired or never existed.
    pub async fn lease_ttl(&self, lease: LeaseId) -> Result<Option<Duration>, StoreError> {
        let response = self
            .client
            .clone()
            .lease_time_to_live(lease, None)
            .await
            .map_err(|e| self.err(e))?;
        Ok(u64::try_from(response.ttl())
            .ok()
            .filter(|ttl| *ttl > 0)
            .map(Duration::from_secs))
    }

    /// Revokes `lease`; every key on it disappears at once.
    pub async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.client
            .clone()
            .lease_revoke(lease)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Writes `record` under `nodes/<id>` on `lease`, if the key is absent or already on that
    /// lease.
    pub async fn put_node(
        &self,
        record: &NodeRecord,
        lease: LeaseId,
    ) -> Result<NodeWrite, StoreError> {
        let key = self.keys.node(&record.id);
        // Serialising a NodeRecord cannot fail: all its maps have string keys.
        let value = serde_json::to_vec(record).expect("NodeRecord serialises");
        let put = || {
            TxnOp::put(
                key.clone(),
                value.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )
        };
        let mut client = self.client.clone();
        // etcd compares are ANDed, so "absent or ours" takes two transactions; the first
        // covers every write after registration.
        let ours = Txn::new()
            .when([Compare::lease(key.clone(), CompareOp::Equal, lease)])
            .and_then([put()])
            .or_else([TxnOp::get(key.clone(), None)]);
        let response = client.txn(ours).await.map_err(|e| self.err(e))?;
        if response.succeeded() {
            return Ok(NodeWrite::Written {
                revision: response.header().map_or(0, |h| h.revision()),
            });
        }
        // Registering creates the node's placement revision key on the same lease, so that
        // placers can commit to it from the start and the key goes when the node does.
        let absent = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([
                put(),
                TxnOp::put(
                    self.keys.placement_rev(&record.id),
                    "",
                    Some(PutOptions::new().with_lease(lease)),
                ),
            ])
            .or_else([TxnOp::get(key.clone(), None)]);
        let response = client.txn(absent).await.map_err(|e| self.err(e))?;
        if response.succeeded() {
            return Ok(NodeWrite::Written {
                revision: response.header().map_or(0, |h| h.revision()),
            });
        }
        let holder = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                etcd_client::TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.lease()),
                _ => None,
            })
            .unwrap_or_default();
        Ok(NodeWrite::HeldByOtherLease { lease: holder })
    }
}
