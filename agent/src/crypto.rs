//! The crypto provider the agent installs for str0m: aws-lc-rs's, except that HMAC-SHA1 sets
//! each key up once per thread instead of once per message, and SRTP's AES-256-GCM seals each
//! payload from where it lies (`seal`).
//!
//! HMAC-SHA1 signs and checks every STUN message of ICE (each consent check a viewer sends
//! and the agent's answer: two per check) and, with the AES-CM profiles, every SRTP packet. Its
//! keys change only with the connection: a PeerConnection's two ICE passwords and its SRTP
//! authentication keys. aws-lc-rs's provider builds the key's inner and outer hash states for
//! each message, a third of what the HMAC costs; with idle viewers, ICE was about a third of the
//! agent's instructions and the HMACs a fifth (docs/benchmarks.md, "The per-viewer cost of
//! ICE"). Here the set-up key is kept and copied per message.

mod seal;

use std::cell::RefCell;
use std::collections::HashMap;

use aws_lc_rs::hmac;
use str0m::crypto::{CryptoProvider, Sha1HmacProvider};

/// How many set-up keys one thread keeps; one more starts the cache afresh. A media worker
/// needs at most four per PeerConnection, so this holds a thousand PeerConnections' keys, about
/// 700 bytes each, and keeps the keys of closed ones from piling up.
const KEYS_PER_THREAD: usize = 4096;

/// aws-lc-rs's provider, as `str0m::crypto::from_feature_flags` gives it, with
/// [`CachedKeySha1Hmac`] for HMAC-SHA1 and [`seal::SealingSrtp`] for SRTP.
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        sha1_hmac_provider: &CachedKeySha1Hmac,
        srtp_provider: &seal::SealingSrtp,
        ..str0m::crypto::from_feature_flags()
    }
}

/// HMAC-SHA1 with each thread's set-up keys kept, by key bytes. The map hashes with a random
/// key (std's default): a peer chooses some of the keys it holds, such as its ICE password.
#[derive(Debug)]
pub struct CachedKeySha1Hmac;

thread_local! {
    static KEYS: RefCell<HashMap<Box<[u8]>, hmac::Key>> = RefCell::default();
}

impl Sha1HmacProvider for CachedKeySha1Hmac {
    fn sha1_hmac(&self, key: &[u8], payloads: &[&[u8]]) -> [u8; 20] {
        // Past the thread's end (a destructor signing something), without the cache.
        KEYS.try_with(|keys| sign_with_cached(&mut keys.borrow_mut(), key, payloads))
            .unwrap_or_else(|_| sign(&new_key(key), payloads))
    }
}

/// Signs with `key` set up from `keys`, or set up now and kept: one lookup for a known key.
fn sign_with_cached(
    keys: &mut HashMap<Box<[u8]>, hmac::Key>,
    key: &[u8],
    payloads: &[&[u8]],
) -> [u8; 20] {
    if let Some(set_up) = keys.get(key) {
        return sign(set_up, payloads);
    }
    if keys.len() >= KEYS_PER_THREAD {
        keys.clear();
    }
    let set_up = new_key(key);
    let tag = sign(&set_up, payloads);
    keys.insert(key.into(), set_up);
    tag
}

fn new_key(key: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key)
}

fn sign(key: &hmac::Key, payloads: &[&[u8]]) -> [u8; 20] {
    let mut context = hmac::Context::with_key(key);
    for payload in payloads {
        context.update(payload);
    }
    let mut tag = [0; 20];
    tag.copy_from_slice(context.sign().as_ref());
    tag
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cached_keys() -> usize {
        KEYS.with_borrow(|keys| keys.len())
    }

    #[test]
    fn it_gives_rfc_2202s_hmac_sha1_test_vectors() {
        // RFC 2202, section 3: test cases 1, 2 and 6 (a key longer than the block is hashed).
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b617318655057264e28bc0b6fb378c8ef146be00",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
            ),
            (
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "aa4ae5e15272d00e95705637ce8a3b55ed402112",
            ),
        ];
        for round in 0..2 {
            for (key, data, expected) in cases {
                let tag = CachedKeySha1Hmac.sha1_hmac(key, &[data]);
                let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(hex, expected, "round {round}, key of {} bytes", key.len());
            }
        }
    }

    #[test]
    fn the_cache_starts_afresh_past_its_bound_and_its_keys_still_sign_right() {
        let key_of = |i: usize| format!("ice-password-{i:08}").into_bytes();
        for i in 0..KEYS_PER_THREAD + 10 {
            CachedKeySha1Hmac.sha1_hmac(&key_of(i), &[b"x"]);
            assert!(cached_keys() <= KEYS_PER_THREAD, "{} keys", cached_keys());
        }
        assert_eq!(cached_keys(), 10);
        // A key asked again, whether it was dropped or kept, signs as a fresh one.
        for i in [0, KEYS_PER_THREAD + 5] {
            let key = key_of(i);
            assert_eq!(
                CachedKeySha1Hmac.sha1_hmac(&key, &[b"x"]),
                sign(&new_key(&key), &[b"x"])
            );
        }
    }

    #[test]
    fn the_provider_is_aws_lc_rss_but_for_hmac_and_srtp_sealing() {
        let installed = provider();
        let stock = str0m::crypto::from_feature_flags();
        let (key, data): (&[u8], &[u8]) = (b"pwd", b"stun message");
        assert_eq!(
            installed.sha1_hmac_provider.sha1_hmac(key, &[data]),
            stock.sha1_hmac_provider.sha1_hmac(key, &[data])
        );
        assert_eq!(format!("{:?}", installed.srtp_provider), "SealingSrtp");
        assert_eq!(
            format!("{:?}", installed.dtls_provider),
            format!("{:?}", stock.dtls_provider)
        );
        assert_eq!(
            installed.sha256_provider.sha256(data),
            stock.sha256_provider.sha256(data)
        );
    }

    proptest! {
        #[test]
        fn it_signs_as_aws_lc_rs_does_however_the_message_is_split(
            key in proptest::collection::vec(any::<u8>(), 0..100),
            message in proptest::collection::vec(any::<u8>(), 0..300),
            split in any::<prop::sample::Index>(),
            again in any::<bool>(),
        ) {
            let stock = str0m::crypto::from_feature_flags().sha1_hmac_provider;
            let at = split.index(message.len() + 1);
            let (head, tail) = message.split_at(at);
            let expected = stock.sha1_hmac(&key, &[&message]);
            prop_assert_eq!(CachedKeySha1Hmac.sha1_hmac(&key, &[head, tail]), expected);
            if again {
                prop_assert_eq!(CachedKeySha1Hmac.sha1_hmac(&key, &[&message]), expected);
            }
        }
    }
}
