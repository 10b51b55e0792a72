//! The client WebSocket both signaling clients use (ion-sfu's JSON-RPC in `signal.rs`, the
//! Janus API in `janus/api.rs`): a connect with a deadline, and a pump of two tasks, one
//! writing what a channel queues and one handing each text message to the client and
//! saying why the stream ended.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::signal::SignalError;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `request` (to `url`, named in errors) within `timeout`.
pub async fn connect(
    request: impl IntoClientRequest + Unpin,
    url: &str,
    timeout: Duration,
) -> Result<Socket, SignalError> {
    match tokio::time::timeout(timeout, tokio_tungstenite::connect_async(request)).await {
        Err(_) => Err(SignalError::ConnectTimeout {
            url: url.to_owned(),
            after: timeout,
        }),
        Ok(Err(error)) => Err(SignalError::Connect {
            url: url.to_owned(),
            reason: error.to_string(),
        }),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

/// Sends what `outgoing` receives, and hands each text message that arrives to `on_text`;
/// when the stream ends, `on_end` gets why. Abort the two tasks to drop the connection.
pub fn pump(
    ws: Socket,
    mut outgoing: mpsc::UnboundedReceiver<Message>,
    mut on_text: impl FnMut(&str) + Send + 'static,
    on_end: impl FnOnce(String) + Send + 'static,
) -> Vec<JoinHandle<()>> {
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let reader = tokio::spawn(async move {
        let reason = loop {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => on_text(text.as_str()),
                Some(Ok(Message::Close(frame))) => {
                    break frame.map_or_else(
                        || "closed without a reason".to_owned(),
                        |f| format!("closed: {} {}", u16::from(f.code), f.reason),
                    );
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => break format!("error: {error}"),
                None => break "the stream ended".to_owned(),
            }
        };
        on_end(reason);
    });
    vec![writer, reader]
}
