//! The forwarding path's readers of publisher input, the agent's own code compiled from its
//! source files: keyframe detection on any payload, the sequence rewriter on any arrival of
//! numbers and times, and the simulcast layer choice on any sequence of layers and wants.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use str0m::format::Codec;

// The agent is a binary crate; its pure forwarding modules are compiled here from source.
#[allow(dead_code)]
#[path = "../../../agent/src/sfu/keyframe.rs"]
mod keyframe;
#[allow(dead_code)]
#[path = "../../../agent/src/sfu/layers.rs"]
mod layers;
#[allow(dead_code)]
#[path = "../../../agent/src/sfu/rewrite.rs"]
mod rewrite;

#[derive(Debug, Arbitrary)]
struct Packet {
    /// Which publisher stream (simulcast layer or restarted stream).
    source: u8,
    /// Change of the extended sequence number from the last packet.
    seq_step: i32,
    timestamp: u32,
    clock_rate: u32,
    after_ms: u16,
    keyframe: bool,
    wanted: Option<u8>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    codec: u8,
    payload: Vec<u8>,
    first_seq: u32,
    packets: Vec<Packet>,
}

const CODECS: [Codec; 6] = [
    Codec::Vp8,
    Codec::H264,
    Codec::Opus,
    Codec::Vp9,
    Codec::Av1,
    Codec::Null,
];

fuzz_target!(|input: Input| {
    let codec = CODECS[usize::from(input.codec) % CODECS.len()];
    let _ = keyframe::starts_keyframe(codec, &input.payload);

    let t0 = Instant::now();
    let mut rewriter = rewrite::Rewriter::default();
    let mut choice = layers::LayerChoice::<u8>::default();
    let (mut seq, mut at) = (u64::from(input.first_seq), t0);
    // The source of the current run, the highest number written, and the highest before
    // the current run started.
    let mut run_source: Option<u32> = None;
    let mut highest: Option<u64> = None;
    let mut before_run: Option<u64> = None;
    for p in input.packets {
        seq = seq
            .saturating_add_signed(i64::from(p.seq_step))
            .min((1 << 48) - 1);
        at += Duration::from_millis(u64::from(p.after_ms));
        let source = u32::from(p.source % 4);
        let out = rewriter.rewrite(source, seq, p.timestamp, p.clock_rate, at);
        match run_source {
            None => {
                let out = out.expect("the first packet goes out");
                assert_eq!(
                    out.seq_no,
                    seq & 0xffff,
                    "the first packet keeps its number"
                );
            }
            Some(current) if current != source => {
                let out = out.expect("a new run's first packet goes out");
                let last = highest.expect("a run wrote a packet");
                assert_eq!(out.seq_no, last + 1, "a new run continues the numbers");
                before_run = Some(last);
            }
            Some(_) => {
                if let (Some(out), Some(before)) = (out, before_run) {
                    assert!(
                        out.seq_no > before,
                        "number {} of an earlier run reused",
                        out.seq_no
                    );
                }
            }
        }
        run_source = Some(source);
        if let Some(out) = out
            && highest.is_none_or(|h| out.seq_no > h)
        {
            highest = Some(out.seq_no);
        }

        // Layer choice: a subscriber only ever moves to the layer it wants, and once it has
        // a layer, only on a keyframe.
        let rid = Some(p.source % 3);
        let wanted = p.wanted.map(|w| w % 3);
        let before = choice.clone();
        let accepted = choice.accept(rid, wanted, p.keyframe);
        if accepted && before.current != rid {
            assert_eq!(rid, wanted, "moved to a layer nobody wants");
            assert!(
                before.current.is_none() || p.keyframe,
                "switched layers without a keyframe"
            );
        }
    }
});
