//! Where the load test's CPU and forwarding figures come from:
//! - a local agent (loopback URL): its pid is found from the listening TCP port (port →
//!   socket inode in `/proc/net/tcp{,6}` → the `/proc/<pid>/fd/*` link `socket:[inode]`),
//!   then utime + stime from `/proc/<pid>/stat`, VmRSS and the allowed CPUs from
//!   `/proc/<pid>/status`;
//! - any agent that exposes them: `process_cpu_seconds_total` and
//!   `process_resident_memory_bytes` on its `/metrics`, per process and readable remotely;
//! - a remote agent: its node record's `stats.cpu` (a whole-machine fraction) × vcpus;
//! - the load generator itself: `/proc/self/stat` and its CPU affinity, and how busy its
//!   CPUs were with anything (`/proc/stat`): a core shared with other work starves it too;
//! - forwarded packets: `ion_agent_packets_total{direction="out"}` on the agent's `/metrics`,
//!   with its send drops and forward errors, to tell the agent's losses from the client's.

use std::path::Path;
use std::time::Duration;

/// A process's CPU time: utime + stime in seconds.
pub fn process_cpu_seconds(pid: Option<u32>) -> Option<f64> {
    process_cpu_times(pid).map(|(user, system)| user + system)
}

/// A process's user and system CPU time (utime, stime) in seconds.
pub fn process_cpu_times(pid: Option<u32>) -> Option<(f64, f64)> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let hz = clock_ticks_per_second();
    Some((utime as f64 / hz, stime as f64 / hz))
}

/// `sysconf(_SC_CLK_TCK)`: USER_HZ, which Linux fixes at 100 for `/proc` on every
/// mainstream architecture; `getconf` confirms it when present.
pub fn clock_ticks_per_second() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|hz: &f64| *hz > 0.0)
            .unwrap_or(100.0)
    })
}

/// A field of `/proc/<pid>/status` (or `/proc/self/status`).
fn status_field(pid: Option<u32>, name: &str) -> Option<String> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    status.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim().to_owned())
    })
}

/// Resident memory in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let value = status_field(Some(pid), "VmRSS")?;
    let kib: u64 = value.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// How many CPUs a process may run on (its affinity, e.g. under `taskset`).
pub fn allowed_cpus(pid: Option<u32>) -> Option<u32> {
    let list = status_field(pid, "Cpus_allowed_list")?;
    count_cpu_list(&list)
}

/// The CPUs a process may run on, by number.
pub fn allowed_cpu_ids(pid: Option<u32>) -> Vec<u32> {
    status_field(pid, "Cpus_allowed_list")
        .map(|list| parse_cpu_list(&list))
        .unwrap_or_default()
}

fn parse_cpu_list(list: &str) -> Vec<u32> {
    let mut ids = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((lo, hi)) => {
                if let (Ok(lo), Ok(hi)) = (lo.parse::<u32>(), hi.parse::<u32>()) {
                    ids.extend(lo..=hi);
                }
            }
            None => ids.extend(part.parse::<u32>().ok()),
        }
    }
    ids
}

/// Busy and total jiffies of `cpus` so far, from `/proc/stat` (busy: all but idle and
/// iowait).
pub fn cpu_jiffies(cpus: &[u32]) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    jiffies_of(&stat, cpus)
}

/// [`cpu_jiffies`] on the text of `/proc/stat`.
pub fn jiffies_of(stat: &str, cpus: &[u32]) -> Option<(u64, u64)> {
    let (mut busy, mut total, mut found) = (0, 0, 0);
    for line in stat.lines() {
        let mut fields = line.split_whitespace();
        let Some(id) = fields
            .next()
            .and_then(|name| name.strip_prefix("cpu"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if !cpus.contains(&id) {
            continue;
        }
        let values: Vec<u64> = fields.map(|f| f.parse().unwrap_or(0)).collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let all: u64 = values.iter().take(8).sum();
        let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
        busy += all.saturating_sub(idle);
        total += all;
        found += 1;
    }
    (found > 0).then_some((busy, total))
}

/// Counts a CPU list such as `0-3,6,8-9`.
pub fn count_cpu_list(list: &str) -> Option<u32> {
    let mut count = 0;
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi): (u32, u32) = (lo.parse().ok()?, hi.parse().ok()?);
                count += hi.checked_sub(lo)? + 1;
            }
            None => {
                part.parse::<u32>().ok()?;
                count += 1;
            }
        }
    }
    (count > 0).then_some(count)
}

/// The pid of the process listening on TCP `port` on this host, when this user can see it.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path())
                && wanted.iter().any(|w| Path::new(w) == link)
            {
                return Some(pid);
            }
        }
    }
    None
}

/// Inodes of sockets in LISTEN state (0A) on `port` in a `/proc/net/tcp` table.
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let inode: u64 = fields.get(9)?.parse().ok()?;
            let local_port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
            (*state == "0A" && local_port == port && inode != 0).then_some(inode)
        })
        .collect()
}

/// The value of the sample `name` (with its labels, exactly as exposed) in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

/// The agent's counters that matter to a load test, as of one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AgentCounters {
    pub packets_out: f64,
    pub send_drops: Option<f64>,
    pub forward_errors: Option<f64>,
    /// The agent process's CPU-seconds so far (absent from agents that predate it).
    pub cpu_seconds: Option<f64>,
    pub rss_bytes: Option<f64>,
}

/// The agent's forwarded packets, send drops, forward errors and process CPU so far, from
/// `/metrics`.
pub async fn scrape(client: &reqwest::Client, metrics_url: &str) -> Option<AgentCounters> {
    let text = client
        .get(metrics_url)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .text()
        .await
        .ok()?;
    Some(AgentCounters {
        packets_out: metric(&text, r#"ion_agent_packets_total{direction="out"}"#)?,
        send_drops: metric(&text, "ion_agent_send_drops_total"),
        forward_errors: metric(&text, "ion_agent_forward_errors_total"),
        cpu_seconds: metric(&text, "process_cpu_seconds_total"),
        rss_bytes: metric(&text, "process_resident_memory_bytes"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_are_found_by_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listening_inodes(table, 8080), [4242]);
        assert_eq!(listening_inodes(table, 80), [99]);
        assert!(listening_inodes(table, 81).is_empty());
    }

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(parse_cpu_list("0-2,5"), [0, 1, 2, 5]);
        let stat = "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 4 0 6 50 5 0 0 0 0 0\ncpu1 1 1 1 97 0 0 0 0 0 0\nintr 1\n";
        assert_eq!(jiffies_of(stat, &[0]), Some((10, 65)));
        assert_eq!(jiffies_of(stat, &[0, 1]), Some((13, 165)));
        assert_eq!(jiffies_of(stat, &[7]), None);
        assert_eq!(count_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(count_cpu_list("1"), Some(1));
        assert_eq!(count_cpu_list(""), None);
    }

    #[test]
    fn metrics_are_read_by_name_and_labels() {
        let text = "# HELP x\nion_agent_packets_total{direction=\"in\"} 5\nion_agent_packets_total{direction=\"out\"} 12345\n";
        assert_eq!(
            metric(text, r#"ion_agent_packets_total{direction="out"}"#),
            Some(12345.0)
        );
        assert_eq!(metric(text, "nope"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_cpus() {
        assert!(process_cpu_seconds(None).is_some());
        assert!(allowed_cpus(None).is_some_and(|n| n >= 1));
        // The test binary listens nowhere; pid lookup of a closed port finds nothing.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a port");
        assert_eq!(pid_listening_on(port), None);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(pid_listening_on(port), Some(std::process::id()));
    }
}
