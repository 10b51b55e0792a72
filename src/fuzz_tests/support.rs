//! What both crates' fuzz tests share (`src/fuzz_tests.rs`, and `agent/src/fuzz_tests.rs`
//! through `#[path]`): [`fuzz`], the runner with its case count and time budget, and the
//! strategies that make inputs: arbitrary JSON, and mutations of valid text, lines and JSON.
//!
//! Cases: `PROPTEST_CASES` if set, else each test's own default. `ION_FUZZ_SECONDS` stops a
//! long run after that many seconds (at the end of a batch), so `scripts/fuzz` can give each
//! target a time and still report how many cases ran. `PROPTEST_RNG_SEED` replays a run.

// Each crate uses a part of it.
#![allow(dead_code)]

use std::any::Any;
use std::cell::RefCell;
use std::fmt::Debug;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{
    Config, RngSeed, TestCaseError, TestCaseResult, TestError, TestRunner,
};
use serde_json::Value;

/// Default cases of a test whose case costs microseconds.
pub const CHEAP: u32 = 256;
/// Default cases of a test whose case sets up PeerConnections or talks HTTP (milliseconds).
pub const COSTLY: u32 = 64;

/// A case slower than this fails: a parser that is merely slow on some input (quadratic, or
/// looping until a large bound) is a hang in waiting. Generous, as the suite shares two
/// cores with builds. A real hang is `scripts/fuzz`'s `timeout` to catch.
const SLOW_CASE: Duration = Duration::from_secs(30);

/// Runs `test` on inputs from `strategy`: `PROPTEST_CASES` of them (else `default_cases`),
/// in batches, each with its own seed, until the cases or `ION_FUZZ_SECONDS` run out. A
/// failure, a panic included, is shrunk and reported with its minimal input. Prints the
/// cases run and the time taken to stderr (shown by `--nocapture`).
pub fn fuzz<S>(
    name: &str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> TestCaseResult,
) where
    S: Strategy,
    S::Value: Debug,
{
    record_panic_places();
    let cases = env_number("PROPTEST_CASES").map_or(default_cases, |n| n as u32);
    let budget = env_number("ION_FUZZ_SECONDS").map(Duration::from_secs_f64);
    let defaults = Config::default();
    let started = Instant::now();
    let (mut done, mut batch, mut round) = (0u32, 16u32, 0u64);
    while done < cases && budget.is_none_or(|b| started.elapsed() < b) {
        let size = batch.min(cases - done);
        let rng_seed = match defaults.rng_seed {
            // A fixed seed replays a run; each batch still needs inputs of its own.
            RngSeed::Fixed(seed) => RngSeed::Fixed(seed.wrapping_add(round)),
            RngSeed::Random => RngSeed::Random,
        };
        let config = Config {
            cases: size,
            rng_seed,
            failure_persistence: None,
            fork: false,
            timeout: 0,
            ..defaults.clone()
        };
        let outcome = TestRunner::new(config).run(&strategy, |input| {
            let at = Instant::now();
            match panic::catch_unwind(AssertUnwindSafe(|| test(input))) {
                Ok(result) => result?,
                Err(payload) => return Err(panicked(payload.as_ref())),
            }
            let took = at.elapsed();
            if took > SLOW_CASE {
                return Err(TestCaseError::fail(format!(
                    "one case took {took:?}, over the {SLOW_CASE:?} a case may take"
                )));
            }
            Ok(())
        });
        match outcome {
            Ok(()) => {}
            Err(TestError::Fail(why, input)) => {
                panic!("fuzz {name}: {why}\nminimal failing input: {input:#?}")
            }
            Err(TestError::Abort(why)) => panic!("fuzz {name}: aborted: {why}"),
        }
        done += size;
        round += 1;
        batch = batch.saturating_mul(2).min(4096);
        // With a budget, the next batch must fit what is left of it at the pace so far.
        if let Some(budget) = budget {
            let per_case = started.elapsed().as_secs_f64() / f64::from(done);
            let left = budget.saturating_sub(started.elapsed()).as_secs_f64();
            batch = batch.min((left / per_case.max(1e-9)).max(1.0) as u32);
        }
    }
    eprintln!(
        "fuzz {name}: {done} cases in {:.2}s",
        started.elapsed().as_secs_f64()
    );
}

thread_local! {
    /// Where this thread last panicked, for the report of a failing input.
    static PANICKED_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Adds to the panic hook (once per process, keeping the hook there was) a note of where
/// each panic happened: the test runner sees only the message.
fn record_panic_places() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if let Some(at) = info.location() {
                PANICKED_AT.with(|p| *p.borrow_mut() = Some(at.to_string()));
            }
            previous(info);
        }));
    });
}

/// A panic of the code under test as a failure that says where it happened.
fn panicked(payload: &(dyn Any + Send)) -> TestCaseError {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    let at = PANICKED_AT
        .with(|p| p.borrow_mut().take())
        .unwrap_or_else(|| "an unknown place".to_owned());
    TestCaseError::fail(format!("panicked at {at}: {message}"))
}

fn env_number(name: &str) -> Option<f64> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// Bytes that print as an escaped byte string, so a failing input can be read.
#[derive(Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// Numbers that break parsers: signs, zero, the edges of each integer width, beyond u64,
/// exponents, and forms JSON does not allow.
pub const NASTY_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "1",
    "127",
    "128",
    "255",
    "256",
    "32767",
    "32768",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "99999999999999999999999999999999999999",
    "1e308",
    "1e309",
    "-1e309",
    "1e-400",
    "0.5",
    "1.0",
    "NaN",
    "Infinity",
    "0x10",
    "00",
];

const ODD_STRINGS: &[&str] = &[
    "",
    " ",
    "\0",
    "\r\n",
    "\n",
    "\\",
    "\"",
    "/",
    "..",
    "../..",
    ":",
    "=",
    ";",
    ",",
    "\u{feff}",
    "\u{202e}",
    "é",
    "\u{10ffff}",
    "null",
    "true",
    "{}",
    "[]",
];
const REPEATED: &[&str] = &["a", "é", "0", "\0", "{", "["];
/// Integers at the edges of their types, as JSON numbers.
const EXTREMES: &[i128] = &[
    u64::MAX as i128,
    u64::MAX as i128 - 1,
    i64::MAX as i128,
    i64::MAX as i128 + 1,
    i64::MIN as i128,
    u32::MAX as i128,
    u32::MAX as i128 + 1,
    i32::MIN as i128,
    u16::MAX as i128 + 1,
    -1,
];
const ROUND_NUMBERS: &[u64] = &[0, 1, 255, 256, 65535, 65536, u32::MAX as u64];

/// Text that is interesting in most places: empty, control characters, separators of the
/// formats under test, non-ASCII, long runs.
pub fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        2 => "[a-zA-Z0-9 ._:/=-]{0,24}",
        1 => prop::sample::select(NASTY_NUMBERS).prop_map(str::to_owned),
        1 => prop::sample::select(ODD_STRINGS).prop_map(str::to_owned),
        1 => (prop::sample::select(REPEATED), 1usize..4096).prop_map(|(s, n)| s.repeat(n)),
    ]
}

/// Arbitrary JSON up to `depth` levels of arrays and objects, with keys drawn from `keys`
/// (the field names of the type under test, so that objects often look almost right) or
/// made up.
pub fn json_value(depth: u32, keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(ROUND_NUMBERS).prop_map(Value::from),
        nasty_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(depth, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_key(keys), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn json_key(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    if keys.is_empty() {
        return nasty_string().boxed();
    }
    prop_oneof![
        3 => prop::sample::select(keys).prop_map(str::to_owned),
        1 => nasty_string(),
    ]
    .boxed()
}

/// One change to a JSON value, at the node that `path` leads to (each index picks a child
/// of the node before; the walk stops at a leaf).
#[derive(Debug, Clone)]
pub enum JsonEdit {
    Replace(Vec<Index>, Value),
    /// Removes one child of the node (an object's field, an array's element).
    RemoveChild(Vec<Index>, Index),
    AddField(Vec<Index>, String, Value),
    /// Puts the node `levels` arrays deep.
    Nest(Vec<Index>, usize),
    /// A number becomes the same digits as a string, a string its parse as a number.
    Retype(Vec<Index>),
    /// The node becomes a number at the edge of an integer type.
    Extreme(Vec<Index>, Value),
}

/// `seed` with one to four [`JsonEdit`]s applied.
pub fn mutated_json(seed: Value, keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let path = || prop::collection::vec(any::<Index>(), 0..5);
    let edit = prop_oneof![
        4 => (path(), json_value(2, keys)).prop_map(|(p, v)| JsonEdit::Replace(p, v)),
        3 => (path(), any::<Index>()).prop_map(|(p, i)| JsonEdit::RemoveChild(p, i)),
        2 => (path(), json_key(keys), json_value(1, keys))
            .prop_map(|(p, k, v)| JsonEdit::AddField(p, k, v)),
        1 => (path(), 1usize..300).prop_map(|(p, n)| JsonEdit::Nest(p, n)),
        2 => path().prop_map(JsonEdit::Retype),
        2 => (path(), prop::sample::select(EXTREMES))
            .prop_map(|(p, n)| JsonEdit::Extreme(p, extreme(n))),
    ];
    prop::collection::vec(edit, 1..5).prop_map(move |edits| {
        let mut value = seed.clone();
        for edit in edits {
            apply_json_edit(&mut value, edit);
        }
        value
    })
}

/// Every value of [`EXTREMES`] fits an i64 or a u64.
fn extreme(n: i128) -> Value {
    i64::try_from(n).map_or_else(|_| Value::from(n as u64), Value::from)
}

fn node_at<'v>(node: &'v mut Value, path: &[Index]) -> &'v mut Value {
    let Some((first, rest)) = path.split_first() else {
        return node;
    };
    let len = match &*node {
        Value::Array(items) => items.len(),
        Value::Object(fields) => fields.len(),
        _ => 0,
    };
    if len == 0 {
        return node;
    }
    let at = first.index(len);
    match node {
        Value::Array(items) => node_at(&mut items[at], rest),
        Value::Object(fields) => {
            let child = fields
                .values_mut()
                .nth(at)
                .expect("`at` is below the length");
            node_at(child, rest)
        }
        other => other,
    }
}

fn apply_json_edit(value: &mut Value, edit: JsonEdit) {
    match edit {
        JsonEdit::Replace(path, new) => *node_at(value, &path) = new,
        JsonEdit::RemoveChild(path, index) => match node_at(value, &path) {
            Value::Array(items) if !items.is_empty() => {
                items.remove(index.index(items.len()));
            }
            Value::Object(fields) if !fields.is_empty() => {
                let key = fields.keys().nth(index.index(fields.len())).cloned();
                if let Some(key) = key {
                    fields.remove(&key);
                }
            }
            _ => {}
        },
        JsonEdit::AddField(path, key, new) => match node_at(value, &path) {
            Value::Object(fields) => {
                fields.insert(key, new);
            }
            Value::Array(items) => items.push(new),
            _ => {}
        },
        JsonEdit::Nest(path, levels) => {
            let node = node_at(value, &path);
            for _ in 0..levels {
                *node = Value::Array(vec![node.take()]);
            }
        }
        JsonEdit::Extreme(path, number) => *node_at(value, &path) = number,
        JsonEdit::Retype(path) => {
            let node = node_at(value, &path);
            *node = match node.take() {
                Value::Number(n) => Value::String(n.to_string()),
                Value::String(s) => serde_json::from_str::<serde_json::Number>(&s)
                    .map(Value::Number)
                    .unwrap_or(Value::String(s)),
                Value::Bool(b) => Value::from(u8::from(b)),
                Value::Null => Value::from(""),
                other => other,
            };
        }
    }
}

/// One change to a byte string.
#[derive(Debug, Clone)]
pub enum ByteEdit {
    FlipBit(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    Truncate(Index),
    /// Repeats a slice in place: lengths that no longer match their contents.
    Repeat(Index, usize, usize),
}

/// Bytes that many formats give meaning to.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"-1",
    b"1e999",
    b"\\u0000",
    b"\\ud800",
    b"\r\n",
    b"\n",
    b"=",
    b" ",
    b"a=",
    b"m=",
    b"\0",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
];

/// One to eight [`ByteEdit`]s, for a seed that only exists when the case runs (a STUN
/// request signed with a password the agent just made up); see [`apply_byte_edits`].
pub fn byte_edits() -> impl Strategy<Value = Vec<ByteEdit>> {
    let inserted = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..16),
        prop::sample::select(TOKENS).prop_map(<[u8]>::to_vec),
        prop::sample::select(NASTY_NUMBERS).prop_map(|n| n.as_bytes().to_vec()),
    ];
    let edit = prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| ByteEdit::FlipBit(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Set(i, b)),
        3 => (any::<Index>(), inserted).prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        2 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| ByteEdit::Remove(i, n)),
        1 => any::<Index>().prop_map(ByteEdit::Truncate),
        1 => (any::<Index>(), 1usize..32, 1usize..8)
            .prop_map(|(i, n, times)| ByteEdit::Repeat(i, n, times)),
    ];
    prop::collection::vec(edit, 1..9)
}

pub fn apply_byte_edits(bytes: &mut Vec<u8>, edits: &[ByteEdit]) {
    for edit in edits {
        apply_byte_edit(bytes, edit.clone());
    }
}

/// `seed` with one to eight [`ByteEdit`]s applied.
pub fn mutated_bytes(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    byte_edits().prop_map(move |edits| {
        let mut bytes = seed.clone();
        apply_byte_edits(&mut bytes, &edits);
        bytes
    })
}

fn apply_byte_edit(bytes: &mut Vec<u8>, edit: ByteEdit) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
    match edit {
        ByteEdit::FlipBit(i, bit) if !bytes.is_empty() => {
            let at = at(&i, bytes.len());
            bytes[at] ^= 1 << bit;
        }
        ByteEdit::Set(i, b) if !bytes.is_empty() => {
            let at = at(&i, bytes.len());
            bytes[at] = b;
        }
        ByteEdit::Insert(i, new) => {
            let at = at(&i, bytes.len() + 1);
            bytes.splice(at..at, new);
        }
        ByteEdit::Remove(i, n) if !bytes.is_empty() => {
            let at = at(&i, bytes.len());
            let end = (at + n).min(bytes.len());
            bytes.drain(at..end);
        }
        ByteEdit::Truncate(i) => {
            let at = at(&i, bytes.len() + 1);
            bytes.truncate(at);
        }
        ByteEdit::Repeat(i, n, times) if !bytes.is_empty() => {
            let at = at(&i, bytes.len());
            let end = (at + n).min(bytes.len());
            let slice = bytes[at..end].to_vec();
            for _ in 0..times {
                bytes.splice(end..end, slice.iter().copied());
            }
        }
        _ => {}
    }
}

/// `seed` with byte edits, as text (invalid UTF-8 replaced, as a WebSocket text frame or a
/// `&str` API would refuse it before us).
pub fn mutated_text(seed: &str) -> impl Strategy<Value = String> + use<> {
    mutated_bytes(seed.as_bytes().to_vec())
        .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// One change to a line-based text (SDP): whole lines, or one field of one line.
#[derive(Debug, Clone)]
pub enum LineEdit {
    Remove(Index),
    Duplicate(Index),
    Swap(Index, Index),
    /// Keeps what precedes the line's first `:` (or `=`) and replaces the rest.
    ReplaceValue(Index, String),
    /// Inserts `prefix` followed by made-up text.
    Insert(Index, &'static str, String),
    /// Replaces one whitespace-separated field of the line with a nasty number.
    Number(Index, Index, &'static str),
}

/// `seed`'s lines (split on `\r\n`) with one to six [`LineEdit`]s, joined again with
/// `\r\n` (or sometimes a bare `\n`); `prefixes` are the line starts worth inserting.
pub fn mutated_lines(
    seed: &'static str,
    prefixes: &'static [&'static str],
) -> impl Strategy<Value = String> {
    let value = prop_oneof![
        3 => "[ -~]{0,40}",
        1 => nasty_string(),
    ];
    let edit = prop_oneof![
        3 => any::<Index>().prop_map(LineEdit::Remove),
        2 => any::<Index>().prop_map(LineEdit::Duplicate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| LineEdit::Swap(a, b)),
        3 => (any::<Index>(), value.clone()).prop_map(|(i, v)| LineEdit::ReplaceValue(i, v)),
        3 => (any::<Index>(), prop::sample::select(prefixes), value)
            .prop_map(|(i, p, v)| LineEdit::Insert(i, p, v)),
        3 => (any::<Index>(), any::<Index>(), prop::sample::select(NASTY_NUMBERS))
            .prop_map(|(i, f, n)| LineEdit::Number(i, f, n)),
    ];
    (prop::collection::vec(edit, 1..7), any::<bool>()).prop_map(move |(edits, bare)| {
        let mut lines: Vec<String> = seed
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        for edit in edits {
            apply_line_edit(&mut lines, edit);
        }
        let end = if bare { "\n" } else { "\r\n" };
        let mut text = lines.join(end);
        text.push_str(end);
        text
    })
}

fn apply_line_edit(lines: &mut Vec<String>, edit: LineEdit) {
    if lines.is_empty() {
        return;
    }
    let len = lines.len();
    match edit {
        LineEdit::Remove(i) => {
            lines.remove(i.index(len));
        }
        LineEdit::Duplicate(i) => {
            let at = i.index(len);
            lines.insert(at, lines[at].clone());
        }
        LineEdit::Swap(a, b) => lines.swap(a.index(len), b.index(len)),
        LineEdit::ReplaceValue(i, value) => {
            let line = &mut lines[i.index(len)];
            let keep = line
                .find(':')
                .or_else(|| line.find('='))
                .map_or(0, |at| at + 1);
            line.truncate(keep);
            line.push_str(&value);
        }
        LineEdit::Insert(i, prefix, value) => {
            lines.insert(i.index(len + 1), format!("{prefix}{value}"))
        }
        LineEdit::Number(i, field, number) => {
            let line = &mut lines[i.index(len)];
            let mut fields: Vec<&str> = line.split(' ').collect();
            let at = field.index(fields.len());
            fields[at] = number;
            *line = fields.join(" ");
        }
    }
}
