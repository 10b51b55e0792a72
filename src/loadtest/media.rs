//! The generated media of load-test publishers: VP8 frames at a chosen bitrate and frame rate,
//! split into RTP payloads with a valid VP8 payload descriptor, and Opus packets at 50/s.
//!
//! Every payload carries one or more [`Stamp`]s (magic `IONL`, the publisher track's index,
//! the packet's number on that track and its send time in µs of wall clock), so a subscriber
//! can tell which publisher packets arrived and when they were sent, even when the SFU
//! re-packetizes frames: the stamps survive in the frame's bytes wherever the packet
//! boundaries fall. [`scan`] finds them again.
//!
//! The functions here build bytes and do no I/O; the send loop lives in `client.rs`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Marks a [`Stamp`] inside a payload.
pub const MAGIC: [u8; 4] = *b"IONL";
/// Magic, track index (u32), packet number (u32), send time in µs (u64); big-endian.
pub const STAMP_LEN: usize = 20;
/// The most payload bytes one generated RTP packet carries (VP8 descriptor included).
pub const MAX_PAYLOAD: usize = 1100;
/// Opus: one packet every 20 ms.
pub const AUDIO_PPS: u32 = 50;
/// Bytes of one generated Opus packet (about 32 kbps at 50 packets/s).
pub const OPUS_BYTES: usize = 80;
/// The 90 kHz clock of VP8 and the 48 kHz clock of Opus.
pub const VIDEO_CLOCK: u32 = 90_000;
pub const AUDIO_CLOCK: u32 = 48_000;

/// Which publisher packet this is, and when it left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The publisher track's index in the run (see `mod.rs`).
    pub track: u32,
    /// Packet number on that track, from 0.
    pub number: u32,
    /// Wall clock at send, µs since the Unix epoch.
    pub sent_us: u64,
}

impl Stamp {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.track.to_be_bytes());
        out.extend_from_slice(&self.number.to_be_bytes());
        out.extend_from_slice(&self.sent_us.to_be_bytes());
    }

    fn read(bytes: &[u8]) -> Option<Stamp> {
        let field = |range: std::ops::Range<usize>| bytes.get(range);
        Some(Stamp {
            track: u32::from_be_bytes(field(4..8)?.try_into().ok()?),
            number: u32::from_be_bytes(field(8..12)?.try_into().ok()?),
            sent_us: u64::from_be_bytes(field(12..20)?.try_into().ok()?),
        })
    }
}

/// Every stamp in `bytes`, in order.
pub fn scan(bytes: &[u8], mut found: impl FnMut(Stamp)) {
    let mut at = 0;
    while at + STAMP_LEN <= bytes.len() {
        match bytes[at..].windows(MAGIC.len()).position(|w| w == MAGIC) {
            Some(offset) => {
                let start = at + offset;
                match Stamp::read(&bytes[start..]) {
                    Some(stamp) => {
                        found(stamp);
                        at = start + STAMP_LEN;
                    }
                    None => return,
                }
            }
            None => return,
        }
    }
}

/// Now, in µs since the Unix epoch: the clock stamps are written and read with.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The shape of a generated video track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoShape {
    pub bitrate_bps: u64,
    pub fps: u32,
}

impl VideoShape {
    /// Bytes of one frame (VP8 data, descriptors not counted); at least one stamp per packet.
    pub fn frame_bytes(&self) -> usize {
        let bytes = self.bitrate_bps / 8 / u64::from(self.fps.max(1));
        (bytes as usize).max(STAMP_LEN + 16)
    }

    /// RTP packets per frame: payloads of at most [`MAX_PAYLOAD`] bytes.
    pub fn packets_per_frame(&self) -> usize {
        self.frame_bytes().div_ceil(MAX_PAYLOAD - 1)
    }
}

/// The frame tag of a VP8 keyframe (key, version 0, shown), its start code and 640x360.
const KEY_TAG: [u8; 10] = [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01];
/// The frame tag of a delta frame (bit 0 set).
const DELTA_TAG: [u8; 3] = [0x11, 0x02, 0x00];

/// One VP8 frame as RTP payloads: each is a one-byte payload descriptor (S set on the
/// first, partition 0) and a chunk that starts with a stamp (after the frame tag on the
/// first), padded with zeros. The caller sets the marker bit on the last packet.
/// Packet `i` carries number `first_number + i`.
pub fn vp8_frame(
    shape: VideoShape,
    key: bool,
    track: u32,
    first_number: u32,
    sent_us: u64,
) -> Vec<Vec<u8>> {
    let count = shape.packets_per_frame();
    let total = shape.frame_bytes();
    let base = total / count;
    let mut left = total;
    (0..count)
        .map(|i| {
            let chunk = if i + 1 == count { left } else { base };
            left -= chunk;
            let mut p = Vec::with_capacity(chunk + 1);
            p.push(if i == 0 { 0x10 } else { 0x00 });
            if i == 0 {
                p.extend_from_slice(if key { &KEY_TAG } else { &DELTA_TAG });
            }
            Stamp {
                track,
                number: first_number + i as u32,
                sent_us,
            }
            .write(&mut p);
            p.resize((chunk + 1).max(p.len()), 0);
            p
        })
        .collect()
}

/// One Opus packet: a TOC byte (CELT fullband 20 ms, one frame), a stamp, zero padding.
pub fn opus_packet(track: u32, number: u32, sent_us: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(OPUS_BYTES);
    p.push(0xfc);
    Stamp {
        track,
        number,
        sent_us,
    }
    .write(&mut p);
    p.resize(OPUS_BYTES, 0);
    p
}

/// The length of the VP8 payload descriptor at the start of `payload` (RFC 7741 §4.2), or
/// `None` when the payload is too short to hold it.
pub fn vp8_descriptor_len(payload: &[u8]) -> Option<usize> {
    let first = *payload.first()?;
    if first & 0x80 == 0 {
        return Some(1);
    }
    let ext = *payload.get(1)?;
    let mut len = 2;
    if ext & 0x80 != 0 {
        // PictureID: 15 bits when M is set, else 7.
        let picture = *payload.get(len)?;
        len += if picture & 0x80 != 0 { 2 } else { 1 };
    }
    if ext & 0x40 != 0 {
        len += 1; // TL0PICIDX
    }
    if ext & 0x30 != 0 {
        len += 1; // TID/Y/KEYIDX
    }
    (len <= payload.len()).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamps(bytes: &[u8]) -> Vec<Stamp> {
        let mut found = Vec::new();
        scan(bytes, |s| found.push(s));
        found
    }

    #[test]
    fn a_frame_at_the_reference_rate_is_two_packets_with_one_stamp_each() {
        let shape = VideoShape {
            bitrate_bps: 500_000,
            fps: 30,
        };
        let packets = vp8_frame(shape, true, 7, 100, 123_456);
        assert_eq!(packets.len(), 2);
        assert!(packets.iter().all(|p| p.len() <= MAX_PAYLOAD));
        assert_eq!(packets[0][0], 0x10, "S bit on the first packet");
        assert_eq!(packets[1][0], 0x00);
        assert_eq!(&packets[0][1..4], &KEY_TAG[..3]);
        let bytes: usize = packets.iter().map(|p| p.len() - 1).sum();
        assert_eq!(bytes, shape.frame_bytes());
        // Reassembled without descriptors, as a subscriber does.
        let frame: Vec<u8> = packets.iter().flat_map(|p| p[1..].to_vec()).collect();
        let numbers: Vec<u32> = stamps(&frame).iter().map(|s| s.number).collect();
        assert_eq!(numbers, [100, 101]);
        assert!(
            stamps(&frame)
                .iter()
                .all(|s| s.track == 7 && s.sent_us == 123_456)
        );
    }

    #[test]
    fn stamps_survive_any_repacketization() {
        let shape = VideoShape {
            bitrate_bps: 2_000_000,
            fps: 30,
        };
        let packets = vp8_frame(shape, false, 1, 0, 9);
        let frame: Vec<u8> = packets.iter().flat_map(|p| p[1..].to_vec()).collect();
        for size in [7, 300, 1000, 1200] {
            let mut joined = Vec::new();
            for chunk in frame.chunks(size) {
                joined.extend_from_slice(chunk);
            }
            assert_eq!(stamps(&joined).len(), packets.len());
        }
    }

    #[test]
    fn opus_carries_one_stamp() {
        let p = opus_packet(3, 42, 77);
        assert_eq!(p.len(), OPUS_BYTES);
        assert_eq!(
            stamps(&p),
            [Stamp {
                track: 3,
                number: 42,
                sent_us: 77
            }]
        );
    }

    #[test]
    fn descriptor_lengths() {
        assert_eq!(vp8_descriptor_len(&[0x10, 0]), Some(1));
        // X, I with a 15-bit picture id.
        assert_eq!(vp8_descriptor_len(&[0x90, 0x80, 0x81, 0x02, 0]), Some(4));
        // X, I (7 bit), L, T.
        assert_eq!(
            vp8_descriptor_len(&[0x90, 0xe0, 0x05, 0x01, 0x20, 0]),
            Some(5)
        );
        assert_eq!(vp8_descriptor_len(&[0x90]), None);
        assert_eq!(vp8_descriptor_len(&[]), None);
    }
}
