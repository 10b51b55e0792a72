//! The node registry end to end: real etcd, real `ion-agent` processes, the real `ionctl`.

mod harness;

use std::time::{Duration, Instant, SystemTime};

use harness::{AgentProcess, AgentSpec, Etcd, ionctl, stderr, stdout, unique_prefix, wait_for};
use ion_cluster::model::NodeRecord;
use ion_cluster::store::Store;

async fn node(store: &Store, id: &str) -> Option<NodeRecord> {
    store
        .get(&store.keys().node(id))
        .await
        .expect("reading the node key")
}

async fn registered(store: &Store, id: &str) -> NodeRecord {
    wait_for(
        &format!("node {id} to register"),
        Duration::from_secs(15),
        || node(store, id),
    )
    .await
}

#[tokio::test]
async fn agent_registers_and_ionctl_nodes_shows_it() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("register");
    let store = etcd.store(&prefix).await;
    let spec = AgentSpec {
        vcpus: 4,
        units_per_vcpu: 120,
        machine_type: "n2-highcpu-4".to_owned(),
        ..AgentSpec::new("reg-1")
    };
    let agent = AgentProcess::start(&etcd, &prefix, spec);
    registered(&store, "reg-1").await;

    let output = ionctl(&[
        "nodes",
        "-o",
        "json",
        "--etcd",
        &etcd.endpoint(),
        "--prefix",
        &prefix,
    ])
    .await;
    assert!(
        output.status.success(),
        "ionctl failed: {}",
        stderr(&output)
    );
    let nodes: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    let nodes = nodes.as_array().expect("a JSON array");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let n = &nodes[0];
    assert_eq!(n["id"], "reg-1");
    assert_eq!(n["state"], "ready");
    assert_eq!(n["machine_type"], "n2-highcpu-4");
    assert_eq!(n["zone"], "test-zone-a");
    assert_eq!(n["vcpus"], 4);
    assert_eq!(n["capacity"], 480);
    assert_eq!(n["load"]["capacity"], 480);
    assert_eq!(n["signal_url"], format!("ws://127.0.0.1:{}/ws", agent.port));
    let age = n["stats_age_secs"].as_f64().expect("stats age");
    assert!(age < 12.0, "stats are {age}s old");
    let cpu = n["stats"]["cpu"].as_f64().expect("cpu");
    assert!((0.0..=1.0).contains(&cpu), "cpu {cpu}");
    assert!(n["stats"]["mem_total_bytes"].as_u64().expect("mem") > 0);

    // The same through the table, with --etcd before the subcommand this time.
    let output = ionctl(&["--etcd", &etcd.endpoint(), "--prefix", &prefix, "nodes"]).await;
    assert!(
        output.status.success(),
        "ionctl failed: {}",
        stderr(&output)
    );
    let table = stdout(&output);
    let mut lines = table.lines();
    let header = lines.next().expect("a header line");
    for column in [
        "ID",
        "STATE",
        "MACHINE TYPE",
        "VCPUS",
        "CPU",
        "LOAD",
        "SESSIONS",
        "PEERS",
        "STATS AGE",
    ] {
        assert!(header.contains(column), "{column} missing from {header:?}");
    }
    let row = lines.next().expect("a node row");
    assert!(row.starts_with("reg-1 "), "{row:?}");
    assert!(row.contains("/480 ("), "{row:?}");
}

#[tokio::test]
async fn a_busy_host_raises_host_cpu_but_not_the_agents_load() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("cpu");
    let store = etcd.store(&prefix).await;
    let _agent = AgentProcess::start(&etcd, &prefix, AgentSpec::new("cpu-1"));
    registered(&store, "cpu-1").await;

    // Load every core, so the whole-machine fraction must rise whatever else runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let burners: Vec<_> = (0..cores)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            })
        })
        .collect();
    let started = Instant::now();
    let busy = wait_for("reported CPU above 70%", Duration::from_secs(8), || async {
        node(&store, "cpu-1")
            .await
            .filter(|n| n.stats.cpu >= 0.7 && n.updated_at > SystemTime::now() - started.elapsed())
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for burner in burners {
        burner.join().expect("burner thread");
    }
    // The burners are this test's threads, not the agent: the host is busy, the agent is
    // not, and observed_units follows the agent's own CPU.
    let expected = busy.stats.agent_cpu * f64::from(busy.capacity);
    assert!(
        (busy.stats.observed_units - expected).abs() < 1e-6,
        "{busy:?}"
    );
    assert!(busy.stats.agent_cpu < 0.3, "{:?}", busy.stats);
    assert!(busy.stats.other_cpu >= 0.5, "{:?}", busy.stats);
}

#[tokio::test]
async fn killed_agent_expires_within_ttl() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("kill9");
    let store = etcd.store(&prefix).await;
    let mut agent = AgentProcess::start(&etcd, &prefix, AgentSpec::new("kill-1"));
    registered(&store, "kill-1").await;

    agent.kill9();
    let killed = Instant::now();
    // TTL 10 s + 2 s.
    wait_for(
        "the node key to expire",
        Duration::from_secs(12),
        || async { node(&store, "kill-1").await.is_none().then_some(()) },
    )
    .await;
    eprintln!("node key gone {:?} after SIGKILL", killed.elapsed());
}

#[tokio::test]
async fn agent_registers_again_after_etcd_restart() {
    let mut etcd = Etcd::start().await;
    let prefix = unique_prefix("etcd-restart");
    let store = etcd.store(&prefix).await;
    let agent = AgentProcess::start(&etcd, &prefix, AgentSpec::new("phoenix-1"));
    registered(&store, "phoenix-1").await;
    drop(store);

    etcd.kill();
    // Wait until the agent has noticed, so the restart is really a recovery.
    wait_for(
        "the agent to notice etcd is gone",
        Duration::from_secs(15),
        || async {
            agent
                .log()
                .contains("lost the etcd registration")
                .then_some(())
        },
    )
    .await;
    etcd.restart().await;
    let restarted = SystemTime::now();
    let store = etcd.store(&prefix).await;

    let record = wait_for(
        "a fresh node record after the restart",
        Duration::from_secs(15),
        || async {
            node(&store, "phoenix-1")
                .await
                .filter(|n| n.updated_at >= restarted)
        },
    )
    .await;
    assert_eq!(record.id, "phoenix-1");
    let nodes = store.nodes().await.expect("listing nodes");
    assert_eq!(nodes.items.len(), 1, "duplicate nodes: {:?}", nodes.items);
    assert!(agent.log().contains("registered in etcd"));
}

#[tokio::test]
async fn sigterm_removes_the_node_at_once() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("sigterm");
    let store = etcd.store(&prefix).await;
    let mut agent = AgentProcess::start(&etcd, &prefix, AgentSpec::new("term-1"));
    registered(&store, "term-1").await;

    agent.signal("TERM");
    let sent = Instant::now();
    // "At once": far below the 10 s TTL that a crash would take.
    wait_for(
        "the node key to be revoked",
        Duration::from_secs(2),
        || async { node(&store, "term-1").await.is_none().then_some(()) },
    )
    .await;
    eprintln!("node key gone {:?} after SIGTERM", sent.elapsed());
    let status = agent.wait_exit(Duration::from_secs(5)).await;
    assert!(status.success(), "agent exited with {status}");
}

#[tokio::test]
async fn stats_write_budget_holds_in_steady_state() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("budget");
    let store = etcd.store(&prefix).await;
    let _agent = AgentProcess::start(&etcd, &prefix, AgentSpec::new("budget-1"));
    let first = registered(&store, "budget-1").await;
    let key = store.keys().node("budget-1");

    // Every write of the node key over 30 s, from a watch: a revision is a write.
    let listed = store.nodes().await.expect("listing nodes");
    let mut watch = store
        .watch::<NodeRecord>(&store.keys().nodes(), listed.revision)
        .await
        .expect("watching nodes");
    let mut records = vec![node(&store, "budget-1").await.unwrap_or(first)];
    let window = Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + window;
    loop {
        match tokio::time::timeout_at(deadline, watch.next()).await {
            Err(_elapsed) => break,
            Ok(changes) => {
                for change in changes.expect("the watch stays up") {
                    match change {
                        ion_cluster::store::Change::Put { record, .. } => records.push(record),
                        other => panic!("unexpected change to {key}: {other:?}"),
                    }
                }
            }
        }
    }
    let writes = records.len() - 1;
    eprintln!("{writes} writes of {key} in {window:?}");

    // Never two writes within 2 s; an early write (before the 10 s heartbeat) only when a
    // stat moved past its threshold; and the heartbeat keeps stats fresh.
    for pair in records.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let gap = after
            .updated_at
            .duration_since(before.updated_at)
            .expect("time moves on");
        assert!(
            gap >= Duration::from_millis(1950),
            "writes {gap:?} apart: {before:?} {after:?}"
        );
        if gap < Duration::from_millis(9900) {
            let (a, b) = (&before.stats, &after.stats);
            // The budget watches the host's CPU, the agent's and the rest of the host's.
            let moved = [
                (a.cpu, b.cpu),
                (a.agent_cpu, b.agent_cpu),
                (a.other_cpu, b.other_cpu),
            ]
            .iter()
            .any(|(x, y)| (x - y).abs() >= 0.10 - 1e-9)
                || a.mem_used_bytes.abs_diff(b.mem_used_bytes) as f64
                    >= 0.05 * b.mem_total_bytes as f64 - 1.0
                || (a.sessions, a.peers, a.tracks_in, a.tracks_out)
                    != (b.sessions, b.peers, b.tracks_in, b.tracks_out);
            assert!(
                moved,
                "early write after {gap:?} without a moved stat: {a:?} -> {b:?}"
            );
        }
        assert!(
            gap <= Duration::from_millis(11_500),
            "stats went {gap:?} without a write"
        );
    }
    assert!(
        writes >= 2,
        "only {writes} writes in {window:?}: the heartbeat is missing"
    );
    assert!(
        writes <= 15,
        "{writes} writes in {window:?} exceed one per 2 s"
    );
}

#[tokio::test]
async fn ionctl_reports_unreachable_etcd_with_exit_code_3() {
    // Refused: nothing listens on the port.
    let port = harness::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let output = ionctl(&["nodes", "--etcd", &endpoint, "--connect-timeout", "2s"]).await;
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "one line expected: {message}");
    assert!(message.contains(&endpoint), "{message}");
    assert!(message.contains("Connection refused"), "{message}");
    assert!(message.contains("--etcd"), "{message}");
    assert!(output.stdout.is_empty());

    // Silent: a socket that accepts connections but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("binding");
    let endpoint = format!("http://{}", silent.local_addr().expect("address"));
    let started = Instant::now();
    let output = ionctl(&[
        "sessions",
        "-o",
        "json",
        "--etcd",
        &endpoint,
        "--connect-timeout",
        "1s",
    ])
    .await;
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert!(
        took < Duration::from_secs(4),
        "took {took:?} with a 1 s timeout"
    );
    let message = stderr(&output);
    assert!(message.contains(&endpoint), "{message}");
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn agent_registers_again_when_its_lease_is_revoked() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("lease-lost");
    let store = etcd.store(&prefix).await;
    let _agent = AgentProcess::start(&etcd, &prefix, AgentSpec::new("lease-1"));
    registered(&store, "lease-1").await;
    let key = store.keys().node("lease-1");
    let rev = store.keys().placement_rev("lease-1");
    let lease_of = |store: &Store, key: &str| {
        let mut client = store.client();
        let key = key.to_owned();
        async move {
            let response = client.get(key, None).await.expect("get");
            response.kvs().first().map(|kv| kv.lease())
        }
    };
    let old = lease_of(&store, &key)
        .await
        .expect("the node key has a lease");
    // Registering created the node's placement revision key on the node's lease, so that it
    // goes with the node (docs/placement.md).
    assert_eq!(lease_of(&store, &rev).await, Some(old));

    // Someone (an operator, a bug, etcd's own expiry after a long pause) ends the lease.
    store.revoke_lease(old).await.expect("revoking");
    let new = wait_for(
        "registration on a new lease",
        Duration::from_secs(10),
        || async { lease_of(&store, &key).await.filter(|lease| *lease != old) },
    )
    .await;
    assert_ne!(new, 0);
    assert_eq!(lease_of(&store, &rev).await, Some(new));
    assert_eq!(store.nodes().await.expect("listing").items.len(), 1);
}
