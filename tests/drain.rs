//! `ionctl drain` / `undrain` and the store calls behind them, against a real etcd.

mod harness;

use std::time::{Duration, SystemTime};

use harness::{Etcd, ionctl, node_record, stderr, stdout, unique_prefix};
use ion_cluster::model::DrainRequest;
use ion_cluster::store::{Store, StoreError, Undrained};

async fn with_nodes(etcd: &Etcd, prefix: &str, ids: &[&str]) -> Store {
    let store = etcd.store(prefix).await;
    for id in ids {
        store
            .put(&store.keys().node(id), &node_record(id, 2, 0.0))
            .await
            .expect("planting a node");
    }
    store
}

async fn drain_of(store: &Store, id: &str) -> Option<DrainRequest> {
    store
        .get(&store.keys().drain(id))
        .await
        .expect("reading the drain key")
}

#[tokio::test]
async fn store_drain_and_undrain_refuse_unknown_nodes() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("store-drain");
    let store = with_nodes(&etcd, &prefix, &["n1"]).await;
    // Whole seconds: records keep milliseconds, and the round trip must compare equal.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let request = DrainRequest {
        requested_at: SystemTime::UNIX_EPOCH + Duration::from_secs(now),
        deadline: None,
        reason: Some("kernel upgrade".to_owned()),
    };

    let first = store.drain("n1", &request).await.expect("drain");
    assert_eq!(first.previous, None);
    assert_eq!(drain_of(&store, "n1").await.as_ref(), Some(&request));
    // Draining again replaces the request and says it was there.
    let again = DrainRequest {
        reason: Some("again".to_owned()),
        ..request.clone()
    };
    let second = store.drain("n1", &again).await.expect("drain");
    assert_eq!(second.previous, Some(request.clone()));
    assert!(second.revision > first.revision);

    match store.drain("nope", &request).await {
        Err(StoreError::UnknownNode { node, .. }) => assert_eq!(node, "nope"),
        other => panic!("expected UnknownNode, got {other:?}"),
    }
    assert_eq!(drain_of(&store, "nope").await, None, "nothing written");
    assert!(matches!(
        store.drain("a/b", &request).await,
        Err(StoreError::Key(_))
    ));

    assert_eq!(
        store.undrain("n1").await.expect("undrain"),
        Undrained::Lifted
    );
    assert_eq!(drain_of(&store, "n1").await, None);
    assert_eq!(
        store.undrain("n1").await.expect("undrain"),
        Undrained::WasNotDraining
    );
    assert!(matches!(
        store.undrain("nope").await,
        Err(StoreError::UnknownNode { .. })
    ));

    // A node that went away while draining (an agent restarting for an upgrade) can still be
    // undrained.
    store.drain("n1", &request).await.expect("drain");
    store
        .client()
        .delete(store.keys().node("n1"), None)
        .await
        .expect("deleting the node");
    assert_eq!(
        store.undrain("n1").await.expect("undrain"),
        Undrained::Lifted
    );
}

#[tokio::test]
async fn ionctl_drain_writes_the_key_and_undrain_deletes_it() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("cli-drain");
    let store = with_nodes(&etcd, &prefix, &["n1", "n2"]).await;
    let endpoint = etcd.endpoint();
    let base = ["--etcd", endpoint.as_str(), "--prefix", prefix.as_str()];

    let before = SystemTime::now() - Duration::from_secs(1);
    let output =
        ionctl(&[&["drain", "n1", "--reason", "kernel upgrade"], &base[..]].concat()).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    let mut lines = table.lines();
    assert_eq!(
        lines
            .next()
            .map(|h| h.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["NODE", "DRAIN", "REQUESTED", "AT", "REASON"])
    );
    let row = lines.next().expect("a row");
    assert!(
        row.starts_with("n1  ") && row.contains("requested") && row.ends_with("kernel upgrade"),
        "{row:?}"
    );
    let request = drain_of(&store, "n1").await.expect("the drain key");
    assert_eq!(request.reason.as_deref(), Some("kernel upgrade"));
    assert!(request.requested_at >= before);
    assert_eq!(request.deadline, None);

    // JSON, two nodes, one already draining.
    let output = ionctl(&[&["drain", "n1", "n2", "-o", "json"], &base[..]].concat()).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(json[0]["node"], "n1");
    assert_eq!(json[0]["already_draining"], true);
    assert_eq!(json[1]["node"], "n2");
    assert_eq!(json[1]["already_draining"], false);
    assert!(json[1]["requested_at"].is_string());
    assert!(drain_of(&store, "n2").await.is_some());

    let output = ionctl(&[&["undrain", "n1", "n2"], &base[..]].concat()).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("n1    ready (drain lifted)"),
        "{}",
        stdout(&output)
    );
    assert_eq!(drain_of(&store, "n1").await, None);
    assert_eq!(drain_of(&store, "n2").await, None);
    let output = ionctl(&[&["undrain", "n1"], &base[..]].concat()).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("ready (was not draining)"));
}

#[tokio::test]
async fn unknown_nodes_exit_6_and_known_ones_are_still_drained() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("cli-drain-unknown");
    let store = with_nodes(&etcd, &prefix, &["n1"]).await;
    let endpoint = etcd.endpoint();
    let base = ["--etcd", endpoint.as_str(), "--prefix", prefix.as_str()];

    let output = ionctl(&[&["drain", "ghost"], &base[..]].concat()).await;
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("\"ghost\"")
            && message.contains(&prefix)
            && message.contains("ionctl nodes"),
        "{message}"
    );
    assert_eq!(stdout(&output), "");
    assert_eq!(drain_of(&store, "ghost").await, None);

    let output = ionctl(&[&["drain", "ghost", "n1", "spook"], &base[..]].concat()).await;
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("\"ghost\", \"spook\""),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).contains("n1"), "{}", stdout(&output));
    assert!(drain_of(&store, "n1").await.is_some());

    let output = ionctl(&[&["undrain", "ghost"], &base[..]].concat()).await;
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));

    // A malformed id is a usage error, before anything is written.
    let output = ionctl(&[&["drain", "n1", "a/b"], &base[..]].concat()).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("a/b"));
    // No node named at all is clap's usage error.
    let output = ionctl(&[&["drain"], &base[..]].concat()).await;
    assert_eq!(output.status.code(), Some(2));

    // etcd unreachable: exit 3.
    let dead = format!("http://127.0.0.1:{}", harness::free_port());
    let output = ionctl(&["drain", "n1", "--etcd", &dead, "--connect-timeout", "300ms"]).await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
}
