//! `ionctl loadtest` end to end: the real binary against a real `ion-agent` on a real etcd.
//! A short run must receive every track and nearly every packet and report CPU figures; an
//! unreachable URL, a silent server and a refused join must end quickly with a clear error
//! and a non-zero exit; `--place` joins the node the placer picks, with its token.

mod harness;

use std::time::{Duration, Instant};

use harness::{AgentProcess, AgentSpec, Etcd, free_port, ionctl_with_env, unique_prefix, wait_for};
use ion_cluster::model::NodeRecord;
use serde_json::Value;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";
/// The exit code of an unreachable agent or a refused join (see `ionctl --help`).
const AGENT_UNREACHABLE: i32 = 7;

/// etcd, one agent on it, and a store on its prefix; the agent stops before etcd does.
struct Node {
    agent: AgentProcess,
    prefix: String,
    etcd: Etcd,
}

impl Node {
    async fn start(test: &str, spec: AgentSpec) -> Node {
        let etcd = Etcd::start().await;
        let prefix = unique_prefix(test);
        let store = etcd.store(&prefix).await;
        let node_id = spec.node_id.clone();
        let agent = AgentProcess::start(&etcd, &prefix, spec);
        let key = store.keys().node(&node_id);
        wait_for("the agent to register", Duration::from_secs(15), || async {
            store.get::<NodeRecord>(&key).await.ok().flatten()
        })
        .await;
        Node {
            agent,
            prefix,
            etcd,
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.agent.port)
    }
}

async fn loadtest(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String, Duration) {
    let started = Instant::now();
    let mut all = vec!["loadtest"];
    all.extend_from_slice(args);
    let output = ionctl_with_env(&all, env).await;
    (
        output.status.code(),
        harness::stdout(&output),
        harness::stderr(&output),
        started.elapsed(),
    )
}

fn json(stdout: &str, stderr: &str) -> Value {
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}\nstderr: {stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_loadtest_receives_every_track_and_reports_cpu() {
    let node = Node::start("loadtest", AgentSpec::new("lt-1")).await;
    let url = node.url();
    let (code, stdout, stderr, _) = loadtest(
        &[
            "--url",
            &url,
            "--publishers",
            "1",
            "--subscribers",
            "4",
            "--duration",
            "5s",
            "-o",
            "json",
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(0), "stderr: {stderr}\nstdout: {stdout}");
    let report = json(&stdout, &stderr);
    assert_eq!(report["schema"], "ionctl.loadtest/v1");
    let summary = &report["summary"];
    // One publisher of video and audio, four subscribers: 8 tracks.
    assert_eq!(summary["tracks_expected"], 8, "{summary}");
    assert_eq!(summary["tracks_received"], 8, "{summary}");
    let expected = summary["packets_expected"].as_u64().expect("a count");
    let received = summary["packets_received"].as_u64().expect("a count");
    assert!(expected > 0, "{summary}");
    assert!(received * 100 >= expected * 95, "{received} of {expected}");
    assert!(summary["latency_p99_ms"].as_f64().is_some(), "{summary}");

    let agent = &report["agent"];
    assert_eq!(agent["cpu_source"], "proc", "{agent}");
    assert_eq!(agent["pid"], node.agent.pid(), "{agent}");
    assert!(agent["cpu_seconds"].as_f64().is_some(), "{agent}");
    assert!(
        agent["rss_bytes"].as_u64().is_some_and(|b| b > 0),
        "{agent}"
    );
    assert_eq!(agent["packets_source"], "metrics", "{agent}");
    assert!(agent["packets_forwarded"].as_f64().is_some_and(|p| p > 0.0));
    assert!(
        agent["packets_per_core_second"].as_f64().is_some(),
        "{agent}"
    );
    assert!(agent["cpu_seconds_per_million_packets"].as_f64().is_some());
    assert!(report["client"]["cpu_seconds"].as_f64().is_some());

    let rows = report["publisher_tracks"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(report["tracks"].as_array().expect("rows").len(), 8);
}

#[tokio::test]
async fn an_unreachable_agent_fails_fast_with_a_clear_error() {
    // Nobody listens on a closed port: refused at once.
    let url = format!("ws://127.0.0.1:{}/ws", free_port());
    let (code, stdout, stderr, _) =
        loadtest(&["--url", &url, "--subscribers", "1", "-o", "json"], &[]).await;
    assert_eq!(code, Some(AGENT_UNREACHABLE), "{stderr}");
    assert!(stderr.contains("cannot reach the agent"), "{stderr}");
    assert!(stderr.contains(&url), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");

    // A server that accepts the connection and never answers: the command gives up by itself
    // (its connect deadline is 5 s; the bound here leaves room for a slow machine).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a silent listener");
    let url = format!("ws://{}/ws", silent.local_addr().expect("its address"));
    let (code, _, stderr, elapsed) = tokio::time::timeout(
        Duration::from_secs(20),
        loadtest(&["--url", &url, "--subscribers", "1"], &[]),
    )
    .await
    .expect("ionctl gave up by itself");
    assert_eq!(code, Some(AGENT_UNREACHABLE), "{stderr}");
    assert!(stderr.contains("no answer within"), "{stderr}");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_join_names_the_agents_reason() {
    let node = Node::start(
        "loadtest-auth",
        AgentSpec::new("lt-auth-1")
            .set("auth", "enabled", true)
            .set("auth", "secret", SECRET),
    )
    .await;
    let url = node.url();
    let (code, stdout, stderr, _) =
        loadtest(&["--url", &url, "--subscribers", "1", "-o", "json"], &[]).await;
    assert_eq!(code, Some(AGENT_UNREACHABLE), "{stderr}");
    assert!(stderr.contains("refused the join"), "{stderr}");
    assert!(stderr.contains("no token"), "the agent's reason: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn place_joins_the_placed_node_with_its_token() {
    let node = Node::start(
        "loadtest-place",
        AgentSpec::new("lt-place-1")
            .set("auth", "enabled", true)
            .set("auth", "secret", SECRET),
    )
    .await;
    let endpoint = node.etcd.endpoint();
    let (code, stdout, stderr, _) = loadtest(
        &[
            "--place",
            "--etcd",
            &endpoint,
            "--prefix",
            &node.prefix,
            "--publishers",
            "2",
            "--subscribers",
            "1",
            "--duration",
            "2s",
            "-o",
            "json",
        ],
        &[("IONCTL_JOIN_SECRET", SECRET)],
    )
    .await;
    assert_eq!(code, Some(0), "stderr: {stderr}\nstdout: {stdout}");
    let report = json(&stdout, &stderr);
    assert_eq!(report["config"]["node"], "lt-place-1");
    assert_eq!(report["config"]["url"], node.url());
    // Two publishers of two tracks each: each receives the other's 2, the subscriber 4.
    assert_eq!(report["summary"]["tracks_expected"], 8);
    assert_eq!(
        report["summary"]["tracks_received"], 8,
        "{}",
        report["summary"]
    );
    assert!(stderr.contains("placed group"), "{stderr}");
}

/// The agent's own `process_cpu_seconds_total`, read the way a remote load test reads it.
async fn agent_cpu_from_metrics(port: u16) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("the agent answers /metrics")
        .text()
        .await
        .expect("a body");
    ion_cluster::loadtest::agent_cpu::metric(&text, "process_cpu_seconds_total")
        .unwrap_or_else(|| panic!("no process_cpu_seconds_total in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_cpu_can_come_from_its_own_metrics() {
    let node = Node::start("loadtest-metrics-cpu", AgentSpec::new("lt-m")).await;
    let url = node.url();
    let (code, stdout, stderr, _) = loadtest(
        &[
            "--url",
            &url,
            "--subscribers",
            "2",
            "--duration",
            "3s",
            "--agent-cpu",
            "metrics",
            "-o",
            "json",
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(0), "stderr: {stderr}\nstdout: {stdout}");
    let report = json(&stdout, &stderr);
    let agent = &report["agent"];
    assert_eq!(agent["cpu_source"], "metrics", "{agent}");
    assert!(
        agent["cpu_seconds"].as_f64().is_some_and(|s| s > 0.0),
        "forwarding for 3 s costs some CPU: {agent}"
    );
    assert!(
        agent["packets_per_core_second"].as_f64().is_some(),
        "{agent}"
    );
    assert!(
        agent["rss_bytes"].as_u64().is_some_and(|b| b > 0),
        "{agent}"
    );

    // The figure is the agent process's own: bracketed by /proc/<pid>/stat read just before
    // and just after the scrape (both count whole clock ticks).
    let pid = Some(node.agent.pid());
    let before = ion_cluster::loadtest::agent_cpu::process_cpu_seconds(pid).expect("/proc");
    let exposed = agent_cpu_from_metrics(node.agent.port).await;
    let after = ion_cluster::loadtest::agent_cpu::process_cpu_seconds(pid).expect("/proc");
    assert!(
        before - 0.011 <= exposed && exposed <= after + 0.011,
        "/proc said {before} then {after}, /metrics said {exposed}"
    );
}

/// `--place` for a session that spans nodes: placement splits the livestream over both
/// agents, and each viewer is placed with role viewer (and its uid) and joins the node it is
/// given, with that node's token; the report shows what the viewers of each node received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn place_routes_the_viewers_of_a_split_livestream_to_its_nodes() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("loadtest-span");
    let store = etcd.store(&prefix).await;
    // 10 units each, 8 for a livestream: 12 viewers need both (7 on the origin, 6 on the edge).
    let small = |id: &str| {
        let mut spec = AgentSpec::new(id)
            .set("auth", "enabled", true)
            .set("auth", "secret", SECRET);
        spec.units_per_vcpu = 5;
        spec
    };
    let _agents: Vec<AgentProcess> = ["span-a", "span-b"]
        .into_iter()
        .map(|id| AgentProcess::start(&etcd, &prefix, small(id)))
        .collect();
    harness::wait_registered(&store, &["span-a", "span-b"]).await;
    let endpoint = etcd.endpoint();
    let (code, stdout, stderr, _) = loadtest(
        &[
            "--place",
            "--etcd",
            &endpoint,
            "--prefix",
            &prefix,
            "--class",
            "livestream",
            "--subscribers",
            "12",
            "--duration",
            "3s",
            "-o",
            "json",
        ],
        &[("IONCTL_JOIN_SECRET", SECRET)],
    )
    .await;
    assert_eq!(code, Some(0), "stderr: {stderr}\nstdout: {stdout}");
    let report = json(&stdout, &stderr);
    let summary = &report["summary"];
    assert_eq!(summary["tracks_received"], 24, "{summary}");
    let nodes = report["nodes"].as_array().expect("a row per node");
    let on: Vec<(&str, u64)> = nodes
        .iter()
        .map(|n| {
            (
                n["node"].as_str().expect("a node id"),
                n["subscribers"].as_u64().expect("a count"),
            )
        })
        .collect();
    assert_eq!(on.len(), 2, "viewers on both nodes: {nodes:?}");
    assert!(on.iter().all(|(_, viewers)| *viewers > 0), "{nodes:?}");
    for node in nodes {
        let expected = node["packets_expected"].as_u64().expect("a count");
        let received = node["packets_received"].as_u64().expect("a count");
        assert!(
            expected > 0 && received * 100 >= expected * 95,
            "{node}: {received} of {expected}"
        );
    }
}
