//! Panic containment for a media worker. One thread carries every session sharded to it, so a
//! panic while handling one session's input (a str0m bug met by a crafted SDP or packet, say)
//! would otherwise end the media of all of them. The worker runs each step under
//! [`contain`]; a panic is charged to the session whose input was in hand, whose participants
//! on this worker are removed and told to join again, and the loop goes on.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::participant::ParticipantId;

/// What each participant of a session that failed this way is told.
pub const REASON: &str = "the media server failed while handling this session (an internal \
                          error, logged on the node); join again";

/// Whose input the worker is handling, so that a panic can be charged to one session. Set
/// before each participant's input and each command; reading it costs nothing on the way
/// that does not panic.
#[derive(Debug, Clone, Default)]
pub enum InHand {
    #[default]
    Nothing,
    Participant(ParticipantId),
    /// A command for a session before its participant exists (a join, a relay).
    Session(Arc<str>),
}

/// Runs `step`; a panic in it comes back as its message.
pub fn contain<R>(step: impl FnOnce() -> R) -> Result<R, String> {
    // The worker's state is not unwind-safe in general; what a panic may have left half done
    // belongs to the session it is charged to, and that session is removed whole.
    catch_unwind(AssertUnwindSafe(step)).map_err(|payload| message(payload.as_ref()))
}

/// The text of a panic payload (`panic!` gives a `&str` or a `String`).
pub fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// A participant joining under this uid makes the worker panic once it is admitted to its
/// session, in unit tests only, so that containment is tested against a real worker.
#[cfg(test)]
pub const INJECT_PANIC: &str = "inject-panic";

/// Panics for a participant named [`INJECT_PANIC`].
#[cfg(test)]
pub fn fault_point(uid: &str) {
    if uid == INJECT_PANIC {
        panic!("injected panic for participant {uid}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_comes_back_as_its_message() {
        assert_eq!(contain(|| 7), Ok(7));
        assert_eq!(
            contain(|| -> u8 { panic!("static text") }),
            Err("static text".to_owned())
        );
        let sid = "room";
        assert_eq!(
            contain(|| -> u8 { panic!("formatted {sid}") }),
            Err("formatted room".to_owned())
        );
        assert_eq!(
            contain(|| -> u8 { std::panic::panic_any(5_u32) }),
            Err("a panic without a message".to_owned())
        );
    }
}
