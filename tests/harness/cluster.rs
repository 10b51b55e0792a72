//! Planted cluster state for placement tests: node records written straight into etcd (stats
//! and capacity are what placement reads), and an audit of what placers committed.

use std::collections::BTreeMap;
use std::time::SystemTime;

use etcd_client::GetOptions;
use ion_cluster::capacity::ClassSpec;
use ion_cluster::model::{NodeRecord, NodeStats, SessionClass, SessionRecord};
use ion_cluster::store::Store;

/// A ready node of `vcpus` × 150 units, up for an hour, whose agent spends `cpu` (0..1 of its
/// vCPUs). One that spends anything carries a session: an empty node's CPU is never load.
pub fn node_record(id: &str, vcpus: u32, cpu: f64) -> NodeRecord {
    let capacity = vcpus * 150;
    let machine_type = format!("n2-highcpu-{vcpus}");
    NodeRecord {
        zone: "test-zone-a".to_owned(),
        started_at: SystemTime::now() - std::time::Duration::from_secs(3600),
        stats: NodeStats {
            sessions: u32::from(cpu > 0.0),
            ..NodeStats::default()
        },
        ..NodeRecord::blank(id, &machine_type, vcpus, capacity, SystemTime::now())
    }
    .spending(cpu)
}

pub async fn plant(store: &Store, nodes: &[NodeRecord]) {
    for node in nodes {
        store
            .put(&store.keys().node(&node.id), node)
            .await
            .expect("planting a node");
    }
}

/// Committed units per node, checked in commit order: after every reservation, the units
/// committed on its node (itself included) stay within capacity × the headroom of its class.
/// Returns the committed units per node.
pub async fn audit(store: &Store) -> BTreeMap<String, u32> {
    let keys = store.keys();
    let nodes: BTreeMap<String, NodeRecord> = store
        .nodes()
        .await
        .expect("listing nodes")
        .items
        .into_iter()
        .collect();
    let sessions: BTreeMap<String, SessionRecord> = store
        .sessions()
        .await
        .expect("listing sessions")
        .items
        .into_iter()
        .collect();
    let prefix = keys.placements();
    let placements = store
        .client()
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await
        .expect("listing placements");
    let mut index: Vec<Placed> = placements
        .kvs()
        .iter()
        .map(|kv| {
            let key = kv.key_str().expect("UTF-8 key");
            let (node, sid) = key[prefix.len()..].split_once('/').expect("node/sid");
            let demand = kv.value_str().expect("UTF-8").parse().expect("units");
            (
                kv.create_revision(),
                node.to_owned(),
                sid.to_owned(),
                demand,
            )
        })
        .collect();
    assert_eq!(
        index.len(),
        sessions.len(),
        "every session has exactly one placement index entry"
    );
    for (_, node, sid, demand) in &index {
        let session = &sessions[sid];
        assert_eq!(
            (&session.node, session.demand),
            (node, *demand),
            "index of {sid}"
        );
    }
    let (committed, overbooked) = commit_order(&mut index, |node, sid| {
        let class = sessions[sid].class;
        Some((ClassSpec::of(class).limit(nodes[node].capacity), class))
    });
    assert!(overbooked.is_empty(), "{}", overbooked.join("\n"));
    committed
}

/// One placement index entry: its create revision, node, session and demand (units).
pub type Placed = (i64, String, String, u32);

/// Replays `index` in commit order: the units committed per node, and every commit after
/// which its node held more than the limit of that session's class. `limit_of(node, sid)`
/// gives the limit and the class, or `None` to leave the entry out (a node that is gone).
pub fn commit_order(
    index: &mut [Placed],
    limit_of: impl Fn(&str, &str) -> Option<(u32, SessionClass)>,
) -> (BTreeMap<String, u32>, Vec<String>) {
    index.sort();
    let mut committed: BTreeMap<String, u32> = BTreeMap::new();
    let mut overbooked = Vec::new();
    for (revision, node, sid, demand) in index.iter() {
        let Some((limit, class)) = limit_of(node, sid) else {
            continue;
        };
        let total = committed.entry(node.clone()).or_default();
        *total += demand;
        if *total > limit {
            overbooked.push(format!(
                "{node} overbooked at revision {revision}: {total} units committed, limit \
                 {limit} for the {class} {sid}"
            ));
        }
    }
    (committed, overbooked)
}
