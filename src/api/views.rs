//! The read views shared by `ionctl nodes -o json` and `GET /v1/nodes`: a node record plus
//! the load derived from it.

use std::time::SystemTime;

use serde::Serialize;

use crate::capacity::{NodeLoad, node_load};
use crate::model::{NodeRecord, SessionRecord};

/// One node: the record plus its load.
#[derive(Debug, Serialize)]
pub struct NodeView<'a> {
    #[serde(flatten)]
    pub record: &'a NodeRecord,
    pub load: LoadView,
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

/// The views of `nodes`, in the order given, at `now`.
pub fn node_views<'a>(
    nodes: &'a [NodeRecord],
    sessions: &[SessionRecord],
    now: SystemTime,
) -> Vec<NodeView<'a>> {
    nodes
        .iter()
        .map(|record| NodeView {
            record,
            load: node_load(record, sessions).into(),
            stats_age_secs: record.stats_age(now).as_secs_f64(),
        })
        .collect()
}
