//! Sequence numbers and RTP timestamps of one forwarded stream, as one subscriber sees them.
//! Pure: it is told which incoming packet is about to go out, and from which publisher
//! stream (SSRC), and answers with the numbers to write.
//!
//! The agent forwards RTP packets as they arrive (str0m's RTP mode), so each subscriber's
//! stream must look like one continuous RTP stream even though its packets come from
//! different publisher streams over time. Three rules make it so:
//! - The first packet goes out with its 16-bit sequence number and a rollover count of 0: a
//!   receiver that joins a long-running stream knows nothing of the publisher's rollovers,
//!   and SRTP authenticates with the rollover count.
//! - A packet from another publisher stream than the last one (a simulcast layer switch, or
//!   a publisher that restarted its stream) continues the sequence at the next number and the
//!   timestamps by the wall-clock time since the last packet, so the receiver sees neither a
//!   gap nor a jump.
//! - A late packet from before the point where the current run started is dropped: its
//!   number would land on one already used for the run before.

use std::time::Instant;

/// Numbers to write for one forwarded packet: the extended sequence number (its upper bits
/// are the SRTP rollover count) and the 32-bit RTP timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub seq_no: u64,
    pub timestamp: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Rewriter {
    /// Added to an incoming extended sequence number (wrapping).
    seq_offset: u64,
    /// Added to an incoming timestamp (wrapping).
    ts_offset: u32,
    /// The first incoming sequence number of the current run; earlier ones are dropped.
    run_start: Option<u64>,
    /// The highest sequence number, with its timestamp and time, written so far.
    last: Option<(u64, u32, Instant)>,
    /// The publisher stream (SSRC) of the current run.
    source: Option<u32>,
}

impl Rewriter {
    /// Where the packet `in_seq`/`in_ts` of publisher stream `source` goes out;
    /// `clock_rate` is the codec's RTP clock in Hz. `None`: drop the packet. The caller
    /// decides which stream is forwarded (a layer switch waits for a keyframe); a packet of
    /// another stream than the last starts a new run.
    pub fn rewrite(
        &mut self,
        source: u32,
        in_seq: u64,
        in_ts: u32,
        clock_rate: u32,
        now: Instant,
    ) -> Option<Rewritten> {
        let new_run = self.source.is_some_and(|current| current != source);
        self.source = Some(source);
        match self.last {
            // The first packet: keep the publisher's 16-bit number and timestamp, start at
            // rollover 0.
            None => {
                let out_seq = in_seq & 0xffff;
                self.seq_offset = out_seq.wrapping_sub(in_seq);
                self.ts_offset = 0;
                self.run_start = Some(in_seq);
            }
            Some((last_seq, last_ts, last_at)) if new_run => {
                let elapsed = now.saturating_duration_since(last_at);
                let ticks = (elapsed.as_micros() * u128::from(clock_rate) / 1_000_000)
                    .clamp(1, u128::from(u32::MAX / 2)) as u32;
                self.seq_offset = last_seq.wrapping_add(1).wrapping_sub(in_seq);
                self.ts_offset = last_ts.wrapping_add(ticks).wrapping_sub(in_ts);
                self.run_start = Some(in_seq);
            }
            Some(_) if self.run_start.is_some_and(|start| in_seq < start) => return None,
            Some(_) => {}
        }
        let out = Rewritten {
            seq_no: in_seq.wrapping_add(self.seq_offset),
            timestamp: in_ts.wrapping_add(self.ts_offset),
        };
        match self.last {
            Some((last_seq, _, _)) if out.seq_no <= last_seq => {}
            _ => self.last = Some((out.seq_no, out.timestamp, now)),
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    const VIDEO: u32 = 90_000;
    /// Two publisher streams (SSRCs), as two simulcast layers.
    const A: u32 = 0x1111;
    const B: u32 = 0x2222;

    #[test]
    fn a_single_stream_passes_through_at_rollover_zero() {
        let t0 = Instant::now();
        let mut r = Rewriter::default();
        // The publisher has wrapped three times already.
        let base = 3 * 65_536 + 65_000;
        let first = r.rewrite(A, base, 1_000, VIDEO, t0).unwrap();
        assert_eq!(first.seq_no, 65_000);
        assert_eq!(first.timestamp, 1_000);
        let later = r.rewrite(A, base + 1_000, 4_000, VIDEO, t0).unwrap();
        // Past 65535 the receiver sees rollover 1, as it would count it.
        assert_eq!(later.seq_no, 66_000);
        assert_eq!(later.timestamp, 4_000);
    }

    #[test]
    fn out_of_order_packets_of_the_run_keep_their_numbers() {
        let t0 = Instant::now();
        let mut r = Rewriter::default();
        r.rewrite(A, 100, 0, VIDEO, t0).unwrap();
        r.rewrite(A, 102, 0, VIDEO, t0).unwrap();
        // A retransmission of 101 fills its own place.
        assert_eq!(r.rewrite(A, 101, 0, VIDEO, t0).unwrap().seq_no, 101);
        assert_eq!(r.rewrite(A, 103, 0, VIDEO, t0).unwrap().seq_no, 103);
    }

    #[test]
    fn a_switch_continues_numbers_and_time() {
        let t0 = Instant::now();
        let mut r = Rewriter::default();
        r.rewrite(A, 500, 90_000, VIDEO, t0).unwrap();
        r.rewrite(A, 501, 93_000, VIDEO, t0).unwrap();
        // Another layer with its own numbering, 33 ms later.
        let at = t0 + Duration::from_millis(33);
        let switched = r.rewrite(B, 20_000, 7_777_000, VIDEO, at).unwrap();
        assert_eq!(switched.seq_no, 502);
        assert_eq!(switched.timestamp, 93_000 + 2_970);
        let next = r.rewrite(B, 20_001, 7_780_000, VIDEO, at).unwrap();
        assert_eq!(next.seq_no, 503);
        assert_eq!(next.timestamp, 93_000 + 2_970 + 3_000);
        // A late packet of the new layer from before the switch has no place.
        assert_eq!(r.rewrite(B, 19_999, 7_774_000, VIDEO, at), None);
    }

    #[test]
    fn a_restarted_stream_continues_the_numbers() {
        let t0 = Instant::now();
        let mut r = Rewriter::default();
        r.rewrite(A, 40_000, 9_000, VIDEO, t0).unwrap();
        // The publisher's new stream starts over at a lower number; nothing is dropped.
        let at = t0 + Duration::from_millis(10);
        let restarted = r.rewrite(B, 10, 0, VIDEO, at).unwrap();
        assert_eq!(restarted.seq_no, 40_001);
        assert_eq!(restarted.timestamp, 9_000 + 900);
    }

    proptest! {
        /// Whatever the layers' numbering and the switch points, the subscriber's sequence
        /// numbers of in-order packets rise by exactly one, start at rollover 0, and the
        /// timestamps never go back at a switch.
        #[test]
        fn in_order_runs_give_one_gapless_stream(
            runs in prop::collection::vec((0u64..1u64 << 40, any::<u32>(), 1usize..50), 1..8),
        ) {
            let t0 = Instant::now();
            let mut r = Rewriter::default();
            let mut expected: Option<u64> = None;
            let mut last_ts: Option<u32> = None;
            for (index, (start, ts, len)) in runs.into_iter().enumerate() {
                for i in 0..len as u64 {
                    let now = t0 + Duration::from_millis(index as u64 * 100 + i);
                    let in_ts = ts.wrapping_add(i as u32 * 3_000);
                    let out = r
                        .rewrite(index as u32, start + i, in_ts, VIDEO, now)
                        .expect("in-order packets are never dropped");
                    match expected {
                        None => prop_assert!(out.seq_no < 65_536),
                        Some(want) => prop_assert_eq!(out.seq_no, want),
                    }
                    if i == 0 && let Some(previous) = last_ts {
                        let step = out.timestamp.wrapping_sub(previous);
                        prop_assert!(step > 0 && step < u32::MAX / 2);
                    }
                    expected = Some(out.seq_no + 1);
                    last_ts = Some(out.timestamp);
                }
            }
        }
    }
}
