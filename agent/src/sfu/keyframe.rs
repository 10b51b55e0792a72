//! Whether an RTP packet starts a keyframe, for simulcast switching: a subscriber may move to
//! another layer only where that layer's decoder can start. Read from the RTP payload, since
//! the agent forwards packets without reassembling frames. Only VP8 and H.264 switch layers;
//! other codecs report `false` and never switch.

use str0m::format::Codec;
use str0m::rtp::Vp8Descriptor;

pub fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => vp8_starts_keyframe(payload),
        Codec::H264 => h264_starts_keyframe(payload),
        _ => false,
    }
}

/// RFC 7741 §4.2: the payload descriptor, then, at the start of partition 0, the VP8 payload
/// header whose bit 0 (P, "inverse key frame flag") is 0 for a key frame. str0m parses the
/// descriptor; a malformed or truncated one starts nothing.
fn vp8_starts_keyframe(payload: &[u8]) -> bool {
    Vp8Descriptor::parse(payload).is_ok_and(|descriptor| descriptor.starts_keyframe(payload))
}

/// RFC 6184 §5.6–5.8: an IDR slice (5) or a sequence parameter set (7), alone, inside a
/// STAP-A aggregate, or as the first fragment of an FU-A.
fn h264_starts_keyframe(payload: &[u8]) -> bool {
    let is_key = |nal_type: u8| nal_type == 5 || nal_type == 7;
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1f {
        24 => {
            let mut rest = &payload[1..];
            while rest.len() >= 3 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                if is_key(rest[2] & 0x1f) {
                    return true;
                }
                rest = rest.get(2 + size..).unwrap_or_default();
            }
            false
        }
        28 => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && is_key(fu & 0x1f)),
        nal_type => is_key(nal_type),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn vp8_descriptor_without_extensions() {
        // S=1, PID=0, then a key frame tag (P=0) and a delta frame tag (P=1).
        assert!(starts_keyframe(Codec::Vp8, &[0x10, 0x10, 0x02]));
        assert!(!starts_keyframe(Codec::Vp8, &[0x10, 0x11, 0x02]));
        // Not the start of partition 0: a continuation of a key frame.
        assert!(!starts_keyframe(Codec::Vp8, &[0x00, 0x10, 0x02]));
        assert!(!starts_keyframe(Codec::Vp8, &[0x11, 0x10, 0x02]));
        assert!(!starts_keyframe(Codec::Vp8, &[]));
    }

    #[test]
    fn vp8_descriptor_with_picture_id_and_layers() {
        // X=1, S=1; I, L, T set; 15-bit PictureID; TL0PICIDX; TID byte; then the frame tag.
        let key = [0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x9c];
        assert!(starts_keyframe(Codec::Vp8, &key));
        let delta = [0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x9d];
        assert!(!starts_keyframe(Codec::Vp8, &delta));
        // 7-bit PictureID only.
        assert!(starts_keyframe(Codec::Vp8, &[0x90, 0x80, 0x12, 0x9c]));
        // Truncated after the extension byte.
        assert!(!starts_keyframe(Codec::Vp8, &[0x90, 0x80]));
    }

    #[test]
    fn h264_single_aggregate_and_fragment() {
        assert!(starts_keyframe(Codec::H264, &[0x65, 0x88]));
        assert!(starts_keyframe(Codec::H264, &[0x67, 0x42]));
        assert!(!starts_keyframe(Codec::H264, &[0x41, 0x9a]));
        // STAP-A: a PPS (8), then an SPS (7).
        assert!(starts_keyframe(
            Codec::H264,
            &[0x78, 0, 2, 0x68, 0xce, 0, 2, 0x67, 0x42]
        ));
        assert!(!starts_keyframe(Codec::H264, &[0x78, 0, 2, 0x68, 0xce]));
        // FU-A: start of an IDR slice; a middle fragment of one; start of a non-IDR slice.
        assert!(starts_keyframe(Codec::H264, &[0x7c, 0x85, 0x88]));
        assert!(!starts_keyframe(Codec::H264, &[0x7c, 0x05, 0x88]));
        assert!(!starts_keyframe(Codec::H264, &[0x7c, 0x81, 0x9a]));
    }

    #[test]
    fn other_codecs_never_switch() {
        assert!(!starts_keyframe(Codec::Opus, &[0x10, 0x10]));
    }

    proptest! {
        /// Whatever a client sends, reading it never panics.
        #[test]
        fn any_payload_is_read_without_panicking(payload in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = starts_keyframe(Codec::Vp8, &payload);
            let _ = starts_keyframe(Codec::H264, &payload);
        }
    }
}
