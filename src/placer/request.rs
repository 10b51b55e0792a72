//! What a caller asked for, turned into a placement request: the size is checked against its
//! class, the session id against the key rules, and a missing id becomes a new UUID. The CLI,
//! the HTTP API and the benchmark share it, so they refuse the same input with the same words.

use thiserror::Error;

use crate::capacity::{ClassSpec, SizeError};
use crate::model::{KeyError, SessionClass, keys::validate_id};
use crate::placement::{Request, Role, Strategy};

/// Input no placement can serve.
#[derive(Debug, PartialEq, Eq, Error)]
pub enum InvalidRequest {
    #[error("size {size}: {source}")]
    Size { size: u32, source: SizeError },
    #[error(transparent)]
    SessionId(#[from] KeyError),
}

/// A checked request for `size` participants of `class`, for session `session` or a new one;
/// `role` routes a participant of a session that spans nodes.
pub fn checked_request(
    session: Option<String>,
    class: SessionClass,
    size: u32,
    strategy: Strategy,
    role: Role,
) -> Result<Request, InvalidRequest> {
    ClassSpec::of(class)
        .demand(size)
        .map_err(|source| InvalidRequest::Size { size, source })?;
    let sid = match session {
        Some(sid) => {
            validate_id("session", &sid)?;
            sid
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    Ok(Request {
        sid,
        class,
        size,
        strategy,
        role,
        uid: None,
    })
}
