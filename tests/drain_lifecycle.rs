//! Drain with real agents and real peers: a drained node refuses new sessions and keeps the
//! ones it has (which still take participants); `ionctl drain --wait` exits 5 at its timeout
//! while a session remains and 0 once the last peer leaves; undrain restores placement. And
//! SIGTERM: the agent stays until its session ends, then exits and its node key goes.

mod harness;

use std::time::Duration;

use harness::{
    AgentProcess, AgentSpec, Etcd, JoinConfig, Media, Peer, ionctl, stderr, stdout, unique_prefix,
    wait_for,
};
use ion_cluster::model::{NodeRecord, NodeState};
use ion_cluster::store::Store;

async fn node(store: &Store, id: &str) -> Option<NodeRecord> {
    store
        .get(&store.keys().node(id))
        .await
        .expect("reading the node")
}

async fn wait_state(store: &Store, id: &str, state: NodeState) {
    wait_for(
        &format!("{id} to be {state}"),
        Duration::from_secs(10),
        || async { node(store, id).await.filter(|n| n.state == state) },
    )
    .await;
}

/// Waits until `peer` receives packets from `uid` that keep coming.
async fn wait_receiving(peer: &Peer, uid: &str) {
    wait_for(
        &format!("{} to receive from {uid}", peer.uid),
        Duration::from_secs(15),
        || async {
            peer.tracks_from(uid)
                .iter()
                .any(|t| t.flowing(Duration::from_secs(1)))
                .then_some(())
        },
    )
    .await;
}

fn packets_from(peer: &Peer, uid: &str) -> u64 {
    peer.tracks_from(uid).iter().map(|t| t.packets).sum()
}

#[tokio::test]
async fn drain_keeps_existing_sessions_refuses_new_ones_and_undrain_restores_placement() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("drain-life");
    let store = etcd.store(&prefix).await;
    let agent = AgentProcess::start(&etcd, &prefix, AgentSpec::new("dl-1"));
    wait_state(&store, "dl-1", NodeState::Ready).await;
    let url = format!("ws://127.0.0.1:{}/ws", agent.port);
    let endpoint = etcd.endpoint();
    let cli = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend([
            "--etcd".to_owned(),
            endpoint.clone(),
            "--prefix".to_owned(),
            prefix.clone(),
        ]);
        all
    };
    let run = |args: Vec<String>| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ionctl(&refs).await
    };

    let alice = Peer::join(&url, "keep", "alice", JoinConfig::default())
        .await
        .expect("alice joins");
    alice.publish(Media::BOTH).await.expect("alice publishes");
    let bob = Peer::join(&url, "keep", "bob", JoinConfig::default())
        .await
        .expect("bob joins");
    wait_receiving(&bob, "alice").await;

    let output = run(cli(&["drain", "dl-1", "--reason", "test"])).await;
    assert!(output.status.success(), "{}", stderr(&output));
    wait_state(&store, "dl-1", NodeState::Draining).await;

    // New sessions are refused; the existing one takes a new participant and keeps flowing.
    let refused = Peer::join(&url, "fresh", "carol", JoinConfig::default()).await;
    let error = refused
        .err()
        .expect("a new session on a draining node is refused")
        .to_string();
    assert!(error.contains("draining"), "{error}");
    let dave = Peer::join(&url, "keep", "dave", JoinConfig::default())
        .await
        .expect("dave joins keep");
    wait_receiving(&dave, "alice").await;
    let before = packets_from(&bob, "alice");
    wait_for("bob to keep receiving", Duration::from_secs(10), || async {
        (packets_from(&bob, "alice") > before + 50).then_some(())
    })
    .await;

    // Placement skips the drained node.
    let output = run(cli(&["place", "--class", "group", "--size", "2"])).await;
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );

    // --timeout with a session left: exit 5, naming the node and its sessions.
    let output = run(cli(&["drain", "dl-1", "--wait", "--timeout", "2s"])).await;
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(stderr(&output).contains("dl-1: 1"), "{}", stderr(&output));

    // --wait returns 0 once the last peer has left.
    let waiting = tokio::spawn(run(cli(&["drain", "dl-1", "--wait", "--timeout", "60s"])));
    for peer in [&alice, &bob, &dave] {
        peer.close().await;
    }
    let output = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("drain --wait returned within 60 s")
        .expect("the drain task");
    assert!(output.status.success(), "{}", stderr(&output));

    // Undrain: ready again, and placement uses the node. (--wait rides out a moment when this
    // shared machine's CPU, which the node reports as its load, is above the headroom.)
    let output = run(cli(&["undrain", "dl-1"])).await;
    assert!(output.status.success(), "{}", stderr(&output));
    wait_state(&store, "dl-1", NodeState::Ready).await;
    let args = [
        "place", "--class", "group", "--size", "2", "--wait", "60s", "-o", "json",
    ];
    let output = run(cli(&args)).await;
    let nodes = run(cli(&["nodes", "-o", "json"])).await;
    assert!(
        output.status.success(),
        "{}\n{}",
        stderr(&output),
        stdout(&nodes)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer["node"], "dl-1", "{answer}");
}

#[tokio::test]
async fn sigterm_waits_for_the_last_session_then_exits() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("sigterm-drain");
    let store = etcd.store(&prefix).await;
    let mut agent = AgentProcess::start(&etcd, &prefix, AgentSpec::new("st-1"));
    wait_state(&store, "st-1", NodeState::Ready).await;
    let url = format!("ws://127.0.0.1:{}/ws", agent.port);
    let alice = Peer::join(&url, "room", "alice", JoinConfig::default())
        .await
        .expect("alice joins");
    alice.publish(Media::BOTH).await.expect("alice publishes");
    let bob = Peer::join(&url, "room", "bob", JoinConfig::default())
        .await
        .expect("bob joins");
    wait_receiving(&bob, "alice").await;

    agent.signal("TERM");
    // It drains instead of leaving: draining, still registered, media still flowing.
    wait_state(&store, "st-1", NodeState::Draining).await;
    let before = packets_from(&bob, "alice");
    wait_for(
        "media to keep flowing after SIGTERM",
        Duration::from_secs(10),
        || async { (packets_from(&bob, "alice") > before + 50).then_some(()) },
    )
    .await;
    assert!(node(&store, "st-1").await.is_some());

    alice.close().await;
    bob.close().await;
    let status = agent.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "agent exited with {status}");
    assert!(
        node(&store, "st-1").await.is_none(),
        "the node key outlived the agent"
    );
}
