//! The capacity model of DESIGN §4: what a node can carry and what it carries now, in units.

mod load;

pub use load::{NodeLoad, committed_units, node_load};
