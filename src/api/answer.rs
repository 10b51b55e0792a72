//! The answer to a placement request as `ionctl place -o json` prints it and `POST /v1/place`
//! returns it: one stable JSON shape for scripts and web front ends.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::model::{Keys, SessionClass, Units};
use crate::placement::Request;
use crate::placer::Outcome;
use crate::token::{JoinSecret, issue};

/// What a placement came to, with the join token when the session has a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaceAnswer {
    /// `place`, `existing`, `no_capacity` or `refused`.
    pub decision: String,
    pub sid: String,
    pub class: SessionClass,
    pub size: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demand: Option<Units>,
    /// The node to join, with a token for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The session's origin, when `node` is one of its edges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The edges of a session that spans nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_url: Option<String>,
    /// HS256 JWT for joining `sid` on `node`; absent when no join secret is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<String>,
    /// The `pending/<sid>` key written for the autoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// The machines that would take the session: `count` × `machine_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The instance already booting for this session, which it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booting: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl PlaceAnswer {
    /// Renders the `outcome` of `request`, issuing a token valid for `ttl` from `now` when a
    /// secret is set.
    pub fn new(
        request: &Request,
        outcome: &Outcome,
        keys: &Keys,
        secret: Option<&JoinSecret>,
        now: SystemTime,
        ttl: Duration,
    ) -> Self {
        let mut answer = Self {
            decision: String::new(),
            sid: request.sid.clone(),
            class: request.class,
            size: request.size,
            demand: None,
            node: None,
            origin: None,
            edges: Vec::new(),
            signal_url: None,
            token: None,
            token_expires_at: None,
            pending: None,
            machine_type: None,
            count: None,
            booting: None,
            reason: None,
        };
        match outcome {
            Outcome::Placed {
                session,
                node,
                signal_url,
                existing,
            } => {
                answer.decision = if *existing { "existing" } else { "place" }.to_owned();
                answer.sid = session.sid.clone();
                answer.class = session.class;
                answer.size = session.size;
                answer.demand = Some(session.demand);
                answer.node = Some(node.clone());
                answer.origin = (node != &session.node).then(|| session.node.clone());
                answer.edges = session.relays.clone();
                answer.signal_url = signal_url.clone();
                if let Some(secret) = secret {
                    answer.token = Some(issue(secret, &session.sid, node, now, ttl));
                    answer.token_expires_at =
                        Some(humantime::format_rfc3339_seconds(now + ttl).to_string());
                }
            }
            Outcome::NoCapacity {
                pending,
                count,
                hold_for: _,
                booting,
            } => {
                answer.decision = "no_capacity".to_owned();
                answer.demand = Some(pending.demand);
                answer.pending = Some(keys.pending(&pending.sid));
                answer.machine_type = pending.machine_type.clone();
                answer.count = Some(*count);
                answer.booting = booting.clone();
            }
            Outcome::Refused { reason } => {
                answer.decision = "refused".to_owned();
                answer.reason = Some(reason.clone());
            }
        }
        answer
    }
}
