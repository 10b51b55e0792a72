//! Typed listing of the cluster's collections, and the consistent snapshot placement and the
//! CLI read from.

use etcd_client::GetOptions;
use serde::de::DeserializeOwned;

use super::{Store, StoreError};
use crate::model::{DrainRequest, InstanceRecord, NodeRecord, PendingDemand, SessionRecord};

/// The records of one collection at one etcd revision. Records that do not parse are left out
/// and named in `malformed`, so one bad key cannot hide the rest of the cluster.
#[derive(Debug, Clone)]
pub struct Listed<T> {
    pub items: Vec<(String, T)>,
    pub revision: i64,
    pub malformed: Vec<String>,
}

/// Nodes, sessions, drains, pending demands and instances, all read at the same revision.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub revision: i64,
    pub nodes: Vec<NodeRecord>,
    pub sessions: Vec<SessionRecord>,
    /// Node ids with a drain request, and the request.
    pub drains: Vec<(String, DrainRequest)>,
    pub pending: Vec<PendingDemand>,
    pub instances: Vec<InstanceRecord>,
    /// Keys whose values did not parse; worth a warning, never fatal.
    pub malformed: Vec<String>,
}

impl Store {
    /// Lists one collection (a prefix from [`crate::model::Keys`]), at `revision` when given.
    pub async fn list<T: DeserializeOwned>(
        &self,
        collection: &str,
        revision: Option<i64>,
    ) -> Result<Listed<T>, StoreError> {
        let mut options = GetOptions::new().with_prefix();
        if let Some(revision) = revision {
            options = options.with_revision(revision);
        }
        let response = self
            .client
            .clone()
            .get(collection, Some(options))
            .await
            .map_err(|e| self.err(e))?;
        let revision = response.header().map_or(0, |h| h.revision());
        let mut listed = Listed {
            items: Vec::with_capacity(response.kvs().len()),
            revision,
            malformed: Vec::new(),
        };
        for kv in response.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let Some(id) = self.keys.id_under(collection, &key) else {
                continue;
            };
            match serde_json::from_slice(kv.value()) {
                Ok(record) => listed.items.push((id.to_owned(), record)),
                Err(source) => {
                    tracing::warn!(%key, error = %source, "skipping malformed record");
                    listed.malformed.push(key);
                }
            }
        }
        Ok(listed)
    }

    pub async fn nodes(&self) -> Result<Listed<NodeRecord>, StoreError> {
        self.list(&self.keys.nodes(), None).await
    }

    pub async fn sessions(&self) -> Result<Listed<SessionRecord>, StoreError> {
        self.list(&self.keys.sessions(), None).await
    }

    /// Proves etcd answers; returns its current revision.
    pub async fn ping(&self) -> Result<i64, StoreError> {
        let response = self
            .client
            .clone()
            .get(
                self.keys.prefix(),
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    /// etcd's current revision, from a read of one key: cheaper than [`Store::ping`], which
    /// counts the whole prefix.
    pub async fn revision(&self) -> Result<i64, StoreError> {
        let response = self
            .client
            .clone()
            .get(
                self.keys.prefix(),
                Some(GetOptions::new().with_count_only()),
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    /// Reads one record; `None` when the key is absent.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let response = self
            .client
            .clone()
            .get(key, None)
            .await
            .map_err(|e| self.err(e))?;
        response
            .kvs()
            .first()
            .map(|kv| {
                serde_json::from_slice(kv.value()).map_err(|source| StoreError::Malformed {
                    key: key.to_owned(),
                    source,
                })
            })
            .transpose()
    }

    /// Writes one record without a lease. For intentions that outlive their writer (drain
    /// requests) and for tests that plant records.
    pub async fn put<T: serde::Serialize>(&self, key: &str, record: &T) -> Result<i64, StoreError> {
        // Serialising our own record types cannot fail: they hold no maps with non-string
        // keys and no failing Serialize impls.
        let value = serde_json::to_vec(record).expect("records serialise");
        let response = self
            .client
            .clone()
            .put(key, value, None)
            .await
            .map_err(|e| self.err(e))?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    /// Nodes, sessions, drains and pending demands at one revision: the first read fixes the
    /// revision and the others read at it, so the snapshot is consistent.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let nodes = self.nodes().await?;
        let revision = Some(nodes.revision);
        let sessions: Listed<SessionRecord> = self.list(&self.keys.sessions(), revision).await?;
        let drains: Listed<DrainRequest> = self.list(&self.keys.drains(), revision).await?;
        let pending: Listed<PendingDemand> = self.list(&self.keys.pendings(), revision).await?;
        let instances: Listed<InstanceRecord> = self.list(&self.keys.instances(), revision).await?;
        let malformed = [
            nodes.malformed,
            sessions.malformed,
            drains.malformed,
            pending.malformed,
            instances.malformed,
        ]
        .concat();
        Ok(Snapshot {
            revision: nodes.revision,
            nodes: nodes.items.into_iter().map(|(_, n)| n).collect(),
            sessions: sessions.items.into_iter().map(|(_, s)| s).collect(),
            drains: drains.items,
            pending: pending.items.into_iter().map(|(_, p)| p).collect(),
            instances: instances.items.into_iter().map(|(_, i)| i).collect(),
            malformed,
        })
    }
}
