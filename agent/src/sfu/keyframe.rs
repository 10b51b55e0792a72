//! Whether a depacketized frame is a keyframe, for simulcast switching. Only VP8 and H.264
//! are forwarded with layer switching; other codecs report `false` and never switch.

use str0m::format::Codec;

pub fn is_keyframe(codec: Codec, frame: &[u8]) -> bool {
    match codec {
        // RFC 6386 §9.1: bit 0 of the frame tag is 0 for a key frame.
        Codec::Vp8 => frame.first().is_some_and(|b| b & 0x01 == 0),
        // An IDR slice (5) or a sequence parameter set (7) in the Annex B stream.
        Codec::H264 => annex_b_nal_types(frame).any(|t| t == 5 || t == 7),
        _ => false,
    }
}

fn annex_b_nal_types(frame: &[u8]) -> impl Iterator<Item = u8> + '_ {
    frame
        .windows(4)
        .filter(|w| w[0] == 0 && w[1] == 0 && w[2] == 1)
        .map(|w| w[3] & 0x1f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_frame_tag() {
        assert!(is_keyframe(Codec::Vp8, &[0x10, 0x02]));
        assert!(!is_keyframe(Codec::Vp8, &[0x11, 0x02]));
        assert!(!is_keyframe(Codec::Vp8, &[]));
    }

    #[test]
    fn h264_idr_or_sps() {
        assert!(is_keyframe(
            Codec::H264,
            &[0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x65]
        ));
        assert!(!is_keyframe(Codec::H264, &[0, 0, 0, 1, 0x41, 0x9a]));
    }
}
