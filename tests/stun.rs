//! `[webrtc] ice_servers`: a node behind NAT learns its public address from a STUN server at
//! start-up (here a local one that answers RFC 8489 Binding requests), and a STUN server that
//! never answers stops the agent with a clear error instead of announcing a dead address.

mod harness;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use harness::{AgentProcess, AgentSpec, Etcd, unique_prefix, wait_for};
use ion_cluster::model::NodeRecord;

/// Answers every Binding request with MAPPED-ADDRESS = the request's source, as a STUN server
/// on the far side of a NAT would. Counts the requests it answered.
fn stun_server() -> (SocketAddr, Arc<AtomicU32>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("binding the STUN server");
    let addr = socket.local_addr().expect("address");
    let answered = Arc::new(AtomicU32::new(0));
    let counter = answered.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 576];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            // A Binding request: type 0x0001, the magic cookie, a 12-byte transaction id.
            if len < 20 || buf[0..2] != [0, 1] || buf[4..8] != [0x21, 0x12, 0xA4, 0x42] {
                continue;
            }
            let SocketAddr::V4(source) = from else {
                continue;
            };
            let mut response = vec![0x01, 0x01, 0, 12];
            response.extend_from_slice(&buf[4..20]);
            response.extend_from_slice(&[0, 0x01, 0, 8, 0, 0x01]);
            response.extend_from_slice(&source.port().to_be_bytes());
            response.extend_from_slice(&source.ip().octets());
            if socket.send_to(&response, from).is_ok() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (addr, answered)
}

#[tokio::test]
async fn the_public_address_comes_from_the_stun_server() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("stun");
    let store = etcd.store(&prefix).await;
    let (server, answered) = stun_server();
    let spec = AgentSpec::new("stun-1").set("webrtc", "workers", 2).set(
        "webrtc",
        "ice_servers",
        vec![format!("stun:{server}")],
    );
    let agent = AgentProcess::start(&etcd, &prefix, spec);
    let node: NodeRecord = wait_for("the node to register", Duration::from_secs(15), || async {
        store.get(&store.keys().node("stun-1")).await.ok().flatten()
    })
    .await;
    // One Binding request per media socket, and the mapped address is what the node announces.
    assert_eq!(answered.load(Ordering::SeqCst), 2);
    assert_eq!(node.address, "127.0.0.1");
    assert_eq!(
        agent.log().matches("discovered the public address").count(),
        2,
        "{}",
        agent.log()
    );
}

#[tokio::test]
async fn a_silent_stun_server_is_a_clear_start_up_error() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("stun-silent");
    let silent = UdpSocket::bind("127.0.0.1:0").expect("binding");
    let url = format!("stun:{}", silent.local_addr().expect("address"));
    let spec = AgentSpec::new("stun-2").set("webrtc", "ice_servers", vec![url.clone()]);
    let mut agent = AgentProcess::start(&etcd, &prefix, spec);
    let status = agent.wait_exit(Duration::from_secs(20)).await;
    assert!(!status.success());
    let log = agent.log();
    assert!(log.contains(&url) && log.contains("nat1to1"), "{log}");
}
