//! Held nodes on the agent side: a node started for one session publishes the hold, refuses
//! other sessions unless placement put them there, and releases the hold when its session
//! goes live or the hold expires.

mod harness;

use std::time::Duration;

use harness::{
    AgentProcess, AgentSpec, Etcd, join_with_placeholder_offer, unique_prefix, wait_for,
};
use ion_cluster::model::{NodeRecord, SessionClass, SessionRecord, SessionState};
use ion_cluster::store::Store;

async fn hold_of(store: &Store, id: &str) -> Option<Option<String>> {
    store
        .get::<NodeRecord>(&store.keys().node(id))
        .await
        .ok()
        .flatten()
        .map(|n| n.hold_for)
}

#[tokio::test]
async fn a_held_node_takes_only_its_session_and_releases_the_hold_when_it_goes_live() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("hold");
    let store = etcd.store(&prefix).await;
    let agent = AgentProcess::start(
        &etcd,
        &prefix,
        AgentSpec::new("held-1").set("cluster", "hold_for", "vip-room"),
    );
    wait_for(
        "the hold to be published",
        Duration::from_secs(15),
        || async {
            (hold_of(&store, "held-1").await == Some(Some("vip-room".to_owned()))).then_some(())
        },
    )
    .await;

    let reply = join_with_placeholder_offer(agent.port, "other-room").await;
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("held for session vip-room"), "{reply}");

    // A session placement reserved here (as it does once the held session is reserved, for
    // demands packed onto the same new instance) gets in while the hold lasts.
    let packed = SessionRecord {
        sid: "packed-room".to_owned(),
        class: SessionClass::Meeting,
        size: 4,
        demand: 12,
        node: "held-1".to_owned(),
        state: SessionState::Reserved,
        relays: Vec::new(),
        edge_demand: 0,
        created_at: std::time::SystemTime::now(),
    };
    store
        .put(&store.keys().session("packed-room"), &packed)
        .await
        .expect("a reservation");
    let reply = join_with_placeholder_offer(agent.port, "packed-room").await;
    assert!(
        !reply["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("held"),
        "{reply}"
    );
    assert_eq!(
        hold_of(&store, "held-1").await,
        Some(Some("vip-room".to_owned()))
    );

    // The held session is claimed (the placeholder offer then fails in the media engine).
    let reply = join_with_placeholder_offer(agent.port, "vip-room").await;
    assert!(
        !reply["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("held"),
        "{reply}"
    );
    wait_for(
        "the hold to be released",
        Duration::from_secs(5),
        || async { (hold_of(&store, "held-1").await == Some(None)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_hold_expires_after_its_ttl() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("hold-ttl");
    let store = etcd.store(&prefix).await;
    let _agent = AgentProcess::start(
        &etcd,
        &prefix,
        AgentSpec::new("held-2")
            .set("cluster", "hold_for", "late-room")
            .set("cluster", "hold_ttl", "3s"),
    );
    wait_for(
        "the hold to be published",
        Duration::from_secs(15),
        || async {
            (hold_of(&store, "held-2").await == Some(Some("late-room".to_owned()))).then_some(())
        },
    )
    .await;
    wait_for("the hold to expire", Duration::from_secs(8), || async {
        (hold_of(&store, "held-2").await == Some(None)).then_some(())
    })
    .await;
}
