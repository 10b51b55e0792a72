//! Traces: the sessions a simulation replays, and their file format. A trace file is JSON
//! lines, one session per line, sorted by start time:
//!
//! ```text
//! {"t": 0.0, "sid": "s1", "class": "meeting", "size": 8, "duration": 1800}
//! {"t": 2.5, "sid": "s2", "class": "group", "size": 4, "duration": 600, "participants": [[0, 1], [20, 4], [580, 2]]}
//! ```
//!
//! `t` and `duration` are seconds; `size` is what the session is placed for (participants,
//! viewers or tracks); `participants`, optional, is `[offset seconds, count]` from the
//! moment the session is placed, each count holding until the next (without it, `size`
//! for the whole session). Blank lines and lines starting with `#` are skipped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::clock::{Millis, SECOND};
use crate::capacity::ClassSpec;
use crate::model::{SessionClass, Units};

/// One session of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSpec {
    /// When the session is asked for.
    pub at: Millis,
    pub sid: String,
    pub class: SessionClass,
    /// What it is placed for.
    pub size: u32,
    /// How long it lasts once placed.
    pub duration: Millis,
    /// `(offset from placement, count)`, offsets ascending; empty means `size` throughout.
    pub participants: Vec<(Millis, u32)>,
}

impl SessionSpec {
    /// The participant counts over the session's life, starting at offset 0.
    pub fn steps(&self) -> Vec<(Millis, u32)> {
        if self.participants.is_empty() {
            return vec![(0, self.size)];
        }
        let mut steps = self.participants.clone();
        if steps[0].0 > 0 {
            steps.insert(0, (0, 0));
        }
        steps
    }

    /// Step `index` of [`SessionSpec::steps`], without building them all: the engine reads
    /// one per participant change.
    pub fn step(&self, index: usize) -> Option<(Millis, u32)> {
        match self.participants.first() {
            None => (index == 0).then_some((0, self.size)),
            Some((first, _)) if *first > 0 => match index {
                0 => Some((0, 0)),
                _ => self.participants.get(index - 1).copied(),
            },
            Some(_) => self.participants.get(index).copied(),
        }
    }

    /// Units of demand the session places on the size it is reserved for, or `None` when
    /// its class does not admit that size.
    pub fn declared_demand(&self) -> Option<Units> {
        ClassSpec::of(self.class).demand(self.size).ok()
    }

    /// The demand, in unit-milliseconds, of the session over its life.
    pub fn demand_unit_ms(&self) -> f64 {
        let steps = self.steps();
        steps
            .iter()
            .enumerate()
            .map(|(i, (offset, count))| {
                let end = steps
                    .get(i + 1)
                    .map_or(self.duration, |next| next.0)
                    .min(self.duration);
                let span = end.saturating_sub(*offset) as f64;
                f64::from(demand_of(self.class, *count)) * span
            })
            .sum()
    }
}

/// The units `count` participants (viewers, tracks) of `class` cost right now: the class's
/// formula, with nobody costing nothing and a count above the class limit costing the limit's
/// formula at that count (the media is forwarded whatever the reservation said).
pub fn demand_of(class: SessionClass, count: u32) -> Units {
    if count == 0 {
        return 0;
    }
    let spec = ClassSpec::of(class);
    let n = count.max(spec.min_size);
    match class {
        SessionClass::Group => n * (n - 1),
        SessionClass::Meeting => n * (n - 1).min(9),
        SessionClass::Conference => n.min(6) * (n - 1),
        SessionClass::Livestream | SessionClass::Recording => n,
    }
}

/// The sessions to replay, sorted by `at`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    pub sessions: Vec<SessionSpec>,
}

impl Trace {
    /// The end of the last session if every one were placed at once.
    pub fn span(&self) -> Millis {
        self.sessions
            .iter()
            .map(|s| s.at + s.duration)
            .max()
            .unwrap_or(0)
    }

    /// The highest total demand at any instant, were every session placed the moment it asks.
    pub fn peak_demand(&self) -> Units {
        let mut changes: Vec<(Millis, i64)> = Vec::new();
        for session in &self.sessions {
            let steps = session.steps();
            let mut last = 0i64;
            for (offset, count) in steps {
                if offset >= session.duration {
                    break;
                }
                let now = i64::from(demand_of(session.class, count));
                changes.push((session.at + offset, now - last));
                last = now;
            }
            changes.push((session.at + session.duration, -last));
        }
        changes.sort();
        let mut current = 0i64;
        let mut peak = 0i64;
        for (_, delta) in changes {
            current += delta;
            peak = peak.max(current);
        }
        Units::try_from(peak).unwrap_or(Units::MAX)
    }
}

/// A trace line that cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {problem}")]
pub struct TraceError {
    pub line: usize,
    pub problem: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Line {
    t: f64,
    sid: String,
    class: String,
    size: u32,
    duration: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    participants: Vec<(f64, u32)>,
}

const CLASSES: [SessionClass; 5] = [
    SessionClass::Group,
    SessionClass::Meeting,
    SessionClass::Conference,
    SessionClass::Livestream,
    SessionClass::Recording,
];

fn class_named(name: &str) -> Option<SessionClass> {
    CLASSES.into_iter().find(|c| c.to_string() == name)
}

fn seconds_to_millis(seconds: f64) -> Millis {
    (seconds * SECOND as f64).round() as Millis
}

/// Reads a JSON-lines trace. The first line that cannot be replayed is named with what is
/// wrong with it.
pub fn parse(text: &str) -> Result<Trace, TraceError> {
    let mut sessions: Vec<SessionSpec> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut previous_t = 0.0f64;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fail = |problem: String| TraceError { line, problem };
        let parsed: Line = serde_json::from_str(trimmed).map_err(|e| {
            fail(format!(
                "not a session: {e}; expected {{\"t\": seconds, \"sid\": \"...\", \"class\": \
                 \"meeting\", \"size\": n, \"duration\": seconds}}"
            ))
        })?;
        let class = class_named(&parsed.class).ok_or_else(|| {
            fail(format!(
                "unknown class {:?}; known: group, meeting, conference, livestream, recording",
                parsed.class
            ))
        })?;
        if !parsed.t.is_finite() || parsed.t < 0.0 {
            return Err(fail(format!(
                "t {} is not a time; give seconds from the start, 0 or more",
                parsed.t
            )));
        }
        if parsed.t < previous_t {
            return Err(fail(format!(
                "t {} is before the previous session's {previous_t}; sort the trace by t",
                parsed.t
            )));
        }
        previous_t = parsed.t;
        if !parsed.duration.is_finite() || parsed.duration <= 0.0 {
            return Err(fail(format!(
                "duration {} is not positive; a session lasts more than 0 seconds",
                parsed.duration
            )));
        }
        if parsed.sid.is_empty() {
            return Err(fail("sid is empty".to_owned()));
        }
        if let Some(first) = seen.insert(parsed.sid.clone(), line) {
            return Err(fail(format!(
                "sid {:?} was already used on line {first}; every session needs its own",
                parsed.sid
            )));
        }
        let duration = seconds_to_millis(parsed.duration);
        let mut participants = Vec::with_capacity(parsed.participants.len());
        let mut last_offset = 0.0f64;
        for (offset, count) in &parsed.participants {
            if !offset.is_finite() || *offset < last_offset || *offset > parsed.duration {
                return Err(fail(format!(
                    "participant offset {offset} must lie between the previous offset \
                     ({last_offset}) and the duration ({})",
                    parsed.duration
                )));
            }
            if *count > ClassSpec::of(class).max_size {
                return Err(fail(format!(
                    "{count} participants is more than a {class} takes ({})",
                    ClassSpec::of(class).max_size
                )));
            }
            last_offset = *offset;
            participants.push((seconds_to_millis(*offset), *count));
        }
        sessions.push(SessionSpec {
            at: seconds_to_millis(parsed.t),
            sid: parsed.sid,
            class,
            size: parsed.size,
            duration,
            participants,
        });
    }
    Ok(Trace { sessions })
}

/// The trace as JSON lines, readable by [`parse`].
pub fn to_jsonl(trace: &Trace) -> String {
    let mut out = String::new();
    for session in &trace.sessions {
        let line = Line {
            t: session.at as f64 / SECOND as f64,
            sid: session.sid.clone(),
            class: session.class.to_string(),
            size: session.size,
            duration: session.duration as f64 / SECOND as f64,
            participants: session
                .participants
                .iter()
                .map(|(offset, count)| (*offset as f64 / SECOND as f64, *count))
                .collect(),
        };
        // A struct of numbers and strings always serialises.
        out.push_str(&serde_json::to_string(&line).expect("a trace line serialises"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_trace_reads_back_what_was_written() {
        let text = "# a comment\n\
            {\"t\": 0, \"sid\": \"a\", \"class\": \"meeting\", \"size\": 8, \"duration\": 60}\n\
            \n\
            {\"t\": 1.5, \"sid\": \"b\", \"class\": \"group\", \"size\": 3, \"duration\": 30, \
             \"participants\": [[0, 1], [10, 3]]}\n";
        let trace = parse(text).unwrap();
        assert_eq!(trace.sessions.len(), 2);
        assert_eq!(trace.sessions[1].at, 1_500);
        assert_eq!(trace.sessions[1].participants, vec![(0, 1), (10_000, 3)]);
        assert_eq!(parse(&to_jsonl(&trace)).unwrap(), trace);
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let ok = "{\"t\": 0, \"sid\": \"a\", \"class\": \"group\", \"size\": 2, \"duration\": 5}\n";
        let unknown = format!(
            "{ok}{{\"t\": 1, \"sid\": \"b\", \"class\": \"webinar\", \"size\": 2, \"duration\": 5}}"
        );
        assert_eq!(
            error(&unknown),
            "line 2: unknown class \"webinar\"; known: group, meeting, conference, livestream, \
             recording"
        );
        let negative = format!(
            "{ok}{{\"t\": 1, \"sid\": \"b\", \"class\": \"group\", \"size\": 2, \"duration\": -5}}"
        );
        assert!(
            error(&negative).starts_with("line 2: duration -5 is not positive"),
            "{}",
            error(&negative)
        );
        let unsorted = format!(
            "{{\"t\": 9, \"sid\": \"x\", \"class\": \"group\", \"size\": 2, \"duration\": 5}}\n{ok}"
        );
        assert!(
            error(&unsorted).starts_with("line 2: t 0 is before the previous session's 9"),
            "{}",
            error(&unsorted)
        );
        let malformed = format!("{ok}\n{{\"t\": 1, \"sid\": ");
        assert!(
            error(&malformed).starts_with("line 3: not a session"),
            "{}",
            error(&malformed)
        );
        let repeated = format!("{ok}{ok}");
        assert!(
            error(&repeated).contains("line 2: sid \"a\" was already used on line 1"),
            "{}",
            error(&repeated)
        );
        let unknown_field = "{\"t\": 0, \"sid\": \"a\", \"class\": \"group\", \"size\": 2, \
                             \"duration\": 5, \"room\": 1}";
        assert!(error(unknown_field).contains("unknown field `room`"));
    }

    #[test]
    fn demand_integrates_the_participant_steps() {
        let session = SessionSpec {
            at: 0,
            sid: "s".to_owned(),
            class: SessionClass::Group,
            size: 3,
            duration: 10_000,
            participants: vec![(2_000, 2), (6_000, 3)],
        };
        // Nobody for 2 s, 2 units for 4 s, 6 units for 4 s.
        assert_eq!(session.demand_unit_ms(), 2.0 * 4_000.0 + 6.0 * 4_000.0);
        let trace = Trace {
            sessions: vec![
                session.clone(),
                SessionSpec {
                    at: 5_000,
                    ..session
                },
            ],
        };
        assert_eq!(trace.peak_demand(), 8);
    }

    #[test]
    fn a_step_is_the_one_in_all_the_steps() {
        let base = SessionSpec {
            at: 0,
            sid: "s".to_owned(),
            class: SessionClass::Group,
            size: 3,
            duration: 10_000,
            participants: Vec::new(),
        };
        for participants in [
            Vec::new(),
            vec![(0, 2), (6_000, 3)],
            vec![(2_000, 2), (6_000, 3)],
        ] {
            let session = SessionSpec {
                participants,
                ..base.clone()
            };
            let steps = session.steps();
            for index in 0..steps.len() + 2 {
                assert_eq!(session.step(index), steps.get(index).copied(), "{index}");
            }
        }
    }
}
