//! Guarded read-modify-write of one record, for records that two writers share (a
//! recording: `ionctl record stop` sets one field, the recorder the rest). The write
//! succeeds only if the key is unchanged since the read; otherwise the change is applied
//! again to the newer value.

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Store, StoreError};

/// How often a conflicting update is retried before giving up: far more than two writers
/// that each write a few times a second can cause.
const ATTEMPTS: usize = 16;

impl Store {
    /// Applies `change` to the record at `key` and writes it back unless another writer
    /// changed the key in between (then it reads and applies again). `change` returns false
    /// to leave the record as it is. Returns the record as written (or as found, when
    /// unchanged); `None` when the key does not exist.
    pub async fn update<T: DeserializeOwned + Serialize>(
        &self,
        key: &str,
        mut change: impl FnMut(&mut T) -> bool,
    ) -> Result<Option<T>, StoreError> {
        for _ in 0..ATTEMPTS {
            let response = self
                .client
                .clone()
                .get(key, None)
                .await
                .map_err(|e| self.err(e))?;
            let Some(kv) = response.kvs().first() else {
                return Ok(None);
            };
            let mut record: T =
                serde_json::from_slice(kv.value()).map_err(|source| StoreError::Malformed {
                    key: key.to_owned(),
                    source,
                })?;
            if !change(&mut record) {
                return Ok(Some(record));
            }
            let value = serde_json::to_vec(&record).expect("records serialise");
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key,
                    CompareOp::Equal,
                    kv.mod_revision(),
                )])
                .and_then([TxnOp::put(key, value, None)]);
            let written = self
                .client
                .clone()
                .txn(txn)
                .await
                .map_err(|e| self.err(e))?;
            if written.succeeded() {
                return Ok(Some(record));
            }
        }
        Err(StoreError::Conflict {
            key: key.to_owned(),
        })
    }
}
