//! ion-sfu JSON-RPC 2.0 over a WebSocket, the client side: connect with a deadline, calls
//! with a deadline each, notifications out, and the server's `offer` and `trickle`
//! notifications handed to the participant in arrival order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::ws;
use crate::protocol;

/// How a signaling exchange failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignalError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot connect to {url}: no answer within {after:?}")]
    ConnectTimeout { url: String, after: Duration },
    #[error("no reply to {method:?} within {after:?}")]
    Timeout { method: String, after: Duration },
    #[error("the agent answered {method:?} with JSON-RPC error {code}: {message}")]
    Rpc {
        method: String,
        code: i64,
        message: String,
    },
    #[error("the signaling connection closed before {method:?} was answered{reason}")]
    Closed { method: String, reason: String },
    #[error("Janus answered {request:?} with error {code}: {reason}")]
    Janus {
        request: String,
        code: i64,
        reason: String,
    },
    #[error("{0}")]
    Protocol(String),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, (i64, String)>>>>>;

/// What the server sends unasked.
pub struct Incoming {
    /// SDP of each `offer` notification (the subscriber PC), in order.
    pub offers: mpsc::UnboundedReceiver<String>,
    /// `trickle` notifications: target (0 publisher, 1 subscriber) and the candidate as
    /// sent (an RTCIceCandidateInit object), for the WebRTC client to parse.
    pub candidates: mpsc::UnboundedReceiver<(u8, Value)>,
}

/// The sending side of one signaling connection; cheap to clone.
#[derive(Clone)]
pub struct Signal {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    /// Why the connection closed, once it has; and notices (stray errors) for the report.
    state: Arc<Mutex<SignalState>>,
}

#[derive(Default)]
struct SignalState {
    closed: Option<String>,
    problems: Vec<String>,
}

impl Signal {
    /// Connects to `url` within `timeout`; returns the signal, what the server sends unasked,
    /// and the two tasks that pump the socket (abort them to drop the connection).
    pub async fn connect(
        url: &str,
        timeout: Duration,
    ) -> Result<(Signal, Incoming, Vec<JoinHandle<()>>), SignalError> {
        let ws = ws::connect(url, url, timeout).await?;
        let (out, out_rx) = mpsc::unbounded_channel::<Message>();
        let signal = Signal {
            out,
            pending: Pending::default(),
            next_id: Arc::new(AtomicU64::new(1)),
            state: Arc::default(),
        };
        let (offers_tx, offers) = mpsc::unbounded_channel();
        let (candidates_tx, candidates) = mpsc::unbounded_channel();
        let reader = signal.clone();
        let ended = signal.clone();
        let tasks = ws::pump(
            ws,
            out_rx,
            move |text| reader.dispatch(text, &offers_tx, &candidates_tx),
            move |reason| {
                ended.lock().closed.get_or_insert(reason);
                // Dropping the waiting repliers fails their calls at once.
                ended
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
            },
        );
        Ok((signal, Incoming { offers, candidates }, tasks))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SignalState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a call now; await its reply with [`Reply::wait`].
    pub fn send_call(
        &self,
        method: &str,
        params: impl serde::Serialize,
    ) -> Result<Reply, SignalError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        let text = protocol::request(&Value::from(id), method, params);
        self.out
            .send(Message::text(text))
            .map_err(|_| self.closed(method))?;
        Ok(Reply {
            method: method.to_owned(),
            rx,
            signal: self.clone(),
        })
    }

    /// A call and its reply within `timeout`.
    pub async fn call(
        &self,
        method: &str,
        params: impl serde::Serialize,
        timeout: Duration,
    ) -> Result<Value, SignalError> {
        self.send_call(method, params)?.wait(timeout).await
    }

    pub fn notify(&self, method: &str, params: impl serde::Serialize) -> Result<(), SignalError> {
        let text = protocol::notification(method, params);
        self.out
            .send(Message::text(text))
            .map_err(|_| self.closed(method))
    }

    /// Why the connection closed, once it has.
    pub fn closed_reason(&self) -> Option<String> {
        self.lock().closed.clone()
    }

    /// Stray errors and unexpected messages so far.
    pub fn problems(&self) -> Vec<String> {
        self.lock().problems.clone()
    }

    fn closed(&self, method: &str) -> SignalError {
        SignalError::Closed {
            method: method.to_owned(),
            reason: self
                .closed_reason()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
        }
    }

    fn problem(&self, what: String) {
        self.lock().problems.push(what);
    }

    fn dispatch(
        &self,
        text: &str,
        offers: &mpsc::UnboundedSender<String>,
        candidates: &mpsc::UnboundedSender<(u8, Value)>,
    ) {
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            self.problem(format!("the agent sent something that is not JSON: {text}"));
            return;
        };
        match message["method"].as_str() {
            Some("offer") => match message["params"]["sdp"].as_str() {
                Some(sdp) if message["params"]["type"] == "offer" => {
                    let _ = offers.send(sdp.to_owned());
                }
                _ => self.problem(format!("a malformed offer notification: {text}")),
            },
            Some("trickle") => {
                let target = message["params"]["target"].as_u64().unwrap_or(u64::MAX);
                let candidate = &message["params"]["candidate"];
                if target <= 1 && candidate.is_object() {
                    let _ = candidates.send((target as u8, candidate.clone()));
                } else {
                    self.problem(format!("a malformed trickle notification: {text}"));
                }
            }
            Some(other) => self.problem(format!("an unknown notification {other:?}")),
            None => {
                let reply = match message.get("error") {
                    Some(error) => Err((
                        error["code"].as_i64().unwrap_or_default(),
                        error["message"].as_str().unwrap_or_default().to_owned(),
                    )),
                    None => Ok(message["result"].clone()),
                };
                let waiter = message["id"].as_u64().and_then(|id| {
                    self.pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id)
                });
                match (waiter, reply) {
                    (Some(waiter), reply) => {
                        let _ = waiter.send(reply);
                    }
                    (None, Err((code, message))) => {
                        self.problem(format!("JSON-RPC error {code}: {message}"));
                    }
                    (None, Ok(_)) => self.problem("a reply nobody waits for".to_owned()),
                }
            }
        }
    }
}

/// A call on its way.
pub struct Reply {
    method: String,
    rx: oneshot::Receiver<Result<Value, (i64, String)>>,
    signal: Signal,
}

impl Reply {
    pub async fn wait(self, timeout: Duration) -> Result<Value, SignalError> {
        match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err((code, message)))) => Err(SignalError::Rpc {
                method: self.method,
                code,
                message,
            }),
            Ok(Err(_)) => Err(self.signal.closed(&self.method)),
            Err(_) => Err(SignalError::Timeout {
                method: self.method,
                after: timeout,
            }),
        }
    }
}
