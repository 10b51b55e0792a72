//! ion-sfu JSON-RPC from a client's WebSocket, and the layer choice a client sends over its
//! data channel: anything is parsed or refused with a valid JSON-RPC error, never a panic.
#![no_main]

use ion_cluster::protocol::{self, LayerPreference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = protocol::parse(text) {
        // A refusal carries one of JSON-RPC's codes (or the server range) and a message.
        assert!(
            matches!(error.code, -32700 | -32600 | -32601 | -32602 | -32603)
                || (-32099..=-32000).contains(&error.code),
            "code {} for {text:?}",
            error.code
        );
        assert!(!error.message.is_empty());
    }
    if let Ok(preference) = serde_json::from_str::<LayerPreference>(text) {
        let again = serde_json::to_string(&preference).expect("serialises");
        let back: LayerPreference = serde_json::from_str(&again).expect("parses again");
        assert_eq!(back, preference);
    }
});
