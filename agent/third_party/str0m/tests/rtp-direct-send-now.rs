//! ion-cluster patch 12: RTP sent through `DirectApi::send_rtp` is sealed at once, without
//! the send queue, a timeout or a poll. It must be the packet `poll_output` would have sent:
//! in order, MID until the receiver reports on the SSRC, in the resend buffer for NACKs, and
//! never ahead of a packet already queued on its stream.
//!
//! ion-cluster patch 23: `DirectApi::send_rtp_at` takes the place where the last send found
//! the stream; a place is checked on use, so a stale or wrong one only costs a lookup.
//!
//! ion-cluster patch 24: a viewer's RTCP runs the sender's timeout pass only when a timer is
//! due or the report queued resends.

use std::time::{Duration, Instant};

use netem::{Input as NetemInput, NetemConfig, Probability, RandomLoss};
use str0m::change::{RtpSend, SendPlace};
use str0m::media::{MediaKind, Mid};
use str0m::net::{Receive, Transmit};
use str0m::rtp::{RawPacket, RtpWrite, Ssrc};
use str0m::{Event, Input, Output, RtcError};

mod common;
use common::{PendingPacket, TestRtc, connect_l_r, init_crypto_default, init_log, progress};

const AUDIO_SSRC: u32 = 42;
const VIDEO_SSRC: u32 = 43;
const VIDEO_RTX_SSRC: u32 = 44;

/// Two connected `Rtc`s; `l` sends audio (no RTX) and video (with RTX) to `r`.
fn connected() -> (TestRtc, TestRtc, Mid, Mid) {
    let (mut l, mut r) = connect_l_r();
    let audio: Mid = "aud".into();
    let video: Mid = "vid".into();
    l.direct_api().declare_media(audio, MediaKind::Audio);
    l.direct_api().declare_media(video, MediaKind::Video);
    l.direct_api()
        .declare_stream_tx(AUDIO_SSRC.into(), None, audio, None);
    l.direct_api()
        .declare_stream_tx(VIDEO_SSRC.into(), Some(VIDEO_RTX_SSRC.into()), video, None);
    r.direct_api().declare_media(audio, MediaKind::Audio);
    r.direct_api().declare_media(video, MediaKind::Video);
    r.direct_api()
        .expect_stream_rx(VIDEO_SSRC.into(), Some(VIDEO_RTX_SSRC.into()), video, None);
    let max = l.last.max(r.last);
    l.last = max;
    r.last = max;
    (l, r, audio, video)
}

/// Hands `transmit` to `r`'s side of the network, as `progress` does with `l`'s output.
fn deliver(r: &mut TestRtc, now: Instant, transmit: Transmit) {
    let packet = PendingPacket {
        proto: transmit.proto,
        source: transmit.source,
        destination: transmit.destination,
        contents: transmit.contents.to_vec(),
    };
    r.pending.handle_input(NetemInput::Packet(now, packet));
}

/// Polls `l` until it wants a timeout, sending what it sends to `r`. Returns that timeout
/// and how many RTP packets (not RTCP) went.
fn poll_until_timeout(
    l: &mut TestRtc,
    r: &mut TestRtc,
    now: Instant,
) -> Result<(Instant, usize), RtcError> {
    let mut rtp = 0;
    loop {
        match l.rtc.poll_output()? {
            Output::Transmit(t) => {
                // RTCP packet types are 200-206; these RTP payload types are dynamic (96+).
                if t.contents[1] & 0x7f >= 96 {
                    rtp += 1;
                }
                deliver(r, now, t);
            }
            Output::Event(e) => l.events.push((now, e)),
            Output::Timeout(at) => return Ok((at, rtp)),
        }
    }
}

/// Gives `l` a timeout at `now` and polls it until it wants another, sending what it
/// sends to `r`. Returns how many RTP packets (not RTCP) went.
fn release(l: &mut TestRtc, r: &mut TestRtc, now: Instant) -> Result<usize, RtcError> {
    l.rtc.handle_input(Input::Timeout(now))?;
    Ok(poll_until_timeout(l, r, now)?.1)
}

/// The payload counters `r` received on `ssrc`, in arrival order.
fn received(r: &TestRtc, ssrc: u32) -> Vec<u32> {
    r.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::RtpPacket(p) if p.header.ssrc == Ssrc::from(ssrc) => {
                Some(u32::from_be_bytes(p.payload[..4].try_into().unwrap()))
            }
            _ => None,
        })
        .collect()
}

#[test]
pub fn rtp_sent_at_once_arrives_in_order_with_mid_until_acked() -> Result<(), RtcError> {
    init_log();
    init_crypto_default();
    let (mut l, mut r, audio, video) = connected();
    let opus = l.params_opus().pt();
    let vp8 = l.params_vp8().pt();

    let now = l.last;
    let stray = RtpWrite::new(opus, 1.into(), 0, now, vec![0]);
    assert!(
        matches!(
            l.direct_api().send_rtp("nope".into(), None, now, stray),
            RtpSend::NoStream
        ),
        "no such stream"
    );

    // 3 s of 50 audio and 50 video packets a second, sent as an SFU fans out: each
    // write hands back its datagram, or queues it until the stream has had its first
    // timeout.
    let count = 150u64;
    let mut at_once = 0;
    let mut written = 0u64;
    let mut write_at = l.last;
    while l.duration() < Duration::from_secs(5) {
        while written < count && l.last >= write_at {
            let now = l.last;
            let seq_no = (1000 + written).into();
            let time = (written * 960) as u32;
            let payload = (written as u32).to_be_bytes().to_vec();
            let writes = [
                (
                    audio,
                    RtpWrite::new(opus, seq_no, time, now, payload.clone()),
                ),
                (
                    video,
                    RtpWrite::new(vp8, seq_no, time * 3, now, payload).nackable(true),
                ),
            ];
            let mut queued = 0;
            for (mid, write) in writes {
                match l.direct_api().send_rtp(mid, None, now, write) {
                    RtpSend::Sent(t) => {
                        at_once += 1;
                        deliver(&mut r, now, t);
                    }
                    RtpSend::Queued => queued += 1,
                    other => panic!("packet {written} on {mid}: {other:?}"),
                }
            }
            assert_eq!(
                release(&mut l, &mut r, now)?,
                queued,
                "packet {written}: what was sent at once is not sent again"
            );
            written += 1;
            write_at += Duration::from_millis(20);
        }
        progress(&mut l, &mut r)?;
    }
    assert_eq!(written, count);
    assert!(
        at_once >= 2 * count - 4,
        "{at_once} of {} at once",
        2 * count
    );

    let expected: Vec<u32> = (0..count as u32).collect();
    assert_eq!(
        received(&r, AUDIO_SSRC),
        expected,
        "every audio packet, in order"
    );
    assert_eq!(
        received(&r, VIDEO_SSRC),
        expected,
        "every video packet, in order"
    );

    // The MID goes on each SSRC's packets until a receiver report on it comes back.
    let video_mids: Vec<Option<Mid>> = r
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::RtpPacket(p) if p.header.ssrc == Ssrc::from(VIDEO_SSRC) => {
                Some(p.header.ext_vals.mid)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        video_mids.first(),
        Some(&Some(video)),
        "the first carries the MID"
    );
    assert_eq!(
        video_mids.last(),
        Some(&None),
        "the last, after reports, does not"
    );
    Ok(())
}

#[test]
pub fn a_packet_sent_at_once_is_resent_from_the_buffer() -> Result<(), RtcError> {
    init_log();
    init_crypto_default();
    let (mut l, mut r, _audio, video) = connected();
    let params = l.params_vp8();
    let vp8 = params.pt();
    let rtx_pt = params.resend().expect("VP8 has an RTX payload type");

    let lost = 5u32;
    for index in 0..20u32 {
        if index == lost {
            r.set_netem(NetemConfig::new().loss(RandomLoss::new(Probability::ONE)));
        }
        let now = l.last;
        let write = RtpWrite::new(
            vp8,
            (2000 + index as u64).into(),
            index * 3000,
            now,
            index.to_be_bytes().to_vec(),
        )
        .nackable(true);
        match l.direct_api().send_rtp(video, None, now, write) {
            RtpSend::Sent(t) => deliver(&mut r, now, t),
            RtpSend::Queued => {
                release(&mut l, &mut r, now)?;
            }
            other => panic!("packet {index}: {other:?}"),
        }
        if index == lost {
            r.set_netem(NetemConfig::new());
        }
        progress(&mut l, &mut r)?;
    }

    let original_seq = ((2000 + lost) as u16).to_be_bytes();
    loop {
        let resent = r.events.iter().any(|(_, e)| {
            matches!(e.as_raw_packet(), Some(RawPacket::RtpRx(header, payload))
                if header.payload_type == rtx_pt && payload.starts_with(&original_seq))
        });
        if resent {
            break;
        }
        assert!(
            l.duration() < Duration::from_secs(10),
            "the lost packet is resent over RTX from the buffer"
        );
        progress(&mut l, &mut r)?;
    }
    assert!(
        received(&r, VIDEO_SSRC).contains(&lost),
        "the resend repairs the lost packet"
    );
    Ok(())
}

#[test]
pub fn a_packet_is_not_sent_ahead_of_one_queued_on_its_stream() -> Result<(), RtcError> {
    init_log();
    init_crypto_default();
    let (mut l, mut r, audio, _video) = connected();
    let opus = l.params_opus().pt();

    // Let the stream have its first timeout, so that a write can go at once.
    let now = l.last;
    let first = RtpWrite::new(opus, 1.into(), 0, now, 0u32.to_be_bytes().to_vec());
    if let RtpSend::Sent(t) = l.direct_api().send_rtp(audio, None, now, first) {
        deliver(&mut r, now, t);
    }
    release(&mut l, &mut r, now)?;

    // One queued, through `write_rtp` and then through the stream, then one through
    // `send_rtp`, before any timeout.
    let mut counter = 0u32;
    let mut write = |now| {
        counter += 1;
        RtpWrite::new(
            opus,
            (1 + counter as u64).into(),
            960 * counter,
            now,
            counter.to_be_bytes().to_vec(),
        )
    };
    for through_stream in [false, true] {
        let queued = write(now);
        if through_stream {
            let mut api = l.direct_api();
            api.stream_tx(&AUDIO_SSRC.into()).unwrap().write_rtp(queued);
        } else {
            assert!(l.direct_api().write_rtp(audio, None, queued));
        }
        let behind = write(now);
        assert!(
            matches!(
                l.direct_api().send_rtp(audio, None, now, behind),
                RtpSend::Queued
            ),
            "a write behind a queued packet waits for it (through the stream: {through_stream})"
        );
        assert_eq!(release(&mut l, &mut r, now)?, 2, "both go on the timeout");
    }

    // With nothing queued any more, the next one goes at once.
    match l.direct_api().send_rtp(audio, None, now, write(now)) {
        RtpSend::Sent(t) => deliver(&mut r, now, t),
        other => panic!("the stream is clear, yet {other:?}"),
    }
    for _ in 0..20 {
        progress(&mut l, &mut r)?;
    }
    assert_eq!(
        received(&r, AUDIO_SSRC),
        vec![0, 1, 2, 3, 4, 5],
        "in the order written"
    );
    Ok(())
}

/// ion-cluster patch 13: after a packet sent at once, `Rtc::settled_timeout` answers what a
/// poll would; after input from the network or a timeout, it asks for the poll. (Each thing
/// that makes it ask, alone, is unit-tested in `src/poll.rs`.)
#[test]
pub fn settled_timeout_is_the_polled_timeout_and_only_when_nothing_waits() -> Result<(), RtcError> {
    init_log();
    init_crypto_default();
    let (mut l, mut r, audio, _video) = connected();
    let opus = l.params_opus().pt();
    let now = l.last;
    let write = |n: u32| {
        RtpWrite::new(
            opus,
            (1 + n as u64).into(),
            960 * n,
            now,
            n.to_be_bytes().to_vec(),
        )
    };

    // The stream's first timeout, then a poll to the end.
    assert!(l.direct_api().write_rtp(audio, None, write(0)));
    release(&mut l, &mut r, now)?;
    let (polled, _) = poll_until_timeout(&mut l, &mut r, now)?;
    assert_eq!(
        l.rtc.settled_timeout(),
        Some(polled),
        "nothing waits after the poll"
    );

    // A packet sent at once leaves nothing to poll, and the timeout as it was.
    match l.direct_api().send_rtp(audio, None, now, write(1)) {
        RtpSend::Sent(t) => deliver(&mut r, now, t),
        other => panic!("the stream is clear, yet {other:?}"),
    }
    assert_eq!(
        l.rtc.settled_timeout(),
        Some(polled),
        "a send at once moves nothing"
    );
    assert_eq!(
        poll_until_timeout(&mut l, &mut r, now)?.0,
        polled,
        "and a poll agrees"
    );

    // A timeout, a datagram from the peer, or a disconnect: poll.
    l.rtc.handle_input(Input::Timeout(now))?;
    assert_eq!(l.rtc.settled_timeout(), None, "after a timeout");
    poll_until_timeout(&mut l, &mut r, now)?;
    assert!(l.rtc.settled_timeout().is_some());
    // `r` reports on what it received once its timers run a few seconds on.
    let later = now + Duration::from_secs(3);
    r.rtc.handle_input(Input::Timeout(later))?;
    let report = loop {
        match r.rtc.poll_output()? {
            Output::Transmit(t) => break t,
            Output::Event(_) => {}
            Output::Timeout(_) => panic!("r sent nothing to l"),
        }
    };
    receive(&mut l.rtc, later, &report)?;
    assert_eq!(
        l.rtc.settled_timeout(),
        None,
        "after a datagram from the peer"
    );
    poll_until_timeout(&mut l, &mut r, later)?;
    l.rtc.disconnect();
    assert_eq!(
        l.rtc.settled_timeout(),
        None,
        "a closed Rtc has nothing to say"
    );
    Ok(())
}

/// Where the video payloads' counter starts in `a_kept_place_…`; audio's starts at 0.
const VIDEO_PAYLOADS: u32 = 1_000_000;

#[test]
pub fn a_kept_place_sends_on_its_stream_and_a_wrong_place_is_corrected() -> Result<(), RtcError> {
    init_log();
    init_crypto_default();
    let (mut l, mut r, audio, video) = connected();
    let opus = l.params_opus().pt();
    let vp8 = l.params_vp8().pt();

    let mut audio_place = SendPlace::UNKNOWN;
    let mut video_place = SendPlace::UNKNOWN;
    let mut audio_sent = Vec::new();
    let mut video_sent = Vec::new();
    let mut k = 0u32;
    let mut write_at = l.last;
    while l.duration() < Duration::from_secs(3) {
        if l.last >= write_at && k < 60 {
            let now = l.last;
            let seq_no = (2000 + u64::from(k)).into();
            // Each stream's payloads are its own, so a packet sent on the other's shows.
            let audio_payload = k.to_be_bytes().to_vec();
            let video_payload = (VIDEO_PAYLOADS + k).to_be_bytes().to_vec();
            // Every tenth packet each stream is given the other's place, as a caller
            // whose places went stale after a renegotiation would.
            let swap = k % 10 == 9;
            let (audio_at, video_at) = if swap {
                (&mut video_place.clone(), &mut audio_place.clone())
            } else {
                (&mut audio_place, &mut video_place)
            };
            let writes = [
                (
                    audio,
                    audio_at,
                    RtpWrite::new(opus, seq_no, k * 960, now, audio_payload),
                ),
                (
                    video,
                    video_at,
                    RtpWrite::new(vp8, seq_no, k * 2880, now, video_payload),
                ),
            ];
            let mut queued = 0;
            for (mid, place, write) in writes {
                let before = *place;
                match l.direct_api().send_rtp_at(mid, None, place, now, write) {
                    RtpSend::Sent(t) => deliver(&mut r, now, t),
                    RtpSend::Queued => queued += 1,
                    other => panic!("packet {k} on {mid}: {other:?}"),
                }
                assert_ne!(
                    *place,
                    SendPlace::UNKNOWN,
                    "packet {k}: the place is learnt"
                );
                if swap {
                    assert_ne!(
                        *place, before,
                        "packet {k}: the other stream's place is corrected"
                    );
                }
            }
            assert_eq!(
                release(&mut l, &mut r, now)?,
                queued,
                "packet {k}: sent once"
            );
            audio_sent.push(k);
            video_sent.push(VIDEO_PAYLOADS + k);
            if swap {
                assert_ne!(audio_place, video_place, "each stream keeps its own place");
            }
            k += 1;
            write_at += Duration::from_millis(20);
        }
        progress(&mut l, &mut r)?;
    }
    assert_eq!(k, 60);
    assert_eq!(
        received(&r, AUDIO_SSRC),
        audio_sent,
        "audio on audio's SSRC, in order"
    );
    assert_eq!(
        received(&r, VIDEO_SSRC),
        video_sent,
        "video on video's SSRC, in order"
    );

    // Asked ahead, a place is what sending learnt.
    assert_eq!(l.direct_api().send_place(audio, None), audio_place);
    assert_eq!(l.direct_api().send_place(video, None), video_place);
    assert_eq!(
        l.direct_api().send_place("nope".into(), None),
        SendPlace::UNKNOWN
    );

    // A place of an m-line that does not exist is kept, and nothing is sent.
    let now = l.last;
    let mut place = audio_place;
    let stray = RtpWrite::new(opus, 1.into(), 0, now, vec![0]);
    assert!(matches!(
        l.direct_api()
            .send_rtp_at("nope".into(), None, &mut place, now, stray),
        RtpSend::NoStream
    ));
    assert_eq!(place, audio_place);
    Ok(())
}

/// Gives `rtc` each timeout that falls due by `now` and polls it until its next timeout lies
/// beyond `now`. Returns what it sent.
fn settle(rtc: &mut str0m::Rtc, now: Instant) -> Result<Vec<Transmit>, RtcError> {
    let mut sent = vec![];
    for _ in 0..1000 {
        match rtc.poll_output()? {
            Output::Transmit(t) => sent.push(t),
            Output::Event(_) => {}
            Output::Timeout(at) if at <= now => rtc.handle_input(Input::Timeout(now))?,
            Output::Timeout(_) => return Ok(sent),
        }
    }
    panic!("the Rtc did not settle at {now:?}");
}

/// Gives `rtc` the datagram `t` as received at `now`, straight, not through the netem.
fn receive(rtc: &mut str0m::Rtc, now: Instant, t: &Transmit) -> Result<(), RtcError> {
    rtc.handle_input(Input::Receive(
        now,
        Receive {
            proto: t.proto,
            source: t.source,
            destination: t.destination,
            contents: (&t.contents[..]).try_into()?,
        },
    ))
}

/// What one datagram from the viewer did at the sender (ion-cluster patch 24).
struct Delivery {
    /// It was RTCP, not STUN (which drives ICE, and always runs the pass).
    rtcp: bool,
    /// It ran a whole timeout pass.
    pass: bool,
    /// The sender's poll right after it, with no timeout given, sent a resend over RTX.
    resent: bool,
}

/// An SFU's sender `l` and its viewer `r` on one clock: 3 s of 50 video packets a second
/// sent at once (`lost`, if given, never arrives), each side given its timeouts as they fall
/// due and the other's datagrams as they are sent. Every datagram from `r` reaches `l`
/// while `l` is settled with no timer due, the case where patch 24 leaves the timeout pass
/// out; `l` is then polled without a timeout before its due timers are given.
fn viewer_reports(
    lost: Option<u32>,
) -> Result<(TestRtc, TestRtc, Instant, Vec<Delivery>), RtcError> {
    let (mut l, mut r, _audio, video) = connected();
    let params = l.params_vp8();
    let vp8 = params.pt();
    let rtx_pt = params.resend().expect("VP8 has an RTX payload type");
    let mut now = l.last;
    let mut to_r = settle(&mut l.rtc, now)?;
    let mut deliveries = vec![];
    for index in 0..150u32 {
        now += Duration::from_millis(20);
        to_r.extend(settle(&mut l.rtc, now)?);
        let write = RtpWrite::new(
            vp8,
            (2000 + index as u64).into(),
            index * 1800,
            now,
            index.to_be_bytes().to_vec(),
        )
        .nackable(true);
        match l.direct_api().send_rtp(video, None, now, write) {
            RtpSend::Sent(t) if lost != Some(index) => to_r.push(t),
            RtpSend::Sent(_) => {}
            RtpSend::Queued if lost != Some(index) => to_r.extend(settle(&mut l.rtc, now)?),
            other => panic!("packet {index}: {other:?}"),
        }
        for t in to_r.drain(..) {
            receive(&mut r.rtc, now, &t)?;
        }
        for t in settle(&mut r.rtc, now)? {
            assert!(
                l.rtc.settled_timeout().is_some_and(|at| at > now),
                "the sender is settled with no timer due when the viewer's datagram arrives"
            );
            let passes = l.rtc.timeout_passes();
            receive(&mut l.rtc, now, &t)?;
            let pass = l.rtc.timeout_passes() > passes;
            let mut resent = false;
            loop {
                match l.rtc.poll_output()? {
                    Output::Transmit(t) => {
                        resent |= t.contents[1] & 0x7f == *rtx_pt;
                        to_r.push(t);
                    }
                    Output::Event(_) => {}
                    Output::Timeout(_) => break,
                }
            }
            // RTCP is version 2; STUN's first two bits are zero.
            let rtcp = t.contents[0] >> 6 == 2;
            deliveries.push(Delivery { rtcp, pass, resent });
            to_r.extend(settle(&mut l.rtc, now)?);
        }
    }
    Ok((l, r, now, deliveries))
}

#[test]
pub fn a_viewers_report_with_no_timer_due_runs_no_timeout_pass() -> Result<(), RtcError> {
    init_log();
    init_crypto_default();
    let (mut l, mut r, now, deliveries) = viewer_reports(None)?;
    let (reports, stun): (Vec<_>, Vec<_>) = deliveries.iter().partition(|d| d.rtcp);
    assert!(
        reports.len() >= 3,
        "the viewer reported {} times in 3 s",
        reports.len()
    );
    assert!(
        reports.iter().all(|d| !d.pass && !d.resent),
        "no report with no timer due ran a pass"
    );
    assert!(
        !stun.is_empty() && stun.iter().all(|d| d.pass),
        "STUN, which drives ICE, runs the pass"
    );

    // A report that arrives when a timer is due runs the pass, as a timeout would: the
    // poll after it has nothing due left.
    let (due, _) = poll_until_timeout(&mut l, &mut r, now)?;
    let later = due + Duration::from_secs(2);
    let report = settle(&mut r.rtc, later)?
        .pop()
        .expect("the viewer reports after 2 s");
    let passes = l.rtc.timeout_passes();
    receive(&mut l.rtc, due, &report)?;
    assert_eq!(
        l.rtc.timeout_passes(),
        passes + 1,
        "a due timer runs the pass"
    );
    let (next, _) = poll_until_timeout(&mut l, &mut r, due)?;
    assert!(next > due, "the due timer was handled with the report");
    Ok(())
}

#[test]
pub fn a_nack_with_no_timer_due_has_its_resend_sent_at_the_next_poll() -> Result<(), RtcError> {
    init_log();
    init_crypto_default();
    let (_l, _r, _now, deliveries) = viewer_reports(Some(5))?;
    let reports: Vec<_> = deliveries.iter().filter(|d| d.rtcp).collect();
    assert!(
        reports.iter().any(|d| d.pass && d.resent),
        "the NACK ran the pass and its resend went out at the poll after it"
    );
    assert!(
        reports.iter().filter(|d| d.pass).count() <= 2,
        "only the NACKs ran a pass"
    );
    Ok(())
}
