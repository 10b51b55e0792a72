//! The gateway: one signaling URL for the whole cluster, `GET /ws` on `ionctl serve`. An
//! unmodified ion-sdk-js app connects to it with a client token (`?access_token=`, issued by
//! the operator's back end: [`crate::token::issue_client`], `ionctl token issue`); the
//! gateway reads the first JSON-RPC message, a `join`, finds or places the session
//! ([`route`]), opens a WebSocket to that node's signaling URL, forwards the join with a join
//! token for that node, and then pipes both directions unchanged ([`pipe`]) until either side
//! closes. Media never passes through it. It keeps no state of its own, so any number of
//! replicas can serve one cluster: a live session is found in etcd by every one of them.

mod limits;
mod pipe;
mod route;

pub use limits::{ConnectionLimits, Limits};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{ConnectInfo, Query, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::api::ApiState;
use crate::model::SessionClass;
use crate::placement::Role;
use crate::protocol::{self, Incoming, RpcError};
use crate::token::{self, TokenError};

/// A client that sends nothing this long after connecting is closed.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// The largest message either side may send, as the agent's own limit.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Read buffer of each of a proxied connection's two WebSockets. The default, 128 KiB, made
/// an idle proxied client cost 270 KiB; signaling messages are a few KiB, and a larger one
/// is read in several chunks.
pub const READ_BUFFER_BYTES: usize = 8 * 1024;
/// How long the node's WebSocket may take to open.
const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// WebSocket close codes (RFC 6455 §7.4.1).
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_UNAVAILABLE: u16 = 1013;
const CLOSE_ERROR: u16 = 1011;

/// The `[gateway]` table of `ionctl`'s config: how a new session is placed when the client
/// token does not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayOptions {
    pub default_class: SessionClass,
    pub default_size: u32,
    /// Open client connections at most, in all and from one IP address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// A client that sends nothing, not even a pong to the gateway's pings, this long is
    /// closed, and its node connection with it. The gateway must check this itself: it
    /// answers the node's pings, so the node can no longer tell a vanished client.
    #[serde(with = "humantime_serde")]
    pub client_timeout: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            default_class: SessionClass::Meeting,
            default_size: 10,
            max_connections: 10_000,
            max_connections_per_ip: 100,
            client_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct GatewayQuery {
    access_token: Option<String>,
    /// `publisher` or `viewer`, when the token does not say: ion-sdk-js's join carries no
    /// role.
    role: Option<Role>,
}

fn refuse(status: StatusCode, why: String) -> Response {
    metrics::counter!("ionctl_gateway_joins_total", "outcome" => "refused").increment(1);
    tracing::info!(%why, "gateway connection refused");
    (status, format!("{why}\n")).into_response()
}

/// `GET /ws`: the client token is checked before the upgrade, so a client without a valid
/// one gets a 401 and etcd is not touched.
pub async fn upgrade(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<GatewayQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some(secret) = state.secret.clone() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway is off: it needs the cluster secret to check client tokens and issue \
             join tokens; set [auth] secret or IONCTL_JOIN_SECRET"
                .to_owned(),
        );
    };
    let checked = token::verify_client(&secret, query.access_token.as_deref(), SystemTime::now());
    let claims = match checked {
        Ok(claims) => claims,
        Err(TokenError::Missing) => {
            let why = "no client token: connect to /ws?access_token=TOKEN with a token from \
                       your back end (ion_cluster::token::issue_client, or `ionctl token issue`)";
            return refuse(StatusCode::UNAUTHORIZED, why.to_owned());
        }
        Err(error) => {
            let why = format!("client token refused: {error}");
            return refuse(StatusCode::UNAUTHORIZED, why);
        }
    };
    let role = claims.role.or(query.role).unwrap_or_default();
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let slot = match state.connections.admit(peer.ip()) {
        Ok(slot) => slot,
        Err(full) => return refuse(full.status(), full.to_string()),
    };
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            serve(socket, state, claims, role).await;
            drop(slot);
        })
}

async fn serve(
    mut client: WebSocket,
    state: Arc<ApiState>,
    claims: token::ClientClaims,
    role: Role,
) {
    metrics::gauge!("ionctl_gateway_connections").increment(1.0);
    let reason = match first_join(&mut client).await {
        Err(close) => close,
        Ok((id, params)) => {
            let started = std::time::Instant::now();
            match route::to_node(&state, &claims, role, &id, params).await {
                Err(error) => {
                    let _ = client.send(Message::text(error.to_json())).await;
                    (CLOSE_UNAVAILABLE, error.message)
                }
                Ok((node, join)) => match route::connect(&node, &join).await {
                    Err(why) => {
                        let error = RpcError::new(id, protocol::SERVER_ERROR, why.clone());
                        let _ = client.send(Message::text(error.to_json())).await;
                        (CLOSE_UNAVAILABLE, why)
                    }
                    Ok(upstream) => {
                        metrics::counter!("ionctl_gateway_joins_total", "outcome" => "proxied")
                            .increment(1);
                        metrics::histogram!("ionctl_gateway_node_connect_seconds")
                            .record(started.elapsed().as_secs_f64());
                        let timeout = state.gateway.client_timeout;
                        pipe::both_ways(&mut client, upstream, &node.id, timeout).await
                    }
                },
            }
        }
    };
    close(&mut client, reason).await;
    metrics::gauge!("ionctl_gateway_connections").decrement(1.0);
}

/// The client's first message, which must be a `join`; otherwise the close to send.
async fn first_join(
    client: &mut WebSocket,
) -> Result<(serde_json::Value, protocol::JoinParams), (u16, String)> {
    let first = match tokio::time::timeout(HANDSHAKE_DEADLINE, client.recv()).await {
        Err(_) => {
            return Err((
                CLOSE_POLICY,
                format!(
                    "nothing received within {}s: send the join first",
                    HANDSHAKE_DEADLINE.as_secs()
                ),
            ));
        }
        Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => {
            return Err((CLOSE_POLICY, "the client left before joining".to_owned()));
        }
        Ok(Some(Ok(message))) => message,
    };
    let text = match first {
        Message::Text(text) => text,
        Message::Binary(_) => {
            return Err((CLOSE_POLICY, "send JSON-RPC as text messages".to_owned()));
        }
        _ => return Err((CLOSE_POLICY, "send the join first".to_owned())),
    };
    let refusal = match protocol::parse(text.as_str()) {
        Ok(Incoming::Join { id, params }) => return Ok((id, params)),
        Ok(_) => RpcError::new(
            serde_json::Value::Null,
            protocol::INVALID_REQUEST,
            "the first message through the gateway must be a join",
        ),
        Err(error) => error,
    };
    let _ = client.send(Message::text(refusal.to_json())).await;
    Err((CLOSE_POLICY, refusal.message))
}

/// Closes the client's WebSocket with `code` and `reason` (cut to the 123 bytes a close frame
/// holds).
async fn close(client: &mut WebSocket, (code, reason): (u16, String)) {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: reason[..cut].to_owned().into(),
    };
    let _ = client.send(Message::Close(Some(frame))).await;
}
