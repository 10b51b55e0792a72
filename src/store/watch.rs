//! Watches: typed ones on one collection, where each etcd event becomes a [`Change`] of the
//! record type, and a raw one on the whole cluster prefix for caches that mirror several
//! collections at one revision.

use std::marker::PhantomData;

use etcd_client::{EventType, WatchOptions, WatchStream};
use serde::de::DeserializeOwned;

use super::{Store, StoreError};
pub use crate::model::Change;
use crate::model::Keys;

/// A watch on one collection from a revision on. The first etcd reply (the "created"
/// message, which carries no events) is consumed inside [`Watch::next`].
pub struct Watch<T> {
    stream: WatchStream,
    keys: Keys,
    collection: String,
    /// The revision everything up to which has been delivered: where [`Watch::resume`]
    /// starts again.
    revision: i64,
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
        let stream = self.watch_prefix(collection, after_revision).await?;
        Ok(Watch {
            stream,
            keys: self.keys.clone(),
            collection: collection.to_owned(),
            revision: after_revision,
            _record: PhantomData,
        })
    }

    /// The raw stream of every change under `prefix` after `after_revision`.
    async fn watch_prefix(
        &self,
        prefix: &str,
        after_revision: i64,
    ) -> Result<WatchStream, StoreError> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(after_revision + 1);
        let stream = self
            .client
            .clone()
            .watch(prefix, Some(options))
            .await
            .map_err(|e| self.err(e))?;
        Ok(stream)
    }
}

impl<T: DeserializeOwned> Watch<T> {
    /// The next batch of changes. An error means the stream is over: after
    /// [`StoreError::Compacted`] the caller lists again and starts a new watch; after any
    /// other error it may [`Watch::resume`] this one.
    pub async fn next(&mut self) -> Result<Vec<Change<T>>, StoreError> {
        loop {
            let events = next_events(&mut self.stream, &self.collection).await?;
            // etcd sends every event of one revision in one message, so the newest event
            // of a message marks everything before it as delivered.
            if let Some(newest) = events
                .iter()
                .filter_map(|e| e.kv())
                .map(|kv| kv.mod_revision())
                .max()
            {
                self.revision = self.revision.max(newest);
            }
            let changes: Vec<Change<T>> = events
                .iter()
                .filter_map(|event| self.change(event))
                .collect();
            if !changes.is_empty() {
                return Ok(changes);
            }
        }
    }

    /// Opens the stream again after the last revision delivered, so a broken connection
    /// costs no listing. If etcd compacted that revision away, the next [`Watch::next`]
    /// says so.
    pub async fn resume(&mut self, store: &Store) -> Result<(), StoreError> {
        self.stream = store.watch_prefix(&self.collection, self.revision).await?;
        Ok(())
    }

    /// The revision everything up to which has been delivered.
    pub fn revision(&self) -> i64 {
        self.revision
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

/// The next non-empty batch of events, in revision order; events of one revision always come
/// in one batch.
async fn next_events(
    stream: &mut WatchStream,
    prefix: &str,
) -> Result<Vec<etcd_client::Event>, StoreError> {
    loop {
        let response = stream
            .message()
            .await
            .map_err(|e| StoreError::classify(e, &[]))?
            .ok_or_else(|| StoreError::WatchEnded {
                prefix: prefix.to_owned(),
                reason: "the server closed the stream".to_owned(),
            })?;
        if response.compact_revision() > 0 {
            return Err(StoreError::Compacted {
                prefix: prefix.to_owned(),
                revision: response.compact_revision(),
            });
        }
        if response.canceled() {
            return Err(StoreError::WatchEnded {
                prefix: prefix.to_owned(),
                reason: response.cancel_reason().to_owned(),
            });
        }
        if !response.events().is_empty() {
            return Ok(response.events().to_vec());
        }
    }
}

/// One put (`value` set) or delete anywhere under the cluster prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub key: String,
    pub value: Option<Vec<u8>>,
    pub revision: i64,
}

/// A watch on every key under the cluster prefix.
pub struct RawWatch {
    stream: WatchStream,
    prefix: String,
}

impl Store {
    /// Watches every key under the prefix for changes after `after_revision`.
    pub async fn watch_all(&self, after_revision: i64) -> Result<RawWatch, StoreError> {
        let prefix = self.keys.prefix().to_owned();
        let stream = self.watch_prefix(&prefix, after_revision).await?;
        Ok(RawWatch { stream, prefix })
    }
}

impl RawWatch {
    /// The next batch of events. An error means the watch is over.
    pub async fn next(&mut self) -> Result<Vec<RawEvent>, StoreError> {
        let events = next_events(&mut self.stream, &self.prefix).await?;
        Ok(events
            .iter()
            .filter_map(|event| {
                let kv = event.kv()?;
                Some(RawEvent {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    value: (event.event_type() == EventType::Put).then(|| kv.value().to_vec()),
                    revision: kv.mod_revision(),
                })
            })
            .collect())
    }
}
