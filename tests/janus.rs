//! `ionctl loadtest --target janus` end to end: Debian's Janus, started by `scripts/janus` in
//! a network namespace of its own, carries one publisher's VP8 and Opus to one subscriber,
//! and the report counts the packets that arrived and reads Janus's CPU from `/proc`. The
//! benchmarks' side-by-side runs (`scripts/bench-janus`) depend on all of this.

mod harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The address `scripts/janus` gives Janus inside its namespace.
const JANUS_IP: &str = "10.213.0.1";
const WS_PORT: &str = "8188";

/// `scripts/janus` running; stopping it (TERM) stops Janus and deletes the namespace.
struct Janus {
    script: Child,
    netns: String,
    _dir: tempfile::TempDir,
}

impl Janus {
    fn start() -> Janus {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let install = Command::new(root.join("scripts/install-deps"))
            .status()
            .expect("running scripts/install-deps");
        assert!(install.success(), "scripts/install-deps failed");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let netns = format!("ion-janus-test-{}", std::process::id());
        let log = std::fs::File::create(dir.path().join("janus.log")).expect("the log file");
        let script = Command::new(root.join("scripts/janus"))
            .args([netns.as_str(), &dir.path().to_string_lossy(), WS_PORT])
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .expect("running scripts/janus");
        let mut janus = Janus {
            script,
            netns,
            _dir: dir,
        };
        janus.wait_listening(Duration::from_secs(20));
        janus
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("janus.log")).unwrap_or_default()
    }

    /// Polls, inside the namespace, until Janus accepts a TCP connection on its WebSocket
    /// port; fails with its log if the script ends or the deadline passes.
    fn wait_listening(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.script.try_wait() {
                panic!(
                    "scripts/janus ended ({status}) before Janus listened; needs root for its \
                     network namespace. Its log:\n{}",
                    self.log()
                );
            }
            let probe = Command::new("ip")
                .args(["netns", "exec", &self.netns, "bash", "-c"])
                .arg(format!("exec 3<>/dev/tcp/{JANUS_IP}/{WS_PORT}"))
                .stderr(Stdio::null())
                .status();
            if probe.is_ok_and(|s| s.success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Janus did not listen on {JANUS_IP}:{WS_PORT} within {timeout:?}. Its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `ionctl` in Janus's namespace.
    fn ionctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .arg(ionctl_bin())
            .args(args)
            .env_remove("IONCTL_ETCD_ENDPOINTS")
            .env("XDG_CONFIG_HOME", "/nonexistent-ionctl-test-config")
            .output()
            .expect("running ionctl in Janus's namespace")
    }
}

impl Drop for Janus {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.script.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.script.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.script.kill();
        let _ = self.script.wait();
        // The script deletes it; this covers a script that was killed.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .stderr(Stdio::null())
            .status();
    }
}

fn ionctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ionctl"))
}

#[test]
fn one_publisher_reaches_one_subscriber_through_janus() {
    let janus = Janus::start();
    let url = format!("ws://{JANUS_IP}:{WS_PORT}");
    let output = janus.ionctl(&[
        "loadtest",
        "--target",
        "janus",
        "--url",
        &url,
        "--publishers",
        "1",
        "--subscribers",
        "1",
        "--duration",
        "2s",
        "--warmup",
        "1s",
        "-o",
        "json",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ionctl loadtest --target janus failed: {stderr}\n{stdout}\nJanus's log:\n{}",
        janus.log()
    );
    let report: Value = serde_json::from_str(&stdout).expect("the report is JSON");
    assert_eq!(report["config"]["target"], "janus");
    let summary = &report["summary"];
    assert_eq!(summary["tracks_expected"], 2, "{summary}");
    assert_eq!(summary["tracks_received"], 2, "{summary}");
    // Two seconds of 30 fps VP8 and 50 packets/s Opus: well over 100 packets.
    let received = summary["packets_received"].as_u64().unwrap_or(0);
    assert!(received > 100, "only {received} packets arrived: {summary}");
    assert!(
        summary["loss"].as_f64().is_some_and(|l| l < 0.02),
        "{summary}"
    );
    assert_eq!(summary["join_errors"], 0, "{summary}");
    // Janus's own process, found by the port it listens on inside the namespace.
    let pid = report["agent"]["pid"]
        .as_u64()
        .expect("Janus's pid was found");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(
        comm.trim(),
        "janus",
        "the CPU was read from pid {pid} ({comm})"
    );
    assert!(
        report["agent"]["cpu_seconds"]
            .as_f64()
            .is_some_and(|c| c > 0.0)
    );
}

#[test]
fn a_closed_janus_port_is_a_clear_error() {
    // Nothing listens on this port of this namespace-less loopback.
    let port = harness::free_port();
    let output = Command::new(ionctl_bin())
        .args(["loadtest", "--target", "janus", "--url"])
        .arg(format!("ws://127.0.0.1:{port}"))
        .args(["--subscribers", "1", "--duration", "1s"])
        .env("XDG_CONFIG_HOME", "/nonexistent-ionctl-test-config")
        .output()
        .expect("running ionctl");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
}
