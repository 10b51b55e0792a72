//! Join tokens on the agent: with `[auth] enabled`, a join without a valid token for this
//! session on this node is refused with a clear JSON-RPC error; a token from the placers'
//! secret is accepted, in the join params or in the URL.

mod harness;

use std::time::{Duration, SystemTime};

use harness::{AgentProcess, AgentSpec, Etcd, TokenIn, join_with_token, unique_prefix, wait_for};
use ion_cluster::model::NodeRecord;
use ion_cluster::token::{self, JoinSecret};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

#[tokio::test]
async fn joins_need_a_valid_token_when_auth_is_on() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("auth");
    let store = etcd.store(&prefix).await;
    let agent = AgentProcess::start(
        &etcd,
        &prefix,
        AgentSpec::new("auth-1")
            .set("auth", "enabled", true)
            .set("auth", "secret", SECRET),
    );
    wait_for("the agent to register", Duration::from_secs(15), || async {
        store
            .get::<NodeRecord>(&store.keys().node("auth-1"))
            .await
            .ok()
            .flatten()
    })
    .await;
    let secret = JoinSecret::new(SECRET).expect("a strong secret");
    let now = SystemTime::now();
    let ttl = Duration::from_secs(300);
    let refused = |reply: &serde_json::Value, what: &str| {
        assert_eq!(reply["error"]["code"], -32001, "{reply}");
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(what), "{what:?} not in {reply}");
    };

    refused(
        &join_with_token(agent.port, "room", TokenIn::None).await,
        "no token",
    );
    let expired = token::issue(
        &secret,
        "room",
        "auth-1",
        now - Duration::from_secs(3600),
        ttl,
    );
    refused(
        &join_with_token(agent.port, "room", TokenIn::Params(&expired)).await,
        "expired",
    );
    let elsewhere = token::issue(&secret, "room", "auth-2", now, ttl);
    refused(
        &join_with_token(agent.port, "room", TokenIn::Params(&elsewhere)).await,
        "auth-2",
    );
    let other_room = token::issue(&secret, "other", "auth-1", now, ttl);
    refused(
        &join_with_token(agent.port, "room", TokenIn::Params(&other_room)).await,
        "other",
    );
    let forged = token::issue(
        &JoinSecret::new("another-secret-of-enough-length-000000").expect("secret"),
        "room",
        "auth-1",
        now,
        ttl,
    );
    refused(
        &join_with_token(agent.port, "room", TokenIn::Params(&forged)).await,
        "signed",
    );

    // A valid token passes auth (the placeholder offer then fails in the media engine).
    let valid = token::issue(&secret, "room", "auth-1", now, ttl);
    for way in [TokenIn::Params(&valid), TokenIn::Url(&valid)] {
        let reply = join_with_token(agent.port, "room", way).await;
        assert_ne!(reply["error"]["code"], -32001, "{way:?}: {reply}");
    }
}

#[tokio::test]
async fn auth_without_a_strong_secret_is_a_config_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("agent.toml");
    for (config, what) in [
        ("[auth]\nenabled = true\n", "[auth] secret"),
        ("[auth]\nenabled = true\nsecret = \"short\"\n", "bytes"),
    ] {
        std::fs::write(&path, format!("[cluster]\nnode_id = \"a\"\n{config}")).expect("write");
        let output = std::process::Command::new(harness::agent_bin())
            .arg("--config")
            .arg(&path)
            .output()
            .expect("running ion-agent");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(what), "{what:?} not in {stderr}");
    }
}
