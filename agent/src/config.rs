//! Agent configuration: defaults < TOML file (`--config`) < `ION_AGENT_SECTION__KEY`
//! environment variables < flags. Unknown keys and wrong types are errors that name the key
//! and the file, so a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ion_cluster::model::keys::validate_id;
use ion_cluster::store::EtcdOptions;
use ion_cluster::token::{AuthOptions, JoinSecret};
use serde::{Deserialize, Serialize};

/// Flags of `ion-agent`. Each also reads an `ION_AGENT_*` variable.
#[derive(Debug, Default, clap::Parser)]
#[command(name = "ion-agent", version, about = "The ion cluster SFU agent")]
pub struct Flags {
    /// TOML config file (see agent.sample.toml).
    #[arg(long, env = "ION_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Node id in the cluster [default: the host name].
    #[arg(long, env = "ION_AGENT_NODE_ID")]
    pub node_id: Option<String>,
    /// etcd endpoints, comma-separated.
    #[arg(long, env = "ION_AGENT_ETCD_ENDPOINTS", value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// Address of the signaling and metrics HTTP listener.
    #[arg(long, env = "ION_AGENT_LISTEN")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    pub cluster: ClusterConfig,
    pub etcd: EtcdOptions,
    pub signal: SignalConfig,
    pub webrtc: WebrtcConfig,
    pub report: ReportConfig,
    pub gce: GceConfig,
    /// Join tokens: with `enabled`, a join needs a token from `ionctl place` signed with
    /// `secret` (shared with the placers) for this session on this node.
    pub auth: AuthOptions,
    pub recorder: RecorderConfig,
}

/// `[recorder]`: where this node writes the recordings placed on it, and how it uploads
/// them to Cloud Storage when a recording names a bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecorderConfig {
    /// Each recording gets a directory `<dir>/<sid>-<start time>` with one WebM per
    /// participant.
    pub dir: PathBuf,
    /// The Cloud Storage JSON API's base URL (a test server in tests).
    pub storage_url: String,
    /// Credentials for uploads, as `[gce] auth` of ionctl: `adc` (Application Default
    /// Credentials: on GCE, the VM's service account), `metadata`, or `key-file`.
    pub auth: ion_cluster::compute::AuthMode,
    /// The service-account key for `auth = "key-file"`.
    pub key_file: Option<PathBuf>,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/var/lib/ion-agent/recordings"),
            storage_url: ion_cluster::gcs::DEFAULT_BASE_URL.to_owned(),
            auth: ion_cluster::compute::AuthMode::Adc,
            key_file: None,
        }
    }
}

impl RecorderConfig {
    /// The credentials uploads use.
    pub fn upload_auth(&self) -> anyhow::Result<ion_cluster::compute::Auth> {
        use ion_cluster::compute::{Auth, AuthMode};
        Ok(match (self.auth, &self.key_file) {
            (AuthMode::Adc, _) => Auth::Adc,
            (AuthMode::Metadata, _) => Auth::Metadata { endpoint: None },
            (AuthMode::KeyFile, Some(path)) => Auth::KeyFile(path.clone()),
            (AuthMode::KeyFile, None) => {
                bail!("[recorder] auth = \"key-file\" needs [recorder] key_file")
            }
        })
    }
}

/// Who this node is in the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Empty means the host name.
    pub node_id: String,
    /// Used when the GCE metadata server does not answer.
    pub zone: String,
    pub machine_type: String,
    /// 0 means detect the machine's logical CPUs.
    pub vcpus: u32,
    /// Capacity units one vCPU carries; `ionctl loadtest --calibrate` measures it.
    pub units_per_vcpu: u32,
    pub labels: BTreeMap<String, String>,
    /// After SIGTERM (or a preemption notice) the agent drains and waits this long at most
    /// for its sessions to end.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Reserve this node for one session id (set by `ionctl spawn --hold` and the
    /// autoscaler); empty for none.
    pub hold_for: String,
    /// A hold ends when its session goes live here, or after this long.
    #[serde(with = "humantime_serde")]
    pub hold_ttl: Duration,
    /// Other agents run on this host (the local provider, tests): the host's CPU is then no
    /// health signal for this node. Load is the agent's own CPU either way.
    pub shared_host: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: String::new(),
            zone: "local".to_owned(),
            machine_type: "local".to_owned(),
            vcpus: 0,
            // The seed's observation, kept until `ionctl loadtest --calibrate` has measured
            // the machine type: pion carried 150–200 subscribers per n1 vCPU.
            units_per_vcpu: ion_cluster::capacity::DEFAULT_UNITS_PER_VCPU,
            labels: BTreeMap::new(),
            shutdown_grace: Duration::from_secs(2 * 3600),
            hold_for: String::new(),
            hold_ttl: Duration::from_secs(300),
            shared_host: false,
        }
    }
}

/// Where clients reach this node, and what signaling accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalConfig {
    pub listen: SocketAddr,
    /// The host clients and media use; empty means the listen address's IP.
    pub public_host: String,
    /// Let a join create its session when no placer reserved it (local use, tests). With
    /// false, only sessions placed on this node by `ionctl place` can be joined.
    pub allow_unplaced: bool,
    /// Largest signaling message accepted, in bytes.
    pub max_message_bytes: usize,
    /// A connection that sends this many bad messages is closed.
    pub max_errors: u32,
    /// A participant whose WebSocket stays silent this long (no message, no pong) is removed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A WebSocket that has not joined this long after it opened is closed: a client that
    /// holds connections open without joining holds nothing for long.
    #[serde(with = "humantime_serde")]
    pub join_timeout: Duration,
    /// Open signaling connections at most, in all and from one address; past either, the
    /// upgrade is refused (503, 429). Connections through a gateway all come from its
    /// address: keep `max_connections_per_ip` above what one gateway brings to this node.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// PEM certificate chain and private key: serve `https`/`wss` on the signaling port
    /// (reloaded when the files change). For one-node set-ups; in a cluster the gateway
    /// (`ionctl serve --tls-cert`) terminates TLS and the agents stay on the internal network.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for SignalConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7000)),
            public_host: String::new(),
            allow_unplaced: true,
            max_message_bytes: 64 * 1024,
            max_errors: 5,
            idle_timeout: Duration::from_secs(30),
            join_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_ip: 2_000,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// Media transport, in the spirit of ion-sfu's `[webrtc]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebrtcConfig {
    /// Address the media sockets bind to.
    pub bind: IpAddr,
    /// UDP port of the first media worker; worker i uses `udp_port + i`. 0 picks free ports.
    pub udp_port: u16,
    /// Media worker threads, each with its own UDP socket; 0 means one per CPU.
    pub workers: usize,
    /// Public IPs to announce as host candidates when the node sits behind 1:1 NAT (GCE
    /// external IPs). Empty announces the bind address (or `[signal] public_host`).
    pub nat1to1: Vec<IpAddr>,
    /// STUN servers (`stun:host[:port]`) that tell a node behind NAT its public address when
    /// `nat1to1` is not set. The agent itself is ICE-lite and needs no TURN.
    pub ice_servers: Vec<String>,
    /// How long forwarded video is kept to answer a subscriber's NACK with a resend (RTX).
    /// Each subscriber's video stream keeps its own history, so this bounds the memory a
    /// node spends per viewer; a NACK older than a few round trips comes too late to help.
    #[serde(with = "humantime_serde")]
    pub resend_history: Duration,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::from([127, 0, 0, 1]),
            udp_port: 0,
            workers: 0,
            nat1to1: Vec::new(),
            ice_servers: Vec::new(),
            resend_history: crate::sfu::DEFAULT_RESEND_HISTORY,
        }
    }
}

/// The heartbeat and its write budget (docs/etcd-schema.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportConfig {
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How often stats are sampled (not written).
    #[serde(with = "humantime_serde")]
    pub sample_interval: Duration,
    /// Never two stats writes closer than this.
    #[serde(with = "humantime_serde")]
    pub min_write_interval: Duration,
    /// Write at least this often even when nothing moved, so readers see fresh stats.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// A change of CPU (fraction of the machine) that is worth an early write.
    pub cpu_threshold: f64,
    /// A change of used memory (fraction of the total) that is worth an early write.
    pub mem_threshold: f64,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(10),
            sample_interval: Duration::from_secs(1),
            min_write_interval: Duration::from_secs(2),
            heartbeat_interval: Duration::from_secs(10),
            cpu_threshold: 0.10,
            mem_threshold: 0.05,
        }
    }
}

/// Whether to ask the GCE metadata server for zone and machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataMode {
    /// Only when the machine's DMI data says it is a Google Compute Engine VM.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GceConfig {
    pub metadata: MetadataMode,
    /// host[:port] of the metadata server.
    pub metadata_host: String,
    #[serde(with = "humantime_serde")]
    pub metadata_timeout: Duration,
}

impl Default for GceConfig {
    fn default() -> Self {
        Self {
            metadata: MetadataMode::Auto,
            metadata_host: "metadata.google.internal".to_owned(),
            metadata_timeout: Duration::from_millis(500),
        }
    }
}

impl AgentConfig {
    /// Loads the layered configuration and checks it.
    pub fn load(flags: &Flags) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(AgentConfig::default()));
        if let Some(path) = &flags.config {
            if !path.is_file() {
                bail!(
                    "config file {} does not exist; pass an existing file to --config \
                     (agent.sample.toml shows every key)",
                    path.display()
                );
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only SECTION__KEY variables map onto the file's tables; the flat ones
        // (ION_AGENT_CONFIG, ION_AGENT_NODE_ID, ...) belong to the flags above.
        figment = figment.merge(
            Env::prefixed("ION_AGENT_")
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );
        let mut config: AgentConfig = figment.extract().map_err(|e| {
            anyhow::anyhow!(
                "invalid agent configuration: {}",
                describe_figment_error(e, flags.config.as_deref())
            )
        })?;
        if let Some(node_id) = &flags.node_id {
            config.cluster.node_id = node_id.clone();
        }
        if !flags.etcd.is_empty() {
            config.etcd.endpoints = flags.etcd.clone();
        }
        if let Some(listen) = flags.listen {
            config.signal.listen = listen;
        }
        config.fill_defaults()?;
        config.validate(flags.config.as_deref())?;
        Ok(config)
    }

    fn fill_defaults(&mut self) -> anyhow::Result<()> {
        if self.cluster.node_id.is_empty() {
            self.cluster.node_id = hostname().context(
                "cannot read the host name for the default node id; set [cluster] node_id",
            )?;
        }
        if self.signal.public_host.is_empty() {
            self.signal.public_host = self.signal.listen.ip().to_string();
        }
        Ok(())
    }

    fn validate(&self, file: Option<&Path>) -> anyhow::Result<()> {
        let at = file.map_or_else(String::new, |f| format!(" in {}", f.display()));
        validate_id("node", &self.cluster.node_id)
            .with_context(|| format!("bad [cluster] node_id{at}"))?;
        if !self.cluster.hold_for.is_empty() {
            validate_id("session", &self.cluster.hold_for)
                .with_context(|| format!("bad [cluster] hold_for{at}"))?;
        }
        if self.cluster.units_per_vcpu == 0 {
            bail!("[cluster] units_per_vcpu{at} must be at least 1");
        }
        let report = &self.report;
        if report.lease_ttl < Duration::from_secs(2) {
            bail!("[report] lease_ttl{at} must be at least 2s");
        }
        if report.min_write_interval > report.heartbeat_interval {
            bail!("[report] min_write_interval{at} must not exceed heartbeat_interval");
        }
        if report.sample_interval.is_zero() {
            bail!("[report] sample_interval{at} must be more than 0");
        }
        if self.auth.enabled {
            let secret = self.auth.secret.as_deref().with_context(|| {
                format!(
                    "[auth] enabled{at} needs [auth] secret (or ION_AGENT_AUTH__SECRET), the \
                     placers' join secret"
                )
            })?;
            JoinSecret::new(secret).with_context(|| format!("bad [auth] secret{at}"))?;
        }
        if self.webrtc.resend_history > Duration::from_secs(10) {
            bail!(
                "[webrtc] resend_history{at} must be at most 10s, not {}: a resend that late \
                 cannot help, and every viewer keeps its own history",
                humantime::format_duration(self.webrtc.resend_history)
            );
        }
        if self.signal.max_message_bytes < 1024 {
            bail!("[signal] max_message_bytes{at} must be at least 1024");
        }
        if self.signal.tls_cert.is_some() != self.signal.tls_key.is_some() {
            bail!("[signal] tls_cert and tls_key{at} go together: set both, or neither");
        }
        if self.webrtc.bind.is_unspecified()
            && self.webrtc.nat1to1.is_empty()
            && self.webrtc.ice_servers.is_empty()
            && self.signal.public_host.parse::<IpAddr>().is_err()
        {
            bail!(
                "[webrtc] bind{at} is {}, which is no address clients can reach: set [webrtc] \
                 nat1to1 to the public IP(s), [webrtc] ice_servers to a STUN server, or \
                 [signal] public_host to an IP",
                self.webrtc.bind
            );
        }
        for (key, value) in [
            ("cpu_threshold", report.cpu_threshold),
            ("mem_threshold", report.mem_threshold),
        ] {
            if !(0.0..=1.0).contains(&value) {
                bail!("[report] {key}{at} must be between 0 and 1, not {value}");
            }
        }
        Ok(())
    }

    /// The join secret when joins must carry a token.
    pub fn join_secret(&self) -> Option<JoinSecret> {
        // validate() checked it when auth is enabled.
        self.auth
            .enabled
            .then(|| {
                self.auth
                    .secret
                    .as_deref()
                    .and_then(|s| JoinSecret::new(s).ok())
            })
            .flatten()
    }

    /// The secret relays between nodes are signed with: `[auth] secret`, whether or not joins
    /// need tokens.
    pub fn relay_secret(&self) -> Option<JoinSecret> {
        self.auth
            .secret
            .as_deref()
            .and_then(|s| JoinSecret::new(s).ok())
    }

    /// The IPs announced as ICE host candidates.
    pub fn candidate_ips(&self) -> Vec<IpAddr> {
        if !self.webrtc.nat1to1.is_empty() {
            return self.webrtc.nat1to1.clone();
        }
        if !self.webrtc.bind.is_unspecified() {
            return vec![self.webrtc.bind];
        }
        // validate() guarantees public_host is an IP here.
        self.signal.public_host.parse().into_iter().collect()
    }

    /// `ws://host:port/ws`, where clients open signaling.
    pub fn signal_url(&self) -> String {
        let host = &self.signal.public_host;
        let port = self.signal.listen.port();
        let scheme = if self.signal.tls_cert.is_some() {
            "wss"
        } else {
            "ws"
        };
        if host.contains(':') {
            format!("{scheme}://[{host}]:{port}/ws")
        } else {
            format!("{scheme}://{host}:{port}/ws")
        }
    }
}

/// figment names the key as `default.section.key` where operators wrote `[section] key`, and
/// shortens the file to a path relative to the working directory; name both as given.
fn describe_figment_error(error: figment::Error, file: Option<&Path>) -> String {
    let relative = file.map(|f| figment::Source::File(f.to_owned()).to_string());
    error
        .into_iter()
        .map(|e| {
            let text = e.to_string().replace("key \"default.", "key \"");
            match (file, &relative) {
                (Some(file), Some(relative)) => text.replace(
                    &format!(" in {relative} "),
                    &format!(" in {} ", file.display()),
                ),
                _ => text,
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn hostname() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    Ok(name.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_shipped_systemd_unit_waits_longer_than_the_shutdown_grace() {
        let unit = include_str!("../deploy/ion-agent.service");
        let timeout = unit
            .lines()
            .find_map(|l| l.strip_prefix("TimeoutStopSec="))
            .expect("TimeoutStopSec in the unit");
        let timeout = humantime::parse_duration(timeout).expect("a systemd time span");
        assert!(
            timeout > ClusterConfig::default().shutdown_grace,
            "systemd would kill a draining agent after {timeout:?}"
        );
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn flags_for(path: &Path) -> Flags {
        Flags {
            config: Some(path.to_owned()),
            node_id: None,
            ..Flags::default()
        }
    }

    #[test]
    fn file_values_override_defaults() {
        let f =
            file("[cluster]\nnode_id = \"n1\"\nvcpus = 4\n[report]\nheartbeat_interval = \"5s\"\n");
        let config = AgentConfig::load(&flags_for(f.path())).unwrap();
        assert_eq!(config.cluster.node_id, "n1");
        assert_eq!(config.cluster.vcpus, 4);
        assert_eq!(config.report.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(config.report.lease_ttl, Duration::from_secs(10));
    }

    #[test]
    fn flags_override_the_file() {
        let f = file("[cluster]\nnode_id = \"from-file\"\n");
        let mut flags = flags_for(f.path());
        flags.node_id = Some("from-flag".to_owned());
        flags.etcd = vec!["http://127.0.0.1:1".to_owned()];
        let config = AgentConfig::load(&flags).unwrap();
        assert_eq!(config.cluster.node_id, "from-flag");
        assert_eq!(config.etcd.endpoints, ["http://127.0.0.1:1"]);
    }

    #[test]
    fn unknown_key_names_the_key_and_the_file() {
        let f = file("[cluster]\nnode_id = \"n1\"\nunits_per_cpu = 3\n");
        let error = AgentConfig::load(&flags_for(f.path()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("units_per_cpu"), "{error}");
        assert!(error.contains(&f.path().display().to_string()), "{error}");
    }

    #[test]
    fn wrong_type_names_the_key_and_the_file() {
        let f = file("[cluster]\nnode_id = \"n1\"\nvcpus = \"four\"\n");
        let error = AgentConfig::load(&flags_for(f.path()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("cluster.vcpus"), "{error}");
        assert!(error.contains(&f.path().display().to_string()), "{error}");
    }

    #[test]
    fn inconsistent_intervals_are_refused() {
        let f = file("[cluster]\nnode_id = \"n1\"\n[report]\nmin_write_interval = \"20s\"\n");
        let error = AgentConfig::load(&flags_for(f.path()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("min_write_interval"), "{error}");
    }

    #[test]
    fn resend_history_is_a_duration_of_at_most_ten_seconds() {
        assert_eq!(
            AgentConfig::default().webrtc.resend_history,
            Duration::from_secs(1)
        );
        let f = file("[cluster]\nnode_id = \"n1\"\n[webrtc]\nresend_history = \"500ms\"\n");
        let config = AgentConfig::load(&flags_for(f.path())).unwrap();
        assert_eq!(config.webrtc.resend_history, Duration::from_millis(500));
        let f = file("[cluster]\nnode_id = \"n1\"\n[webrtc]\nresend_history = \"1min\"\n");
        let error = AgentConfig::load(&flags_for(f.path()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("resend_history"), "{error}");
        assert!(error.contains("at most 10s, not 1m"), "{error}");
    }

    #[test]
    fn missing_file_is_an_error() {
        let error = AgentConfig::load(&flags_for(Path::new("/nonexistent/agent.toml")))
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/agent.toml"), "{error}");
    }

    #[test]
    fn signal_url_brackets_ipv6() {
        let mut config = AgentConfig::default();
        config.signal.public_host = "::1".to_owned();
        assert_eq!(config.signal_url(), "ws://[::1]:7000/ws");
        config.signal.public_host = "10.1.2.3".to_owned();
        assert_eq!(config.signal_url(), "ws://10.1.2.3:7000/ws");
    }
}
