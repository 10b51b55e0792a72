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
