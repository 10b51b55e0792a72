//! `ionctl` against a real etcd: sessions, committed load, config precedence, bad input.

mod harness;

use std::time::{Duration, SystemTime};

use harness::{Etcd, ionctl, ionctl_with_env, stderr, stdout, unique_prefix};
use ion_cluster::model::{NodeRecord, NodeStats, SessionClass, SessionRecord, SessionState};
use ion_cluster::store::Store;

fn node(id: &str, capacity: u32, cpu: f64) -> NodeRecord {
    NodeRecord {
        // Past the warm-up, so observed load counts.
        started_at: SystemTime::now() - std::time::Duration::from_secs(3600),
        stats: NodeStats {
            sessions: 2,
            peers: 14,
            ..NodeStats::default()
        },
        ..NodeRecord::blank(id, "n2-highcpu-4", 4, capacity, SystemTime::now())
    }
    .spending(cpu)
}

fn session(sid: &str, node: &str, demand: u32) -> SessionRecord {
    SessionRecord {
        sid: sid.to_owned(),
        class: SessionClass::Meeting,
        size: 10,
        demand,
        node: node.to_owned(),
        state: SessionState::Live,
        relays: Vec::new(),
        edge_demand: 0,
        created_at: SystemTime::now() - Duration::from_secs(300),
    }
}

async fn planted(etcd: &Etcd, prefix: &str) -> Store {
    let store = etcd.store(prefix).await;
    let keys = store.keys().clone();
    store
        .put(&keys.node("n1"), &node("n1", 400, 0.10))
        .await
        .expect("put");
    store
        .put(&keys.node("n2"), &node("n2", 400, 0.50))
        .await
        .expect("put");
    store
        .put(&keys.session("s1"), &session("s1", "n1", 90))
        .await
        .expect("put");
    store
        .put(&keys.session("s2"), &session("s2", "n1", 30))
        .await
        .expect("put");
    store
        .put(&keys.session("s3"), &session("s3", "n2", 50))
        .await
        .expect("put");
    store
}

#[tokio::test]
async fn sessions_and_committed_load_are_listed() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("cli-sessions");
    let store = planted(&etcd, &prefix).await;
    // One malformed record must not hide the others.
    store
        .client()
        .put(store.keys().session("broken"), "{not json", None)
        .await
        .expect("put");
    let endpoint = etcd.endpoint();
    let base = ["--etcd", endpoint.as_str(), "--prefix", prefix.as_str()];

    let output = ionctl(&[&["sessions", "-o", "json"], &base[..]].concat()).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let sessions: Vec<SessionRecord> = serde_json::from_slice(&output.stdout).expect("JSON");
    let sids: Vec<_> = sessions.iter().map(|s| s.sid.as_str()).collect();
    assert_eq!(sids, ["s1", "s2", "s3"]);
    assert!(
        stderr(&output).contains("broken"),
        "no warning: {}",
        stderr(&output)
    );

    let output = ionctl(&[&["sessions", "--node", "n2"], &base[..]].concat()).await;
    let table = stdout(&output);
    assert!(
        table.lines().next().unwrap_or_default().starts_with("SID"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(
        table.contains("s3") && table.contains("meeting") && table.contains("live"),
        "{table}"
    );

    // n1: committed 120 beats observed 40; n2: observed 200 beats committed 50.
    let output = ionctl(&[&["nodes", "-o", "json"], &base[..]].concat()).await;
    let nodes: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(nodes[0]["id"], "n1");
    assert_eq!(nodes[0]["load"]["committed_units"], 120);
    assert_eq!(nodes[0]["load"]["effective_units"], 120.0);
    assert_eq!(nodes[1]["load"]["committed_units"], 50);
    assert_eq!(nodes[1]["load"]["effective_units"], 200.0);

    let output = ionctl(&[&["nodes"], &base[..]].concat()).await;
    let table = stdout(&output);
    assert!(table.contains("120/400 (30%)"), "{table}");
    assert!(table.contains("200/400 (50%)"), "{table}");
}

#[tokio::test]
async fn endpoints_resolve_flag_then_env_then_config_file() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("cli-precedence");
    planted(&etcd, &prefix).await;
    let good = etcd.endpoint();
    let dead = format!("http://127.0.0.1:{}", harness::free_port());
    let dir = tempfile::tempdir().expect("temp dir");
    let config = |endpoint: &str| {
        let path = dir.path().join("config.toml");
        let text = format!(
            "[etcd]\nendpoints = [\"{endpoint}\"]\nprefix = \"{prefix}\"\nconnect_timeout = \"1s\"\n"
        );
        std::fs::write(&path, text).expect("writing config");
        path.display().to_string()
    };

    // The config file alone.
    let file = config(&good);
    let output = ionctl_with_env(&["sessions", "-o", "json"], &[("IONCTL_CONFIG", &file)]).await;
    assert!(output.status.success(), "{}", stderr(&output));

    // The environment beats the file.
    let file = config(&good);
    let output = ionctl_with_env(
        &["sessions"],
        &[("IONCTL_CONFIG", &file), ("IONCTL_ETCD_ENDPOINTS", &dead)],
    )
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));

    // The flag beats the environment.
    let output = ionctl_with_env(
        &["sessions", "--etcd", &good],
        &[("IONCTL_CONFIG", &file), ("IONCTL_ETCD_ENDPOINTS", &dead)],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));

    // The default location, ~/.config/ionctl/config.toml (via XDG_CONFIG_HOME).
    std::fs::create_dir_all(dir.path().join("ionctl")).expect("mkdir");
    std::fs::rename(&file, dir.path().join("ionctl/config.toml")).expect("moving config");
    let xdg = dir.path().display().to_string();
    let output = ionctl_with_env(&["sessions", "-o", "json"], &[("XDG_CONFIG_HOME", &xdg)]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("\"s1\""));
}

#[tokio::test]
async fn bad_input_gets_a_usage_error() {
    let output = ionctl(&["nodes", "-o", "yaml"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("yaml"), "{}", stderr(&output));

    let output = ionctl(&["nodez"]).await;
    assert_eq!(output.status.code(), Some(2));

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[etcd]\nendpoint = [\"x\"]\n").expect("writing config");
    let output = ionctl(&["nodes", "--config", &path.display().to_string()]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains(&path.display().to_string()) && message.contains("endpoint"),
        "{message}"
    );

    let output = ionctl(&["nodes", "--connect-timeout", "soon"]).await;
    assert_eq!(output.status.code(), Some(2));
}

#[tokio::test]
async fn help_documents_the_exit_codes() {
    let output = ionctl(&["--help"]).await;
    let help = stdout(&output);
    for line in ["3  etcd unreachable", "4  no capacity", "6  unknown node"] {
        assert!(help.contains(line), "{line:?} missing from --help");
    }
}

#[tokio::test]
async fn a_host_busy_threshold_outside_0_to_1_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[placement]\nhost_busy_cpu = 1.5\n").expect("writing config");
    let config = path.display().to_string();
    // Checked before etcd is contacted: nothing listens on this endpoint.
    let dead = format!("http://127.0.0.1:{}", harness::free_port());
    let output = ionctl(&["nodes", "--config", &config, "--etcd", &dead]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("host_busy_cpu = 1.5 must be above 0 and at most 1"),
        "{}",
        stderr(&output)
    );
}

/// No part of an error line (between ": ") is printed twice.
fn assert_each_cause_once(message: &str) {
    let line = message.trim();
    for part in line.split(": ").filter(|p| p.len() >= 12) {
        assert_eq!(
            line.matches(part).count(),
            1,
            "{part:?} is printed more than once in {line:?}"
        );
    }
}

#[tokio::test]
async fn every_exit_path_prints_each_cause_once() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("cli-causes");
    let store = planted(&etcd, &prefix).await;
    let endpoint = etcd.endpoint();
    let base = ["--etcd", endpoint.as_str(), "--prefix", prefix.as_str()];
    let dead = format!("http://127.0.0.1:{}", harness::free_port());
    let unreachable_agent = format!("ws://127.0.0.1:{}/ws", harness::free_port());
    // A node too small for anything, so `place` finds no capacity.
    let cases: Vec<(i32, Vec<&str>)> = vec![
        (2, vec!["place", "--class", "group", "--size", "9"]),
        (
            3,
            vec!["nodes", "--etcd", &dead, "--connect-timeout", "300ms"],
        ),
        (
            4,
            [
                &["place", "--class", "conference", "--size", "300"],
                &base[..],
            ]
            .concat(),
        ),
        (
            5,
            [&["drain", "n1", "--wait", "--timeout", "1s"], &base[..]].concat(),
        ),
        (6, [&["drain", "no-such-node"], &base[..]].concat()),
        (
            7,
            vec!["loadtest", "--url", &unreachable_agent, "--duration", "1s"],
        ),
    ];
    for (code, args) in cases {
        let output = ionctl(&args).await;
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("{args:?} printed no error line: {err}"));
        assert_each_cause_once(line);
    }
    // The drain above is still requested: leave the store as found for the next test binary.
    let _ = store.delete(&store.keys().drain("n1")).await;
}
