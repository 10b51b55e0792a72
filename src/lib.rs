//! ion cluster: runs a fleet of WebRTC SFU servers (`ion-agent`) as one cluster, coordinated
//! through etcd, and gives operators `ionctl` to see, place, drain and scale it.
//!
//! # Layout
//! - [`model`]: the etcd schema v1 — every record and every key name.
//! - [`capacity`]: units, node load, session classes and machine types.
//! - [`placement`]: the pure `decide(snapshot, request, policy)`.
//! - [`placer`]: the I/O shell around it: read, decide, commit race-free, retry.
//! - [`store`]: the etcd client: typed lists, watches, leases and transactions.
//! - [`token`]: join tokens (HS256 JWT bound to session and node): issue and verify.
//! - [`api`]: `ionctl serve`, the placer over HTTP (axum), and the JSON it answers with.
//! - [`bench`]: `ionctl bench place`: placements/s against raw etcd txn/s.
//! - [`fleet`]: `ionctl bench fleet`: N synthetic nodes kept alive, to measure against.
//! - [`compute`]: the Compute Engine v1 REST client and its credentials.
//! - [`gcs`]: resumable uploads to Cloud Storage (recordings).
//! - [`provider`]: creating and deleting machines for agents: GCE VMs or local processes,
//!   and the one lifecycle of an instance (spawn, register, drain, delete).
//! - [`autoscale`]: the pure `plan(snapshot, policy)` and the leader-elected loop that runs it.
//! - [`protocol`]: ion-sfu's JSON-RPC, for the agent and every client.
//! - [`backoff`], [`text`]: the shared retry backoff; ages and one-line errors.
//! - [`udp`]: the media sockets' option shared by the agent and the floor bench.
//! - [`loadtest`]: `ionctl loadtest`: webrtc-rs participants against an agent, loss, latency
//!   and the agent's CPU per forwarded packet; `--calibrate` measures `units_per_vcpu`.
//! - [`cli`]: `ionctl`, one file per command; the binary in `main.rs` only calls it.
//! - [`tui`]: `ionctl top`, the live dashboard (state, events, drawing, etcd feed).
//! - [`simulate`]: `ionctl simulate`: a day of sessions through production `decide` and
//!   `plan` on a virtual clock, against the anchors' policies.
//!
//! Library code never prints; the CLI decides what the operator sees.

pub mod api;
pub mod autoscale;
pub mod backoff;
pub mod bench;
pub mod capacity;
pub mod cli;
pub mod compute;
pub mod fleet;
pub mod gateway;
pub mod gcs;
pub mod loadtest;
pub mod model;
pub mod placement;
pub mod placer;
pub mod protocol;
pub mod provider;
pub mod simulate;
pub mod store;
pub mod text;
pub mod tls;
pub mod token;
pub mod tui;
pub mod udp;

#[cfg(test)]
mod fuzz_tests;
