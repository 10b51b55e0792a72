//! `ion-agent` refuses bad configuration before touching etcd, with a message that names the
//! key and the file, and a non-zero exit.

mod harness;

use std::process::Command;
use std::time::Duration;

use harness::agent_bin;

fn run_agent(config: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, config).expect("writing config");
    let mut command = Command::new(agent_bin());
    // From the temp dir's parent, a relative path to the file is shorter than the absolute
    // one; the error must still name the file as it was given.
    command
        .arg("--config")
        .arg(&path)
        .current_dir(dir.path().parent().expect("the temp dir has a parent"));
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("running ion-agent");
    let stderr =
        String::from_utf8_lossy(&output.stderr).replace(&path.display().to_string(), "<FILE>");
    (output.status.code(), stderr)
}

#[test]
fn unknown_key_is_named_with_its_file() {
    let (code, stderr) = run_agent("[cluster]\nnode_id = \"a\"\nunits_per_cpu = 10\n", &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("units_per_cpu"), "{stderr}");
    assert!(stderr.contains("<FILE>"), "{stderr}");
}

#[test]
fn wrong_type_is_named_with_its_file() {
    let (code, stderr) = run_agent("[report]\nlease_ttl = 10\n", &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("report.lease_ttl"), "{stderr}");
    assert!(stderr.contains("<FILE>"), "{stderr}");
}

#[test]
fn malformed_toml_is_refused() {
    let (code, stderr) = run_agent("[cluster\nnode_id = ", &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("<FILE>"), "{stderr}");
}

#[test]
fn invalid_node_id_is_refused() {
    let (code, stderr) = run_agent("[cluster]\nnode_id = \"a/b\"\n", &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("node_id"), "{stderr}");
    assert!(stderr.contains("\"a/b\""), "{stderr}");
}

#[test]
fn bad_environment_value_is_named() {
    let (code, stderr) = run_agent(
        "[cluster]\nnode_id = \"a\"\n",
        &[("ION_AGENT_CLUSTER__VCPUS", "many")],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.to_lowercase().contains("cluster.vcpus"), "{stderr}");
    assert!(stderr.contains("ION_AGENT_"), "{stderr}");
}

#[test]
fn missing_config_file_is_refused() {
    let output = Command::new(agent_bin())
        .args(["--config", "/nonexistent/agent.toml"])
        .output()
        .expect("running ion-agent");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/agent.toml"), "{stderr}");
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let output = Command::new(agent_bin())
        .arg("--etcd-endpoint=x")
        .output()
        .expect("running ion-agent");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--etcd-endpoint"));
}

/// The committed sample config is valid: the agent accepts it and starts (then retries
/// etcd, which is not there).
#[test]
fn sample_config_is_accepted() {
    use std::io::BufRead;
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("agent.sample.toml");
    let port = harness::free_port();
    let mut child = Command::new(agent_bin())
        .arg("--config")
        .arg(&sample)
        .env(
            "ION_AGENT_ETCD_ENDPOINTS",
            format!("http://127.0.0.1:{port}"),
        )
        .env("ION_AGENT_GCE__METADATA", "never")
        .env("ION_AGENT_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting ion-agent");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("starting") {
                let _ = tx.send(Ok(()));
                return;
            }
        }
        let _ = tx.send(Err(seen));
    });
    let outcome = rx.recv_timeout(Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(stderr)) => panic!("the agent refused the sample config:\n{stderr}"),
        Err(_) => panic!("the agent neither started nor exited within 10 s"),
    }
}
