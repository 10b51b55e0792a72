//! Owns every etcd key name. Nothing else in the code base formats or parses a key: callers
//! ask [`Keys`] for a key or a prefix, so the layout and the configurable prefix live here.

use thiserror::Error;

/// The default key prefix (schema version 1).
pub const DEFAULT_PREFIX: &str = "/ion/v1/";

/// A key prefix or id that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the key prefix is empty; use something like {DEFAULT_PREFIX:?}")]
    EmptyPrefix,
    #[error(
        "{kind} id {id:?} is not valid: use 1 to 128 characters from a-z, A-Z, 0-9, '.', '_', ':' and '-'"
    )]
    InvalidId { kind: &'static str, id: String },
}

/// The key layout under one prefix. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }
}

impl Keys {
    /// Builds the layout for `prefix`, which is normalised to end with one `/` so that
    /// `/ion/v1` and `/ion/v1/` name the same tree.
    pub fn new(prefix: &str) -> Result<Self, KeyError> {
        if prefix.is_empty() {
            return Err(KeyError::EmptyPrefix);
        }
        let trimmed = prefix.trim_end_matches('/');
        Ok(Self {
            prefix: format!("{trimmed}/"),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn nodes(&self) -> String {
        format!("{}nodes/", self.prefix)
    }

    pub fn node(&self, node_id: &str) -> String {
        format!("{}nodes/{node_id}", self.prefix)
    }

    pub fn sessions(&self) -> String {
        format!("{}sessions/", self.prefix)
    }

    pub fn session(&self, sid: &str) -> String {
        format!("{}sessions/{sid}", self.prefix)
    }

    pub fn drains(&self) -> String {
        format!("{}drain/", self.prefix)
    }

    pub fn drain(&self, node_id: &str) -> String {
        format!("{}drain/{node_id}", self.prefix)
    }

    /// The placement index of every node.
    pub fn placements(&self) -> String {
        format!("{}placements/", self.prefix)
    }

    /// The placement index of one node: every session committed to it, keyed for the
    /// race-free commit of docs/placement.md.
    pub fn placements_of(&self, node_id: &str) -> String {
        format!("{}placements/{node_id}/", self.prefix)
    }

    pub fn placement(&self, node_id: &str, sid: &str) -> String {
        format!("{}placements/{node_id}/{sid}", self.prefix)
    }

    /// Every node's placement revision key.
    pub fn placement_revs(&self) -> String {
        format!("{}placement-revs/", self.prefix)
    }

    /// One node's placement revision: rewritten by every write that adds demand to the node,
    /// so that the commit compares one key's `mod_revision` instead of the node's whole
    /// placement range (docs/placement.md).
    pub fn placement_rev(&self, node_id: &str) -> String {
        format!("{}placement-revs/{node_id}", self.prefix)
    }

    pub fn pendings(&self) -> String {
        format!("{}pending/", self.prefix)
    }

    pub fn pending(&self, sid: &str) -> String {
        format!("{}pending/{sid}", self.prefix)
    }

    pub fn instances(&self) -> String {
        format!("{}instances/", self.prefix)
    }

    pub fn instance(&self, name: &str) -> String {
        format!("{}instances/{name}", self.prefix)
    }

    pub fn recordings(&self) -> String {
        format!("{}recordings/", self.prefix)
    }

    pub fn recording(&self, sid: &str) -> String {
        format!("{}recordings/{sid}", self.prefix)
    }

    pub fn autoscaler_election(&self) -> String {
        format!("{}election/autoscaler", self.prefix)
    }

    /// The id at the end of `key` when it sits directly under `collection` (one of the
    /// prefix methods above), else `None`.
    pub fn id_under<'k>(&self, collection: &str, key: &'k str) -> Option<&'k str> {
        let id = key.strip_prefix(collection)?;
        (!id.is_empty() && !id.contains('/')).then_some(id)
    }
}

/// Checks a node id, session id or instance name before it becomes part of a key, so that a
/// stray `/` cannot reach into another collection.
pub fn validate_id(kind: &'static str, id: &str) -> Result<(), KeyError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::InvalidId {
            kind,
            id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_normalised_to_one_trailing_slash() {
        for p in ["/ion/v1", "/ion/v1/", "/ion/v1///"] {
            assert_eq!(Keys::new(p).unwrap().node("a"), "/ion/v1/nodes/a");
        }
        assert_eq!(Keys::new("///").unwrap().node("a"), "/nodes/a");
        assert_eq!(Keys::new(""), Err(KeyError::EmptyPrefix));
    }

    #[test]
    fn every_collection_is_distinct_under_the_prefix() {
        let k = Keys::new("/t/").unwrap();
        assert_eq!(k.session("s1"), "/t/sessions/s1");
        assert_eq!(k.drain("n1"), "/t/drain/n1");
        assert_eq!(k.placement("n1", "s1"), "/t/placements/n1/s1");
        assert!(k.placement("n1", "s1").starts_with(&k.placements_of("n1")));
        assert!(k.placements_of("n1").starts_with(&k.placements()));
        assert_eq!(k.pending("s1"), "/t/pending/s1");
        assert_eq!(k.instance("i1"), "/t/instances/i1");
        assert_eq!(k.recording("s1"), "/t/recordings/s1");
        assert_eq!(k.autoscaler_election(), "/t/election/autoscaler");
        // A node's placement index must not live under nodes/, or stats writes would
        // conflict with placements (docs/placement.md).
        assert!(!k.placements_of("n1").starts_with(&k.nodes()));
        // Nor may the revision key: and it must not be read as a placement of any node.
        assert_eq!(k.placement_rev("n1"), "/t/placement-revs/n1");
        assert!(!k.placement_rev("n1").starts_with(&k.placements()));
        assert!(!k.placement_rev("n1").starts_with(&k.nodes()));
    }

    #[test]
    fn id_under_takes_only_direct_children() {
        let k = Keys::default();
        assert_eq!(k.id_under(&k.nodes(), "/ion/v1/nodes/n1"), Some("n1"));
        assert_eq!(k.id_under(&k.nodes(), "/ion/v1/nodes/"), None);
        assert_eq!(k.id_under(&k.nodes(), "/ion/v1/nodes/n1/x"), None);
        assert_eq!(k.id_under(&k.nodes(), "/ion/v1/sessions/n1"), None);
    }

    #[test]
    fn ids_with_separators_are_refused() {
        assert!(validate_id("node", "sfu-a.europe-west1:1_2").is_ok());
        for bad in ["", "a/b", "a b", "ü", &"x".repeat(129)] {
            assert!(validate_id("node", bad).is_err(), "{bad:?} accepted");
        }
    }
}
