//! A real etcd server for one test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ion_cluster::store::{EtcdOptions, Store};

use super::free_port;

pub struct Etcd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

impl Etcd {
    /// Starts etcd (`ETCD_BIN`, else `etcd` on PATH) and waits until it answers.
    pub async fn start() -> Self {
        let mut etcd = Self {
            child: None,
            dir: tempfile::tempdir().expect("a temp dir for etcd"),
            client_port: 0,
            peer_port: 0,
        };
        for _attempt in 0..3 {
            etcd.client_port = free_port();
            etcd.peer_port = free_port();
            let _ = std::fs::remove_dir_all(etcd.dir.path().join("data"));
            etcd.spawn();
            if etcd.wait_ready(Duration::from_secs(15)).await {
                return etcd;
            }
            // Most likely a port was taken between picking and binding; try others.
            etcd.kill();
        }
        panic!("etcd did not start:\n{}", etcd.log());
    }

    fn binary() -> PathBuf {
        std::env::var_os("ETCD_BIN").map_or_else(|| PathBuf::from("etcd"), PathBuf::from)
    }

    fn spawn(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the etcd log");
        let child = Command::new(Self::binary())
            .arg("--name=test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start etcd ({}): {e}. Install it with `apt-get install -y \
                     etcd-server` or set ETCD_BIN (scripts/test does this)",
                    Self::binary().display()
                )
            });
        self.child = Some(child);
    }

    async fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                eprintln!("etcd exited with {status}:\n{}", self.log());
                return false;
            }
            let mut options = self.options("/");
            options.connect_timeout = Duration::from_millis(500);
            if Store::connect(&options).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn options(&self, prefix: &str) -> EtcdOptions {
        EtcdOptions {
            endpoints: vec![self.endpoint()],
            prefix: prefix.to_owned(),
            connect_timeout: Duration::from_secs(2),
            ..EtcdOptions::default()
        }
    }

    pub async fn store(&self, prefix: &str) -> Store {
        Store::connect(&self.options(prefix))
            .await
            .expect("connecting to the test etcd")
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same ports and data dir, and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        assert!(
            self.wait_ready(Duration::from_secs(15)).await,
            "etcd did not come back:\n{}",
            self.log()
        );
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
