//! Where the placer reads the cluster from. `Fresh` reads etcd at the latest revision for each
//! decision, which suits a one-shot `ionctl place`. `Mirror` keeps nodes, sessions, drains,
//! pending demands and instances in memory, current through one watch on the cluster prefix, so a long-lived
//! placer (`ionctl serve`, `ionctl bench place`) decides without reading etcd. Either way the
//! snapshot's revision is one at which it is exact, which is what the commit compares against.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::de::DeserializeOwned;
use tokio::sync::{oneshot, watch};

use crate::backoff::Backoff;
use crate::model::{DrainRequest, InstanceRecord, Keys, NodeRecord, PendingDemand, SessionRecord};
use crate::placement::Snapshot;
use crate::store::{RawEvent, Store, StoreError};

pub(super) enum View {
    Fresh,
    Mirror(Mirror),
}

impl View {
    /// Runs `decide` with `input` on the cluster as of now, stamped with the current time.
    /// `fresh` forces a read from etcd (after a conflict). The mirror lends its snapshot
    /// without copying it; `decide` must leave it as it found it, but for `now`. When etcd
    /// cannot be read, `input` comes back with the error.
    pub(super) async fn with_snapshot<I, R>(
        &self,
        store: &Store,
        fresh: bool,
        input: I,
        decide: impl FnOnce(&mut Snapshot, I) -> R,
    ) -> Result<R, (StoreError, I)> {
        let now = SystemTime::now();
        match self {
            View::Mirror(mirror) if !fresh => {
                let mut state = mirror.shared.state.lock().expect("mirror lock");
                state.snapshot.now = now;
                Ok(decide(&mut state.snapshot, input))
            }
            _ => match store.snapshot().await {
                Ok(read) => Ok(decide(&mut decision_snapshot(read, now), input)),
                Err(error) => Err((error, input)),
            },
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

/// The store's consistent read as placement sees it, stamped with the time the decision is
/// made at. The conversion lives here, in the shell, so that placement knows nothing of the
/// store.
fn decision_snapshot(read: crate::store::Snapshot, now: SystemTime) -> Snapshot {
    Snapshot {
        revision: read.revision,
        now,
        nodes: read.nodes,
        sessions: read.sessions.into(),
        drains: read.drains.into_iter().map(|(id, _)| id).collect(),
        pending: read.pending,
        instances: read.instances,
    }
}

/// A record's id within its collection.
trait Keyed {
    fn id(&self) -> &str;
}

impl Keyed for NodeRecord {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Keyed for PendingDemand {
    fn id(&self) -> &str {
        &self.sid
    }
}

impl Keyed for InstanceRecord {
    fn id(&self) -> &str {
        &self.name
    }
}

/// The mirrored snapshot, with the position of each record in its vector so an event updates
/// it in place. Order within the vectors is arbitrary; `decide` does not depend on it.
struct State {
    snapshot: Snapshot,
    /// The drain requests behind `snapshot.drains`, for readers that need their reasons
    /// (the autoscaler finishes only its own drains).
    drain_requests: BTreeMap<String, DrainRequest>,
    nodes_at: HashMap<String, usize>,
    pending_at: HashMap<String, usize>,
    instances_at: HashMap<String, usize>,
}

fn positions<T: Keyed>(items: &[T]) -> HashMap<String, usize> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| (item.id().to_owned(), i))
        .collect()
}

/// Every `lock().expect(..)` on `state` below fails only if a thread panicked while holding
/// the lock, which is a bug: there is no consistent mirror to go on with.
struct Shared {
    state: Mutex<State>,
    revision: watch::Sender<i64>,
}

/// The in-memory copy; its task stops when the mirror is dropped.
pub(crate) struct Mirror {
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

impl Mirror {
    /// Lists the cluster once, then follows it with a watch in a task of its own.
    pub(crate) async fn start(store: &Store) -> Result<Self, StoreError> {
        let state = list(store).await?;
        let listed_at = state.snapshot.revision;
        let (revision, _) = watch::channel(listed_at);
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            revision,
        });
        publish_revision(&shared, listed_at);
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(follow(store.clone(), shared.clone(), stopped));
        Ok(Self {
            shared,
            _stop: stop,
        })
    }

    /// Waits (at most `timeout`) until the mirror includes `revision`; false if it did not.
    pub(crate) async fn caught_up(&self, revision: i64, timeout: Duration) -> bool {
        let mut seen = self.shared.revision.subscribe();
        tokio::time::timeout(timeout, seen.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// A copy of the cluster as the mirror has it, in the shape of the store's consistent
    /// read (for the autoscaler, which reads it once a tick instead of listing etcd).
    pub(crate) fn read(&self) -> crate::store::Snapshot {
        let state = self.shared.state.lock().expect("mirror lock");
        crate::store::Snapshot {
            revision: state.snapshot.revision,
            nodes: state.snapshot.nodes.clone(),
            sessions: state.snapshot.sessions.as_slice().to_vec(),
            drains: state
                .drain_requests
                .iter()
                .map(|(id, r)| (id.clone(), r.clone()))
                .collect(),
            pending: state.snapshot.pending.clone(),
            instances: state.snapshot.instances.clone(),
            malformed: Vec::new(),
        }
    }
}

async fn list(store: &Store) -> Result<State, StoreError> {
    let read = store.snapshot().await?;
    let drain_requests = read.drains.iter().cloned().collect();
    let snapshot = decision_snapshot(read, SystemTime::now());
    Ok(State {
        drain_requests,
        nodes_at: positions(&snapshot.nodes),
        pending_at: positions(&snapshot.pending),
        instances_at: positions(&snapshot.instances),
        snapshot,
    })
}

/// Applies watch events until stopped. A watch that breaks (etcd restarted, the connection
/// lost) is opened again from the last revision applied, after a backoff; only a watch that
/// fell behind a compaction lists the cluster again, since the events it missed are gone.
async fn follow(store: Store, shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) {
    let keys = store.keys().clone();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let after = shared.state.lock().expect("mirror lock").snapshot.revision;
        let started = Instant::now();
        let error = tokio::select! {
            _ = &mut stopped => return,
            error = watch_until_error(&store, &keys, &shared, after) => error,
        };
        if started.elapsed() >= Duration::from_secs(10) {
            backoff.reset();
        }
        if !matches!(error, StoreError::Compacted { .. }) {
            tracing::warn!(%error, after, "placement mirror lost its watch; resuming from its revision");
            metrics::counter!("ion_placer_mirror_watch_broken_total").increment(1);
            tokio::select! {
                _ = &mut stopped => return,
                () = tokio::time::sleep(backoff.next_delay()) => continue,
            }
        }
        tracing::warn!(%error, "placement mirror fell behind a compaction; listing again");
        metrics::counter!("ion_placer_mirror_relists_total").increment(1);
        let relisted = tokio::select! {
            _ = &mut stopped => return,
            relisted = list(&store) => relisted,
        };
        match relisted {
            Ok(state) => {
                let revision = state.snapshot.revision;
                *shared.state.lock().expect("mirror lock") = state;
                publish_revision(&shared, revision);
            }
            Err(error) => {
                tracing::warn!(%error, "placement mirror cannot list the cluster");
                tokio::time::sleep(backoff.next_delay()).await;
            }
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
        let mut state = shared.state.lock().expect("mirror lock");
        for event in &events {
            apply(keys, &mut state, event);
        }
        let revision = state.snapshot.revision;
        drop(state);
        publish_revision(shared, revision);
    }
}

/// Tells waiting placers, and `/metrics` (how far behind etcd the mirror is), the revision
/// the mirror is current at.
fn publish_revision(shared: &Shared, revision: i64) {
    shared.revision.send_replace(revision);
    metrics::gauge!("ion_placer_mirror_revision").set(revision as f64);
}

fn apply(keys: &Keys, state: &mut State, event: &RawEvent) {
    let snapshot = &mut state.snapshot;
    snapshot.revision = snapshot.revision.max(event.revision);
    let value = event.value.as_deref();
    if let Some(id) = keys.id_under(&keys.nodes(), &event.key) {
        upsert(&mut snapshot.nodes, &mut state.nodes_at, id, value);
    } else if let Some(sid) = keys.id_under(&keys.sessions(), &event.key) {
        // Sessions keep their own index, with the per-node sums placement reads.
        match value.map(serde_json::from_slice::<SessionRecord>) {
            Some(Ok(record)) => {
                snapshot.sessions.put(record);
            }
            Some(Err(error)) => {
                tracing::warn!(%sid, %error, "malformed record in the placement mirror; treated as absent");
                snapshot.sessions.remove(sid);
            }
            None => {
                snapshot.sessions.remove(sid);
            }
        }
    } else if let Some(sid) = keys.id_under(&keys.pendings(), &event.key) {
        upsert(&mut snapshot.pending, &mut state.pending_at, sid, value);
    } else if let Some(name) = keys.id_under(&keys.instances(), &event.key) {
        upsert(
            &mut snapshot.instances,
            &mut state.instances_at,
            name,
            value,
        );
    } else if let Some(id) = keys.id_under(&keys.drains(), &event.key) {
        // A drain whose value does not parse still keeps the node from placements.
        match value {
            Some(value) => {
                snapshot.drains.insert(id.to_owned());
                match serde_json::from_slice::<DrainRequest>(value) {
                    Ok(request) => state.drain_requests.insert(id.to_owned(), request),
                    Err(_) => state.drain_requests.remove(id),
                };
            }
            None => {
                snapshot.drains.remove(id);
                state.drain_requests.remove(id);
            }
        }
    }
}

fn upsert<T: DeserializeOwned + Keyed>(
    items: &mut Vec<T>,
    at: &mut HashMap<String, usize>,
    id: &str,
    value: Option<&[u8]>,
) {
    match value.map(serde_json::from_slice::<T>) {
        Some(Ok(record)) => match at.get(id) {
            Some(&i) => items[i] = record,
            None => {
                at.insert(id.to_owned(), items.len());
                items.push(record);
            }
        },
        Some(Err(error)) => {
            tracing::warn!(%id, %error, "malformed record in the placement mirror; treated as absent");
            remove(items, at, id);
        }
        None => remove(items, at, id),
    }
}

/// Removes `id` by moving the last record into its place.
fn remove<T: Keyed>(items: &mut Vec<T>, at: &mut HashMap<String, usize>, id: &str) {
    if let Some(i) = at.remove(id) {
        items.swap_remove(i);
        if let Some(moved) = items.get(i) {
            at.insert(moved.id().to_owned(), i);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{SessionClass, SessionState};

    fn session(sid: &str, demand: u32) -> SessionRecord {
        SessionRecord {
            sid: sid.to_owned(),
            class: SessionClass::Group,
            size: 2,
            demand,
            node: "n1".to_owned(),
            state: SessionState::Reserved,
            relays: Vec::new(),
            edge_demand: 0,
            created_at: SystemTime::UNIX_EPOCH,
        }
    }

    fn empty() -> State {
        State {
            snapshot: decision_snapshot(crate::store::Snapshot::default(), SystemTime::UNIX_EPOCH),
            drain_requests: BTreeMap::new(),
            nodes_at: HashMap::new(),
            pending_at: HashMap::new(),
            instances_at: HashMap::new(),
        }
    }

    #[test]
    fn events_keep_the_mirror_equal_to_the_store() {
        let keys = Keys::default();
        let mut state = empty();
        let mut expected: BTreeMap<String, u32> = BTreeMap::new();
        let mut revision = 0;
        let mut event = |state: &mut State, sid: &str, demand: Option<u32>| {
            revision += 1;
            let value = demand.map(|d| serde_json::to_vec(&session(sid, d)).expect("JSON"));
            let raw = RawEvent {
                key: keys.session(sid),
                value,
                revision,
            };
            apply(&keys, state, &raw);
        };
        // Puts, deletes from the front, middle and back (each moves the last record), updates
        // of moved records, and a delete of something absent.
        let script: &[(&str, Option<u32>)] = &[
            ("a", Some(1)),
            ("b", Some(2)),
            ("c", Some(3)),
            ("d", Some(4)),
            ("a", None),
            ("d", Some(40)),
            ("c", None),
            ("e", Some(5)),
            ("b", Some(20)),
            ("zz", None),
            ("e", None),
            ("f", Some(6)),
        ];
        for &(sid, demand) in script {
            event(&mut state, sid, demand);
            match demand {
                Some(d) => expected.insert(sid.to_owned(), d),
                None => expected.remove(sid),
            };
            let mirrored: BTreeMap<String, u32> = state
                .snapshot
                .sessions
                .iter()
                .map(|s| (s.sid.clone(), s.demand))
                .collect();
            assert_eq!(mirrored, expected, "after {sid} {demand:?}");
            assert_eq!(
                state.snapshot.sessions.len(),
                expected.len(),
                "no duplicates"
            );
            for (sid, &demand) in &expected {
                assert_eq!(
                    state.snapshot.sessions.get(sid).map(|s| s.demand),
                    Some(demand)
                );
            }
            let on_n1: u32 = expected.values().sum();
            assert_eq!(state.snapshot.sessions.on_node("n1").committed(), on_n1);
        }
        assert_eq!(state.snapshot.revision, script.len() as i64);
        // Malformed values count as absent; drains are tracked by id.
        apply(
            &keys,
            &mut state,
            &RawEvent {
                key: keys.session("f"),
                value: Some(b"{".to_vec()),
                revision: 100,
            },
        );
        assert!(state.snapshot.sessions.iter().all(|s| s.sid != "f"));
        apply(
            &keys,
            &mut state,
            &RawEvent {
                key: keys.drain("n1"),
                value: Some(b"{}".to_vec()),
                revision: 101,
            },
        );
        assert!(state.snapshot.drains.contains("n1"));
    }

    #[test]
    fn drain_requests_follow_the_drain_keys() {
        let keys = Keys::default();
        let mut state = empty();
        let request = DrainRequest {
            requested_at: SystemTime::UNIX_EPOCH,
            deadline: None,
            reason: Some("autoscale: idle".to_owned()),
        };
        let put = |value: &[u8]| RawEvent {
            key: keys.drain("n1"),
            value: Some(value.to_vec()),
            revision: 1,
        };
        apply(
            &keys,
            &mut state,
            &put(&serde_json::to_vec(&request).expect("JSON")),
        );
        assert!(state.snapshot.drains.contains("n1"));
        assert_eq!(state.drain_requests.get("n1"), Some(&request));
        // A value that does not parse still drains the node, with no request to read.
        apply(&keys, &mut state, &put(b"not json"));
        assert!(state.snapshot.drains.contains("n1"));
        assert_eq!(state.drain_requests.get("n1"), None);
        apply(
            &keys,
            &mut state,
            &put(&serde_json::to_vec(&request).expect("JSON")),
        );
        let deleted = RawEvent {
            key: keys.drain("n1"),
            value: None,
            revision: 2,
        };
        apply(&keys, &mut state, &deleted);
        assert!(!state.snapshot.drains.contains("n1"));
        assert!(state.drain_requests.is_empty());
    }
}
