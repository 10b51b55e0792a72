//! The publisher's generators: the tasks that write a participant's generated VP8 and Opus
//! RTP at real rates (the bytes come from `media.rs`) and log every send, until aborted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rtc::rtp::extension::HeaderExtension;
use rtc::shared::marshal::{Marshal, MarshalSize};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

use super::media::{
    AUDIO_CLOCK, AUDIO_PPS, VIDEO_CLOCK, VideoShape, now_us, opus_packet, vp8_frame,
};
use super::pc::{self, OPUS_PT, VP8_PT};
use super::peer::Publish;

/// The rids of a simulcast track's two layers, as ion-sdk-js names its top and bottom ones.
pub const TOP_RID: &str = "f";
pub const LOWER_RID: &str = "q";
/// The header extensions that name a packet's m-line and simulcast layer (RFC 8843, 8852):
/// the SDP of a simulcast track lists no SSRCs, so the SFU tells the layers apart by these.
const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RTP_STREAM_ID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

/// One simulcast layer of a track: the m-line it is sent on and its rid.
#[derive(Debug, Clone)]
pub struct Layer {
    pub mid: String,
    pub rid: &'static str,
}

/// The value of an SDES header extension (MID, rid): the text's bytes.
struct Sdes(String);

impl MarshalSize for Sdes {
    fn marshal_size(&self) -> usize {
        self.0.len()
    }
}

impl Marshal for Sdes {
    fn marshal_to(&self, buf: &mut [u8]) -> rtc::shared::error::Result<usize> {
        let bytes = self.0.as_bytes();
        let Some(out) = buf.get_mut(..bytes.len()) else {
            return Err(rtc::shared::error::Error::Other(format!(
                "no room for the SDES value {:?}",
                self.0
            )));
        };
        out.copy_from_slice(bytes);
        Ok(bytes.len())
    }
}

fn sdes(uri: &'static str, value: &str) -> HeaderExtension {
    HeaderExtension::Custom {
        uri: uri.into(),
        extension: Box::new(Sdes(value.to_owned())),
    }
}

/// Writes one packet; a simulcast layer's carries its MID and rid.
async fn write(
    track: &TrackLocalStaticRTP,
    layer: Option<&Layer>,
    packet: rtc::rtp::packet::Packet,
) -> webrtc::error::Result<()> {
    match layer {
        None => track.write_rtp(packet).await,
        Some(layer) => {
            let extensions = [
                sdes(MID_URI, &layer.mid),
                sdes(RTP_STREAM_ID_URI, layer.rid),
            ];
            track.write_rtp_with_extensions(packet, &extensions).await
        }
    }
}

/// VP8 frames at `shape` until aborted; a keyframe every `keyframe_every` frames and on
/// request. `layer` names the simulcast layer this generator sends, if the track has layers.
pub async fn send_video(
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    layer: Option<Layer>,
    shape: VideoShape,
    keyframe_every: u32,
    publish: Publish,
    keyframe_wanted: Arc<AtomicBool>,
) {
    let mut ticker =
        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(shape.fps.max(1))));
    // Late ticks are caught up, so a busy load generator still sends at the requested rate.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let step = VIDEO_CLOCK / shape.fps.max(1);
    let mut sequence = fastrand::u16(..);
    let mut timestamp = fastrand::u32(..);
    let mut frame: u32 = 0;
    loop {
        ticker.tick().await;
        let key =
            frame.is_multiple_of(keyframe_every) || keyframe_wanted.swap(false, Ordering::Relaxed);
        let sent_us = now_us();
        let payloads = vp8_frame(
            shape,
            key,
            publish.index,
            publish.log.next_number(),
            sent_us,
        );
        let count = payloads.len();
        let mut first_sent = false;
        for (i, payload) in payloads.into_iter().enumerate() {
            let packet = pc::rtp_packet(VP8_PT, sequence, timestamp, ssrc, i + 1 == count, payload);
            match write(&track, layer.as_ref(), packet).await {
                Ok(()) => {
                    first_sent |= i == 0;
                    sequence = sequence.wrapping_add(1);
                }
                // Fails until negotiation has bound the track: nothing of the frame left.
                Err(_) if i == 0 => break,
                Err(_) => sequence = sequence.wrapping_add(1),
            }
        }
        if first_sent {
            publish.log.record(count, sent_us);
            frame = frame.wrapping_add(1);
            timestamp = timestamp.wrapping_add(step);
        } else if key {
            keyframe_wanted.store(true, Ordering::Relaxed);
        }
    }
}

/// Opus packets at 50/s until aborted.
pub async fn send_audio(track: Arc<TrackLocalStaticRTP>, ssrc: u32, publish: Publish) {
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / u64::from(AUDIO_PPS)));
    // Late ticks are caught up, so a busy load generator still sends at the requested rate.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let step = AUDIO_CLOCK / AUDIO_PPS;
    let mut sequence = fastrand::u16(..);
    let mut timestamp = fastrand::u32(..);
    loop {
        ticker.tick().await;
        let sent_us = now_us();
        let payload = opus_packet(publish.index, publish.log.next_number(), sent_us);
        if track
            .write_rtp(pc::rtp_packet(
                OPUS_PT, sequence, timestamp, ssrc, false, payload,
            ))
            .await
            .is_ok()
        {
            publish.log.record(1, sent_us);
            sequence = sequence.wrapping_add(1);
            timestamp = timestamp.wrapping_add(step);
        }
    }
}
