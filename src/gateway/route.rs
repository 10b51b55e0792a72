//! Where a join through the gateway goes: the session's node from etcd, or a new placement
//! (class and size from the client token, else `[gateway]`), and the WebSocket to that node
//! with the join re-signed for it.

use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::api::ApiState;
use crate::placement::Role;
use crate::placer::{Outcome, checked_request};
use crate::protocol::{self, JoinParams, RpcError};
use crate::token::ClientClaims;

pub type Upstream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The node a join goes to.
pub struct NodeTarget {
    pub id: String,
    pub signal_url: String,
}

/// Places (or finds) the session of `params` and returns its node and the join to send it:
/// the client's, with a join token for that node in place of anything the client sent.
pub async fn to_node(
    state: &ApiState,
    claims: &ClientClaims,
    role: Role,
    id: &Value,
    mut params: JoinParams,
) -> Result<(NodeTarget, String), RpcError> {
    let error = |code, message: String| RpcError::new(id.clone(), code, message);
    if params.sid != claims.sid {
        return Err(error(
            protocol::UNAUTHORIZED,
            format!(
                "join refused: the client token is for session {}, not {}",
                claims.sid, params.sid
            ),
        ));
    }
    let options = &state.gateway;
    let class = claims.class.unwrap_or(options.default_class);
    let size = claims.size.unwrap_or(options.default_size);
    let mut request = checked_request(
        Some(params.sid.clone()),
        class,
        size,
        Default::default(),
        role,
    )
    .map_err(|e| error(protocol::INVALID_PARAMS, e.to_string()))?;
    request.uid = (!params.uid.is_empty()).then(|| params.uid.clone());
    let outcome = state.placer.place(request.clone()).await.map_err(|e| {
        error(
            protocol::SERVER_ERROR,
            format!("cannot place the session: {e}"),
        )
    })?;
    let answer = state.answer(&request, &outcome);
    match outcome {
        Outcome::Placed { .. } => {}
        Outcome::NoCapacity { .. } => {
            metrics::counter!("ionctl_gateway_joins_total", "outcome" => "no_capacity")
                .increment(1);
            return Err(error(
                protocol::SERVER_ERROR,
                format!(
                    "no capacity: no node can take this {class} of {size} now; the demand is \
                     written for the autoscaler, try again shortly"
                ),
            ));
        }
        Outcome::Refused { reason } => {
            metrics::counter!("ionctl_gateway_joins_total", "outcome" => "refused").increment(1);
            return Err(error(protocol::INVALID_PARAMS, reason));
        }
    }
    let (Some(node), Some(signal_url)) = (answer.node, answer.signal_url) else {
        return Err(error(
            protocol::SERVER_ERROR,
            "the placer answered without a node".to_owned(),
        ));
    };
    params.token = answer.token;
    let join = protocol::request(id, "join", &params);
    Ok((
        NodeTarget {
            id: node,
            signal_url,
        },
        join,
    ))
}

/// Opens the node's signaling WebSocket and sends it the join.
pub async fn connect(node: &NodeTarget, join: &str) -> Result<Upstream, String> {
    let config = WebSocketConfig::default()
        .read_buffer_size(super::READ_BUFFER_BYTES)
        .max_message_size(Some(super::MAX_MESSAGE_BYTES))
        .max_frame_size(Some(super::MAX_MESSAGE_BYTES));
    let connecting =
        tokio_tungstenite::connect_async_with_config(node.signal_url.as_str(), Some(config), false);
    let (mut upstream, _) = tokio::time::timeout(super::NODE_CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| {
            format!(
                "node {} did not answer within {}s; try again",
                node.id,
                super::NODE_CONNECT_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("cannot reach node {}: {e}; try again", node.id))?;
    use futures_util::SinkExt as _;
    upstream
        .send(Message::text(join))
        .await
        .map_err(|e| format!("node {} closed the connection: {e}", node.id))?;
    Ok(upstream)
}
