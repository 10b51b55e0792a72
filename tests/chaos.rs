//! A chaos run: for `ION_CHAOS_SECS` (40 in the suite; `scripts/chaos` runs longer),
//! placements from several `ionctl` processes at once, participants joining what was placed,
//! agents starting and stopping, `kill -9` of agents, etcd killed and restarted, drains and
//! undrains, all chosen by a seeded RNG (`ION_CHAOS_SEED` replays a run's choices). Every few
//! seconds, and at the end, the cluster's invariants are checked from one etcd revision:
//! no node above its class headroom by committed demand (in commit order), no session owned
//! by two nodes, no live session on a node that is gone, no reservation outliving its TTL on
//! a gone node, and every placement answered (placed, pending, or a clear refusal).

mod harness;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use etcd_client::GetOptions;
use futures_util::SinkExt;
use harness::{AgentProcess, AgentSpec, Etcd, placeholder_join, unique_prefix};
use ion_cluster::capacity::ClassSpec;
use ion_cluster::model::SessionState;
use ion_cluster::store::Store;
use tokio_tungstenite::tungstenite::Message;

/// How long a placement's reservation lives before an agent claims it.
const RESERVATION_TTL: Duration = Duration::from_secs(10);
const LEASE_TTL: &str = "3s";
const MAX_AGENTS: usize = 5;

/// What happened, by kind, for the closing summary.
#[derive(Default)]
struct Tally {
    operations: BTreeMap<&'static str, u32>,
    faults: BTreeMap<&'static str, u32>,
    answers: BTreeMap<String, u32>,
    checks: u32,
    violations: Vec<String>,
}

impl Tally {
    fn op(&mut self, name: &'static str) {
        *self.operations.entry(name).or_default() += 1;
    }
    fn fault(&mut self, name: &'static str) {
        *self.faults.entry(name).or_default() += 1;
    }
}

struct Cluster {
    etcd: Etcd,
    prefix: String,
    agents: HashMap<String, (AgentProcess, u16)>,
    next_agent: u32,
}

impl Cluster {
    fn start_agent(&mut self, rng: &mut fastrand::Rng) {
        let id = format!("chaos-{}", self.next_agent);
        self.next_agent += 1;
        let mut spec = AgentSpec::new(&id)
            .set("report", "lease_ttl", LEASE_TTL)
            .set("cluster", "shutdown_grace", "2s")
            .set("signal", "allow_unplaced", false);
        spec.vcpus = [1, 2, 4][rng.usize(..3)];
        let agent = AgentProcess::start(&self.etcd, &self.prefix, spec);
        let port = agent.port;
        self.agents.insert(id, (agent, port));
    }

    fn pick(&self, rng: &mut fastrand::Rng) -> Option<String> {
        let mut ids: Vec<&String> = self.agents.keys().collect();
        ids.sort();
        (!ids.is_empty()).then(|| ids[rng.usize(..ids.len())].clone())
    }

    fn ionctl_args(&self, command: &[&str]) -> Vec<String> {
        let mut args = vec![
            "--etcd".to_owned(),
            self.etcd.endpoint(),
            "--prefix".to_owned(),
            self.prefix.clone(),
            "--connect-timeout".to_owned(),
            "2s".to_owned(),
        ];
        args.extend(command.iter().map(|s| (*s).to_owned()));
        args
    }
}

/// Runs one `ionctl place` and sorts its answer; a placed session may get a participant
/// who stays for a while.
async fn place(
    args: Vec<String>,
    ports: HashMap<String, u16>,
    join_for: Option<Duration>,
    tally: Arc<Mutex<Tally>>,
) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = harness::ionctl(&refs).await;
    let stderr = harness::stderr(&out);
    let answer = match out.status.code() {
        Some(0) => "placed",
        Some(4) => "pending (no capacity)",
        Some(3) => "refused: etcd unreachable",
        Some(1 | 2) if stderr.trim().lines().count() == 1 => "refused with a reason",
        code => {
            let line = format!("place answered {code:?} without one clear line: {stderr}");
            tally.lock().unwrap().violations.push(line);
            "unclear"
        }
    };
    *tally
        .lock()
        .unwrap()
        .answers
        .entry(answer.to_owned())
        .or_default() += 1;
    let (Some(stay), "placed") = (join_for, answer) else {
        return;
    };
    let Ok(placed) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return;
    };
    let (Some(node), Some(sid)) = (placed["node"].as_str(), placed["sid"].as_str()) else {
        return;
    };
    let Some(port) = ports.get(node) else { return };
    // The agent may be killed or draining meanwhile; what matters is what etcd shows.
    if let Ok((mut ws, _)) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws")).await
    {
        let join = placeholder_join(sid, "chaos-participant").to_string();
        if ws.send(Message::text(join)).await.is_ok() {
            tally.lock().unwrap().op("participant joins");
            tokio::time::sleep(stay).await;
        }
    }
}

/// Checks the invariants at one etcd revision; returns what is wrong. `etcd_started`: when
/// etcd last started, which renews every lease (a new leader extends them all by their TTL).
async fn violations(store: &Store, etcd_started: SystemTime) -> Option<Vec<String>> {
    let snapshot = store.snapshot().await.ok()?;
    let prefix = store.keys().placements();
    let placements = store
        .client()
        .get(
            prefix.as_str(),
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_revision(snapshot.revision),
            ),
        )
        .await
        .ok()?;
    let nodes: BTreeMap<&str, _> = snapshot.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let sessions: BTreeMap<&str, _> = snapshot
        .sessions
        .iter()
        .map(|s| (s.sid.as_str(), s))
        .collect();
    let mut found = Vec::new();
    let at = snapshot.revision;
    let mut index: Vec<harness::Placed> = Vec::new();
    for kv in placements.kvs() {
        let key = kv.key_str().unwrap_or_default();
        let Some((node, sid)) = key[prefix.len()..].split_once('/') else {
            found.push(format!("rev {at}: placement key {key} is not node/sid"));
            continue;
        };
        let demand = kv
            .value_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        index.push((
            kv.create_revision(),
            node.to_owned(),
            sid.to_owned(),
            demand,
        ));
    }
    let mut owner_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (_, node, sid, _) in &index {
        if let Some(other) = owner_of.insert(sid, node)
            && other != node
        {
            found.push(format!("rev {at}: session {sid} is on {other} and {node}"));
        }
        match sessions.get(sid.as_str()) {
            Some(session) if session.node != *node => found.push(format!(
                "rev {at}: session {sid}'s record names {} but its index is under {node}",
                session.node
            )),
            Some(_) => {}
            None => found.push(format!("rev {at}: index {node}/{sid} without a session")),
        }
    }
    let now = SystemTime::now();
    for session in sessions.values() {
        if nodes.contains_key(session.node.as_str()) {
            continue;
        }
        let age = now
            .duration_since(session.created_at.max(etcd_started))
            .unwrap_or_default();
        match session.state {
            SessionState::Live => found.push(format!(
                "rev {at}: live session {} on {}, which is gone",
                session.sid, session.node
            )),
            _ if age > RESERVATION_TTL + Duration::from_secs(5) => found.push(format!(
                "rev {at}: reservation {} on gone node {} outlived its TTL: {age:?} since it \
                 was made or etcd last started",
                session.sid, session.node
            )),
            _ => {}
        }
    }
    let (_, overbooked) = harness::commit_order(&mut index, |node, sid| {
        let (record, session) = (nodes.get(node)?, sessions.get(sid)?);
        let class = session.class;
        Some((ClassSpec::of(class).limit(record.capacity), class))
    });
    found.extend(
        overbooked
            .into_iter()
            .map(|line| format!("rev {at}: {line}")),
    );
    Some(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaos_run_keeps_every_invariant() {
    let secs: u64 = std::env::var("ION_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var("ION_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("chaos: seed {seed} for {secs} s (ION_CHAOS_SEED={seed} replays its choices)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let prefix = unique_prefix("chaos");
    let mut cluster = Cluster {
        etcd: Etcd::start().await,
        prefix: prefix.clone(),
        agents: HashMap::new(),
        next_agent: 0,
    };
    let store = cluster.etcd.store(&prefix).await;
    for _ in 0..3 {
        cluster.start_agent(&mut rng);
    }
    let first: Vec<String> = cluster.agents.keys().cloned().collect();
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    harness::wait_registered(&store, &first).await;

    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut placing = tokio::task::JoinSet::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut next_check = started + Duration::from_secs(3);
    let mut last_etcd_restart = started;
    let mut etcd_started = SystemTime::now();
    let mut etcd_restarts = 0u32;
    let mut etcd_down_until: Option<Instant> = None;
    let mut sid = 0u32;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if etcd_down_until.is_some_and(|until| Instant::now() >= until) {
            etcd_down_until = None;
            cluster.etcd.restart().await;
            last_etcd_restart = Instant::now();
            etcd_started = SystemTime::now();
        }
        // A run of any length restarts etcd at least once, half-way, if chance has not.
        let etcd_due = etcd_restarts == 0 && started.elapsed() > Duration::from_secs(secs / 2);
        let roll = if etcd_due { 80 } else { rng.u32(..100) };
        match roll {
            // Placements from several processes at once.
            0..=54 => {
                for _ in 0..rng.usize(1..=3) {
                    sid += 1;
                    let (class, size) = if rng.bool() {
                        ("group", rng.u32(2..=6))
                    } else {
                        ("meeting", rng.u32(2..=50))
                    };
                    let args = cluster.ionctl_args(&[
                        "place",
                        "--class",
                        class,
                        "--size",
                        &size.to_string(),
                        "--session",
                        &format!("s{sid}"),
                        "--reservation-ttl",
                        "10s",
                        "-o",
                        "json",
                    ]);
                    let ports = cluster
                        .agents
                        .iter()
                        .map(|(id, (_, port))| (id.clone(), *port))
                        .collect();
                    let join_for = rng
                        .bool()
                        .then(|| Duration::from_millis(rng.u64(500..4_000)));
                    tally.lock().unwrap().op("place");
                    placing.spawn(place(args, ports, join_for, tally.clone()));
                }
            }
            55..=64 if cluster.agents.len() < MAX_AGENTS => {
                cluster.start_agent(&mut rng);
                tally.lock().unwrap().op("agent starts");
            }
            65..=71 if cluster.agents.len() > 1 => {
                let id = cluster.pick(&mut rng).expect("an agent");
                let (agent, _) = cluster.agents.remove(&id).expect("it runs");
                agent.signal("TERM");
                // Dropped: killed if the 2 s grace has not ended it by then.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    drop(agent);
                });
                tally.lock().unwrap().op("agent stops (SIGTERM)");
            }
            72..=79 if cluster.agents.len() > 1 => {
                let id = cluster.pick(&mut rng).expect("an agent");
                let (mut agent, _) = cluster.agents.remove(&id).expect("it runs");
                agent.kill9();
                tally.lock().unwrap().fault("kill -9 of an agent");
            }
            80..=83
                if etcd_down_until.is_none()
                    && (etcd_due || last_etcd_restart.elapsed() > Duration::from_secs(12)) =>
            {
                // Down for a while, with the other operations going on against it.
                etcd_restarts += 1;
                cluster.etcd.kill();
                tally.lock().unwrap().fault("etcd killed");
                etcd_down_until = Some(Instant::now() + Duration::from_millis(rng.u64(500..4_000)));
            }
            84..=91 => {
                if let Some(id) = cluster.pick(&mut rng) {
                    let verb = if rng.bool() { "drain" } else { "undrain" };
                    let args = cluster.ionctl_args(&[verb, &id]);
                    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                    let out = harness::ionctl(&refs).await;
                    let code = out.status.code();
                    if !matches!(code, Some(0 | 3 | 6)) {
                        tally.lock().unwrap().violations.push(format!(
                            "{verb} {id} answered {code:?}: {}",
                            harness::stderr(&out)
                        ));
                    }
                    tally
                        .lock()
                        .unwrap()
                        .op(if verb == "drain" { "drain" } else { "undrain" });
                }
            }
            _ => {}
        }
        if Instant::now() >= next_check {
            next_check = Instant::now() + Duration::from_secs(3);
            if let Some(found) = violations(&store, etcd_started).await {
                let mut tally = tally.lock().unwrap();
                tally.checks += 1;
                tally.violations.extend(found);
            }
        }
    }
    if etcd_down_until.is_some() {
        cluster.etcd.restart().await;
        etcd_started = SystemTime::now();
    }
    // Every placement is answered: none may still be running a while after the end.
    let answered = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(done) = placing.join_next().await {
            if let Err(failed) = done {
                let line = format!("a placement was not answered: its task failed ({failed})");
                tally.lock().unwrap().violations.push(line);
            }
        }
    })
    .await;
    if answered.is_err() {
        let left = placing.len();
        tally
            .lock()
            .unwrap()
            .violations
            .push(format!("{left} placements unanswered 60 s after the run"));
    }
    let ran = started.elapsed();
    let last = harness::wait_for(
        "etcd to answer the last check",
        Duration::from_secs(20),
        || violations(&store, etcd_started),
    )
    .await;
    let mut tally = tally.lock().unwrap();
    tally.checks += 1;
    tally.violations.extend(last);
    let placements: u32 = tally.answers.values().sum();
    eprintln!(
        "chaos: ran {:.0} s, answered and checked {:.0} s later",
        ran.as_secs_f64(),
        (started.elapsed() - ran).as_secs_f64()
    );
    eprintln!(
        "chaos: seed {seed}, {secs} s: operations {:?}; faults {:?}; {placements} placements \
         answered {:?}; {} invariant checks, {} violations",
        tally.operations,
        tally.faults,
        tally.answers,
        tally.checks,
        tally.violations.len()
    );
    assert!(
        tally.violations.is_empty(),
        "invariant violations (seed {seed}):\n{}",
        tally.violations.join("\n")
    );
    assert!(tally.checks >= secs as u32 / 4, "too few checks ran");
}
