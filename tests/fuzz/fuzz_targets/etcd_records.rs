//! etcd records written by someone else (another version, an operator's etcdctl, a bug):
//! each record type decodes or is refused, and what decodes survives a round trip and the
//! reads done on it.
#![no_main]

use ion_cluster::model::{
    DrainRequest, InstanceRecord, Keys, NodeRecord, PendingDemand, RecordingRecord, SessionRecord,
};
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(bytes: &[u8]) -> Option<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let record: T = serde_json::from_slice(bytes).ok()?;
    let again = serde_json::to_vec(&record).expect("a decoded record serialises");
    let back: T = serde_json::from_slice(&again).expect("a serialised record decodes");
    // Floats may not survive text exactly (NaN cannot be written at all): compare the text.
    assert_eq!(
        serde_json::to_vec(&back).expect("serialises"),
        again,
        "round trip changed {record:?}"
    );
    Some(record)
}

fuzz_target!(|bytes: &[u8]| {
    if let Some(node) = round_trip::<NodeRecord>(bytes) {
        let _ = (node.state.to_string(), node.stats.observed_units);
    }
    if let Some(session) = round_trip::<SessionRecord>(bytes) {
        let _ = (session.is_on(&session.node), session.class.to_string());
    }
    let _ = round_trip::<DrainRequest>(bytes);
    let _ = round_trip::<PendingDemand>(bytes);
    let _ = round_trip::<InstanceRecord>(bytes);
    if let Some(recording) = round_trip::<RecordingRecord>(bytes) {
        let _ = recording.bytes();
    }
    // Keys made from names found in records: refused or made, never a panic.
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(keys) = Keys::new(text)
    {
        let _ = (
            keys.node(text),
            keys.session(text),
            keys.placement(text, text),
        );
    }
});
