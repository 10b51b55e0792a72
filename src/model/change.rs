//! What happened to one record of a collection at one etcd revision: the unit a watch delivers
//! and the views that follow the cluster (the dashboard, caches) apply.

/// One change to a collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    Put {
        id: String,
        record: T,
        revision: i64,
    },
    Deleted {
        id: String,
        revision: i64,
    },
    /// The value at `id` did not parse; the record is treated as absent.
    Malformed {
        id: String,
        revision: i64,
    },
}
