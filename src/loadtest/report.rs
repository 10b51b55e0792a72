//! The load test's results as data: the stable JSON object of `ionctl loadtest -o json`
//! (schema `ionctl.loadtest/v1`, documented in the README) and the arithmetic from raw
//! window measurements to it. Nothing here prints; the CLI renders tables from these types.

use hdrhistogram::Histogram;
use serde::Serialize;

use super::calibrate::{Calibration, Policy, Sample};
use super::stats::Kind;

pub const SCHEMA: &str = "ionctl.loadtest/v1";
pub const CALIBRATION_SCHEMA: &str = "ionctl.loadtest.calibration/v1";

/// What was asked for.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    /// The SFU driven: `ion` or `janus`.
    pub target: super::sfu::Sfu,
    pub url: String,
    /// The node, when it is known (`--place`, or found in etcd).
    pub node: Option<String>,
    pub session: String,
    pub publishers: u32,
    pub subscribers: u32,
    pub duration_s: f64,
    pub video_bitrate_bps: u64,
    pub video_fps: u32,
    pub audio: bool,
    pub rtx: bool,
    /// Joins per second.
    pub ramp_per_s: f64,
    pub warmup_s: f64,
}

/// One `ionctl loadtest` run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub config: RunConfig,
    pub window: WindowReport,
    pub summary: Summary,
    pub agent: AgentReport,
    pub client: ClientReport,
    /// One row per publisher track, aggregated over its subscribers.
    pub publisher_tracks: Vec<PublisherTrackRow>,
    /// One row per node the participants joined, when they joined several (a session that
    /// spans nodes): what its subscribers received, so one relay hop's cost shows against
    /// the origin's own viewers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeRow>,
    /// One row per subscriber × publisher track.
    pub tracks: Vec<TrackRow>,
}

/// What the subscribers on one node received.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRow {
    pub node: String,
    pub subscribers: u32,
    pub packets_expected: u64,
    pub packets_received: u64,
    pub loss: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    /// Wall-clock µs since the Unix epoch.
    pub start_us: u64,
    pub end_us: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub participants_joined: u32,
    pub join_errors: u32,
    pub tracks_expected: u64,
    pub tracks_received: u64,
    /// Publisher packets sent in the window × the subscribers that should get them.
    pub packets_expected: u64,
    /// Of those, the ones recovered by their subscribers.
    pub packets_received: u64,
    /// 1 − received / expected.
    pub loss: f64,
    /// What all subscribers received together, RTP payload bits per second.
    pub bitrate_bps: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    /// Join failures, PeerConnection failures and other problems, each with its count.
    pub errors: Vec<ErrorCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorCount {
    pub message: String,
    pub count: u32,
}

/// Where a CPU figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuSource {
    /// utime + stime of the local agent process (`/proc/<pid>/stat`).
    Proc,
    /// The agent's own `process_cpu_seconds_total` on its `/metrics`: per process, and
    /// readable from another host.
    Metrics,
    /// The node record's `stats.cpu` × vcpus in etcd (the whole machine).
    Etcd,
    /// None was available.
    Unavailable,
}

/// Which source of the agent's CPU to use (`ionctl loadtest --agent-cpu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentCpuFrom {
    /// The first available of proc, metrics, etcd.
    #[default]
    Auto,
    Proc,
    Metrics,
    Etcd,
}

/// The agent's CPU-seconds over the window from the preferred source, given what each
/// source measured.
pub fn choose_agent_cpu(
    from: AgentCpuFrom,
    proc: Option<f64>,
    metrics: Option<f64>,
    etcd: Option<f64>,
) -> (CpuSource, Option<f64>) {
    let pick = |source, seconds: Option<f64>| match seconds {
        Some(s) => (source, Some(s)),
        None => (CpuSource::Unavailable, None),
    };
    match from {
        AgentCpuFrom::Proc => pick(CpuSource::Proc, proc),
        AgentCpuFrom::Metrics => pick(CpuSource::Metrics, metrics),
        AgentCpuFrom::Etcd => pick(CpuSource::Etcd, etcd),
        AgentCpuFrom::Auto => [
            (CpuSource::Proc, proc),
            (CpuSource::Metrics, metrics),
            (CpuSource::Etcd, etcd),
        ]
        .into_iter()
        .find_map(|(source, seconds)| seconds.map(|s| (source, Some(s))))
        .unwrap_or((CpuSource::Unavailable, None)),
    }
}

/// Where the forwarded-packet count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PacketSource {
    /// `ion_agent_packets_total{direction="out"}` on the agent's `/metrics`.
    Metrics,
    /// The RTP packets the subscribers received.
    Subscribers,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentReport {
    pub cpu_source: CpuSource,
    pub pid: Option<u32>,
    /// Cores the agent may use (its affinity when local, its node record's vcpus otherwise).
    pub vcpus: Option<f64>,
    pub cpu_seconds: Option<f64>,
    /// Average cores busy over the window.
    pub cores_busy: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub packets_source: PacketSource,
    pub packets_forwarded: f64,
    /// Datagrams the agent's socket refused, and frames it could not forward, in the window
    /// (from `/metrics`): losses on the agent's side rather than the load generator's.
    pub send_drops: Option<f64>,
    pub forward_errors: Option<f64>,
    pub cpu_seconds_per_million_packets: Option<f64>,
    pub packets_per_core_second: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientReport {
    pub cpu_seconds: Option<f64>,
    pub cores_busy: Option<f64>,
    pub vcpus: Option<f64>,
    /// How busy the load generator's CPUs were with anything (0..1 of them, all processes):
    /// near 1 means it was starved, whatever its own figure says.
    pub host_busy: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublisherTrackRow {
    pub publisher: String,
    pub kind: Kind,
    /// The track's index in the run (in every stamp).
    pub index: u32,
    /// Packets the publisher sent in the window.
    pub sent: u64,
    pub subscribers_expected: u32,
    pub subscribers_receiving: u32,
    pub packets_expected: u64,
    pub packets_received: u64,
    pub loss: f64,
    /// Average per receiving subscriber.
    pub bitrate_bps: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrackRow {
    pub subscriber: String,
    pub publisher: String,
    pub kind: Kind,
    pub index: u32,
    /// RTP packets received in the window (the subscriber's own packets).
    pub rtp_packets: u64,
    pub packets_expected: u64,
    pub packets_received: u64,
    pub loss: f64,
    pub bitrate_bps: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

/// `--calibrate`'s result.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationReport {
    pub schema: &'static str,
    pub url: String,
    pub policy: Policy,
    pub samples: Vec<Sample>,
    /// The summary of each step, in order.
    pub steps: Vec<StepReport>,
    pub calibration: Calibration,
    /// The line for `[cluster]` in the agent's TOML, and the same as an environment variable.
    pub config_line: String,
    pub env: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub subscribers: u32,
    pub summary: Summary,
    pub agent: AgentReport,
    pub client: ClientReport,
}

/// Loss as a fraction; 0 when nothing was expected.
pub fn loss(expected: u64, received: u64) -> f64 {
    if expected == 0 {
        0.0
    } else {
        1.0 - (received.min(expected) as f64 / expected as f64)
    }
}

/// A percentile of a µs histogram, in ms.
pub fn percentile_ms(h: &Histogram<u64>, quantile: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(quantile) as f64 / 1000.0)
}

/// Agent CPU per million forwarded packets, and forwarded packets per agent core-second.
pub fn efficiency(cpu_seconds: Option<f64>, packets: f64) -> (Option<f64>, Option<f64>) {
    match cpu_seconds {
        Some(cpu) if cpu > 0.0 && packets > 0.0 => (Some(cpu * 1e6 / packets), Some(packets / cpu)),
        _ => (None, None),
    }
}

/// Counts equal messages.
pub fn count_errors(messages: impl IntoIterator<Item = String>) -> Vec<ErrorCount> {
    let mut counts: Vec<ErrorCount> = Vec::new();
    for message in messages {
        match counts.iter_mut().find(|c| c.message == message) {
            Some(c) => c.count += 1,
            None => counts.push(ErrorCount { message, count: 1 }),
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_and_efficiency() {
        assert_eq!(loss(0, 0), 0.0);
        assert_eq!(loss(100, 99), 0.010000000000000009);
        assert_eq!(loss(100, 120), 0.0);
        assert_eq!(efficiency(Some(2.0), 1e6), (Some(2.0), Some(500_000.0)));
        assert_eq!(efficiency(None, 1e6), (None, None));
        let errors = count_errors(["a".to_owned(), "b".to_owned(), "a".to_owned()]);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].count, 2);
    }

    #[test]
    fn the_agent_cpu_source_is_the_preferred_one_available() {
        use AgentCpuFrom::*;
        let all = (Some(1.0), Some(2.0), Some(3.0));
        let choose = |from, (p, m, e)| choose_agent_cpu(from, p, m, e);
        assert_eq!(choose(Auto, all), (CpuSource::Proc, Some(1.0)));
        assert_eq!(
            choose(Auto, (None, Some(2.0), Some(3.0))),
            (CpuSource::Metrics, Some(2.0))
        );
        assert_eq!(
            choose(Auto, (None, None, Some(3.0))),
            (CpuSource::Etcd, Some(3.0))
        );
        assert_eq!(
            choose(Auto, (None, None, None)),
            (CpuSource::Unavailable, None)
        );
        assert_eq!(choose(Metrics, all), (CpuSource::Metrics, Some(2.0)));
        assert_eq!(choose(Etcd, all), (CpuSource::Etcd, Some(3.0)));
        // A forced source that is missing is reported as such, not replaced.
        assert_eq!(
            choose(Metrics, (Some(1.0), None, Some(3.0))),
            (CpuSource::Unavailable, None)
        );
    }
}
