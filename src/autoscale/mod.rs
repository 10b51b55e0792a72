//! Autoscaling (docs/operations.md#autoscaling): the pure [`plan`] that turns a snapshot and a policy into spawn,
//! drain and delete actions, and the leader-elected loop in [`run`] that reads etcd, plans,
//! and carries the actions out through a [`crate::provider::Provider`].

mod plan;
pub mod run;

pub use plan::{
    Action, Cover, DRAIN_REASON_PREFIX, Plan, Policy, SPAWN_WINDOW, Snapshot, plan, plan_detailed,
};

#[cfg(test)]
mod tests;
