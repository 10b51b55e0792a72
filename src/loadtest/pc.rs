//! How a webrtc-rs PeerConnection of the load test (and of the test harness's peers) is built:
//! the VP8 and Opus codecs ion-sdk-js offers, the default interceptors plus a tap that hands
//! PLI/FIR to the application, and loopback-friendly settings (no mDNS, no ICE servers, one
//! UDP socket on the given address); and the two things both publishers do with its tracks:
//! build RTP packets and watch for keyframe requests.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::{
    Attribute, Interceptor, Packet as ChainPacket, Slot, StreamInfo, TaggedPacket,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, Registry,
    SettingEngineBuilder, register_default_interceptors,
};

use super::media::{AUDIO_CLOCK, VIDEO_CLOCK};
use super::peer::{ClientError, webrtc};

pub const VP8_PT: u8 = 96;
pub const OPUS_PT: u8 = 111;
/// RTX for VP8, as Chrome numbers it after VP8's 96.
pub const VP8_RTX_PT: u8 = 97;

/// A PeerConnection bound to `bind` (an IP address) that reports to `handler`. A publisher
/// PC taps keyframe requests, so its local tracks see PLI/FIR, and offers the MID and RTP
/// stream id extensions for video, which simulcast layers are told apart by. With `rtx`, it
/// also offers and accepts RTX for VP8.
pub async fn peer_connection<H: PeerConnectionEventHandler + 'static>(
    handler: Arc<H>,
    publisher: bool,
    rtx: bool,
    bind: std::net::IpAddr,
) -> Result<Arc<dyn PeerConnection>, ClientError> {
    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: vp8(),
                payload_type: VP8_PT,
            },
            RtpCodecKind::Video,
        )
        .map_err(webrtc("registering VP8"))?;
    if rtx {
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: vp8_rtx(),
                    payload_type: VP8_RTX_PT,
                },
                RtpCodecKind::Video,
            )
            .map_err(webrtc("registering RTX"))?;
    }
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus(),
                payload_type: OPUS_PT,
            },
            RtpCodecKind::Audio,
        )
        .map_err(webrtc("registering Opus"))?;
    if publisher {
        for uri in [
            "urn:ietf:params:rtp-hdrext:sdes:mid",
            "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        ] {
            media
                .register_header_extension(
                    RTCRtpHeaderExtensionCapability {
                        uri: uri.to_owned(),
                    },
                    RtpCodecKind::Video,
                    None,
                )
                .map_err(webrtc("registering the simulcast header extensions"))?;
        }
    }
    let mut registry = register_default_interceptors(Registry::new(), &mut media)
        .map_err(webrtc("registering interceptors"))?;
    if publisher {
        // Last in the chain, so the other interceptors see all inbound RTCP first.
        registry = registry.with(Slot::from(14_000), KeyframeRequestTap::default());
    }
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(handler)
        .with_udp_addrs(vec![std::net::SocketAddr::new(bind, 0).to_string()])
        .build()
        .await
        .map_err(webrtc("creating a PeerConnection"))?;
    Ok(Arc::new(pc))
}

/// Marks inbound PLI/FIR for the application, so `TrackLocal::poll` reports them, and lets
/// every other RTCP packet stop at the interceptors as usual.
#[derive(Default)]
pub struct KeyframeRequestTap {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

/// Whether an RTCP packet asks for a keyframe (PLI or FIR).
fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let ChainPacket::Rtcp(packets) = &msg.message.packet {
            let requests: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| is_keyframe_request(p.as_ref()))
                .cloned()
                .collect();
            if requests.is_empty() {
                return Ok(());
            }
            msg.message.packet = ChainPacket::Rtcp(requests);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for KeyframeRequestTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// VP8 with NACK, PLI and FIR feedback, as ion-sdk-js offers it.
pub fn vp8() -> RTCRtpCodec {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodec {
        mime_type: "video/VP8".to_owned(),
        clock_rate: VIDEO_CLOCK,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![fb("nack", ""), fb("nack", "pli"), fb("ccm", "fir")],
    }
}

/// RTX (RFC 4588) for [`VP8_PT`].
pub fn vp8_rtx() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "video/rtx".to_owned(),
        clock_rate: VIDEO_CLOCK,
        channels: 0,
        sdp_fmtp_line: format!("apt={VP8_PT}"),
        rtcp_feedback: vec![],
    }
}

/// Opus stereo with in-band FEC, as browsers offer it.
pub fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/opus".to_owned(),
        clock_rate: AUDIO_CLOCK,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// One generated RTP packet.
pub fn rtp_packet(
    pt: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    marker: bool,
    payload: Vec<u8>,
) -> rtc::rtp::packet::Packet {
    rtc::rtp::packet::Packet {
        header: rtc::rtp::header::Header {
            version: 2,
            marker,
            payload_type: pt,
            sequence_number: sequence,
            timestamp,
            ssrc,
            ..Default::default()
        },
        payload: bytes::Bytes::from(payload),
    }
}

/// Watches a publisher's track for the PLI/FIR the tap delivers and reports how many came in
/// each RTCP batch to `on_requests`, which asks the generator for a keyframe as an encoder
/// would. Runs until aborted.
pub async fn watch_keyframe_requests(
    track: Arc<TrackLocalStaticRTP>,
    on_requests: impl Fn(u64) + Send + 'static,
) {
    loop {
        match track.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                let requests = packets
                    .iter()
                    .filter(|p| is_keyframe_request(p.as_ref()))
                    .count() as u64;
                if requests > 0 {
                    on_requests(requests);
                }
            }
            Some(_) => {}
            // Not bound yet, or unbound: look again shortly.
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
