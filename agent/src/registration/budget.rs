//! The stats write budget (docs/etcd-schema.md), as a pure decision: never two writes within
//! `min_interval`; between that and `heartbeat_interval`, write only when something moved past
//! its threshold; after `heartbeat_interval`, write anyway. 5,000 idle nodes then cost etcd
//! 500 writes/s at most.

use std::time::{Duration, Instant};

use ion_cluster::model::{NodeState, NodeStats};

/// Relative change of a rate (bitrate, packets/s) that is worth an early write.
const RATE_THRESHOLD: f64 = 0.20;

#[derive(Debug, Clone, PartialEq)]
pub struct WriteBudget {
    pub min_interval: Duration,
    pub heartbeat_interval: Duration,
    /// Absolute change of CPU as a fraction of the machine.
    pub cpu_threshold: f64,
    /// Change of used memory as a fraction of total memory.
    pub mem_threshold: f64,
}

/// The fields readers act on at once (state, hold): any change is worth a write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Presence {
    pub state: NodeState,
    pub hold_for: Option<String>,
    pub problem: Option<String>,
}

/// What was last written, and when.
#[derive(Debug, Clone)]
pub struct LastWrite {
    pub at: Instant,
    pub stats: NodeStats,
    pub presence: Presence,
}

impl WriteBudget {
    pub fn should_write(
        &self,
        last: Option<&LastWrite>,
        stats: &NodeStats,
        presence: &Presence,
        now: Instant,
    ) -> bool {
        let Some(last) = last else {
            return true;
        };
        let since = now.saturating_duration_since(last.at);
        if since < self.min_interval {
            return false;
        }
        since >= self.heartbeat_interval
            || last.presence != *presence
            || self.moved(&last.stats, stats)
    }

    fn moved(&self, before: &NodeStats, now: &NodeStats) -> bool {
        let mem_total = now.mem_total_bytes.max(1) as f64;
        let mem_delta = now.mem_used_bytes.abs_diff(before.mem_used_bytes) as f64 / mem_total;
        (now.cpu - before.cpu).abs() >= self.cpu_threshold
            || (now.agent_cpu - before.agent_cpu).abs() >= self.cpu_threshold
            || (now.other_cpu - before.other_cpu).abs() >= self.cpu_threshold
            || mem_delta >= self.mem_threshold
            || now.sessions != before.sessions
            || now.peers != before.peers
            || now.tracks_in != before.tracks_in
            || now.tracks_out != before.tracks_out
            || rate_moved(before.bitrate_in_bps, now.bitrate_in_bps)
            || rate_moved(before.bitrate_out_bps, now.bitrate_out_bps)
            || rate_moved(before.packets_out_per_sec, now.packets_out_per_sec)
    }
}

fn rate_moved(before: u64, now: u64) -> bool {
    let base = before.max(now);
    base > 0 && (before.abs_diff(now) as f64) / (base as f64) >= RATE_THRESHOLD
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn budget() -> WriteBudget {
        WriteBudget {
            min_interval: Duration::from_secs(2),
            heartbeat_interval: Duration::from_secs(10),
            cpu_threshold: 0.10,
            mem_threshold: 0.05,
        }
    }

    fn stats(cpu: f64) -> NodeStats {
        NodeStats {
            cpu,
            mem_used_bytes: 1 << 30,
            mem_total_bytes: 8 << 30,
            ..NodeStats::default()
        }
    }

    fn last(at: Instant, cpu: f64) -> LastWrite {
        LastWrite {
            at,
            stats: stats(cpu),
            presence: ready(),
        }
    }

    fn ready() -> Presence {
        Presence::default()
    }

    #[test]
    fn first_write_is_immediate() {
        assert!(budget().should_write(None, &stats(0.0), &ready(), Instant::now()));
    }

    #[test]
    fn idle_node_writes_only_on_heartbeat() {
        let t0 = Instant::now();
        let last = last(t0, 0.02);
        let b = budget();
        for secs in [1, 2, 5, 9] {
            let now = t0 + Duration::from_secs(secs);
            assert!(
                !b.should_write(Some(&last), &stats(0.03), &ready(), now),
                "at {secs}s"
            );
        }
        assert!(b.should_write(
            Some(&last),
            &stats(0.03),
            &ready(),
            t0 + Duration::from_secs(10)
        ));
    }

    #[test]
    fn a_moved_stat_writes_early_but_not_within_min_interval() {
        let t0 = Instant::now();
        let last = last(t0, 0.02);
        let b = budget();
        let busy = stats(0.60);
        assert!(!b.should_write(
            Some(&last),
            &busy,
            &ready(),
            t0 + Duration::from_millis(1999)
        ));
        assert!(b.should_write(Some(&last), &busy, &ready(), t0 + Duration::from_secs(2)));
        let mut joined = stats(0.02);
        joined.peers = 1;
        assert!(b.should_write(Some(&last), &joined, &ready(), t0 + Duration::from_secs(2)));
    }

    #[test]
    fn a_presence_change_writes_early() {
        let t0 = Instant::now();
        let last = last(t0, 0.02);
        let draining = Presence {
            state: NodeState::Draining,
            hold_for: None,
            problem: None,
        };
        let at = t0 + Duration::from_secs(2);
        assert!(budget().should_write(Some(&last), &stats(0.02), &draining, at));
        let troubled = Presence {
            problem: Some("recording of s1 failed: disk full".to_owned()),
            ..ready()
        };
        assert!(budget().should_write(Some(&last), &stats(0.02), &troubled, at));
    }

    #[test]
    fn rates_move_by_relative_change() {
        assert!(!rate_moved(0, 0));
        assert!(rate_moved(0, 10));
        assert!(!rate_moved(1000, 1100));
        assert!(rate_moved(1000, 1300));
    }

    proptest! {
        /// Whatever the stats do, a sequence of decisions never writes twice within
        /// min_interval and never goes longer than heartbeat_interval plus one sample
        /// without a write.
        #[test]
        fn budget_holds_for_any_stats(cpus in proptest::collection::vec(0.0f64..=1.0, 1..300)) {
            let b = budget();
            let sample = Duration::from_secs(1);
            let t0 = Instant::now();
            let mut last: Option<LastWrite> = None;
            let mut writes = Vec::new();
            for (i, cpu) in cpus.iter().enumerate() {
                let now = t0 + sample * i as u32;
                let s = stats(*cpu);
                if b.should_write(last.as_ref(), &s, &ready(), now) {
                    writes.push(now);
                    last = Some(LastWrite { at: now, stats: s, presence: ready() });
                }
            }
            for pair in writes.windows(2) {
                let gap = pair[1] - pair[0];
                prop_assert!(gap >= b.min_interval);
                prop_assert!(gap <= b.heartbeat_interval + sample);
            }
        }
    }
}
