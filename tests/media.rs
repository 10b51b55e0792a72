//! The agent's media path end to end: a real etcd, a real `ion-agent` process, and webrtc-rs
//! peers that speak ion-sfu JSON-RPC the way ion-sdk-js does. Every wait is a poll with a
//! deadline, and the assertions are on what peers received and what etcd holds.

mod harness;

use std::time::{Duration, Instant, SystemTime};

use harness::{
    AUDIO_PPS, AgentProcess, AgentSpec, Etcd, JoinConfig, Kind, Media, Peer, RawSignal, Reply,
    RpcError, VIDEO_FPS, VideoLayer, http_get, placeholder_join, sample, unique_prefix, wait_for,
};
use ion_cluster::loadtest::agent_cpu::{clock_ticks_per_second, process_cpu_times};
use ion_cluster::model::{NodeRecord, SessionClass, SessionRecord, SessionState};
use ion_cluster::store::Store;

/// Media must start within this long of the last join or publish.
const MEDIA_DEADLINE: Duration = Duration::from_secs(20);
/// A track counts as flowing when a packet arrived this recently.
const FLOWING: Duration = Duration::from_millis(500);

/// Polls a condition on local state until it holds, or panics naming `what`.
async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    wait_for(what, timeout, || {
        let done = condition();
        async move { done.then_some(()) }
    })
    .await;
}

/// etcd, one agent on it, and a store on the agent's prefix. Fields drop in order: the agent
/// stops before etcd does.
struct Node {
    agent: AgentProcess,
    store: Store,
    _etcd: Etcd,
}

impl Node {
    async fn start(test: &str, spec: AgentSpec) -> Node {
        let etcd = Etcd::start().await;
        let prefix = unique_prefix(test);
        let store = etcd.store(&prefix).await;
        let agent = AgentProcess::start(&etcd, &prefix, spec);
        let node = Node {
            agent,
            store,
            _etcd: etcd,
        };
        node.record_where(Duration::from_secs(15), "the node to register", |_| true)
            .await;
        node
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.agent.port)
    }

    async fn join(&self, sid: &str, uid: &str) -> Peer {
        Peer::join(&self.url(), sid, uid, JoinConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{uid} joining {sid}: {e:#}"))
    }

    async fn record(&self) -> Option<NodeRecord> {
        let key = self.store.keys().node(&self.agent.node_id);
        self.store.get(&key).await.expect("reading the node record")
    }

    /// Polls the node record until `pred` holds.
    async fn record_where(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&NodeRecord) -> bool,
    ) -> NodeRecord {
        let pred = &pred;
        wait_for(what, timeout, || async move {
            self.record().await.filter(|r| pred(r))
        })
        .await
    }

    async fn session(&self, sid: &str) -> Option<(SessionRecord, i64)> {
        raw_get(&self.store, &self.store.keys().session(sid)).await
    }

    async fn metrics(&self) -> String {
        http_get(self.agent.port, "/metrics").await
    }
}

/// A record and the lease it is on.
async fn raw_get<T: serde::de::DeserializeOwned>(store: &Store, key: &str) -> Option<(T, i64)> {
    let response = store.client().get(key, None).await.expect("reading etcd");
    response.kvs().first().map(|kv| {
        (
            serde_json::from_slice(kv.value()).expect("a well-formed record"),
            kv.lease(),
        )
    })
}

/// Waits until `peer` receives flowing tracks of both kinds from each of `uids`.
async fn wait_flowing(peer: &Peer, uids: &[&str], media: Media) {
    let what = format!("{} to receive {media:?} from {uids:?}", peer.uid);
    wait_until(&what, MEDIA_DEADLINE, || {
        uids.iter().all(|uid| {
            let tracks = peer.tracks_from(uid);
            let has = |kind| tracks.iter().any(|t| t.kind == kind && t.flowing(FLOWING));
            (!media.audio || has(Kind::Audio)) && (!media.video || has(Kind::Video))
        })
    })
    .await;
}

fn packets_from(peer: &Peer, uid: &str) -> u64 {
    peer.tracks_from(uid).iter().map(|t| t.packets).sum()
}

/// Waits until packets from `uid` keep arriving at `peer`: more than `before` plus `at_least`.
async fn wait_more_packets(peer: &Peer, uid: &str, at_least: u64) {
    let before = packets_from(peer, uid);
    let what = format!("{} to receive {at_least} more packets from {uid}", peer.uid);
    wait_until(&what, Duration::from_secs(10), || {
        packets_from(peer, uid) >= before + at_least
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publisher_reaches_three_subscribers_with_little_loss() {
    let node = Node::start("media-fanout", AgentSpec::new("fan-1")).await;
    let alice = node.join("fanout", "alice").await;
    alice.publish(Media::BOTH).await.expect("publishing");
    let mut viewers = Vec::new();
    for uid in ["v1", "v2", "v3"] {
        viewers.push(node.join("fanout", uid).await);
    }
    for viewer in &viewers {
        wait_flowing(viewer, &["alice"], Media::BOTH).await;
    }

    // Measure a window of numbered packets; the tail second lets the last ones arrive.
    let start = [alice.sent(Kind::Audio), alice.sent(Kind::Video)];
    tokio::time::sleep(Duration::from_secs(5)).await;
    let end = [alice.sent(Kind::Audio), alice.sent(Kind::Video)];
    tokio::time::sleep(Duration::from_secs(1)).await;
    for viewer in &viewers {
        for (i, kind) in [Kind::Audio, Kind::Video].into_iter().enumerate() {
            let sent = (end[i] - start[i]) as usize;
            let expected = 5 * match kind {
                Kind::Audio => AUDIO_PPS,
                Kind::Video => VIDEO_FPS,
            } as usize;
            assert!(
                sent >= expected * 9 / 10,
                "alice sent only {sent} {kind:?} packets in 5 s"
            );
            let tracks = viewer.tracks_from("alice");
            let track = tracks
                .iter()
                .find(|t| t.kind == kind)
                .unwrap_or_else(|| panic!("{} has no {kind:?} track from alice", viewer.uid));
            let got = track.received_in(start[i]..end[i]);
            assert!(
                got * 100 >= sent * 95,
                "{} received {got} of {sent} {kind:?} packets",
                viewer.uid
            );
        }
        viewer.assert_no_problems();
    }
    alice.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_people_each_receive_the_other_five() {
    let node = Node::start("media-group", AgentSpec::new("group-1")).await;
    let uids = ["p1", "p2", "p3", "p4", "p5", "p6"];
    let mut peers = Vec::new();
    for uid in uids {
        let peer = node.join("group", uid).await;
        peer.publish(Media::BOTH).await.expect("publishing");
        peers.push(peer);
    }
    for peer in &peers {
        let others: Vec<&str> = uids.iter().copied().filter(|u| *u != peer.uid).collect();
        wait_flowing(peer, &others, Media::BOTH).await;
        let tracks = peer.remote_tracks();
        let live: Vec<_> = tracks.iter().filter(|t| !t.ended).collect();
        assert_eq!(live.len(), 10, "{}: {tracks:?}", peer.uid);
        assert!(
            tracks.iter().all(|t| t.stream_id != peer.uid),
            "{} receives its own tracks",
            peer.uid
        );
    }
    for peer in &peers {
        peer.assert_no_problems();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_publisher_s_tracks_end_for_subscribers() {
    let node = Node::start("media-leave", AgentSpec::new("leave-1")).await;
    let alice = node.join("leave", "alice").await;
    alice.publish(Media::BOTH).await.expect("publishing");
    let carol = node.join("leave", "carol").await;
    carol.publish(Media::BOTH).await.expect("publishing");
    let bob = node.join("leave", "bob").await;
    wait_flowing(&bob, &["alice", "carol"], Media::BOTH).await;
    let alice_tracks: Vec<String> = bob
        .tracks_from("alice")
        .into_iter()
        .map(|t| t.track_id)
        .collect();
    assert_eq!(alice_tracks.len(), 2);
    let renegotiations = bob.renegotiations();

    alice.close().await;
    drop(alice);

    wait_until(
        "bob's subscriber PC to be renegotiated without alice's tracks",
        Duration::from_secs(10),
        || {
            let offered = bob.offered_tracks();
            bob.renegotiations() > renegotiations
                && alice_tracks
                    .iter()
                    .all(|id| offered.get(id) == Some(&false))
        },
    )
    .await;
    assert!(bob.tracks_from("alice").is_empty());
    let ended: Vec<_> = bob
        .remote_tracks()
        .into_iter()
        .filter(|t| alice_tracks.contains(&t.track_id))
        .collect();
    assert!(ended.iter().all(|t| t.ended), "{ended:?}");
    // Nothing more arrives on them, and carol's keep flowing.
    let counts: Vec<u64> = ended.iter().map(|t| t.packets).collect();
    wait_more_packets(&bob, "carol", 50).await;
    let after: Vec<u64> = bob
        .remote_tracks()
        .into_iter()
        .filter(|t| alice_tracks.contains(&t.track_id))
        .map(|t| t.packets)
        .collect();
    assert_eq!(
        counts, after,
        "packets still arrive on alice's ended tracks"
    );
    assert_eq!(carol.tracks_from("alice").len(), 0);
    bob.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_s_pli_reaches_the_publisher() {
    let node = Node::start("media-pli", AgentSpec::new("pli-1")).await;
    let alice = node.join("pli", "alice").await;
    alice.publish(Media::VIDEO).await.expect("publishing");
    let bob = node.join("pli", "bob").await;
    wait_flowing(&bob, &["alice"], Media::VIDEO).await;

    // The agent asks for a keyframe itself when bob subscribes; wait until that settles.
    let mut last = alice.keyframe_requests();
    let mut quiet_since = Instant::now();
    wait_until(
        "keyframe requests to settle",
        Duration::from_secs(15),
        || {
            let now = alice.keyframe_requests();
            if now != last {
                last = now;
                quiet_since = Instant::now();
            }
            quiet_since.elapsed() >= Duration::from_millis(1500)
        },
    )
    .await;
    let before = alice.keyframe_requests();
    let video = bob
        .tracks_from("alice")
        .into_iter()
        .find(|t| t.kind == Kind::Video)
        .expect("bob has alice's video");
    bob.send_pli(&video.track_id).await.expect("sending a PLI");
    wait_until("bob's PLI to reach alice", Duration::from_secs(5), || {
        alice.keyframe_requests() > before
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_key_lives_on_the_node_lease_while_peers_are_in_it() {
    let node = Node::start("media-session", AgentSpec::new("sess-1")).await;
    let (_, node_lease) = raw_get::<NodeRecord>(&node.store, &node.store.keys().node("sess-1"))
        .await
        .expect("the node record");
    assert_ne!(node_lease, 0, "the node record is on a lease");
    assert!(node.session("s1").await.is_none());

    let alice = node.join("s1", "alice").await;
    alice.publish(Media::AUDIO).await.expect("publishing");
    let (record, lease) = node
        .session("s1")
        .await
        .expect("sessions/s1 after the join");
    assert_eq!(record.sid, "s1");
    assert_eq!(record.node, "sess-1");
    assert_eq!(record.state, SessionState::Live);
    assert_eq!(lease, node_lease, "the session is on the node's lease");

    let bob = node.join("s1", "bob").await;
    wait_flowing(&bob, &["alice"], Media::AUDIO).await;
    alice.close().await;
    drop(alice);
    // One peer is still in: the key stays.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        node.session("s1").await.is_some(),
        "the key went with a peer still in"
    );

    bob.close().await;
    drop(bob);
    wait_for(
        "sessions/s1 to be deleted after the last leave",
        Duration::from_secs(10),
        || {
            let node = &node;
            async move { node.session("s1").await.is_none().then_some(()) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_stats_count_sessions_and_peers() {
    let node = Node::start("media-stats", AgentSpec::new("stats-1")).await;
    let alice = node.join("room-a", "alice").await;
    alice.publish(Media::BOTH).await.expect("publishing");
    let bob = node.join("room-a", "bob").await;
    let carol = node.join("room-b", "carol").await;
    wait_flowing(&bob, &["alice"], Media::BOTH).await;
    // Within the write budget (2 s minimum between writes, 10 s heartbeat).
    let record = node
        .record_where(
            Duration::from_secs(15),
            "stats to show 2 sessions and 3 peers",
            |r| r.stats.sessions == 2 && r.stats.peers == 3,
        )
        .await;
    assert_eq!(record.stats.tracks_in, 2, "{:?}", record.stats);

    for peer in [alice, bob, carol] {
        peer.close().await;
    }
    node.record_where(
        Duration::from_secs(15),
        "stats to show no sessions and no peers",
        |r| r.stats.sessions == 0 && r.stats.peers == 0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_errors_and_leaves_other_sessions_alone() {
    let node = Node::start("media-abuse", AgentSpec::new("abuse-1")).await;
    let alice = node.join("healthy", "alice").await;
    alice.publish(Media::BOTH).await.expect("publishing");
    let bob = node.join("healthy", "bob").await;
    wait_flowing(&bob, &["alice"], Media::BOTH).await;

    let mut raw = RawSignal::connect(&node.url()).await.expect("connecting");
    let timeout = Duration::from_secs(5);
    raw.send_text("{this is not json").await.expect("sending");
    let error = raw.expect_error(timeout).await.expect("a parse error");
    assert_eq!(error.code, -32700, "{error}");

    let big = format!(
        r#"{{"method":"trickle","params":{{"target":0,"candidate":{{"candidate":"{}"}}}}}}"#,
        "x".repeat(70 * 1024)
    );
    raw.send_text(big).await.expect("sending");
    let error = raw.expect_error(timeout).await.expect("a size error");
    assert_eq!(error.code, -32600, "{error}");
    assert!(error.message.contains("65536"), "{error}");

    raw.send_text(r#"{"jsonrpc":"2.0","id":7,"method":"subscribe","params":{}}"#)
        .await
        .expect("sending");
    let error = raw.expect_error(timeout).await.expect("a method error");
    assert_eq!(
        (error.code, error.id.clone()),
        (-32601, serde_json::json!(7))
    );
    assert!(error.message.contains("subscribe"), "{error}");

    raw.send_text(
        r#"{"jsonrpc":"2.0","id":8,"method":"join","params":{"sid":"other","uid":"mallory","offer":{"type":"offer","sdp":"v=0\r\ngarbage\r\n"}}}"#,
    )
    .await
    .expect("sending");
    let error = raw.expect_error(timeout).await.expect("an SDP error");
    assert_eq!(
        (error.code, error.id.clone()),
        (-32602, serde_json::json!(8))
    );
    assert!(error.message.contains("SDP"), "{error}");
    // The failed join claimed nothing.
    assert!(node.session("other").await.is_none());

    // Meanwhile the healthy session kept flowing.
    wait_more_packets(&bob, "alice", 50).await;

    // The fifth bad message (the default [signal] max_errors) closes this connection only.
    raw.send_text("]").await.expect("sending");
    let error = raw.expect_error(timeout).await.expect("a fifth error");
    assert_eq!(error.code, -32700, "{error}");
    match raw.next(timeout).await.expect("the close") {
        Reply::Closed(reason) => {
            let reason = reason.unwrap_or_default();
            assert!(reason.starts_with("1008"), "{reason}");
        }
        Reply::Json(other) => panic!("expected the connection to close, got {other}"),
    }
    wait_more_packets(&bob, "alice", 50).await;
    assert!(alice.signal_closed().is_none() && bob.signal_closed().is_none());
    // The agent still takes new connections.
    let carol = node.join("healthy", "carol").await;
    wait_flowing(&carol, &["alice"], Media::BOTH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_are_refused_for_sessions_this_node_does_not_own() {
    let spec = AgentSpec::new("strict-1").set("signal", "allow_unplaced", false);
    let node = Node::start("media-owner", spec).await;
    let keys = node.store.keys().clone();
    let record = |sid: &str, on: &str, state| SessionRecord {
        sid: sid.to_owned(),
        class: SessionClass::Meeting,
        size: 4,
        demand: 8,
        node: on.to_owned(),
        state,
        relays: Vec::new(),
        edge_demand: 0,
        created_at: SystemTime::now(),
    };
    node.store
        .put(
            &keys.session("theirs"),
            &record("theirs", "elsewhere", SessionState::Live),
        )
        .await
        .expect("planting a session on another node");
    let error = Peer::join(&node.url(), "theirs", "alice", JoinConfig::default())
        .await
        .err()
        .expect("the join is refused");
    let rpc = error
        .downcast_ref::<RpcError>()
        .unwrap_or_else(|| panic!("not a JSON-RPC error: {error:#}"));
    assert!(rpc.message.contains("elsewhere"), "{rpc}");

    let error = Peer::join(&node.url(), "unplaced", "alice", JoinConfig::default())
        .await
        .err()
        .expect("an unplaced join is refused");
    let rpc = error
        .downcast_ref::<RpcError>()
        .unwrap_or_else(|| panic!("not a JSON-RPC error: {error:#}"));
    assert!(rpc.message.contains("not placed"), "{rpc}");
    assert!(node.session("unplaced").await.is_none());

    // A reservation for this node is adopted: live, on the node's lease.
    node.store
        .put(
            &keys.session("ours"),
            &record("ours", "strict-1", SessionState::Reserved),
        )
        .await
        .expect("planting a reservation");
    let alice = node.join("ours", "alice").await;
    let (adopted, lease) = node.session("ours").await.expect("sessions/ours");
    assert_eq!(adopted.state, SessionState::Live);
    assert_eq!(adopted.demand, 8, "the placer's demand is kept");
    let (_, node_lease) = raw_get::<NodeRecord>(&node.store, &keys.node("strict-1"))
        .await
        .expect("the node record");
    assert_eq!(lease, node_lease);
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_forwarded_packets() {
    let node = Node::start("media-metrics", AgentSpec::new("metrics-1")).await;
    let alice = node.join("m", "alice").await;
    alice.publish(Media::BOTH).await.expect("publishing");
    let bob = node.join("m", "bob").await;
    wait_flowing(&bob, &["alice"], Media::BOTH).await;
    wait_more_packets(&bob, "alice", 50).await;

    let response = node.metrics().await;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        body.contains("# TYPE ion_agent_packets_total counter"),
        "{body}"
    );
    let out = sample(body, r#"ion_agent_packets_total{direction="out"}"#)
        .unwrap_or_else(|| panic!("no outgoing packet count in {body}"));
    let inbound = sample(body, r#"ion_agent_packets_total{direction="in"}"#)
        .unwrap_or_else(|| panic!("no incoming packet count in {body}"));
    assert!(out >= 50.0 && inbound >= 50.0, "in {inbound}, out {out}");
    assert_eq!(
        sample(body, "ion_agent_forward_errors_total"),
        Some(0.0),
        "{body}"
    );
    assert_eq!(sample(body, "ion_agent_peers"), Some(2.0), "{body}");
    assert_eq!(sample(body, "ion_agent_sessions"), Some(1.0), "{body}");
}

/// A participant whose ICE never connects is removed by the worker's housekeeping, not only
/// when it leaves: its signaling connection is closed with the reason, and the peer count
/// falls back while a healthy session beside it goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_that_never_connects_is_removed() {
    let node = Node::start("media-expiry", AgentSpec::new("expiry-1")).await;
    let alice = node.join("healthy", "alice").await;
    alice.publish(Media::BOTH).await.expect("publishing");
    let bob = node.join("healthy", "bob").await;
    wait_flowing(&bob, &["alice"], Media::BOTH).await;

    let mut ghost = RawSignal::connect(&node.url()).await.expect("connecting");
    ghost
        .send_text(placeholder_join("ghost-room", "ghost").to_string())
        .await
        .expect("sending join");
    match ghost.next(Duration::from_secs(10)).await.expect("a reply") {
        Reply::Json(reply) => assert!(reply["result"].is_object(), "{reply}"),
        Reply::Closed(reason) => panic!("closed instead of answering: {reason:?}"),
    }
    wait_for(
        "the ghost to count as a peer",
        Duration::from_secs(10),
        || async {
            let body = node.metrics().await;
            (sample(&body, "ion_agent_peers") == Some(3.0)).then_some(())
        },
    )
    .await;

    // 30 s to connect, then removed at the next housekeeping (every second).
    let reason = loop {
        match ghost
            .next(Duration::from_secs(45))
            .await
            .expect("the removal")
        {
            Reply::Closed(reason) => break reason.unwrap_or_default(),
            Reply::Json(_) => continue,
        }
    };
    assert!(reason.contains("did not connect within 30s"), "{reason}");
    wait_for(
        "the peer count to drop",
        Duration::from_secs(10),
        || async {
            let body = node.metrics().await;
            (sample(&body, "ion_agent_peers") == Some(2.0)).then_some(())
        },
    )
    .await;
    wait_more_packets(&bob, "alice", 50).await;
}

/// Not a test: the agent's CPU per forwarded packet for one publisher (VP8 30 fps + Opus 50
/// packets/s) and `ION_BENCH_SUBSCRIBERS` subscribers (default 32), over `ION_BENCH_SECONDS`
/// (default 20). `ION_BENCH_VIDEO_KBPS` makes video frames several full-size packets instead
/// of one small one. The agent is its own process, so its CPU (utime + stime from /proc)
/// excludes the clients'. Run by `scripts/bench-fanout`, in release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark; run scripts/bench-fanout"]
async fn fanout_cpu_per_forwarded_packet() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let subscribers = env("ION_BENCH_SUBSCRIBERS", 32) as usize;
    let window = Duration::from_secs(env("ION_BENCH_SECONDS", 20));
    // 0: one small packet per video frame (~80 packets/s per track with audio, where fixed
    // per-peer costs weigh most). Otherwise the video bitrate, as ~1.1 kB packets at 30 fps.
    let video_kbps = env("ION_BENCH_VIDEO_KBPS", 0);
    let packets_per_frame = (video_kbps * 1000 / 8 / 30).div_ceil(1100).max(1) as u32;
    let node = Node::start("media-bench", AgentSpec::new("bench-1")).await;
    let publisher = node.join("bench", "pub").await;
    publisher.set_video_packets_per_frame(packets_per_frame);
    publisher.publish(Media::BOTH).await.expect("publishing");
    let mut viewers = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        viewers.push(node.join("bench", &format!("v{i}")).await);
    }
    for viewer in &viewers {
        wait_flowing(viewer, &["pub"], Media::BOTH).await;
    }
    // Let the joins' keyframe requests and renegotiations settle.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let hz = clock_ticks_per_second();
    let pid = node.agent.pid();
    let times = || process_cpu_times(Some(pid)).expect("/proc/<pid>/stat of the agent");
    let out =
        |text: &str| sample(text, r#"ion_agent_packets_total{direction="out"}"#).unwrap_or(0.0);
    let inbound =
        |text: &str| sample(text, r#"ion_agent_packets_total{direction="in"}"#).unwrap_or(0.0);

    let sent0 = [publisher.sent(Kind::Audio), publisher.sent(Kind::Video)];
    let (t0, m0, at0) = (times(), node.metrics().await, Instant::now());
    tokio::time::sleep(window).await;
    let (t1, m1, elapsed) = (times(), node.metrics().await, at0.elapsed());
    let sent1 = [publisher.sent(Kind::Audio), publisher.sent(Kind::Video)];
    tokio::time::sleep(Duration::from_secs(1)).await;

    let user = t1.0 - t0.0;
    let system = t1.1 - t0.1;
    let cpu = user + system;
    let packets_out = out(&m1) - out(&m0);
    let packets_in = inbound(&m1) - inbound(&m0);
    let secs = elapsed.as_secs_f64();
    let mut worst = 1.0f64;
    for viewer in &viewers {
        for (i, kind) in [Kind::Audio, Kind::Video].into_iter().enumerate() {
            let sent = f64::from(sent1[i] - sent0[i]);
            let got = viewer
                .tracks_from("pub")
                .iter()
                .find(|t| t.kind == kind)
                .map_or(0, |t| t.received_in(sent0[i]..sent1[i])) as f64;
            worst = worst.min(got / sent.max(1.0));
        }
    }
    println!(
        "fan-out 1 -> {subscribers}, window {secs:.1} s, CLK_TCK {hz}, {packets_per_frame} \
         video packet(s) per frame"
    );
    println!(
        "agent CPU {cpu:.2} s (user {user:.2} s, system {system:.2} s; {:.1}% of one core); \
         packets out {packets_out:.0} ({:.0}/s), in {packets_in:.0}",
        cpu / secs * 100.0,
        packets_out / secs
    );
    println!(
        "CPU per forwarded packet: {:.2} us; worst subscriber received {:.1}% of the window's packets",
        cpu * 1e6 / packets_out.max(1.0),
        worst * 100.0
    );
    assert!(packets_out > 0.0, "nothing was forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpublished_track_ends_and_can_come_back() {
    let node = Node::start("media-unpublish", AgentSpec::new("unpub-1")).await;
    let alice = node.join("unpublish", "alice").await;
    alice.publish(Media::BOTH).await.expect("publishing");
    let bob = node.join("unpublish", "bob").await;
    wait_flowing(&bob, &["alice"], Media::BOTH).await;
    let video = bob
        .tracks_from("alice")
        .into_iter()
        .find(|t| t.kind == Kind::Video)
        .expect("alice's video")
        .track_id;

    // ion-sdk-js `unpublish`: the sender goes and the publisher PC renegotiates.
    alice.unpublish(Kind::Video).await.expect("unpublishing");
    wait_until(
        "alice's video to end for bob",
        Duration::from_secs(10),
        || bob.offered_tracks().get(&video) == Some(&false),
    )
    .await;
    let left: Vec<Kind> = bob.tracks_from("alice").iter().map(|t| t.kind).collect();
    assert_eq!(left, [Kind::Audio]);
    wait_more_packets(&bob, "alice", 50).await;

    alice.publish(Media::VIDEO).await.expect("publishing again");
    wait_flowing(&bob, &["alice"], Media::BOTH).await;
    bob.assert_no_problems();
    alice.assert_no_problems();
}

/// Simulcast: a publisher sends two layers; each subscriber gets the one it asks for over the
/// `ion-sfu` data channel (ion-sdk-js `preferLayer`), the highest until it asks, and a
/// subscriber that mutes video gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_subscriber_gets_the_simulcast_layer_it_asks_for() {
    let node = Node::start("media-simulcast", AgentSpec::new("node-1")).await;
    let alice = node.join("sim", "alice").await;
    alice.set_video_packets_per_frame(3);
    let [top, low] = alice
        .publish_simulcast_video()
        .await
        .expect("alice publishes two layers");
    let (high_viewer, low_viewer) = (
        node.join("sim", "bob").await,
        node.join("sim", "carol").await,
    );
    for viewer in [&high_viewer, &low_viewer] {
        wait_flowing(viewer, &["alice"], Media::VIDEO).await;
        viewer.wait_only_layer("alice", top, MEDIA_DEADLINE).await;
    }

    low_viewer
        .prefer_layer("alice", VideoLayer::Low)
        .await
        .expect("carol asks for the low layer");
    low_viewer
        .wait_only_layer("alice", low, MEDIA_DEADLINE)
        .await;
    high_viewer
        .wait_only_layer("alice", top, MEDIA_DEADLINE)
        .await;

    // Back up, then no video at all.
    low_viewer
        .prefer_layer("alice", VideoLayer::High)
        .await
        .expect("carol asks for the high layer");
    low_viewer
        .wait_only_layer("alice", top, MEDIA_DEADLINE)
        .await;
    low_viewer
        .prefer_layer("alice", VideoLayer::None)
        .await
        .expect("carol mutes alice's video");
    let what = "carol to stop receiving alice's video";
    wait_for(what, MEDIA_DEADLINE, || async {
        let before = low_viewer.video_layers_from("alice");
        tokio::time::sleep(Duration::from_millis(500)).await;
        (low_viewer.video_layers_from("alice") == before).then_some(())
    })
    .await;
    high_viewer
        .wait_only_layer("alice", top, MEDIA_DEADLINE)
        .await;
    for peer in [&alice, &high_viewer, &low_viewer] {
        peer.assert_no_problems();
    }
}

/// Signaling abuse on the agent: one address opening 1,000 WebSockets gets its first few
/// (up to `[signal] max_connections_per_ip`) and 429 for the rest; connections that never
/// join, and one that trickles a frame a byte a second, are closed after `join_timeout`;
/// the slots come back, and a call on the node flows throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_abuse_is_cut_off_and_a_call_is_unaffected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let spec = AgentSpec::new("abuse")
        .set("signal", "max_connections_per_ip", 50)
        .set("signal", "join_timeout", "4s");
    let node = Node::start("abuse", spec).await;
    let alice = node.join("healthy", "alice").await;
    alice.publish(Media::BOTH).await.expect("alice publishes");
    let bob = node.join("healthy", "bob").await;
    wait_flowing(&bob, &["alice"], Media::BOTH).await;

    // A client that upgrades, then trickles a frame a byte a second.
    let mut trickler = tokio::net::TcpStream::connect(("127.0.0.1", node.agent.port))
        .await
        .expect("connecting");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        node.agent.port
    );
    trickler
        .write_all(request.as_bytes())
        .await
        .expect("upgrading");
    let started = Instant::now();
    let mut reply = vec![0u8; 1024];
    let n = trickler
        .read(&mut reply)
        .await
        .expect("the upgrade's answer");
    assert!(
        String::from_utf8_lossy(&reply[..n]).starts_with("HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&reply[..n])
    );

    // A masked text frame's header, then its payload, a byte a second: never a message.
    let frame: &[u8] = &[0x81, 0x85, 1, 2, 3, 4, b'h', b'e', b'l', b'l', b'o'];
    let mut closed_after = None;
    for byte in frame.iter().take(8) {
        if trickler.write_all(&[*byte]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(1), trickler.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_after = Some(started.elapsed());
                break;
            }
            // The server's close frame, then the end.
            Ok(Ok(_)) => {}
            Err(_) => {}
        }
    }
    let closed_after = closed_after.expect("the trickler was not cut off within 8 s");
    assert!(
        closed_after < Duration::from_secs(6),
        "cut off after {closed_after:?}"
    );

    // 1,000 WebSockets from the same address: 48 fit beside Alice's and Bob's.
    // All at once, so that none of them times out before the last is refused.
    let url = node.url();
    let attempts = futures_util::future::join_all(
        (0..1_000).map(|_| tokio_tungstenite::connect_async(url.as_str())),
    )
    .await;
    let mut open = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        match attempt {
            Ok((ws, _)) => open.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 429);
                refused += 1;
            }
            Err(other) => panic!("neither admitted nor refused: {other}"),
        }
    }
    assert_eq!((open.len(), refused), (48, 952));

    // The idle ones are closed too, with the reason.
    for ws in &mut open {
        use futures_util::StreamExt;
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        match message {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame))))) => {
                assert!(frame.reason.contains("no join within 4s"), "{frame:?}");
            }
            other => panic!("an idle connection was not closed with a reason: {other:?}"),
        }
    }
    // Their slots are free again, and the call never noticed.
    let carol = node.join("healthy", "carol").await;
    wait_flowing(&carol, &["alice"], Media::BOTH).await;
    let before = bob.remote_tracks().iter().map(|t| t.packets).sum::<u64>();
    wait_until("bob to keep receiving", Duration::from_secs(5), || {
        bob.remote_tracks().iter().map(|t| t.packets).sum::<u64>() > before + 20
    })
    .await;
    alice.assert_no_problems();
    bob.assert_no_problems();
}
