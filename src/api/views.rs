//! The read views shared by `ionctl nodes -o json` and `GET /v1/nodes`: a node record plus
//! the load and condition placement derives from it.

use std::time::SystemTime;

use serde::Serialize;

use crate::capacity::{Condition, LoadRules, NodeLoad, committed_by_node, condition};
use crate::model::{NodeRecord, SessionRecord};

/// One node: the record plus its load.
#[derive(Debug, Serialize)]
pub struct NodeView<'a> {
    #[serde(flatten)]
    pub record: &'a NodeRecord,
    pub load: LoadView,
    /// `ok`, `warming_up` or `host_busy`: what placement makes of the node's own figures.
    pub condition: &'static str,
    /// Why, in words, when the condition is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition_reason: Option<String>,
    pub stats_age_secs: f64,
}

#[derive(Debug, Serialize)]
pub struct LoadView {
    pub observed_units: f64,
    pub committed_units: u32,
    pub effective_units: f64,
    pub capacity: u32,
    pub utilisation: f64,
}

impl From<NodeLoad> for LoadView {
    fn from(load: NodeLoad) -> Self {
        Self {
            observed_units: load.observed,
            committed_units: load.committed,
            effective_units: load.effective(),
            capacity: load.capacity,
            utilisation: load.utilisation(),
        }
    }
}

/// The views of `nodes`, in the order given, at `now`, under `rules`.
pub fn node_views<'a>(
    nodes: &'a [NodeRecord],
    sessions: &[SessionRecord],
    now: SystemTime,
    rules: &LoadRules,
) -> Vec<NodeView<'a>> {
    let committed = committed_by_node(sessions);
    nodes
        .iter()
        .map(|record| {
            let condition = condition(record, now, rules);
            let units = committed.get(record.id.as_str()).copied().unwrap_or(0);
            NodeView {
                record,
                load: NodeLoad::of(record, units, now, rules).into(),
                condition: condition_name(&condition),
                condition_reason: (condition != Condition::Ok).then(|| condition.to_string()),
                stats_age_secs: record.stats_age(now).as_secs_f64(),
            }
        })
        .collect()
}

/// The stable machine-readable name of a condition.
pub fn condition_name(condition: &Condition) -> &'static str {
    match condition {
        Condition::Ok => "ok",
        Condition::WarmingUp { .. } => "warming_up",
        Condition::HostBusy { .. } => "host_busy",
    }
}
