//! Outgoing datagrams gathered while the worker handles one round of input, then sent with
//! one `sendmmsg` system call per [`MAX_BATCH`] datagrams instead of one `sendto` each. A
//! frame fanned out to N subscribers is N datagrams to N addresses, so the per-call cost of
//! the kernel's send path is what batching saves. A datagram waits at most until the end of
//! the current round, microseconds; the worker's loop sends the batch then.
//!
//! On Linux, consecutive datagrams to one address of one size (the last may be shorter) go
//! as one message with UDP generic segmentation offload (`UDP_SEGMENT`): a subscriber's share
//! of a frame that arrived in one read is several packets of the packetizer's size, and the
//! kernel then walks its UDP and IP send path once for them rather than once each. The
//! receiver still gets separate datagrams. A kernel or device that refuses it turns it off
//! for the socket, and the datagrams go one per message as before.

use std::sync::atomic::Ordering::Relaxed;

use str0m::net::Transmit;
use tokio::net::UdpSocket;

use super::counters::WorkerCounters;

/// Datagrams per system call. The kernel takes up to 1024 (`UIO_MAXIOV`); 64 keeps the
/// headers on the stack small and already makes the per-call cost negligible.
const MAX_BATCH: usize = 64;

/// Datagrams per segmented message (Linux only, as is all segmentation): the kernel's
/// `UDP_MAX_SEGMENTS` (64 before Linux 6.9, 128 since).
#[cfg(any(target_os = "linux", test))]
const MAX_SEGMENTS: usize = 64;

/// Bytes per segmented message: one UDP datagram's largest payload over IPv4.
#[cfg(any(target_os = "linux", test))]
const MAX_MESSAGE_BYTES: usize = 65_507;

/// Transmits waiting for the end of the round.
#[derive(Default)]
pub struct SendBatch {
    queued: Vec<Transmit>,
    /// The kernel refused a segmented message once: send one datagram per message since.
    segmentation_refused: bool,
}

/// What one flush did, for the counters.
#[derive(Debug, Default, PartialEq, Eq)]
struct Sent {
    packets: u64,
    bytes: u64,
    drops: u64,
    /// Of `packets`, those sent as segments of a message that held more than one.
    segmented: u64,
}

impl Sent {
    fn add(&mut self, other: Sent) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.drops += other.drops;
        self.segmented += other.segmented;
    }
}

impl SendBatch {
    /// Queues `transmit` until the round's [`SendBatch::flush`].
    pub fn push(&mut self, transmit: Transmit) {
        self.queued.push(transmit);
    }

    /// Whether a whole system call's worth waits: time to flush.
    pub fn is_full(&self) -> bool {
        self.queued.len() >= MAX_BATCH
    }

    /// What waits to be sent, oldest first; `flush` sends it.
    #[cfg(test)]
    pub fn take(&mut self) -> Vec<Transmit> {
        std::mem::take(&mut self.queued)
    }

    /// Sends everything queued. UDP: a full socket buffer or an unreachable peer loses that
    /// datagram, as the network would; retransmission is the protocols' business.
    pub fn flush(&mut self, socket: &UdpSocket, counters: &WorkerCounters) {
        if self.queued.is_empty() {
            return;
        }
        let sent = send_all(socket, &self.queued, &mut self.segmentation_refused);
        // The sent buffers seal the next packets (str0m patch 6) instead of going back
        // through malloc; the Vec keeps its capacity.
        for transmit in self.queued.drain(..) {
            str0m::net::recycle(transmit.contents);
        }
        counters.packets_out.fetch_add(sent.packets, Relaxed);
        counters.bytes_out.fetch_add(sent.bytes, Relaxed);
        counters.send_drops.fetch_add(sent.drops, Relaxed);
        counters.segmented_out.fetch_add(sent.segmented, Relaxed);
    }
}

/// How many datagrams from the start of `transmits` one segmented message can carry: those
/// that go from one source to one address and have the first one's length, then at most one
/// shorter, which ends the run. UDP segmentation cuts a message into pieces of the first
/// length, so only such a run comes out as the same datagrams. 0 for no transmits.
#[cfg(any(target_os = "linux", test))]
fn run_length(transmits: &[Transmit]) -> usize {
    let Some(first) = transmits.first() else {
        return 0;
    };
    let segment = first.contents.len();
    let same_path = |t: &Transmit| t.destination == first.destination && t.source == first.source;
    let mut bytes = segment;
    let mut count = 1;
    for next in &transmits[1..] {
        let len = next.contents.len();
        if count == MAX_SEGMENTS
            || len == 0
            || len > segment
            || bytes + len > MAX_MESSAGE_BYTES
            || !same_path(next)
        {
            break;
        }
        count += 1;
        bytes += len;
        if len < segment {
            break;
        }
    }
    count
}

#[cfg(target_os = "linux")]
fn send_all(socket: &UdpSocket, transmits: &[Transmit], segmentation_refused: &mut bool) -> Sent {
    let mut sent = Sent::default();
    for chunk in transmits.chunks(MAX_BATCH) {
        sent.add(mmsg::send(socket, chunk, segmentation_refused));
    }
    sent
}

/// Elsewhere, one `sendto` per datagram.
#[cfg(not(target_os = "linux"))]
fn send_all(socket: &UdpSocket, transmits: &[Transmit], _: &mut bool) -> Sent {
    let mut sent = Sent::default();
    for transmit in transmits {
        match socket.try_send_to(&transmit.contents, transmit.destination) {
            Ok(len) => {
                sent.packets += 1;
                sent.bytes += len as u64;
            }
            Err(_) => sent.drops += 1,
        }
    }
    sent
}

#[cfg(target_os = "linux")]
mod mmsg {
    use std::io;
    use std::mem::{self, MaybeUninit};
    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;

    use str0m::net::Transmit;
    use tokio::net::UdpSocket;

    use super::{MAX_BATCH, Sent, run_length};

    /// Room for one control message carrying the segment size (a `u16`).
    const CONTROL_SPACE: usize = unsafe { libc::CMSG_SPACE(2) } as usize;

    /// A control message buffer, aligned as `cmsghdr` requires.
    #[repr(C, align(8))]
    struct Control([u8; CONTROL_SPACE]);

    /// Sends up to [`MAX_BATCH`] datagrams with `sendmmsg`, each run that [`run_length`]
    /// finds as one segmented message unless `segmentation_refused`. A message the kernel
    /// refuses (e.g. `EHOSTUNREACH`) is counted as dropped and the rest still go; a full
    /// socket buffer (`EAGAIN`) drops what is left of the chunk. A segmented message refused
    /// as such (`EIO` from a device without checksum offload, `EINVAL`, ...) sets
    /// `segmentation_refused` and the rest of the chunk goes again without segmentation.
    pub(super) fn send(
        socket: &UdpSocket,
        chunk: &[Transmit],
        segmentation_refused: &mut bool,
    ) -> Sent {
        debug_assert!(chunk.len() <= MAX_BATCH);
        // Only the first entries are written and passed to the kernel. Zeroing the whole
        // arrays (13 KiB) on every call cost 4.5% of the agent's instructions when a round
        // forwards a few datagrams.
        let mut addrs = [const { MaybeUninit::<libc::sockaddr_storage>::uninit() }; MAX_BATCH];
        let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; MAX_BATCH];
        let mut controls = [const { MaybeUninit::<Control>::uninit() }; MAX_BATCH];
        let mut headers = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; MAX_BATCH];
        // Each message's first datagram and datagram count.
        let mut runs = [(0u8, 0u8); MAX_BATCH];
        for (i, transmit) in chunk.iter().enumerate() {
            iovs[i].write(libc::iovec {
                // The kernel only reads through this pointer (sendmmsg).
                iov_base: transmit.contents.as_ptr() as *mut libc::c_void,
                iov_len: transmit.contents.len(),
            });
        }
        let iovs = iovs.as_mut_ptr().cast::<libc::iovec>();
        let mut messages = 0;
        let mut start = 0;
        while start < chunk.len() {
            let run = if *segmentation_refused {
                1
            } else {
                run_length(&chunk[start..])
            };
            let addr_len = write_sockaddr(chunk[start].destination, &mut addrs[messages]);
            // SAFETY: all-zero is a valid value of this plain C struct (no control data, no
            // flags); the fields that matter are set next.
            let mut header: libc::mmsghdr = unsafe { mem::zeroed() };
            header.msg_hdr.msg_name = addrs[messages].as_mut_ptr().cast();
            header.msg_hdr.msg_namelen = addr_len;
            // SAFETY: iovs[start..start + run] were written above (start + run <= len).
            header.msg_hdr.msg_iov = unsafe { iovs.add(start) };
            header.msg_hdr.msg_iovlen = run;
            if run > 1 {
                let segment = chunk[start].contents.len() as u16;
                write_segment_size(&mut header.msg_hdr, &mut controls[messages], segment);
            }
            headers[messages].write(header);
            runs[messages] = (start as u8, run as u8);
            messages += 1;
            start += run;
        }
        let headers = headers.as_mut_ptr().cast::<libc::mmsghdr>();
        let fd = socket.as_raw_fd();
        let mut sent = Sent::default();
        let mut offset = 0;
        while offset < messages {
            // SAFETY: headers[..messages] are initialised and point into `addrs`, `iovs`,
            // `controls` and the transmits' buffers, all alive and unmoved for the call.
            let result = unsafe {
                libc::sendmmsg(
                    fd,
                    headers.add(offset),
                    (messages - offset) as libc::c_uint,
                    0,
                )
            };
            if result > 0 {
                let done = result as usize;
                for (i, &(_, run)) in runs.iter().enumerate().skip(offset).take(done) {
                    sent.packets += u64::from(run);
                    if run > 1 {
                        sent.segmented += u64::from(run);
                    }
                    // SAFETY: initialised above (i < messages); the kernel set msg_len.
                    sent.bytes += u64::from(unsafe { (*headers.add(i)).msg_len });
                }
                offset += done;
                continue;
            }
            let error = io::Error::last_os_error();
            let (first, run) = runs[offset];
            let datagrams_left = chunk.len() - usize::from(first);
            match error.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => {
                    sent.drops += datagrams_left as u64;
                    break;
                }
                _ if result < 0 && run > 1 && refuses_segmentation(&error) => {
                    tracing::warn!(
                        %error,
                        "the kernel refused UDP segmentation offload; sending one datagram per message from now on"
                    );
                    *segmentation_refused = true;
                    sent.add(send(
                        socket,
                        &chunk[usize::from(first)..],
                        segmentation_refused,
                    ));
                    break;
                }
                // The first message of the rest failed on its own: skip it.
                _ if result < 0 => {
                    sent.drops += u64::from(run);
                    offset += 1;
                }
                // Zero sent without an error should not happen; do not spin on it.
                _ => {
                    sent.drops += datagrams_left as u64;
                    break;
                }
            }
        }
        sent
    }

    /// Errors with which the kernel or the device refuses segmentation itself, rather than
    /// one destination.
    fn refuses_segmentation(error: &io::Error) -> bool {
        matches!(
            error.raw_os_error(),
            Some(libc::EIO | libc::EINVAL | libc::EMSGSIZE | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
        )
    }

    /// Attaches a `UDP_SEGMENT` control message of `segment` bytes, in `control`, to `header`.
    fn write_segment_size(
        header: &mut libc::msghdr,
        control: &mut MaybeUninit<Control>,
        segment: u16,
    ) {
        let control = control.write(Control([0; CONTROL_SPACE]));
        header.msg_control = control.0.as_mut_ptr().cast();
        header.msg_controllen = CONTROL_SPACE;
        // SAFETY: msg_control points at CONTROL_SPACE zeroed, aligned bytes, room for one
        // header and two bytes of data, so CMSG_FIRSTHDR is non-null and CMSG_DATA inside.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(header);
            (*cmsg).cmsg_level = libc::SOL_UDP;
            (*cmsg).cmsg_type = libc::UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(2) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment);
        }
    }

    /// Writes `addr` as a C socket address into `storage` (whose bytes past the address stay
    /// uninitialised; the kernel reads only the returned length) and returns its length.
    fn write_sockaddr(
        addr: SocketAddr,
        storage: &mut MaybeUninit<libc::sockaddr_storage>,
    ) -> libc::socklen_t {
        let storage = storage.as_mut_ptr();
        match addr {
            SocketAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(v4.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: `storage` comes from a live &mut, and sockaddr_storage is larger
                // than and aligned for sockaddr_in.
                unsafe { std::ptr::write(storage.cast::<libc::sockaddr_in>(), sin) };
                mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(v6) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: v6.scope_id(),
                };
                // SAFETY: `storage` comes from a live &mut, and sockaddr_storage is larger
                // than and aligned for sockaddr_in6.
                unsafe { std::ptr::write(storage.cast::<libc::sockaddr_in6>(), sin6) };
                mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use str0m::net::Protocol;

    fn transmit(from: SocketAddr, to: SocketAddr, body: &[u8]) -> Transmit {
        Transmit {
            proto: Protocol::Udp,
            source: from,
            destination: to,
            contents: body.to_vec().into(),
        }
    }

    #[tokio::test]
    async fn a_flush_delivers_every_datagram_to_its_own_address() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let from = socket.local_addr().expect("addr");
        let receivers = [
            std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"),
            std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"),
        ];
        let counters = WorkerCounters::default();
        let mut batch = SendBatch::default();
        // More than one system call's worth, alternating destinations.
        let total = MAX_BATCH + 6;
        for i in 0..total {
            let to = receivers[i % 2].local_addr().expect("addr");
            batch.push(transmit(from, to, &[i as u8; 3]));
        }
        batch.flush(&socket, &counters);
        assert_eq!(counters.packets_out.load(Relaxed), total as u64);
        assert_eq!(counters.bytes_out.load(Relaxed), 3 * total as u64);
        assert_eq!(counters.send_drops.load(Relaxed), 0);
        for (r, receiver) in receivers.iter().enumerate() {
            let expected: Vec<Vec<u8>> = (r..total).step_by(2).map(|i| vec![i as u8; 3]).collect();
            assert_receives(receiver, from, &expected);
        }
    }

    #[tokio::test]
    async fn an_address_of_the_wrong_family_is_dropped_and_the_rest_go() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let from = socket.local_addr().expect("addr");
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = receiver.local_addr().expect("addr");
        let counters = WorkerCounters::default();
        let mut batch = SendBatch::default();
        batch.push(transmit(from, "[::1]:9".parse().expect("v6"), b"x"));
        batch.push(transmit(from, to, b"ok"));
        batch.flush(&socket, &counters);
        assert_eq!(counters.send_drops.load(Relaxed), 1);
        assert_eq!(counters.packets_out.load(Relaxed), 1);
        let mut buf = [0u8; 4];
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .expect("timeout");
        let (len, _) = receiver.recv_from(&mut buf).expect("the good datagram");
        assert_eq!(&buf[..len], b"ok");
    }

    fn lengths(to: &[(SocketAddr, usize)]) -> Vec<Transmit> {
        let from: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        to.iter()
            .map(|&(dest, len)| transmit(from, dest, &vec![0; len]))
            .collect()
    }

    #[test]
    fn a_run_is_one_address_at_one_length_ended_by_at_most_one_shorter() {
        let a: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:2".parse().expect("addr");
        assert_eq!(run_length(&[]), 0);
        // A frame's packets, the last shorter, then the next frame's.
        let frame = lengths(&[(a, 1200), (a, 1200), (a, 700), (a, 1200)]);
        assert_eq!(run_length(&frame), 3);
        // Another address ends it.
        assert_eq!(run_length(&lengths(&[(a, 900), (a, 900), (b, 900)])), 2);
        // A longer datagram cannot be a segment of a shorter first one.
        assert_eq!(run_length(&lengths(&[(a, 100), (a, 101)])), 1);
        // Nor can an empty one.
        assert_eq!(run_length(&lengths(&[(a, 100), (a, 0)])), 1);
        assert_eq!(run_length(&lengths(&[(a, 0), (a, 0)])), 1);
        // The kernel's segment count and datagram size bound it.
        assert_eq!(run_length(&lengths(&[(a, 10); 70])), MAX_SEGMENTS);
        assert_eq!(run_length(&lengths(&[(a, 20_000); 5])), 3);
        // Another source (a relay's own socket) ends it too.
        let mut other_source = lengths(&[(a, 50), (a, 50)]);
        other_source[1].source = "127.0.0.1:5001".parse().expect("addr");
        assert_eq!(run_length(&other_source), 1);
    }

    /// Reads as many datagrams from `receiver` as `expected` holds and checks they are those,
    /// in order, each on its own.
    fn assert_receives(receiver: &std::net::UdpSocket, from: SocketAddr, expected: &[Vec<u8>]) {
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .expect("timeout");
        let mut buf = [0u8; 2048];
        for body in expected {
            let (len, source) = receiver.recv_from(&mut buf).expect("a datagram");
            assert_eq!((&buf[..len], source), (&body[..], from));
        }
    }

    /// A frame's packets to one subscriber: `count` of `size` bytes and a shorter last one,
    /// each with distinct bytes.
    fn frame(tag: u8, count: usize, size: usize) -> Vec<Vec<u8>> {
        let mut bodies: Vec<Vec<u8>> = (0..count)
            .map(|i| vec![tag.wrapping_add(i as u8); size])
            .collect();
        bodies.push(vec![tag.wrapping_sub(1); size / 3]);
        bodies
    }

    #[tokio::test]
    async fn a_run_to_one_subscriber_goes_as_one_message_and_arrives_as_its_datagrams() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let from = socket.local_addr().expect("addr");
        let receivers = [
            std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"),
            std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"),
        ];
        let to: Vec<SocketAddr> = receivers
            .iter()
            .map(|r| r.local_addr().expect("addr"))
            .collect();
        // Two subscribers' shares of one frame, then an audio packet to the first.
        let first = frame(10, 5, 1_100);
        let second = frame(60, 5, 1_100);
        let audio = vec![vec![7u8; 90]];
        let counters = WorkerCounters::default();
        let mut batch = SendBatch::default();
        for (dest, bodies) in [(to[0], &first), (to[1], &second), (to[0], &audio)] {
            for body in bodies {
                batch.push(transmit(from, dest, body));
            }
        }
        batch.flush(&socket, &counters);
        let datagrams = first.len() + second.len() + audio.len();
        let bytes: usize = [&first, &second, &audio]
            .iter()
            .flat_map(|bodies| bodies.iter().map(Vec::len))
            .sum();
        assert_eq!(counters.packets_out.load(Relaxed), datagrams as u64);
        assert_eq!(counters.bytes_out.load(Relaxed), bytes as u64);
        assert_eq!(counters.send_drops.load(Relaxed), 0);
        #[cfg(target_os = "linux")]
        {
            assert!(!batch.segmentation_refused);
            assert_eq!(
                counters.segmented_out.load(Relaxed),
                (first.len() + second.len()) as u64
            );
        }
        let first_with_audio: Vec<Vec<u8>> = first.iter().chain(&audio).cloned().collect();
        assert_receives(&receivers[0], from, &first_with_audio);
        assert_receives(&receivers[1], from, &second);
    }

    /// `SO_NO_CHECK` (no UDP checksums) is a socket the kernel refuses to segment for, as a
    /// device without checksum offload would.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_socket_that_cannot_segment_sends_each_datagram_on_its_own() {
        use std::os::fd::AsRawFd;
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and an int option of the right size.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NO_CHECK,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0, "SO_NO_CHECK: {}", std::io::Error::last_os_error());
        let from = socket.local_addr().expect("addr");
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = receiver.local_addr().expect("addr");
        let counters = WorkerCounters::default();
        let mut batch = SendBatch::default();
        let bodies = frame(30, 4, 800);
        for body in &bodies {
            batch.push(transmit(from, to, body));
        }
        batch.flush(&socket, &counters);
        assert!(batch.segmentation_refused);
        assert_eq!(counters.packets_out.load(Relaxed), bodies.len() as u64);
        assert_eq!(counters.send_drops.load(Relaxed), 0);
        assert_eq!(counters.segmented_out.load(Relaxed), 0);
        assert_receives(&receiver, from, &bodies);
        // Later flushes do not try again.
        for body in &bodies {
            batch.push(transmit(from, to, body));
        }
        batch.flush(&socket, &counters);
        assert_eq!(counters.packets_out.load(Relaxed), 2 * bodies.len() as u64);
        assert_eq!(counters.segmented_out.load(Relaxed), 0);
        assert_receives(&receiver, from, &bodies);
    }
}
