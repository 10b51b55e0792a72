//! Drain requests: `drain/<node_id>` asks a node to take no new sessions; deleting it returns
//! the node to ready. Both writes refuse a node that etcd does not know, so a typo in a CI
//! script fails loudly instead of draining nothing.

use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};

use super::{Store, StoreError};
use crate::model::DrainRequest;
use crate::model::keys::validate_id;

/// What [`Store::drain`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Drained {
    /// The request that was there before this one, if the node was already draining. It is
    /// replaced, so the newest reason and deadline win.
    pub previous: Option<DrainRequest>,
    pub revision: i64,
}

/// What [`Store::undrain`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undrained {
    /// The drain request was deleted.
    Lifted,
    /// The node was registered but not draining; nothing changed.
    WasNotDraining,
}

impl Store {
    /// Writes `drain/<node_id>` (no lease), if `nodes/<node_id>` exists at that moment. The
    /// check and the write are one transaction.
    pub async fn drain(
        &self,
        node_id: &str,
        request: &DrainRequest,
    ) -> Result<Drained, StoreError> {
        validate_id("node", node_id)?;
        let node_key = self.keys.node(node_id);
        let drain_key = self.keys.drain(node_id);
        // Serialising our own record cannot fail: no maps, no custom Serialize that errs.
        let value = serde_json::to_vec(request).expect("DrainRequest serialises");
        let txn = Txn::new()
            .when([Compare::create_revision(
                node_key.as_str(),
                CompareOp::Greater,
                0,
            )])
            .and_then([
                TxnOp::get(drain_key.as_str(), None),
                TxnOp::put(drain_key.as_str(), value, None),
            ]);
        let response = self
            .client
            .clone()
            .txn(txn)
            .await
            .map_err(|e| self.err(e))?;
        if !response.succeeded() {
            return Err(self.unknown_node(node_id));
        }
        let revision = response.header().map_or(0, |h| h.revision());
        let previous = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        });
        // A previous value that does not parse is replaced all the same; it is reported as
        // absent.
        let previous = previous.and_then(|bytes| serde_json::from_slice(&bytes).ok());
        Ok(Drained { previous, revision })
    }

    /// Deletes `drain/<node_id>`. A drain request is lifted even when its node is gone (an
    /// agent restarting during an upgrade); only a node that is neither registered nor
    /// draining is unknown.
    pub async fn undrain(&self, node_id: &str) -> Result<Undrained, StoreError> {
        validate_id("node", node_id)?;
        let node_key = self.keys.node(node_id);
        let drain_key = self.keys.drain(node_id);
        let mut client = self.client.clone();
        let deleted = client
            .delete(drain_key.as_str(), None)
            .await
            .map_err(|e| self.err(e))?;
        if deleted.deleted() > 0 {
            return Ok(Undrained::Lifted);
        }
        let node = client
            .get(
                node_key.as_str(),
                Some(etcd_client::GetOptions::new().with_count_only()),
            )
            .await
            .map_err(|e| self.err(e))?;
        if node.count() > 0 {
            Ok(Undrained::WasNotDraining)
        } else {
            Err(self.unknown_node(node_id))
        }
    }

    fn unknown_node(&self, node_id: &str) -> StoreError {
        StoreError::UnknownNode {
            node: node_id.to_owned(),
            prefix: self.keys.prefix().to_owned(),
        }
    }
}
