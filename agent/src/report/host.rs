//! Host measurements from `sysinfo`: CPU as a fraction of the whole machine (all cores
//! together, so a 16-core box at 10% and a 1-core box at 10% are told apart by capacity, not
//! by CPU) and memory.

use sysinfo::System;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HostStats {
    /// 0.0..=1.0 of all cores.
    pub cpu: f64,
    pub mem_used_bytes: u64,
    pub mem_total_bytes: u64,
}

pub struct HostSampler {
    system: System,
}

impl HostSampler {
    pub fn new() -> anyhow::Result<Self> {
        let mut system =
            System::new().map_err(|e| anyhow::anyhow!("cannot read system statistics: {e:?}"))?;
        // The first CPU reading needs a previous one to diff against.
        system.refresh_cpu_usage();
        Ok(Self { system })
    }

    /// CPU usage since the previous call, and memory now. Call at least 200 ms apart
    /// (sysinfo's minimum CPU update interval).
    pub fn sample(&mut self) -> HostStats {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        HostStats {
            cpu: (f64::from(self.system.global_cpu_usage()) / 100.0).clamp(0.0, 1.0),
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
