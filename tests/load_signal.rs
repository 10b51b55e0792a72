//! The load signal with real agents and a really busy host: an agent reports its own CPU as
//! load and the host CPU it did not spend as health; a node whose host is saturated by another
//! process is not chosen, and `ionctl nodes` says why; agents that share their host with each
//! other (the local provider, these tests' other agents) are not held to it.

mod harness;

use std::time::Duration;

use harness::{AgentProcess, AgentSpec, CpuBurner, Etcd, ionctl, stderr, stdout, wait_for};
use serde_json::Value;

struct Cluster {
    etcd: Etcd,
    prefix: String,
    config: tempfile::NamedTempFile,
}

impl Cluster {
    async fn start(test: &str) -> Self {
        harness::agent_bin();
        // No warm-up: these agents have just started, and the rule under test applies after it.
        let config = tempfile::NamedTempFile::new().expect("a config file");
        std::fs::write(config.path(), "[placement]\nwarmup = \"0s\"\n").expect("writing it");
        Self {
            etcd: Etcd::start().await,
            prefix: harness::unique_prefix(test),
            config,
        }
    }

    async fn ionctl(&self, args: &[&str]) -> std::process::Output {
        let endpoint = self.etcd.endpoint();
        let config = self.config.path().display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--etcd",
            &endpoint,
            "--prefix",
            &self.prefix,
            "--config",
            &config,
        ]);
        ionctl(&all).await
    }

    async fn nodes(&self) -> Vec<Value> {
        let output = self.ionctl(&["nodes", "-o", "json"]).await;
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).expect("JSON")
    }

    async fn node(&self, id: &str) -> Option<Value> {
        self.nodes().await.into_iter().find(|n| n["id"] == id)
    }

    async fn place_group(&self, sid: &str) -> Value {
        let output = self
            .ionctl(&[
                "place",
                "--class",
                "group",
                "--size",
                "2",
                "--session",
                sid,
                "-o",
                "json",
            ])
            .await;
        assert!(
            output.status.success(),
            "{}\n{}",
            stderr(&output),
            stdout(&output)
        );
        serde_json::from_slice(&output.stdout).expect("JSON")
    }
}

#[tokio::test]
async fn a_node_whose_host_is_saturated_by_another_process_is_not_chosen() {
    let cluster = Cluster::start("load-signal-busy").await;
    // "a-own" has a host of its own: its host CPU is a health signal. It is smaller than
    // "b-shared" and first by id, so binpack picks it whenever it is eligible.
    let _own = AgentProcess::start(
        &cluster.etcd,
        &cluster.prefix,
        AgentSpec::new("a-own").set("cluster", "shared_host", false),
    );
    let mut shared = AgentSpec::new("b-shared");
    shared.vcpus = 4;
    let _shared = AgentProcess::start(&cluster.etcd, &cluster.prefix, shared);
    wait_for("both agents", Duration::from_secs(20), || async {
        (cluster.nodes().await.len() == 2).then_some(())
    })
    .await;
    // The rule can fail: while the host is quiet, a-own takes the session.
    let quiet = wait_for("a-own healthy", Duration::from_secs(20), || async {
        let node = cluster.node("a-own").await?;
        (node["condition"] == "ok").then_some(node)
    })
    .await;
    assert_eq!(quiet["shared_host"], Value::Null, "{quiet}");
    let placed = cluster.place_group("before").await;
    assert_eq!(placed["node"], "a-own", "{placed}");
    let store = cluster.etcd.store(&cluster.prefix).await;
    store
        .delete(&store.keys().session("before"))
        .await
        .expect("releasing the reservation");

    let burner = CpuBurner::on_every_core();
    let busy = wait_for(
        "a-own marked host_busy",
        Duration::from_secs(30),
        || async {
            let node = cluster.node("a-own").await?;
            (node["condition"] == "host_busy").then_some(node)
        },
    )
    .await;
    let reason = busy["condition_reason"].as_str().expect("a reason");
    assert!(
        reason.starts_with("host busy: other processes use"),
        "{busy}"
    );
    // Load is the agent's own CPU: the burners are not counted as a's units.
    let observed = busy["stats"]["observed_units"].as_f64().expect("a number");
    let capacity = busy["capacity"].as_f64().expect("a number");
    assert!(observed < 0.5 * capacity, "{busy}");
    assert!(busy["stats"]["other_cpu"].as_f64().expect("a number") >= 0.9);

    let placed = cluster.place_group("during").await;
    assert_eq!(placed["node"], "b-shared", "{placed}");
    let table = cluster.ionctl(&["nodes"]).await;
    let table = stdout(&table);
    let line = table
        .lines()
        .find(|l| l.contains("a-own"))
        .expect("a-own listed");
    assert!(line.contains("host busy: other processes use"), "{table}");
    let shared_line = table
        .lines()
        .find(|l| l.contains("b-shared"))
        .expect("b-shared listed");
    assert!(!shared_line.contains("host busy"), "{table}");
    drop(burner);
}
