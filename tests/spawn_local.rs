//! `ionctl spawn --provider local` end to end, with a real etcd and real agent processes
//! that outlive the `ionctl` that started them: spawn and wait for registration, list,
//! drain, delete; and the failure paths (unknown machine type, an agent that dies).

mod harness;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

use harness::{Etcd, LocalAgents, ionctl_with_env, stderr, unique_prefix, wait_for};
use ion_cluster::model::{
    InstanceRecord, NodeRecord, NodeState, SessionClass, SessionRecord, SessionState,
};
use ion_cluster::provider::local::process_alive;
use serde_json::Value;

struct Cluster {
    etcd: Etcd,
    prefix: String,
    agents: LocalAgents,
}

impl Cluster {
    async fn start(test: &str) -> Self {
        harness::agent_bin();
        Self {
            etcd: Etcd::start().await,
            prefix: unique_prefix(test),
            agents: LocalAgents::new(),
        }
    }

    async fn ionctl(&self, args: &[&str]) -> Output {
        self.ionctl_with_agent(args, &harness::agent_bin()).await
    }

    async fn ionctl_with_agent(&self, args: &[&str], agent: &Path) -> Output {
        let endpoint = self.etcd.endpoint();
        let state_dir = self.agents.path().display().to_string();
        let agent = agent.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--etcd", &endpoint, "--prefix", &self.prefix]);
        ionctl_with_env(
            &all,
            &[
                ("IONCTL_LOCAL_STATE_DIR", &state_dir),
                ("IONCTL_LOCAL_AGENT_BIN", &agent),
            ],
        )
        .await
    }
}

#[tokio::test]
async fn spawn_local_registers_then_delete_drains_and_removes_it() {
    let cluster = Cluster::start("spawn-local").await;
    let store = cluster.etcd.store(&cluster.prefix).await;
    let keys = store.keys().clone();
    let name = "ion-local-1";

    let started = Instant::now();
    let output = cluster
        .ionctl(&[
            "spawn",
            "--provider",
            "local",
            "--machine-type",
            "n2-highcpu-4",
            "--name",
            name,
            "--boot-delay",
            "1s",
            "--wait",
            "-o",
            "json",
        ])
        .await;
    assert!(
        output.status.success(),
        "{}\n{}",
        stderr(&output),
        cluster.agents.log(name)
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the boot delay was skipped"
    );
    let progress = stderr(&output);
    for stage in ["requested", "booting", "registered"] {
        assert!(progress.contains(stage), "{stage} missing:\n{progress}");
    }
    let spawned: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(spawned["name"], name);
    assert_eq!(spawned["provider"], "local");
    assert_eq!(spawned["zone"], "local");
    assert_eq!(spawned["state"], "ready");
    assert_eq!(spawned["node"]["vcpus"], 4);
    assert_eq!(spawned["node"]["state"], "ready");

    // The node as the agent registered it, from its machine type.
    let node: NodeRecord = store
        .get(&keys.node(name))
        .await
        .expect("get")
        .expect("the node is registered");
    assert_eq!(node.vcpus, 4);
    assert_eq!(node.machine_type, "n2-highcpu-4");
    assert_eq!(node.zone, "local");
    assert_eq!(node.capacity, 4 * 150, "the agent's default units per vCPU");

    // The agent outlived the ionctl that started it.
    let state = cluster.agents.state(name).expect("a state file");
    assert!(process_alive(state.pid, name));
    assert!(node.signal_url.ends_with(&format!(":{}/ws", state.port)));

    let output = cluster.ionctl(&["instances", "-o", "json"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let listed: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["name"], name);
    assert_eq!(listed[0]["machine_type"], "n2-highcpu-4");
    assert_eq!(listed[0]["state"], "ready");
    assert_eq!(listed[0]["node"]["vcpus"], 4);

    // A session placed on the node keeps it from being deleted: the drain times out (exit
    // 5) and the node stays, draining.
    let session = SessionRecord {
        sid: "busy-room".to_owned(),
        class: SessionClass::Meeting,
        size: 4,
        demand: 12,
        node: name.to_owned(),
        state: SessionState::Reserved,
        relays: Vec::new(),
        edge_demand: 0,
        created_at: SystemTime::now(),
    };
    store
        .put(&keys.session("busy-room"), &session)
        .await
        .expect("placing a session");
    let output = cluster.ionctl(&["delete", name, "--timeout", "2s"]).await;
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains(&format!("{name}: 1")) && message.contains("--force"),
        "{message}"
    );
    wait_for("the node to drain", Duration::from_secs(10), || {
        let store = store.clone();
        let key = keys.node(name);
        async move {
            store
                .get::<NodeRecord>(&key)
                .await
                .ok()
                .flatten()
                .filter(|n| n.state == NodeState::Draining)
        }
    })
    .await;
    assert!(process_alive(state.pid, name), "deleted while busy");
    let record: InstanceRecord = store
        .get(&keys.instance(name))
        .await
        .expect("get")
        .expect("still recorded");
    assert_eq!(
        serde_json::to_value(record.state).expect("JSON"),
        "deleting"
    );

    // Once the session is gone, delete drains, stops the agent and removes every key.
    store
        .client()
        .delete(keys.session("busy-room"), None)
        .await
        .expect("ending the session");
    let output = cluster.ionctl(&["delete", name, "--timeout", "20s"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!process_alive(state.pid, name), "the agent still runs");
    for key in [keys.node(name), keys.instance(name), keys.drain(name)] {
        assert_eq!(
            store.get::<Value>(&key).await.expect("get"),
            None,
            "{key} is still there"
        );
    }
    assert!(cluster.agents.state(name).is_none(), "the state file stays");
    assert!(
        cluster.agents.log(name).contains("starting"),
        "the agent's log is kept"
    );
}

#[tokio::test]
async fn spawn_local_failures_leave_nothing_behind() {
    let cluster = Cluster::start("spawn-local-fail").await;
    let store = cluster.etcd.store(&cluster.prefix).await;
    let keys = store.keys().clone();

    // A machine type the local provider cannot imitate: refused, nothing recorded.
    let output = cluster
        .ionctl(&[
            "spawn",
            "--provider",
            "local",
            "--machine-type",
            "n2-highcpu-3",
            "--name",
            "ion-bad-type",
        ])
        .await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("n2-highcpu-3") && stderr(&output).contains("n2-highcpu-4"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        store
            .get::<Value>(&keys.instance("ion-bad-type"))
            .await
            .expect("get"),
        None
    );

    // An agent that exits at once: --wait reports it instead of waiting for the timeout,
    // and `delete --force` clears what is left.
    let started = Instant::now();
    let output = cluster
        .ionctl_with_agent(
            &[
                "spawn",
                "--provider",
                "local",
                "--machine-type",
                "e2-small",
                "--name",
                "ion-dies",
                "--wait",
                "--timeout",
                "25s",
            ],
            &PathBuf::from("/bin/false"),
        )
        .await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("terminated before its agent registered"),
        "{}",
        stderr(&output)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let output = cluster.ionctl(&["delete", "ion-dies", "--force"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        store
            .get::<Value>(&keys.instance("ion-dies"))
            .await
            .expect("get"),
        None
    );
    assert!(cluster.agents.state("ion-dies").is_none());

    // Unknown instances are exit 6.
    let output = cluster.ionctl(&["delete", "ion-never"]).await;
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
}

/// A local instance spawned with a hold publishes it in its node record.
#[tokio::test]
async fn spawn_local_with_hold_publishes_hold_for() {
    let cluster = Cluster::start("spawn-local-hold").await;
    let store = cluster.etcd.store(&cluster.prefix).await;
    let name = "ion-held-1";
    let output = cluster
        .ionctl(&[
            "spawn",
            "--provider",
            "local",
            "--machine-type",
            "n2-highcpu-4",
            "--hold",
            "s1",
            "--name",
            name,
            "--wait",
            "-o",
            "json",
        ])
        .await;
    assert!(
        output.status.success(),
        "{}\n{}",
        stderr(&output),
        cluster.agents.log(name)
    );
    let node: NodeRecord = store
        .get(&store.keys().node(name))
        .await
        .expect("get")
        .expect("registered");
    assert_eq!(node.vcpus, 4);
    assert_eq!(node.hold_for.as_deref(), Some("s1"));
    let output = cluster.ionctl(&["delete", name, "--force"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
}
