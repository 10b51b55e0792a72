//! ion cluster: runs a fleet of WebRTC SFU servers (`ion-agent`) as one cluster, coordinated
//! through etcd, and gives operators `ionctl` to see, place, drain and scale it.
//!
//! # Layout
//! - [`model`]: the etcd schema v1 — every record and every key name.
//! - [`capacity`]: units, node load and (later) classes and machine types.
//! - [`store`]: the etcd client: typed lists, watches, leases and transactions.
//! - [`gce`]: the Compute Engine v1 REST client and its credentials.
//! - [`provider`]: creating and deleting machines for agents: GCE VMs or local processes.
//! - [`cli`]: `ionctl`, one file per command; the binary in `main.rs` only calls it.
//!
//! Library code never prints; the CLI decides what the operator sees.

pub mod capacity;
pub mod cli;
pub mod gce;
pub mod model;
pub mod provider;
pub mod store;
