//! A packet forwarded to one subscriber, from the fan-out until the subscriber's poll seals it.
//!
//! The fan-out writes one entry per subscriber of a track into that subscriber's list, memory
//! that is out of the cache by then. An `RtpWrite` is 320 bytes, most of it header extension
//! slots a forwarded packet never fills; an entry here holds only what differs per subscriber,
//! the shared payload and the extensions that pass through, and the poll builds the
//! `RtpWrite` on its own stack.

use std::sync::Arc;
use std::time::Instant;

use str0m::change::SendPlace;
use str0m::media::{Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo, VideoOrientation};

/// One packet for one subscriber's m-line.
pub struct Forwarded {
    pub mid: Mid,
    /// Where the subscriber's str0m kept the m-line's stream when the fan-out ran.
    pub place: SendPlace,
    pub pt: Pt,
    pub seq_no: SeqNo,
    /// RTP time, already rewritten onto the subscriber's timeline.
    pub time: u32,
    pub wallclock: Instant,
    pub payload: Arc<[u8]>,
    pub marker: bool,
    /// The subscriber's NACKs are answered from str0m's send buffer; audio is not worth
    /// resending.
    pub nackable: bool,
    pub extensions: MediaExtensions,
}

impl Forwarded {
    /// The write str0m seals, the m-line it goes out on and where its stream was.
    pub fn into_write(self) -> (Mid, SendPlace, RtpWrite) {
        let write = RtpWrite::new(
            self.pt,
            self.seq_no,
            self.time,
            self.wallclock,
            self.payload,
        )
        .marker(self.marker)
        .ext_vals(self.extensions.values())
        .nackable(self.nackable);
        (self.mid, self.place, write)
    }
}

/// The header extensions a forwarded packet keeps: what describes the media itself. str0m
/// sets the subscriber's own MID and RID; the rest (send times, transport sequence numbers)
/// belonged to the publisher's hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaExtensions {
    audio_level: Option<i8>,
    voice_activity: Option<bool>,
    video_orientation: Option<VideoOrientation>,
}

impl MediaExtensions {
    pub fn of(incoming: &ExtensionValues) -> Self {
        Self {
            audio_level: incoming.audio_level,
            voice_activity: incoming.voice_activity,
            video_orientation: incoming.video_orientation,
        }
    }

    pub fn values(self) -> ExtensionValues {
        ExtensionValues {
            audio_level: self.audio_level,
            voice_activity: self.voice_activity,
            video_orientation: self.video_orientation,
            ..ExtensionValues::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_media_extensions_pass_and_the_publishers_hop_does_not() {
        let incoming = ExtensionValues {
            audio_level: Some(-30),
            voice_activity: Some(true),
            video_orientation: Some(VideoOrientation::Deg90),
            abs_send_time: Some(Instant::now()),
            transport_cc: Some(7),
            mid: Some(Mid::from("3")),
            ..ExtensionValues::default()
        };
        let kept = MediaExtensions::of(&incoming).values();
        assert_eq!(kept.audio_level, Some(-30));
        assert_eq!(kept.voice_activity, Some(true));
        assert_eq!(kept.video_orientation, Some(VideoOrientation::Deg90));
        assert_eq!(kept.abs_send_time, None);
        assert_eq!(kept.transport_cc, None);
        assert_eq!(kept.mid, None);
    }

    #[test]
    fn an_entry_is_a_fraction_of_the_write_it_makes() {
        // The point of the type: the fan-out's store per subscriber stays small.
        assert!(
            std::mem::size_of::<Forwarded>() * 3 <= std::mem::size_of::<RtpWrite>(),
            "Forwarded is {} bytes, RtpWrite {}",
            std::mem::size_of::<Forwarded>(),
            std::mem::size_of::<RtpWrite>()
        );
    }
}
