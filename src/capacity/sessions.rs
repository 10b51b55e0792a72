//! The sessions of a cluster snapshot, indexed for placement and the autoscaler: each session
//! by id, and per node the units its sessions reserved there and whether a dedicated one sits
//! on it. The index changes with every put and remove, so a decision reads a node's
//! commitment in one lookup instead of summing every session in the cluster on every call
//! (docs/benchmarks.md, "Control plane at 1,000 and 5,000 nodes").

use rustc_hash::FxHashMap;

use super::ClassSpec;
use crate::model::{SessionRecord, Units};

/// What the sessions on one node add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OnNode {
    /// Summed in 64 bits so that a remove takes back exactly what its put added; read through
    /// [`OnNode::committed`], which saturates as the per-session sums always did.
    units: u64,
    dedicated: u32,
    /// Sessions with a share here, so the entry goes when the last one does.
    sessions: u32,
}

impl OnNode {
    /// The demand of every session reserved or live on the node, as origin or edge.
    pub fn committed(&self) -> Units {
        Units::try_from(self.units).unwrap_or(Units::MAX)
    }

    /// A session of a dedicated class (livestream, recording) has a share on the node.
    pub fn carries_dedicated(&self) -> bool {
        self.dedicated > 0
    }
}

/// Sessions by id, in the order they were first put, with per-node sums.
///
/// FxHash: the keys are session and node ids, and SipHash was a fifth of a decision at 5,000
/// nodes.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    records: Vec<SessionRecord>,
    position: FxHashMap<String, usize>,
    on_node: FxHashMap<String, OnNode>,
}

impl Sessions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, SessionRecord> {
        self.records.iter()
    }

    pub fn as_slice(&self) -> &[SessionRecord] {
        &self.records
    }

    pub fn get(&self, sid: &str) -> Option<&SessionRecord> {
        self.position.get(sid).map(|&i| &self.records[i])
    }

    pub fn contains(&self, sid: &str) -> bool {
        self.position.contains_key(sid)
    }

    /// What the sessions on `node` add up to; nothing for a node without sessions.
    pub fn on_node(&self, node: &str) -> OnNode {
        self.on_node.get(node).copied().unwrap_or_default()
    }

    /// Puts `record`, replacing the session of the same id; returns the one replaced.
    pub fn put(&mut self, record: SessionRecord) -> Option<SessionRecord> {
        self.count(&record, true);
        match self.position.get(record.sid.as_str()) {
            Some(&i) => {
                let old = std::mem::replace(&mut self.records[i], record);
                self.count(&old, false);
                Some(old)
            }
            None => {
                self.position.insert(record.sid.clone(), self.records.len());
                self.records.push(record);
                None
            }
        }
    }

    /// Removes the session `sid`, moving the last one into its place.
    pub fn remove(&mut self, sid: &str) -> Option<SessionRecord> {
        let i = self.position.remove(sid)?;
        let old = self.records.swap_remove(i);
        if let Some(moved) = self.records.get(i) {
            self.position.insert(moved.sid.clone(), i);
        }
        self.count(&old, false);
        Some(old)
    }

    /// Adds (or takes back) `record`'s share on each of its nodes: `demand_on` once for every
    /// node the session is on, as [`super::committed_units`] counts it.
    fn count(&mut self, record: &SessionRecord, add: bool) {
        let dedicated = ClassSpec::of(record.class).dedicated;
        for (k, node) in record.nodes().enumerate() {
            if record.nodes().take(k).any(|earlier| earlier == node) {
                continue;
            }
            let units = u64::from(record.demand_on(node));
            if add {
                // The id is copied only for a node not yet in the index.
                match self.on_node.get_mut(node) {
                    Some(sums) => {
                        sums.units += units;
                        sums.dedicated += u32::from(dedicated);
                        sums.sessions += 1;
                    }
                    None => {
                        let sums = OnNode {
                            units,
                            dedicated: u32::from(dedicated),
                            sessions: 1,
                        };
                        self.on_node.insert(node.to_owned(), sums);
                    }
                }
            } else if let Some(sums) = self.on_node.get_mut(node) {
                sums.units -= units;
                sums.dedicated -= u32::from(dedicated);
                sums.sessions -= 1;
                if sums.sessions == 0 {
                    self.on_node.remove(node);
                }
            }
        }
    }
}

impl From<Vec<SessionRecord>> for Sessions {
    /// A later record of the same id replaces an earlier one, as a later put would.
    fn from(records: Vec<SessionRecord>) -> Self {
        records.into_iter().collect()
    }
}

impl FromIterator<SessionRecord> for Sessions {
    fn from_iter<I: IntoIterator<Item = SessionRecord>>(records: I) -> Self {
        let mut sessions = Self::new();
        for record in records {
            sessions.put(record);
        }
        sessions
    }
}

impl<'a> IntoIterator for &'a Sessions {
    type Item = &'a SessionRecord;
    type IntoIter = std::slice::Iter<'a, SessionRecord>;

    fn into_iter(self) -> Self::IntoIter {
        self.records.iter()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use proptest::prelude::*;

    use super::*;
    use crate::capacity::{committed_by_node, committed_units};
    use crate::model::{SessionClass, SessionState};

    fn record(sid: u8, class: SessionClass, demand: Units, nodes: &[u8]) -> SessionRecord {
        SessionRecord {
            sid: format!("s{sid}"),
            class,
            size: 2,
            demand,
            node: format!("n{}", nodes[0]),
            state: SessionState::Live,
            relays: nodes[1..].iter().map(|n| format!("n{n}")).collect(),
            edge_demand: demand / 2,
            created_at: SystemTime::UNIX_EPOCH,
        }
    }

    fn class() -> impl Strategy<Value = SessionClass> {
        prop_oneof![
            Just(SessionClass::Group),
            Just(SessionClass::Meeting),
            Just(SessionClass::Livestream),
            Just(SessionClass::Recording),
        ]
    }

    /// A put (`Some`) or remove (`None`) of one of a few session ids, on one to three of a
    /// few nodes, so that puts replace and removes hit present and absent ids.
    fn op() -> impl Strategy<Value = (u8, Option<(SessionClass, Units, Vec<u8>)>)> {
        (
            0u8..6,
            proptest::option::weighted(
                0.7,
                (class(), 0u32..500, proptest::collection::vec(0u8..4, 1..4)),
            ),
        )
    }

    proptest! {
        /// After any sequence of puts and removes the index answers what a pass over the
        /// records from scratch answers, and holds exactly the last put of each id.
        #[test]
        fn the_index_matches_a_pass_over_the_records(ops in proptest::collection::vec(op(), 0..60)) {
            let mut sessions = Sessions::new();
            let mut expected: BTreeMap<String, SessionRecord> = BTreeMap::new();
            for (sid, put) in ops {
                match put {
                    Some((class, demand, nodes)) => {
                        let r = record(sid, class, demand, &nodes);
                        let replaced = sessions.put(r.clone());
                        prop_assert_eq!(replaced, expected.insert(r.sid.clone(), r));
                    }
                    None => {
                        let id = format!("s{sid}");
                        prop_assert_eq!(sessions.remove(&id), expected.remove(&id));
                    }
                }
                prop_assert_eq!(sessions.len(), expected.len());
                for (sid, r) in &expected {
                    prop_assert_eq!(sessions.get(sid), Some(r));
                }
                let by_node = committed_by_node(expected.values());
                for node in (0..4).map(|n| format!("n{n}")) {
                    let sums = sessions.on_node(&node);
                    let committed = committed_units(&node, expected.values());
                    prop_assert_eq!(sums.committed(), committed);
                    prop_assert_eq!(by_node.get(node.as_str()).copied().unwrap_or(0), committed);
                    let dedicated = expected.values().any(|s| {
                        s.is_on(&node) && ClassSpec::of(s.class).dedicated
                    });
                    prop_assert_eq!(sums.carries_dedicated(), dedicated, "node {}", node);
                }
            }
            // Nodes whose last session went leave no entry behind.
            let listed: std::collections::BTreeSet<&str> =
                expected.values().flat_map(SessionRecord::nodes).collect();
            prop_assert_eq!(sessions.on_node.len(), listed.len());
        }
    }

    #[test]
    fn a_later_record_of_the_same_id_replaces_the_earlier() {
        let sessions = Sessions::from(vec![
            record(1, SessionClass::Group, 10, &[0]),
            record(1, SessionClass::Group, 4, &[1]),
        ]);
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions.on_node("n0"), OnNode::default());
        assert_eq!(sessions.on_node("n1").committed(), 4);
    }
}
