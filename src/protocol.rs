//! ion-sfu's JSON-RPC 2.0 dialect, once for every side that speaks it: the agent's signaling
//! parses and answers it, `ionctl loadtest` and the test harness send it. Parsed strictly
//! enough to give every bad message a clear error; ion-sdk-js omits the `"jsonrpc": "2.0"`
//! member, so it is optional here.
//!
//! Calls: `join {sid, uid, offer, config?}` → answer; `offer {desc}` → answer.
//! Notifications: `answer {desc}`, `trickle {target, candidate}`, and `layers`
//! ([`LayerPreference`], what ion-sdk-js sends over its `ion-sfu` data channel; an edge node
//! sends it to the origin of a relay). Server to client: `offer` (a bare session
//! description) and `trickle`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// ion-sfu's join options (the Go field names are the wire names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinConfig {
    #[serde(rename = "NoPublish", default)]
    pub no_publish: bool,
    #[serde(rename = "NoSubscribe", default)]
    pub no_subscribe: bool,
    #[serde(rename = "NoAutoSubscribe", default)]
    pub no_auto_subscribe: bool,
}

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// Server errors: the request was understood and refused (wrong node, bad SDP, ...).
pub const SERVER_ERROR: i64 = -32000;
/// A join without a valid join token, when the agent requires one.
pub const UNAUTHORIZED: i64 = -32001;

/// A WebRTC session description as browsers serialise it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    #[serde(rename = "type")]
    pub kind: String,
    pub sdp: String,
}

impl SessionDescription {
    pub fn offer(sdp: impl Into<String>) -> Self {
        Self {
            kind: "offer".to_owned(),
            sdp: sdp.into(),
        }
    }

    pub fn answer(sdp: impl Into<String>) -> Self {
        Self {
            kind: "answer".to_owned(),
            sdp: sdp.into(),
        }
    }
}

/// An `RTCIceCandidateInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateInit {
    pub candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(
        default,
        rename = "sdpMLineIndex",
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_m_line_index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// `join`'s params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinParams {
    pub sid: String,
    #[serde(default)]
    pub uid: String,
    pub offer: SessionDescription,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<JoinConfig>,
    /// A join token, when the client does not pass `access_token` in the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The params of `offer` (a call) and `answer` (a notification).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescParams {
    pub desc: SessionDescription,
}

/// Which PeerConnection a trickled candidate belongs to.
pub const TARGET_PUBLISHER: u8 = 0;
pub const TARGET_SUBSCRIBER: u8 = 1;

/// `trickle`'s params, both ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrickleParams {
    /// [`TARGET_PUBLISHER`] or [`TARGET_SUBSCRIBER`].
    pub target: u8,
    pub candidate: CandidateInit,
}

/// Which simulcast layer of a stream's video a subscriber wants, as ion-sdk-js names them;
/// ordered, so the most any subscriber wants is the `max`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum VideoLayer {
    /// No video at all (ion-sdk-js `mute('video')`).
    None,
    Low,
    Medium,
    #[default]
    High,
}

/// ion-sfu's layer selection: the message ion-sdk-js `RemoteStream.preferLayer`, `mute` and
/// `unmute` send over the subscriber PeerConnection's `ion-sfu` data channel. The agent
/// applies `video` to every video track of `streamId`; `audio` and `framerate` are read and
/// not acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerPreference {
    pub stream_id: String,
    pub video: VideoLayer,
    #[serde(default = "default_audio")]
    pub audio: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framerate: Option<String>,
}

fn default_audio() -> bool {
    true
}

/// A message from the client, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Join { id: Value, params: JoinParams },
    Offer { id: Value, params: DescParams },
    Answer(DescParams),
    Trickle(TrickleParams),
    Layers(LayerPreference),
}

/// Why a message could not be understood, with the id to answer to (null when unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub id: Value,
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn new(id: Value, code: i64, message: impl Into<String>) -> Self {
        Self {
            id,
            code,
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> String {
        json!({
            "jsonrpc": "2.0",
            "id": self.id,
            "error": {"code": self.code, "message": self.message},
        })
        .to_string()
    }
}

/// A call's successful reply.
pub fn result(id: &Value, result: impl Serialize) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

/// A notification: no id, no reply.
pub fn notification(method: &str, params: impl Serialize) -> String {
    json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string()
}

/// A call, answered by a result or an error with the same `id`.
pub fn request(id: &Value, method: &str, params: impl Serialize) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    jsonrpc: Option<String>,
    #[serde(default)]
    id: Option<Value>,
    method: Option<Value>,
    #[serde(default)]
    params: Option<Value>,
}

/// Parses one text message.
pub fn parse(text: &str) -> Result<Incoming, RpcError> {
    let envelope: Envelope = serde_json::from_str(text).map_err(|e| {
        RpcError::new(
            Value::Null,
            PARSE_ERROR,
            format!("parse error: the message is not a JSON-RPC object ({e})"),
        )
    })?;
    let id = envelope.id.clone().unwrap_or(Value::Null);
    if let Some(version) = &envelope.jsonrpc
        && version != "2.0"
    {
        return Err(RpcError::new(
            id,
            INVALID_REQUEST,
            format!("unsupported jsonrpc version {version:?}; use \"2.0\""),
        ));
    }
    let method = match &envelope.method {
        Some(Value::String(m)) => m.as_str(),
        Some(_) => {
            return Err(RpcError::new(
                id,
                INVALID_REQUEST,
                "\"method\" must be a string",
            ));
        }
        None => {
            return Err(RpcError::new(
                id,
                INVALID_REQUEST,
                "the message has no \"method\"",
            ));
        }
    };
    let params = envelope.params.unwrap_or(Value::Null);
    let parsed = match method {
        "join" => Incoming::Join {
            id: require_id(&envelope.id, method)?,
            params: params_of(&id, method, params)?,
        },
        "offer" => Incoming::Offer {
            id: require_id(&envelope.id, method)?,
            params: params_of(&id, method, params)?,
        },
        "answer" => Incoming::Answer(params_of(&id, method, params)?),
        "trickle" => Incoming::Trickle(params_of(&id, method, params)?),
        "layers" => Incoming::Layers(params_of(&id, method, params)?),
        other => {
            return Err(RpcError::new(
                id,
                METHOD_NOT_FOUND,
                format!(
                    "method {other:?} not found; this SFU speaks ion-sfu JSON-RPC: join, offer, \
                     answer, trickle (and layers)"
                ),
            ));
        }
    };
    Ok(parsed)
}

fn require_id(id: &Option<Value>, method: &str) -> Result<Value, RpcError> {
    match id {
        Some(id) if !id.is_null() => Ok(id.clone()),
        _ => Err(RpcError::new(
            Value::Null,
            INVALID_REQUEST,
            format!("{method:?} is a call and needs an \"id\""),
        )),
    }
}

fn params_of<T: serde::de::DeserializeOwned>(
    id: &Value,
    method: &str,
    params: Value,
) -> Result<T, RpcError> {
    serde_json::from_value(params).map_err(|e| {
        RpcError::new(
            id.clone(),
            INVALID_PARAMS,
            format!("invalid params for {method:?}: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ion_sdk_js_prefer_layer_parses() {
        // What `RemoteStream.preferLayer('low')` sends on the data channel.
        let text = r#"{"streamId":"s-1","video":"low","audio":true,"framerate":"high"}"#;
        let preference: LayerPreference = serde_json::from_str(text).unwrap();
        assert_eq!(preference.stream_id, "s-1");
        assert_eq!(preference.video, VideoLayer::Low);
        assert!(VideoLayer::None < VideoLayer::Low && VideoLayer::Medium < VideoLayer::High);
        let bad = serde_json::from_str::<LayerPreference>(r#"{"streamId":"s","video":"huge"}"#);
        assert!(bad.unwrap_err().to_string().contains("unknown variant"));
    }

    #[test]
    fn ion_sdk_js_join_parses_without_jsonrpc_member() {
        let text = r#"{"method":"join","params":{"sid":"room","uid":"u1","offer":{"type":"offer","sdp":"v=0"}},"id":"7a3c"}"#;
        let Incoming::Join { id, params } = parse(text).unwrap() else {
            panic!("not a join");
        };
        assert_eq!(id, "7a3c");
        assert_eq!(params.sid, "room");
        assert_eq!(params.offer.kind, "offer");
        assert_eq!(params.config, None);
    }

    #[test]
    fn join_config_uses_ion_sfu_field_names() {
        let text = r#"{"jsonrpc":"2.0","method":"join","id":1,"params":{"sid":"s","uid":"u","offer":{"type":"offer","sdp":"v=0"},"config":{"NoPublish":true,"NoAutoSubscribe":true}}}"#;
        let Incoming::Join { params, .. } = parse(text).unwrap() else {
            panic!("not a join");
        };
        let config = params.config.unwrap();
        assert!(config.no_publish && config.no_auto_subscribe && !config.no_subscribe);
    }

    #[test]
    fn what_a_client_sends_is_what_the_server_parses() {
        let join = JoinParams {
            sid: "room".to_owned(),
            uid: "u1".to_owned(),
            offer: SessionDescription::offer("v=0"),
            config: Some(JoinConfig {
                no_subscribe: true,
                ..JoinConfig::default()
            }),
            token: None,
        };
        let text = request(&Value::from(5), "join", &join);
        assert!(!text.contains("token"), "{text}");
        assert_eq!(
            parse(&text).unwrap(),
            Incoming::Join {
                id: Value::from(5),
                params: join
            }
        );
        let trickle = TrickleParams {
            target: TARGET_SUBSCRIBER,
            candidate: CandidateInit {
                candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".to_owned(),
                sdp_mid: Some("0".to_owned()),
                sdp_m_line_index: Some(0),
                username_fragment: None,
            },
        };
        let text = notification("trickle", &trickle);
        assert_eq!(parse(&text).unwrap(), Incoming::Trickle(trickle));
        let answer = DescParams {
            desc: SessionDescription::answer("v=0"),
        };
        assert_eq!(
            parse(&notification("answer", &answer)).unwrap(),
            Incoming::Answer(answer)
        );
    }

    #[test]
    fn trickle_carries_target_and_candidate() {
        let text = r#"{"method":"trickle","params":{"target":1,"candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abc"}}}"#;
        let Incoming::Trickle(t) = parse(text).unwrap() else {
            panic!("not a trickle");
        };
        assert_eq!(t.target, 1);
        assert_eq!(t.candidate.sdp_m_line_index, Some(0));
    }

    #[test]
    fn bad_messages_get_the_right_codes() {
        assert_eq!(parse("{not json").unwrap_err().code, PARSE_ERROR);
        assert_eq!(parse("[1,2]").unwrap_err().code, PARSE_ERROR);
        assert_eq!(parse(r#"{"id":1}"#).unwrap_err().code, INVALID_REQUEST);
        let unknown = parse(r#"{"method":"subscribe","id":3}"#).unwrap_err();
        assert_eq!(
            (unknown.code, unknown.id.clone()),
            (METHOD_NOT_FOUND, Value::from(3))
        );
        assert!(unknown.message.contains("subscribe"));
        let missing = parse(r#"{"method":"join","id":4,"params":{"uid":"u"}}"#).unwrap_err();
        assert_eq!(missing.code, INVALID_PARAMS);
        assert!(missing.message.contains("sid"), "{}", missing.message);
        assert_eq!(
            parse(r#"{"method":"join","params":{}}"#).unwrap_err().code,
            INVALID_REQUEST
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"1.0","method":"offer","id":1}"#)
                .unwrap_err()
                .code,
            INVALID_REQUEST
        );
    }
}
