//! Public address discovery through a STUN server (RFC 8489 Binding), for a node behind NAT
//! that does not know its external IP (`[webrtc] ice_servers` without `nat1to1`). Each media
//! socket asks once at start-up; the mapped address becomes the candidate it announces.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const MAPPED_ADDRESS: u16 = 0x0001;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;

/// `stun:host[:port]` → a socket address (port 3478 by default). `turn:` and other schemes
/// are not used for discovery.
pub fn resolve(url: &str) -> Option<SocketAddr> {
    let rest = url.strip_prefix("stun:")?;
    let rest = rest.split('?').next().unwrap_or(rest);
    let with_port = if rest
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !rest.ends_with(']')
    {
        rest.to_owned()
    } else {
        format!("{rest}:3478")
    };
    with_port.to_socket_addrs().ok()?.next()
}

pub fn binding_request(transaction: [u8; 12]) -> [u8; 20] {
    let mut message = [0u8; 20];
    message[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    // Length 0: no attributes.
    message[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    message[8..20].copy_from_slice(&transaction);
    message
}

/// The mapped address of a Binding success response to `transaction`.
pub fn parse_binding_response(message: &[u8], transaction: [u8; 12]) -> Option<SocketAddr> {
    if message.len() < 20
        || u16::from_be_bytes([message[0], message[1]]) != BINDING_SUCCESS
        || message[4..8] != MAGIC_COOKIE.to_be_bytes()
        || message[8..20] != transaction
    {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([message[2], message[3]]));
    let body = message.get(20..20 + length)?;
    let mut plain = None;
    let mut offset = 0;
    while offset + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[offset], body[offset + 1]]);
        let len = usize::from(u16::from_be_bytes([body[offset + 2], body[offset + 3]]));
        let value = body.get(offset + 4..offset + 4 + len)?;
        match kind {
            XOR_MAPPED_ADDRESS => return address(value, true, transaction),
            MAPPED_ADDRESS => plain = address(value, false, transaction),
            _ => {}
        }
        // Attributes are padded to 4 bytes.
        offset += 4 + len.div_ceil(4) * 4;
    }
    plain
}

fn address(value: &[u8], xor: bool, transaction: [u8; 12]) -> Option<SocketAddr> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let mut port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]);
    if xor {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    let ip = match value.get(1)? {
        0x01 => {
            let mut octets: [u8; 4] = value.get(4..8)?.try_into().ok()?;
            if xor {
                for (o, c) in octets.iter_mut().zip(cookie) {
                    *o ^= c;
                }
            }
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        0x02 => {
            let mut octets: [u8; 16] = value.get(4..20)?.try_into().ok()?;
            if xor {
                let mask: Vec<u8> = cookie.iter().chain(transaction.iter()).copied().collect();
                for (o, m) in octets.iter_mut().zip(mask) {
                    *o ^= m;
                }
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Asks `server` for `socket`'s public address: three tries within `timeout`. The socket must
/// be in blocking mode.
pub fn discover(
    socket: &UdpSocket,
    server: SocketAddr,
    timeout: Duration,
) -> io::Result<SocketAddr> {
    let attempt_timeout = timeout / 3;
    socket.set_read_timeout(Some(attempt_timeout))?;
    let mut buf = [0u8; 576];
    for attempt in 0u8..3 {
        let mut transaction = [0u8; 12];
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_be_bytes();
        transaction.copy_from_slice(&seed[4..16]);
        transaction[0] ^= attempt;
        socket.send_to(&binding_request(transaction), server)?;
        loop {
            match socket.recv_from(&mut buf) {
                Ok((len, from)) if from == server => {
                    if let Some(mapped) = parse_binding_response(&buf[..len], transaction) {
                        socket.set_read_timeout(None)?;
                        return Ok(mapped);
                    }
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
    socket.set_read_timeout(None)?;
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no STUN answer from {server} within {timeout:?}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(transaction: [u8; 12], mapped: SocketAddr) -> Vec<u8> {
        let SocketAddr::V4(v4) = mapped else {
            panic!("v4 only in this helper");
        };
        let mut value = vec![0, 0x01];
        value.extend_from_slice(&(v4.port() ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes());
        for (o, c) in v4.ip().octets().iter().zip(MAGIC_COOKIE.to_be_bytes()) {
            value.push(o ^ c);
        }
        let mut message = Vec::new();
        message.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
        message.extend_from_slice(&(4 + value.len() as u16).to_be_bytes());
        message.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        message.extend_from_slice(&transaction);
        message.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
        message.extend_from_slice(&(value.len() as u16).to_be_bytes());
        message.extend_from_slice(&value);
        message
    }

    #[test]
    fn xor_mapped_address_round_trips() {
        let transaction = [7u8; 12];
        let mapped: SocketAddr = "203.0.113.9:40123".parse().unwrap();
        assert_eq!(
            parse_binding_response(&response(transaction, mapped), transaction),
            Some(mapped)
        );
        assert_eq!(
            parse_binding_response(&response(transaction, mapped), [8u8; 12]),
            None
        );
        let request = binding_request(transaction);
        assert_eq!(&request[0..2], &[0, 1]);
        assert_eq!(&request[8..], &transaction);
    }

    #[test]
    fn stun_urls_resolve_with_default_port() {
        assert_eq!(
            resolve("stun:127.0.0.1"),
            Some("127.0.0.1:3478".parse().unwrap())
        );
        assert_eq!(
            resolve("stun:127.0.0.1:19302"),
            Some("127.0.0.1:19302".parse().unwrap())
        );
        assert_eq!(resolve("turn:127.0.0.1:3478"), None);
    }

    #[test]
    fn discovery_asks_a_local_server() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server_addr = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 100];
            let (len, from) = server.recv_from(&mut buf).unwrap();
            assert_eq!(len, 20);
            let transaction: [u8; 12] = buf[8..20].try_into().unwrap();
            server
                .send_to(
                    &response(
                        transaction,
                        "198.51.100.7:5000".parse::<SocketAddr>().unwrap(),
                    ),
                    from,
                )
                .unwrap();
        });
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mapped = discover(&socket, server_addr, Duration::from_secs(3)).unwrap();
        assert_eq!(mapped, "198.51.100.7:5000".parse::<SocketAddr>().unwrap());
    }
}
