//! `ionctl autoscale --provider local` end to end, with a real etcd and real agent processes:
//! a burst of held spawns, the warm pool, idle scale-down, leadership hand-over, and no
//! runaway on a busy host (issue 13).

mod harness;

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime};

use harness::{
    CpuBurner, Etcd, LocalAgents, ionctl_with_env, stderr, stdout, unique_prefix, wait_for,
    wait_for_explained,
};
use ion_cluster::model::{
    InstanceRecord, NodeRecord, RecordingRecord, RecordingState, SessionClass, SessionRecord,
    SessionState,
};
use ion_cluster::store::Store;
use serde_json::Value;

struct Cluster {
    etcd: Etcd,
    prefix: String,
    /// More environment for ionctl and, through it, every agent it starts.
    extra_env: Vec<(&'static str, String)>,
    loops: Vec<tokio::process::Child>,
    // After `loops`: fields drop in order, and the loops must stop before their agents go.
    agents: LocalAgents,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The loops go first, so none spawns again while `agents` kills what they started.
        for child in &mut self.loops {
            let _ = child.start_kill();
        }
    }
}

impl Cluster {
    async fn start(test: &str) -> Self {
        harness::agent_bin();
        Self {
            etcd: Etcd::start().await,
            prefix: unique_prefix(test),
            extra_env: Vec::new(),
            agents: LocalAgents::new(),
            loops: Vec::new(),
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.extra_env.clone();
        env.extend([
            (
                "IONCTL_LOCAL_STATE_DIR",
                self.agents.path().display().to_string(),
            ),
            (
                "IONCTL_LOCAL_AGENT_BIN",
                harness::agent_bin().display().to_string(),
            ),
        ]);
        env
    }

    fn with_cluster(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend([
            "--etcd".to_owned(),
            self.etcd.endpoint(),
            "--prefix".to_owned(),
            self.prefix.clone(),
        ]);
        all
    }

    async fn ionctl(&self, args: &[&str]) -> Output {
        let all = self.with_cluster(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ionctl_with_env(&all, &env).await
    }

    /// `ionctl spawn --provider local --wait` of one n1-standard-1 named `name`.
    async fn spawn_small(&self, name: &str) {
        let output = self
            .ionctl(&[
                "spawn",
                "--provider",
                "local",
                "--machine-type",
                "n1-standard-1",
                "--name",
                name,
                "--wait",
            ])
            .await;
        assert!(output.status.success(), "{}", stderr(&output));
    }

    /// Starts a long-running `ionctl autoscale`; its stdout goes to `<dir>/<identity>.out`.
    fn autoscale(&mut self, identity: &str, extra: &[&str]) -> usize {
        let mut args = vec![
            "autoscale",
            "--provider",
            "local",
            "--interval",
            "300ms",
            "--identity",
            identity,
        ];
        args.extend_from_slice(extra);
        let all = self.with_cluster(&args);
        let out = std::fs::File::create(self.out_path(identity)).expect("an output file");
        let err = std::fs::File::create(self.agents.path().join(format!("{identity}.err")))
            .expect("an error file");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ionctl"));
        command
            .args(&all)
            .env_remove("IONCTL_ETCD_ENDPOINTS")
            .env_remove("IONCTL_PREFIX")
            .env_remove("IONCTL_CONFIG")
            .env("XDG_CONFIG_HOME", "/nonexistent-ionctl-test-config")
            .env("IONCTL_LOG", "info")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        for (key, value) in self.env() {
            command.env(key, value);
        }
        self.loops
            .push(command.spawn().expect("starting ionctl autoscale"));
        self.loops.len() - 1
    }

    fn out_path(&self, identity: &str) -> PathBuf {
        self.agents.path().join(format!("{identity}.out"))
    }

    fn out(&self, identity: &str) -> String {
        std::fs::read_to_string(self.out_path(identity)).unwrap_or_default()
    }

    async fn instances(store: &Store) -> Vec<InstanceRecord> {
        store
            .list::<InstanceRecord>(&store.keys().instances(), None)
            .await
            .expect("listing instances")
            .items
            .into_iter()
            .map(|(_, i)| i)
            .collect()
    }

    async fn nodes(store: &Store) -> Vec<NodeRecord> {
        store
            .nodes()
            .await
            .expect("listing nodes")
            .items
            .into_iter()
            .map(|(_, n)| n)
            .collect()
    }
}

fn place_json(output: &Output) -> Value {
    place_json_or(output, "")
}

fn place_json_or(output: &Output, context: &str) -> Value {
    assert!(
        output.status.success(),
        "place failed: {}\n{}\n{context}",
        stderr(output),
        stdout(output)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// Waits for `count` nodes; at the deadline the panic shows every local agent's log, since an
/// agent that exits at boot says why only there.
async fn wait_nodes(
    cluster: &Cluster,
    store: &Store,
    count: usize,
    timeout: Duration,
) -> Vec<NodeRecord> {
    let probe = || {
        let store = store.clone();
        async move {
            let nodes = Cluster::nodes(&store).await;
            (nodes.len() >= count).then_some(nodes)
        }
    };
    wait_for_explained(&format!("{count} nodes"), timeout, probe, || {
        cluster.agents.logs()
    })
    .await
}

#[tokio::test]
async fn a_burst_of_livestreams_gets_one_held_node_each() {
    let cluster = Cluster::start("autoscale-burst").await;
    let store = cluster.etcd.store(&cluster.prefix).await;
    // Small livestreams: local agents report the whole host's CPU as observed load, and five
    // of them share two cores here.
    let sids: Vec<String> = (0..5).map(|i| format!("live{i}")).collect();
    let asked = SystemTime::now();
    for sid in &sids {
        let output = cluster
            .ionctl(&[
                "place",
                "--class",
                "livestream",
                "--size",
                "5",
                "--session",
                sid,
            ])
            .await;
        assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    }
    let output = cluster
        .ionctl(&["autoscale", "--provider", "local", "--once"])
        .await;
    let printed = stdout(&output);
    assert!(output.status.success(), "{}\n{printed}", stderr(&output));
    for sid in &sids {
        assert!(
            printed.contains(&format!(
                "spawn n1-standard-1 held for {sid}: pending livestream"
            )),
            "{printed}"
        );
    }
    assert_eq!(printed.matches("-> ok ion-").count(), 5, "{printed}");
    let instances = Cluster::instances(&store).await;
    assert_eq!(instances.len(), 5, "{instances:?}");
    // In parallel: all five were requested within one tick, before any agent registered.
    let first = instances.iter().map(|i| i.created_at).min().expect("some");
    let last = instances.iter().map(|i| i.created_at).max().expect("some");
    assert!(
        last.duration_since(first).unwrap_or_default() < Duration::from_secs(3),
        "{instances:?}"
    );

    wait_nodes(&cluster, &store, 5, Duration::from_secs(60)).await;
    // A meeting finds no node: every new node is held for a livestream.
    let output = cluster
        .ionctl(&[
            "place",
            "--class",
            "meeting",
            "--size",
            "4",
            "--session",
            "room",
        ])
        .await;
    assert_eq!(output.status.code(), Some(4), "{}", stdout(&output));
    for sid in &sids {
        let placed = place_json_or(
            &cluster
                .ionctl(&[
                    "place",
                    "--class",
                    "livestream",
                    "--size",
                    "5",
                    "--session",
                    sid,
                    "-o",
                    "json",
                ])
                .await,
            &format!("{:#?}", Cluster::nodes(&store).await),
        );
        let node = placed["node"].as_str().expect("a node id");
        let nodes = Cluster::nodes(&store).await;
        let held = nodes.iter().find(|n| n.id == node).expect("a new node");
        assert_eq!(held.hold_for.as_deref(), Some(sid.as_str()));
    }
    let placed_in = SystemTime::now().duration_since(asked).unwrap_or_default();
    eprintln!("burst of 5 livestreams: pending to placed in {placed_in:?}");
}

#[tokio::test]
async fn idle_nodes_are_drained_and_deleted_and_a_busy_node_is_kept() {
    let mut cluster = Cluster::start("autoscale-idle").await;
    let store = cluster.etcd.store(&cluster.prefix).await;
    for name in ["ion-idle", "ion-busy"] {
        cluster.spawn_small(name).await;
    }
    let session = SessionRecord {
        sid: "busy-room".to_owned(),
        class: SessionClass::Meeting,
        size: 4,
        demand: 12,
        node: "ion-busy".to_owned(),
        state: SessionState::Live,
        relays: Vec::new(),
        edge_demand: 0,
        created_at: SystemTime::now(),
    };
    store
        .put(&store.keys().session("busy-room"), &session)
        .await
        .expect("a session");
    cluster.autoscale("scaler", &["--idle-timeout", "1s", "--min-lifetime", "0s"]);
    wait_for("the idle instance to go", Duration::from_secs(40), || {
        let store = store.clone();
        async move {
            let instances = Cluster::instances(&store).await;
            (!instances.iter().any(|i| i.name == "ion-idle")).then_some(())
        }
    })
    .await;
    let out = cluster.out("scaler");
    assert!(out.contains("drain ion-idle: autoscale: idle for"), "{out}");
    assert!(
        out.contains("delete ion-idle: drained by the autoscaler and empty -> ok"),
        "{out}"
    );
    // A few more ticks: the busy node is never touched.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = cluster.out("scaler");
    assert!(!out.contains("ion-busy"), "{out}");
    let instances = Cluster::instances(&store).await;
    assert_eq!(
        instances
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>(),
        vec!["ion-busy"]
    );
    assert!(
        store
            .get::<ion_cluster::model::DrainRequest>(&store.keys().drain("ion-busy"))
            .await
            .expect("a read")
            .is_none()
    );
}

#[tokio::test]
async fn with_a_warm_pool_a_meeting_is_placed_at_once_while_a_replacement_boots() {
    let mut cluster = Cluster::start("autoscale-warm").await;
    let store = cluster.etcd.store(&cluster.prefix).await;
    cluster.autoscale(
        "scaler",
        &["--warm-pool", "n2-highcpu-2=1", "--boot-delay", "3s"],
    );
    let nodes = wait_nodes(&cluster, &store, 1, Duration::from_secs(40)).await;
    let asked = std::time::Instant::now();
    let placed = place_json(
        &cluster
            .ionctl(&[
                "place",
                "--class",
                "meeting",
                "--size",
                "4",
                "--session",
                "room",
                "-o",
                "json",
            ])
            .await,
    );
    let took = asked.elapsed();
    assert_eq!(placed["node"].as_str(), Some(nodes[0].id.as_str()));
    assert!(took < Duration::from_secs(3), "placing took {took:?}");
    eprintln!("warm pool: meeting placed in {took:?}");
    // The warm node now carries a session: a replacement is spawned and boots.
    let instances = wait_for("a replacement", Duration::from_secs(20), || {
        let store = store.clone();
        async move {
            let instances = Cluster::instances(&store).await;
            (instances.len() >= 2).then_some(instances)
        }
    })
    .await;
    assert_eq!(instances.len(), 2, "{instances:?}");
    let out = cluster.out("scaler");
    assert!(
        out.contains("warm pool n2-highcpu-2: 0 idle of 1 wanted"),
        "{out}"
    );
    wait_nodes(&cluster, &store, 2, Duration::from_secs(40)).await;
}

#[tokio::test]
async fn when_the_leader_dies_the_other_replica_takes_over_without_double_spawns() {
    let mut cluster = Cluster::start("autoscale-leader").await;
    let store = cluster.etcd.store(&cluster.prefix).await;
    let a = cluster.autoscale("replica-a", &["--lease-ttl", "3s"]);
    wait_for("replica-a to lead", Duration::from_secs(10), || {
        let out = cluster.out("replica-a");
        async move { out.contains("leader replica-a").then_some(()) }
    })
    .await;
    cluster.autoscale("replica-b", &["--lease-ttl", "3s"]);
    wait_for("replica-b to campaign", Duration::from_secs(10), || {
        let out = cluster.out("replica-b");
        async move { out.contains("campaign replica-b").then_some(()) }
    })
    .await;
    let output = cluster
        .ionctl(&[
            "place",
            "--class",
            "livestream",
            "--size",
            "20",
            "--session",
            "first",
        ])
        .await;
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    wait_nodes(&cluster, &store, 1, Duration::from_secs(30)).await;
    assert!(
        !cluster.out("replica-b").contains("leader replica-b"),
        "{}",
        cluster.out("replica-b")
    );

    cluster.loops[a].start_kill().expect("killing the leader");
    let killed = std::time::Instant::now();
    let output = cluster
        .ionctl(&[
            "place",
            "--class",
            "livestream",
            "--size",
            "20",
            "--session",
            "second",
        ])
        .await;
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    wait_for("replica-b to lead", Duration::from_secs(10), || {
        let out = cluster.out("replica-b");
        async move { out.contains("leader replica-b").then_some(()) }
    })
    .await;
    let took = killed.elapsed();
    assert!(took <= Duration::from_secs(3 + 2), "takeover took {took:?}");
    wait_nodes(&cluster, &store, 2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let instances = Cluster::instances(&store).await;
    let mut holds: Vec<_> = instances
        .iter()
        .filter_map(|i| i.hold_for.clone())
        .collect();
    holds.sort();
    assert_eq!(holds, vec!["first", "second"], "{instances:?}");
}

/// One line of `ionctl autoscale`'s output: its time stamp and the rest.
fn stamped(out: &str) -> Vec<(SystemTime, &str)> {
    out.lines()
        .filter_map(|line| {
            let (stamp, text) = line.split_once(' ')?;
            Some((humantime::parse_rfc3339(stamp).ok()?, text))
        })
        .collect()
}

/// The instance names of successful spawns, with when they were asked for and their line.
fn spawned(out: &str) -> Vec<(String, SystemTime, String)> {
    stamped(out)
        .into_iter()
        .filter(|(_, text)| text.starts_with("spawn "))
        .filter_map(|(at, text)| {
            let name = text.split_once("-> ok ")?.1.trim().to_owned();
            Some((name, at, text.to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn on_a_busy_host_each_pending_demand_gets_one_instance_and_is_placed_on_it() {
    // The scenario of issue 13: local agents on a host that another process keeps busy, a
    // warm pool of one, a pending meeting and a pending livestream.
    let boot_delay = Duration::from_secs(2);
    // The loop's --interval, set by `Cluster::autoscale`.
    let tick = Duration::from_millis(300);
    let min_lifetime = Duration::from_secs(12);
    let mut cluster = Cluster::start("autoscale-busy-host").await;
    let store = cluster.etcd.store(&cluster.prefix).await;
    let _burner = CpuBurner::on_every_core();
    // An idle node beyond the warm pool, of a type too small for either demand: the
    // autoscaler drains it, but not before min_lifetime.
    cluster.spawn_small("ion-extra").await;
    let extra_created = Cluster::instances(&store)
        .await
        .into_iter()
        .find(|i| i.name == "ion-extra")
        .expect("ion-extra recorded")
        .created_at;
    cluster.autoscale(
        "scaler",
        &[
            "--boot-delay",
            "2s",
            "--warm-pool",
            "n2-highcpu-4=1",
            "--idle-timeout",
            "2s",
            "--min-lifetime",
            "12s",
            "--max-nodes",
            "6",
        ],
    );
    let warm = wait_for("the warm node", Duration::from_secs(40), || {
        let store = store.clone();
        async move {
            let nodes = Cluster::nodes(&store).await;
            nodes.into_iter().find(|n| n.machine_type == "n2-highcpu-4")
        }
    })
    .await;
    // The host reads busy from the warm agent's side, and its own CPU does not.
    let seen = wait_for(
        "the busy host in the warm node's record",
        Duration::from_secs(30),
        || {
            let store = store.clone();
            let id = warm.id.clone();
            async move {
                let nodes = Cluster::nodes(&store).await;
                nodes.into_iter().find(|n| n.id == id && n.stats.cpu >= 0.8)
            }
        },
    )
    .await;
    assert!(seen.shared_host, "{seen:?}");
    assert!(seen.stats.agent_cpu < 0.5, "{:?}", seen.stats);

    let place = |sid: &'static str, class: &'static str, size: &'static str| {
        let args = cluster.with_cluster(&[
            "place",
            "--class",
            class,
            "--size",
            size,
            "--session",
            sid,
            "--wait",
            "40s",
            "-o",
            "json",
        ]);
        let env = cluster.env();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let asked = std::time::Instant::now();
            let output = ionctl_with_env(&args, &env).await;
            (output, asked.elapsed())
        }
    };
    let ((meeting, meeting_took), (live, live_took)) = tokio::join!(
        place("m1", "meeting", "20"),
        place("ls1", "livestream", "300")
    );
    let meeting = place_json(&meeting);
    let live = place_json(&live);
    eprintln!("busy host: m1 placed in {meeting_took:?}, ls1 in {live_took:?}");
    // The two placements race for the warm node; either may win, since an empty node is
    // never full (the livestream may take it because it carries nothing). The winner is
    // placed at once; the other takes the one instance spawned and held for it, within its
    // boot. The local provider's boot delay is a sleep before the agent starts; the agent's
    // own start and registration (a debug build on a busy two-core host) come on top.
    let placed = [("m1", &meeting, meeting_took), ("ls1", &live, live_took)];
    let (on_warm, on_own): (Vec<_>, Vec<_>) = placed
        .iter()
        .partition(|(_, answer, _)| answer["node"].as_str() == Some(warm.id.as_str()));
    assert_eq!((on_warm.len(), on_own.len()), (1, 1), "{meeting}\n{live}");
    let (warm_sid, _, warm_took) = on_warm[0];
    let (own_sid, own_answer, own_took) = on_own[0];
    assert!(
        warm_took < 2 * tick + Duration::from_secs(2),
        "{warm_sid} took {warm_took:?} on the warm node"
    );
    let own_node = own_answer["node"].as_str().expect("a node").to_owned();
    let allowance = Duration::from_secs(4);
    assert!(
        own_took <= boot_delay + 2 * tick + allowance,
        "{own_sid} took {own_took:?}"
    );

    // Let it run past idle_timeout and min_lifetime: the extra node goes, nothing churns.
    wait_for(
        "ion-extra drained and deleted",
        Duration::from_secs(40),
        || {
            let store = store.clone();
            async move {
                let instances = Cluster::instances(&store).await;
                (!instances.iter().any(|i| i.name == "ion-extra")).then_some(())
            }
        },
    )
    .await;
    tokio::time::sleep(3 * tick).await;
    let out = cluster.out("scaler");
    let spawns = spawned(&out);
    // Exactly one instance for the demand the warm node did not take, and it got that one.
    // Either the demand was pending when the warm pool's replacement was not yet asked for,
    // and an instance was held for it; or the replacement was already booting, the demand
    // took it (a booting unheld instance is the quickest node), and the warm pool asked for
    // one more. On a busy host the placing process may start late enough for either.
    let for_own: Vec<_> = spawns
        .iter()
        .filter(|(_, _, line)| line.contains(&format!("held for {own_sid}")))
        .collect();
    let warm_spawns = spawns
        .iter()
        .filter(|(_, _, l)| l.contains("warm pool n2-highcpu-4"))
        .count();
    match for_own.as_slice() {
        [held] => {
            assert_eq!(held.0, own_node, "{out}");
            assert_eq!(warm_spawns, 2, "{out}");
        }
        [] => {
            let took = spawns.iter().find(|(name, _, _)| *name == own_node);
            let took = took.unwrap_or_else(|| panic!("{own_sid} is on no spawned instance\n{out}"));
            assert!(took.2.contains("warm pool"), "{out}");
            assert_eq!(warm_spawns, 3, "{out}");
        }
        more => panic!("{} instances held for {own_sid}\n{out}", more.len()),
    }
    // The warm node's taker needed no instance of its own.
    assert!(
        !spawns
            .iter()
            .any(|(_, _, l)| l.contains(&format!("held for {warm_sid}"))),
        "{out}"
    );
    assert_eq!(spawns.len(), 3, "{out}");
    // Every drain came after the node's minimum lifetime.
    let mut drained = 0;
    for (at, text) in stamped(&out) {
        let Some(rest) = text.strip_prefix("drain ") else {
            continue;
        };
        let node = rest.split(':').next().expect("a node id");
        drained += 1;
        let born = if node == "ion-extra" {
            extra_created
        } else {
            spawns
                .iter()
                .find(|(name, _, _)| name == node)
                .map(|(_, at, _)| *at)
                .expect("a known instance")
        };
        let age = at.duration_since(born).unwrap_or_default();
        // The output's stamps are in milliseconds.
        assert!(
            age + Duration::from_millis(1) >= min_lifetime,
            "{node} drained {age:?} after it was created: {out}"
        );
    }
    assert_eq!(drained, 1, "{out}");
}

/// `ionctl record start --wait` with no node free to record on: the autoscaler starts an
/// instance held for the recording's reservation, the command takes it when it registers,
/// and the recorder on it records the session's publisher until `record stop`.
#[tokio::test]
async fn record_start_waits_for_the_recorder_the_autoscaler_starts_for_it() {
    let mut cluster = Cluster::start("autoscale-record").await;
    let recordings = cluster.agents.path().join("recordings");
    cluster.extra_env = vec![
        // Relays between nodes (the recorder pulls the session) are signed with it.
        (
            "ION_AGENT_AUTH__SECRET",
            "autoscale-record-secret-0123456789abcdef".to_owned(),
        ),
        ("ION_AGENT_RECORDER__DIR", recordings.display().to_string()),
        ("ION_AGENT_WEBRTC__WORKERS", "1".to_owned()),
    ];
    let store = cluster.etcd.store(&cluster.prefix).await;
    cluster.spawn_small("ion-sfu").await;
    let placed = place_json(
        &cluster
            .ionctl(&[
                "place",
                "--class",
                "meeting",
                "--size",
                "2",
                "--session",
                "call",
                "-o",
                "json",
            ])
            .await,
    );
    assert_eq!(placed["node"].as_str(), Some("ion-sfu"), "{placed}");
    let url = placed["signal_url"].as_str().expect("a signal URL");
    let alice = harness::Peer::join(url, "call", "alice", harness::JoinConfig::default())
        .await
        .expect("alice joins");
    alice
        .publish(harness::Media::BOTH)
        .await
        .expect("alice publishes");

    cluster.autoscale("scaler", &[]);
    let started = cluster
        .ionctl(&["record", "start", "call", "--wait", "2m", "-o", "json"])
        .await;
    let record: Value = place_json_or(&started, &cluster.out("scaler"));
    let recorder = record["node"]
        .as_str()
        .expect("the recorder node")
        .to_owned();
    assert_ne!(recorder, "ion-sfu", "the recording has a node of its own");
    let instances = Cluster::instances(&store).await;
    let instance = instances
        .iter()
        .find(|i| i.name == recorder)
        .unwrap_or_else(|| {
            panic!("{recorder} is not an instance the autoscaler started: {instances:?}")
        });
    assert_eq!(
        instance.hold_for.as_deref(),
        Some("call.rec"),
        "{instance:?}"
    );

    let key = store.keys().recording("call");
    let recorded = wait_for(
        "alice recorded for 2 s",
        Duration::from_secs(60),
        || async {
            let record: RecordingRecord = store.get(&key).await.ok()??;
            record
                .files
                .iter()
                .any(|f| f.uid == "alice" && f.duration_ms >= 2_000)
                .then_some(record)
        },
    )
    .await;
    assert_eq!(recorded.node, recorder);
    let stopped = cluster.ionctl(&["record", "stop", "call"]).await;
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    let done: RecordingRecord = store.get(&key).await.expect("etcd").expect("the record");
    assert_eq!(done.state, RecordingState::Done, "{done:?}");
    let dir = PathBuf::from(done.dir.as_deref().expect("a directory"));
    let size = std::fs::metadata(dir.join("alice.webm"))
        .expect("alice's file on the recorder's disk")
        .len();
    assert!(size > 10_000, "alice's file holds {size} bytes");
    alice.assert_no_problems();
}
