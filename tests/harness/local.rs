//! The local provider's state dir in tests.

use std::path::Path;

use ion_cluster::provider::local::{LocalState, process_alive};

/// A state dir for the local provider that kills, on drop, every agent recorded in it, so a
/// failed test leaves no agent behind.
pub struct LocalAgents {
    dir: tempfile::TempDir,
}

impl LocalAgents {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a state dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state(&self, name: &str) -> Option<LocalState> {
        let text = std::fs::read_to_string(self.path().join(format!("{name}.json"))).ok()?;
        Some(serde_json::from_str(&text).expect("a valid state file"))
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Every agent's log, each under its path, in name order: what a failed wait prints.
    pub fn logs(&self) -> String {
        let mut paths: Vec<_> = std::fs::read_dir(self.path())
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        paths.retain(|p| p.extension().is_some_and(|e| e == "log"));
        paths.sort();
        paths
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                format!("--- {}\n{text}\n", path.display())
            })
            .collect()
    }
}

impl Drop for LocalAgents {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        for path in entries.flatten().map(|e| e.path()) {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if let Ok(state) = serde_json::from_str::<LocalState>(&text)
                && process_alive(state.pid, &state.name)
            {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &state.pid.to_string()])
                    .status();
            }
        }
    }
}
