//! The capacity model of docs/placement.md: what a node can carry and what it carries now, in units;
//! the session classes with their size limits, demand and headroom; and the GCE machine types
//! that new capacity comes in.

mod classes;
mod load;
mod machines;
mod sessions;

pub use classes::{ClassSpec, MAX_LIVESTREAM_VIEWERS, MAX_RECORDING_TRACKS, SizeError};
pub use load::{
    Condition, Conditions, LoadRules, NodeLoad, believed_given, believed_observed,
    committed_by_node, committed_units, condition,
};
pub use machines::{
    CATALOGUE, DEFAULT_UNITS_PER_VCPU, MAX_SPAN_NODES, MachineType, known_types, largest,
    smallest_fitting, span_nodes, split_shares,
};
pub use sessions::{OnNode, Sessions};
