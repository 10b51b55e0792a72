//! The publisher's generators: the tasks that write a participant's generated VP8 and Opus
//! RTP at real rates (the bytes come from `media.rs`) and log every send, until aborted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

use super::media::{
    AUDIO_CLOCK, AUDIO_PPS, VIDEO_CLOCK, VideoShape, now_us, opus_packet, vp8_frame,
};
use super::pc::{self, OPUS_PT, VP8_PT};
use super::peer::Publish;

/// VP8 frames at `shape` until aborted; a keyframe every `keyframe_every` frames and on
/// request.
pub async fn send_video(
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
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
            match track.write_rtp(packet).await {
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
