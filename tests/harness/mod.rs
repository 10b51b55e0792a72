//! The shared integration-test harness: a real `etcd` on free loopback ports with a temporary
//! data dir, real `ion-agent` processes, and the `ionctl` binary. Everything it starts is
//! killed on drop, and every wait is a poll with a deadline.

// Each test binary uses a different part of the harness.
#![allow(dead_code, unused_imports)]

mod agent;
mod burn;
mod cluster;
mod cut;
mod etcd;
mod local;
mod netns;
mod peer;
mod pki;
mod probe;
mod serve;
mod signal;

pub use agent::{AgentProcess, AgentSpec};
pub use burn::CpuBurner;
pub use cluster::{Placed, audit, commit_order, node_record, plant};
pub use cut::{CuttableLink, compact_now};
pub use etcd::{CLUSTER_PASSWORD, CLUSTER_USER, Etcd, OUTSIDER_PASSWORD, OUTSIDER_USER, Secure};
pub use ion_cluster::protocol::{JoinConfig, VideoLayer};
pub use local::LocalAgents;
pub use netns::{Link, Netns, tcp_forward};
pub use peer::{AUDIO_PPS, Kind, Media, Peer, RawSignal, RemoteTrack, Reply, RpcError, VIDEO_FPS};
pub use pki::{CertFiles, TestCa};
pub use probe::{cpu_seconds, http_get, sample};
pub use serve::{ServeProcess, TestCertificate};
pub use signal::{TokenIn, join_with_placeholder_offer, join_with_token, placeholder_join};

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A port nobody listens on right now. The tiny race with other processes is acceptable in
/// tests; callers that start servers retry on a bind failure.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral loopback port")
        .port()
}

/// A key prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("/ion-test/{test}-{}-{n}/", std::process::id())
}

/// Polls `probe` every 100 ms until it yields `Some`, or panics naming `what` at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_explained(what, timeout, probe, String::new).await
}

/// [`wait_for`], and at the deadline the panic also prints what `explain` gathers (the logs
/// of the processes that were to bring the awaited state about).
pub async fn wait_for_explained<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut probe: F,
    explain: impl FnOnce() -> String,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                explain()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (15 s at most) until every node of `ids` has registered under the store's prefix.
pub async fn wait_registered(store: &ion_cluster::store::Store, ids: &[&str]) {
    for id in ids {
        let key = store.keys().node(id);
        wait_for(
            &format!("agent {id} to register"),
            Duration::from_secs(15),
            || async {
                store
                    .get::<ion_cluster::model::NodeRecord>(&key)
                    .await
                    .ok()
                    .flatten()
            },
        )
        .await;
    }
}

/// The directory cargo puts binaries in (`target/debug`), found from the test executable
/// (`target/debug/deps/<test>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test executables live in target/<profile>/deps")
        .to_owned()
}

/// The newest modification time of the sources `ion-agent` is built from: the agent, the
/// library it links, and the manifests.
fn newest_agent_source() -> Option<std::time::SystemTime> {
    fn walk(path: &std::path::Path, newest: &mut Option<std::time::SystemTime>) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), newest);
            }
        } else if let Ok(modified) = meta.modified() {
            *newest = (*newest).max(Some(modified));
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut newest = None;
    for part in [
        "agent/src",
        "agent/Cargo.toml",
        "src",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        walk(&root.join(part), &mut newest);
    }
    newest
}

/// The `ion-agent` binary, built on demand: it belongs to another package of the workspace,
/// so cargo does not build it for the root package's tests by itself. It is rebuilt when it
/// is missing or older than a source it is built from, so a test never runs a stale agent.
/// `ION_BENCH_AGENT_BIN` names another binary instead, so a benchmark can run an old and a
/// new agent back to back.
pub fn agent_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("ION_BENCH_AGENT_BIN") {
        return PathBuf::from(path);
    }
    static BUILT: std::sync::Once = std::sync::Once::new();
    let path = bin_dir().join("ion-agent");
    BUILT.call_once(|| {
        let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        if built.is_some() && built >= newest_agent_source() {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "ion-agent"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build -p ion-agent");
        assert!(status.success(), "cargo build -p ion-agent failed");
    });
    assert!(
        path.exists(),
        "{} is missing after the build",
        path.display()
    );
    path
}

/// Runs `ionctl` with `args` and returns its output; `IONCTL_*` variables and the user's
/// config file are cleared so the test controls every input.
pub async fn ionctl(args: &[&str]) -> Output {
    ionctl_with_env(args, &[]).await
}

pub async fn ionctl_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ionctl"));
    command
        .args(args)
        .env_remove("IONCTL_ETCD_ENDPOINTS")
        .env_remove("IONCTL_PREFIX")
        .env_remove("IONCTL_CONFIG")
        .env_remove("IONCTL_CONNECT_TIMEOUT")
        .env_remove("IONCTL_ETCD_CA")
        .env_remove("IONCTL_ETCD_CERT")
        .env_remove("IONCTL_ETCD_KEY")
        .env_remove("IONCTL_ETCD_USER")
        .env_remove("IONCTL_ETCD_PASSWORD")
        .env("XDG_CONFIG_HOME", "/nonexistent-ionctl-test-config")
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("ionctl finished within 90 s")
        .expect("running ionctl")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
