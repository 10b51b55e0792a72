//! The proxy proper: every message from the client to its node and back, unchanged, until
//! either side closes; the other side then gets the close and its reason. The gateway pings
//! the client itself and ends a client silent for the timeout: it answers the node's pings,
//! so the node cannot tell.

use std::time::Duration;

use axum::extract::ws::{Message as ClientMessage, WebSocket};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as NodeMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as NodeClose;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::route::Upstream;
use super::{CLOSE_ERROR, CLOSE_POLICY, CLOSE_TOO_BIG, MAX_MESSAGE_BYTES};

/// Pipes until one side ends; returns the close to give the client (the node's own close
/// code and reason when it closed).
pub async fn both_ways(
    client: &mut WebSocket,
    mut node: Upstream,
    node_id: &str,
    client_timeout: Duration,
) -> (u16, String) {
    let mut ping = tokio::time::interval(client_timeout / 3);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if last_heard.elapsed() >= client_timeout {
                    let reason = format!(
                        "no message or pong from the client for {}s",
                        client_timeout.as_secs()
                    );
                    let _ = node
                        .close(Some(NodeClose {
                            code: CloseCode::Away,
                            reason: reason.clone().into(),
                        }))
                        .await;
                    return (CLOSE_POLICY, reason);
                }
                let _ = client.send(ClientMessage::Ping(Default::default())).await;
            }
            from_client = client.recv() => {
                if let Some(Ok(_)) = &from_client {
                    last_heard = Instant::now();
                }
                match from_client {
                Some(Ok(ClientMessage::Text(text))) => {
                    if text.len() > MAX_MESSAGE_BYTES {
                        return (CLOSE_TOO_BIG, format!("message over {MAX_MESSAGE_BYTES} bytes"));
                    }
                    count("up", text.len());
                    if node.send(NodeMessage::text(text.as_str())).await.is_err() {
                        return (CLOSE_ERROR, format!("node {node_id} closed the connection"));
                    }
                }
                Some(Ok(ClientMessage::Binary(_))) => {
                    return (CLOSE_POLICY, "send JSON-RPC as text messages".to_owned());
                }
                // axum answers pings itself; a pong needs nothing.
                Some(Ok(ClientMessage::Ping(_) | ClientMessage::Pong(_))) => {}
                Some(Ok(ClientMessage::Close(_))) | Some(Err(_)) | None => {
                    let _ = node
                        .close(Some(NodeClose {
                            code: CloseCode::Normal,
                            reason: "the client left".into(),
                        }))
                        .await;
                    return (1000, "bye".to_owned());
                }
                }
            },
            from_node = node.next() => match from_node {
                Some(Ok(NodeMessage::Text(text))) => {
                    count("down", text.len());
                    if client.send(ClientMessage::text(text.as_str())).await.is_err() {
                        let _ = node.close(None).await;
                        return (1000, "the client left".to_owned());
                    }
                }
                Some(Ok(NodeMessage::Close(frame))) => {
                    return match frame {
                        Some(frame) => (u16::from(frame.code), frame.reason.to_string()),
                        None => (1000, format!("node {node_id} closed the connection")),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    return (CLOSE_ERROR, format!("lost node {node_id}: {error}; join again"));
                }
                None => return (CLOSE_ERROR, format!("lost node {node_id}; join again")),
            },
        }
    }
}

fn count(direction: &'static str, bytes: usize) {
    metrics::counter!("ionctl_gateway_proxied_bytes_total", "direction" => direction)
        .increment(bytes as u64);
}
