//! Where the placer reads the cluster from. `Fresh` reads etcd at the latest revision for each
//! decision, which suits a one-shot `ionctl place`. `Mirror` keeps nodes, sessions, drains and
//! pending demands in memory, current through one watch on the cluster prefix, so a long-lived
//! placer (`ionctl serve`, `ionctl bench place`) decides without reading etcd. Either way the
//! snapshot's revision is one at which it is exact, which is what the commit compares against.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use tokio::sync::{oneshot, watch};

use crate::model::{Keys, NodeRecord, PendingDemand, SessionRecord};
use crate::placement::Snapshot;
use crate::store::{RawEvent, Store, StoreError};

pub(super) enum View {
    Fresh,
    Mirror(Mirror),
}

impl View {
    /// The cluster as of now. `fresh` forces a read from etcd (after a conflict).
    pub(super) async fn snapshot(
        &self,
        store: &Store,
        fresh: bool,
    ) -> Result<Snapshot, StoreError> {
        match self {
            View::Mirror(mirror) if !fresh => Ok(mirror.snapshot(SystemTime::now())),
            _ => Ok(Snapshot::new(store.snapshot().await?, SystemTime::now())),
        }
    }

    /// Waits (at most `timeout`) until the view includes `revision`; a fresh view always does.
    pub(super) async fn caught_up(&self, revision: i64, timeout: Duration) {
        if let View::Mirror(mirror) = self {
            let mut seen = mirror.shared.revision.subscribe();
            let _ = tokio::time::timeout(timeout, seen.wait_for(|r| *r >= revision)).await;
        }
    }
}

#[derive(Default)]
struct State {
    revision: i64,
    nodes: BTreeMap<String, NodeRecord>,
    sessions: BTreeMap<String, SessionRecord>,
    drains: BTreeSet<String>,
    pending: BTreeMap<String, PendingDemand>,
}

struct Shared {
    state: RwLock<State>,
    revision: watch::Sender<i64>,
}

/// The in-memory copy; its task stops when the mirror is dropped.
pub(super) struct Mirror {
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

impl Mirror {
    /// Lists the cluster once, then follows it with a watch in a task of its own.
    pub(super) async fn start(store: &Store) -> Result<Self, StoreError> {
        let state = list(store).await?;
        let (revision, _) = watch::channel(state.revision);
        let shared = Arc::new(Shared {
            state: RwLock::new(state),
            revision,
        });
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(follow(store.clone(), shared.clone(), stopped));
        Ok(Self {
            shared,
            _stop: stop,
        })
    }

    fn snapshot(&self, now: SystemTime) -> Snapshot {
        // A poisoned lock means a panic while applying events: a bug, not a state to go on in.
        let state = self.shared.state.read().expect("mirror lock");
        Snapshot {
            revision: state.revision,
            now,
            nodes: state.nodes.values().cloned().collect(),
            sessions: state.sessions.values().cloned().collect(),
            drains: state.drains.clone(),
            pending: state.pending.values().cloned().collect(),
        }
    }
}

async fn list(store: &Store) -> Result<State, StoreError> {
    let read = store.snapshot().await?;
    Ok(State {
        revision: read.revision,
        nodes: read.nodes.into_iter().map(|n| (n.id.clone(), n)).collect(),
        sessions: read
            .sessions
            .into_iter()
            .map(|s| (s.sid.clone(), s))
            .collect(),
        drains: read.drains.into_iter().map(|(id, _)| id).collect(),
        pending: read
            .pending
            .into_iter()
            .map(|p| (p.sid.clone(), p))
            .collect(),
    })
}

/// Applies watch events until stopped; after a broken watch, lists again and goes on.
async fn follow(store: Store, shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) {
    let keys = store.keys().clone();
    loop {
        let after = shared.state.read().expect("mirror lock").revision;
        let error = tokio::select! {
            _ = &mut stopped => return,
            error = watch_until_error(&store, &keys, &shared, after) => error,
        };
        tracing::warn!(%error, "placement mirror lost its watch; listing again");
        let relisted = tokio::select! {
            _ = &mut stopped => return,
            relisted = async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                list(&store).await
            } => relisted,
        };
        match relisted {
            Ok(state) => {
                let revision = state.revision;
                *shared.state.write().expect("mirror lock") = state;
                shared.revision.send_replace(revision);
            }
            Err(error) => tracing::warn!(%error, "placement mirror cannot list the cluster"),
        }
    }
}

/// Applies watch events from `after` on; returns what ended the watch.
async fn watch_until_error(store: &Store, keys: &Keys, shared: &Shared, after: i64) -> StoreError {
    let mut watch = match store.watch_all(after).await {
        Ok(watch) => watch,
        Err(error) => return error,
    };
    loop {
        let events = match watch.next().await {
            Ok(events) => events,
            Err(error) => return error,
        };
        let mut state = shared.state.write().expect("mirror lock");
        for event in &events {
            apply(keys, &mut state, event);
        }
        let revision = state.revision;
        drop(state);
        shared.revision.send_replace(revision);
    }
}

fn apply(keys: &Keys, state: &mut State, event: &RawEvent) {
    state.revision = state.revision.max(event.revision);
    let value = event.value.as_deref();
    if let Some(id) = keys.id_under(&keys.nodes(), &event.key) {
        upsert(&mut state.nodes, id, value);
    } else if let Some(sid) = keys.id_under(&keys.sessions(), &event.key) {
        upsert(&mut state.sessions, sid, value);
    } else if let Some(sid) = keys.id_under(&keys.pendings(), &event.key) {
        upsert(&mut state.pending, sid, value);
    } else if let Some(id) = keys.id_under(&keys.drains(), &event.key) {
        match value {
            Some(_) => state.drains.insert(id.to_owned()),
            None => state.drains.remove(id),
        };
    }
}

fn upsert<T: DeserializeOwned>(map: &mut BTreeMap<String, T>, id: &str, value: Option<&[u8]>) {
    match value.map(serde_json::from_slice::<T>) {
        Some(Ok(record)) => {
            map.insert(id.to_owned(), record);
        }
        Some(Err(error)) => {
            tracing::warn!(%id, %error, "malformed record in the placement mirror; treated as absent");
            map.remove(id);
        }
        None => {
            map.remove(id);
        }
    }
}
