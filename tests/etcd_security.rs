//! etcd over mutual TLS with RBAC, against a real etcd (certificates made by the test): the
//! agent and ionctl work with a CA, a client certificate and the cluster's user; auth tokens
//! are renewed as they expire, under long-lived watches and lease keep-alives too; and each
//! wrong credential is named on one line with exit 3 (ionctl) or in a logged retry (agent).

mod harness;

use std::time::{Duration, SystemTime};

use harness::{
    AgentProcess, AgentSpec, CLUSTER_PASSWORD, CLUSTER_USER, Etcd, OUTSIDER_PASSWORD,
    OUTSIDER_USER, Secure, TestCa, unique_prefix, wait_for,
};
use ion_cluster::model::{NodeRecord, NodeState};

/// `--etcd-ca`, `--etcd-cert`, `--etcd-key` and `--etcd-user` for ionctl, with the cluster's
/// certificate and user.
fn credentials(etcd: &Etcd, prefix: &str) -> Vec<String> {
    let tls = etcd.tls().expect("a secure etcd");
    [
        "--etcd",
        &etcd.endpoint(),
        "--prefix",
        prefix,
        "--etcd-ca",
        &tls.ca.cert.display().to_string(),
        "--etcd-cert",
        &tls.client.cert.display().to_string(),
        "--etcd-key",
        &tls.client.key.display().to_string(),
        "--etcd-user",
        CLUSTER_USER,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `args` with the client certificate and key of `files`.
fn with_identity(args: Vec<String>, files: &harness::CertFiles) -> Vec<String> {
    let args = with(args, "--etcd-cert", &files.cert.display().to_string());
    with(args, "--etcd-key", &files.key.display().to_string())
}

/// Replaces the value after `flag` in `args`.
fn with(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    let i = args.iter().position(|a| a == flag).expect("the flag") + 1;
    args[i] = value.to_owned();
    args
}

async fn ionctl(args: &[String], password: &str, command: &[&str]) -> std::process::Output {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(command);
    harness::ionctl_with_env(&all, &[("IONCTL_ETCD_PASSWORD", password)]).await
}

fn tls_table(etcd: &Etcd) -> toml::Value {
    let tls = etcd.tls().expect("a secure etcd");
    let mut table = toml::Table::new();
    for (key, path) in [
        ("ca_file", &tls.ca.cert),
        ("cert_file", &tls.client.cert),
        ("key_file", &tls.client.key),
    ] {
        table.insert(key.to_owned(), path.display().to_string().into());
    }
    toml::Value::Table(table)
}

/// etcd issues tokens that expire every 2 s. The agent (password from
/// `ION_AGENT_ETCD__PASSWORD`) registers and keeps writing its stats past several expiries
/// without ever re-registering; a drain written by ionctl reaches it through the watch it
/// opened at start, long after that watch's token expired; its lease stays alive.
#[tokio::test]
async fn the_agent_and_ionctl_work_over_mutual_tls_as_the_cluster_user_across_token_expiries() {
    let prefix = unique_prefix("etcd-rbac");
    let ttl = Duration::from_secs(2);
    let etcd = Etcd::start_secure(Secure {
        rbac_prefix: Some(prefix.clone()),
        token_ttl: Some(ttl),
    })
    .await;
    let store = etcd.store(&prefix).await;
    let mut spec = AgentSpec::new("secure-a")
        .set("etcd", "tls", tls_table(&etcd))
        .set("etcd", "username", CLUSTER_USER)
        .set("report", "heartbeat_interval", "1s")
        .set("report", "min_write_interval", "1s");
    spec.env.push((
        "ION_AGENT_ETCD__PASSWORD".to_owned(),
        CLUSTER_PASSWORD.to_owned(),
    ));
    let agent = AgentProcess::start(&etcd, &prefix, spec);
    harness::wait_registered(&store, &["secure-a"]).await;
    let registered = SystemTime::now();
    let key = store.keys().node("secure-a");

    let args = credentials(&etcd, &prefix);
    let nodes = ionctl(&args, CLUSTER_PASSWORD, &["nodes", "-o", "json"]).await;
    assert!(nodes.status.success(), "{}", harness::stderr(&nodes));
    assert!(harness::stdout(&nodes).contains("\"secure-a\""));

    // Three token lifetimes of stats writes.
    let after = registered + 3 * ttl;
    wait_for(
        "stats written 3 token lifetimes on",
        Duration::from_secs(20),
        || async {
            let node: NodeRecord = store.get(&key).await.ok()??;
            (node.updated_at > after).then_some(())
        },
    )
    .await;
    let drained = ionctl(&args, CLUSTER_PASSWORD, &["drain", "secure-a"]).await;
    assert!(drained.status.success(), "{}", harness::stderr(&drained));
    wait_for(
        "the agent to report its drain",
        Duration::from_secs(10),
        || async {
            let node: NodeRecord = store.get(&key).await.ok()??;
            (node.state == NodeState::Draining).then_some(())
        },
    )
    .await;
    let log = agent.log();
    assert!(
        !log.contains("lost the etcd registration") && !log.contains("invalid auth token"),
        "the agent lost etcd when its token expired:\n{log}"
    );
    assert!(store.get::<NodeRecord>(&key).await.unwrap().is_some());
}

/// Each wrong credential: one line naming the cause, exit 3, before any command runs.
#[tokio::test]
async fn ionctl_names_each_wrong_etcd_credential_on_one_line_and_exits_3() {
    let prefix = unique_prefix("etcd-denied");
    let etcd = Etcd::start_secure(Secure {
        rbac_prefix: Some(prefix.clone()),
        token_ttl: None,
    })
    .await;
    let tls = etcd.tls().expect("a secure etcd");
    let dir = tempfile::tempdir().expect("a temp dir");
    let stranger = TestCa::new(dir.path(), "stranger");
    let foreign = stranger.client(CLUSTER_USER);
    let expired = tls.ca.expired_client(CLUSTER_USER);
    let good = credentials(&etcd, &prefix);
    let cases: Vec<(&str, Vec<String>, &str, &[&str])> = vec![
        (
            "a CA that did not sign etcd's certificate",
            with(
                good.clone(),
                "--etcd-ca",
                &stranger.cert.display().to_string(),
            ),
            CLUSTER_PASSWORD,
            &["not signed by a CA this client trusts", "ca_file"],
        ),
        (
            "a client certificate from another CA",
            with_identity(good.clone(), &foreign),
            CLUSTER_PASSWORD,
            &["refused this client's certificate", "--trusted-ca-file"],
        ),
        (
            "no client certificate",
            good[..good.len() - 6]
                .iter()
                .cloned()
                .chain(["--etcd-user".to_owned(), CLUSTER_USER.to_owned()])
                .collect(),
            CLUSTER_PASSWORD,
            &["requires a client certificate and this client has none"],
        ),
        (
            "an expired client certificate",
            with_identity(good.clone(), &expired),
            CLUSTER_PASSWORD,
            &["expired at 2021-01-01", "client certificate"],
        ),
        (
            "a wrong password",
            good.clone(),
            "not-the-password",
            &["wrong etcd user name or password"],
        ),
        (
            "a user without permission on the prefix",
            with(good.clone(), "--etcd-user", OUTSIDER_USER),
            OUTSIDER_PASSWORD,
            &["permission denied", "readwrite on the cluster's prefix"],
        ),
    ];
    for (what, args, password, expected) in cases {
        let out = ionctl(&args, password, &["nodes"]).await;
        let stderr = harness::stderr(&out);
        eprintln!("{what}: {stderr}");
        assert_eq!(out.status.code(), Some(3), "{what}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{what}: not one line: {stderr}"
        );
        for words in expected {
            assert!(stderr.contains(words), "{what}: no {words:?} in: {stderr}");
        }
    }
    // The right ones still work.
    let out = ionctl(&good, CLUSTER_PASSWORD, &["nodes"]).await;
    assert!(out.status.success(), "{}", harness::stderr(&out));
}

/// An agent with a wrong password does not exit: it retries, and its log says why.
#[tokio::test]
async fn an_agent_with_a_wrong_password_retries_and_logs_the_reason() {
    let prefix = unique_prefix("etcd-agent-denied");
    let etcd = Etcd::start_secure(Secure {
        rbac_prefix: Some(prefix.clone()),
        token_ttl: None,
    })
    .await;
    let spec = AgentSpec::new("secure-wrong")
        .set("etcd", "tls", tls_table(&etcd))
        .set("etcd", "username", CLUSTER_USER)
        .set("etcd", "password", "not-the-password");
    let mut agent = AgentProcess::start(&etcd, &prefix, spec);
    wait_for("two logged retries", Duration::from_secs(20), || async {
        let log = agent.log();
        (log.matches("wrong etcd user name or password").count() >= 2).then_some(())
    })
    .await;
    assert!(
        agent.try_exit_status().is_none(),
        "the agent exited:\n{}",
        agent.log()
    );
    let store = etcd.store(&prefix).await;
    let node: Option<NodeRecord> = store
        .get(&store.keys().node("secure-wrong"))
        .await
        .expect("reading as the cluster user");
    assert!(node.is_none());
}
