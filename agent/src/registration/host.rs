//! Host and process measurements from `sysinfo`: the host's CPU as a fraction of the whole
//! machine (all cores together), the agent process's own CPU in cores, and memory. Placement
//! counts the agent's own CPU as load and the rest of the host's as a health signal
//! (docs/placement.md), so both are measured in the same sample.

use std::time::Instant;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HostStats {
    /// 0.0..=1.0 of all cores.
    pub cpu: f64,
    /// Cores the agent process used since the previous sample (1.5 = one and a half).
    pub agent_cores: f64,
    /// The host's logical CPUs.
    pub host_cpus: u32,
    pub mem_used_bytes: u64,
    pub mem_total_bytes: u64,
}

impl HostStats {
    /// Host CPU the agent did not spend, as a fraction of all the host's cores.
    pub fn other_cpu(&self) -> f64 {
        let agent_share = self.agent_cores / f64::from(self.host_cpus.max(1));
        (self.cpu - agent_share).clamp(0.0, 1.0)
    }
}

pub struct HostSampler {
    system: System,
    pid: Option<Pid>,
    /// The process's accumulated CPU time (ms) at the previous sample, and when.
    last_process: Option<(u64, Instant)>,
}

impl HostSampler {
    pub fn new() -> anyhow::Result<Self> {
        let mut system =
            System::new().map_err(|e| anyhow::anyhow!("cannot read system statistics: {e:?}"))?;
        // The first CPU reading needs a previous one to diff against.
        system.refresh_cpu_usage();
        let mut sampler = Self {
            system,
            pid: sysinfo::get_current_pid().ok(),
            last_process: None,
        };
        sampler.last_process = sampler.process_cpu_millis().map(|ms| (ms, Instant::now()));
        Ok(sampler)
    }

    fn process_cpu_millis(&mut self) -> Option<u64> {
        let pid = self.pid?;
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            false,
            ProcessRefreshKind::nothing().with_cpu(),
        );
        self.system
            .process(pid)
            .map(sysinfo::Process::accumulated_cpu_time)
    }

    /// CPU usage since the previous call, and memory now. Call at least 200 ms apart
    /// (sysinfo's minimum CPU update interval).
    pub fn sample(&mut self) -> HostStats {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let now = Instant::now();
        let agent_cores = match (self.process_cpu_millis(), self.last_process) {
            (Some(ms), Some((before, at))) => {
                let wall = now.saturating_duration_since(at).as_secs_f64();
                self.last_process = Some((ms, now));
                if wall > 0.0 {
                    ms.saturating_sub(before) as f64 / 1000.0 / wall
                } else {
                    0.0
                }
            }
            (Some(ms), None) => {
                self.last_process = Some((ms, now));
                0.0
            }
            (None, _) => 0.0,
        };
        HostStats {
            cpu: (f64::from(self.system.global_cpu_usage()) / 100.0).clamp(0.0, 1.0),
            agent_cores,
            host_cpus: self.logical_cpus(),
            mem_used_bytes: self.system.used_memory(),
            mem_total_bytes: self.system.total_memory(),
        }
    }

    /// Logical CPUs of this machine.
    pub fn logical_cpus(&self) -> u32 {
        std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_cpu_is_what_the_agent_did_not_spend() {
        let stats = HostStats {
            cpu: 0.75,
            agent_cores: 1.0,
            host_cpus: 4,
            ..HostStats::default()
        };
        assert!((stats.other_cpu() - 0.5).abs() < 1e-9);
        // Sampling skew can make the agent's share exceed the host's reading: never negative.
        let skewed = HostStats {
            cpu: 0.2,
            agent_cores: 1.0,
            host_cpus: 2,
            ..HostStats::default()
        };
        assert_eq!(skewed.other_cpu(), 0.0);
    }

    #[test]
    fn the_agent_cpu_follows_work_done_in_this_process() {
        let mut sampler = HostSampler::new().expect("sysinfo");
        let started = Instant::now();
        let mut x: u64 = 1;
        while started.elapsed() < std::time::Duration::from_millis(400) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let stats = sampler.sample();
        // One thread spinning for the whole interval: about one core, whatever else runs.
        assert!(stats.agent_cores > 0.3, "{stats:?}");
        assert!(stats.agent_cores < 1.5, "{stats:?}");
    }
}
