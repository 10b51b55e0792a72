//! The README's local-cluster command works: `scripts/local-cluster --check` brings up etcd
//! and three agents of different sizes and shows them.

mod harness;

use std::process::Command;

#[test]
fn local_cluster_script_shows_three_nodes_of_different_sizes() {
    harness::agent_bin();
    let client_port = harness::free_port();
    // The client port + 1 is no free port in a suite that opens sockets in parallel.
    let peer_port = std::iter::repeat_with(harness::free_port)
        .find(|port| *port != client_port)
        .expect("an endless iterator");
    let output = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/local-cluster"
    ))
    .arg("--check")
    .env("ION_BIN_DIR", harness::bin_dir())
    .env("ION_LOCAL_ETCD_PORT", client_port.to_string())
    .env("ION_LOCAL_ETCD_PEER_PORT", peer_port.to_string())
    .env_remove("IONCTL_ETCD_ENDPOINTS")
    .output()
    .expect("running scripts/local-cluster");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    for (id, machine, capacity) in [
        ("local-small", "n2-highcpu-2", "/300 ("),
        ("local-medium", "n2-highcpu-4", "/600 ("),
        ("local-large", "n2-highcpu-8", "/1200 ("),
    ] {
        let row = rows
            .iter()
            .find(|r| r.starts_with(id))
            .unwrap_or_else(|| panic!("{id} missing: {stdout}"));
        assert!(row.contains(machine) && row.contains(capacity), "{row}");
    }
}

/// Ctrl-C (SIGINT to the whole foreground process group, as a terminal sends it) stops
/// everything the script started: the agents outlive `ionctl`, so the script deletes them
/// through etcd, which must still be up then.
#[test]
fn ctrl_c_stops_the_agents_too() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    harness::agent_bin();
    let client_port = harness::free_port();
    let peer_port = std::iter::repeat_with(harness::free_port)
        .find(|port| *port != client_port)
        .expect("an endless iterator");
    let mut script = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/local-cluster"
    ))
    .env("ION_BIN_DIR", harness::bin_dir())
    .env("ION_LOCAL_ETCD_PORT", client_port.to_string())
    .env("ION_LOCAL_ETCD_PEER_PORT", peer_port.to_string())
    .env_remove("IONCTL_ETCD_ENDPOINTS")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .process_group(0)
    .spawn()
    .expect("running scripts/local-cluster");
    // Read all of stdout, so the script never writes into a closed pipe.
    let stdout = script.stdout.take().expect("piped stdout");
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let up = lines
        .iter()
        .any(|line| line.starts_with("Local cluster is up"));
    assert!(up, "the script never said the cluster is up");

    let agents = || {
        let pattern = format!("ion-agent .*127.0.0.1:{client_port}");
        let out = Command::new("pgrep")
            .args(["-f", &pattern])
            .output()
            .expect("pgrep");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(agents(), 3, "three agents before Ctrl-C");
    let group = format!("-{}", script.id());
    let status = Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .expect("kill");
    assert!(status.success());
    script.wait().expect("the script exits");
    let deadline = Instant::now() + Duration::from_secs(15);
    while agents() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(agents(), 0, "agents left running after Ctrl-C");
}
