//! `POST /v1/place`: `{"class": "group", "size": 4, "session": "room-1", "strategy":
//! "binpack"}` in (`session` and `strategy` optional), a [`PlaceAnswer`] out: 200 when the
//! session has a node, 503 with the `pending` key when no node fits, 400 for bad input.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, ApiState, PlaceAnswer};
use crate::capacity::ClassSpec;
use crate::model::{SessionClass, keys::validate_id};
use crate::placement::{Request, Strategy};
use crate::placer::Outcome;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceBody {
    pub class: SessionClass,
    pub size: u32,
    #[serde(default)]
    pub session: Option<String>,
    #[serde(default)]
    pub strategy: Strategy,
}

pub async fn place(
    State(state): State<Arc<ApiState>>,
    body: Result<Json<PlaceBody>, JsonRejection>,
) -> Result<(StatusCode, Json<PlaceAnswer>), ApiError> {
    let Json(body) = body.map_err(|rejection| {
        ApiError::bad_request(format!(
            "{}; send JSON like {{\"class\": \"group\", \"size\": 4}} with \
             Content-Type: application/json",
            rejection.body_text()
        ))
    })?;
    ClassSpec::of(body.class)
        .demand(body.size)
        .map_err(|e| ApiError::bad_request(format!("size {}: {e}", body.size)))?;
    let sid = match body.session {
        Some(sid) => {
            validate_id("session", &sid).map_err(ApiError::bad_request)?;
            sid
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let request = Request {
        sid,
        class: body.class,
        size: body.size,
        strategy: body.strategy,
    };
    let outcome = state.placer.place(request.clone()).await?;
    let status = match &outcome {
        Outcome::Placed { .. } => StatusCode::OK,
        Outcome::NoCapacity { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Outcome::Refused { reason } => return Err(ApiError::bad_request(reason)),
    };
    let answer = PlaceAnswer::new(
        &request,
        &outcome,
        state.placer.store().keys(),
        state.secret.as_ref(),
        SystemTime::now(),
        state.token_ttl,
    );
    Ok((status, Json(answer)))
}
