//! `ionctl loadtest --target janus`: the same participants, media and accounting against
//! Janus's videoroom plugin instead of an agent, so that the two SFUs are measured the same
//! way in one run (docs/benchmarks.md).
//!
//! - [`api`]: the Janus WebSocket API (sessions, handles, transactions, keep-alive).
//! - [`participant`]: a videoroom publisher or subscriber built on it.

pub mod api;
pub mod participant;

pub use participant::{Participant, room_of};
