//! What a test reads from outside a running agent: its HTTP endpoints, samples of its
//! Prometheus text, and its CPU time from `/proc` (the load test's reader).

use std::time::Duration;

use ion_cluster::loadtest::agent_cpu::process_cpu_seconds;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.1 GET; returns the whole response, head and body.
pub async fn http_get(port: u16, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connecting to the agent's HTTP port");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("sending the request");
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("a response within 10 s")
    .expect("reading the response");
    response
}

/// The value of the sample `name` (with its labels, exactly as rendered) in Prometheus text.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The CPU seconds (utime + stime) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    process_cpu_seconds(Some(pid)).unwrap_or_else(|| panic!("no /proc/{pid}/stat"))
}
