//! Raw JSON-RPC calls to an agent's signaling endpoint, for tests that need no media.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// An offer that parses as SDP but cannot set up media: for tests of what the agent decides
/// before the media engine sees the offer (drain, holds, ownership).
const PLACEHOLDER_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n";

/// A `join` request (id 1) for session `sid` with [`PLACEHOLDER_OFFER`]: the participant
/// joins, and its ICE never connects.
pub fn placeholder_join(sid: &str, uid: &str) -> serde_json::Value {
    let params = ion_cluster::protocol::JoinParams {
        sid: sid.to_owned(),
        uid: uid.to_owned(),
        offer: ion_cluster::protocol::SessionDescription::offer(PLACEHOLDER_OFFER),
        config: None,
        token: None,
    };
    let text = ion_cluster::protocol::request(&serde_json::Value::from(1), "join", params);
    serde_json::from_str(&text).expect("a JSON-RPC request")
}

/// Sends one `join` with [`PLACEHOLDER_OFFER`] and returns the JSON-RPC reply.
pub async fn join_with_placeholder_offer(port: u16, sid: &str) -> serde_json::Value {
    join_with_token(port, sid, TokenIn::None).await
}

/// Where a join carries its token.
#[derive(Debug, Clone, Copy)]
pub enum TokenIn<'a> {
    None,
    /// The `token` member of the join params.
    Params(&'a str),
    /// The `access_token` query parameter of the WebSocket URL.
    Url(&'a str),
}

/// [`join_with_placeholder_offer`] with a join token.
pub async fn join_with_token(port: u16, sid: &str, token: TokenIn<'_>) -> serde_json::Value {
    let url = match token {
        TokenIn::Url(token) => format!("ws://127.0.0.1:{port}/ws?access_token={token}"),
        _ => format!("ws://127.0.0.1:{port}/ws"),
    };
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connecting to the agent");
    let mut request = placeholder_join(sid, "u");
    if let TokenIn::Params(token) = token {
        request["params"]["token"] = token.into();
    }
    ws.send(Message::text(request.to_string()))
        .await
        .expect("sending join");
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a reply within 10 s")
            .expect("the socket stays open")
            .expect("a message");
        if let Message::Text(text) = message {
            let reply: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            if reply["id"] == 1 {
                return reply;
            }
        }
    }
}
