//! A network partition between an agent and etcd, made with a network namespace and veth
//! links of the test's own: the agent keeps forwarding its call, its node expires from etcd
//! after the lease TTL, nothing is placed on it meanwhile, and when the link heals it
//! registers again and writes its session back, and no other node ever owns that session.
//! A session that another node took meanwhile stays that node's, and the cut-off node ends
//! its own participants of it, telling them where it lives.

mod harness;

use std::time::{Duration, Instant};

use etcd_client::{EventType, WatchOptions};
use harness::{
    AgentProcess, AgentSpec, Etcd, JoinConfig, Media, Netns, Peer, tcp_forward, unique_prefix,
    wait_for,
};
use ion_cluster::model::{NodeRecord, NodeState, SessionClass, SessionRecord};
use ion_cluster::store::Store;

const LEASE_TTL: Duration = Duration::from_secs(3);

async fn place(etcd: &Etcd, prefix: &str, sid: &str, size: &str) -> serde_json::Value {
    let endpoint = etcd.endpoint();
    let args = [
        "--etcd",
        &endpoint,
        "--prefix",
        prefix,
        "place",
        "--class",
        "group",
        "--size",
        size,
        "--session",
        sid,
        "-o",
        "json",
    ];
    let out = harness::ionctl(&args).await;
    assert!(out.status.success(), "{}", harness::stderr(&out));
    serde_json::from_slice(&out.stdout).expect("place -o json")
}

/// Every value `key` was put with, and the revision of each, from etcd's history of it up
/// to its current value.
async fn history<T: serde::de::DeserializeOwned>(store: &Store, key: &str) -> Vec<(i64, T)> {
    let mut client = store.client();
    let now = client.get(key, None).await.expect("reading the key");
    let last = now.kvs().first().expect("the key").mod_revision();
    let options = WatchOptions::new().with_start_revision(1);
    let mut stream = client
        .watch(key, Some(options))
        .await
        .expect("watching the key's history");
    let mut puts = Vec::new();
    let replay = async {
        while let Some(response) = stream.message().await.expect("the history") {
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                if event.event_type() == EventType::Put {
                    let value = serde_json::from_slice(kv.value()).expect("a record");
                    puts.push((kv.mod_revision(), value));
                }
                if kv.mod_revision() >= last {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), replay)
        .await
        .expect("etcd replayed the key's history");
    puts
}

/// Every node that ever owned `sid`'s key, from etcd's history of it.
async fn owners_in_history(store: &Store, sid: &str) -> Vec<String> {
    let key = store.keys().session(sid);
    let puts: Vec<(i64, SessionRecord)> = history(store, &key).await;
    puts.into_iter().map(|(_, record)| record.node).collect()
}

/// The test's etcd and an agent `cut-a` inside the namespace `netns`, reaching etcd through
/// the namespace's etcd link (which the test cuts) and its clients through the media link.
struct CutOff {
    etcd: Etcd,
    prefix: String,
    store: Store,
    _agent: AgentProcess,
    /// The agent's signaling URL, inside the namespace.
    url: String,
    /// The host's end of the media link: where the test's peers bind to reach the agent.
    host: &'static str,
    _forward: std::net::SocketAddr,
}

async fn start_cut_off(netns: &Netns) -> CutOff {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("partition");
    let store = etcd.store(&prefix).await;
    let etcd_addr = etcd.endpoint().trim_start_matches("http://").to_owned();
    let forward = tcp_forward(&format!("{}:0", netns.etcd.host_ip), etcd_addr).await;
    let node_ip = netns.media.ns_ip.clone();
    let mut spec = AgentSpec::new("cut-a")
        .set("etcd", "endpoints", vec![format!("http://{forward}")])
        .set("signal", "listen", format!("{node_ip}:7000"))
        // Production's setting: only placed sessions, so the session's record must come
        // back from the agent's own memory after the partition.
        .set("signal", "allow_unplaced", false)
        .set("webrtc", "bind", node_ip.as_str())
        .set("report", "lease_ttl", "3s");
    spec.prefix = netns.exec_prefix();
    let agent = AgentProcess::start(&etcd, &prefix, spec);
    harness::wait_registered(&store, &["cut-a"]).await;
    CutOff {
        url: format!("ws://{node_ip}:7000/ws"),
        host: Box::leak(netns.media.host_ip.clone().into_boxed_str()),
        etcd,
        prefix,
        store,
        _agent: agent,
        _forward: forward,
    }
}

fn namespace_or_skip(name: &str) -> Option<Netns> {
    match Netns::create(name) {
        Ok(netns) => Some(netns),
        Err(why) => {
            eprintln!("SKIPPED: this kernel or user cannot make network namespaces: {why}");
            None
        }
    }
}

/// Waits until `node`'s registration has lapsed from etcd.
async fn wait_expired(store: &Store, node: &str) {
    wait_for("the cut-off node to expire", LEASE_TTL * 5, || async {
        let record: Option<NodeRecord> = store.get(&store.keys().node(node)).await.ok()?;
        record.is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cut_off_from_etcd_keeps_its_call_expires_and_takes_its_session_back() {
    let Some(netns) = namespace_or_skip("part") else {
        return;
    };
    let cut = start_cut_off(&netns).await;
    let (etcd, prefix, store) = (&cut.etcd, cut.prefix.as_str(), &cut.store);
    let (url, host) = (cut.url.as_str(), cut.host);

    let placed = place(etcd, prefix, "cut-call", "4").await;
    assert_eq!(placed["node"].as_str(), Some("cut-a"));
    let alice = Peer::join_from(host, url, "cut-call", "alice", JoinConfig::default())
        .await
        .expect("alice joins");
    alice.publish(Media::BOTH).await.expect("alice publishes");
    let bob = Peer::join_from(host, url, "cut-call", "bob", JoinConfig::default())
        .await
        .expect("bob joins");
    bob.wait_flowing_from("alice").await;
    let session_key = store.keys().session("cut-call");
    let before: SessionRecord = store.get(&session_key).await.unwrap().expect("live");
    assert_eq!(before.node, "cut-a");

    let _other = AgentProcess::start(etcd, prefix, AgentSpec::new("cut-b"));
    harness::wait_registered(store, &["cut-b"]).await;

    netns.cut(&netns.etcd);
    let cut_at = Instant::now();
    wait_expired(store, "cut-a").await;
    let expired_after = cut_at.elapsed();
    assert!(
        store
            .get::<SessionRecord>(&session_key)
            .await
            .unwrap()
            .is_none(),
        "the session key lapses with the node's lease"
    );
    // Nothing is placed on the node while it is cut off.
    for i in 0..3 {
        let placed = place(etcd, prefix, &format!("meanwhile-{i}"), "2").await;
        assert_eq!(placed["node"].as_str(), Some("cut-b"), "{placed}");
    }
    // The call goes on: bob keeps receiving alice, a TTL and more into the partition.
    let received = |peer: &Peer| -> u64 { peer.remote_tracks().iter().map(|t| t.packets).sum() };
    let at_expiry = received(&bob);
    wait_for(
        "media to keep flowing through the partition",
        Duration::from_secs(5),
        || async { (received(&bob) > at_expiry + 50).then_some(()) },
    )
    .await;
    assert!(
        bob.remote_tracks()
            .iter()
            .all(|t| t.flowing(Duration::from_secs(1)))
    );

    netns.heal(&netns.etcd);
    let healed_at = Instant::now();
    let back: SessionRecord = wait_for(
        "the node to register again and write its session back",
        Duration::from_secs(30),
        || async {
            store
                .get::<NodeRecord>(&store.keys().node("cut-a"))
                .await
                .ok()??;
            store.get::<SessionRecord>(&session_key).await.ok()?
        },
    )
    .await;
    let back_after = healed_at.elapsed();
    assert_eq!(back.node, "cut-a");
    assert_eq!(back.class, SessionClass::Group);
    assert_eq!(
        (back.size, back.demand),
        (before.size, before.demand),
        "the session comes back with its placed size and demand"
    );
    let owners = owners_in_history(store, "cut-call").await;
    assert!(
        owners.iter().all(|node| node == "cut-a"),
        "the session was owned by {owners:?}"
    );
    // No placement can land between the node's return and its session's: the node comes
    // back draining and turns ready only once the session is written back.
    let sessions: Vec<(i64, SessionRecord)> = history(store, &session_key).await;
    let restored_at = sessions.last().expect("the restored session").0;
    let states: Vec<(i64, NodeRecord)> = history(store, &store.keys().node("cut-a")).await;
    let back_as = states.iter().rev().find(|(rev, _)| *rev < restored_at);
    assert_eq!(
        back_as.map(|(_, node)| node.state),
        Some(NodeState::Draining),
        "the node's record before its session came back"
    );
    assert!(
        states
            .iter()
            .any(|(rev, node)| *rev > restored_at && node.state == NodeState::Ready),
        "the node turns ready after its session is back"
    );
    let after_heal = received(&bob);
    wait_for("media after the heal", Duration::from_secs(5), || async {
        (received(&bob) > after_heal + 50).then_some(())
    })
    .await;
    eprintln!(
        "partition: node expired {:.1} s after the cut (lease TTL {} s); registered with its \
         session again {:.1} s after the heal",
        expired_after.as_secs_f64(),
        LEASE_TTL.as_secs(),
        back_after.as_secs_f64()
    );
}

/// While cut off, its session's key lapses and the session is placed again, on another node,
/// where a new participant joins. After the heal the session stays the other node's, and the
/// cut-off node ends its own participants of it with where it lives: never two live copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_taken_by_another_node_meanwhile_ends_on_the_cut_off_node() {
    let Some(netns) = namespace_or_skip("split") else {
        return;
    };
    let cut = start_cut_off(&netns).await;
    let (etcd, prefix, store) = (&cut.etcd, cut.prefix.as_str(), &cut.store);
    let placed = place(etcd, prefix, "split-call", "4").await;
    assert_eq!(placed["node"].as_str(), Some("cut-a"));
    let alice = Peer::join_from(
        cut.host,
        &cut.url,
        "split-call",
        "alice",
        JoinConfig::default(),
    )
    .await
    .expect("alice joins");
    alice.publish(Media::BOTH).await.expect("alice publishes");
    let other = AgentProcess::start(etcd, prefix, AgentSpec::new("cut-b"));
    harness::wait_registered(store, &["cut-b"]).await;

    netns.cut(&netns.etcd);
    wait_expired(store, "cut-a").await;
    let again = place(etcd, prefix, "split-call", "4").await;
    assert_eq!(again["node"].as_str(), Some("cut-b"), "{again}");
    let elsewhere = format!("ws://127.0.0.1:{}/ws", other.port);
    let carol = Peer::join(&elsewhere, "split-call", "carol", JoinConfig::default())
        .await
        .expect("carol joins on the other node");
    carol.publish(Media::BOTH).await.expect("carol publishes");
    let session_key = store.keys().session("split-call");
    let taken: SessionRecord = store.get(&session_key).await.unwrap().expect("live");
    assert_eq!(taken.node, "cut-b");
    assert!(
        alice.signal_closed().is_none(),
        "alice's call goes on while her node is cut off"
    );

    netns.heal(&netns.etcd);
    let reason = wait_for(
        "the cut-off node to end its copy of the session",
        Duration::from_secs(30),
        || async { alice.signal_closed() },
    )
    .await;
    assert!(
        reason.contains("lives on node cut-b"),
        "alice is told where the session lives: {reason}"
    );
    harness::wait_registered(store, &["cut-a"]).await;
    let record: SessionRecord = store.get(&session_key).await.unwrap().expect("live");
    assert_eq!(record.node, "cut-b", "the session stays the other node's");
    let owners = owners_in_history(store, "split-call").await;
    let first_b = owners
        .iter()
        .position(|n| n == "cut-b")
        .expect("cut-b owned it");
    assert!(
        owners[first_b..].iter().all(|n| n == "cut-b"),
        "the cut-off node wrote the session back over the other node's: {owners:?}"
    );
    wait_for(
        "the cut-off node to report no session",
        Duration::from_secs(15),
        || async {
            let node: NodeRecord = store.get(&store.keys().node("cut-a")).await.ok()??;
            (node.stats.sessions == 0 && node.stats.peers == 0).then_some(())
        },
    )
    .await;
    assert!(
        carol.signal_closed().is_none(),
        "the other node's copy goes on"
    );
}
