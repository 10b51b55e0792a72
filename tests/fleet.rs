//! `ionctl bench fleet` against a real etcd: the synthetic nodes register as agents do (a lease
//! each, the placement revision key with the record), carry their sessions, take a placement,
//! keep within the stats budget, and leave nothing behind; bad flags are refused.

mod harness;

use std::time::Duration;

use etcd_client::GetOptions;
use harness::{Etcd, ionctl, stderr, unique_prefix, wait_for};
use ion_cluster::placement::{Request, Role, Strategy};
use ion_cluster::placer::{Outcome, Placer, PlacerOptions};
use ion_cluster::store::Store;
use serde::Deserialize;

const NODES: usize = 60;

/// Keys under `prefix` in `store`'s etcd, and the lease of each.
async fn leases_under(store: &Store, prefix: &str) -> Vec<(String, i64)> {
    let response = store
        .client()
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await
        .expect("get");
    response
        .kvs()
        .iter()
        .map(|kv| (kv.key_str().expect("UTF-8").to_owned(), kv.lease()))
        .collect()
}

#[derive(Deserialize)]
struct Report {
    nodes: u32,
    stats_writes: u64,
    writes_per_sec_per_node: f64,
    db_size_bytes: i64,
}

#[tokio::test]
async fn a_fleet_registers_like_agents_takes_placements_and_leaves_nothing_behind() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("fleet");
    let store = etcd.store(&prefix).await;
    let endpoint = etcd.endpoint();
    let nodes = NODES.to_string();
    let fleet = {
        let (endpoint, prefix, nodes) = (endpoint.clone(), prefix.clone(), nodes.clone());
        tokio::spawn(async move {
            ionctl(&[
                "bench",
                "fleet",
                "--etcd",
                &endpoint,
                "--fleet-prefix",
                &prefix,
                "--nodes",
                &nodes,
                "--busy-fraction",
                "0.5",
                "--duration",
                "6s",
                "-o",
                "json",
            ])
            .await
        })
    };
    let keys = store.keys().clone();
    let registered = wait_for("the fleet's nodes", Duration::from_secs(20), || async {
        let nodes = leases_under(&store, &keys.nodes()).await;
        (nodes.len() == NODES).then_some(nodes)
    })
    .await;
    // Each node on a lease of its own, and its revision key on the same lease.
    let revs = leases_under(&store, &keys.placement_revs()).await;
    assert_eq!(revs.len(), NODES);
    for (key, lease) in &registered {
        let id = key.rsplit('/').next().expect("an id");
        assert_ne!(*lease, 0, "{key} has no lease");
        assert!(
            revs.contains(&(keys.placement_rev(id), *lease)),
            "{id}'s revision key is not on its lease"
        );
    }
    // Each node writes its meetings after its record, as an agent does.
    wait_for("4 meetings per node", Duration::from_secs(20), || async {
        let sessions = store.sessions().await.expect("sessions").items.len();
        (sessions == NODES * 4).then_some(())
    })
    .await;

    // A placement onto the fleet commits like one onto agents.
    let placer = Placer::start(store.clone(), PlacerOptions::default())
        .await
        .expect("placer");
    let outcome = placer
        .place(Request {
            sid: "onto-the-fleet".to_owned(),
            class: ion_cluster::model::SessionClass::Meeting,
            size: 10,
            strategy: Strategy::Binpack,
            role: Role::Publisher,
            uid: None,
        })
        .await
        .expect("place");
    let Outcome::Placed { node, .. } = outcome else {
        panic!("the fleet has room: {outcome:?}");
    };
    assert!(node.starts_with("fleet-"), "{node}");

    let output = fleet.await.expect("the fleet task");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: Report = serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert_eq!(report.nodes as usize, NODES);
    assert!(report.stats_writes > 0);
    assert!(report.db_size_bytes > 0);
    // Half the nodes write as often as the budget allows (every 2 s), the rest on the 10 s
    // heartbeat: on average well under the 0.5 writes/s a node may cost.
    assert!(
        report.writes_per_sec_per_node > 0.0 && report.writes_per_sec_per_node <= 0.5,
        "{} writes/s per node",
        report.writes_per_sec_per_node
    );
    // Everything the fleet wrote went with its leases; the placement made on it stays.
    for collection in [keys.nodes(), keys.placement_revs()] {
        assert_eq!(leases_under(&store, &collection).await, vec![]);
    }
    let left: Vec<String> = store
        .sessions()
        .await
        .expect("sessions")
        .items
        .into_iter()
        .map(|(sid, _)| sid)
        .collect();
    assert_eq!(left, vec!["onto-the-fleet".to_owned()]);
}

#[tokio::test]
async fn bad_fleet_flags_are_refused_before_anything_is_written() {
    let etcd = Etcd::start().await;
    let endpoint = etcd.endpoint();
    let prefix = unique_prefix("fleet-bad");
    for (args, wanted) in [
        (vec!["--busy-fraction", "2"], "--busy-fraction"),
        (vec!["--nodes", "0"], "--nodes"),
        (vec!["--fleet-prefix", "/ion/v1/"], "cluster's own prefix"),
    ] {
        let output = ionctl(
            &[
                &["bench", "fleet", "--etcd", &endpoint, "--duration", "1s"][..],
                &args,
            ]
            .concat(),
        )
        .await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert!(stderr(&output).contains(wanted), "{}", stderr(&output));
    }
    let store = etcd.store(&prefix).await;
    assert_eq!(leases_under(&store, "/").await, vec![]);
    let dead = ionctl(&[
        "bench",
        "fleet",
        "--etcd",
        "http://127.0.0.1:9",
        "--connect-timeout",
        "1s",
    ])
    .await;
    assert_eq!(dead.status.code(), Some(3), "{dead:?}");
}
