//! Signaling: ion-sfu's JSON-RPC 2.0 over WebSocket at `/ws`, plus `/metrics`, `/healthz`
//! and the relay endpoint between nodes (`/relay/v1/ws`, see `crate::relay`) on the same
//! HTTP listener. Each WebSocket is one participant ([`connection`]); the
//! protocol itself is in [`ion_cluster::protocol`], shared with the clients.

mod connection;

use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Query, State, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use ion_cluster::gateway::ConnectionLimits;
use ion_cluster::token::JoinSecret;

use crate::config::SignalConfig;
use crate::metrics::Metrics;
use crate::ownership::Ownership;
use crate::relay::edge::Edges;
use crate::sfu::Sfu;

/// What every connection shares.
pub struct SignalContext {
    pub sfu: Sfu,
    pub ownership: Ownership,
    /// The relays this node runs as an edge of sessions that live on other nodes.
    pub edges: Edges,
    /// The cluster secret relays are signed with, if `[auth] secret` is set.
    pub relay_secret: Option<JoinSecret>,
    pub config: SignalConfig,
    pub metrics: Metrics,
    pub node_id: String,
    /// Set when joins must carry a join token signed with it.
    pub join_secret: Option<JoinSecret>,
    /// `[signal] max_connections`, `max_connections_per_ip`.
    pub connections: ConnectionLimits,
}

/// `/ws?access_token=...`: the join token, for clients that cannot put it in the join.
#[derive(Debug, Default, serde::Deserialize)]
struct WsQuery {
    access_token: Option<String>,
}

/// tungstenite's own cap, far above ours, so that a message between our limit and this one
/// still gets a JSON-RPC error instead of a dropped connection.
const TRANSPORT_MESSAGE_LIMIT: usize = 1 << 20;
/// The WebSocket read chunk. Signaling messages are small (an SDP is a few KiB; larger ones
/// take more reads), and tungstenite's 128 KiB default was zeroed on every read: each
/// keep-alive pong cost as much as forwarding a dozen packets.
const SIGNAL_READ_BUFFER: usize = 8 * 1024;

pub fn router(context: Arc<SignalContext>) -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .route("/relay/v1/ws", get(crate::relay::origin::upgrade))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(context)
}

async fn upgrade(
    State(context): State<Arc<SignalContext>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Query(query): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    let slot = match context.connections.admit(peer.ip()) {
        Ok(slot) => slot,
        Err(full) => {
            tracing::warn!(%peer, reason = %full, "signaling connection refused");
            return (full.status(), format!("{full}\n")).into_response();
        }
    };
    ws.max_message_size(TRANSPORT_MESSAGE_LIMIT)
        .max_frame_size(TRANSPORT_MESSAGE_LIMIT)
        .read_buffer_size(SIGNAL_READ_BUFFER)
        .on_upgrade(move |socket| async move {
            connection::serve(socket, context, query.access_token).await;
            drop(slot);
        })
}

async fn metrics(State(context): State<Arc<SignalContext>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        context.metrics.render(),
    )
}

/// Serves until `shutdown` flips: over TLS with `tls` (the loaded `[signal] tls_cert` and
/// `tls_key`), else plain.
pub async fn serve(
    listener: tokio::net::TcpListener,
    context: Arc<SignalContext>,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let app = router(context);
    let Some(tls) = tls else {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await?;
        return Ok(());
    };
    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    tokio::spawn(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
        stopping.graceful_shutdown(Some(std::time::Duration::from_secs(3)));
    });
    axum_server::from_tcp_rustls(listener.into_std()?, tls)
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await?;
    Ok(())
}
