//! SDP offers and answers and trickled candidates from a client, as a join hands them to
//! str0m: parsed, and an offer accepted into a PeerConnection set up as the agent's
//! publisher side is (ICE lite, RTP mode, Opus, VP8, H.264). Refused or answered, never a
//! panic; an answer given parses again.
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::{Candidate, Rtc};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(offer) = SdpOffer::from_sdp_string(text) {
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .build(Instant::now());
        let host: SocketAddr = "127.0.0.1:5000".parse().expect("an address");
        rtc.add_local_candidate(Candidate::host(host, "udp").expect("a host candidate"));
        if let Ok(answer) = rtc.sdp_api().accept_offer(offer) {
            let text = answer.to_sdp_string();
            SdpAnswer::from_sdp_string(&text).expect("the agent's answer parses");
        }
    }
    let _ = SdpAnswer::from_sdp_string(text);
    let candidate = text.trim().trim_start_matches("a=");
    if let Ok(parsed) = Candidate::from_sdp_string(candidate) {
        let again = parsed.to_sdp_string();
        Candidate::from_sdp_string(again.trim_start_matches("a="))
            .expect("a candidate written out parses again");
    }
});
