//! Sessions that span nodes: the relay of a session's tracks from its origin node to an
//! edge node that has viewers for them.
//!
//! - The edge dials the origin's `GET /relay/v1/ws` on the first local participant of the
//!   session ([`edge`]) with a relay token signed by the cluster secret (`[auth] secret`), and
//!   closes it when the last one leaves.
//! - The origin ([`origin`]) checks the token, then adds the relay to the session as a
//!   subscriber to every track published on it. Its offers (send-only m-lines, RTP mode) go
//!   to the edge as ion-sfu `offer` notifications, and the edge answers with `answer`.
//! - At the edge the relay is a publisher whose offers come from the origin: the same
//!   worker code forwards it to the local viewers, and their keyframe requests go upstream
//!   as one throttled request, which the origin passes to the publisher.
//! - Each end is one str0m `Rtc` on the worker's socket. The edge's runs full ICE (two
//!   ICE-lite ends cannot connect); the origin's stays lite.
//! - Split horizon: media that came over a relay is never sent into another.

pub mod edge;
pub mod origin;

use ion_cluster::token::JoinSecret;

/// How long a relay token is valid: it is checked once, when the relay opens.
pub(crate) const TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The relay endpoint of the node whose signaling URL is `signal_url` (`ws://host:port/ws`).
pub fn relay_url(signal_url: &str, sid: &str, edge: &str, token: &str) -> Result<String, String> {
    let mut url = reqwest::Url::parse(signal_url)
        .map_err(|e| format!("the origin's signaling URL {signal_url:?} is not a URL: {e}"))?;
    url.set_path("/relay/v1/ws");
    url.query_pairs_mut()
        .clear()
        .append_pair("sid", sid)
        .append_pair("edge", edge)
        .append_pair("access_token", token);
    Ok(url.to_string())
}

/// Why a relay cannot be opened with this node's configuration.
pub fn no_secret(secret: Option<&JoinSecret>) -> Result<&JoinSecret, String> {
    secret.ok_or_else(|| {
        "relays between nodes are signed with the cluster secret: set [auth] secret (or \
         ION_AGENT_AUTH__SECRET) to the same value on every node"
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::relay_url;

    #[test]
    fn the_relay_endpoint_is_on_the_signaling_port() {
        let url = relay_url("ws://10.0.0.5:7000/ws?node=a", "s 1", "edge-1", "t").unwrap();
        assert_eq!(
            url,
            "ws://10.0.0.5:7000/relay/v1/ws?sid=s+1&edge=edge-1&access_token=t"
        );
        assert!(relay_url("not a url", "s", "e", "t").is_err());
    }
}
