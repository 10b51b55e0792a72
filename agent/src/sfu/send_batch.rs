//! Outgoing datagrams gathered while the worker handles one round of input, then sent with
//! one `sendmmsg` system call per [`MAX_BATCH`] datagrams instead of one `sendto` each. A
//! frame fanned out to N subscribers is N datagrams to N addresses, so the per-call cost of
//! the kernel's send path is what batching saves (GSO would not help: the destinations
//! differ). A datagram waits at most until the end of the current round, microseconds; the
//! worker's loop sends the batch then.

use std::sync::atomic::Ordering::Relaxed;

use str0m::net::Transmit;
use tokio::net::UdpSocket;

use super::counters::WorkerCounters;

/// Datagrams per system call. The kernel takes up to 1024 (`UIO_MAXIOV`); 64 keeps the
/// headers on the stack small and already makes the per-call cost negligible.
const MAX_BATCH: usize = 64;

/// Transmits waiting for the end of the round.
#[derive(Default)]
pub struct SendBatch {
    queued: Vec<Transmit>,
}

/// What one flush did, for the counters.
#[derive(Debug, Default, PartialEq, Eq)]
struct Sent {
    packets: u64,
    bytes: u64,
    drops: u64,
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
        let sent = send_all(socket, &self.queued);
        // The sent buffers seal the next packets (str0m patch 6) instead of going back
        // through malloc; the Vec keeps its capacity.
        for transmit in self.queued.drain(..) {
            str0m::net::recycle(transmit.contents);
        }
        counters.packets_out.fetch_add(sent.packets, Relaxed);
        counters.bytes_out.fetch_add(sent.bytes, Relaxed);
        counters.send_drops.fetch_add(sent.drops, Relaxed);
    }
}

#[cfg(target_os = "linux")]
fn send_all(socket: &UdpSocket, transmits: &[Transmit]) -> Sent {
    let mut sent = Sent::default();
    for chunk in transmits.chunks(MAX_BATCH) {
        let done = mmsg::send(socket, chunk);
        sent.packets += done.packets;
        sent.bytes += done.bytes;
        sent.drops += done.drops;
    }
    sent
}

/// Elsewhere, one `sendto` per datagram.
#[cfg(not(target_os = "linux"))]
fn send_all(socket: &UdpSocket, transmits: &[Transmit]) -> Sent {
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

    use super::{MAX_BATCH, Sent};

    /// Sends up to [`MAX_BATCH`] datagrams with `sendmmsg`. A datagram the kernel refuses
    /// (e.g. `EHOSTUNREACH`) is counted as dropped and the rest still go; a full socket
    /// buffer (`EAGAIN`) drops what is left of the chunk.
    pub(super) fn send(socket: &UdpSocket, chunk: &[Transmit]) -> Sent {
        debug_assert!(chunk.len() <= MAX_BATCH);
        let count = chunk.len();
        // Only the first `count` entries are written and passed to the kernel. Zeroing the
        // whole arrays (13 KiB) on every call cost 4.5% of the agent's instructions when a
        // round forwards a few datagrams.
        let mut addrs = [const { MaybeUninit::<libc::sockaddr_storage>::uninit() }; MAX_BATCH];
        let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; MAX_BATCH];
        let mut headers = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; MAX_BATCH];
        for (i, transmit) in chunk.iter().enumerate() {
            let addr_len = write_sockaddr(transmit.destination, &mut addrs[i]);
            let addr = addrs[i].as_mut_ptr();
            let iov = iovs[i].write(libc::iovec {
                // The kernel only reads through this pointer (sendmmsg).
                iov_base: transmit.contents.as_ptr() as *mut libc::c_void,
                iov_len: transmit.contents.len(),
            });
            // SAFETY: all-zero is a valid value of this plain C struct (no control data, no
            // flags); the fields that matter are set next.
            let mut header: libc::mmsghdr = unsafe { mem::zeroed() };
            header.msg_hdr.msg_name = addr.cast();
            header.msg_hdr.msg_namelen = addr_len;
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            headers[i].write(header);
        }
        let headers = headers.as_mut_ptr().cast::<libc::mmsghdr>();
        let fd = socket.as_raw_fd();
        let mut sent = Sent::default();
        let mut offset = 0;
        while offset < count {
            // SAFETY: headers[..count] are initialised and point into `addrs`, `iovs` and
            // the transmits' buffers, all alive and unmoved for the duration of the call.
            let result = unsafe {
                libc::sendmmsg(fd, headers.add(offset), (count - offset) as libc::c_uint, 0)
            };
            if result > 0 {
                let done = result as usize;
                sent.packets += done as u64;
                sent.bytes += (offset..offset + done)
                    // SAFETY: initialised above (index < count); the kernel set msg_len.
                    .map(|i| u64::from(unsafe { (*headers.add(i)).msg_len }))
                    .sum::<u64>();
                offset += done;
                continue;
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => {
                    sent.drops += (count - offset) as u64;
                    break;
                }
                // The first datagram of the rest failed on its own: skip it.
                _ if result < 0 => {
                    sent.drops += 1;
                    offset += 1;
                }
                // Zero sent without an error should not happen; do not spin on it.
                _ => {
                    sent.drops += (count - offset) as u64;
                    break;
                }
            }
        }
        sent
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
        let mut buf = [0u8; 16];
        for (r, receiver) in receivers.iter().enumerate() {
            receiver
                .set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .expect("timeout");
            for i in (r..total).step_by(2) {
                let (len, source) = receiver.recv_from(&mut buf).expect("a datagram");
                assert_eq!((&buf[..len], source), (&[i as u8; 3][..], from));
            }
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
}
