//! Typed watches on one collection: each etcd event becomes a [`Change`] of the record type.

use std::marker::PhantomData;

use etcd_client::{EventType, WatchOptions, WatchStream};
use serde::de::DeserializeOwned;

use super::{Store, StoreError};
use crate::model::Keys;

/// One change to a collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    Put {
        id: String,
        record: T,
        revision: i64,
    },
    Deleted {
        id: String,
        revision: i64,
    },
    /// The value at `id` did not parse; the record is treated as absent.
    Malformed {
        id: String,
        revision: i64,
    },
}

/// A watch on one collection from a revision on. The first etcd reply (the "created"
/// message, which carries no events) is consumed inside [`Watch::next`].
pub struct Watch<T> {
    stream: WatchStream,
    keys: Keys,
    collection: String,
    _record: PhantomData<fn() -> T>,
}

impl Store {
    /// Watches `collection` for changes after `after_revision` (the revision of the list the
    /// caller already holds), so nothing between the list and the watch is missed.
    pub async fn watch<T: DeserializeOwned>(
        &self,
        collection: &str,
        after_revision: i64,
    ) -> Result<Watch<T>, StoreError> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(after_revision + 1);
        let stream = self
            .client
            .clone()
            .watch(collection, Some(options))
            .await
            .map_err(|e| self.err(e))?;
        Ok(Watch {
            stream,
            keys: self.keys.clone(),
            collection: collection.to_owned(),
            _record: PhantomData,
        })
    }
}

impl<T: DeserializeOwned> Watch<T> {
    /// The next batch of changes. An error means the watch is over: the caller lists again
    /// and starts a new watch.
    pub async fn next(&mut self) -> Result<Vec<Change<T>>, StoreError> {
        loop {
            let response = self
                .stream
                .message()
                .await
                .map_err(|e| StoreError::classify(e, &[]))?
                .ok_or_else(|| StoreError::WatchEnded {
                    prefix: self.collection.clone(),
                    reason: "the server closed the stream".to_owned(),
                })?;
            if response.compact_revision() > 0 {
                return Err(StoreError::Compacted {
                    prefix: self.collection.clone(),
                    revision: response.compact_revision(),
                });
            }
            if response.canceled() {
                return Err(StoreError::WatchEnded {
                    prefix: self.collection.clone(),
                    reason: response.cancel_reason().to_owned(),
                });
            }
            let changes: Vec<Change<T>> = response
                .events()
                .iter()
                .filter_map(|event| self.change(event))
                .collect();
            if !changes.is_empty() {
                return Ok(changes);
            }
        }
    }

    fn change(&self, event: &etcd_client::Event) -> Option<Change<T>> {
        let kv = event.kv()?;
        let key = std::str::from_utf8(kv.key()).ok()?;
        let id = self.keys.id_under(&self.collection, key)?.to_owned();
        let revision = kv.mod_revision();
        Some(match event.event_type() {
            EventType::Delete => Change::Deleted { id, revision },
            EventType::Put => match serde_json::from_slice(kv.value()) {
                Ok(record) => Change::Put {
                    id,
                    record,
                    revision,
                },
                Err(error) => {
                    tracing::warn!(%key, %error, "malformed record in watch");
                    Change::Malformed { id, revision }
                }
            },
        })
    }
}
