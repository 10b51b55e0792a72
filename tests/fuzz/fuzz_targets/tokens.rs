//! Join, relay and client tokens, from a client's join or the gateway: any text is refused
//! unless it is signed with the cluster's secret; claims of any shape signed with it are
//! refused or accepted, never a panic, and accepted only for the right issuer, session and
//! an unexpired time.
#![no_main]

use std::time::{Duration, SystemTime};

use ion_cluster::token::{self, JoinSecret};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzz-secret-0123456789abcdef-0123456789";
const SID: &str = "room-1";
const NODE: &str = "node-1";
const NOW_SECS: u64 = 1_700_000_010;

/// Every verifier's outcome on `text`: (issuer wanted, issuer, session, expiry) if accepted.
fn verify_all(text: &str) -> Vec<Option<(&'static str, String, String, u64)>> {
    let secret = JoinSecret::new(SECRET).expect("the fuzz secret is long enough");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    vec![
        token::verify(&secret, Some(text), SID, NODE, now)
            .ok()
            .map(|c| ("ion-cluster", c.iss, c.sid, c.exp)),
        token::verify_relay(&secret, Some(text), SID, NODE, now)
            .ok()
            .map(|c| ("ion-cluster-relay", c.iss, c.sid, c.exp)),
        token::verify_client(&secret, Some(text), now)
            .ok()
            .map(|c| ("ion-cluster-client", c.iss, c.sid, c.exp)),
    ]
}

fuzz_target!(|input: (bool, &str)| {
    let (sign, text) = input;
    if !sign {
        for outcome in verify_all(text) {
            assert!(
                outcome.is_none(),
                "unsigned text accepted: {text:?} {outcome:?}"
            );
        }
        return;
    }
    let Ok(claims) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let Ok(signed) = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key) else {
        return;
    };
    for (wanted, iss, sid, exp) in verify_all(&signed).into_iter().flatten() {
        assert_eq!(iss, wanted);
        if wanted != "ion-cluster-client" {
            assert_eq!(sid, SID);
        }
        assert!(exp.saturating_add(token::CLOCK_LEEWAY.as_secs()) > NOW_SECS);
    }
});
