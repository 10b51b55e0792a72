//! The local provider: each instance is an `ion-agent` process on this machine, listening on
//! a free loopback port, configured with its machine type's vCPUs (and hold) through
//! environment variables. The process outlives the `ionctl` that started it: it runs in its
//! own process group with stdio in a log file, and a state file (`<state_dir>/<name>.json`)
//! records its pid, so a later `ionctl delete` finds it. An optional boot delay mimics the
//! time a VM takes to boot.

use std::collections::VecDeque;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::capacity::MachineType;

use super::{
    Instance, InstanceSpec, InstanceStatus, Progress, Provider, ProviderError, ProviderEvent,
    agent_env_string, validate_name,
};

/// How the local provider runs agents.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalSettings {
    /// Where state files and agent logs go.
    pub state_dir: PathBuf,
    /// The `ion-agent` binary.
    pub agent_bin: PathBuf,
    /// Wait this long before the agent starts, as a VM would boot.
    pub boot_delay: Duration,
    /// After SIGTERM, how long an agent may take to leave before it gets SIGKILL.
    pub stop_grace: Duration,
    /// The zone agents report when the spec names none.
    pub zone: String,
    pub units_per_vcpu: Option<u32>,
}

impl LocalSettings {
    pub fn new(state_dir: PathBuf, agent_bin: PathBuf) -> Self {
        Self {
            state_dir,
            agent_bin,
            boot_delay: Duration::ZERO,
            stop_grace: Duration::from_secs(15),
            zone: "local".to_owned(),
            units_per_vcpu: None,
        }
    }
}

/// What a state file records about one agent process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalState {
    pub name: String,
    pub pid: u32,
    pub port: u16,
    pub zone: String,
    pub machine_type: String,
    pub vcpus: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_for: Option<String>,
    pub etcd_endpoints: Vec<String>,
    pub prefix: String,
    pub log: PathBuf,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
}

/// Runs this cluster's agents as local processes. The cluster is the etcd endpoints and
/// prefix; [`Provider::list`] shows only its instances.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    settings: LocalSettings,
    etcd_endpoints: Vec<String>,
    prefix: String,
}

impl LocalProvider {
    pub fn new(settings: LocalSettings, etcd_endpoints: Vec<String>, prefix: String) -> Self {
        Self {
            settings,
            etcd_endpoints,
            prefix,
        }
    }

    fn state_path(&self, name: &str) -> PathBuf {
        self.settings.state_dir.join(format!("{name}.json"))
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.settings.state_dir.join(format!("{name}.log"))
    }

    /// The state file of `name`, if there is one.
    pub fn state(&self, name: &str) -> Result<Option<LocalState>, ProviderError> {
        read_state(&self.state_path(name))
    }

    fn to_instance(&self, state: &LocalState) -> Instance {
        let status = if process_alive(state.pid, &state.name) {
            InstanceStatus::Running
        } else {
            InstanceStatus::Terminated
        };
        Instance {
            name: state.name.clone(),
            provider: "local".to_owned(),
            zone: state.zone.clone(),
            machine_type: state.machine_type.clone(),
            status,
            address: Some(format!("127.0.0.1:{}", state.port)),
            hold_for: state.hold_for.clone(),
            labels: Default::default(),
        }
    }

    fn command(&self, spec: &InstanceSpec, vcpus: u32, zone: &str, port: u16) -> Command {
        let agent = &self.settings.agent_bin;
        let mut command = if self.settings.boot_delay.is_zero() {
            Command::new(agent)
        } else {
            // The shell sleeps, then becomes the agent (same pid), so the delay survives
            // this process and the recorded pid stays right.
            let mut shell = Command::new("/bin/sh");
            shell
                .arg("-c")
                .arg("sleep \"$0\" && exec \"$@\"")
                .arg(format!("{:.3}", self.settings.boot_delay.as_secs_f64()))
                .arg(agent);
            shell
        };
        command
            .arg("--node-id")
            .arg(&spec.name)
            .arg("--etcd")
            .arg(spec.agent.etcd_endpoints.join(","))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env(
                "ION_AGENT_CLUSTER__MACHINE_TYPE",
                agent_env_string(&spec.machine_type),
            )
            .env("ION_AGENT_CLUSTER__VCPUS", vcpus.to_string())
            .env("ION_AGENT_CLUSTER__ZONE", agent_env_string(zone))
            .env(
                "ION_AGENT_ETCD__PREFIX",
                agent_env_string(&spec.agent.prefix),
            )
            .env("ION_AGENT_GCE__METADATA", "never")
            // Every local agent shares this host: its CPU is no node's health signal.
            .env("ION_AGENT_CLUSTER__SHARED_HOST", "true");
        if let Some(units) = spec.agent.units_per_vcpu.or(self.settings.units_per_vcpu) {
            command.env("ION_AGENT_CLUSTER__UNITS_PER_VCPU", units.to_string());
        }
        if let Some(sid) = &spec.hold_for {
            command.env("ION_AGENT_CLUSTER__HOLD_FOR", agent_env_string(sid));
            if let Some(ttl) = spec.agent.hold_ttl {
                command.env(
                    "ION_AGENT_CLUSTER__HOLD_TTL",
                    humantime::format_duration(ttl).to_string(),
                );
            }
        }
        command
    }
}

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> ProviderError {
    move |source| ProviderError::Io { context, source }
}

fn read_state(path: &Path) -> Result<Option<LocalState>, ProviderError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(format!("cannot read {}", path.display()))(e)),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        io_error(format!("state file {} is not valid", path.display()))(std::io::Error::other(e))
    })
}

fn write_state(path: &Path, state: &LocalState) -> Result<(), ProviderError> {
    // Serialising a LocalState cannot fail: plain fields only.
    let text = serde_json::to_string_pretty(state).expect("LocalState serialises");
    let temp = path.with_extension("json.tmp");
    std::fs::write(&temp, text)
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(io_error(format!("cannot write {}", path.display())))
}

/// How many of its last ports [`free_port`] never hands out again.
const RECENT_PORTS: usize = 1024;

/// A port on 127.0.0.1 that nobody listens on right now and that none of this process's last
/// [`RECENT_PORTS`] calls returned. The kernel may give back a port it gave a moment ago once
/// that probe listener is closed (about one burst of five in 2,000 here). An autoscaler's burst
/// of spawns would then start two agents on one port before either binds it, and one of them
/// would exit and never register.
fn free_port() -> Result<u16, ProviderError> {
    static RECENT: Mutex<VecDeque<u16>> = Mutex::new(VecDeque::new());
    let mut recent = RECENT.lock().unwrap_or_else(PoisonError::into_inner);
    // The ephemeral range holds thousands of ports, so a few more probes skip the repeats.
    for _ in 0..64 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(io_error("cannot find a free loopback port".to_owned()))?;
        if !recent.contains(&port) {
            if recent.len() == RECENT_PORTS {
                recent.pop_front();
            }
            recent.push_back(port);
            return Ok(port);
        }
    }
    Err(io_error("cannot find a free loopback port".to_owned())(
        std::io::Error::other("the kernel kept returning ports handed out moments ago"),
    ))
}

/// True while `pid` runs and is the agent (or its boot-delay shell) of `name`: the command
/// line must name it, so a recycled pid is not mistaken for the agent.
pub fn process_alive(pid: u32, name: &str) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = std::fs::read_to_string(proc.join("stat")) else {
        return false;
    };
    // The state follows the command name in parentheses, which may itself hold blanks.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, Some('Z' | 'X') | None) {
        return false;
    }
    std::fs::read(proc.join("cmdline"))
        .map(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == name.as_bytes()))
        .unwrap_or(false)
}

fn signal(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Err(error) = kill(Pid::from_raw(raw), signal) {
        tracing::debug!(pid, %signal, %error, "signal not delivered");
    }
}

async fn wait_gone(pid: u32, name: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !process_alive(pid, name) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[async_trait]
impl Provider for LocalProvider {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn create(
        &self,
        spec: &InstanceSpec,
        progress: &Progress,
    ) -> Result<Instance, ProviderError> {
        validate_name(&spec.name)?;
        let vcpus = MachineType::by_name(&spec.machine_type)
            .map(|m| m.vcpus)
            .ok_or_else(|| ProviderError::UnknownMachineType {
                machine_type: spec.machine_type.clone(),
                known: crate::capacity::known_types(),
            })?;
        if spec.agent.etcd_endpoints.is_empty() {
            return Err(ProviderError::InvalidSpec(
                "the agent needs etcd endpoints".to_owned(),
            ));
        }
        let zone = spec
            .zone
            .clone()
            .unwrap_or_else(|| self.settings.zone.clone());
        let dir = &self.settings.state_dir;
        std::fs::create_dir_all(dir).map_err(io_error(format!(
            "cannot create the state dir {}",
            dir.display()
        )))?;
        let state_path = self.state_path(&spec.name);
        if let Some(existing) = read_state(&state_path)?
            && process_alive(existing.pid, &existing.name)
        {
            return Err(ProviderError::AlreadyExists {
                name: spec.name.clone(),
            });
        }
        let port = free_port()?;
        let log_path = self.log_path(&spec.name);
        let log = std::fs::File::create(&log_path)
            .map_err(io_error(format!("cannot create {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(io_error(format!("cannot open {}", log_path.display())))?;
        let mut command = self.command(spec, vcpus, &zone, port);
        command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: Ctrl-C in the terminal that ran ionctl does not reach
            // the agent, which lives on after ionctl exits.
            .process_group(0);
        let mut child = command.spawn().map_err(io_error(format!(
            "cannot start {} (set [local] agent_bin or IONCTL_LOCAL_AGENT_BIN)",
            self.settings.agent_bin.display()
        )))?;
        let pid = child.id();
        // While this process lives, reap the agent when it exits so it leaves no zombie;
        // after this process exits, init does.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        let state = LocalState {
            name: spec.name.clone(),
            pid,
            port,
            zone: zone.clone(),
            machine_type: spec.machine_type.clone(),
            vcpus,
            hold_for: spec.hold_for.clone(),
            etcd_endpoints: spec.agent.etcd_endpoints.clone(),
            prefix: spec.agent.prefix.clone(),
            log: log_path,
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        };
        if let Err(error) = write_state(&state_path, &state) {
            signal(pid, Signal::SIGKILL);
            return Err(error);
        }
        tracing::info!(instance = %spec.name, pid, port, vcpus, "started a local agent");
        progress.report(ProviderEvent::Requested {
            name: spec.name.clone(),
            zone: zone.clone(),
        });
        progress.report(ProviderEvent::Booting {
            name: spec.name.clone(),
            zone,
        });
        Ok(self.to_instance(&state))
    }

    async fn get(&self, name: &str, _zone: &str) -> Result<Option<Instance>, ProviderError> {
        Ok(self.state(name)?.map(|state| self.to_instance(&state)))
    }

    async fn list(&self) -> Result<Vec<Instance>, ProviderError> {
        let dir = &self.settings.state_dir;
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(format!("cannot read {}", dir.display()))(e)),
        };
        let mut instances = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match read_state(&path) {
                Ok(Some(state))
                    if state.prefix == self.prefix
                        && state.etcd_endpoints == self.etcd_endpoints =>
                {
                    instances.push(self.to_instance(&state));
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "skipping a local state file"),
            }
        }
        instances.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(instances)
    }

    async fn delete(
        &self,
        name: &str,
        zone: &str,
        progress: &Progress,
    ) -> Result<(), ProviderError> {
        let path = self.state_path(name);
        let Some(state) = read_state(&path)? else {
            return Ok(());
        };
        progress.report(ProviderEvent::Deleting {
            name: name.to_owned(),
            zone: zone.to_owned(),
        });
        if process_alive(state.pid, name) {
            // SIGTERM: the agent drains, revokes its lease (its node key goes at once) and
            // exits once it has no session left.
            signal(state.pid, Signal::SIGTERM);
            if !wait_gone(state.pid, name, self.settings.stop_grace).await {
                tracing::warn!(instance = %name, pid = state.pid, grace = ?self.settings.stop_grace, "the agent did not stop; killing it");
                signal(state.pid, Signal::SIGKILL);
                if !wait_gone(state.pid, name, Duration::from_secs(5)).await {
                    return Err(ProviderError::Io {
                        context: format!("agent {name} (pid {}) survived SIGKILL", state.pid),
                        source: std::io::Error::other("process still running"),
                    });
                }
            }
        }
        // The log stays for a post-mortem.
        std::fs::remove_file(&path).map_err(io_error(format!("cannot remove {}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::free_port;

    /// A thousand probes, as a long burst of spawns would make: without the memory of recent
    /// ports the kernel repeats some (about 18 expected over the 28,000-port default range).
    #[test]
    fn free_port_never_repeats_a_recent_port() {
        let ports: Vec<u16> = (0..1000).map(|_| free_port().expect("a port")).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
    }
}
