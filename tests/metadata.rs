//! Zone and machine type from a (local, fake) GCE metadata server, and the fallback to config
//! when the server does not answer.

mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use harness::{AgentProcess, AgentSpec, Etcd, unique_prefix, wait_for};
use ion_cluster::model::NodeRecord;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves the two metadata paths the agent asks for, and only to requests that carry
/// `Metadata-Flavor: Google`, as the real server does. Counts the requests it answered.
async fn fake_metadata_server() -> (String, Arc<AtomicU32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding");
    let host = listener.local_addr().expect("address").to_string();
    let answered = Arc::new(AtomicU32::new(0));
    let counter = answered.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request).to_lowercase();
                let path = request
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let flavored = request.contains("metadata-flavor: google");
                let body = match path.as_str() {
                    "/computemetadata/v1/instance/zone" => "projects/4242/zones/europe-west1-b",
                    "/computemetadata/v1/instance/machine-type" => {
                        "projects/4242/machineTypes/n2-highcpu-8"
                    }
                    _ => "",
                };
                let response = if flavored && !body.is_empty() {
                    counter.fetch_add(1, Ordering::SeqCst);
                    format!(
                        "HTTP/1.1 200 OK\r\nMetadata-Flavor: Google\r\nContent-Type: \
                         application/text\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_owned()
                };
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (host, answered)
}

#[tokio::test]
async fn zone_and_machine_type_come_from_the_metadata_server() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("metadata");
    let store = etcd.store(&prefix).await;
    let (host, answered) = fake_metadata_server().await;
    let spec = AgentSpec::new("gce-1")
        .set("gce", "metadata", "always")
        .set("gce", "metadata_host", host);
    let _agent = AgentProcess::start(&etcd, &prefix, spec);
    let key = store.keys().node("gce-1");
    let node: NodeRecord = wait_for("the node to register", Duration::from_secs(15), || async {
        store.get(&key).await.expect("reading the node")
    })
    .await;
    assert_eq!(node.zone, "europe-west1-b");
    assert_eq!(node.machine_type, "n2-highcpu-8");
    assert_eq!(answered.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn config_is_used_when_the_metadata_server_is_down() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("metadata-down");
    let store = etcd.store(&prefix).await;
    let dead = format!("127.0.0.1:{}", harness::free_port());
    let spec = AgentSpec::new("gce-2")
        .set("gce", "metadata", "always")
        .set("gce", "metadata_host", dead);
    let agent = AgentProcess::start(&etcd, &prefix, spec);
    let key = store.keys().node("gce-2");
    let node: NodeRecord = wait_for("the node to register", Duration::from_secs(15), || async {
        store.get(&key).await.expect("reading the node")
    })
    .await;
    assert_eq!(node.zone, "test-zone-a");
    assert_eq!(node.machine_type, "e2-standard-2");
    assert!(
        agent.log().contains("metadata server did not answer"),
        "{}",
        agent.log()
    );
}
