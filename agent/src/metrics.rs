//! Prometheus `/metrics`: the media counters and signaling gauges in the text exposition
//! format. Workers never touch the registry; values are copied from their atomics when
//! scraped.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::sfu::MediaCounters;

pub struct Metrics {
    handle: PrometheusHandle,
    counters: MediaCounters,
}

impl Metrics {
    pub fn install(counters: MediaCounters) -> anyhow::Result<Self> {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
        describe();
        Ok(Self { handle, counters })
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
        self.handle.render()
    }
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
    describe_gauge!("ion_agent_signal_connections", "Open signaling WebSockets.");
    describe_counter!(
        "ion_agent_signal_errors_total",
        "Signaling messages answered with a JSON-RPC error."
    );
}
