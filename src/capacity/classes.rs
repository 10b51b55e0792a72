//! The session classes of docs/placement.md: how many participants each admits, what a session of a
//! given size costs in units, how full a node may get for it, and whether it needs a node of
//! its own. A size outside a class is refused with the class that would take it.

use thiserror::Error;

use crate::model::{SessionClass, Units};

/// The placement rules of one class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassSpec {
    pub class: SessionClass,
    /// The smallest size admitted.
    pub min_size: u32,
    /// The largest size admitted.
    pub max_size: u32,
    /// The highest utilisation (effective + demand over capacity) a node may reach by taking
    /// a session of this class.
    pub headroom: f64,
    /// The session gets a node of its own (held for it) and shares it with nobody.
    pub dedicated: bool,
    /// The session may span nodes, its tracks relayed between them, when no one node holds
    /// it: a livestream's viewers, a conference's participants.
    pub spans: bool,
    /// What `size` counts, for messages: "participants", "viewers", "tracks".
    pub counts: &'static str,
}

/// Livestream viewers beyond one node are served through relay edges; the bound only keeps the
/// arithmetic in range.
pub const MAX_LIVESTREAM_VIEWERS: u32 = 1_000_000;
/// Tracks one recorder takes.
pub const MAX_RECORDING_TRACKS: u32 = 1_000;

impl ClassSpec {
    pub const fn of(class: SessionClass) -> Self {
        let (min_size, max_size, headroom, dedicated, counts) = match class {
            SessionClass::Group => (2, 6, 0.90, false, "participants"),
            SessionClass::Meeting => (2, 50, 0.80, false, "participants"),
            SessionClass::Conference => (2, 300, 0.75, false, "participants"),
            SessionClass::Livestream => (1, MAX_LIVESTREAM_VIEWERS, 0.85, true, "viewers"),
            SessionClass::Recording => (1, MAX_RECORDING_TRACKS, 0.85, true, "tracks"),
        };
        Self {
            class,
            min_size,
            max_size,
            headroom,
            dedicated,
            spans: matches!(class, SessionClass::Livestream | SessionClass::Conference),
            counts,
        }
    }

    /// The most units a node of `capacity` may carry once it takes a session of this class:
    /// `capacity × headroom`, rounded down to whole units.
    pub fn limit(&self, capacity: Units) -> Units {
        // The epsilon keeps 100 × 0.9 at 90 despite binary floating point.
        (f64::from(capacity) * self.headroom + 1e-9).floor() as Units
    }

    /// The units a session of `size` costs, or why the size does not fit this class.
    pub fn demand(&self, size: u32) -> Result<Units, SizeError> {
        if size < self.min_size {
            return Err(SizeError::TooSmall {
                class: self.class,
                size,
                min: self.min_size,
                counts: self.counts,
            });
        }
        if size > self.max_size {
            return Err(SizeError::TooLarge {
                class: self.class,
                size,
                max: self.max_size,
                counts: self.counts,
                instead: larger_class(self.class, size),
            });
        }
        let n = size;
        Ok(match self.class {
            SessionClass::Group => n * (n - 1),
            SessionClass::Meeting => n * (n - 1).min(9),
            SessionClass::Conference => n.min(6) * (n - 1),
            SessionClass::Livestream | SessionClass::Recording => n,
        })
    }
}

/// The first shared class after `class` that admits `size`; past conference, livestream.
fn larger_class(class: SessionClass, size: u32) -> Option<SessionClass> {
    let ladder = [
        SessionClass::Group,
        SessionClass::Meeting,
        SessionClass::Conference,
        SessionClass::Livestream,
    ];
    let from = ladder.iter().position(|c| *c == class)?;
    ladder[from + 1..]
        .iter()
        .copied()
        .find(|c| size <= ClassSpec::of(*c).max_size)
}

/// A size the class does not admit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SizeError {
    #[error("a {class} needs at least {min} {counts}, not {size}")]
    TooSmall {
        class: SessionClass,
        size: u32,
        min: u32,
        counts: &'static str,
    },
    #[error("a {class} takes at most {max} {counts}, not {size}{}", advice(*instead, *size))]
    TooLarge {
        class: SessionClass,
        size: u32,
        max: u32,
        counts: &'static str,
        instead: Option<SessionClass>,
    },
}

fn advice(instead: Option<SessionClass>, size: u32) -> String {
    match instead {
        Some(SessionClass::Livestream) => format!(
            "; use class livestream for 1 publisher and {} viewers",
            size.saturating_sub(1)
        ),
        Some(class) => format!(
            "; use class {class} (up to {} participants)",
            ClassSpec::of(class).max_size
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(class: SessionClass, size: u32) -> Result<Units, SizeError> {
        ClassSpec::of(class).demand(size)
    }

    #[test]
    fn demand_follows_the_design_table() {
        assert_eq!(demand(SessionClass::Group, 2), Ok(2));
        assert_eq!(demand(SessionClass::Group, 6), Ok(30));
        assert_eq!(demand(SessionClass::Meeting, 5), Ok(20));
        // Last-N of 9: past 10 participants each one costs 9 units.
        assert_eq!(demand(SessionClass::Meeting, 10), Ok(90));
        assert_eq!(demand(SessionClass::Meeting, 50), Ok(450));
        assert_eq!(demand(SessionClass::Conference, 4), Ok(12));
        assert_eq!(demand(SessionClass::Conference, 300), Ok(6 * 299));
        assert_eq!(demand(SessionClass::Livestream, 5000), Ok(5000));
        assert_eq!(demand(SessionClass::Recording, 3), Ok(3));
    }

    #[test]
    fn headroom_and_dedication_follow_the_design_table() {
        let spec = ClassSpec::of;
        assert_eq!(spec(SessionClass::Group).headroom, 0.90);
        assert_eq!(spec(SessionClass::Meeting).headroom, 0.80);
        assert_eq!(spec(SessionClass::Conference).headroom, 0.75);
        assert_eq!(spec(SessionClass::Livestream).headroom, 0.85);
        assert!(
            spec(SessionClass::Livestream).dedicated && spec(SessionClass::Recording).dedicated
        );
        assert!(!spec(SessionClass::Conference).dedicated);
        assert_eq!(spec(SessionClass::Group).limit(100), 90);
        assert_eq!(spec(SessionClass::Meeting).limit(150), 120);
        assert_eq!(spec(SessionClass::Conference).limit(2399), 1799);
    }

    #[test]
    fn an_oversized_session_is_told_the_class_that_takes_it() {
        let message = demand(SessionClass::Group, 7).unwrap_err().to_string();
        assert!(
            message.contains("at most 6") && message.contains("class meeting"),
            "{message}"
        );
        let message = demand(SessionClass::Group, 51).unwrap_err().to_string();
        assert!(message.contains("class conference"), "{message}");
        let message = demand(SessionClass::Meeting, 51).unwrap_err().to_string();
        assert!(message.contains("class conference (up to 300"), "{message}");
        let message = demand(SessionClass::Conference, 301)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("class livestream for 1 publisher and 300 viewers"),
            "{message}"
        );
        let message = demand(SessionClass::Meeting, 1).unwrap_err().to_string();
        assert!(message.contains("at least 2 participants"), "{message}");
        let message = demand(SessionClass::Recording, 5000)
            .unwrap_err()
            .to_string();
        assert!(message.ends_with("not 5000"), "{message}");
    }
}
