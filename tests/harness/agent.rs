//! A real `ion-agent` process for one test, with its config written to a temp file.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{Etcd, agent_bin, free_port};

/// What to start an agent with; `overrides` are `(table, key, value)` triples laid over the
/// harness's defaults.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub node_id: String,
    pub vcpus: u32,
    pub units_per_vcpu: u32,
    pub machine_type: String,
    pub overrides: Vec<(&'static str, &'static str, toml::Value)>,
    pub env: Vec<(String, String)>,
    /// A command the agent runs under (`ip netns exec NAME`), if any.
    pub prefix: Vec<String>,
}

impl AgentSpec {
    pub fn new(node_id: &str) -> Self {
        Self {
            node_id: node_id.to_owned(),
            vcpus: 2,
            units_per_vcpu: 100,
            machine_type: "e2-standard-2".to_owned(),
            overrides: Vec::new(),
            env: Vec::new(),
            prefix: Vec::new(),
        }
    }

    pub fn set(
        mut self,
        table: &'static str,
        key: &'static str,
        value: impl Into<toml::Value>,
    ) -> Self {
        self.overrides.push((table, key, value.into()));
        self
    }
}

pub struct AgentProcess {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub node_id: String,
    pub port: u16,
}

impl AgentProcess {
    pub fn start(etcd: &Etcd, prefix: &str, spec: AgentSpec) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir for the agent");
        let port = free_port();
        let config = config_toml(&etcd.endpoint(), prefix, port, &spec);
        let config_path = dir.path().join("agent.toml");
        std::fs::write(&config_path, config).expect("writing the agent config");
        let log = std::fs::File::create(dir.path().join("agent.log")).expect("agent log");
        let mut command = match spec.prefix.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(agent_bin());
                command
            }
            None => Command::new(agent_bin()),
        };
        let child = command
            .arg("--config")
            .arg(&config_path)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env("ION_AGENT_LOG", "info,ion_agent=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("starting ion-agent");
        Self {
            child: Some(child),
            dir,
            node_id: spec.node_id,
            port,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the agent runs").id()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the agent");
            child.wait().expect("reaping the agent");
        }
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits for the process to exit, polling until `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("the agent runs");
        loop {
            if let Some(status) = child.try_wait().expect("polling the agent") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not exit within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- log of agent {} ---\n{}", self.node_id, self.log());
        }
    }
}

fn config_toml(endpoint: &str, prefix: &str, port: u16, spec: &AgentSpec) -> String {
    let mut root: toml::Table = toml::toml! {
        [cluster]
        zone = "test-zone-a"
        // Every test's agents share this machine with each other and with other tests.
        shared_host = true

        [etcd]
        connect_timeout = "1s"

        [signal]

        [gce]
        metadata = "never"
    };
    let set = |root: &mut toml::Table, table: &str, key: &str, value: toml::Value| {
        root.entry(table)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("config sections are tables")
            .insert(key.to_owned(), value);
    };
    set(&mut root, "cluster", "node_id", spec.node_id.clone().into());
    set(&mut root, "cluster", "vcpus", i64::from(spec.vcpus).into());
    set(
        &mut root,
        "cluster",
        "units_per_vcpu",
        i64::from(spec.units_per_vcpu).into(),
    );
    set(
        &mut root,
        "cluster",
        "machine_type",
        spec.machine_type.clone().into(),
    );
    set(
        &mut root,
        "etcd",
        "endpoints",
        vec![endpoint.to_owned()].into(),
    );
    set(&mut root, "etcd", "prefix", prefix.into());
    set(
        &mut root,
        "signal",
        "listen",
        format!("127.0.0.1:{port}").into(),
    );
    for (table, key, value) in &spec.overrides {
        set(&mut root, table, key, value.clone());
    }
    toml::to_string(&root).expect("the agent config serialises")
}
