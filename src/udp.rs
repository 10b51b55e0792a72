//! How media leaves a UDP socket: the one socket option that the agent's media sockets and
//! the floor bench (`ionctl bench floor`) share, so the floor keeps doing only what the
//! agent cannot avoid.

use std::io;
use std::os::fd::AsRawFd;

/// Sends every IPv4 datagram of `socket` as an atomic datagram: Don't Fragment set and IP
/// ID 0 (RFC 6864), whatever path MTU the kernel has cached (`IP_PMTUDISC_PROBE`).
///
/// Linux's default (`IP_PMTUDISC_WANT`) already sets DF on a datagram that fits the route's
/// MTU, but it also lets the kernel fragment it, so every datagram draws an IP ID from the
/// host-wide generator: a SipHash and an atomic add on a shared table, about 3.5% of the
/// agent's CPU in a 30-person meeting. The cost: on a path whose MTU is below a packet's
/// size, the kernel no longer fragments the packet once it has learned that MTU, and the
/// packet is lost on the way. WebRTC sizes packets to fit 1,200 bytes (str0m does) so that
/// such paths do not arise. On an IPv6 socket it applies to IPv4-mapped peers; IPv6 itself
/// has no ID to draw.
pub fn send_atomic_datagrams(socket: &impl AsRawFd) -> io::Result<()> {
    let value: nix::libc::c_int = nix::libc::IP_PMTUDISC_PROBE;
    // SAFETY: `value` outlives the call and the length given is its size; the kernel only
    // reads it. An fd that is not a socket is an error return, not undefined behaviour.
    let rc = unsafe {
        nix::libc::setsockopt(
            socket.as_raw_fd(),
            nix::libc::IPPROTO_IP,
            nix::libc::IP_MTU_DISCOVER,
            (&raw const value).cast(),
            size_of::<nix::libc::c_int>() as nix::libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn mtu_discover(socket: &UdpSocket) -> nix::libc::c_int {
        let mut value: nix::libc::c_int = -1;
        let mut len = size_of::<nix::libc::c_int>() as nix::libc::socklen_t;
        // SAFETY: `value` and `len` outlive the call and `len` is `value`'s size.
        let rc = unsafe {
            nix::libc::getsockopt(
                socket.as_raw_fd(),
                nix::libc::IPPROTO_IP,
                nix::libc::IP_MTU_DISCOVER,
                (&raw mut value).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "getsockopt: {}", io::Error::last_os_error());
        value
    }

    #[test]
    fn a_media_socket_sends_atomic_datagrams_and_still_delivers() {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            mtu_discover(&sender),
            nix::libc::IP_PMTUDISC_WANT,
            "the kernel's default"
        );
        send_atomic_datagrams(&sender).unwrap();
        assert_eq!(mtu_discover(&sender), nix::libc::IP_PMTUDISC_PROBE);

        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let packet = [7u8; 1200];
        sender
            .send_to(&packet, receiver.local_addr().unwrap())
            .unwrap();
        let mut buf = [0u8; 1500];
        let (len, from) = receiver.recv_from(&mut buf).unwrap();
        assert_eq!((len, from), (packet.len(), sender.local_addr().unwrap()));
        assert_eq!(buf[..len], packet);
    }

    #[test]
    fn an_ipv6_socket_takes_it_for_its_ipv4_mapped_peers() {
        let socket = UdpSocket::bind("[::]:0").expect("this test needs IPv6 in the kernel");
        send_atomic_datagrams(&socket).unwrap();
        assert_eq!(mtu_discover(&socket), nix::libc::IP_PMTUDISC_PROBE);
    }

    #[test]
    fn a_file_that_is_not_a_socket_is_an_error() {
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(send_atomic_datagrams(&file).is_err());
    }
}
