//! One signaling WebSocket: one participant. It parses each message, checks it, claims the
//! session in etcd on join, and relays between the client and the session's media worker.
//! Bad input gets a JSON-RPC error; repeated bad input closes this connection only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use ion_cluster::model::keys::validate_id;
use ion_cluster::token;
use serde_json::Value;
use str0m::change::{SdpAnswer, SdpOffer};
use tokio::sync::{mpsc, oneshot};

use super::SignalContext;
use crate::ownership::Membership;
use crate::sfu::{Command, Link, ParticipantId, PeerEvent, SfuError, Target};
use ion_cluster::protocol::{
    self, INVALID_PARAMS, INVALID_REQUEST, Incoming, RpcError, SERVER_ERROR, SessionDescription,
    UNAUTHORIZED,
};

/// How often the server pings an idle client.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// RFC 6455 close codes.
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_GOING_AWAY: u16 = 1001;

struct Joined {
    participant: ParticipantId,
    sid: String,
    worker: mpsc::Sender<Command>,
    /// The session spans nodes: this node pulls its tracks from the others.
    spans: bool,
}

struct Connection {
    context: Arc<SignalContext>,
    joined: Option<Joined>,
    errors: u32,
    events_tx: mpsc::UnboundedSender<PeerEvent>,
    /// The token from the URL (`?access_token=`), if any.
    access_token: Option<String>,
}

enum Wake {
    Message(Option<Result<Message, axum::Error>>),
    Event(Option<PeerEvent>),
    Ping,
    /// `[signal] join_timeout` passed without a join.
    JoinTimeout,
}

/// What to do after a message.
enum Next {
    Continue,
    Close(u16, String),
}

pub async fn serve(
    mut socket: WebSocket,
    context: Arc<SignalContext>,
    access_token: Option<String>,
) {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let mut connection = Connection {
        context: context.clone(),
        joined: None,
        errors: 0,
        events_tx,
        access_token,
    };
    metrics::gauge!("ion_agent_signal_connections").increment(1.0);
    let idle_timeout = context.config.idle_timeout;
    let join_deadline = tokio::time::Instant::now() + context.config.join_timeout;
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    loop {
        let wake = tokio::select! {
            message = socket.recv() => Wake::Message(message),
            event = events_rx.recv() => Wake::Event(event),
            _ = ping.tick() => Wake::Ping,
            () = tokio::time::sleep_until(join_deadline), if connection.joined.is_none() => {
                Wake::JoinTimeout
            }
        };
        let next = match wake {
            Wake::Message(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => break,
            Wake::Message(Some(Ok(message))) => {
                last_heard = Instant::now();
                match message {
                    Message::Text(text) => connection.on_text(&mut socket, text.as_str()).await,
                    Message::Binary(_) => {
                        let error = RpcError::new(
                            Value::Null,
                            INVALID_REQUEST,
                            "binary messages are not supported; send JSON-RPC as text",
                        );
                        connection.reply_error(&mut socket, error).await
                    }
                    // axum answers pings itself; a pong only proves liveness.
                    _ => Next::Continue,
                }
            }
            Wake::Event(Some(PeerEvent::SubscriberOffer(offer))) => {
                let description = SessionDescription {
                    kind: "offer".to_owned(),
                    sdp: offer.to_sdp_string(),
                };
                send(&mut socket, protocol::notification("offer", description)).await
            }
            Wake::Event(Some(PeerEvent::Removed(reason))) => Next::Close(
                CLOSE_GOING_AWAY,
                format!("removed from the session: {reason}"),
            ),
            // Only a relay's edge end is told what to ask upstream; a client never is.
            Wake::Event(Some(PeerEvent::LayerWanted(_)) | None) => Next::Continue,
            Wake::JoinTimeout => Next::Close(
                CLOSE_POLICY,
                format!(
                    "no join within {}s of connecting",
                    context.config.join_timeout.as_secs()
                ),
            ),
            Wake::Ping => {
                if last_heard.elapsed() >= idle_timeout {
                    Next::Close(
                        CLOSE_POLICY,
                        format!("no message or pong for {}s", idle_timeout.as_secs()),
                    )
                } else {
                    let _ = socket.send(Message::Ping(Default::default())).await;
                    Next::Continue
                }
            }
        };
        if let Next::Close(code, reason) = next {
            tracing::info!(code, %reason, "closing signaling connection");
            let frame = CloseFrame {
                code,
                reason: close_reason(&reason).into(),
            };
            let _ = socket.send(Message::Close(Some(frame))).await;
            break;
        }
    }
    connection.leave().await;
    metrics::gauge!("ion_agent_signal_connections").decrement(1.0);
}

async fn send(socket: &mut WebSocket, text: String) -> Next {
    match socket.send(Message::Text(text.into())).await {
        Ok(()) => Next::Continue,
        Err(_) => Next::Close(CLOSE_NORMAL, "the client went away".to_owned()),
    }
}

impl Connection {
    async fn reply_error(&mut self, socket: &mut WebSocket, error: RpcError) -> Next {
        self.errors += 1;
        metrics::counter!("ion_agent_signal_errors_total").increment(1);
        tracing::debug!(code = error.code, message = %error.message, "signaling error");
        if let Next::Close(code, reason) = send(socket, error.to_json()).await {
            return Next::Close(code, reason);
        }
        let limit = self.context.config.max_errors;
        if self.errors >= limit {
            return Next::Close(
                CLOSE_POLICY,
                format!("{limit} bad messages on this connection; closing it"),
            );
        }
        Next::Continue
    }

    async fn on_text(&mut self, socket: &mut WebSocket, text: &str) -> Next {
        let limit = self.context.config.max_message_bytes;
        if text.len() > limit {
            let error = RpcError::new(
                Value::Null,
                INVALID_REQUEST,
                format!(
                    "message of {} bytes exceeds the limit of {limit} bytes",
                    text.len()
                ),
            );
            return self.reply_error(socket, error).await;
        }
        let incoming = match protocol::parse(text) {
            Ok(incoming) => incoming,
            Err(error) => return self.reply_error(socket, error).await,
        };
        let outcome = match incoming {
            Incoming::Join { id, params } => self.join(id, params).await,
            Incoming::Offer { id, params } => self.offer(id, params.desc).await,
            Incoming::Answer(params) => self.answer(params.desc).await.map(|()| None),
            Incoming::Trickle(params) => self.trickle(params).await.map(|()| None),
            Incoming::Layers(preference) => self.layers(preference).await.map(|()| None),
        };
        match outcome {
            Ok(Some(reply)) => send(socket, reply).await,
            Ok(None) => Next::Continue,
            Err(error) => self.reply_error(socket, error).await,
        }
    }

    async fn join(
        &mut self,
        id: Value,
        params: protocol::JoinParams,
    ) -> Result<Option<String>, RpcError> {
        let invalid = |message: String| RpcError::new(id.clone(), INVALID_PARAMS, message);
        if let Some(joined) = &self.joined {
            return Err(RpcError::new(
                id.clone(),
                INVALID_REQUEST,
                format!(
                    "this connection already joined session {}; open another connection to join again",
                    joined.sid
                ),
            ));
        }
        validate_id("session", &params.sid).map_err(|e| invalid(e.to_string()))?;
        if let Some(secret) = &self.context.join_secret {
            let token = params.token.as_deref().or(self.access_token.as_deref());
            let now = std::time::SystemTime::now();
            token::verify(secret, token, &params.sid, &self.context.node_id, now).map_err(|e| {
                RpcError::new(id.clone(), UNAUTHORIZED, format!("join refused: {e}"))
            })?;
        }
        let offer = parse_offer(&params.offer).map_err(invalid)?;
        let membership = self
            .context
            .ownership
            .join(&params.sid)
            .await
            .map_err(|e| RpcError::new(id.clone(), SERVER_ERROR, e.to_string()))?;
        // A conference on this node alone pulls from edges added later, if relays are set up.
        let spans = match membership {
            Membership::Owner { spans, may_span } => {
                spans || (may_span && self.context.edges.can_relay())
            }
            Membership::Edge => true,
        };
        if spans && let Err(why) = self.context.edges.enter(&params.sid) {
            self.context.ownership.leave(&params.sid).await;
            return Err(RpcError::new(id.clone(), SERVER_ERROR, why));
        }
        let sfu = &self.context.sfu;
        let participant = sfu.new_participant_id();
        let worker = sfu.worker_for(&params.sid);
        let (reply, answer) = oneshot::channel();
        let command = Command::Join {
            participant,
            sid: params.sid.as_str().into(),
            uid: params.uid.clone(),
            offer,
            config: params.config.unwrap_or_default(),
            link: Link::Client,
            events: self.events_tx.clone(),
            reply,
        };
        let result = match worker.send(command).await {
            Ok(()) => answer.await.unwrap_or(Err(SfuError::WorkerGone)),
            Err(_) => Err(SfuError::WorkerGone),
        };
        match result {
            Ok(answer) => {
                self.joined = Some(Joined {
                    participant,
                    sid: params.sid,
                    worker,
                    spans,
                });
                Ok(Some(protocol::result(&id, answer_description(&answer))))
            }
            Err(error) => {
                self.forget(&params.sid, spans).await;
                Err(sfu_error(id, error))
            }
        }
    }

    fn joined(&self, id: &Value) -> Result<&Joined, RpcError> {
        self.joined
            .as_ref()
            .ok_or_else(|| RpcError::new(id.clone(), INVALID_REQUEST, "join a session first"))
    }

    async fn offer(
        &mut self,
        id: Value,
        desc: SessionDescription,
    ) -> Result<Option<String>, RpcError> {
        let joined = self.joined(&id)?;
        let offer = parse_offer(&desc).map_err(|m| RpcError::new(id.clone(), INVALID_PARAMS, m))?;
        let (reply, answer) = oneshot::channel();
        let command = Command::Offer {
            participant: joined.participant,
            offer,
            reply,
        };
        let result = match joined.worker.send(command).await {
            Ok(()) => answer.await.unwrap_or(Err(SfuError::WorkerGone)),
            Err(_) => Err(SfuError::WorkerGone),
        };
        result
            .map(|answer| Some(protocol::result(&id, answer_description(&answer))))
            .map_err(|e| sfu_error(id, e))
    }

    async fn answer(&mut self, desc: SessionDescription) -> Result<(), RpcError> {
        let joined = self.joined(&Value::Null)?;
        if desc.kind != "answer" {
            return Err(RpcError::new(
                Value::Null,
                INVALID_PARAMS,
                format!(
                    "\"answer\" needs a description of type \"answer\", not {:?}",
                    desc.kind
                ),
            ));
        }
        let answer = SdpAnswer::from_sdp_string(&desc.sdp).map_err(|e| {
            RpcError::new(
                Value::Null,
                INVALID_PARAMS,
                format!("invalid SDP answer: {e}"),
            )
        })?;
        let (reply, done) = oneshot::channel();
        let command = Command::Answer {
            participant: joined.participant,
            answer,
            reply,
        };
        let result = match joined.worker.send(command).await {
            Ok(()) => done.await.unwrap_or(Err(SfuError::WorkerGone)),
            Err(_) => Err(SfuError::WorkerGone),
        };
        result.map_err(|e| sfu_error(Value::Null, e))
    }

    /// The `layers` notification: the same layer choice ion-sdk-js sends on its data channel.
    async fn layers(&mut self, preference: protocol::LayerPreference) -> Result<(), RpcError> {
        let joined = self.joined(&Value::Null)?;
        let command = Command::PreferLayer {
            participant: joined.participant,
            preference,
        };
        joined
            .worker
            .send(command)
            .await
            .map_err(|_| sfu_error(Value::Null, SfuError::WorkerGone))
    }

    async fn trickle(&mut self, params: protocol::TrickleParams) -> Result<(), RpcError> {
        let joined = self.joined(&Value::Null)?;
        let target = match params.target {
            0 => Target::Publisher,
            1 => Target::Subscriber,
            other => {
                return Err(RpcError::new(
                    Value::Null,
                    INVALID_PARAMS,
                    format!("trickle target must be 0 (publisher) or 1 (subscriber), not {other}"),
                ));
            }
        };
        let command = Command::Trickle {
            participant: joined.participant,
            target,
            candidate: params.candidate.candidate,
        };
        joined
            .worker
            .send(command)
            .await
            .map_err(|_| sfu_error(Value::Null, SfuError::WorkerGone))
    }

    async fn leave(&mut self) {
        if let Some(joined) = self.joined.take() {
            let _ = joined
                .worker
                .send(Command::Leave {
                    participant: joined.participant,
                })
                .await;
            self.forget(&joined.sid, joined.spans).await;
        }
    }

    /// Counts this connection's participant out of the session and of its relays.
    async fn forget(&self, sid: &str, spans: bool) {
        if spans {
            self.context.edges.leave(sid);
        }
        self.context.ownership.leave(sid).await;
    }
}

/// A WebSocket close frame carries at most 123 bytes of reason (RFC 6455 §5.5): `reason`
/// cut at a character boundary, with an ellipsis when cut. The log keeps all of it.
fn close_reason(reason: &str) -> String {
    const LIMIT: usize = 123;
    if reason.len() <= LIMIT {
        return reason.to_owned();
    }
    let mut end = LIMIT - '…'.len_utf8();
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &reason[..end])
}

fn parse_offer(desc: &SessionDescription) -> Result<SdpOffer, String> {
    if desc.kind != "offer" {
        return Err(format!(
            "expected a description of type \"offer\", not {:?}",
            desc.kind
        ));
    }
    SdpOffer::from_sdp_string(&desc.sdp).map_err(|e| format!("invalid SDP offer: {e}"))
}

fn answer_description(answer: &SdpAnswer) -> SessionDescription {
    SessionDescription {
        kind: "answer".to_owned(),
        sdp: answer.to_sdp_string(),
    }
}

fn sfu_error(id: Value, error: SfuError) -> RpcError {
    let code = match error {
        SfuError::BadSdp(_) | SfuError::BadRequest(_) => INVALID_PARAMS,
        _ => SERVER_ERROR,
    };
    RpcError::new(id, code, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::close_reason;

    #[test]
    fn a_close_reason_fits_the_frame() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= 123 && cut.ends_with('…'), "{cut}");
    }
}
