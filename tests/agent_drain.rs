//! Draining on the agent side: a drain key turns the node `draining` and makes it refuse new
//! sessions; deleting the key makes it ready again; a GCE preemption notice drains and stops
//! the agent like SIGTERM does.

mod harness;

use std::time::Duration;

use harness::{
    AgentProcess, AgentSpec, Etcd, join_with_placeholder_offer as join, unique_prefix, wait_for,
};
use ion_cluster::model::{DrainRequest, NodeRecord, NodeState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn drain_key_makes_the_node_draining_and_refuse_new_sessions_until_undrained() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("drain");
    let store = etcd.store(&prefix).await;
    let agent = AgentProcess::start(&etcd, &prefix, AgentSpec::new("drain-1"));
    let node_key = store.keys().node("drain-1");
    let state = |wanted: NodeState| {
        let store = store.clone();
        let key = node_key.clone();
        move || {
            let store = store.clone();
            let key = key.clone();
            async move {
                store
                    .get::<NodeRecord>(&key)
                    .await
                    .ok()
                    .flatten()
                    .filter(|n| n.state == wanted)
            }
        }
    };
    wait_for(
        "the node to be ready",
        Duration::from_secs(15),
        state(NodeState::Ready),
    )
    .await;

    let request = DrainRequest {
        requested_at: std::time::SystemTime::now(),
        deadline: None,
        reason: Some("test".to_owned()),
    };
    store
        .put(&store.keys().drain("drain-1"), &request)
        .await
        .expect("writing the drain key");
    wait_for(
        "the node to show draining",
        Duration::from_secs(5),
        state(NodeState::Draining),
    )
    .await;
    let reply = join(agent.port, "new-room").await;
    let message = reply["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("draining") && message.contains("drain-1"),
        "{reply}"
    );
    assert!(
        store
            .get::<serde_json::Value>(&store.keys().session("new-room"))
            .await
            .expect("get")
            .is_none(),
        "a draining node claimed a new session"
    );

    store
        .client()
        .delete(store.keys().drain("drain-1"), None)
        .await
        .expect("deleting the drain key");
    wait_for(
        "the node to be ready again",
        Duration::from_secs(5),
        state(NodeState::Ready),
    )
    .await;
    // Accepted by ownership now; the hand-written offer then fails in the media engine, for
    // a reason that is not the drain.
    let reply = join(agent.port, "new-room").await;
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.contains("draining"), "{reply}");
}

/// A metadata server whose `instance/preempted` answers TRUE, as GCE does when it reclaims
/// a Spot VM.
async fn preempting_metadata_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding");
    let host = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request);
                let body = if request.contains("/instance/preempted") {
                    "TRUE"
                } else if request.contains("/instance/zone") {
                    "projects/1/zones/us-east1-b"
                } else {
                    "projects/1/machineTypes/e2-small"
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\nMetadata-Flavor: Google\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    host
}

#[tokio::test]
async fn preemption_notice_drains_and_stops_the_agent() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("preempt");
    let store = etcd.store(&prefix).await;
    let host = preempting_metadata_server().await;
    let spec = AgentSpec::new("spot-1")
        .set("gce", "metadata", "always")
        .set("gce", "metadata_host", host);
    let mut agent = AgentProcess::start(&etcd, &prefix, spec);
    // The notice is already there, so the agent registers, sees it, and, having no
    // sessions, leaves at once.
    let status = agent.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "agent exited with {status}");
    assert!(agent.log().contains("preemption"), "{}", agent.log());
    assert!(
        store
            .get::<NodeRecord>(&store.keys().node("spot-1"))
            .await
            .expect("get")
            .is_none(),
        "the node key outlived the agent"
    );
}
