//! Join tokens: HS256 JWTs that let a client join one session on one node for a short while.
//! The placer (`ionctl place`, `ionctl serve`) issues them with the cluster's shared secret;
//! the agent calls [`verify`] before it accepts a join when `[auth] enabled` is set. Both take
//! `now` as an argument, so expiry is tested without a clock.
//!
//! Relay tokens are the same JWT with another issuer: an edge node signs one with the same
//! secret to open a relay from a session's origin node ([`issue_relay`], [`verify_relay`]),
//! and a join token never opens a relay, nor a relay token a join.
//!
//! Client tokens ([`issue_client`], [`verify_client`]) are what an operator's back end gives
//! a browser for the gateway (`ionctl serve`'s `GET /ws`): one session, and optionally the
//! class, size and role to place it with. The gateway swaps one for a join token of the node
//! it picks; neither admits what the other does.

use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::SessionClass;
use crate::placement::Role;

/// HS256 wants a key at least as long as its 256-bit hash.
pub const MIN_SECRET_BYTES: usize = 32;
/// How long a token admits a join.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(300);
/// Clock difference tolerated between the placer that issued a token and the agent.
pub const CLOCK_LEEWAY: Duration = Duration::from_secs(10);
const ISSUER: &str = "ion-cluster";
const RELAY_ISSUER: &str = "ion-cluster-relay";
const CLIENT_ISSUER: &str = "ion-cluster-client";

/// The `[auth]` table of `ionctl`'s and the agent's config files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthOptions {
    /// The agent refuses joins without a valid token.
    pub enabled: bool,
    /// The shared HS256 secret (`IONCTL_JOIN_SECRET` overrides it for `ionctl`).
    pub secret: Option<String>,
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
}

impl Default for AuthOptions {
    fn default() -> Self {
        Self {
            enabled: false,
            secret: None,
            token_ttl: DEFAULT_TOKEN_TTL,
        }
    }
}

/// What a join token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinClaims {
    pub iss: String,
    pub sid: String,
    pub node: String,
    /// Seconds since the Unix epoch.
    pub iat: u64,
    pub exp: u64,
}

/// What a client token says: the session its holder may join through the gateway, and how
/// to place it when it is new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientClaims {
    pub iss: String,
    pub sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<SessionClass>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// Publisher or viewer: which node of a session that spans nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    pub iat: u64,
    pub exp: u64,
}

/// What a client token grants, before it is signed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientGrant {
    pub sid: String,
    pub class: Option<SessionClass>,
    pub size: Option<u32>,
    pub role: Option<Role>,
}

/// A checked signing secret. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct JoinSecret(Vec<u8>);

impl std::fmt::Debug for JoinSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JoinSecret({} bytes)", self.0.len())
    }
}

impl JoinSecret {
    pub fn new(secret: &str) -> Result<Self, TokenError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(TokenError::WeakSecret { len: secret.len() });
        }
        Ok(Self(secret.as_bytes().to_vec()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error(
        "the join secret has {len} bytes; use at least {MIN_SECRET_BYTES} (e.g. the output of \
         `openssl rand -hex 32`) in [auth] secret or IONCTL_JOIN_SECRET"
    )]
    WeakSecret { len: usize },
    #[error("the join has no token; get one from `ionctl place` or POST /v1/place")]
    Missing,
    #[error("the token is not a join token of this cluster: {0}")]
    Malformed(String),
    #[error("the token was not signed with this cluster's join secret")]
    BadSignature,
    #[error(
        "the token expired at {}; place the session again for a fresh one",
        humantime::format_rfc3339_seconds(*expired_at)
    )]
    Expired { expired_at: SystemTime },
    #[error("the token is for session {token} and not {wanted}")]
    WrongSession { token: String, wanted: String },
    #[error("the token is for node {token}, not {wanted}; connect to {token} instead")]
    WrongNode { token: String, wanted: String },
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// A token admitting a join to session `sid` on node `node` until `now + ttl`.
pub fn issue(secret: &JoinSecret, sid: &str, node: &str, now: SystemTime, ttl: Duration) -> String {
    issue_as(ISSUER, secret, sid, node, now, ttl)
}

/// A token that lets an edge open a relay of session `sid` from its origin node `origin`.
pub fn issue_relay(
    secret: &JoinSecret,
    sid: &str,
    origin: &str,
    now: SystemTime,
    ttl: Duration,
) -> String {
    issue_as(RELAY_ISSUER, secret, sid, origin, now, ttl)
}

fn issue_as(
    issuer: &str,
    secret: &JoinSecret,
    sid: &str,
    node: &str,
    now: SystemTime,
    ttl: Duration,
) -> String {
    let claims = JoinClaims {
        iss: issuer.to_owned(),
        sid: sid.to_owned(),
        node: node.to_owned(),
        iat: unix_secs(now),
        exp: unix_secs(now + ttl),
    };
    sign(secret, &claims)
}

/// `claims` as an HS256 JWT signed with `secret`.
fn sign(secret: &JoinSecret, claims: &impl Serialize) -> String {
    // HMAC signing of serialisable claims cannot fail: any key length is valid for HS256.
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(&secret.0),
    )
    .expect("HS256 signing does not fail")
}

/// A client token for the gateway granting `grant` until `now + ttl`.
pub fn issue_client(
    secret: &JoinSecret,
    grant: &ClientGrant,
    now: SystemTime,
    ttl: Duration,
) -> String {
    let claims = ClientClaims {
        iss: CLIENT_ISSUER.to_owned(),
        sid: grant.sid.clone(),
        class: grant.class,
        size: grant.size,
        role: grant.role,
        iat: unix_secs(now),
        exp: unix_secs(now + ttl),
    };
    sign(secret, &claims)
}

/// Checks a client token's signature, issuer and expiry at `now`; the session it names is the
/// caller's to compare with the join.
pub fn verify_client(
    secret: &JoinSecret,
    token: Option<&str>,
    now: SystemTime,
) -> Result<ClientClaims, TokenError> {
    let claims: ClientClaims = decode(CLIENT_ISSUER, secret, token)?;
    if let Some(expired_at) = expired(claims.exp, now) {
        return Err(TokenError::Expired { expired_at });
    }
    Ok(claims)
}

/// When a token with this `exp` expired, if it has at `now` (give or take [`CLOCK_LEEWAY`]).
/// An `exp` too far ahead for `SystemTime` is as unexpired as any other far-off one, rather
/// than an overflow panic (found by `fuzz_tests::tokens::signed_claims_of_any_shape`).
fn expired(exp: u64, now: SystemTime) -> Option<SystemTime> {
    let expired_at = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(exp))?;
    let refused_from = expired_at.checked_add(CLOCK_LEEWAY)?;
    (refused_from <= now).then_some(expired_at)
}

/// Decodes a token of `issuer` signed with `secret`; expiry is the caller's to check against
/// its own `now`.
fn decode<C: serde::de::DeserializeOwned>(
    issuer: &str,
    secret: &JoinSecret,
    token: Option<&str>,
) -> Result<C, TokenError> {
    let token = token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.required_spec_claims = ["exp", "iss"].into_iter().map(String::from).collect();
    validation.set_issuer(&[issuer]);
    jsonwebtoken::decode::<C>(token, &DecodingKey::from_secret(&secret.0), &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            _ => TokenError::Malformed(e.to_string()),
        })
}

/// Checks that `token` was signed with `secret`, admits session `sid` on node `node`, and has
/// not expired at `now` (give or take [`CLOCK_LEEWAY`]).
pub fn verify(
    secret: &JoinSecret,
    token: Option<&str>,
    sid: &str,
    node: &str,
    now: SystemTime,
) -> Result<JoinClaims, TokenError> {
    verify_as(ISSUER, secret, token, sid, node, now)
}

/// Checks a relay token as [`verify`] checks a join token; `origin` is this node.
pub fn verify_relay(
    secret: &JoinSecret,
    token: Option<&str>,
    sid: &str,
    origin: &str,
    now: SystemTime,
) -> Result<JoinClaims, TokenError> {
    verify_as(RELAY_ISSUER, secret, token, sid, origin, now)
}

fn verify_as(
    issuer: &str,
    secret: &JoinSecret,
    token: Option<&str>,
    sid: &str,
    node: &str,
    now: SystemTime,
) -> Result<JoinClaims, TokenError> {
    // Expiry is checked below against the caller's `now`, not the library's clock.
    let claims: JoinClaims = decode(issuer, secret, token)?;
    if let Some(expired_at) = expired(claims.exp, now) {
        return Err(TokenError::Expired { expired_at });
    }
    if claims.sid != sid {
        return Err(TokenError::WrongSession {
            token: claims.sid,
            wanted: sid.to_owned(),
        });
    }
    if claims.node != node {
        return Err(TokenError::WrongNode {
            token: claims.node,
            wanted: node.to_owned(),
        });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn secret() -> JoinSecret {
        JoinSecret::new(SECRET).expect("32 bytes")
    }

    #[test]
    fn a_fresh_token_admits_its_session_on_its_node() {
        let token = issue(&secret(), "s1", "n1", at(0), Duration::from_secs(60));
        let claims = verify(&secret(), Some(&token), "s1", "n1", at(59)).expect("valid");
        assert_eq!((claims.sid.as_str(), claims.node.as_str()), ("s1", "n1"));
        assert_eq!(claims.exp - claims.iat, 60);
    }

    #[test]
    fn a_client_token_carries_its_grant_and_is_no_join_token() {
        let grant = ClientGrant {
            sid: "s1".to_owned(),
            class: Some(SessionClass::Meeting),
            size: Some(20),
            role: Some(Role::Viewer),
        };
        let ttl = Duration::from_secs(60);
        let token = issue_client(&secret(), &grant, at(0), ttl);
        let claims = verify_client(&secret(), Some(&token), at(30)).expect("valid");
        assert_eq!(claims.sid, "s1");
        assert_eq!(
            (claims.class, claims.size, claims.role),
            (grant.class, grant.size, grant.role)
        );
        assert!(matches!(
            verify_client(&secret(), Some(&token), at(100)),
            Err(TokenError::Expired { .. })
        ));
        // Neither kind passes for the other.
        assert!(matches!(
            verify(&secret(), Some(&token), "s1", "n1", at(1)),
            Err(TokenError::Malformed(_))
        ));
        let join = issue(&secret(), "s1", "n1", at(0), ttl);
        assert!(matches!(
            verify_client(&secret(), Some(&join), at(1)),
            Err(TokenError::Malformed(_))
        ));
        let other = JoinSecret::new("another-secret-of-32-bytes-or-more!").expect("long");
        assert_eq!(
            verify_client(&other, Some(&token), at(1)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn join_and_relay_tokens_are_not_interchangeable() {
        let ttl = Duration::from_secs(60);
        let relay = issue_relay(&secret(), "s1", "n1", at(0), ttl);
        assert!(verify_relay(&secret(), Some(&relay), "s1", "n1", at(1)).is_ok());
        assert!(matches!(
            verify(&secret(), Some(&relay), "s1", "n1", at(1)),
            Err(TokenError::Malformed(_))
        ));
        let join = issue(&secret(), "s1", "n1", at(0), ttl);
        assert!(matches!(
            verify_relay(&secret(), Some(&join), "s1", "n1", at(1)),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn an_expired_token_is_refused_after_the_leeway() {
        let token = issue(&secret(), "s1", "n1", at(0), Duration::from_secs(60));
        assert!(verify(&secret(), Some(&token), "s1", "n1", at(69)).is_ok());
        let error = verify(&secret(), Some(&token), "s1", "n1", at(70)).unwrap_err();
        assert!(matches!(error, TokenError::Expired { .. }), "{error}");
        assert!(error.to_string().contains("place the session again"));
    }

    #[test]
    fn a_token_for_another_session_or_node_is_refused() {
        let token = issue(&secret(), "s1", "n1", at(0), Duration::from_secs(60));
        let error = verify(&secret(), Some(&token), "s2", "n1", at(1)).unwrap_err();
        assert_eq!(
            error,
            TokenError::WrongSession {
                token: "s1".into(),
                wanted: "s2".into()
            }
        );
        let error = verify(&secret(), Some(&token), "s1", "n2", at(1)).unwrap_err();
        assert!(error.to_string().contains("connect to n1"), "{error}");
    }

    #[test]
    fn a_missing_forged_or_garbled_token_is_refused() {
        assert_eq!(
            verify(&secret(), None, "s1", "n1", at(0)),
            Err(TokenError::Missing)
        );
        assert_eq!(
            verify(&secret(), Some(""), "s1", "n1", at(0)),
            Err(TokenError::Missing)
        );
        let other = JoinSecret::new(&"x".repeat(40)).expect("long enough");
        let forged = issue(&other, "s1", "n1", at(0), Duration::from_secs(60));
        assert_eq!(
            verify(&secret(), Some(&forged), "s1", "n1", at(1)),
            Err(TokenError::BadSignature)
        );
        let error = verify(&secret(), Some("not.a.jwt"), "s1", "n1", at(1)).unwrap_err();
        assert!(matches!(error, TokenError::Malformed(_)), "{error}");
        // A token signed with "none" or another algorithm is not accepted either.
        let unsigned = format!(
            "{}.{}.",
            "eyJhbGciOiJub25lIn0",
            forged.split('.').nth(1).expect("payload")
        );
        assert!(verify(&secret(), Some(&unsigned), "s1", "n1", at(1)).is_err());
    }

    #[test]
    fn a_short_secret_is_refused_with_advice() {
        let error = JoinSecret::new("short").unwrap_err();
        assert!(error.to_string().contains("at least 32"), "{error}");
        assert!(!format!("{:?}", secret()).contains(SECRET));
    }
}
