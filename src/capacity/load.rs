//! A node's effective load: the larger of what its CPU shows and what has been committed to
//! it. Committed units count from the moment a reservation is written, so a burst of joins
//! cannot overrun a node whose CPU has not risen yet; observed units catch load that no
//! reservation explains.

use crate::model::{NodeRecord, SessionRecord, Units};

/// One node's load figures, in units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeLoad {
    pub observed: f64,
    pub committed: Units,
    pub capacity: Units,
}

impl NodeLoad {
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

/// The demand of every session reserved or live on `node_id`.
pub fn committed_units<'a>(
    node_id: &str,
    sessions: impl IntoIterator<Item = &'a SessionRecord>,
) -> Units {
    sessions
        .into_iter()
        .filter(|s| s.node == node_id)
        .map(|s| s.demand)
        .fold(0, Units::saturating_add)
}

pub fn node_load<'a>(
    node: &NodeRecord,
    sessions: impl IntoIterator<Item = &'a SessionRecord>,
) -> NodeLoad {
    NodeLoad {
        observed: node.stats.observed_units.max(0.0),
        committed: committed_units(&node.id, sessions),
        capacity: node.capacity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
