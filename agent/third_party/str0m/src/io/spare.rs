//! ion-cluster patch 6 (PATCHES.md): buffers of sent datagrams, handed back by the
//! application with [`recycle`], become the buffers of the next sealed RTP packets.
//!
//! A sealed video packet is a fresh `Vec` of about 1.2 KB. That is above the size glibc's
//! per-thread cache serves, so every packet took and freed a chunk through malloc's bins
//! (about 6% of an SFU's instructions with the `calloc` and `free`). An application that
//! sends on the thread that polls can hand each buffer back once the datagram is out; one
//! that does not changes nothing: the spares stay empty and sealing allocates as before.
//!
//! The spares are per thread, so they need no lock and a buffer never crosses threads.
//!
//! ion-cluster patch 15: a packet below 1 KiB (an audio packet, about half of what a meeting
//! forwards) was sealed into a fresh `calloc`ed buffer. glibc's `calloc` skips the per-thread
//! cache, and a `sendmmsg` batch frees more chunks of one size than that cache keeps, so
//! each took and freed a chunk through malloc's bins. Now a fresh buffer has room for any
//! packet (`FRESH_CAPACITY`), is recycled like a video packet's, and any spare serves any
//! packet.

use std::cell::RefCell;

use super::DatagramSend;

/// Buffers below this capacity are not kept: they are not sealed RTP packets (those are
/// made with [`FRESH_CAPACITY`]) but STUN, DTLS or RTCP datagrams, and a video packet would
/// only have to grow one.
const SMALL: usize = 1024;

/// The capacity of a buffer made when no spare is left: an Ethernet frame's payload, so that
/// it can later carry any RTP packet without growing.
const FRESH_CAPACITY: usize = 1500;

/// At most this many spares per thread. A sender hands back what one `sendmmsg` sent (the
/// agent sends 64 at a time), so that many are in use; the bound keeps a burst from holding
/// memory for good.
const MAX_SPARE: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Hands back the buffer of a datagram that has been sent, for str0m to seal a later RTP
/// packet into. Call it on the thread that polls the [`Rtc`][crate::Rtc]s; buffers handed
/// back on another thread serve that thread's.
pub fn recycle(datagram: DatagramSend) {
    let buffer: Vec<u8> = datagram.into();
    if buffer.capacity() < SMALL {
        return;
    }
    SPARE.with(|spare| {
        // A re-entrant call cannot happen (nothing here calls out), but a failed borrow
        // must never panic in a send path: the buffer is then simply freed.
        if let Ok(mut spare) = spare.try_borrow_mut() {
            if spare.len() < MAX_SPARE {
                spare.push(buffer);
            }
        }
    });
}

/// A recycled buffer when one is spare, else an empty one with room for `len` bytes.
fn spare_or_fresh(len: usize) -> Vec<u8> {
    let spare = SPARE.with(|spare| spare.try_borrow_mut().ok().and_then(|mut s| s.pop()));
    // `with_capacity` and `resize` rather than `vec![0; len]`: that is a `calloc`, which
    // glibc serves without its per-thread cache.
    spare.unwrap_or_else(|| Vec::with_capacity(len.max(FRESH_CAPACITY)))
}

/// `len` zero bytes, in a recycled buffer when one is spare.
pub(crate) fn zeroed(len: usize) -> Vec<u8> {
    let mut buffer = spare_or_fresh(len);
    buffer.clear();
    buffer.resize(len, 0);
    buffer
}

/// `len` bytes that the caller overwrites in full, in a recycled buffer when one is spare.
///
/// ion-cluster patch 20 (PATCHES.md): a recycled buffer keeps the bytes of the datagram it
/// carried where the caller's will go, and only what lies beyond its old length is zeroed.
/// Sealing an AES-GCM packet writes every byte (the header, the ciphertext and the tag), so
/// zeroing first only wrote each byte twice: some 20 cache lines per forwarded packet,
/// which an SFU's fan-out pays once per viewer. Nothing of the old datagram is left in the
/// new one, and it was on the wire already.
pub(crate) fn to_overwrite(len: usize) -> Vec<u8> {
    let mut buffer = spare_or_fresh(len);
    // Truncates a longer buffer; zeroes only what a shorter one lacks.
    buffer.resize(len, 0);
    buffer
}

#[cfg(test)]
mod test {
    use super::*;

    fn drain() {
        SPARE.with(|spare| spare.borrow_mut().clear());
    }

    #[test]
    fn a_recycled_buffer_comes_back_zeroed_for_a_large_packet() {
        drain();
        let sent = vec![0xAB_u8; 1300];
        let address = sent.as_ptr();
        recycle(sent.into());

        let buffer = zeroed(1200);
        assert_eq!(buffer.as_ptr(), address, "the spare buffer was not reused");
        assert_eq!(buffer.len(), 1200);
        assert!(
            buffer.iter().all(|b| *b == 0),
            "a reused buffer kept old bytes"
        );
    }

    #[test]
    fn a_buffer_to_overwrite_is_not_zeroed_within_its_old_length_only_beyond() {
        drain();
        let mut sent = Vec::with_capacity(FRESH_CAPACITY);
        sent.resize(1000, 0xAB_u8);
        let address = sent.as_ptr();
        recycle(sent.into());

        let buffer = to_overwrite(1200);
        assert_eq!(buffer.as_ptr(), address, "the spare buffer was not reused");
        assert_eq!(buffer.len(), 1200);
        // Not zeroing what the caller overwrites is the point of the function.
        assert!(buffer[..1000].iter().all(|b| *b == 0xAB));
        assert!(buffer[1000..].iter().all(|b| *b == 0));
        recycle(buffer.into());

        let shorter = to_overwrite(300);
        assert_eq!(shorter.as_ptr(), address);
        assert_eq!(shorter.len(), 300);
        drain();
    }

    #[test]
    fn small_buffers_are_not_kept() {
        drain();
        recycle(vec![1_u8; 200].into());
        SPARE.with(|spare| assert!(spare.borrow().is_empty(), "a small buffer was kept"));
    }

    #[test]
    fn a_small_packet_is_sealed_into_a_spare_too() {
        drain();
        let large = vec![1_u8; 1500];
        let address = large.as_ptr();
        recycle(large.into());

        let small = zeroed(100);
        assert_eq!(
            small.as_ptr(),
            address,
            "a small packet did not take the spare"
        );
        assert_eq!(small.len(), 100);
        assert!(
            small.iter().all(|b| *b == 0),
            "a reused buffer kept old bytes"
        );
        SPARE.with(|spare| assert!(spare.borrow().is_empty()));
    }

    #[test]
    fn a_fresh_small_packet_is_kept_once_sent_and_serves_a_large_one() {
        drain();
        let small = zeroed(100);
        assert!(small.capacity() >= FRESH_CAPACITY);
        let address = small.as_ptr();
        recycle(small.into());
        SPARE.with(|spare| assert_eq!(spare.borrow().len(), 1, "the sent packet was freed"));

        let large = zeroed(1300);
        assert_eq!(large.as_ptr(), address, "the spare grew or was not taken");
        assert_eq!(large.len(), 1300);
        drain();
    }

    #[test]
    fn the_spares_are_bounded() {
        drain();
        for _ in 0..MAX_SPARE + 10 {
            recycle(vec![0_u8; 1500].into());
        }
        SPARE.with(|spare| assert_eq!(spare.borrow().len(), MAX_SPARE));
        drain();
    }
}
