//! Fuzzing of every parser of untrusted input in the library (issue 18): the ion-sfu JSON-RPC
//! messages and data-channel layer choices ([`crate::protocol`]), join, relay and client
//! tokens ([`crate::token`]), etcd records as the store decodes them ([`crate::model`]), and
//! Compute Engine answers, through the real client against a local server
//! ([`crate::compute`], [`crate::provider::gce`]). The agent's parsers have theirs in
//! `agent/src/fuzz_tests.rs`.
//!
//! Property tests on stable Rust (proptest), not libFuzzer: each asserts that bad input gives
//! an error or is ignored, never a panic, and checks a cheap invariant where there is one
//! (what parses re-serialises to the same thing). The suite runs a few hundred cases each;
//! `scripts/fuzz` runs them for longer. See [`support`] for the knobs.

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestCaseResult};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use support::{Bytes, CHEAP, COSTLY, fuzz, json_value, mutated_bytes, mutated_json, mutated_text};

/// An `Err` for the test runner: the case failed with `why`.
fn fail(why: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(why.into())
}

/// A JSON value that holds a float somewhere: floats may not survive a text round trip
/// exactly (serde_json parses them to within an ulp), so round-trip checks skip them.
fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(fields) => fields.values().any(has_float),
        _ => false,
    }
}

mod protocol {
    //! ion-sfu JSON-RPC as the agent's signaling and the relay's origin end read it.

    use super::*;
    use crate::protocol::{
        INVALID_PARAMS, INVALID_REQUEST, Incoming, LayerPreference, METHOD_NOT_FOUND, PARSE_ERROR,
        notification, parse, request,
    };

    const KEYS: &[&str] = &[
        "jsonrpc",
        "id",
        "method",
        "params",
        "sid",
        "uid",
        "offer",
        "type",
        "sdp",
        "config",
        "token",
        "desc",
        "target",
        "candidate",
        "sdpMid",
        "sdpMLineIndex",
        "usernameFragment",
        "streamId",
        "video",
        "audio",
        "framerate",
        "NoPublish",
        "NoSubscribe",
        "NoAutoSubscribe",
    ];

    /// A valid message of each kind a client or an edge sends.
    fn seeds() -> Vec<Value> {
        vec![
            json!({"jsonrpc": "2.0", "id": 1, "method": "join", "params": {
                "sid": "room-1", "uid": "alice", "token": "t.o.k",
                "offer": {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n"},
                "config": {"NoPublish": false, "NoSubscribe": true, "NoAutoSubscribe": false}}}),
            json!({"id": "7a3c", "method": "offer", "params": {
                "desc": {"type": "offer", "sdp": "v=0\r\n"}}}),
            json!({"jsonrpc": "2.0", "method": "answer", "params": {
                "desc": {"type": "answer", "sdp": "v=0\r\n"}}}),
            json!({"method": "trickle", "params": {"target": 1, "candidate": {
                "candidate": "candidate:1 1 udp 2122260223 192.168.0.2 50000 typ host",
                "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"}}}),
            json!({"method": "layers", "params": {
                "streamId": "alice", "video": "low", "audio": true, "framerate": "high"}}),
        ]
    }

    /// What the agent does with a text message: an understood message re-serialises (as a
    /// client would send it) to the same message; a refused one gets an error object with a
    /// JSON-RPC code that names the fault.
    fn check(text: &str) -> TestCaseResult {
        match parse(text) {
            Ok(incoming) => {
                let again = match &incoming {
                    Incoming::Join { id, params } => request(id, "join", params),
                    Incoming::Offer { id, params } => request(id, "offer", params),
                    Incoming::Answer(params) => notification("answer", params),
                    Incoming::Trickle(params) => notification("trickle", params),
                    Incoming::Layers(params) => notification("layers", params),
                };
                let reparsed = parse(&again)
                    .map_err(|e| fail(format!("{again} does not parse again: {e:?}")))?;
                let id_of = |m: &Incoming| match m {
                    Incoming::Join { id, .. } | Incoming::Offer { id, .. } => Some(id.clone()),
                    _ => None,
                };
                if id_of(&incoming).as_ref().is_some_and(has_float) {
                    prop_assert_eq!(
                        std::mem::discriminant(&reparsed),
                        std::mem::discriminant(&incoming)
                    );
                } else {
                    prop_assert_eq!(reparsed, incoming);
                }
            }
            Err(error) => {
                let codes = [
                    PARSE_ERROR,
                    INVALID_REQUEST,
                    METHOD_NOT_FOUND,
                    INVALID_PARAMS,
                ];
                prop_assert!(
                    codes.contains(&error.code),
                    "unexpected code {}",
                    error.code
                );
                let reply: Value = serde_json::from_str(&error.to_json())
                    .map_err(|e| fail(format!("the error reply is not JSON: {e}")))?;
                prop_assert_eq!(&reply["error"]["code"], &Value::from(error.code));
                if !has_float(&error.id) {
                    prop_assert_eq!(&reply["id"], &error.id);
                }
            }
        }
        Ok(())
    }

    /// The seeds are valid, so that their mutations reach past the first check.
    #[test]
    fn the_seeds_parse() {
        for seed in seeds() {
            let text = seed.to_string();
            assert!(parse(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn any_text_is_answered_or_refused() {
        let text = prop_oneof![
            any::<String>(),
            prop::collection::vec(any::<u8>(), 0..256)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            support::nasty_string(),
        ];
        fuzz("protocol::any_text", CHEAP, text, |text| check(&text));
    }

    #[test]
    fn any_json_is_answered_or_refused() {
        fuzz("protocol::any_json", CHEAP, json_value(4, KEYS), |value| {
            check(&value.to_string())
        });
    }

    #[test]
    fn mutated_messages_are_answered_or_refused() {
        let seeds = seeds();
        let by_value =
            (0..seeds.len()).prop_flat_map(move |i| mutated_json(seeds[i].clone(), KEYS));
        let texts: Vec<String> = seeds_text();
        let by_text = (0..texts.len()).prop_flat_map(move |i| mutated_text(&texts[i]));
        let input = prop_oneof![by_value.prop_map(|v| v.to_string()), by_text];
        fuzz("protocol::mutated", CHEAP, input, |text| check(&text));
    }

    fn seeds_text() -> Vec<String> {
        seeds().iter().map(Value::to_string).collect()
    }

    /// serde_json stops at 128 levels; deeper input must be refused, not overflow the stack.
    #[test]
    fn deep_nesting_is_refused_without_overflowing() {
        const OPENERS: &[&str] = &["[", "{\"params\":", "{\"id\":", "{\"a\":["];
        let opener = prop::sample::select(OPENERS);
        let input = (opener, 1usize..20_000).prop_map(|(open, depth)| {
            let close = match open {
                "[" => "]",
                "{\"a\":[" => "]}",
                _ => "}",
            };
            format!("{}1{}", open.repeat(depth), close.repeat(depth))
        });
        fuzz("protocol::deep_nesting", 64, input, |text| check(&text));
    }

    /// What a subscriber sends on its `ion-sfu` data channel (the worker reads it with
    /// `serde_json::from_slice`): refused, or a preference that round-trips.
    #[test]
    fn data_channel_layer_choices() {
        let seed =
            json!({"streamId": "alice", "video": "medium", "audio": false, "framerate": "low"});
        let input = prop_oneof![
            mutated_json(seed.clone(), KEYS).prop_map(|v| v.to_string().into_bytes()),
            mutated_bytes(seed.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..128),
        ]
        .prop_map(Bytes);
        fuzz("protocol::layer_choice", CHEAP, input, |bytes| {
            if let Ok(preference) = serde_json::from_slice::<LayerPreference>(&bytes.0) {
                let text = serde_json::to_string(&preference)
                    .map_err(|e| fail(format!("does not serialise: {e}")))?;
                let again: LayerPreference = serde_json::from_str(&text)
                    .map_err(|e| fail(format!("{text} does not parse again: {e}")))?;
                prop_assert_eq!(again, preference);
            }
            Ok(())
        });
    }
}

mod tokens {
    //! Join, relay and client tokens: whatever a client puts in `token` or `access_token`.

    use super::*;
    use crate::token::{
        self, ClientGrant, JoinSecret, TokenError, issue, issue_client, issue_relay, verify,
        verify_client, verify_relay,
    };
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    const SECRET: &str = "fuzz-secret-0123456789abcdef-0123456789";
    const SID: &str = "room-1";
    const NODE: &str = "node-1";
    const KEYS: &[&str] = &[
        "iss", "sid", "node", "iat", "exp", "class", "size", "role", "alg",
    ];

    fn secret() -> JoinSecret {
        JoinSecret::new(SECRET).expect("the test secret is long enough")
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    /// A token of each kind, valid at `at(10)`.
    fn valid_tokens() -> Vec<String> {
        let ttl = Duration::from_secs(300);
        let grant = ClientGrant {
            sid: SID.to_owned(),
            ..ClientGrant::default()
        };
        vec![
            issue(&secret(), SID, NODE, at(0), ttl),
            issue_relay(&secret(), SID, NODE, at(0), ttl),
            issue_client(&secret(), &grant, at(0), ttl),
        ]
    }

    /// What a verifier accepted: the issuer it wants, and the token's issuer, session and
    /// expiry.
    type Accepted = (&'static str, String, String, u64);

    /// Every verifier on `text`; each outcome is returned for the caller to judge.
    fn verify_all(text: &str) -> [Result<Accepted, TokenError>; 3] {
        let now = at(10);
        let join = verify(&secret(), Some(text), SID, NODE, now)
            .map(|c| ("ion-cluster", c.iss, c.sid, c.exp));
        let relay = verify_relay(&secret(), Some(text), SID, NODE, now)
            .map(|c| ("ion-cluster-relay", c.iss, c.sid, c.exp));
        let client = verify_client(&secret(), Some(text), now)
            .map(|c| ("ion-cluster-client", c.iss, c.sid, c.exp));
        [join, relay, client]
    }

    #[test]
    fn any_string_is_refused() {
        let b64 = "[A-Za-z0-9_-]{0,80}";
        let input = prop_oneof![
            any::<String>(),
            support::nasty_string(),
            (b64, b64, b64).prop_map(|(h, p, s)| format!("{h}.{p}.{s}")),
        ];
        fuzz("token::any_string", CHEAP, input, |text| {
            for outcome in verify_all(&text) {
                prop_assert!(outcome.is_err(), "{text:?} was accepted: {outcome:?}");
            }
            Ok(())
        });
    }

    /// A valid token with any change is refused by every verifier: the signature covers the
    /// header and claims as sent, and base64 decoding is canonical.
    #[test]
    fn mutated_tokens_are_refused() {
        let tokens = valid_tokens();
        // Token i is valid for verifier i (join, relay, client).
        for (i, token) in tokens.iter().enumerate() {
            assert!(verify_all(token)[i].is_ok(), "seed token {i} is valid");
        }
        let input = (0..tokens.len())
            .prop_flat_map(move |i| (Just(tokens[i].clone()), mutated_text(&tokens[i])));
        fuzz("token::mutated", CHEAP, input, |(original, text)| {
            if text == original {
                return Ok(());
            }
            for outcome in verify_all(&text) {
                prop_assert!(
                    outcome.is_err(),
                    "a mutated token was accepted: {outcome:?}"
                );
            }
            Ok(())
        });
    }

    /// Claims of any shape signed with the cluster's secret (a buggy issuer, an operator's
    /// back end that makes its own client tokens): refused or accepted, never a panic, and
    /// only accepted with the right issuer, session and node, and unexpired.
    #[test]
    fn signed_claims_of_any_shape() {
        let claims = json!({"iss": "ion-cluster", "sid": SID, "node": NODE, "iat": 1_700_000_000u64,
            "exp": 1_700_000_300u64});
        let client = json!({"iss": "ion-cluster-client", "sid": SID, "class": "meeting",
            "size": 4, "role": "viewer", "iat": 1_700_000_000u64, "exp": 1_700_000_300u64});
        const EXTREMES: &[u64] = &[u64::MAX, i64::MAX as u64, i64::MAX as u64 + 1];
        let exp = prop_oneof![
            any::<u64>(),
            1_699_999_000u64..1_700_001_000,
            prop::sample::select(EXTREMES),
        ];
        let input = prop_oneof![
            (prop_oneof![Just(claims.clone()), Just(client.clone())], exp).prop_map(
                |(mut c, exp)| {
                    c["exp"] = Value::from(exp);
                    c
                }
            ),
            mutated_json(claims, KEYS),
            mutated_json(client, KEYS),
            json_value(2, KEYS),
        ];
        fuzz("token::signed_claims", CHEAP, input, |claims| {
            let key = EncodingKey::from_secret(SECRET.as_bytes());
            let Ok(text) = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
            else {
                return Ok(());
            };
            let now_secs = 1_700_000_010u64;
            for outcome in verify_all(&text).into_iter().flatten() {
                let (issuer, iss, sid, exp) = outcome;
                prop_assert_eq!(&iss, issuer);
                // A client token's session is the gateway's to compare with the join.
                if issuer != "ion-cluster-client" {
                    prop_assert_eq!(sid, SID);
                }
                prop_assert!(exp.saturating_add(token::CLOCK_LEEWAY.as_secs()) > now_secs);
            }
            Ok(())
        });
    }
}

mod records {
    //! etcd records as the store decodes them (`serde_json::from_slice` on each value, in
    //! `store::read`, `watch`, `update`, `sessions`, `drain`), and the reads done on them.

    use super::*;
    use crate::model::keys::validate_id;
    use crate::model::{
        DrainRequest, InstanceRecord, InstanceState, Keys, NodeRecord, NodeState, PendingDemand,
        RecordedFile, RecordingRecord, RecordingState, SessionClass, SessionRecord, SessionState,
    };

    const KEYS: &[&str] = &[
        "id",
        "signal_url",
        "address",
        "zone",
        "machine_type",
        "vcpus",
        "capacity",
        "state",
        "hold_for",
        "shared_host",
        "labels",
        "problem",
        "version",
        "started_at",
        "stats",
        "updated_at",
        "cpu",
        "agent_cpu",
        "other_cpu",
        "mem_used_bytes",
        "observed_units",
        "sessions",
        "peers",
        "sid",
        "class",
        "size",
        "demand",
        "node",
        "relays",
        "edge_demand",
        "created_at",
        "requested_at",
        "deadline",
        "reason",
        "since",
        "name",
        "provider",
        "demands",
        "registered_at",
        "note",
        "reservation",
        "bucket",
        "stop_requested",
        "stopped_at",
        "dir",
        "files",
        "bytes",
        "duration_ms",
        "uploaded",
        "uid",
        "error",
    ];

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
    }

    fn node() -> NodeRecord {
        let mut node = NodeRecord::blank("node-1", "n2-highcpu-4", 4, 300, t0()).spending(0.25);
        node.state = NodeState::Draining;
        node.hold_for = Some("room-1".to_owned());
        node.labels = BTreeMap::from([("zone".to_owned(), "europe-west1-b".to_owned())]);
        node.problem = Some("disk full".to_owned());
        node.stats.sessions = 3;
        node.stats.bitrate_in_bps = 2_000_000;
        node
    }

    fn session() -> SessionRecord {
        SessionRecord {
            sid: "room-1".to_owned(),
            class: SessionClass::Livestream,
            size: 300,
            demand: 255,
            node: "node-1".to_owned(),
            state: SessionState::Live,
            relays: vec!["node-2".to_owned(), "node-3".to_owned()],
            edge_demand: 120,
            created_at: t0(),
        }
    }

    fn drain() -> DrainRequest {
        DrainRequest {
            requested_at: t0(),
            deadline: Some(t0() + Duration::from_secs(600)),
            reason: Some("kernel update".to_owned()),
        }
    }

    fn pending() -> PendingDemand {
        PendingDemand {
            sid: "room-2".to_owned(),
            class: SessionClass::Meeting,
            size: 20,
            demand: 40,
            machine_type: Some("n2-highcpu-8".to_owned()),
            since: t0(),
        }
    }

    fn instance() -> InstanceRecord {
        InstanceRecord {
            name: "ion-n2-abcd".to_owned(),
            provider: "gce".to_owned(),
            zone: "europe-west1-b".to_owned(),
            machine_type: "n2-highcpu-4".to_owned(),
            hold_for: Some("room-1".to_owned()),
            demands: vec!["room-2".to_owned()],
            state: InstanceState::Booting,
            created_at: t0(),
            registered_at: Some(t0() + Duration::from_secs(40)),
            note: Some("waiting for quota".to_owned()),
        }
    }

    fn recording() -> RecordingRecord {
        let file = |uid: &str, bytes| RecordedFile {
            name: format!("{uid}.webm"),
            uid: uid.to_owned(),
            bytes,
            duration_ms: 61_000,
            uploaded: Some(format!("gs://bucket/room-1/{uid}.webm")),
        };
        RecordingRecord {
            sid: "room-1".to_owned(),
            node: "node-9".to_owned(),
            reservation: RecordingRecord::reservation_for("room-1"),
            state: RecordingState::Uploading,
            bucket: Some("gs://bucket/room-1".to_owned()),
            stop_requested: true,
            requested_at: t0(),
            started_at: Some(t0() + Duration::from_secs(1)),
            stopped_at: Some(t0() + Duration::from_secs(62)),
            dir: Some("/var/lib/ion/recordings/room-1".to_owned()),
            files: vec![file("alice", 1_000_000), file("bob", 2_000_000)],
            error: None,
        }
    }

    /// Inputs for a record type: its valid record mutated as JSON or as text, or any JSON.
    fn inputs<T: Serialize>(seed: &T) -> impl Strategy<Value = Bytes> + use<T> {
        let value = serde_json::to_value(seed).expect("a record serialises");
        let text = value.to_string().into_bytes();
        prop_oneof![
            3 => mutated_json(value, KEYS).prop_map(|v| v.to_string().into_bytes()),
            2 => mutated_bytes(text),
            1 => json_value(3, KEYS).prop_map(|v| v.to_string().into_bytes()),
        ]
        .prop_map(Bytes)
    }

    /// What the store does with a value: an error, or a record that serialises, decodes
    /// again, and is then stable (timestamps keep milliseconds, so the first write may round).
    fn decode<T>(bytes: &[u8]) -> Result<Option<T>, TestCaseError>
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let Ok(record) = serde_json::from_slice::<T>(bytes) else {
            return Ok(None);
        };
        let value = serde_json::to_value(&record)
            .map_err(|e| fail(format!("{record:?} does not serialise: {e}")))?;
        let again: T = serde_json::from_value(value.clone())
            .map_err(|e| fail(format!("{value} does not decode again: {e}")))?;
        let value_again = serde_json::to_value(&again)
            .map_err(|e| fail(format!("{again:?} does not serialise: {e}")))?;
        prop_assert_eq!(value_again, value);
        Ok(Some(record))
    }

    #[test]
    fn node_records() {
        fuzz("records::node", CHEAP, inputs(&node()), |bytes| {
            if let Some(record) = decode::<NodeRecord>(&bytes.0)? {
                let _ = record.stats_age(SystemTime::now());
                let _ = record.state.to_string();
            }
            Ok(())
        });
    }

    #[test]
    fn session_records() {
        fuzz("records::session", CHEAP, inputs(&session()), |bytes| {
            if let Some(record) = decode::<SessionRecord>(&bytes.0)? {
                for node in record.nodes() {
                    prop_assert!(record.is_on(node));
                    let _ = record.demand_on(node);
                }
                let _ = (record.class.to_string(), record.state.to_string());
            }
            Ok(())
        });
    }

    #[test]
    fn drain_and_pending_records() {
        let input = prop_oneof![
            inputs(&drain()).prop_map(|b| (true, b)),
            inputs(&pending()).prop_map(|b| (false, b)),
        ];
        fuzz(
            "records::drain_pending",
            CHEAP,
            input,
            |(is_drain, bytes)| {
                if is_drain {
                    decode::<DrainRequest>(&bytes.0)?;
                } else {
                    decode::<PendingDemand>(&bytes.0)?;
                }
                Ok(())
            },
        );
    }

    #[test]
    fn instance_records() {
        fuzz("records::instance", CHEAP, inputs(&instance()), |bytes| {
            if let Some(record) = decode::<InstanceRecord>(&bytes.0)? {
                let _ = (record.is_for("room-1"), record.in_flight());
            }
            Ok(())
        });
    }

    #[test]
    fn recording_records() {
        fuzz("records::recording", CHEAP, inputs(&recording()), |bytes| {
            if let Some(record) = decode::<RecordingRecord>(&bytes.0)? {
                prop_assert!(record.uploaded() <= record.files.len());
                let _ = record.bytes();
                let _ = record.duration(SystemTime::now());
                let _ = (record.state.as_str(), record.state.is_active());
            }
            Ok(())
        });
    }

    /// Keys a watch or a listing returns: an id comes out only if it names one record
    /// directly under its collection, and it is the id the key was made from.
    #[test]
    fn keys_of_any_name() {
        let keys = Keys::default();
        let collection = prop::sample::select(vec![
            keys.nodes(),
            keys.sessions(),
            keys.placements(),
            keys.recordings(),
        ]);
        let input = (collection, support::nasty_string(), any::<bool>());
        fuzz(
            "records::keys",
            CHEAP,
            input,
            |(collection, tail, prefixed)| {
                let key = if prefixed {
                    format!("{collection}{tail}")
                } else {
                    tail
                };
                if let Some(id) = keys.id_under(&collection, &key) {
                    prop_assert!(!id.is_empty() && !id.contains('/'));
                    prop_assert_eq!(format!("{collection}{id}"), key.clone());
                }
                if validate_id("node", &key).is_ok() {
                    prop_assert!(!key.contains('/') && !key.is_empty() && key.len() <= 128);
                }
                Ok(())
            },
        );
    }
}

mod compute {
    //! Compute Engine answers: the types alone, and through `ComputeClient` and the GCE
    //! provider against a local server that answers each request with the case's next
    //! status and body.

    use super::*;
    use crate::compute::types::{ErrorBody, Instance, InstanceList, Operation, last_segment};
    use crate::compute::{Auth, ClientConfig, ComputeClient, GceError, RetryPolicy};
    use crate::provider::Provider;
    use crate::provider::gce::{GceProvider, GceSettings};

    const KEYS: &[&str] = &[
        "kind",
        "id",
        "name",
        "machineType",
        "status",
        "zone",
        "labels",
        "networkInterfaces",
        "network",
        "networkIP",
        "accessConfigs",
        "type",
        "natIP",
        "networkTier",
        "metadata",
        "items",
        "key",
        "value",
        "creationTimestamp",
        "selfLink",
        "nextPageToken",
        "operationType",
        "targetLink",
        "error",
        "errors",
        "code",
        "location",
        "message",
        "httpErrorStatusCode",
        "httpErrorMessage",
        "reason",
        "domain",
    ];
    const ZONE: &str = "europe-west1-b";

    fn instance() -> Value {
        let base = "https://www.googleapis.com/compute/v1/projects/test-project";
        json!({
            "kind": "compute#instance", "id": "4711", "name": "ion-n2-abcd",
            "machineType": format!("{base}/zones/{ZONE}/machineTypes/n2-highcpu-4"),
            "status": "RUNNING", "zone": format!("{base}/zones/{ZONE}"),
            "labels": {"ion-cluster": "test", "ion-hold": "room-1"},
            "networkInterfaces": [{"network": format!("{base}/global/networks/default"),
                "networkIP": "10.132.0.5", "accessConfigs": [{"type": "ONE_TO_ONE_NAT",
                "name": "External NAT", "natIP": "203.0.113.9", "networkTier": "PREMIUM"}]}],
            "metadata": {"items": [{"key": "ion-hold", "value": "room-1"},
                {"key": "startup-script", "value": "#!/bin/sh\nexit 0\n"}]},
            "creationTimestamp": "2024-01-01T00:00:00.000-07:00",
            "selfLink": format!("{base}/zones/{ZONE}/instances/ion-n2-abcd"),
        })
    }

    fn seeds() -> Vec<Value> {
        vec![
            instance(),
            json!({"kind": "compute#instanceList", "items": [instance(), instance()],
                "nextPageToken": "page-2"}),
            json!({"kind": "compute#operation", "id": "42", "name": "operation-1",
                "zone": format!("zones/{ZONE}"), "operationType": "insert",
                "targetLink": "instances/ion-n2-abcd", "status": "DONE",
                "error": {"errors": [{"code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                    "location": "zones/europe-west1-b", "message": "no capacity"}]},
                "httpErrorStatusCode": 503, "httpErrorMessage": "SERVICE UNAVAILABLE"}),
            json!({"error": {"code": 403, "message": "Quota 'CPUS' exceeded.", "errors": [
                {"message": "Quota 'CPUS' exceeded.", "domain": "usageLimits",
                 "reason": "quotaExceeded"}]}}),
        ]
    }

    /// A body for a Compute answer: a mutated valid one (as JSON or as bytes), or any JSON,
    /// or any bytes.
    fn body() -> impl Strategy<Value = Bytes> {
        let seeds = seeds();
        let texts: Vec<Vec<u8>> = seeds.iter().map(|s| s.to_string().into_bytes()).collect();
        prop_oneof![
            3 => (0..seeds.len()).prop_flat_map(move |i| mutated_json(seeds[i].clone(), KEYS))
                .prop_map(|v| v.to_string().into_bytes()),
            2 => (0..texts.len()).prop_flat_map(move |i| mutated_bytes(texts[i].clone())),
            1 => json_value(3, KEYS).prop_map(|v| v.to_string().into_bytes()),
            1 => prop::collection::vec(any::<u8>(), 0..64),
        ]
        .prop_map(Bytes)
    }

    /// The seeds are valid, so that their mutations reach past the first check.
    #[test]
    fn the_seeds_decode() {
        let seeds = seeds();
        let instance: Instance = serde_json::from_value(seeds[0].clone()).expect("an instance");
        assert_eq!(instance.nat_ip(), Some("203.0.113.9"));
        let list: InstanceList = serde_json::from_value(seeds[1].clone()).expect("a list");
        assert_eq!(list.items.len(), 2);
        let operation: Operation = serde_json::from_value(seeds[2].clone()).expect("an op");
        assert!(operation.is_done() && operation.errors().len() == 1);
        let error: ErrorBody = serde_json::from_value(seeds[3].clone()).expect("an error");
        assert_eq!(error.error.errors[0].reason, "quotaExceeded");
    }

    #[test]
    fn answers_decode_or_are_refused() {
        fuzz("compute::types", CHEAP, body(), |Bytes(bytes)| {
            if let Ok(instance) = serde_json::from_slice::<Instance>(&bytes) {
                let _ = (instance.nat_ip(), instance.metadata_value("ion-hold"));
                let _ = (
                    last_segment(&instance.zone),
                    last_segment(&instance.machine_type),
                );
            }
            if let Ok(list) = serde_json::from_slice::<InstanceList>(&bytes) {
                let _ = (list.items.len(), list.next_page_token);
            }
            if let Ok(operation) = serde_json::from_slice::<Operation>(&bytes) {
                let _ = (operation.is_done(), operation.errors().len());
            }
            if let Ok(error) = serde_json::from_slice::<ErrorBody>(&bytes) {
                let _ = error
                    .error
                    .errors
                    .iter()
                    .map(|e| e.reason.len())
                    .sum::<usize>();
            }
            Ok(())
        });
    }

    /// One answer of the fake Compute API.
    #[derive(Debug, Clone)]
    struct Answer {
        status: u16,
        retry_after: Option<String>,
        body: Bytes,
    }

    fn answer() -> impl Strategy<Value = Answer> {
        const COMMON: &[u16] = &[200, 200, 400, 403, 404, 409, 429, 500, 503];
        let status = prop_oneof![
            3 => prop::sample::select(COMMON),
            1 => 200u16..600,
        ];
        let retry_after = prop::option::of(prop_oneof![
            "[0-9]{1,25}",
            support::nasty_string().prop_filter("a header value", |v| {
                axum::http::HeaderValue::from_str(v).is_ok()
            }),
        ]);
        (status, retry_after, body()).prop_map(|(status, retry_after, body)| Answer {
            status,
            retry_after,
            body,
        })
    }

    type Answers = Arc<Mutex<VecDeque<Answer>>>;

    /// The fake: a metadata server that hands out a token, and a Compute API that answers
    /// each request with the next queued answer, then with `{}`.
    async fn serve(answers: Answers) -> std::net::SocketAddr {
        use axum::body::Body;
        use axum::http::{Request, Response};
        let app = axum::Router::new().fallback(move |request: Request<Body>| {
            let answers = answers.clone();
            async move {
                if request.uri().path().starts_with("/computeMetadata/") {
                    let token = json!({"access_token": "fuzz-token", "expires_in": 3600,
                        "token_type": "Bearer"});
                    return Response::builder()
                        .header("content-type", "application/json")
                        .header("metadata-flavor", "Google")
                        .body(Body::from(token.to_string()))
                        .expect("a valid response");
                }
                let next = answers.lock().expect("the queue lock").pop_front();
                let answer = next.unwrap_or(Answer {
                    status: 200,
                    retry_after: None,
                    body: Bytes(b"{}".to_vec()),
                });
                let mut response = Response::builder()
                    .status(answer.status)
                    .header("content-type", "application/json");
                if let Some(value) = &answer.retry_after {
                    response = response.header("retry-after", value.as_str());
                }
                response
                    .body(Body::from(answer.body.0))
                    .expect("a status in 200..600 and a checked header")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let addr = listener.local_addr().expect("a bound address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    }

    /// A listing whose server hands back the page token it was asked for stops with an
    /// error instead of paging for ever.
    #[test]
    fn a_listing_that_repeats_its_page_token_ends() {
        crate::compute::install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let page = json!({"kind": "compute#instanceList", "items": [instance()],
            "nextPageToken": "page-2"});
        let answer = Answer {
            status: 200,
            retry_after: None,
            body: Bytes(page.to_string().into_bytes()),
        };
        let answers: Answers = Arc::new(Mutex::new(vec![answer; 3].into()));
        let addr = runtime.block_on(serve(answers));
        let mut config = ClientConfig::new(
            "test-project",
            Auth::Metadata {
                endpoint: Some(format!("http://{addr}")),
            },
        );
        config.base_url = format!("http://{addr}/compute/v1");
        let error = runtime
            .block_on(async {
                let client = ComputeClient::new(config).expect("the client builds");
                client.list_instances(ZONE, None).await
            })
            .expect_err("a listing that never ends is an error");
        assert!(error.to_string().contains("it would never end"), "{error}");
    }

    fn check_error(error: &GceError) {
        let _ = (error.to_string(), error.is_retryable(), error.is_capacity());
        let _ = error.is_not_found();
    }

    /// Through the real client: `instances.list` (paging), `instances.get` (404 is `None`),
    /// `zoneOperations.get` and `wait_done`. Every outcome is a value or an error that
    /// renders; a listing comes out sorted.
    #[test]
    fn the_client_takes_any_answer() {
        crate::compute::install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let answers: Answers = Arc::default();
        let addr = runtime.block_on(serve(answers.clone()));
        let no_retry = RetryPolicy {
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            max_attempts: 1,
        };
        let settings = GceSettings {
            project: "test-project".to_owned(),
            zones: vec![ZONE.to_owned()],
            cluster: "test".to_owned(),
            auth: crate::compute::AuthMode::Metadata,
            metadata_endpoint: Some(format!("http://{addr}")),
            base_url: format!("http://{addr}/compute/v1"),
            ..GceSettings::default()
        };
        let provider = runtime.block_on(async {
            GceProvider::with_retry(settings, no_retry.clone(), Duration::from_millis(1))
                .expect("the provider builds")
        });
        let mut config = ClientConfig::new(
            "test-project",
            Auth::Metadata {
                endpoint: Some(format!("http://{addr}")),
            },
        );
        config.base_url = format!("http://{addr}/compute/v1");
        config.retry = no_retry;
        config.operation_timeout = Duration::from_millis(30);
        config.operation_poll = Duration::from_millis(1);
        let client =
            runtime.block_on(async { ComputeClient::new(config).expect("the client builds") });
        let input = prop::collection::vec(answer(), 1..6);
        fuzz("compute::client", COSTLY, input, |queued| {
            *answers.lock().expect("the queue lock") = queued.into();
            runtime.block_on(async {
                match provider.list().await {
                    Ok(instances) => {
                        let names: Vec<&str> = instances.iter().map(|i| i.name.as_str()).collect();
                        prop_assert!(names.is_sorted(), "{names:?}");
                    }
                    Err(error) => {
                        let _ = error.to_string();
                    }
                }
                if let Err(error) = provider.get("ion-n2-abcd", ZONE).await {
                    let _ = error.to_string();
                }
                match client.get_operation(ZONE, "operation-1").await {
                    Ok(operation) => {
                        if let Err(error) = client.wait_done(ZONE, operation, |_| {}).await {
                            check_error(&error);
                        }
                    }
                    Err(error) => check_error(&error),
                }
                Ok(())
            })
        });
    }
}
