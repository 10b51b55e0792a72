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

use std::cell::RefCell;

use super::DatagramSend;

/// Buffers below this capacity are left to the allocator: glibc's per-thread cache already
/// serves chunks up to about 1 KiB without a search, and keeping small ones would only make
/// a video packet grow one.
const SMALL: usize = 1024;

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

/// `len` zero bytes, in a recycled buffer when one is spare and the packet is not small.
pub(crate) fn zeroed(len: usize) -> Vec<u8> {
    if len >= SMALL {
        let spare = SPARE.with(|spare| spare.try_borrow_mut().ok().and_then(|mut s| s.pop()));
        if let Some(mut buffer) = spare {
            buffer.clear();
            buffer.resize(len, 0);
            return buffer;
        }
    }
    vec![0; len]
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
    fn small_buffers_and_small_packets_are_left_to_the_allocator() {
        drain();
        recycle(vec![1_u8; 200].into());
        SPARE.with(|spare| assert!(spare.borrow().is_empty(), "a small buffer was kept"));

        let large = vec![1_u8; 1500];
        let address = large.as_ptr();
        recycle(large.into());
        let small = zeroed(100);
        assert_ne!(small.as_ptr(), address, "a small packet took a large spare");
        SPARE.with(|spare| assert_eq!(spare.borrow().len(), 1));
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
