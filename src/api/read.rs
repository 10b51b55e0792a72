//! The read endpoints: `GET /v1/nodes` (as `ionctl nodes -o json`), `GET /v1/sessions`
//! (as `ionctl sessions -o json`, `?node=ID` filters) and `GET /healthz` (200 while etcd
//! answers, else 503).

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiState, node_views};
use crate::model::SessionRecord;

pub async fn nodes(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let mut snapshot = state.placer.store().snapshot().await?;
    snapshot.nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let views = node_views(
        &snapshot.nodes,
        &snapshot.sessions,
        SystemTime::now(),
        &state.load_rules,
    );
    Ok(Json(views).into_response())
}

#[derive(Debug, Deserialize)]
pub struct SessionsQuery {
    pub node: Option<String>,
}

pub async fn sessions(
    State(state): State<Arc<ApiState>>,
    Query(query): Query<SessionsQuery>,
) -> Result<Json<Vec<SessionRecord>>, ApiError> {
    let mut sessions: Vec<SessionRecord> = state
        .placer
        .store()
        .sessions()
        .await?
        .items
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| query.node.as_ref().is_none_or(|n| s.is_on(n)))
        .collect();
    sessions.sort_by(|a, b| a.sid.cmp(&b.sid));
    Ok(Json(sessions))
}

pub async fn healthz(State(state): State<Arc<ApiState>>) -> Response {
    match state.placer.store().ping().await {
        Ok(revision) => Json(json!({ "status": "ok", "revision": revision })).into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "error": error.to_string() })),
        )
            .into_response(),
    }
}
