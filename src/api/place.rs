//! `POST /v1/place`: `{"class": "group", "size": 4, "session": "room-1", "strategy":
//! "binpack"}` in (`session` and `strategy` optional), a [`PlaceAnswer`] out: 200 when the
//! session has a node, 503 with the `pending` key when no node fits, 400 for bad input.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, ApiState, PlaceAnswer};
use crate::model::SessionClass;
use crate::placement::{Role, Strategy};
use crate::placer::{Outcome, checked_request};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceBody {
    pub class: SessionClass,
    pub size: u32,
    #[serde(default)]
    pub session: Option<String>,
    #[serde(default)]
    pub strategy: Strategy,
    /// `publisher` (the default) or `viewer`: which node of a session that spans nodes.
    #[serde(default)]
    pub role: Role,
    /// The participant: viewers of a session that spans nodes are spread over its nodes by
    /// it, in proportion to their room.
    #[serde(default)]
    pub uid: Option<String>,
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
    let mut request = checked_request(
        body.session,
        body.class,
        body.size,
        body.strategy,
        body.role,
    )
    .map_err(ApiError::bad_request)?;
    request.uid = body.uid;
    let outcome = state.placer.place(request.clone()).await?;
    let status = match &outcome {
        Outcome::Placed { .. } => StatusCode::OK,
        Outcome::NoCapacity { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Outcome::Refused { reason } => return Err(ApiError::bad_request(reason)),
    };
    Ok((status, Json(state.answer(&request, &outcome))))
}
