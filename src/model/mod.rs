//! The etcd schema v1: every record the cluster stores, as serde JSON, and the key layout
//! ([`keys`]). Agents write what they are ([`NodeRecord`]); placers, the autoscaler and
//! operators write intentions ([`SessionRecord`], [`DrainRequest`], [`PendingDemand`],
//! [`InstanceRecord`]); recorders and `ionctl record` share [`RecordingRecord`]. See `docs/etcd-schema.md` for the user-facing description.

mod change;
pub mod keys;
mod node;
mod recording;
mod records;
mod session;
mod time;

pub use change::Change;
pub use keys::{DEFAULT_PREFIX, KeyError, Keys};
pub use node::{NodeRecord, NodeState, NodeStats};
pub use recording::{RecordedFile, RecordingRecord, RecordingState};
pub use records::{DrainRequest, InstanceRecord, InstanceState, PendingDemand};
pub use session::{SessionClass, SessionRecord, SessionState};

/// Units are the capacity currency of docs/placement.md: one forwarded downstream stream at the
/// reference rate. Whole units are enough resolution for placement.
pub type Units = u32;
