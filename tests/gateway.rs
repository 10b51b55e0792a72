//! The gateway (`ionctl serve`'s `GET /ws`): webrtc-rs peers that know only the gateway's URL
//! and a client token join, are placed, and exchange media with the node the gateway picked;
//! bad clients get their clear error or close. Real etcd, agents and `ionctl serve`.

mod harness;

use std::time::{Duration, SystemTime};

use harness::{
    AgentProcess, AgentSpec, Etcd, JoinConfig, Media, Peer, RawSignal, Reply, ServeProcess,
    TestCertificate, unique_prefix, wait_for,
};
use ion_cluster::model::{NodeRecord, SessionClass, SessionRecord};
use ion_cluster::store::Store;
use ion_cluster::token::{ClientGrant, JoinSecret, issue_client};

const SECRET: &str = "gateway-test-secret-0123456789abcdef";

/// etcd, agents that require join tokens, and gateways, on one prefix.
struct Cluster {
    gateways: Vec<ServeProcess>,
    agents: Vec<AgentProcess>,
    store: Store,
    _etcd: Etcd,
}

impl Cluster {
    async fn start(test: &str, agents: &[&str], gateways: usize) -> Cluster {
        Self::start_with(test, agents, gateways, &[]).await
    }

    /// The same, with extra `ionctl serve` arguments for each gateway.
    async fn start_with(
        test: &str,
        agents: &[&str],
        gateways: usize,
        serve_args: &[&str],
    ) -> Cluster {
        let etcd = Etcd::start().await;
        let prefix = unique_prefix(test);
        let store = etcd.store(&prefix).await;
        let agents: Vec<AgentProcess> = agents
            .iter()
            .map(|id| {
                let spec = AgentSpec::new(id)
                    .set("auth", "enabled", true)
                    .set("auth", "secret", SECRET);
                AgentProcess::start(&etcd, &prefix, spec)
            })
            .collect();
        let ids: Vec<&str> = agents.iter().map(|a| a.node_id.as_str()).collect();
        harness::wait_registered(&store, &ids).await;
        let mut started = Vec::new();
        for _ in 0..gateways {
            let env = [("IONCTL_JOIN_SECRET", SECRET)];
            started.push(ServeProcess::start_with(&etcd, &prefix, &env, serve_args).await);
        }
        Cluster {
            gateways: started,
            agents,
            store,
            _etcd: etcd,
        }
    }

    fn url(&self, gateway: usize, token: &str) -> String {
        format!(
            "ws://127.0.0.1:{}/ws?access_token={token}",
            self.gateways[gateway].port
        )
    }

    async fn session(&self, sid: &str) -> Option<SessionRecord> {
        self.store
            .get(&self.store.keys().session(sid))
            .await
            .expect("reading etcd")
    }
}

fn client_token(sid: &str) -> String {
    let grant = ClientGrant {
        sid: sid.to_owned(),
        class: Some(SessionClass::Group),
        size: Some(4),
        role: None,
    };
    let secret = JoinSecret::new(SECRET).expect("a long secret");
    issue_client(&secret, &grant, SystemTime::now(), Duration::from_secs(300))
}

async fn join(url: &str, sid: &str, uid: &str) -> Peer {
    Peer::join(url, sid, uid, JoinConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{uid} joining {sid} through the gateway: {e:#}"))
}

/// Two gateway replicas: peers of one session, each through its own replica, land on the
/// same node (the second finds the session the first placed) and receive each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_through_two_gateway_replicas_meet_on_one_node() {
    let cluster = Cluster::start("gateway-replicas", &["gw-node-1", "gw-node-2"], 2).await;
    let token = client_token("room");
    let alice = join(&cluster.url(0, &token), "room", "alice").await;
    alice.publish(Media::BOTH).await.expect("alice publishes");
    let bob = join(&cluster.url(1, &token), "room", "bob").await;
    bob.publish(Media::BOTH).await.expect("bob publishes");
    alice.wait_flowing_from("bob").await;
    bob.wait_flowing_from("alice").await;
    let record = cluster
        .session("room")
        .await
        .expect("the session is placed");
    assert!(record.relays.is_empty(), "one node: {record:?}");
    assert!(
        cluster.agents.iter().any(|a| a.node_id == record.node),
        "{record:?}"
    );
    for peer in [&alice, &bob] {
        peer.assert_no_problems();
    }
}

/// What a bad client gets: no token, a forged or expired one, or one for another session; a
/// first message that is not a join; an oversized message; silence. Meanwhile a healthy pair
/// on the same gateway keeps receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_get_clear_errors_and_a_healthy_session_keeps_flowing() {
    let cluster = Cluster::start("gateway-bad", &["gw-bad-1"], 1).await;
    let token = client_token("healthy");
    let alice = join(&cluster.url(0, &token), "healthy", "alice").await;
    alice.publish(Media::BOTH).await.expect("alice publishes");
    let bob = join(&cluster.url(0, &token), "healthy", "bob").await;
    bob.wait_flowing_from("alice").await;
    let port = cluster.gateways[0].port;

    // Refused before the upgrade (and before etcd): no token, a forged one, an expired one.
    let forged = {
        let other = JoinSecret::new("not-the-cluster-secret-0123456789abcdef").expect("long");
        let grant = ClientGrant {
            sid: "x".to_owned(),
            ..ClientGrant::default()
        };
        issue_client(&other, &grant, SystemTime::now(), Duration::from_secs(60))
    };
    let expired = {
        let secret = JoinSecret::new(SECRET).expect("long");
        let grant = ClientGrant {
            sid: "x".to_owned(),
            ..ClientGrant::default()
        };
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        issue_client(&secret, &grant, long_ago, Duration::from_secs(60))
    };
    for (what, query, says) in [
        ("no token", String::new(), "no client token"),
        (
            "a forged token",
            format!("?access_token={forged}"),
            "not signed",
        ),
        (
            "an expired token",
            format!("?access_token={expired}"),
            "expired",
        ),
    ] {
        let response = reqwest::get(format!("http://127.0.0.1:{port}/ws{query}"))
            .await
            .expect("the gateway answers");
        assert_eq!(response.status(), 401, "{what}");
        let body = response.text().await.expect("a body");
        assert!(body.contains(says), "{what}: {body}");
        assert!(
            RawSignal::connect(&format!("ws://127.0.0.1:{port}/ws{query}"))
                .await
                .is_err()
        );
    }

    // A token for another session: a JSON-RPC error, then the close.
    let mut raw = RawSignal::connect(&cluster.url(0, &client_token("other")))
        .await
        .expect("upgraded");
    let join = r#"{"jsonrpc":"2.0","id":1,"method":"join","params":{"sid":"healthy","uid":"eve","offer":{"type":"offer","sdp":"v=0"}}}"#;
    raw.send_text(join).await.expect("sent");
    let error = raw
        .expect_error(Duration::from_secs(5))
        .await
        .expect("an error");
    assert_eq!(error.code, -32001, "{error:?}");
    assert!(error.message.contains("for session other"), "{error:?}");

    // Garbage first, then a first message that is not a join.
    for (text, says) in [
        ("not json", "parse error"),
        (
            r#"{"jsonrpc":"2.0","method":"trickle","params":{"target":0,"candidate":{"candidate":"c"}}}"#,
            "must be a join",
        ),
    ] {
        let mut raw = RawSignal::connect(&cluster.url(0, &token))
            .await
            .expect("upgraded");
        raw.send_text(text).await.expect("sent");
        let error = raw
            .expect_error(Duration::from_secs(5))
            .await
            .expect("an error");
        assert!(error.message.contains(says), "{text}: {error:?}");
        assert!(matches!(
            raw.next(Duration::from_secs(5)).await,
            Ok(Reply::Closed(_))
        ));
    }

    // An oversized message closes the connection.
    let mut raw = RawSignal::connect(&cluster.url(0, &token))
        .await
        .expect("upgraded");
    let _ = raw.send_text("x".repeat(100 * 1024)).await;
    assert!(matches!(
        raw.next(Duration::from_secs(5)).await,
        Ok(Reply::Closed(_))
    ));

    // Silence: closed after the handshake deadline, with the reason.
    let mut raw = RawSignal::connect(&cluster.url(0, &token))
        .await
        .expect("upgraded");
    match raw.next(Duration::from_secs(15)).await.expect("a close") {
        Reply::Closed(Some(reason)) => assert!(reason.contains("send the join first"), "{reason}"),
        other => panic!("a silent client must be closed with a reason: {other:?}"),
    }

    // The healthy pair never noticed.
    let before = bob.remote_tracks().iter().map(|t| t.packets).sum::<u64>();
    wait_for("bob to keep receiving", Duration::from_secs(5), || async {
        let now = bob.remote_tracks().iter().map(|t| t.packets).sum::<u64>();
        (now > before + 20).then_some(())
    })
    .await;
    bob.assert_no_problems();
}

/// The session's node dies: the client's WebSocket through the gateway closes; once the
/// node's lease has taken the session with it, a rejoin through the gateway lands on the
/// other node, and media flows again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_after_the_node_died_lands_on_a_healthy_node() {
    let mut cluster = Cluster::start("gateway-failover", &["gw-fo-1", "gw-fo-2"], 1).await;
    let token = client_token("call");
    let url = cluster.url(0, &token);
    let alice = join(&url, "call", "alice").await;
    alice.publish(Media::BOTH).await.expect("alice publishes");
    let dead = cluster.session("call").await.expect("placed").node;
    cluster
        .agents
        .iter_mut()
        .find(|a| a.node_id == dead)
        .expect("the session's agent")
        .kill9();
    wait_for(
        "alice's WebSocket to close",
        Duration::from_secs(20),
        || async { alice.signal_closed() },
    )
    .await;
    alice.close().await;
    wait_for(
        "the dead node's session to lapse",
        Duration::from_secs(20),
        || async { cluster.session("call").await.is_none().then_some(()) },
    )
    .await;

    let alice = join(&url, "call", "alice").await;
    alice
        .publish(Media::BOTH)
        .await
        .expect("alice publishes again");
    let bob = join(&url, "call", "bob").await;
    bob.wait_flowing_from("alice").await;
    let record = cluster.session("call").await.expect("placed again");
    assert_ne!(record.node, dead, "placed on the dead node: {record:?}");
}

/// No node can take the session: the client gets a JSON-RPC error saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_no_node_can_take_gets_a_no_capacity_error() {
    let cluster = Cluster::start("gateway-full", &["gw-full-1"], 1).await;
    // A conference of 300 fits on no 2-vCPU test agent.
    let grant = ClientGrant {
        sid: "huge".to_owned(),
        class: Some(SessionClass::Conference),
        size: Some(300),
        role: None,
    };
    let secret = JoinSecret::new(SECRET).expect("a long secret");
    let token = issue_client(&secret, &grant, SystemTime::now(), Duration::from_secs(60));
    let error = Peer::join(
        &cluster.url(0, &token),
        "huge",
        "alice",
        JoinConfig::default(),
    )
    .await
    .err()
    .expect("the join is refused");
    assert!(format!("{error:#}").contains("no capacity"), "{error:#}");
    assert!(cluster.session("huge").await.is_none());
    // The demand is written for the autoscaler, as `ionctl place` writes it.
    let pending: Option<ion_cluster::model::PendingDemand> = cluster
        .store
        .get(&cluster.store.keys().pending("huge"))
        .await
        .expect("reading etcd");
    assert_eq!(pending.map(|p| p.size), Some(300));
}

/// `ionctl token issue` prints a client token the gateway accepts; without a secret it says
/// what to set.
#[tokio::test]
async fn ionctl_token_issue_prints_a_client_token() {
    let output = harness::ionctl_with_env(
        &[
            "token",
            "issue",
            "--session",
            "s1",
            "--class",
            "meeting",
            "--size",
            "20",
            "--role",
            "viewer",
        ],
        &[("IONCTL_JOIN_SECRET", SECRET)],
    )
    .await;
    assert!(output.status.success(), "{}", harness::stderr(&output));
    let token = harness::stdout(&output).trim().to_owned();
    let secret = JoinSecret::new(SECRET).expect("a long secret");
    let claims = ion_cluster::token::verify_client(&secret, Some(&token), SystemTime::now())
        .expect("a valid client token");
    assert_eq!(claims.sid, "s1");
    assert_eq!(claims.class, Some(SessionClass::Meeting));
    assert_eq!(claims.size, Some(20));
    assert_eq!(claims.role, Some(ion_cluster::placement::Role::Viewer));

    let output = harness::ionctl_with_env(&["token", "issue", "--session", "s1"], &[]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        harness::stderr(&output).contains("IONCTL_JOIN_SECRET"),
        "{}",
        harness::stderr(&output)
    );
}

/// 200 connections from one address against a cap of 100: the first 100 are taken, the rest
/// refused with 429 and the reason; a slot freed is usable again. (A healthy session beside
/// bad clients: `bad_clients_get_clear_errors_and_a_healthy_session_keeps_flowing`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_from_one_address_are_capped() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("gateway-cap");
    let gateway = ServeProcess::start_with(
        &etcd,
        &prefix,
        &[("IONCTL_JOIN_SECRET", SECRET)],
        &["--max-connections-per-ip", "100"],
    )
    .await;
    let url = format!(
        "ws://127.0.0.1:{}/ws?access_token={}",
        gateway.port,
        client_token("capped")
    );
    let mut open = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..200 {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => open.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned();
                refused.push((response.status().as_u16(), body));
            }
            Err(other) => panic!("an unexpected failure: {other}"),
        }
    }
    assert_eq!((open.len(), refused.len()), (100, 100));
    assert!(
        refused
            .iter()
            .all(|(status, body)| *status == 429 && body.contains("100 connections open")),
        "{:?}",
        refused.first()
    );
    open.pop();
    wait_for(
        "a freed slot to be usable",
        Duration::from_secs(5),
        || async {
            tokio_tungstenite::connect_async(url.as_str())
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
}

/// A new certificate in `dir`, and the root a client trusts it by.
fn write_certificate(dir: &std::path::Path) -> (TestCertificate, reqwest::Certificate) {
    let written = TestCertificate::write(dir);
    let root = reqwest::Certificate::from_pem(written.pem.as_bytes()).expect("a PEM certificate");
    (written, root)
}

fn trusting(root: reqwest::Certificate) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([root])
        .pool_idle_timeout(Duration::from_secs(120))
        .build()
        .expect("an HTTPS client")
}

/// `serve --tls-cert --tls-key` serves HTTPS with the certificate. Replacing the files: new
/// connections get the new certificate (a client trusting only the old one fails), and a
/// connection opened before stays up (its client, trusting only the old one, still gets
/// answers over it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificates_are_rotated_without_dropping_connections() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("gateway-tls");
    let dir = tempfile::tempdir().expect("a temp dir");
    let (files, old) = write_certificate(dir.path());
    let gateway = ServeProcess::start_with(
        &etcd,
        &prefix,
        &[("IONCTL_JOIN_SECRET", SECRET)],
        &files.serve_args(),
    )
    .await;
    let healthz = format!("{}/healthz", gateway.base_url());
    assert!(healthz.starts_with("https://"));
    let before = trusting(old.clone());
    let answer = before
        .get(&healthz)
        .send()
        .await
        .expect("HTTPS with the first certificate");
    assert_eq!(answer.status(), 200);

    let (_, new) = write_certificate(dir.path());
    wait_for(
        "new connections to get the new certificate",
        Duration::from_secs(15),
        || async {
            trusting(new.clone())
                .get(&healthz)
                .send()
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
    assert!(
        trusting(old).get(&healthz).send().await.is_err(),
        "a new connection still got the old certificate"
    );
    let answer = before
        .get(&healthz)
        .send()
        .await
        .expect("the connection opened before the rotation is still up");
    assert_eq!(answer.status(), 200);
}

/// One `join` → answer round trip over a fresh WebSocket to `url`, from the send to the
/// reply; `token` is the join token, for a join straight to an agent.
async fn join_round_trip(url: &str, sid: &str, uid: &str, token: Option<&str>) -> Duration {
    use futures_util::{SinkExt as _, StreamExt as _};
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connected");
    let mut join = harness::placeholder_join(sid, uid);
    if let Some(token) = token {
        join["params"]["token"] = token.into();
    }
    let join = join.to_string();
    let sent = std::time::Instant::now();
    ws.send(tokio_tungstenite::tungstenite::Message::text(join))
        .await
        .expect("sent");
    loop {
        match ws.next().await {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                let reply: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
                if reply.get("id").is_some() {
                    assert!(reply.get("result").is_some(), "{reply}");
                    let elapsed = sent.elapsed();
                    let _ = ws.close(None).await;
                    return elapsed;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("no answer to the join: {other:?}"),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at].as_secs_f64() * 1000.0
}

/// Not a test: the gateway's cost, run by `scripts/bench-gateway`. (1) `join` → answer
/// through the gateway against straight to the agent, alternated in one run
/// (`ION_BENCH_JOINS` each, default 200), into a session that exists, so no placement commit
/// is timed. (2) `ION_BENCH_IDLE` (default 1000) clients joined through the gateway and then
/// idle: the gateway's RSS and CPU over 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark; run scripts/bench-gateway"]
async fn gateway_cost_against_joining_the_agent_directly() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (joins, idle) = (env("ION_BENCH_JOINS", 200), env("ION_BENCH_IDLE", 1000));
    let cap = (idle + 10).to_string();
    let args = ["--max-connections-per-ip", &cap];
    let cluster = Cluster::start_with("gateway-bench", &["gw-bench-1"], 1, &args).await;
    let (agent, gateway) = (&cluster.agents[0], &cluster.gateways[0]);
    let grant = ClientGrant {
        sid: "bench".to_owned(),
        // Placed once; the agent admits joins beyond the placed size.
        class: Some(SessionClass::Group),
        size: Some(6),
        role: None,
    };
    let secret = JoinSecret::new(SECRET).expect("a long secret");
    let token = issue_client(
        &secret,
        &grant,
        SystemTime::now(),
        Duration::from_secs(3600),
    );
    let via_gateway = format!("ws://127.0.0.1:{}/ws?access_token={token}", gateway.port);
    let direct = format!("ws://127.0.0.1:{}/ws", agent.port);
    // The first join places the session; it is not timed.
    join_round_trip(&via_gateway, "bench", "warm", None).await;
    let node_token = ion_cluster::token::issue(
        &secret,
        "bench",
        "gw-bench-1",
        SystemTime::now(),
        Duration::from_secs(3600),
    );
    let (mut through, mut straight) = (Vec::new(), Vec::new());
    for i in 0..joins {
        through.push(join_round_trip(&via_gateway, "bench", &format!("g{i}"), None).await);
        let token = Some(node_token.as_str());
        straight.push(join_round_trip(&direct, "bench", &format!("d{i}"), token).await);
    }
    through.sort();
    straight.sort();
    let row = |name: &str, sorted: &[Duration]| {
        println!(
            "{name:<16} p50 {:>6.2} ms  p99 {:>6.2} ms",
            percentile(sorted, 0.5),
            percentile(sorted, 0.99)
        );
    };
    println!("join -> answer, {joins} each, alternated:");
    row("agent directly", &straight);
    row("through gateway", &through);
    println!(
        "ratio p50 {:.2}x  p99 {:.2}x",
        percentile(&through, 0.5) / percentile(&straight, 0.5),
        percentile(&through, 0.99) / percentile(&straight, 0.99)
    );

    let pid = gateway.pid();
    let rss_before = ion_cluster::loadtest::agent_cpu::rss_bytes(pid).expect("the gateway's RSS");
    let mut open = Vec::new();
    for i in 0..idle {
        use futures_util::{SinkExt as _, StreamExt as _};
        let (mut ws, _) = tokio_tungstenite::connect_async(via_gateway.as_str())
            .await
            .expect("connected");
        let join = harness::placeholder_join("bench", &format!("idle{i}")).to_string();
        ws.send(tokio_tungstenite::tungstenite::Message::text(join))
            .await
            .expect("sent");
        let _answer = ws.next().await;
        open.push(ws);
    }
    let cpu0 = ion_cluster::loadtest::agent_cpu::process_cpu_seconds(Some(pid)).expect("CPU");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = ion_cluster::loadtest::agent_cpu::process_cpu_seconds(Some(pid)).expect("CPU") - cpu0;
    let rss = ion_cluster::loadtest::agent_cpu::rss_bytes(pid).expect("the gateway's RSS");
    let metrics = harness::http_get(gateway.port, "/metrics").await;
    let still_open = harness::sample(&metrics, "ionctl_gateway_connections").unwrap_or(0.0);
    println!(
        "{still_open} of {idle} idle proxied connections still open at the end (the agent drops \
         a participant that never connects after 30 s)"
    );
    println!(
        "{idle} idle proxied connections: gateway RSS {:.1} MiB ({:.1} MiB before, {:.1} KiB \
         each), CPU {:.2}% of a core over 10 s",
        rss as f64 / 1048576.0,
        rss_before as f64 / 1048576.0,
        (rss.saturating_sub(rss_before)) as f64 / 1024.0 / idle.max(1) as f64,
        cpu / 10.0 * 100.0
    );
    drop(open);
}

/// A client that vanishes without closing (it stops reading, so it answers no ping): the
/// gateway closes it after `--client-timeout` and its node connection with it, so the
/// participant leaves the node (the node cannot tell by itself: the gateway answers its
/// pings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_client_is_closed_and_leaves_its_node() {
    let args = ["--client-timeout", "2s"];
    let cluster = Cluster::start_with("gateway-silent", &["gw-silent-1"], 1, &args).await;
    let store = &cluster.store;
    let url = cluster.url(0, &client_token("silent"));
    let mut raw = RawSignal::connect(&url).await.expect("upgraded");
    raw.send_text(harness::placeholder_join("silent", "ghost").to_string())
        .await
        .expect("sent");
    let reply = raw.next(Duration::from_secs(10)).await.expect("the answer");
    assert!(
        matches!(&reply, Reply::Json(r) if r.get("result").is_some()),
        "{reply:?}"
    );
    let key = store.keys().session("silent");
    assert!(
        store
            .get::<SessionRecord>(&key)
            .await
            .expect("etcd")
            .is_some()
    );
    // From here the client reads nothing, so it answers no ping.
    wait_for(
        "the node to see the vanished client leave (its session key deleted)",
        Duration::from_secs(15),
        || async {
            store
                .get::<SessionRecord>(&key)
                .await
                .ok()
                .flatten()
                .is_none()
                .then_some(())
        },
    )
    .await;
    drop(raw);
}

/// An agent alone (a one-node set-up) serves its signaling port over TLS with `[signal]
/// tls_cert` and `tls_key`, and registers a `wss://` signal URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_serves_its_signaling_port_over_tls() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("agent-tls");
    let store = etcd.store(&prefix).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let (files, root) = write_certificate(dir.path());
    let spec = AgentSpec::new("tls-node")
        .set("signal", "tls_cert", files.cert.to_str().expect("UTF-8"))
        .set("signal", "tls_key", files.key.to_str().expect("UTF-8"));
    let agent = AgentProcess::start(&etcd, &prefix, spec);
    let record = wait_for("the agent to register", Duration::from_secs(15), || async {
        store
            .get::<NodeRecord>(&store.keys().node("tls-node"))
            .await
            .ok()
            .flatten()
    })
    .await;
    assert!(
        record.signal_url.starts_with("wss://"),
        "{}",
        record.signal_url
    );
    let metrics = trusting(root)
        .get(format!("https://127.0.0.1:{}/metrics", agent.port))
        .send()
        .await
        .expect("HTTPS on the signaling port");
    assert_eq!(metrics.status(), 200);
    let plain = reqwest::get(format!("http://127.0.0.1:{}/metrics", agent.port)).await;
    assert!(
        plain.is_err() || !plain.expect("checked").status().is_success(),
        "plain HTTP must not be served beside TLS"
    );
}
