use std::collections::{HashMap, VecDeque};
use std::fmt::{self};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use arrayvec::ArrayVec;
use indexmap::IndexMap;

use crate::config_mod::RtcpReportIntervals;
use crate::format::CodecConfig;
use crate::format::PayloadParams;
use crate::media::{KeyframeRequest, MID_PROBE, Media, SenderFeedback};
use crate::pacer::QueueState;
use crate::packet::Vp8Patch;
use crate::rtp_::MidRid;
use crate::rtp_::Ssrc;
use crate::rtp_::{Bitrate, Pt};
use crate::rtp_::{DlrrItem, Rtcp, RtcpFb, RtpHeader};
use crate::rtp_::{MediaTime, SenderInfo};
use crate::rtp_::{Mid, Rid, SeqNo};
use crate::util::already_happened;

pub use self::receive::StreamRx;
pub use self::send::{RtpWrite, StreamTx, StreamTxQueueInfo};

mod receive;
pub(crate) mod register;
pub(crate) mod register_nack;
mod rtx_cache;
pub(crate) mod rtx_cache_buf;
mod send;
mod send_queue;
mod send_stats;

pub(crate) use send::{DEFAULT_RTX_CACHE_DURATION, DEFAULT_RTX_RATIO_CAP};

pub(crate) struct StreamTimeoutConfig<'a> {
    pub(crate) codecs: &'a CodecConfig,
    pub(crate) intervals: RtcpReportIntervals,
}

/// Packet of RTP data.
///
/// As emitted by [`Event::RtpPacket`][crate::Event::RtpPacket] when using rtp mode.
#[derive(PartialEq, Eq)]
pub struct RtpPacket {
    /// Extended sequence number to avoid having to deal with ROC.
    pub seq_no: SeqNo,

    /// Extended RTP time in the clock frequency of the codec. To avoid dealing with ROC.
    ///
    /// For a newly scheduled outgoing packet, the clock_rate is not correctly set until
    /// we do the poll_output().
    pub time: MediaTime,

    /// Parsed RTP header.
    pub header: RtpHeader,

    /// RTP payload. This contains no header.
    pub payload: Arc<[u8]>,

    vp8_patch: Option<Vp8Patch>,

    /// str0m server timestamp.
    ///
    /// This timestamp has nothing to do with RTP itself. For outgoing packets, this is when
    /// the packet was first handed over to str0m and enqueued in the outgoing send buffers.
    /// For incoming packets it's the time we received the network packet.
    pub timestamp: Instant,

    /// Sender information from the most recent Sender Report(SR).
    ///
    /// If no Sender Report(SR) has been received or this packet is being sent by str0m this is [`None`].
    pub last_sender_info: Option<SenderInfo>,

    /// Whether this packet can be nacked.
    ///
    /// This is often false for audio, but might also be false for discardable frames when
    /// using temporal encoding as in a VP8 simulcast situation.
    pub(crate) nackable: bool,
}

/// Event when an encoded stream is considered paused/unpaused.
///
/// This means the stream has not received any data for some time (default 1.5 seconds).
#[derive(Debug)]
pub struct StreamPaused {
    /// The main SSRC of the encoded stream that paused.
    pub ssrc: Ssrc,

    /// The mid the encoded stream belongs to.
    pub mid: Mid,

    /// The rid, if the encoded stream has a rid.
    pub rid: Option<Rid>,

    /// Whether the stream is paused or not.
    pub paused: bool,
}

/// 255 is out of range for a real PT, which is 7 bit.
const BLANK_PACKET_DEFAULT_PT: Pt = Pt::new_with_value(255);

impl RtpPacket {
    fn blank() -> RtpPacket {
        RtpPacket {
            seq_no: 0.into(),
            time: MediaTime::from_90khz(0),
            header: RtpHeader {
                payload_type: BLANK_PACKET_DEFAULT_PT,
                ..Default::default()
            },
            payload: Arc::default(), // This payload is never used. See RtpHeader::create_padding_packet
            vp8_patch: None,
            nackable: false,
            last_sender_info: None,
            timestamp: already_happened(),
        }
    }
}

/// Holder of incoming/outgoing encoded streams.
///
/// Each encoded stream is uniquely identified by an SSRC. The concept of mid/rid sits on the Media
/// level together with the ability to translate a mid/rid to an encoded stream.
#[derive(Debug)]
pub(crate) struct Streams {
    /// All incoming encoded streams.
    streams_rx: HashMap<Ssrc, StreamRx>,

    /// Each incoming SSRC is mapped to a Mid/Ssrc. The Ssrc in the value is for the case
    /// where the incoming SSRC is for an RTX and we want the "main".
    rx_lookup: HashMap<Ssrc, RxLookup>,

    /// Time we last cleaned up unused entries from source_keys_rx.
    last_rx_lookup_cleanup: Instant,

    /// All outgoing encoded streams, in the order they were declared.
    ///
    /// ion-cluster patch 17 (PATCHES.md): kept in one array beside the SSRC index, so that
    /// a stream whose place is known is read without the hash table.
    streams_tx: IndexMap<Ssrc, StreamTx, BuildHasherDefault<LocalSsrcHasher>>,

    /// ion-cluster patches 7 and 17 (PATCHES.md): where in `streams_tx` the stream that
    /// last answered each `MidRid` in [`Streams::stream_tx_by_midrid`] is, checked on use.
    /// The first two remembered live here, inline; the rest in `tx_by_midrid`. Both are
    /// emptied whenever a stream is added or removed (a removal moves the places after it).
    tx_by_midrid_inline: ArrayVec<(MidRid, u32), INLINE_MIDRIDS>,
    tx_by_midrid: Vec<(MidRid, u32)>,

    /// Non-media padding source. Its sequence counter survives media changes.
    ///
    /// ion-cluster patch 9 (PATCHES.md): made on the first probe binding, which needs
    /// bandwidth estimation. Inline, it was 1.8 KB in every `Rtc` and its resend buffer 4 KB
    /// more on the heap, kept by every PeerConnection of an SFU that never probes.
    probe_tx: Option<Box<StreamTx>>,
    probe_media: Option<(Mid, Pt)>,

    /// Local SSRC used before we got any StreamTx. This is used for RTCP if we don't
    /// have any reasonable value to use.
    default_ssrc_tx: Ssrc,

    /// We need to report all RR/SR for a Mid together in one RTCP. This is a dynamic
    /// list that we don't want to allocate on every handle_timeout.
    mids_to_report: Vec<Mid>,

    /// Whether periodic statistics reports are expected to be generated. This informs us on
    /// whether we should be holding onto data needed for those reports or not.
    enable_stats: bool,

    /// Threshold above which an outgoing RTP packet triggers an MTU warning. Used as a
    /// hard cap when selecting RTX cache entries for spurious padding.
    mtu_warn: usize,
    pause_threshold: Duration,
}

/// Bounds `Streams::tx_by_midrid` against a caller asking for ever new `MidRid`s.
const MAX_REMEMBERED_MIDRIDS: usize = 64;

/// How many `MidRid`s `Streams::tx_by_midrid_inline` keeps: a viewer's audio and video,
/// the two that an SFU's fan-out sends on in turn.
const INLINE_MIDRIDS: usize = 2;

/// Hashes the keys of `Streams::streams_tx` (ion-cluster patch 7). Outgoing SSRCs are drawn
/// at random by this side, never chosen by the peer, so one multiply spreads them well
/// enough, and a lookup costs a few cycles instead of SipHash's rounds.
#[derive(Default)]
struct LocalSsrcHasher(u64);

impl Hasher for LocalSsrcHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Delay between cleaning up the RxLookup.
const RX_LOOKUP_CLEANUP_INTERVAL: Duration = Duration::from_millis(10_000);

/// How old an RxLookup entry may be.
const RX_LOOKUP_EXPIRY: Duration = Duration::from_millis(30_000);

#[derive(Debug)]
struct RxLookup {
    mid: Mid,
    main: Ssrc,
    last_used: Instant,
}

impl Streams {
    pub(crate) fn new(enable_stats: bool, mtu_warn: usize, pause_threshold: Duration) -> Self {
        Self {
            streams_rx: Default::default(),
            rx_lookup: Default::default(),
            last_rx_lookup_cleanup: already_happened(),
            streams_tx: Default::default(),
            tx_by_midrid_inline: ArrayVec::new(),
            tx_by_midrid: Vec::new(),
            probe_tx: None,
            probe_media: None,
            default_ssrc_tx: 0.into(), // this will be changed
            mids_to_report: Vec::with_capacity(10),
            enable_stats,
            mtu_warn,
            pause_threshold,
        }
    }

    pub(crate) fn map_dynamic_by_rid(
        &mut self,
        ssrc: Ssrc,
        midrid: MidRid,
        media: &mut Media,
        payload: PayloadParams,
        is_main: bool,
    ) {
        // This is the point of the function.
        let rid = midrid
            .rid()
            .expect("map_dynamic_by_rid to be called with Rid");

        // Check if the mid/rid combo is not expected
        if !media.rids_rx().contains(rid) {
            trace!("Mid does not expect rid: {} {}", midrid.mid(), rid);
            return;
        }

        let maybe_stream = self.stream_rx_by_midrid(midrid);

        let (ssrc_main, rtx) = if is_main {
            let maybe_rtx = maybe_stream.and_then(|s| s.rtx());
            (ssrc, maybe_rtx)
        } else {
            // This can bail if the main SSRC has not been discovered yet.
            let Some(stream) = maybe_stream else {
                return;
            };
            (stream.ssrc(), Some(ssrc))
        };

        self.map_dynamic_finish(midrid, ssrc_main, rtx, media, payload);
    }

    pub(crate) fn map_dynamic_by_pt(
        &mut self,
        ssrc: Ssrc,
        midrid: MidRid,
        media: &mut Media,
        payload: PayloadParams,
        is_main: bool,
    ) {
        if media.rids_rx().is_specific() {
            trace!(
                "Media expects rid and RTP packet has only mid: {:?}",
                media.rids_rx()
            );
            return;
        }

        let maybe_stream = self.stream_rx_by_midrid(midrid);

        let (ssrc_main, rtx) = if is_main {
            let maybe_rtx = maybe_stream.and_then(|s| s.rtx());
            (ssrc, maybe_rtx)
        } else {
            // This can bail if the main SSRC has not been discovered yet.
            let Some(stream) = maybe_stream else {
                return;
            };
            // The main is the SSRC in the stream already. The incoming is RTX.
            let ssrc_main = stream.ssrc();
            (ssrc_main, Some(ssrc))
        };

        self.map_dynamic_finish(midrid, ssrc_main, rtx, media, payload);
    }

    #[allow(clippy::too_many_arguments)]
    fn map_dynamic_finish(
        &mut self,
        midrid: MidRid,
        ssrc_main: Ssrc,
        rtx: Option<Ssrc>,
        media: &mut Media,
        payload: PayloadParams,
    ) {
        let maybe_stream = self.stream_rx_by_midrid(midrid);

        if let Some(stream) = maybe_stream {
            let ssrc_from = stream.ssrc();
            let rtx_from = stream.rtx();

            // Handle changes in SSRC.
            if ssrc_from != ssrc_main {
                // We got a change in main SSRC for this stream.
                let did_change = self.change_stream_rx_ssrc(ssrc_from, ssrc_main);

                // When the SSRC changes, any payload type on this RID can start with
                // a new sequence number. Reset all depayloaders for the RID.
                if did_change {
                    media.reset_depayloaders_for_rid(midrid.rid());
                }
            }

            // Handle changes in RTX
            if let (Some(rtx_from), Some(rtx_to)) = (rtx_from, rtx) {
                if rtx_from != rtx_to {
                    self.change_stream_rx_rtx(rtx_from, rtx_to);
                }
            }
        }

        // If we don't have an RTX PT configured, we don't want NACK.
        let suppress_nack = payload.resend.is_none();

        // If stream already exists, this might only "fill in" the RTX.
        self.expect_stream_rx(ssrc_main, rtx, midrid, suppress_nack);
    }

    pub fn expect_stream_rx(
        &mut self,
        ssrc: Ssrc,
        rtx: Option<Ssrc>,
        midrid: MidRid,
        suppress_nack: bool,
    ) -> &mut StreamRx {
        let stream = self
            .streams_rx
            .entry(ssrc)
            .or_insert_with(|| StreamRx::new(ssrc, midrid, suppress_nack, self.pause_threshold));

        if let Some(rtx) = rtx {
            stream.maybe_reset_rtx(rtx);
        }

        stream
    }

    pub fn remove_stream_rx(&mut self, ssrc: Ssrc) -> bool {
        let stream = self.streams_rx.remove(&ssrc);
        let existed = stream.is_some();

        self.rx_lookup.retain(|k, l| *k != ssrc && l.main != ssrc);

        existed
    }

    pub fn declare_stream_tx(
        &mut self,
        ssrc: Ssrc,
        rtx: Option<Ssrc>,
        midrid: MidRid,
    ) -> &mut StreamTx {
        self.forget_stream_places();
        self.streams_tx
            .entry(ssrc)
            .or_insert_with(|| StreamTx::new(ssrc, rtx, midrid, self.enable_stats, self.mtu_warn))
    }

    pub fn remove_stream_tx(&mut self, ssrc: Ssrc) -> bool {
        self.forget_stream_places();
        // Keeps the declaration order, which `first_ssrc_local` reads.
        self.streams_tx.shift_remove(&ssrc).is_some()
    }

    pub(crate) fn local_sender_ssrcs(&self) -> Vec<Ssrc> {
        self.streams_tx
            .values()
            .flat_map(|s| std::iter::once(s.ssrc()).chain(s.rtx()))
            .collect()
    }

    pub(crate) fn reset_send_buffers(&mut self) {
        for stream in self.streams_tx.values_mut() {
            stream.reset_buffers();
        }
    }

    pub fn stream_rx(&mut self, ssrc: &Ssrc) -> Option<&mut StreamRx> {
        self.streams_rx.get_mut(ssrc)
    }

    pub fn stream_tx(&mut self, ssrc: &Ssrc) -> Option<&mut StreamTx> {
        self.streams_tx.get_mut(ssrc)
    }

    /// Lookup the "main" SSRC and mid for a given SSRC(main or RTX).
    pub(crate) fn mid_ssrc_rx_by_ssrc_or_rtx(
        &mut self,
        now: Instant,
        ssrc: Ssrc,
    ) -> Option<(Mid, Ssrc)> {
        // A direct hit on SSRC is to prefer. The idea is that mid/rid are only sent
        // for the initial x seconds and then we start using SSRC only instead.
        if let Some(r) = self.rx_lookup.get_mut(&ssrc) {
            r.last_used = now;
            return Some((r.mid, r.main));
        }

        let maybe_stream = self.stream_rx_by_ssrc_or_rtx(ssrc);
        if let Some(stream) = maybe_stream {
            let mid = stream.mid();
            let ssrc_main = stream.ssrc();

            self.rx_lookup.insert(
                ssrc,
                RxLookup {
                    mid,
                    main: ssrc_main,
                    last_used: now,
                },
            );

            return Some((mid, ssrc_main));
        }

        None
    }

    pub(crate) fn regular_feedback_at(&self, i: RtcpReportIntervals) -> Option<Instant> {
        let r = self
            .streams_rx
            .values()
            .filter(|s| !s.ssrc().is_probe())
            .map(|s| s.receiver_report_at(i));
        let s = self.streams_tx.values().map(|s| s.sender_report_at(i));
        r.chain(s).min()
    }

    pub(crate) fn paused_at(&self) -> Option<Instant> {
        self.streams_rx.values().find_map(|s| s.paused_at())
    }

    pub(crate) fn send_stream(&self) -> Option<Instant> {
        if self.streams_tx.values().any(|s| s.need_timeout()) {
            Some(already_happened())
        } else {
            None
        }
    }

    pub(crate) fn pending_request(&self) -> Option<Instant> {
        if self.streams_rx.values().any(|s| s.has_pending_request()) {
            Some(already_happened())
        } else {
            None
        }
    }

    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        sender_ssrc: Ssrc,
        do_nack: bool,
        medias: &[Media],
        config: StreamTimeoutConfig<'_>,
        feedback: &mut VecDeque<Rtcp>,
    ) {
        let StreamTimeoutConfig { codecs, intervals } = config;

        self.mids_to_report.clear(); // Clear for checking StreamRx.
        for stream in self.streams_rx.values() {
            if stream.need_rr(now, intervals) {
                self.mids_to_report.push(stream.mid());
            }
        }

        for stream in self.streams_rx.values_mut() {
            stream.maybe_create_keyframe_request(sender_ssrc, feedback);
            stream.maybe_create_remb_request(sender_ssrc, feedback);

            // All StreamRx belonging to the same Mid are reported together.
            if self.mids_to_report.contains(&stream.mid()) {
                stream.create_rr_and_update(now, sender_ssrc, feedback);
            }

            if do_nack {
                stream.maybe_create_nack(now, sender_ssrc, feedback);
            }

            stream.handle_timeout(now);
        }

        self.mids_to_report.clear(); // start over for StreamTx.
        for stream in self.streams_tx.values() {
            if stream.need_sr(now, intervals) {
                self.mids_to_report.push(stream.mid());
            }
        }

        for stream in self.streams_tx.values_mut() {
            let mid = stream.mid();

            // All StreamTx belonging to the same Mid are reported together.
            if self.mids_to_report.contains(&mid) {
                stream.create_sr_and_update(now, feedback);
            }

            // Finding the first (main) PT that also has RTX for the Media is expensive,
            // this closure is run only when needed.
            // The unwrap is okay because we cannot have StreamTx with a Mid without the corresponding Media.
            let get_media = move || (medias.iter().find(|m| m.mid() == mid).unwrap(), codecs);

            stream.handle_timeout(now, get_media);
        }

        if now > self.rx_lookup_at() {
            self.rx_lookup
                .retain(|_, l| now - l.last_used <= RX_LOOKUP_EXPIRY);
            self.last_rx_lookup_cleanup = now;
        }
    }

    pub(crate) fn poll_keyframe_request(&mut self) -> Option<KeyframeRequest> {
        self.streams_tx.values_mut().find_map(|s| {
            let kind = s.poll_keyframe_request()?;
            Some(KeyframeRequest {
                mid: s.mid(),
                rid: s.rid(),
                kind,
            })
        })
    }

    pub(crate) fn poll_sender_feedback(&mut self) -> Option<SenderFeedback> {
        self.streams_rx.values_mut().find_map(|s| {
            let (sender_info, at) = s.poll_sender_info()?;

            Some(SenderFeedback {
                mid: s.mid(),
                rid: s.rid(),
                received_at: at,
                sender_info,
            })
        })
    }

    pub(crate) fn poll_remb_request(&mut self) -> Option<(Mid, Bitrate)> {
        self.streams_tx
            .values_mut()
            .find_map(|s| s.poll_remb_request().map(|b| (s.mid(), b)))
    }

    pub(crate) fn poll_stream_paused(&mut self) -> Option<StreamPaused> {
        self.streams_rx.values_mut().find_map(|s| s.poll_paused())
    }

    pub(crate) fn has_stream_rx(&self, ssrc: Ssrc) -> bool {
        self.streams_rx.contains_key(&ssrc)
    }

    pub(crate) fn has_stream_tx(&self, ssrc: Ssrc) -> bool {
        self.streams_tx.contains_key(&ssrc)
    }

    pub(crate) fn handle_dlrr(&mut self, now: Instant, dlrr: DlrrItem) {
        let is_default_ssrc = !self.default_ssrc_tx.is_probe() && dlrr.ssrc == self.default_ssrc_tx;
        if !is_default_ssrc && !self.has_stream_tx(dlrr.ssrc) {
            trace!("Ignoring DLRR for unknown local SSRC: {}", dlrr.ssrc);
            return;
        }

        // DLRR identifies our RRTR sender, not a remote media SSRC. The measured
        // round trip is shared by receive streams on this peer's transport.
        for stream in self.streams_rx.values_mut() {
            stream.handle_rtcp(now, RtcpFb::DlrrItem(dlrr));
        }
    }

    pub(crate) fn streams_rx(&mut self) -> impl Iterator<Item = &mut StreamRx> {
        self.streams_rx.values_mut()
    }

    pub(crate) fn streams_tx(&mut self) -> impl Iterator<Item = &mut StreamTx> {
        self.streams_tx.values_mut()
    }

    pub(crate) fn ssrcs_tx(&self, mid: Mid) -> Vec<(Ssrc, Option<Ssrc>)> {
        self.streams_tx
            .values()
            .filter(|s| s.mid() == mid)
            .map(|s| (s.ssrc(), s.rtx()))
            .collect()
    }

    pub(crate) fn new_ssrc(&self) -> Ssrc {
        loop {
            // This new guarantees we never get SSRC 0 (reserved for BWE probes)
            let ssrc = Ssrc::new();

            let has_ssrc = self.has_stream_rx(ssrc) || self.has_stream_tx(ssrc);

            if has_ssrc {
                continue;
            }

            // Need to check RTX as well.
            let has_rtx_rx = self.streams_rx.values().any(|s| s.rtx() == Some(ssrc));
            if has_rtx_rx {
                continue;
            }

            let has_rtx_tx = self.streams_tx.values().any(|s| s.rtx() == Some(ssrc));
            if has_rtx_tx {
                continue;
            }

            // Not used
            break ssrc;
        }
    }

    pub fn new_ssrc_pair(&self) -> (Ssrc, Ssrc) {
        let ssrc = self.new_ssrc();

        let rtx = loop {
            let proposed = self.new_ssrc();
            // Avoid clashing with just allocated main SSRC.
            if proposed != ssrc {
                break proposed;
            }
        };

        (ssrc, rtx)
    }

    pub(crate) fn first_ssrc_remote(&self) -> Ssrc {
        *self.streams_rx.keys().next().unwrap_or(&0.into())
    }

    pub(crate) fn first_ssrc_local(&mut self) -> Ssrc {
        if let Some(ssrc) = self.streams_tx.keys().next() {
            // If there is some local Tx SSRC, use that.
            *ssrc
        } else {
            // Fallback in case we don't have any Tx SSRC.
            if *self.default_ssrc_tx == 0 {
                // Do not use 0, allocate one that is not in session already.
                self.default_ssrc_tx = self.new_ssrc();
            }
            self.default_ssrc_tx
        }
    }

    /// Bind the probe source only while a cluster is authorized. Changing the
    /// binding drops queued padding but preserves the SSRC's SRTP sequence.
    pub(crate) fn set_probe_media(&mut self, media: Option<(Mid, Pt)>) {
        if media == self.probe_media {
            return;
        }
        if let Some(probe_tx) = &mut self.probe_tx {
            probe_tx.reset_buffers();
        }
        if let Some((mid, pt)) = media {
            let mtu_warn = self.mtu_warn;
            self.probe_tx
                .get_or_insert_with(|| Box::new(StreamTx::new_probe(mtu_warn)))
                .set_probe_media(mid, pt);
        }
        self.probe_media = media;
    }

    pub(crate) fn send_queue_states(
        &mut self,
        now: Instant,
        mut can_probe: impl FnMut(Mid, Pt) -> bool,
    ) -> impl Iterator<Item = QueueState> {
        // Snapshot each stream once, preferring media/RTX padding over the
        // fallback. No extra stream or retransmission-queue scan is needed.
        let mut media_padding = false;
        let probe_tx = self.probe_media.and(self.probe_tx.as_mut());
        let mut probe_queue = probe_tx.map(|probe_tx| {
            let mut queue = probe_tx.queue_state(now);
            queue.midrid = MidRid(MID_PROBE, None);
            queue
        });
        let mut streams = self.streams_tx.values_mut();
        std::iter::from_fn(move || {
            if let Some(stream) = streams.next() {
                let mut queue = stream.queue_state(now);
                if probe_queue.is_some() && queue.use_for_padding {
                    // Only negotiated feedback sources can provide probe padding.
                    // Ordinary padding keeps its existing eligibility.
                    queue.use_for_padding = stream
                        .padding_pt()
                        .is_some_and(|pt| can_probe(stream.mid(), pt));
                }
                media_padding |= queue.use_for_padding;
                return Some(queue);
            }
            let mut queue = probe_queue.take()?;
            queue.use_for_padding = !media_padding;
            Some(queue)
        })
    }

    pub(crate) fn stream_tx_by_midrid(&mut self, midrid: MidRid) -> Option<&mut StreamTx> {
        if midrid == MidRid(MID_PROBE, None) {
            self.probe_media?;
            return self.probe_tx.as_deref_mut();
        }
        let index = self.tx_index_by_midrid(midrid)?;
        self.streams_tx.get_index_mut(index).map(|(_, s)| s)
    }

    /// ion-cluster patch 23 (PATCHES.md): `midrid`'s stream, read at `*place` in
    /// `streams_tx` when it is there, else found as [`Streams::stream_tx_by_midrid`] finds
    /// it, and `*place` set to where it is. The caller keeps the place between sends, so
    /// that a hit reads the stream alone: the lookup scans a list of 40 bytes a stream, and
    /// a meeting's viewer has 18 streams.
    pub(crate) fn stream_tx_at(
        &mut self,
        midrid: MidRid,
        place: &mut u32,
    ) -> Option<&mut StreamTx> {
        if midrid == MidRid(MID_PROBE, None) {
            return self.stream_tx_by_midrid(midrid);
        }
        let at = *place as usize;
        let index = if self
            .streams_tx
            .get_index(at)
            .is_some_and(|(_, s)| s.is_midrid(midrid))
        {
            at
        } else {
            let index = self.tx_index_by_midrid(midrid)?;
            *place = index as u32;
            index
        };
        self.streams_tx.get_index_mut(index).map(|(_, s)| s)
    }

    /// Where in `streams_tx` the stream of a media `midrid` (not the probe) is.
    fn tx_index_by_midrid(&mut self, midrid: MidRid) -> Option<usize> {
        // ion-cluster patch 7 (PATCHES.md): an SFU asks this for every forwarded packet.
        // A scan reads the `MidRid` of each stream in turn, one cache miss per stream 1.8 KB
        // apart: with a meeting's 18 streams per viewer it was most of the release's cost.
        // Patch 17: what is remembered is the stream's place, not its SSRC, so a hit reads
        // the stream alone. Through the SSRC it read the remembered list, the hash table's
        // control bytes and its key, three more lines that a fan-out to 200 viewers finds
        // out of the cache, as it finds the stream.
        let remembered = self
            .tx_by_midrid_inline
            .iter()
            .chain(&self.tx_by_midrid)
            .find(|(m, _)| *m == midrid)
            .map(|(_, index)| *index as usize);
        let index = match remembered {
            Some(index)
                if self
                    .streams_tx
                    .get_index(index)
                    .is_some_and(|(_, s)| s.is_midrid(midrid)) =>
            {
                index
            }
            _ => {
                let index = self.streams_tx.values().position(|s| s.is_midrid(midrid))?;
                self.remember_stream_place(midrid, index as u32);
                index
            }
        };
        Some(index)
    }

    /// Remembers that `midrid`'s stream is at `index` of `streams_tx` (patches 7 and 17):
    /// inline while there is room, then in the list, which is emptied when it is full.
    fn remember_stream_place(&mut self, midrid: MidRid, index: u32) {
        self.tx_by_midrid_inline.retain(|(m, _)| *m != midrid);
        self.tx_by_midrid.retain(|(m, _)| *m != midrid);
        if self.tx_by_midrid_inline.try_push((midrid, index)).is_ok() {
            return;
        }
        if self.tx_by_midrid.len() >= MAX_REMEMBERED_MIDRIDS {
            self.tx_by_midrid.clear();
        }
        self.tx_by_midrid.push((midrid, index));
    }

    /// Forgets every remembered place: a removal moves those after it, and an addition, as
    /// rare, is treated alike.
    fn forget_stream_places(&mut self) {
        self.tx_by_midrid_inline.clear();
        self.tx_by_midrid.clear();
    }

    pub(crate) fn stream_rx_by_midrid(&mut self, midrid: MidRid) -> Option<&mut StreamRx> {
        self.streams_rx.values_mut().find(|s| s.is_midrid(midrid))
    }

    pub(crate) fn remove_streams_by_mid(&mut self, mid: Mid) {
        self.forget_stream_places();
        self.streams_tx.retain(|_, s| s.mid() != mid);
        self.streams_rx.retain(|_, s| s.mid() != mid);
        self.rx_lookup.retain(|_, v| v.mid != mid);
    }

    /// An iterator over all the tx streams for a given mid.
    pub(crate) fn streams_tx_by_mid(&mut self, mid: Mid) -> impl Iterator<Item = &mut StreamTx> {
        self.streams_tx.values_mut().filter(move |s| s.mid() == mid)
    }

    /// An iterator over all the rx streams for a given mid.
    pub(crate) fn streams_rx_by_mid(&mut self, mid: Mid) -> impl Iterator<Item = &mut StreamRx> {
        self.streams_rx.values_mut().filter(move |s| s.mid() == mid)
    }

    pub(crate) fn reset_buffers_tx(&mut self, mid: Mid) {
        for s in self.streams_tx_by_mid(mid) {
            s.reset_buffers();
        }
    }

    pub(crate) fn reset_buffers_rx(
        &mut self,
        mid: Mid,
        max_seq_lookup: impl Fn(Ssrc) -> Option<SeqNo>,
    ) {
        for s in self.streams_rx_by_mid(mid) {
            s.reset_buffers(&max_seq_lookup);
        }
    }

    pub(crate) fn change_stream_rx_ssrc(&mut self, ssrc_from: Ssrc, ssrc_to: Ssrc) -> bool {
        // This unwrap is OK, because we can't call change_stream_rx_ssrc without first
        // knowing there is such a StreamRx.
        let maybe_change = self.streams_rx.get_mut(&ssrc_from).unwrap();

        // The StreamRx is allowed to not change the SSRC in case it is switching back
        // to the previous SSRC. This is to avoid flapping in case RTP packets arrive
        // out of order.
        let did_change = maybe_change.change_ssrc(ssrc_to);

        if did_change {
            // Unwrap is OK, see above.
            let to_change = self.streams_rx.remove(&ssrc_from).unwrap();

            // Reinsert under new SSRC key.
            self.streams_rx.insert(ssrc_to, to_change);

            // Remove previous mappings for the SSRC
            self.rx_lookup
                .retain(|k, l| *k != ssrc_from && l.main != ssrc_from);
        }

        did_change
    }

    fn change_stream_rx_rtx(&mut self, rtx_from: Ssrc, rtx_to: Ssrc) {
        // Remove the SSRC mapping
        self.rx_lookup.remove(&rtx_from);

        let Some(to_change) = self
            .streams_rx
            .values_mut()
            .find(|s| s.rtx() == Some(rtx_from))
        else {
            // If there's no main stream associated with the RTX our job is done.
            return;
        };

        to_change.maybe_reset_rtx(rtx_to);
    }

    fn stream_rx_by_ssrc_or_rtx(&self, ssrc: Ssrc) -> Option<&StreamRx> {
        self.streams_rx
            .values()
            .find(|s| s.ssrc() == ssrc || s.rtx() == Some(ssrc))
    }

    /// Whether any receive stream currently needs NACK reports (see [`StreamRx::nack_enabled`]).
    ///
    /// Not cached: the answer changes with pause state and pending NACK retries.
    pub(crate) fn any_nack_enabled(&self) -> bool {
        self.streams_rx.values().any(|s| s.nack_enabled())
    }

    fn rx_lookup_at(&self) -> Instant {
        self.last_rx_lookup_cleanup + RX_LOOKUP_CLEANUP_INTERVAL
    }
}

impl fmt::Debug for RtpPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtpPacket")
            .field("seq_no", &self.seq_no)
            .field("time", &self.time)
            .field("header", &self.header)
            .field("payload", &self.payload.len())
            .field("nackable", &self.nackable)
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

// ion-cluster patch 7 (PATCHES.md).
#[cfg(test)]
mod tx_by_midrid_tests {
    use super::*;

    fn streams() -> Streams {
        Streams::new(false, 1200, Duration::from_millis(1500))
    }

    fn ssrc_of(streams: &mut Streams, midrid: MidRid) -> Option<Ssrc> {
        streams.stream_tx_by_midrid(midrid).map(|s| s.ssrc())
    }

    #[test]
    fn each_midrid_finds_its_own_stream_every_time() {
        let mut streams = streams();
        for k in 0..18u32 {
            streams.declare_stream_tx(
                k.into(),
                None,
                MidRid(format!("m{k}").as_str().into(), None),
            );
        }
        for _ in 0..3 {
            for k in 0..18u32 {
                let midrid = MidRid(format!("m{k}").as_str().into(), None);
                assert_eq!(ssrc_of(&mut streams, midrid), Some(k.into()));
            }
        }
        assert_eq!(ssrc_of(&mut streams, MidRid("none".into(), None)), None);
    }

    #[test]
    fn a_callers_place_is_learnt_kept_and_corrected_when_streams_move() {
        // Patch 23: the caller holds the place between sends.
        let mut streams = streams();
        let midrid = |k: u32| MidRid(format!("m{k}").as_str().into(), None);
        for k in 0..18u32 {
            streams.declare_stream_tx(k.into(), None, midrid(k));
        }
        let mut place = u32::MAX;
        let found = streams
            .stream_tx_at(midrid(12), &mut place)
            .map(|s| s.ssrc());
        assert_eq!((found, place), (Some(12.into()), 12), "learnt");
        let found = streams
            .stream_tx_at(midrid(12), &mut place)
            .map(|s| s.ssrc());
        assert_eq!((found, place), (Some(12.into()), 12), "kept");

        // Removing an earlier stream moves m12 down by one: the place is stale.
        streams.remove_stream_tx(3.into());
        let found = streams
            .stream_tx_at(midrid(12), &mut place)
            .map(|s| s.ssrc());
        assert_eq!((found, place), (Some(12.into()), 11), "corrected");

        // Another stream's place, and one past the end, are misses too.
        let mut place = 0;
        let found = streams
            .stream_tx_at(midrid(12), &mut place)
            .map(|s| s.ssrc());
        assert_eq!((found, place), (Some(12.into()), 11));
        let mut place = 400;
        let found = streams
            .stream_tx_at(midrid(12), &mut place)
            .map(|s| s.ssrc());
        assert_eq!((found, place), (Some(12.into()), 11));

        // No such stream: nothing, and the place is left as it was.
        let mut place = 5;
        assert!(streams.stream_tx_at(midrid(3), &mut place).is_none());
        assert_eq!(place, 5);
    }

    #[test]
    fn a_key_reused_by_another_stream_is_not_taken_for_the_old_one() {
        let mut streams = streams();
        let video = MidRid("vid".into(), None);
        let audio = MidRid("aud".into(), None);
        streams.declare_stream_tx(7.into(), None, video);
        assert_eq!(ssrc_of(&mut streams, video), Some(7.into()));

        streams.remove_stream_tx(7.into());
        assert_eq!(ssrc_of(&mut streams, video), None, "removed");
        streams.declare_stream_tx(7.into(), None, audio);
        assert_eq!(ssrc_of(&mut streams, video), None, "7 is audio's now");
        assert_eq!(ssrc_of(&mut streams, audio), Some(7.into()));

        streams.declare_stream_tx(9.into(), None, video);
        assert_eq!(ssrc_of(&mut streams, video), Some(9.into()));
        streams.remove_streams_by_mid(video.mid());
        assert_eq!(ssrc_of(&mut streams, video), None);
        assert_eq!(ssrc_of(&mut streams, audio), Some(7.into()));
    }

    #[test]
    fn removing_a_stream_before_others_does_not_misplace_them() {
        // Patch 17 remembers places in `streams_tx`; removing an earlier stream moves the
        // later ones down by one.
        let mut streams = streams();
        let midrid = |k: u32| MidRid(format!("m{k}").as_str().into(), None);
        for k in 0..4u32 {
            streams.declare_stream_tx(k.into(), None, midrid(k));
        }
        for k in 0..4u32 {
            assert_eq!(ssrc_of(&mut streams, midrid(k)), Some(k.into()));
        }
        streams.remove_stream_tx(1.into());
        assert_eq!(ssrc_of(&mut streams, midrid(1)), None);
        for k in [0u32, 2, 3] {
            assert_eq!(ssrc_of(&mut streams, midrid(k)), Some(k.into()));
        }
        streams.remove_streams_by_mid(midrid(0).mid());
        for k in [2u32, 3] {
            assert_eq!(ssrc_of(&mut streams, midrid(k)), Some(k.into()));
        }
        assert_eq!(
            streams.first_ssrc_local(),
            2.into(),
            "the first declared of those left"
        );
    }

    #[test]
    fn a_stream_whose_ssrc_was_reset_is_still_found() {
        let mut streams = streams();
        let video = MidRid("vid".into(), None);
        streams.declare_stream_tx(7.into(), None, video);
        assert_eq!(ssrc_of(&mut streams, video), Some(7.into()));
        streams
            .stream_tx_by_midrid(video)
            .unwrap()
            .reset_ssrc(8.into(), None);
        assert_eq!(ssrc_of(&mut streams, video), Some(8.into()));
    }

    #[test]
    fn simulcast_layers_of_one_mid_are_told_apart_by_rid() {
        let mut streams = streams();
        let low = MidRid("vid".into(), Some("l".into()));
        let high = MidRid("vid".into(), Some("h".into()));
        streams.declare_stream_tx(1.into(), None, low);
        streams.declare_stream_tx(2.into(), None, high);
        for _ in 0..2 {
            assert_eq!(ssrc_of(&mut streams, low), Some(1.into()));
            assert_eq!(ssrc_of(&mut streams, high), Some(2.into()));
        }
    }

    #[test]
    fn what_is_remembered_stays_bounded() {
        let mut streams = streams();
        let midrid = |k: u32| MidRid(format!("m{k}").as_str().into(), None);
        for k in 0..200u32 {
            streams.declare_stream_tx(k.into(), None, midrid(k));
        }
        for k in 0..200u32 {
            assert_eq!(ssrc_of(&mut streams, midrid(k)), Some(k.into()));
            assert!(streams.tx_by_midrid.len() <= MAX_REMEMBERED_MIDRIDS);
        }
        for k in (0..200u32).rev() {
            assert_eq!(ssrc_of(&mut streams, midrid(k)), Some(k.into()));
        }
    }

    #[test]
    fn the_probe_stream_is_made_on_its_first_binding_and_kept() {
        let mut streams = streams();
        let probe = MidRid(crate::media::MID_PROBE, None);
        assert!(
            streams.probe_tx.is_none(),
            "no probe stream before a binding"
        );
        assert!(streams.stream_tx_by_midrid(probe).is_none());
        let _ = streams
            .send_queue_states(Instant::now(), |_, _| true)
            .count();
        assert!(
            streams.probe_tx.is_none(),
            "asking for queue states makes none"
        );

        streams.set_probe_media(Some(("vid".into(), 96.into())));
        let first = streams
            .stream_tx_by_midrid(probe)
            .map(|s| s as *const StreamTx);
        assert!(first.is_some(), "bound: the probe stream is there");
        let probe_queues: Vec<_> = streams
            .send_queue_states(Instant::now(), |_, _| true)
            .filter(|queue| queue.midrid == probe)
            .map(|queue| queue.use_for_padding)
            .collect();
        assert_eq!(
            probe_queues,
            [true],
            "bound: the pacer sees it, for padding"
        );

        streams.set_probe_media(None);
        assert!(
            streams.stream_tx_by_midrid(probe).is_none(),
            "unbound: not offered"
        );
        streams.set_probe_media(Some(("aud".into(), 111.into())));
        let again = streams
            .stream_tx_by_midrid(probe)
            .map(|s| s as *const StreamTx);
        assert_eq!(
            again, first,
            "the same stream, so its sequence counter carries on"
        );
    }
}
