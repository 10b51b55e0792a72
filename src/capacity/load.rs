//! A node's effective load and health, read from its record. Effective load is the larger of
//! what the agent's own CPU shows and what has been committed to it. Committed units count
//! from the moment a reservation is written, so a burst of joins cannot overrun a node whose
//! CPU has not risen yet; observed units catch load that no reservation explains.
//!
//! Observed load is believed only where it can be forwarded media: on a node that carries
//! something and has finished its warm-up. An empty node's CPU is boot work, a guest agent or
//! a neighbour, never a participant, so an empty node is never refused for lack of units.
//! Host CPU that the agent did not spend is a separate health signal: a host saturated by
//! something else takes no new session, whatever its units say (docs/placement.md).

use std::time::{Duration, SystemTime};

use rustc_hash::FxHashMap;

use crate::model::{NodeRecord, SessionRecord, Units};

/// One node's load figures, in units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeLoad {
    pub observed: f64,
    pub committed: Units,
    pub capacity: Units,
}

impl NodeLoad {
    /// The load of `node` carrying `committed` units, as placement sees it at `now`.
    pub fn of(node: &NodeRecord, committed: Units, now: SystemTime, rules: &LoadRules) -> Self {
        Self::given(node, committed, &condition(node, now, rules))
    }

    /// [`NodeLoad::of`], with the node's condition already at hand.
    pub fn given(node: &NodeRecord, committed: Units, condition: &Condition) -> Self {
        Self {
            observed: believed_given(node, committed, condition),
            committed,
            capacity: node.capacity,
        }
    }

    /// `max(observed, committed)`.
    pub fn effective(&self) -> f64 {
        self.observed.max(f64::from(self.committed))
    }

    /// Effective load as a fraction of capacity; a node without capacity counts as full.
    pub fn utilisation(&self) -> f64 {
        if self.capacity == 0 {
            1.0
        } else {
            self.effective() / f64::from(self.capacity)
        }
    }
}

/// How observed load and host health are read from node records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadRules {
    /// After an agent starts, its observed load and host CPU are ignored this long (a booting
    /// VM runs its guest agent and startup script), like a managed instance group's
    /// initialization period. Committed demand counts from the first moment.
    pub warmup: Duration,
    /// A host whose CPU spent outside the agent reaches this fraction of all its cores is
    /// busy: its node takes no new session. Ignored on shared hosts.
    pub host_busy_cpu: f64,
}

impl Default for LoadRules {
    fn default() -> Self {
        Self {
            warmup: Duration::from_secs(60),
            host_busy_cpu: 0.9,
        }
    }
}

/// What a node's own figures say about taking a new session, apart from its units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    /// Measured and healthy.
    Ok,
    /// Inside the warm-up, `left` to go: observed load and host CPU are not believed yet.
    WarmingUp { left: Duration },
    /// Other processes use `other_cpu` of the host, at or above `limit`.
    HostBusy { other_cpu: f64, limit: f64 },
}

impl Condition {
    /// True when the node may not take a new session.
    pub fn refuses(&self) -> bool {
        matches!(self, Condition::HostBusy { .. })
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Condition::Ok => f.write_str("ok"),
            Condition::WarmingUp { left } => {
                write!(f, "warming up ({}s left)", left.as_secs_f64().ceil())
            }
            Condition::HostBusy { other_cpu, limit } => write!(
                f,
                "host busy: other processes use {:.0}% of its CPU (limit {:.0}%)",
                other_cpu * 100.0,
                limit * 100.0
            ),
        }
    }
}

/// The node's condition at `now`.
pub fn condition(node: &NodeRecord, now: SystemTime, rules: &LoadRules) -> Condition {
    let age = now.duration_since(node.started_at).unwrap_or_default();
    if age < rules.warmup {
        return Condition::WarmingUp {
            left: rules.warmup - age,
        };
    }
    host_condition(node, rules)
}

/// [`condition`] of many nodes at one instant. The start before which a node is past its
/// warm-up is found once, so most nodes cost a comparison of times instead of a
/// subtraction: a decision reads every node's condition.
#[derive(Debug, Clone, Copy)]
pub struct Conditions {
    now: SystemTime,
    rules: LoadRules,
    warm_if_started_by: Option<SystemTime>,
}

impl Conditions {
    pub fn at(now: SystemTime, rules: LoadRules) -> Self {
        Self {
            now,
            rules,
            warm_if_started_by: now.checked_sub(rules.warmup),
        }
    }

    /// The same as [`condition`] at this instant.
    pub fn of(&self, node: &NodeRecord) -> Condition {
        match self.warm_if_started_by {
            // Started by `now - warmup`: its age is at least the warm-up.
            Some(by) if node.started_at <= by => host_condition(node, &self.rules),
            _ => condition(node, self.now, &self.rules),
        }
    }
}

/// The condition of a node past its warm-up: busy when other processes use its host.
fn host_condition(node: &NodeRecord, rules: &LoadRules) -> Condition {
    let other = node.stats.other_cpu;
    // A NaN figure is a broken sampler, not a busy host: the units rule still applies.
    if !node.shared_host && other >= rules.host_busy_cpu {
        return Condition::HostBusy {
            other_cpu: other,
            limit: rules.host_busy_cpu,
        };
    }
    Condition::Ok
}

/// The demand of every session reserved or live on `node_id`, as origin or edge.
pub fn committed_units<'a>(
    node_id: &str,
    sessions: impl IntoIterator<Item = &'a SessionRecord>,
) -> Units {
    sessions
        .into_iter()
        .map(|s| s.demand_on(node_id))
        .fold(0, Units::saturating_add)
}

/// Per node, [`committed_units`] of every session in one pass: what a listing of all nodes
/// reads, where a pass over the sessions per node would cost nodes × sessions.
pub fn committed_by_node<'a>(
    sessions: impl IntoIterator<Item = &'a SessionRecord>,
) -> FxHashMap<&'a str, Units> {
    let mut committed: FxHashMap<&str, Units> = FxHashMap::default();
    for session in sessions {
        for (k, node) in session.nodes().enumerate() {
            // A node the session lists twice is counted once, as `committed_units` does.
            if session.nodes().take(k).any(|earlier| earlier == node) {
                continue;
            }
            let units = committed.entry(node).or_default();
            *units = units.saturating_add(session.demand_on(node));
        }
    }
    committed
}

/// The observed units placement believes for `node` carrying `committed` units: none while it
/// warms up or carries nothing, else what its agent reports (a non-finite figure counts as
/// full, since nothing can be concluded from it).
pub fn believed_observed(
    node: &NodeRecord,
    committed: Units,
    now: SystemTime,
    rules: &LoadRules,
) -> f64 {
    believed_given(node, committed, &condition(node, now, rules))
}

/// [`believed_observed`], with the node's condition already at hand. It never falls as
/// `committed` rises, so the figure for 0 units is a floor under the node's effective load.
pub fn believed_given(node: &NodeRecord, committed: Units, condition: &Condition) -> f64 {
    let carries = committed > 0 || node.stats.sessions > 0 || node.stats.peers > 0;
    if !carries || matches!(condition, Condition::WarmingUp { .. }) {
        return 0.0;
    }
    let observed = node.stats.observed_units;
    if observed.is_finite() {
        observed.max(0.0)
    } else {
        f64::from(node.capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NodeStats;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn node(agent_cpu: f64, other_cpu: f64, sessions: u32) -> NodeRecord {
        NodeRecord {
            started_at: at(0),
            stats: NodeStats {
                other_cpu,
                sessions,
                ..NodeStats::default()
            },
            ..NodeRecord::blank("n", "n2-highcpu-4", 4, 600, at(100))
        }
        .spending(agent_cpu)
    }

    #[test]
    fn effective_is_the_larger_of_observed_and_committed() {
        let load = NodeLoad {
            observed: 30.0,
            committed: 50,
            capacity: 100,
        };
        assert_eq!(load.effective(), 50.0);
        assert_eq!(load.utilisation(), 0.5);
        let busy = NodeLoad {
            observed: 80.0,
            ..load
        };
        assert_eq!(busy.utilisation(), 0.8);
        let empty = NodeLoad {
            capacity: 0,
            ..load
        };
        assert_eq!(empty.utilisation(), 1.0);
    }

    #[test]
    fn an_empty_node_shows_no_observed_load() {
        let rules = LoadRules::default();
        let busy_but_empty = node(0.9, 0.0, 0);
        assert_eq!(believed_observed(&busy_but_empty, 0, at(100), &rules), 0.0);
        // The same figures on a node that carries a session are believed.
        let carrying = node(0.9, 0.0, 1);
        assert_eq!(believed_observed(&carrying, 0, at(100), &rules), 540.0);
        assert_eq!(
            believed_observed(&busy_but_empty, 10, at(100), &rules),
            540.0
        );
    }

    #[test]
    fn observed_load_waits_for_the_warm_up_committed_does_not() {
        let rules = LoadRules {
            warmup: Duration::from_secs(60),
            ..LoadRules::default()
        };
        let fresh = node(0.9, 0.95, 1);
        let early = NodeLoad::of(&fresh, 36, at(30), &rules);
        assert_eq!((early.observed, early.committed), (0.0, 36));
        assert_eq!(
            condition(&fresh, at(30), &rules),
            Condition::WarmingUp {
                left: Duration::from_secs(30)
            }
        );
        let later = NodeLoad::of(&fresh, 36, at(60), &rules);
        assert_eq!((later.observed, later.committed), (540.0, 36));
        assert!(condition(&fresh, at(60), &rules).refuses());
    }

    #[test]
    fn only_cpu_the_agent_did_not_spend_makes_a_host_busy() {
        let rules = LoadRules::default();
        // The agent itself at 95%: heavy load, but a healthy host.
        assert_eq!(
            condition(&node(0.95, 0.02, 3), at(100), &rules),
            Condition::Ok
        );
        let crowded = node(0.01, 0.93, 0);
        let busy = condition(&crowded, at(100), &rules);
        assert!(busy.refuses());
        assert_eq!(
            busy.to_string(),
            "host busy: other processes use 93% of its CPU (limit 90%)"
        );
        // Agents that share a host with each other ignore the host's CPU.
        let shared = NodeRecord {
            shared_host: true,
            ..crowded
        };
        assert_eq!(condition(&shared, at(100), &rules), Condition::Ok);
    }

    proptest::proptest! {
        #[test]
        fn conditions_at_an_instant_are_condition(
            started_ms in 0u64..100_000,
            started_ns in 0u32..1_000_000,
            warmup_ms in proptest::prop_oneof![proptest::strategy::Just(0u64), 0u64..100_000],
            // Around the warm-up's end, where a comparison could be off by one.
            from_end_ms in proptest::prop_oneof![-3i64..3, -100_000i64..100_000],
            other_cpu in 0.0f64..1.0,
            shared_host: bool,
        ) {
            let rules = LoadRules {
                warmup: Duration::from_millis(warmup_ms),
                host_busy_cpu: 0.5,
            };
            let started = at(0) + Duration::from_millis(started_ms) + Duration::from_nanos(u64::from(started_ns));
            let end = started + rules.warmup;
            let now = if from_end_ms >= 0 {
                end + Duration::from_millis(from_end_ms.unsigned_abs())
            } else {
                end - Duration::from_millis(from_end_ms.unsigned_abs())
            };
            let record = NodeRecord {
                started_at: started,
                shared_host,
                ..node(0.1, other_cpu, 1)
            };
            let conditions = Conditions::at(now, rules);
            proptest::prop_assert_eq!(conditions.of(&record), condition(&record, now, &rules));
        }
    }
}
