//! The Janus WebSocket API, the client side: one connection (subprotocol `janus-protocol`)
//! carrying one Janus session and its keep-alive; plugin handles attached to it; requests
//! answered by transaction, either at once (`success` or `error`) or with an `ack` first and
//! an `event` later; and what the server sends unasked about a handle (its trickled
//! candidates, `webrtcup`, `hangup`) handed to that handle in arrival order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::loadtest::client::lock;
use crate::loadtest::signal::SignalError;
use crate::loadtest::ws;

/// Janus closes a session that is silent for `session_timeout` (60 s by default).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(25);

/// The videoroom plugin's package name.
pub const VIDEOROOM: &str = "janus.plugin.videoroom";

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;
type Handles = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Value>>>>;

/// A plugin's answer to a message: its `plugindata.data`, and the JSEP it carried.
#[derive(Debug, Clone)]
pub struct PluginReply {
    pub data: Value,
    pub jsep: Option<Value>,
}

/// A handle attached to a plugin, and what Janus sends unasked about it.
pub struct Handle {
    pub id: u64,
    pub events: mpsc::UnboundedReceiver<Value>,
}

#[derive(Default)]
struct State {
    closed: Option<String>,
    problems: Vec<String>,
}

/// One WebSocket connection and the Janus session on it; cheap to clone.
#[derive(Clone)]
pub struct Session {
    id: u64,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    handles: Handles,
    next_transaction: Arc<AtomicU64>,
    state: Arc<Mutex<State>>,
}

impl Session {
    /// Connects to `url`, creates a Janus session and starts its keep-alive, each wait
    /// within `timeout`. Returns the session and the tasks that pump the socket and keep
    /// the session alive (abort them to drop it).
    pub async fn connect(
        url: &str,
        timeout: Duration,
    ) -> Result<(Session, Vec<JoinHandle<()>>), SignalError> {
        let mut request = url
            .into_client_request()
            .map_err(|e| SignalError::Connect {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        // Janus's WebSocket transport refuses a connection without its subprotocol.
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("janus-protocol"),
        );
        let ws = ws::connect(request, url, timeout).await?;
        let (out, out_rx) = mpsc::unbounded_channel::<Message>();
        let mut session = Session {
            id: 0,
            out,
            pending: Pending::default(),
            handles: Handles::default(),
            next_transaction: Arc::new(AtomicU64::new(1)),
            state: Arc::default(),
        };
        let reader = session.clone();
        let ended = session.clone();
        let mut tasks = ws::pump(
            ws,
            out_rx,
            move |text| reader.dispatch(text),
            move |reason| {
                lock(&ended.state).closed.get_or_insert(reason);
                // Dropping the waiting repliers fails their requests at once.
                lock(&ended.pending).clear();
                lock(&ended.handles).clear();
            },
        );
        let created = session.request(json!({"janus": "create"}), "create", timeout);
        let id = match created.await {
            Ok(reply) => reply["data"]["id"].as_u64(),
            Err(error) => {
                tasks.iter().for_each(JoinHandle::abort);
                return Err(error);
            }
        };
        let Some(id) = id else {
            tasks.iter().for_each(JoinHandle::abort);
            return Err(SignalError::Protocol(
                "Janus answered `create` without a session id".to_owned(),
            ));
        };
        session.id = id;
        let keepalive = session.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(KEEPALIVE_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                if keepalive.send(json!({"janus": "keepalive"})).is_err() {
                    break;
                }
            }
        }));
        Ok((session, tasks))
    }

    /// Attaches a handle to `plugin`.
    pub async fn attach(&self, plugin: &str, timeout: Duration) -> Result<Handle, SignalError> {
        let reply = self
            .request(
                json!({"janus": "attach", "plugin": plugin}),
                "attach",
                timeout,
            )
            .await?;
        let id = reply["data"]["id"].as_u64().ok_or_else(|| {
            SignalError::Protocol(format!(
                "Janus answered `attach` without a handle id: {reply}"
            ))
        })?;
        let (tx, events) = mpsc::unbounded_channel();
        lock(&self.handles).insert(id, tx);
        Ok(Handle { id, events })
    }

    /// Sends `body` (and `jsep`) to the plugin behind `handle` and waits for its answer,
    /// synchronous or not. A plugin error (`error_code` in its data) is an error here.
    pub async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
        timeout: Duration,
    ) -> Result<PluginReply, SignalError> {
        let what = body["request"].as_str().unwrap_or("message").to_owned();
        let mut message = json!({"janus": "message", "handle_id": handle, "body": body});
        if let Some(jsep) = jsep {
            message["jsep"] = jsep;
        }
        let reply = self.request(message, &what, timeout).await?;
        let data = reply["plugindata"]["data"].clone();
        if let Some(code) = data["error_code"].as_i64() {
            return Err(SignalError::Janus {
                request: what,
                code,
                reason: data["error"].as_str().unwrap_or_default().to_owned(),
            });
        }
        if data.is_null() {
            return Err(SignalError::Protocol(format!(
                "Janus answered {what:?} without plugin data: {reply}"
            )));
        }
        Ok(PluginReply {
            data,
            jsep: reply.get("jsep").cloned(),
        })
    }

    /// Trickles one of our candidates (an RTCIceCandidateInit object) to `handle`; Janus's
    /// `ack` is not awaited.
    pub fn trickle(&self, handle: u64, candidate: Value) -> Result<(), SignalError> {
        self.send(json!({"janus": "trickle", "handle_id": handle, "candidate": candidate}))
            .map_err(|_| self.closed("trickle"))
    }

    /// Destroys the Janus session, so Janus frees its handles and PeerConnections now
    /// rather than at its session timeout.
    pub fn destroy(&self) {
        let _ = self.send(json!({"janus": "destroy"}));
    }

    /// Why the connection closed, once it has.
    pub fn closed_reason(&self) -> Option<String> {
        lock(&self.state).closed.clone()
    }

    /// Stray errors and unexpected messages so far.
    pub fn problems(&self) -> Vec<String> {
        lock(&self.state).problems.clone()
    }

    /// Gives `message` a new transaction and this session's id.
    fn stamp(&self, message: &mut Value) -> String {
        let transaction = format!("t{}", self.next_transaction.fetch_add(1, Ordering::Relaxed));
        message["transaction"] = Value::from(transaction.clone());
        if self.id != 0 {
            message["session_id"] = Value::from(self.id);
        }
        transaction
    }

    fn send(&self, mut message: Value) -> Result<(), ()> {
        self.stamp(&mut message);
        self.out
            .send(Message::text(message.to_string()))
            .map_err(|_| ())
    }

    /// Sends `message` and waits for the first answer to its transaction that is not an
    /// `ack`.
    async fn request(
        &self,
        message: Value,
        what: &str,
        timeout: Duration,
    ) -> Result<Value, SignalError> {
        let (tx, rx) = oneshot::channel();
        let mut message = message;
        let transaction = self.stamp(&mut message);
        lock(&self.pending).insert(transaction.clone(), tx);
        if self.out.send(Message::text(message.to_string())).is_err() {
            lock(&self.pending).remove(&transaction);
            return Err(self.closed(what));
        }
        let reply = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => return Err(self.closed(what)),
            Err(_) => {
                lock(&self.pending).remove(&transaction);
                return Err(SignalError::Timeout {
                    method: what.to_owned(),
                    after: timeout,
                });
            }
        };
        if reply["janus"] == "error" {
            return Err(SignalError::Janus {
                request: what.to_owned(),
                code: reply["error"]["code"].as_i64().unwrap_or_default(),
                reason: reply["error"]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        Ok(reply)
    }

    fn closed(&self, what: &str) -> SignalError {
        SignalError::Closed {
            method: what.to_owned(),
            reason: self
                .closed_reason()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
        }
    }

    fn dispatch(&self, text: &str) {
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            lock(&self.state)
                .problems
                .push(format!("Janus sent something that is not JSON: {text}"));
            return;
        };
        let kind = message["janus"].as_str().unwrap_or_default();
        if kind == "ack" {
            // Requests wait for what follows their ack; trickles and keep-alives wait for
            // nothing.
            return;
        }
        if kind == "timeout" {
            lock(&self.state)
                .closed
                .get_or_insert_with(|| "Janus timed the session out".to_owned());
            return;
        }
        let waiter = message["transaction"]
            .as_str()
            .and_then(|t| lock(&self.pending).remove(t));
        if let Some(waiter) = waiter {
            let _ = waiter.send(message);
            return;
        }
        let handle = message["sender"]
            .as_u64()
            .and_then(|h| lock(&self.handles).get(&h).cloned());
        match handle {
            Some(handle) => {
                let _ = handle.send(message);
            }
            None if kind == "error" => lock(&self.state).problems.push(format!(
                "Janus error {}: {}",
                message["error"]["code"],
                message["error"]["reason"].as_str().unwrap_or_default()
            )),
            None => {}
        }
    }
}
