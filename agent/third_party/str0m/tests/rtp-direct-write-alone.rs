//! ion-cluster patch 4: RTP written through `DirectApi::write_rtp` is released by a timeout
//! that moves only its stream, and sent without a walk of ICE, DTLS and SCTP. Every packet
//! must still arrive, in order, while the receiver's reports come back between writes.

use std::time::{Duration, Instant};

use netem::Input as NetemInput;
use str0m::media::MediaKind;
use str0m::rtp::{RtpWrite, Ssrc};
use str0m::{Event, Input, Output, RtcError};

mod common;
use common::{PendingPacket, TestRtc, connect_l_r, init_crypto_default, init_log, progress};

#[test]
pub fn rtp_written_alone_arrives_in_order() -> Result<(), RtcError> {
    init_log();
    init_crypto_default();

    let (mut l, mut r) = connect_l_r();

    let audio = "aud".into();
    let video = "vid".into();
    l.direct_api().declare_media(audio, MediaKind::Audio);
    l.direct_api().declare_media(video, MediaKind::Video);
    l.direct_api()
        .declare_stream_tx(Ssrc::from(42), None, audio, None);
    l.direct_api()
        .declare_stream_tx(Ssrc::from(43), None, video, None);
    r.direct_api().declare_media(audio, MediaKind::Audio);
    r.direct_api().declare_media(video, MediaKind::Video);

    let max = l.last.max(r.last);
    l.last = max;
    r.last = max;

    let opus = l.params_opus().pt();
    let vp8 = l.params_vp8().pt();
    let stray = RtpWrite::new(opus, 1.into(), 0, l.last, vec![0]);
    assert!(
        !l.direct_api().write_rtp("nope".into(), None, stray),
        "no such stream"
    );

    // 3 s of 50 audio and 50 video packets a second, written as an SFU forwards them:
    // write, hand the Rtc a timeout, and poll out what it sends.
    let count = 150u64;
    let mut written = 0u64;
    let mut write_at = l.last;
    while l.duration() < Duration::from_secs(5) {
        while written < count && l.last >= write_at {
            let now = l.last;
            let seq_no = (1000 + written).into();
            let time = (written * 960) as u32;
            let payload = (written as u32).to_be_bytes().to_vec();
            let audio_write = RtpWrite::new(opus, seq_no, time, now, payload.clone());
            let video_write = RtpWrite::new(vp8, seq_no, time * 3, now, payload).nackable(true);
            assert!(l.direct_api().write_rtp(audio, None, audio_write));
            assert!(l.direct_api().write_rtp(video, None, video_write));
            assert_eq!(
                send_now(&mut l, &mut r, now)?,
                2,
                "packet {written} sent at once"
            );
            written += 1;
            write_at += Duration::from_millis(20);
        }
        progress(&mut l, &mut r)?;
    }
    assert_eq!(written, count);

    for (ssrc, name) in [(42, "audio"), (43, "video")] {
        let received: Vec<u32> = r
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::RtpPacket(p) if p.header.ssrc == Ssrc::from(ssrc) => {
                    Some(u32::from_be_bytes(p.payload[..4].try_into().unwrap()))
                }
                _ => None,
            })
            .collect();
        let expected: Vec<u32> = (0..count as u32).collect();
        assert_eq!(received, expected, "every {name} packet, in order");
    }

    Ok(())
}

/// Hands `l` a timeout at `now` and polls it until it wants another, as an SFU's loop does;
/// what it sends goes to `r`. Returns how many RTP packets (not RTCP) it sent.
fn send_now(l: &mut TestRtc, r: &mut TestRtc, now: Instant) -> Result<usize, RtcError> {
    l.rtc.handle_input(Input::Timeout(now))?;
    let mut rtp = 0;
    loop {
        match l.rtc.poll_output()? {
            Output::Transmit(t) => {
                // RTCP packet types are 200-206; these RTP payload types are dynamic (96+).
                if t.contents[1] & 0x7f >= 96 {
                    rtp += 1;
                }
                let packet = PendingPacket {
                    proto: t.proto,
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.to_vec(),
                };
                r.pending.handle_input(NetemInput::Packet(now, packet));
            }
            Output::Event(e) => l.events.push((now, e)),
            Output::Timeout(_) => return Ok(rtp),
        }
    }
}
