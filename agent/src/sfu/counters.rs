//! Media counters: each worker adds to its own atomics (relaxed, no lock), and the reporter
//! and `/metrics` read the sums. Rates are derived by the reader from two samples.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// One worker's counters. Gauges are set by the worker; totals only grow.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    pub sessions: AtomicU64,
    pub peers: AtomicU64,
    pub tracks_in: AtomicU64,
    pub tracks_out: AtomicU64,
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Frames or packets that could not be forwarded (no matching codec, write error).
    pub forward_errors: AtomicU64,
    /// Datagrams the socket refused to send (buffer full).
    pub send_drops: AtomicU64,
    /// Of `packets_out`, datagrams sent as segments of one UDP GSO message with others.
    pub segmented_out: AtomicU64,
    /// Panics contained by the worker, each ending one session's participants on it.
    pub panics: AtomicU64,
}

/// The sum over all workers at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub sessions: u64,
    pub peers: u64,
    pub tracks_in: u64,
    pub tracks_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub forward_errors: u64,
    pub send_drops: u64,
    pub segmented_out: u64,
    pub panics: u64,
}

/// All workers' counters.
#[derive(Debug, Clone, Default)]
pub struct MediaCounters {
    workers: Arc<Vec<Arc<WorkerCounters>>>,
}

impl MediaCounters {
    pub fn new(workers: usize) -> Self {
        Self {
            workers: Arc::new((0..workers).map(|_| Arc::default()).collect()),
        }
    }

    pub fn worker(&self, index: usize) -> Arc<WorkerCounters> {
        self.workers[index].clone()
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for w in self.workers.iter() {
            t.sessions += w.sessions.load(Relaxed);
            t.peers += w.peers.load(Relaxed);
            t.tracks_in += w.tracks_in.load(Relaxed);
            t.tracks_out += w.tracks_out.load(Relaxed);
            t.packets_in += w.packets_in.load(Relaxed);
            t.bytes_in += w.bytes_in.load(Relaxed);
            t.packets_out += w.packets_out.load(Relaxed);
            t.bytes_out += w.bytes_out.load(Relaxed);
            t.forward_errors += w.forward_errors.load(Relaxed);
            t.send_drops += w.send_drops.load(Relaxed);
            t.segmented_out += w.segmented_out.load(Relaxed);
            t.panics += w.panics.load(Relaxed);
        }
        t
    }
}

/// What the node record shows about media: counts now and rates since the last sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaStats {
    pub sessions: u32,
    pub peers: u32,
    pub tracks_in: u32,
    pub tracks_out: u32,
    pub bitrate_in_bps: u64,
    pub bitrate_out_bps: u64,
    pub packets_out_per_sec: u64,
}

/// Turns counter totals into [`MediaStats`] by differencing consecutive samples.
pub struct MediaSampler {
    counters: MediaCounters,
    last: Option<(Instant, Totals)>,
}

impl MediaSampler {
    pub fn new(counters: MediaCounters) -> Self {
        Self {
            counters,
            last: None,
        }
    }

    /// Sessions with a participant on this node now (no sample taken).
    pub fn live_sessions(&self) -> u64 {
        self.counters.totals().sessions
    }

    pub fn sample(&mut self, now: Instant) -> MediaStats {
        let totals = self.counters.totals();
        let stats = rates(self.last, (now, totals));
        self.last = Some((now, totals));
        stats
    }
}

fn rates(before: Option<(Instant, Totals)>, (now, t): (Instant, Totals)) -> MediaStats {
    let narrow = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    let mut stats = MediaStats {
        sessions: narrow(t.sessions),
        peers: narrow(t.peers),
        tracks_in: narrow(t.tracks_in),
        tracks_out: narrow(t.tracks_out),
        ..MediaStats::default()
    };
    if let Some((then, b)) = before {
        let secs = now.saturating_duration_since(then).as_secs_f64();
        if secs > 0.0 {
            let per_sec = |delta: u64| (delta as f64 / secs).round() as u64;
            stats.bitrate_in_bps = per_sec(t.bytes_in.saturating_sub(b.bytes_in) * 8);
            stats.bitrate_out_bps = per_sec(t.bytes_out.saturating_sub(b.bytes_out) * 8);
            stats.packets_out_per_sec = per_sec(t.packets_out.saturating_sub(b.packets_out));
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rates_come_from_the_difference_of_two_samples() {
        let t0 = Instant::now();
        let before = Totals {
            bytes_out: 1_000,
            packets_out: 10,
            ..Totals::default()
        };
        let after = Totals {
            peers: 3,
            bytes_out: 126_000,
            packets_out: 1_010,
            ..Totals::default()
        };
        let stats = rates(Some((t0, before)), (t0 + Duration::from_secs(2), after));
        assert_eq!(stats.peers, 3);
        assert_eq!(stats.bitrate_out_bps, 500_000);
        assert_eq!(stats.packets_out_per_sec, 500);
        assert_eq!(rates(None, (t0, after)).packets_out_per_sec, 0);
    }

    #[test]
    fn totals_sum_every_worker() {
        let counters = MediaCounters::new(2);
        counters.worker(0).packets_out.fetch_add(5, Relaxed);
        counters.worker(1).packets_out.fetch_add(7, Relaxed);
        counters.worker(1).sessions.store(2, Relaxed);
        let t = counters.totals();
        assert_eq!((t.packets_out, t.sessions), (12, 2));
    }
}
