//! `ionctl serve`: the placer over HTTP for web front ends. `POST /v1/place` takes and returns
//! JSON, `GET /v1/nodes` and `GET /v1/sessions` read the cluster, `GET /healthz` says whether
//! etcd answers, `GET /metrics` exposes Prometheus text, and `GET /ws` is the signaling
//! gateway ([`crate::gateway`]). Several replicas can serve one
//! etcd: every reservation goes through the same race-free commit.

mod answer;
mod error;
mod metrics;
mod place;
mod read;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;

pub use answer::PlaceAnswer;
pub use error::ApiError;
pub use metrics::install as install_metrics;
pub use place::PlaceBody;
pub use views::{LoadView, NodeView, node_views};

use crate::placer::Placer;
use crate::token::JoinSecret;

/// What every handler shares.
pub struct ApiState {
    pub placer: Placer,
    pub secret: Option<JoinSecret>,
    pub token_ttl: Duration,
    pub metrics: PrometheusHandle,
    /// How `GET /v1/nodes` reads load and condition: the placement policy's.
    pub load_rules: crate::capacity::LoadRules,
    /// How the gateway places a session its client token does not describe.
    pub gateway: crate::gateway::GatewayOptions,
    /// The gateway's open client connections.
    pub connections: crate::gateway::ConnectionLimits,
}

impl ApiState {
    /// The answer to `request`, with a join token for the node when a secret is set.
    pub fn answer(
        &self,
        request: &crate::placement::Request,
        outcome: &crate::placer::Outcome,
    ) -> PlaceAnswer {
        PlaceAnswer::new(
            request,
            outcome,
            self.placer.store().keys(),
            self.secret.as_ref(),
            std::time::SystemTime::now(),
            self.token_ttl,
        )
    }
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/place", post(place::place))
        .route("/v1/nodes", get(read::nodes))
        .route("/v1/sessions", get(read::sessions))
        .route("/ws", get(crate::gateway::upgrade))
        .route("/healthz", get(read::healthz))
        .route("/metrics", get(metrics::render))
        .route_layer(axum::middleware::from_fn(metrics::count_requests))
        .with_state(state)
}
