//! The origin's end of a relay: `GET /relay/v1/ws?sid=&edge=&access_token=`. The token is
//! checked before the upgrade, so an outsider opens nothing; then the relay joins the
//! session as a subscriber to its local tracks, and the WebSocket carries the origin's
//! offers out and the edge's answers in until either side closes.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ion_cluster::model::keys::validate_id;
use ion_cluster::protocol::{self, Incoming, SessionDescription};
use ion_cluster::token;
use str0m::change::SdpAnswer;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::sfu::{Command, PeerEvent, SfuError};
use crate::signaling::SignalContext;

/// How often the origin pings an edge, and how long a silent edge keeps its relay: within
/// the node lease's TTL, as a dead edge's node record goes.
const PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);
const SILENCE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, serde::Deserialize)]
pub struct RelayQuery {
    sid: String,
    edge: String,
    access_token: Option<String>,
}

fn refuse(status: StatusCode, why: String) -> Response {
    tracing::warn!(%why, "relay refused");
    (status, format!("relay refused: {why}\n")).into_response()
}

pub async fn upgrade(
    State(context): State<Arc<SignalContext>>,
    Query(query): Query<RelayQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let secret = match super::no_secret(context.relay_secret.as_ref()) {
        Ok(secret) => secret,
        Err(why) => return refuse(StatusCode::SERVICE_UNAVAILABLE, why),
    };
    let checked = token::verify_relay(
        secret,
        query.access_token.as_deref(),
        &query.sid,
        &context.node_id,
        std::time::SystemTime::now(),
    );
    if let Err(error) = checked {
        return refuse(StatusCode::UNAUTHORIZED, error.to_string());
    }
    if let Err(error) = validate_id("session", &query.sid).and(validate_id("node", &query.edge)) {
        return refuse(StatusCode::BAD_REQUEST, error.to_string());
    }
    ws.on_upgrade(move |socket| serve(socket, context, query.sid, query.edge))
}

async fn serve(mut socket: WebSocket, context: Arc<SignalContext>, sid: String, edge: String) {
    // The relay is a member of the session here: it keeps the session claimed.
    if let Err(error) = context.ownership.join(&sid).await {
        tracing::warn!(%sid, %edge, %error, "relay refused");
        let frame = axum::extract::ws::CloseFrame {
            code: 1008,
            reason: format!("relay refused: {error}").into(),
        };
        let _ = socket.send(Message::Close(Some(frame))).await;
        return;
    }
    let participant = context.sfu.new_participant_id();
    let worker = context.sfu.worker_for(&sid);
    let (events, mut events_rx) = mpsc::unbounded_channel();
    let (reply, opened) = oneshot::channel();
    let command = Command::OpenRelay {
        participant,
        sid: sid.as_str().into(),
        edge: edge.clone(),
        events,
        reply,
    };
    let result = match worker.send(command).await {
        Ok(()) => opened.await.unwrap_or(Err(SfuError::WorkerGone)),
        Err(_) => Err(SfuError::WorkerGone),
    };
    if let Err(error) = result {
        tracing::warn!(%sid, %edge, %error, "could not open a relay");
        context.ownership.leave(&sid).await;
        return;
    }
    tracing::info!(%sid, %edge, "relaying to an edge");
    let mut ping = tokio::time::interval(PING_INTERVAL);
    let mut last_heard = Instant::now();
    let reason = loop {
        tokio::select! {
            _ = ping.tick() => {
                // An edge whose machine died sends no close: it stops answering pings.
                if last_heard.elapsed() >= SILENCE_LIMIT {
                    break format!("the edge answered nothing for {}s", SILENCE_LIMIT.as_secs());
                }
                let _ = socket.send(Message::Ping(Default::default())).await;
            }
            event = events_rx.recv() => match event {
                Some(PeerEvent::SubscriberOffer(offer)) => {
                    let text = protocol::notification("offer", SessionDescription::offer(offer.to_sdp_string()));
                    if socket.send(Message::text(text)).await.is_err() {
                        break "the edge's connection closed".to_owned();
                    }
                }
                Some(PeerEvent::Removed(reason)) => break reason,
                Some(PeerEvent::LayerWanted(_)) => {}
                None => break "the media worker stopped".to_owned(),
            },
            message = socket.recv() => {
                if let Some(Ok(_)) = &message {
                    last_heard = Instant::now();
                }
                match message {
                    Some(Ok(Message::Text(text))) => {
                        if let Err(why) = from_edge(&worker, participant, text.as_str()).await {
                            break why;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        break "the edge closed the relay".to_owned();
                    }
                    Some(Ok(_)) => {}
                }
            }
        }
    };
    tracing::info!(%sid, %edge, %reason, "relay to an edge closed");
    let _ = worker.send(Command::Leave { participant }).await;
    context.ownership.leave(&sid).await;
}

/// Applies the edge's `answer`, or its `layers`: the most its viewers want of a stream's
/// video. Anything else from the edge is a protocol error that ends the relay.
async fn from_edge(
    worker: &mpsc::Sender<Command>,
    participant: crate::sfu::ParticipantId,
    text: &str,
) -> Result<(), String> {
    let desc = match protocol::parse(text) {
        Ok(Incoming::Answer(params)) if params.desc.kind == "answer" => params.desc,
        Ok(Incoming::Layers(preference)) => {
            let command = Command::PreferLayer {
                participant,
                preference,
            };
            return worker
                .send(command)
                .await
                .map_err(|_| SfuError::WorkerGone.to_string());
        }
        Ok(_) => {
            return Err(format!(
                "the edge sent something other than an answer or layers: {text}"
            ));
        }
        Err(error) => return Err(format!("the edge sent bad JSON-RPC: {}", error.to_json())),
    };
    let answer = SdpAnswer::from_sdp_string(&desc.sdp)
        .map_err(|e| format!("the edge's answer is not valid SDP: {e}"))?;
    let (reply, done) = oneshot::channel();
    worker
        .send(Command::Answer {
            participant,
            answer,
            reply,
        })
        .await
        .map_err(|_| SfuError::WorkerGone.to_string())?;
    done.await
        .unwrap_or(Err(SfuError::WorkerGone))
        .map_err(|e| format!("applying the edge's answer: {e}"))
}
