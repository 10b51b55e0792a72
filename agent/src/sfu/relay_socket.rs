//! The edge end of a relay has a UDP socket of its own. str0m tells its `Rtc`s apart by
//! the remote address of a datagram, and every relay from one origin worker comes from the
//! same address: two relays on one socket (two sessions, or both directions between two
//! nodes) would each accept the other's packets. A socket per edge end makes every relay's
//! address pair unique; the origin end and the clients stay on the worker's socket.
//!
//! [`RecvAny`] waits on all of a worker's relay sockets at once, without allocating.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::ReadBuf;
use tokio::net::UdpSocket;

use super::SfuError;
use super::participant::ParticipantId;

/// An edge end's socket and the participant (the relay) it belongs to.
pub struct RelaySocket {
    pub participant: ParticipantId,
    pub socket: Arc<UdpSocket>,
    /// Where the origin sends: the candidate the relay announces.
    pub candidate: SocketAddr,
}

/// Binds a socket on `bind_ip` for the relay `participant`; it announces `announce_ip` with
/// the socket's port.
pub fn bind(
    participant: ParticipantId,
    bind_ip: std::net::IpAddr,
    announce_ip: std::net::IpAddr,
) -> Result<RelaySocket, SfuError> {
    let failed = |e: io::Error| SfuError::Internal(format!("binding a relay socket: {e}"));
    let socket = std::net::UdpSocket::bind(SocketAddr::new(bind_ip, 0)).map_err(failed)?;
    socket.set_nonblocking(true).map_err(failed)?;
    if let Err(error) = ion_cluster::udp::send_atomic_datagrams(&socket) {
        tracing::warn!(%error, "relay socket: cannot set IP_MTU_DISCOVER");
    }
    let port = socket.local_addr().map_err(failed)?.port();
    Ok(RelaySocket {
        participant,
        socket: Arc::new(UdpSocket::from_std(socket).map_err(failed)?),
        candidate: SocketAddr::new(announce_ip, port),
    })
}

/// The next datagram on any of `sockets`: which relay it is for and what `recv_from` said.
/// Pending forever when there are none.
pub struct RecvAny<'a> {
    pub sockets: &'a [RelaySocket],
    pub buf: &'a mut [u8],
}

impl Future for RecvAny<'_> {
    type Output = (ParticipantId, SocketAddr, io::Result<(usize, SocketAddr)>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        for relay in this.sockets {
            let mut read = ReadBuf::new(this.buf);
            match relay.socket.poll_recv_from(cx, &mut read) {
                Poll::Ready(result) => {
                    let len = read.filled().len();
                    return Poll::Ready((
                        relay.participant,
                        relay.candidate,
                        result.map(|source| (len, source)),
                    ));
                }
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }
}
