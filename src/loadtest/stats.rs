//! Per-track accounting: what publishers sent (a send log per track), what each subscriber
//! received (frames reassembled from RTP, stamps recovered from them, arrival times), and the
//! arithmetic that turns both into packets expected and received, loss and one-way latency
//! over a measurement window.
//!
//! Robust to an SFU that re-packetizes frames: a subscriber joins the payloads of one frame
//! (VP8 descriptors stripped, the frame ending at the marker bit or a new RTP timestamp, or
//! cut at a sequence gap) and scans the bytes for stamps, so it counts publisher packets, not
//! its own packets.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::media::{Stamp, now_us, scan, vp8_descriptor_len};

/// A track's media kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Audio,
    Video,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Audio => "audio",
            Kind::Video => "video",
        })
    }
}

/// The send times of one publisher track, indexed by packet number.
#[derive(Debug, Default)]
pub struct SendLog {
    sent_us: Mutex<Vec<u64>>,
}

impl SendLog {
    /// The number the next packet gets.
    pub fn next_number(&self) -> u32 {
        self.lock().len() as u32
    }

    /// Records `count` packets sent at `sent_us`, numbered on from [`SendLog::next_number`].
    pub fn record(&self, count: usize, sent_us: u64) {
        let mut log = self.lock();
        log.extend(std::iter::repeat_n(sent_us, count));
    }

    /// Packets sent with a send time in `from_us..=to_us`.
    pub fn sent_between(&self, from_us: u64, to_us: u64) -> u64 {
        let log = self.lock();
        // Send times never decrease with the number.
        let lo = log.partition_point(|&t| t < from_us);
        let hi = log.partition_point(|&t| t <= to_us);
        hi.saturating_sub(lo) as u64
    }

    pub fn total(&self) -> u64 {
        self.lock().len() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        // A poisoned log still holds valid numbers: a panic cannot leave it half-written.
        self.sent_us.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The measurement window, in µs of wall clock; receivers record arrivals of packets sent
/// inside it. Both ends start at `u64::MAX` (nothing recorded).
#[derive(Debug)]
pub struct Window {
    start_us: AtomicU64,
    end_us: AtomicU64,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            start_us: AtomicU64::new(u64::MAX),
            end_us: AtomicU64::new(u64::MAX),
        }
    }
}

impl Window {
    /// Opens the window at `start_us`, which must lie in the future so that every packet
    /// sent after it is sent after this call.
    pub fn open(&self, start_us: u64) {
        self.end_us.store(u64::MAX, Ordering::SeqCst);
        self.start_us.store(start_us, Ordering::SeqCst);
    }

    /// Closes the window at `end_us` (in the future, for the same reason).
    pub fn close(&self, end_us: u64) {
        self.end_us.store(end_us, Ordering::SeqCst);
    }

    pub fn start_us(&self) -> u64 {
        self.start_us.load(Ordering::SeqCst)
    }

    pub fn end_us(&self) -> u64 {
        self.end_us.load(Ordering::SeqCst)
    }

    fn contains(&self, sent_us: u64) -> bool {
        sent_us >= self.start_us.load(Ordering::Relaxed)
            && sent_us <= self.end_us.load(Ordering::Relaxed)
    }
}

/// One publisher packet recovered by a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub track: u32,
    pub number: u32,
    pub sent_us: u64,
    pub arrived_us: u64,
}

/// What one subscriber has received on one remote track so far.
#[derive(Debug, Clone)]
pub struct Received {
    pub kind: Kind,
    /// The publisher track index found in its stamps.
    pub source: Option<u32>,
    /// RTP packets and payload bytes received, duplicates included.
    pub packets: u64,
    pub bytes: u64,
    /// When the first stamp arrived (µs of wall clock).
    pub first_stamp_us: Option<u64>,
    pub last_us: u64,
    /// Arrivals of packets sent inside the window, not yet accounted.
    pub arrivals: Vec<Arrival>,
}

/// Turns one remote track's RTP packets into [`Arrival`]s.
#[derive(Debug)]
pub struct Receiver {
    kind: Kind,
    frame: Vec<u8>,
    timestamp: Option<u32>,
    next_sequence: Option<u16>,
}

impl Receiver {
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            frame: Vec::with_capacity(4096),
            timestamp: None,
            next_sequence: None,
        }
    }

    /// Takes one RTP packet; calls `found` for each stamp of a frame it completes.
    pub fn packet(
        &mut self,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        mut found: impl FnMut(Stamp),
    ) {
        match self.kind {
            Kind::Audio => scan(payload, found),
            Kind::Video => {
                let gap = self.next_sequence.is_some_and(|n| n != sequence);
                let new_frame = self.timestamp.is_some_and(|t| t != timestamp);
                if gap || new_frame {
                    scan(&self.frame, &mut found);
                    self.frame.clear();
                }
                self.next_sequence = Some(sequence.wrapping_add(1));
                self.timestamp = Some(timestamp);
                if let Some(skip) = vp8_descriptor_len(payload) {
                    self.frame.extend_from_slice(&payload[skip..]);
                }
                if marker {
                    scan(&self.frame, &mut found);
                    self.frame.clear();
                    self.timestamp = None;
                }
            }
        }
    }
}

/// The shared record of one remote track: its [`Receiver`] and what it has counted.
#[derive(Debug)]
pub struct RemoteTrackStats {
    state: Mutex<(Receiver, Received)>,
}

impl RemoteTrackStats {
    pub fn new(kind: Kind) -> Self {
        Self {
            state: Mutex::new((
                Receiver::new(kind),
                Received {
                    kind,
                    source: None,
                    packets: 0,
                    bytes: 0,
                    first_stamp_us: None,
                    last_us: 0,
                    arrivals: Vec::new(),
                },
            )),
        }
    }

    /// Counts one RTP packet that arrived now.
    pub fn packet(
        &self,
        window: &Window,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) {
        let now = now_us();
        let mut state = self.lock();
        let (receiver, received) = &mut *state;
        received.packets += 1;
        received.bytes += payload.len() as u64;
        received.last_us = now;
        receiver.packet(sequence, timestamp, marker, payload, |stamp| {
            received.source.get_or_insert(stamp.track);
            received.first_stamp_us.get_or_insert(now);
            if window.contains(stamp.sent_us) {
                received.arrivals.push(Arrival {
                    track: stamp.track,
                    number: stamp.number,
                    sent_us: stamp.sent_us,
                    arrived_us: now,
                });
            }
        });
    }

    /// A copy of the counters, and the arrivals taken out.
    pub fn take(&self) -> Received {
        let mut state = self.lock();
        let received = &mut state.1;
        let arrivals = std::mem::take(&mut received.arrivals);
        Received {
            arrivals,
            ..received.clone()
        }
    }

    /// The counters only.
    pub fn peek(&self) -> (Option<u32>, u64, u64, u64) {
        let state = self.lock();
        let r = &state.1;
        (r.source, r.packets, r.bytes, r.last_us)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Receiver, Received)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A latency histogram in µs, 3 significant digits, up to 10 minutes.
pub fn latency_histogram() -> Histogram<u64> {
    // Bounds valid by construction: low 1 ≤ high / 2, and sigfig 3 ≤ 5.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// One subscriber's view of one publisher track over a window.
#[derive(Debug, Clone)]
pub struct Accounting {
    pub expected: u64,
    pub received: u64,
    pub latency_us: Histogram<u64>,
}

/// Accounts `arrivals` of publisher track `track` against its `log` over `from_us..=to_us`:
/// publisher packets sent in that span, how many distinct ones arrived, and the latency of
/// each one's first arrival.
pub fn account(
    arrivals: &[Arrival],
    track: u32,
    log: &SendLog,
    from_us: u64,
    to_us: u64,
) -> Accounting {
    let mut inside: Vec<&Arrival> = arrivals
        .iter()
        .filter(|a| a.track == track && a.sent_us >= from_us && a.sent_us <= to_us)
        .collect();
    inside.sort_by_key(|a| (a.number, a.arrived_us));
    inside.dedup_by_key(|a| a.number);
    let mut latency_us = latency_histogram();
    for a in &inside {
        // Saturated at the bounds rather than failing: a clock step is not a reason to stop.
        latency_us.saturating_record(a.arrived_us.saturating_sub(a.sent_us).max(1));
    }
    Accounting {
        expected: log.sent_between(from_us, to_us),
        received: inside.len() as u64,
        latency_us,
    }
}

#[cfg(test)]
mod tests {
    use super::super::media::{VideoShape, opus_packet, vp8_frame};
    use super::*;

    #[test]
    fn frames_are_reassembled_across_any_packet_boundaries() {
        let shape = VideoShape {
            bitrate_bps: 1_500_000,
            fps: 30,
        };
        let packets = vp8_frame(shape, true, 2, 10, 5);
        // An SFU that forwards frames re-packetized into 500-byte payloads with a 4-byte
        // descriptor (X, I, 15-bit picture id).
        let frame: Vec<u8> = packets.iter().flat_map(|p| p[1..].to_vec()).collect();
        let mut receiver = Receiver::new(Kind::Video);
        let mut found = Vec::new();
        let chunks: Vec<&[u8]> = frame.chunks(500).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let mut payload = vec![if i == 0 { 0x90 } else { 0x80 }, 0x80, 0x80, 0x01];
            payload.extend_from_slice(chunk);
            let last = i + 1 == chunks.len();
            receiver.packet(100 + i as u16, 1234, last, &payload, |s| {
                found.push(s.number)
            });
        }
        assert_eq!(found, (10..10 + packets.len() as u32).collect::<Vec<_>>());
    }

    #[test]
    fn a_frame_cut_by_a_sequence_gap_keeps_its_whole_stamps() {
        let shape = VideoShape {
            bitrate_bps: 1_000_000,
            fps: 30,
        };
        let packets = vp8_frame(shape, false, 0, 0, 5);
        assert_eq!(packets.len(), 4);
        let mut receiver = Receiver::new(Kind::Video);
        let mut found = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            if i == 1 {
                continue; // lost
            }
            receiver.packet(i as u16, 9, i == 3, p, |s| found.push(s.number));
        }
        assert_eq!(found, [0, 2, 3]);
    }

    #[test]
    fn accounting_counts_distinct_packets_inside_the_window() {
        let log = SendLog::default();
        for t in 0..10u64 {
            log.record(1, 1_000 + t * 20_000);
        }
        let mut arrivals = Vec::new();
        let mut receiver = Receiver::new(Kind::Audio);
        for n in 0..10u32 {
            if n == 4 {
                continue;
            }
            let sent = 1_000 + u64::from(n) * 20_000;
            receiver.packet(n as u16, n, false, &opus_packet(5, n, sent), |s| {
                arrivals.push(Arrival {
                    track: s.track,
                    number: s.number,
                    sent_us: s.sent_us,
                    arrived_us: s.sent_us + 300,
                });
            });
        }
        // A duplicate (a retransmission) counts once, with its first arrival.
        arrivals.push(Arrival {
            arrived_us: arrivals[0].arrived_us + 50_000,
            ..arrivals[0]
        });
        let a = account(&arrivals, 5, &log, 1_000, 1_000 + 9 * 20_000);
        assert_eq!((a.expected, a.received), (10, 9));
        assert_eq!(a.latency_us.value_at_quantile(0.99), 300);
        // Edges: only packets sent at 41_000..=101_000 (numbers 2..=5, 4 lost).
        let a = account(&arrivals, 5, &log, 41_000, 101_000);
        assert_eq!((a.expected, a.received), (4, 3));
        // Another track's arrivals do not count.
        assert_eq!(account(&arrivals, 6, &log, 0, u64::MAX).received, 0);
    }
}
