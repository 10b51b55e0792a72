//! Prometheus `/metrics`: the media counters and signaling gauges in the text exposition
//! format, and the standard process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`), so the agent's own CPU can be read remotely, e.g. by
//! `ionctl loadtest`. Workers never touch the registry; values are copied from their atomics
//! when scraped.

use std::fmt::Write as _;
use std::sync::Mutex;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};

use crate::sfu::MediaCounters;

pub struct Metrics {
    handle: PrometheusHandle,
    counters: MediaCounters,
    process: Mutex<System>,
}

impl Metrics {
    pub fn install(counters: MediaCounters) -> anyhow::Result<Self> {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
        describe();
        Ok(Self {
            handle,
            counters,
            process: Mutex::new(
                System::new()
                    .map_err(|e| anyhow::anyhow!("cannot read process statistics: {e}"))?,
            ),
        })
    }

    /// The exposition text, with media values as of now.
    pub fn render(&self) -> String {
        let t = self.counters.totals();
        metrics::gauge!("ion_agent_sessions").set(t.sessions as f64);
        metrics::gauge!("ion_agent_peers").set(t.peers as f64);
        metrics::gauge!("ion_agent_tracks", "direction" => "in").set(t.tracks_in as f64);
        metrics::gauge!("ion_agent_tracks", "direction" => "out").set(t.tracks_out as f64);
        metrics::counter!("ion_agent_packets_total", "direction" => "in").absolute(t.packets_in);
        metrics::counter!("ion_agent_packets_total", "direction" => "out").absolute(t.packets_out);
        metrics::counter!("ion_agent_bytes_total", "direction" => "in").absolute(t.bytes_in);
        metrics::counter!("ion_agent_bytes_total", "direction" => "out").absolute(t.bytes_out);
        metrics::counter!("ion_agent_forward_errors_total").absolute(t.forward_errors);
        metrics::counter!("ion_agent_send_drops_total").absolute(t.send_drops);
        metrics::counter!("ion_agent_segmented_datagrams_total").absolute(t.segmented_out);
        metrics::counter!("ion_agent_media_panics_total").absolute(t.panics);
        let mut text = self.handle.render();
        text.push_str(&self.process_exposition());
        text
    }

    /// The process collector's two usual samples, written by hand: the `metrics` facade has
    /// integer counters only, and CPU seconds are fractional.
    fn process_exposition(&self) -> String {
        let Ok(pid) = sysinfo::get_current_pid() else {
            return String::new();
        };
        let Ok(mut system) = self.process.lock() else {
            return String::new();
        };
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            false,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let Some(process) = system.process(pid) else {
            return String::new();
        };
        process_lines(process.accumulated_cpu_time(), process.memory())
    }
}

fn process_lines(cpu_millis: u64, rss_bytes: u64) -> String {
    let mut text = String::new();
    let _ = write!(
        text,
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
         # TYPE process_cpu_seconds_total counter\n\
         process_cpu_seconds_total {}\n\
         # HELP process_resident_memory_bytes Resident memory size in bytes.\n\
         # TYPE process_resident_memory_bytes gauge\n\
         process_resident_memory_bytes {rss_bytes}\n",
        cpu_millis as f64 / 1000.0,
    );
    text
}

fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        "ion_agent_sessions",
        "Sessions with at least one participant on this node."
    );
    describe_gauge!("ion_agent_peers", "Participants connected to this node.");
    describe_gauge!(
        "ion_agent_tracks",
        "Published tracks (in) and forwarded tracks (out)."
    );
    describe_counter!(
        "ion_agent_packets_total",
        "UDP datagrams received (in) and sent (out)."
    );
    describe_counter!(
        "ion_agent_bytes_total",
        "UDP bytes received (in) and sent (out)."
    );
    describe_counter!(
        "ion_agent_forward_errors_total",
        "Frames that could not be forwarded to a subscriber (codec mismatch, write error)."
    );
    describe_counter!(
        "ion_agent_send_drops_total",
        "Datagrams the socket refused to send (buffer full, peer unreachable)."
    );
    describe_counter!(
        "ion_agent_segmented_datagrams_total",
        "Datagrams sent out as segments of one UDP GSO message with others to the same peer."
    );
    describe_counter!(
        "ion_agent_media_panics_total",
        "Panics a media worker contained; each ended one session's participants on this node."
    );
    describe_gauge!("ion_agent_signal_connections", "Open signaling WebSockets.");
    describe_counter!(
        "ion_agent_signal_errors_total",
        "Signaling messages answered with a JSON-RPC error."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_samples_follow_the_exposition_format() {
        let text = process_lines(12_340, 4096);
        assert!(text.contains(
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.34\n"
        ));
        assert!(text.contains(
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 4096\n"
        ));
    }
}
