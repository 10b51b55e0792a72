//! Sessions that span nodes: a publisher on the origin node, viewers on an edge node, the
//! tracks relayed once between the two agents. Real etcd, real agent processes, webrtc-rs
//! peers.

mod harness;

use std::time::{Duration, Instant, SystemTime};

use harness::{
    AgentProcess, AgentSpec, Etcd, JoinConfig, Kind, Media, Peer, VideoLayer, cpu_seconds,
    http_get, sample, unique_prefix, wait_for,
};
use ion_cluster::model::{SessionClass, SessionRecord, SessionState};
use ion_cluster::store::Store;
use ion_cluster::token::{self, JoinSecret};

const SECRET: &str = "relay-test-secret-0123456789abcdef";

/// etcd and agents on one prefix, sharing the cluster secret; joins need no token. Each
/// agent has one media worker, so every relay of a node shares one worker: the case where
/// two relays from the same address must be told apart.
struct Cluster {
    nodes: Vec<AgentProcess>,
    store: Store,
    prefix: String,
    _etcd: Etcd,
}

impl Cluster {
    async fn start(test: &str, ids: &[&str]) -> Cluster {
        let etcd = Etcd::start().await;
        let prefix = unique_prefix(test);
        let store = etcd.store(&prefix).await;
        let nodes: Vec<AgentProcess> = ids
            .iter()
            .map(|id| {
                let spec = AgentSpec::new(id)
                    .set("auth", "secret", SECRET)
                    .set("webrtc", "workers", 1);
                AgentProcess::start(&etcd, &prefix, spec)
            })
            .collect();
        harness::wait_registered(&store, ids).await;
        Cluster {
            nodes,
            store,
            prefix,
            _etcd: etcd,
        }
    }

    /// `ionctl place ... -o json` against this cluster; the answer must be a placement.
    async fn place(&self, args: &[&str]) -> serde_json::Value {
        let endpoint = self._etcd.endpoint();
        let mut all = vec![
            "place",
            "--etcd",
            &endpoint,
            "--prefix",
            &self.prefix,
            "-o",
            "json",
        ];
        all.extend_from_slice(args);
        let output = harness::ionctl(&all).await;
        assert!(
            output.status.success(),
            "ionctl {all:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("ionctl place -o json prints JSON")
    }

    fn node(&self, id: &str) -> &AgentProcess {
        self.nodes
            .iter()
            .find(|n| n.node_id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn node_mut(&mut self, id: &str) -> &mut AgentProcess {
        self.nodes
            .iter_mut()
            .find(|n| n.node_id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// A session reserved on `origin` with `edges` as its relays, as placement writes it.
    async fn plant(&self, sid: &str, class: SessionClass, origin: &str, edges: &[&str]) {
        let record = SessionRecord {
            sid: sid.to_owned(),
            class,
            size: 3,
            demand: 30,
            node: origin.to_owned(),
            state: SessionState::Reserved,
            relays: edges.iter().map(|e| (*e).to_owned()).collect(),
            edge_demand: 0,
            created_at: SystemTime::now(),
        };
        self.store
            .put(&self.store.keys().session(sid), &record)
            .await
            .expect("writing the session record");
    }
}

fn url(agent: &AgentProcess) -> String {
    format!("ws://127.0.0.1:{}/ws", agent.port)
}

async fn join(agent: &AgentProcess, sid: &str, uid: &str) -> Peer {
    Peer::join(&url(agent), sid, uid, JoinConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{uid} joining {sid} on {}: {e:#}", agent.node_id))
}

fn packets_out(metrics: &str) -> f64 {
    sample(metrics, r#"ion_agent_packets_total{direction="out"}"#)
        .expect("the agent's outbound packet counter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_on_an_edge_receive_the_origin_s_publisher_over_one_relay() {
    let cluster = Cluster::start("relay-fanout", &["origin-1", "edge-1"]).await;
    let (origin, edge) = (cluster.node("origin-1"), cluster.node("edge-1"));
    cluster
        .plant("live", SessionClass::Livestream, "origin-1", &["edge-1"])
        .await;
    let alice = join(origin, "live", "alice").await;
    alice.publish(Media::BOTH).await.expect("alice publishes");
    let viewers = [
        join(edge, "live", "v1").await,
        join(edge, "live", "v2").await,
    ];
    for viewer in &viewers {
        viewer.wait_flowing_from("alice").await;
    }

    // A window of numbered packets, and what each node sent meanwhile.
    let origin_out = || async { packets_out(&http_get(origin.port, "/metrics").await) };
    let edge_out = || async { packets_out(&http_get(edge.port, "/metrics").await) };
    let start = [alice.sent(Kind::Audio), alice.sent(Kind::Video)];
    let (origin0, edge0) = (origin_out().await, edge_out().await);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let end = [alice.sent(Kind::Audio), alice.sent(Kind::Video)];
    let (origin1, edge1) = (origin_out().await, edge_out().await);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let sent: u32 = (0..2).map(|i| end[i] - start[i]).sum();
    assert!(
        sent >= 5 * 80 * 9 / 10,
        "alice sent only {sent} packets in 5 s"
    );
    for viewer in &viewers {
        for (i, kind) in [Kind::Audio, Kind::Video].into_iter().enumerate() {
            let tracks = viewer.tracks_from("alice");
            let track = tracks
                .iter()
                .find(|t| t.kind == kind)
                .unwrap_or_else(|| panic!("{} has no {kind:?} track from alice", viewer.uid));
            let expected = (end[i] - start[i]) as usize;
            let got = track.received_in(start[i]..end[i]);
            assert!(
                got * 100 >= expected * 95,
                "{} received {got} of {expected} {kind:?} packets over the relay",
                viewer.uid
            );
        }
        viewer.assert_no_problems();
    }
    // The origin sends each packet once to the edge, not once per viewer; the edge sends it
    // to each of its two viewers. (Both counts include a little RTCP and STUN.)
    let (origin_sent, edge_sent) = (origin1 - origin0, edge1 - edge0);
    let sent = f64::from(sent);
    assert!(
        origin_sent < sent * 1.4,
        "the origin sent {origin_sent} packets for {sent} published: more than one relay's worth"
    );
    assert!(
        edge_sent > sent * 1.8,
        "the edge sent {edge_sent} packets for {sent} published to two viewers"
    );

    // The edge's viewers are counted as the edge's peers; the relay is no one's.
    let stats = |node: &str| {
        let store = cluster.store.clone();
        let key = store.keys().node(node);
        async move {
            store
                .get::<ion_cluster::model::NodeRecord>(&key)
                .await
                .expect("reading a node")
                .expect("the node is registered")
                .stats
        }
    };
    wait_for(
        "the nodes to report their own participants",
        Duration::from_secs(10),
        || async {
            let (origin, edge) = (stats("origin-1").await, stats("edge-1").await);
            (origin.peers == 1 && edge.peers == 2).then_some(())
        },
    )
    .await;
}

/// Simulcast across a relay: the edge asks the origin for the most its viewers want, and
/// that one layer crosses. While one viewer there wants the top layer, the top layer crosses
/// (and both viewers there get it); once every viewer there wants the low layer, only the
/// low one crosses (the edge's inbound packets fall to its rate); a viewer on the origin
/// keeps the top layer throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_whose_viewers_all_want_the_low_layer_receives_only_it() {
    let cluster = Cluster::start("relay-simulcast", &["origin-1", "edge-1"]).await;
    let (origin, edge) = (cluster.node("origin-1"), cluster.node("edge-1"));
    cluster
        .plant("sim", SessionClass::Conference, "origin-1", &["edge-1"])
        .await;
    let alice = join(origin, "sim", "alice").await;
    // Top layer: 3 full packets a frame (90/s); low layer: one small packet (30/s).
    alice.set_video_packets_per_frame(3);
    let [top, low] = alice
        .publish_simulcast_video()
        .await
        .expect("alice publishes two layers");
    let local = join(origin, "sim", "local").await;
    let viewers = [join(edge, "sim", "v1").await, join(edge, "sim", "v2").await];
    for viewer in viewers.iter().chain([&local]) {
        viewer
            .wait_only_layer("alice", top, Duration::from_secs(20))
            .await;
    }

    viewers[0]
        .prefer_layer("alice", VideoLayer::Low)
        .await
        .expect("v1 asks for the low layer");
    // v2 still wants the top layer, so the top one alone crosses, and the edge forwards it
    // to both: one layer per track crosses.
    for viewer in &viewers {
        viewer
            .wait_only_layer("alice", top, Duration::from_secs(10))
            .await;
    }

    viewers[1]
        .prefer_layer("alice", VideoLayer::Low)
        .await
        .expect("v2 asks for the low layer");
    for viewer in &viewers {
        viewer
            .wait_only_layer("alice", low, Duration::from_secs(10))
            .await;
    }
    local
        .wait_only_layer("alice", top, Duration::from_secs(10))
        .await;

    // What crosses now: the low layer's 30 packets/s (and a little RTCP and STUN), not the
    // top layer's 90.
    let edge_in = || async { packets_in(&http_get(edge.port, "/metrics").await) };
    let (before, at) = (edge_in().await, Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rate = (edge_in().await - before) / at.elapsed().as_secs_f64();
    assert!(
        (20.0..60.0).contains(&rate),
        "the edge receives {rate:.0} packets/s: the low layer alone is 30"
    );
    for peer in viewers.iter().chain([&alice, &local]) {
        peer.assert_no_problems();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_the_cluster_s_signature_opens_nothing() {
    let cluster = Cluster::start("relay-auth", &["origin-1", "edge-1"]).await;
    let origin = cluster.node("origin-1");
    cluster
        .plant("guarded", SessionClass::Livestream, "origin-1", &["edge-1"])
        .await;
    let alice = join(origin, "guarded", "alice").await;
    alice.publish(Media::BOTH).await.expect("alice publishes");

    let relay = |token: String| {
        format!(
            "ws://127.0.0.1:{}/relay/v1/ws?sid=guarded&edge=intruder&access_token={token}",
            origin.port
        )
    };
    let now = SystemTime::now();
    let minute = Duration::from_secs(60);
    let other = JoinSecret::new("some-other-secret-0123456789abcdef").expect("a secret");
    let ours = JoinSecret::new(SECRET).expect("a secret");
    let attempts = [
        ("no token", relay(String::new())),
        (
            "another cluster's signature",
            relay(token::issue_relay(
                &other, "guarded", "origin-1", now, minute,
            )),
        ),
        (
            "a join token",
            relay(token::issue(&ours, "guarded", "origin-1", now, minute)),
        ),
        (
            "a relay token for another node",
            relay(token::issue_relay(&ours, "guarded", "edge-1", now, minute)),
        ),
    ];
    for (what, url) in attempts {
        let refused = tokio_tungstenite::connect_async(url.as_str()).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 401, "{what}");
            }
            other => panic!("a relay with {what} was not refused: {other:?}"),
        }
    }
    // Nothing subscribed to alice's tracks on the origin: no relay was ever opened.
    let log = origin.log();
    assert!(!log.contains("relay to an edge opened"), "{log}");
    assert!(log.contains("relay refused"), "{log}");
}

/// Receives at least 95% of each of `from`'s audio and video packets over 3 s.
async fn receives_from(viewer: &Peer, publisher: &Peer) {
    let uid = publisher.uid.as_str();
    viewer.wait_flowing_from(uid).await;
    let start = [publisher.sent(Kind::Audio), publisher.sent(Kind::Video)];
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = [publisher.sent(Kind::Audio), publisher.sent(Kind::Video)];
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tracks = viewer.tracks_from(uid);
    for (i, kind) in [Kind::Audio, Kind::Video].into_iter().enumerate() {
        let expected = (end[i] - start[i]) as usize;
        let got = tracks
            .iter()
            .find(|t| t.kind == kind)
            .map_or(0, |t| t.received_in(start[i]..end[i]));
        assert!(
            expected > 0 && got * 100 >= expected * 95,
            "{} received {got} of {expected} {kind:?} packets from {uid}",
            viewer.uid
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conference_spanning_three_nodes_reaches_every_participant() {
    let ids = ["conf-a", "conf-b", "conf-c"];
    let cluster = Cluster::start("relay-conference", &ids).await;
    cluster
        .plant(
            "conf",
            SessionClass::Conference,
            "conf-a",
            &["conf-b", "conf-c"],
        )
        .await;
    let mut speakers = Vec::new();
    for (i, node) in ids.iter().enumerate() {
        let speaker = join(cluster.node(node), "conf", &format!("speaker-{i}")).await;
        speaker.publish(Media::BOTH).await.expect("publishing");
        speakers.push(speaker);
    }
    for viewer in &speakers {
        for speaker in speakers.iter().filter(|s| s.uid != viewer.uid) {
            receives_from(viewer, speaker).await;
        }
        // Each track arrives once, not once per relay path: no loop brought it back.
        let tracks = viewer.remote_tracks();
        let live: Vec<_> = tracks.iter().filter(|t| !t.ended).collect();
        assert_eq!(live.len(), 4, "{} has {live:?}", viewer.uid);
        viewer.assert_no_problems();
    }
    // The relays stayed up: every edge answered the origins' pings.
    for node in &cluster.nodes {
        assert!(!node.log().contains("answered nothing"), "{}", node.log());
    }
}

/// A conference that began on one node and gained an edge later (as placement's `Extend`
/// adds one): a speaker on the new edge reaches the participants on the origin, which pulls
/// from the edge once the record lists it, and the other way round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conference_s_origin_pulls_from_an_edge_added_while_it_is_live() {
    let cluster = Cluster::start("relay-grow", &["origin-1", "edge-1"]).await;
    let (origin, edge) = (cluster.node("origin-1"), cluster.node("edge-1"));
    cluster
        .plant("conf", SessionClass::Conference, "origin-1", &[])
        .await;
    let alice = join(origin, "conf", "alice").await;
    alice.publish(Media::BOTH).await.expect("alice publishes");
    // The live session gains an edge.
    cluster
        .plant("conf", SessionClass::Conference, "origin-1", &["edge-1"])
        .await;
    let bob = join(edge, "conf", "bob").await;
    bob.publish(Media::BOTH).await.expect("bob publishes");
    receives_from(&alice, &bob).await;
    receives_from(&bob, &alice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_relayed_between_the_same_nodes_stay_apart() {
    let cluster = Cluster::start("relay-two", &["origin-1", "edge-1"]).await;
    let (origin, edge) = (cluster.node("origin-1"), cluster.node("edge-1"));
    for sid in ["first", "second"] {
        cluster
            .plant(sid, SessionClass::Livestream, "origin-1", &["edge-1"])
            .await;
    }
    let first = join(origin, "first", "host-1").await;
    first.publish(Media::BOTH).await.expect("publishing");
    let second = join(origin, "second", "host-2").await;
    second.publish(Media::BOTH).await.expect("publishing");
    let viewer_1 = join(edge, "first", "viewer-1").await;
    let viewer_2 = join(edge, "second", "viewer-2").await;
    receives_from(&viewer_1, &first).await;
    receives_from(&viewer_2, &second).await;
    assert!(viewer_1.tracks_from("host-2").is_empty());
    assert!(viewer_2.tracks_from("host-1").is_empty());
}

/// Waits until `publisher` has had no keyframe request for 1.5 s (new subscriptions ask for
/// one), and returns the count then.
async fn keyframe_requests_settled(publisher: &Peer) -> u64 {
    let mut last = publisher.keyframe_requests();
    let mut quiet_since = Instant::now();
    wait_for(
        "keyframe requests to settle",
        Duration::from_secs(20),
        || {
            let now = publisher.keyframe_requests();
            if now != last {
                last = now;
                quiet_since = Instant::now();
            }
            let settled = quiet_since.elapsed() >= Duration::from_millis(1500);
            async move { settled.then_some(now) }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_keyframe_requests_on_an_edge_reach_the_publisher_once() {
    let cluster = Cluster::start("relay-pli", &["origin-1", "edge-1"]).await;
    let (origin, edge) = (cluster.node("origin-1"), cluster.node("edge-1"));
    cluster
        .plant("pli", SessionClass::Livestream, "origin-1", &["edge-1"])
        .await;
    let alice = join(origin, "pli", "alice").await;
    alice.publish(Media::VIDEO).await.expect("alice publishes");
    let mut viewers = Vec::new();
    for i in 0..20 {
        viewers.push(join(edge, "pli", &format!("v{i}")).await);
    }
    for viewer in &viewers {
        let what = format!("{} to receive alice's video", viewer.uid);
        wait_for(&what, Duration::from_secs(20), || async {
            viewer
                .tracks_from("alice")
                .iter()
                .any(|t| t.kind == Kind::Video && t.flowing(Duration::from_millis(500)))
                .then_some(())
        })
        .await;
    }
    let video = |viewer: &Peer| {
        viewer
            .tracks_from("alice")
            .into_iter()
            .find(|t| t.kind == Kind::Video)
            .expect("alice's video")
            .track_id
    };

    // One viewer's PLI crosses the relay to the publisher.
    let before = keyframe_requests_settled(&alice).await;
    viewers[0]
        .send_pli(&video(&viewers[0]))
        .await
        .expect("sending a PLI");
    wait_for(
        "v0's PLI to reach alice",
        Duration::from_secs(5),
        || async { (alice.keyframe_requests() > before).then_some(()) },
    )
    .await;

    // Twenty within 500 ms reach it once: the edge merges them into one request upstream.
    let before = keyframe_requests_settled(&alice).await;
    let sent_at = Instant::now();
    for viewer in &viewers {
        viewer
            .send_pli(&video(viewer))
            .await
            .expect("sending a PLI");
    }
    assert!(
        sent_at.elapsed() < Duration::from_millis(500),
        "sending 20 PLIs took {:?}",
        sent_at.elapsed()
    );
    wait_for(
        "the PLIs to reach alice",
        Duration::from_secs(5),
        || async { (alice.keyframe_requests() > before).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(alice.keyframe_requests() - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_edge_s_relay_is_dropped_and_its_viewers_resume_on_another_edge() {
    let ids = ["origin-1", "edge-1", "edge-2"];
    let mut cluster = Cluster::start("relay-kill", &ids).await;
    cluster
        .plant(
            "show",
            SessionClass::Livestream,
            "origin-1",
            &["edge-1", "edge-2"],
        )
        .await;
    let alice = join(cluster.node("origin-1"), "show", "alice").await;
    alice.publish(Media::BOTH).await.expect("alice publishes");
    let viewer = join(cluster.node("edge-1"), "show", "viewer").await;
    viewer.wait_flowing_from("alice").await;
    assert!(
        cluster
            .node("origin-1")
            .log()
            .contains("relay to an edge opened")
    );

    cluster.node_mut("edge-1").kill9();
    // Well within the lease TTL (10 s): the relay's connection dies with the process.
    wait_for(
        "the origin to drop the dead edge's relay",
        Duration::from_secs(10),
        || async {
            cluster
                .node("origin-1")
                .log()
                .contains("relay to an edge closed")
                .then_some(())
        },
    )
    .await;

    // The viewer, placed again, lands on the other edge and receives again.
    let again = join(cluster.node("edge-2"), "show", "viewer").await;
    receives_from(&again, &alice).await;
    alice.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_splits_a_livestream_and_sends_viewers_to_the_edge() {
    // Two free nodes of 200 units, 170 each for a livestream: 300 viewers need both.
    let cluster = Cluster::start("relay-place", &["node-a", "node-b"]).await;
    let placed = cluster
        .place(&["--class", "livestream", "--size", "300", "--session", "big"])
        .await;
    assert_eq!(placed["decision"], "place", "{placed}");
    let origin = placed["node"].as_str().expect("an origin").to_owned();
    let edges: Vec<String> = serde_json::from_value(placed["edges"].clone()).expect("edges");
    assert_eq!(edges.len(), 1, "{placed}");
    assert_ne!(edges[0], origin);
    let record: SessionRecord = cluster
        .store
        .get(&cluster.store.keys().session("big"))
        .await
        .expect("reading etcd")
        .expect("the session is reserved");
    assert_eq!((record.demand, record.edge_demand), (151, 150));

    let host = join(cluster.node(&origin), "big", "host").await;
    host.publish(Media::BOTH).await.expect("publishing");
    let viewer_place = [
        "--class",
        "livestream",
        "--size",
        "1",
        "--session",
        "big",
        "--role",
        "viewer",
    ];
    let routed = cluster.place(&viewer_place).await;
    assert_eq!(routed["decision"], "existing", "{routed}");
    assert_eq!(routed["node"], edges[0].as_str(), "{routed}");
    assert_eq!(routed["origin"], origin.as_str(), "{routed}");
    let viewer = join(cluster.node(&edges[0]), "big", "viewer").await;
    receives_from(&viewer, &host).await;
    // ionctl sessions shows the session with its edge and the peers there.
    let endpoint = cluster._etcd.endpoint();
    let listed = harness::ionctl(&[
        "sessions",
        "--etcd",
        &endpoint,
        "--prefix",
        &cluster.prefix,
        "--node",
        &edges[0],
    ])
    .await;
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        table.contains("big") && table.contains(&format!("1 × 150 units: {}", edges[0])),
        "{table}"
    );
    // A publisher is sent to the origin.
    let publisher = cluster
        .place(&["--class", "livestream", "--size", "1", "--session", "big"])
        .await;
    assert_eq!(publisher["node"], origin.as_str(), "{publisher}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_dying_ends_the_session_on_its_edges_with_a_reason() {
    let mut cluster = Cluster::start("relay-origin-dies", &["origin-1", "edge-1"]).await;
    cluster
        .plant("doomed", SessionClass::Livestream, "origin-1", &["edge-1"])
        .await;
    let alice = join(cluster.node("origin-1"), "doomed", "alice").await;
    alice.publish(Media::BOTH).await.expect("alice publishes");
    let viewer = join(cluster.node("edge-1"), "doomed", "viewer").await;
    viewer.wait_flowing_from("alice").await;

    cluster.node_mut("origin-1").kill9();
    // The record goes with the origin's lease (TTL 10 s); the edge reads it every 3 s.
    let closed = wait_for(
        "the edge to close the viewer's connection",
        Duration::from_secs(25),
        || async { viewer.signal_closed() },
    )
    .await;
    assert!(
        closed.contains("session doomed is over") && closed.contains("origin-1"),
        "{closed}"
    );
}

fn packets_in(metrics: &str) -> f64 {
    sample(metrics, r#"ion_agent_packets_total{direction="in"}"#)
        .expect("the agent's inbound packet counter")
}

/// The origin's CPU, and datagrams in and out, per second over `window`, after the media
/// settles.
async fn origin_cpu(origin: &AgentProcess, window: Duration) -> (f64, f64, f64) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = http_get(origin.port, "/metrics").await;
    let (before, at) = (cpu_seconds(origin.pid()), Instant::now());
    let (in0, out0) = (packets_in(&metrics), packets_out(&metrics));
    tokio::time::sleep(window).await;
    let cpu = cpu_seconds(origin.pid()) - before;
    let metrics = http_get(origin.port, "/metrics").await;
    let secs = at.elapsed().as_secs_f64();
    (
        cpu / secs,
        (packets_in(&metrics) - in0) / secs,
        (packets_out(&metrics) - out0) / secs,
    )
}

/// Not a test: what a relay costs the origin against what a viewer on the origin costs, in
/// one run. One publisher (500 kbit/s VP8 + Opus) on the origin; the origin's CPU is taken
/// with no viewer, with `ION_BENCH_VIEWERS` (default 10) viewers on the origin, and with as
/// many on an edge (one relay), over `ION_BENCH_SECONDS` (default 10) each. Run by
/// `scripts/bench-relay`, in release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark; run scripts/bench-relay"]
async fn relay_cost_against_a_local_viewer() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let viewers = env("ION_BENCH_VIEWERS", 10) as usize;
    let window = Duration::from_secs(env("ION_BENCH_SECONDS", 10));
    let cluster = Cluster::start("relay-bench", &["origin-1", "edge-1"]).await;
    let (origin, edge) = (cluster.node("origin-1"), cluster.node("edge-1"));
    cluster
        .plant("bench", SessionClass::Livestream, "origin-1", &["edge-1"])
        .await;
    let host = join(origin, "bench", "host").await;
    host.set_video_packets_per_frame(2);
    host.publish(Media::BOTH).await.expect("publishing");
    let (alone, alone_in, alone_out) = origin_cpu(origin, window).await;

    // One viewer alone pays what the first subscriber of a track pays (a send call per
    // packet); the next ones share it. A relay is a first subscriber too.
    let single = join(origin, "bench", "single").await;
    single.wait_flowing_from("host").await;
    let (with_one, ..) = origin_cpu(origin, window).await;
    single.close().await;
    drop(single);

    let mut local = Vec::new();
    for i in 0..viewers {
        local.push(join(origin, "bench", &format!("local-{i}")).await);
    }
    for viewer in &local {
        viewer.wait_flowing_from("host").await;
    }
    let (with_local, local_in, local_out) = origin_cpu(origin, window).await;
    for viewer in &local {
        viewer.close().await;
    }
    drop(local);

    let mut remote = Vec::new();
    for i in 0..viewers {
        remote.push(join(edge, "bench", &format!("remote-{i}")).await);
    }
    for viewer in &remote {
        viewer.wait_flowing_from("host").await;
    }
    let (with_relay, relay_in, relay_out) = origin_cpu(origin, window).await;
    let mut worst = 1.0f64;
    let start = [host.sent(Kind::Audio), host.sent(Kind::Video)];
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = [host.sent(Kind::Audio), host.sent(Kind::Video)];
    tokio::time::sleep(Duration::from_secs(1)).await;
    for viewer in &remote {
        let tracks = viewer.tracks_from("host");
        for (i, kind) in [Kind::Audio, Kind::Video].into_iter().enumerate() {
            let got = tracks
                .iter()
                .find(|t| t.kind == kind)
                .map_or(0, |t| t.received_in(start[i]..end[i]));
            worst = worst.min(got as f64 / f64::from((end[i] - start[i]).max(1)));
        }
    }
    let per_viewer = (with_local - alone) / viewers as f64;
    let first_viewer = with_one - alone;
    let relay = with_relay - alone;
    println!(
        "origin CPU, % of one core: publisher alone {:.2}, + {viewers} local viewers {:.2}, + {viewers} viewers on an edge {:.2}",
        alone * 100.0,
        with_local * 100.0,
        with_relay * 100.0
    );
    println!(
        "a viewer alone on the origin costs {:.3}% of a core, each of {viewers} {:.3}%; the \
         relay {:.3}%: {:.2}× a viewer alone, {:.2}× one of {viewers}",
        first_viewer * 100.0,
        per_viewer * 100.0,
        relay * 100.0,
        relay / first_viewer,
        relay / per_viewer
    );
    println!(
        "origin datagrams in/out per second: alone {alone_in:.0}/{alone_out:.0}, local \
         viewers {local_in:.0}/{local_out:.0}, relay {relay_in:.0}/{relay_out:.0}"
    );
    println!(
        "worst edge viewer received {:.1}% of 3 s of packets",
        worst * 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_finding_every_edge_full_adds_a_free_node_to_the_session() {
    // Placement only: node records as agents would write them, no agent processes.
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("relay-extend");
    let store = etcd.store(&prefix).await;
    harness::plant(
        &store,
        &[
            harness::node_record("origin", 2, 0.95),
            harness::node_record("full-edge", 2, 0.95),
            harness::node_record("spare", 2, 0.0),
        ],
    )
    .await;
    let record = SessionRecord {
        sid: "show".to_owned(),
        class: SessionClass::Livestream,
        size: 300,
        demand: 151,
        node: "origin".to_owned(),
        state: SessionState::Live,
        relays: vec!["full-edge".to_owned()],
        edge_demand: 150,
        created_at: SystemTime::now(),
    };
    store
        .put(&store.keys().session("show"), &record)
        .await
        .expect("writing the session");
    let endpoint = etcd.endpoint();
    let output = harness::ionctl(&[
        "place",
        "--etcd",
        &endpoint,
        "--prefix",
        &prefix,
        "-o",
        "json",
        "--class",
        "livestream",
        "--size",
        "1",
        "--session",
        "show",
        "--role",
        "viewer",
    ])
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer["node"], "spare", "{answer}");
    let extended: SessionRecord = store
        .get(&store.keys().session("show"))
        .await
        .expect("reading etcd")
        .expect("the session");
    assert_eq!(extended.relays, ["full-edge", "spare"]);
    let share: Option<String> = store
        .client()
        .get(store.keys().placement("spare", "show"), None)
        .await
        .expect("reading etcd")
        .kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
    assert_eq!(share.as_deref(), Some("150"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_edge_keeps_taking_viewers_of_the_session_it_relays() {
    let cluster = Cluster::start("relay-drain", &["origin-1", "edge-1"]).await;
    let (origin, edge) = (cluster.node("origin-1"), cluster.node("edge-1"));
    cluster
        .plant("running", SessionClass::Livestream, "origin-1", &["edge-1"])
        .await;
    let host = join(origin, "running", "host").await;
    host.publish(Media::BOTH).await.expect("publishing");
    let first = join(edge, "running", "first").await;
    first.wait_flowing_from("host").await;

    let endpoint = cluster._etcd.endpoint();
    let drained = harness::ionctl(&[
        "drain",
        "edge-1",
        "--etcd",
        &endpoint,
        "--prefix",
        &cluster.prefix,
    ])
    .await;
    assert!(
        drained.status.success(),
        "{}",
        String::from_utf8_lossy(&drained.stderr)
    );
    let key = cluster.store.keys().node("edge-1");
    wait_for("the edge to drain", Duration::from_secs(15), || async {
        cluster
            .store
            .get::<ion_cluster::model::NodeRecord>(&key)
            .await
            .ok()
            .flatten()
            .filter(|n| n.state == ion_cluster::model::NodeState::Draining)
    })
    .await;

    // The session it relays goes on taking viewers; a new session is refused.
    let second = join(edge, "running", "second").await;
    receives_from(&second, &host).await;
    cluster
        .plant("fresh", SessionClass::Livestream, "origin-1", &["edge-1"])
        .await;
    let refused = Peer::join(&url(edge), "fresh", "late", JoinConfig::default()).await;
    let error = refused
        .err()
        .expect("a new session on a draining edge is refused");
    assert!(error.to_string().contains("draining"), "{error}");
}
