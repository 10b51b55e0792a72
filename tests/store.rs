//! The store against a real etcd: typed watches, consistent snapshots, and the guarded node
//! write that keeps two agents with one id from overwriting each other.

mod harness;

use std::time::{Duration, SystemTime};

use harness::{Etcd, node_record, unique_prefix};
use ion_cluster::model::{NodeRecord, SessionClass, SessionRecord, SessionState};
use ion_cluster::store::{Change, NodeWrite};

fn session(sid: &str) -> SessionRecord {
    SessionRecord {
        sid: sid.to_owned(),
        class: SessionClass::Group,
        size: 4,
        demand: 12,
        node: "n1".to_owned(),
        state: SessionState::Reserved,
        relays: Vec::new(),
        edge_demand: 0,
        created_at: SystemTime::now(),
    }
}

#[tokio::test]
async fn session_watch_sees_puts_deletes_and_malformed_values() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("store-watch");
    let store = etcd.store(&prefix).await;
    let keys = store.keys().clone();
    let listed = store.sessions().await.expect("listing");
    assert!(listed.items.is_empty());
    let mut watch = store
        .watch::<SessionRecord>(&keys.sessions(), listed.revision)
        .await
        .expect("watching");

    let s1 = session("s1");
    store.put(&keys.session("s1"), &s1).await.expect("put");
    store
        .client()
        .put(keys.session("bad"), "{", None)
        .await
        .expect("put");
    store
        .client()
        .delete(keys.session("s1"), None)
        .await
        .expect("delete");
    // A key of another collection must not show up in this watch.
    store
        .put(&keys.node("n1"), &node_record("n1", 2, 0.0))
        .await
        .expect("put");

    let mut changes = Vec::new();
    while changes.len() < 3 {
        let batch = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("changes within 5 s")
            .expect("the watch stays up");
        changes.extend(batch);
    }
    // Timestamps travel at millisecond precision; everything else is exact.
    assert!(
        matches!(&changes[0], Change::Put { id, record, .. }
            if id == "s1" && record.demand == s1.demand && record.state == s1.state),
        "{changes:?}"
    );
    assert!(matches!(&changes[1], Change::Malformed { id, .. } if id == "bad"));
    assert!(matches!(&changes[2], Change::Deleted { id, .. } if id == "s1"));
    assert_eq!(changes.len(), 3, "{changes:?}");
}

#[tokio::test]
async fn snapshot_reads_every_collection_at_one_revision() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("store-snapshot");
    let store = etcd.store(&prefix).await;
    let keys = store.keys().clone();
    store
        .put(&keys.node("n1"), &node_record("n1", 2, 0.0))
        .await
        .expect("put");
    let revision = store
        .put(&keys.session("s1"), &session("s1"))
        .await
        .expect("put");
    let snapshot = store.snapshot().await.expect("snapshot");
    assert_eq!(snapshot.revision, revision);
    assert_eq!(snapshot.nodes.len(), 1);
    assert_eq!(snapshot.sessions.len(), 1);
    assert!(snapshot.malformed.is_empty());

    // Another cluster's prefix is invisible.
    let other = etcd.store(&unique_prefix("store-other")).await;
    assert!(other.snapshot().await.expect("snapshot").nodes.is_empty());
}

#[tokio::test]
async fn a_node_key_is_only_written_on_its_own_lease() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("store-lease");
    let store = etcd.store(&prefix).await;
    let first = store
        .grant_lease(Duration::from_secs(10))
        .await
        .expect("lease");
    let second = store
        .grant_lease(Duration::from_secs(10))
        .await
        .expect("lease");

    let mut record = node_record("twin", 2, 0.0);
    assert!(matches!(
        store.put_node(&record, first).await,
        Ok(NodeWrite::Written { .. })
    ));
    record.zone = "impostor".to_owned();
    assert_eq!(
        store.put_node(&record, second).await.expect("txn"),
        NodeWrite::HeldByOtherLease { lease: first }
    );
    let stored: NodeRecord = store
        .get(&store.keys().node("twin"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(
        stored.zone, "test-zone-a",
        "the second lease overwrote the first"
    );

    // Revoking the holder frees the id, and the key went with the lease.
    store.revoke_lease(first).await.expect("revoke");
    assert_eq!(store.lease_ttl(first).await.expect("ttl"), None);
    assert!(
        store
            .get::<NodeRecord>(&store.keys().node("twin"))
            .await
            .expect("get")
            .is_none()
    );
    assert!(matches!(
        store.put_node(&record, second).await,
        Ok(NodeWrite::Written { .. })
    ));
}

#[test]
fn records_round_trip_through_json() {
    let record = node_record("n1", 2, 0.0);
    let json = serde_json::to_string(&record).expect("serialise");
    let back: NodeRecord = serde_json::from_str(&json).expect("parse");
    // Timestamps keep millisecond precision.
    let ms = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    assert_eq!(ms(back.updated_at), ms(record.updated_at));
    assert_eq!(back.stats, record.stats);
    assert!(json.contains("\"state\":\"ready\""), "{json}");
    assert!(
        !json.contains("hold_for"),
        "empty optional fields are omitted: {json}"
    );
    let session: SessionRecord =
        serde_json::from_str(&serde_json::to_string(&session("s")).unwrap()).unwrap();
    assert_eq!(session.class, SessionClass::Group);
}
