//! How a webrtc-rs PeerConnection of the load test (and of the test harness's peers) is built:
//! the VP8 and Opus codecs ion-sdk-js offers, the default interceptors plus a tap that hands
//! PLI/FIR to the application, and loopback-friendly settings (no mDNS, no ICE servers, one
//! UDP socket on the given address).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use rtc::interceptor::{
    Attribute, Interceptor, Packet as ChainPacket, Slot, StreamInfo, TaggedPacket,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, Registry,
    SettingEngineBuilder, register_default_interceptors,
};

use super::media::{AUDIO_CLOCK, VIDEO_CLOCK};
use super::peer::ClientError;

pub const VP8_PT: u8 = 96;
pub const OPUS_PT: u8 = 111;

fn webrtc<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> ClientError {
    move |e| ClientError::WebRtc {
        what,
        reason: e.to_string(),
    }
}

/// A PeerConnection bound to `bind` (an IP address) that reports to `handler`. A publisher
/// PC taps keyframe requests, so its local tracks see PLI/FIR.
pub async fn peer_connection<H: PeerConnectionEventHandler + 'static>(
    handler: Arc<H>,
    tap_keyframe_requests: bool,
    bind: &str,
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
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus(),
                payload_type: OPUS_PT,
            },
            RtpCodecKind::Audio,
        )
        .map_err(webrtc("registering Opus"))?;
    let mut registry = register_default_interceptors(Registry::new(), &mut media)
        .map_err(webrtc("registering interceptors"))?;
    if tap_keyframe_requests {
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
        .with_udp_addrs(vec![format!("{bind}:0")])
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
pub fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
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
