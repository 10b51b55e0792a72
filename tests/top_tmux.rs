//! `ionctl top` as a person sees it: the real binary in a detached tmux session of fixed size,
//! against a real etcd and three real agents. Keys go in with `tmux send-keys`, the screen
//! comes back with `tmux capture-pane -p`, and every wait polls with a deadline.
//!
//! Set `IONCTL_TOP_SCREEN_OUT=<file>` to save the screen captured after the drain (that is
//! how `docs/top-screen.txt` was made).

mod harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use harness::{
    AgentProcess, AgentSpec, CuttableLink, Etcd, compact_now, node_record, plant, unique_prefix,
    wait_for,
};
use ion_cluster::model::{DrainRequest, NodeRecord};
use ion_cluster::store::Store;

const WAIT: Duration = Duration::from_secs(20);

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
    dir: tempfile::TempDir,
}

impl Tmux {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        Self {
            socket: format!(
                "ionctl-top-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    fn tmux(&self, args: &[&str]) -> Output {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            // The dashboard must see only what the test gives it.
            .env_remove("IONCTL_ETCD_ENDPOINTS")
            .env_remove("IONCTL_PREFIX")
            .env_remove("IONCTL_CONFIG")
            .env_remove("IONCTL_CONNECT_TIMEOUT")
            .env("XDG_CONFIG_HOME", "/nonexistent-ionctl-test-config")
            .env("TERM", "xterm-256color")
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run tmux ({e}); install it with scripts/install-deps")
            });
        assert!(
            output.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Starts `ionctl top` in a session `width`×`height`. When it exits, the shell records
    /// its exit code and the terminal's mode (`stty -a`), and the pane stays for inspection.
    fn start_top(&self, name: &str, width: u16, height: u16, args: &[&str], env: &[(&str, &str)]) {
        let env: String = env.iter().map(|(k, v)| format!("{k}='{v}' ")).collect();
        let args: String = args.iter().map(|a| format!("'{a}' ")).collect();
        let script = format!(
            "{env}'{bin}' top {args}; code=$?; stty -a > '{stty}'; echo \"ionctl top exited $code\"; \
             echo $code > '{exit}'",
            bin = env!("CARGO_BIN_EXE_ionctl"),
            stty = self.stty_path(name).display(),
            exit = self.exit_path(name).display(),
        );
        self.tmux(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "sh",
            "-c",
            &script,
        ]);
        self.tmux(&["set-option", "-t", name, "remain-on-exit", "on"]);
    }

    fn stty_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.stty"))
    }

    fn exit_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.exit"))
    }

    /// The exit code of `ionctl top`, once it has exited and the shell recorded it.
    async fn exit_code(&self, name: &str) -> i32 {
        let path = self.exit_path(name);
        wait_for("ionctl top to exit", WAIT, || {
            let code = std::fs::read_to_string(&path)
                .ok()
                .and_then(|c| c.trim().parse().ok());
            async move { code }
        })
        .await
    }

    fn keys(&self, name: &str, keys: &[&str]) {
        for key in keys {
            self.tmux(&["send-keys", "-t", name, key]);
        }
    }

    fn capture(&self, name: &str) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", name]).stdout).into_owned()
    }

    /// Polls the screen every 100 ms until `check` accepts it, or panics at the deadline
    /// showing the last screen.
    async fn screen_where(&self, name: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let screen = self.capture(name);
            if check(&screen) {
                return screen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for {what}; the screen:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screen_with(&self, name: &str, text: &str) -> String {
        self.screen_where(name, &format!("{text:?} on screen"), |s| s.contains(text))
            .await
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

fn row<'a>(screen: &'a str, node: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.contains(&format!(" {node} ")) && l.contains("n2-highcpu"))
        .unwrap_or_else(|| panic!("no row for {node}:\n{screen}"))
}

/// Raw mode is off again: the line discipline echoes and edits lines.
fn assert_terminal_restored(stty: &Path) {
    let modes = std::fs::read_to_string(stty).expect("stty output");
    let words: Vec<&str> = modes.split_whitespace().collect();
    for mode in ["icanon", "echo", "isig"] {
        assert!(
            words.contains(&mode),
            "{mode} is off after ionctl top exited:\n{modes}"
        );
    }
}

async fn registered(store: &Store, id: &str) {
    wait_for(&format!("node {id} to register"), WAIT, || async {
        store
            .get::<NodeRecord>(&store.keys().node(id))
            .await
            .expect("reading the node")
    })
    .await;
}

#[tokio::test]
async fn drain_from_the_dashboard_with_three_real_agents() {
    let mut etcd = Etcd::start().await;
    let prefix = unique_prefix("top-tmux");
    let store = etcd.store(&prefix).await;
    let mut agents = Vec::new();
    for (id, vcpus) in [("top-small", 2), ("top-medium", 4), ("top-large", 8)] {
        let spec = AgentSpec {
            vcpus,
            units_per_vcpu: 150,
            machine_type: format!("n2-highcpu-{vcpus}"),
            ..AgentSpec::new(id)
        };
        agents.push(AgentProcess::start(&etcd, &prefix, spec));
    }
    for id in ["top-small", "top-medium", "top-large"] {
        registered(&store, id).await;
    }

    let tmux = Tmux::new();
    let endpoint = etcd.endpoint();
    tmux.start_top(
        "top",
        120,
        36,
        &["--etcd", &endpoint, "--prefix", &prefix],
        &[],
    );
    let screen = tmux.screen_with("top", "Nodes (3)").await;
    for id in ["top-small", "top-medium", "top-large"] {
        assert!(screen.contains(id), "{id} missing:\n{screen}");
    }
    assert!(screen.contains("listed 3 nodes, 0 sessions"), "{screen}");

    // Sort by name (load → cpu → sessions → name), so the order is known. The selection
    // follows its node through a re-sort, so go to the first row, then one down.
    tmux.keys("top", &["s", "s", "s"]);
    tmux.screen_with("top", "sort: name").await;
    tmux.keys("top", &["g", "j"]);
    tmux.screen_with("top", "▶ top-medium").await;
    tmux.screen_with("top", "Sessions on top-medium (0)").await;

    // d asks first; the drain key appears only after y.
    tmux.keys("top", &["d"]);
    let dialog = tmux.screen_with("top", "Drain node top-medium?").await;
    assert!(
        dialog.contains("y drain") && dialog.contains("n cancel"),
        "{dialog}"
    );
    assert!(
        store
            .get::<DrainRequest>(&store.keys().drain("top-medium"))
            .await
            .expect("reading")
            .is_none(),
        "drained before confirming"
    );
    tmux.keys("top", &["y"]);
    let request = wait_for("drain/top-medium in etcd", WAIT, || async {
        store
            .get::<DrainRequest>(&store.keys().drain("top-medium"))
            .await
            .expect("reading the drain key")
    })
    .await;
    assert_eq!(request.reason.as_deref(), Some("ionctl top"));
    for id in ["top-small", "top-large"] {
        let other: Option<DrainRequest> =
            store.get(&store.keys().drain(id)).await.expect("reading");
        assert!(other.is_none(), "{id} was drained too");
    }

    // What the operator sees: the row says draining, the log and the footer say why.
    let screen = tmux
        .screen_with("top", "drain started on top-medium (ionctl top)")
        .await;
    let screen = if row(&screen, "top-medium").contains("draining") {
        screen
    } else {
        tmux.screen_where("top", "top-medium draining", |s| {
            s.lines()
                .any(|l| l.contains(" top-medium ") && l.contains("draining"))
        })
        .await
    };
    assert!(
        row(&screen, "top-medium").starts_with("│▶ top-medium"),
        "{screen}"
    );
    assert!(row(&screen, "top-small").contains(" ready "), "{screen}");
    assert!(row(&screen, "top-large").contains(" ready "), "{screen}");
    assert!(row(&screen, "top-medium").contains("/600"), "{screen}");
    assert!(row(&screen, "top-large").contains("/1200"), "{screen}");
    assert!(
        screen.contains("drain requested for top-medium"),
        "{screen}"
    );
    assert!(screen.contains("│ = 80% headroom"), "{screen}");
    let lines: Vec<&str> = screen.lines().collect();
    assert_eq!(lines.len(), 36, "{screen}");
    assert!(lines[0].starts_with(" ionctl top "), "{screen}");
    assert!(lines.iter().all(|l| l.chars().count() <= 120), "{screen}");
    if let Ok(path) = std::env::var("IONCTL_TOP_SCREEN_OUT") {
        std::fs::write(&path, &screen).expect("saving the screen");
    }

    // Resizing redraws to the new size.
    tmux.tmux(&["resize-window", "-t", "top", "-x", "100", "-y", "30"]);
    let resized = tmux
        .screen_where("top", "a 100-column layout", |s| {
            s.lines().nth(1).is_some_and(|l| {
                l.starts_with("┌ Nodes") && l.chars().count() == 100 && l.ends_with('┐')
            })
        })
        .await;
    assert!(resized.contains("▶ top-medium"), "{resized}");

    // u undrains the selected node.
    tmux.keys("top", &["u"]);
    wait_for("drain/top-medium to be deleted", WAIT, || async {
        store
            .get::<DrainRequest>(&store.keys().drain("top-medium"))
            .await
            .expect("reading")
            .is_none()
            .then_some(())
    })
    .await;
    tmux.screen_with("top", "drain lifted on top-medium").await;

    // Losing etcd shows a banner; the dashboard keeps running and recovers.
    etcd.kill();
    let down = tmux.screen_with("top", "etcd unreachable for").await;
    assert!(down.contains("top-medium"), "the last data stays:\n{down}");
    etcd.restart().await;
    tmux.screen_where("top", "the banner to go", |s| {
        s.contains("etcd is back;") && !s.contains("etcd unreachable for")
    })
    .await;

    // q quits and leaves the terminal as it found it.
    tmux.keys("top", &["q"]);
    assert_eq!(tmux.exit_code("top").await, 0);
    // (tmux may drop the shell's line after a resize, so the screen is only checked for the
    // dashboard being gone.)
    let after = tmux.capture("top");
    assert!(
        !after.contains("Nodes ("),
        "the dashboard is still on screen:\n{after}"
    );
    assert_terminal_restored(&tmux.stty_path("top"));
    drop(agents);
}

#[tokio::test]
async fn a_panic_restores_the_terminal_and_prints_the_message() {
    // No etcd at all: the dashboard starts anyway and says so.
    let tmux = Tmux::new();
    let dead = format!("http://127.0.0.1:{}", harness::free_port());
    tmux.start_top(
        "crash",
        100,
        30,
        &["--etcd", &dead, "--connect-timeout", "300ms"],
        &[("IONCTL_TOP_PANIC_KEY", "!"), ("RUST_BACKTRACE", "0")],
    );
    let screen = tmux.screen_with("crash", "etcd unreachable for").await;
    assert!(screen.contains("connecting to etcd"), "{screen}");
    tmux.keys("crash", &["!"]);
    assert_eq!(tmux.exit_code("crash").await, 101);
    let after = tmux.screen_with("crash", "ionctl top exited 101").await;
    assert!(after.contains("panic key '!' pressed"), "{after}");
    assert!(
        !after.contains("Nodes ("),
        "the dashboard is still on screen:\n{after}"
    );
    assert_terminal_restored(&tmux.stty_path("crash"));
}

#[tokio::test]
async fn top_without_a_terminal_is_a_usage_error() {
    let output = harness::ionctl(&["top", "--etcd", "http://127.0.0.1:1"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        harness::stderr(&output).contains("needs a terminal"),
        "{}",
        harness::stderr(&output)
    );
}

/// `ionctl top` across a lost connection to etcd: without a compaction it resumes its watches
/// from where they were and shows what changed meanwhile without listing; after etcd compacted
/// past that revision it lists again. The banner comes and goes each time.
#[tokio::test]
async fn top_resumes_after_a_cut_and_lists_again_only_after_a_compaction() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("top-cut");
    let store = etcd.store(&prefix).await;
    plant(&store, &[node_record("cut-first", 2, 0.0)]).await;
    let link = CuttableLink::start(&etcd.endpoint()).await;
    let tmux = Tmux::new();
    let endpoint = link.endpoint();
    tmux.start_top(
        "top",
        120,
        36,
        &["--etcd", &endpoint, "--prefix", &prefix],
        &[],
    );
    tmux.screen_with("top", "cut-first").await;
    // A node that shows up only through the watches: they are open.
    plant(&store, &[node_record("cut-watched", 2, 0.0)]).await;
    tmux.screen_with("top", "cut-watched").await;

    link.cut();
    tmux.screen_with("top", "etcd unreachable for").await;
    plant(&store, &[node_record("cut-second", 2, 0.0)]).await;
    link.heal();
    let resumed = tmux
        .screen_where("top", "the watches to resume", |s| {
            s.contains("cut-second")
                && s.contains("etcd is back; watching again from revision")
                && !s.contains("etcd unreachable for")
        })
        .await;
    assert!(
        !resumed.contains("listed again"),
        "nothing was compacted, yet it listed again:\n{resumed}"
    );

    link.cut();
    tmux.screen_with("top", "etcd unreachable for").await;
    // Two writes, so that the compaction removes one the watches have not seen (etcd keeps
    // the revision it compacts at).
    plant(
        &store,
        &[
            node_record("cut-third", 2, 0.0),
            node_record("cut-fourth", 2, 0.0),
        ],
    )
    .await;
    compact_now(&store).await;
    link.heal();
    tmux.screen_where("top", "a new listing after the compaction", |s| {
        s.contains("cut-third") && s.contains("listed again") && !s.contains("etcd unreachable for")
    })
    .await;

    tmux.keys("top", &["q"]);
    assert_eq!(tmux.exit_code("top").await, 0);
}
