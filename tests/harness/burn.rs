//! Busy processes beside the agents: the "another build is running" host of issue 13. Each is
//! a shell spinning at nice 19, so the host's CPU reads busy while the test's own processes
//! still get the cores when they need them. Killed on drop.

use std::process::{Child, Command, Stdio};

pub struct CpuBurner {
    children: Vec<Child>,
}

impl CpuBurner {
    /// One spinning process per core of this machine.
    pub fn on_every_core() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let children = (0..cores)
            .map(|_| {
                Command::new("nice")
                    .args(["-n", "19", "sh", "-c", "while :; do :; done"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("starting a CPU burner (nice, sh)")
            })
            .collect();
        Self { children }
    }

    pub fn stop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for CpuBurner {
    fn drop(&mut self) {
        self.stop();
    }
}
