//! A real `ionctl serve` process for one test, reachable at `base_url()`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Etcd, free_port, wait_for};

/// A self-signed certificate for 127.0.0.1 in PEM files, for `serve --tls-cert --tls-key`.
pub struct TestCertificate {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// The certificate's PEM text.
    pub pem: String,
}

impl TestCertificate {
    /// Writes a new one as `cert.pem` and `key.pem` in `dir`, replacing what is there: each
    /// file is written whole and renamed into place, as a rotation tool would.
    pub fn write(dir: &std::path::Path) -> TestCertificate {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .expect("a test certificate");
        let pem = certified.cert.pem();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        for (path, text) in [
            (&cert, pem.clone()),
            (&key, certified.signing_key.serialize_pem()),
        ] {
            let partial = path.with_extension("new");
            std::fs::write(&partial, text).expect("writing a PEM file");
            std::fs::rename(&partial, path).expect("renaming a PEM file");
        }
        TestCertificate { cert, key, pem }
    }

    /// The `serve` arguments that use it.
    pub fn serve_args(&self) -> [&str; 4] {
        [
            "--tls-cert",
            self.cert.to_str().expect("a UTF-8 path"),
            "--tls-key",
            self.key.to_str().expect("a UTF-8 path"),
        ]
    }
}

pub struct ServeProcess {
    child: Child,
    log: tempfile::NamedTempFile,
    pub port: u16,
    /// Started with `--tls-cert`: it speaks HTTPS.
    tls: bool,
}

impl ServeProcess {
    /// Starts `ionctl serve` against `etcd` under `prefix` and waits until `/healthz` is 200.
    pub async fn start(etcd: &Etcd, prefix: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with(etcd, prefix, env, &[]).await
    }

    /// The same, with extra `serve` arguments.
    pub async fn start_with(
        etcd: &Etcd,
        prefix: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Self {
        Self::start_at(&etcd.endpoint(), prefix, env, args).await
    }

    /// The same, against etcd at `endpoint` (a relay in front of it, say).
    pub async fn start_at(
        endpoint: &str,
        prefix: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Self {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ionctl"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--etcd", endpoint, "--prefix", prefix])
            .args(args)
            .env_remove("IONCTL_JOIN_SECRET")
            .env("XDG_CONFIG_HOME", "/nonexistent-ionctl-test-config")
            .env("IONCTL_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log handle"))
            .stderr(log.reopen().expect("log handle"))
            .spawn()
            .expect("starting ionctl serve");
        let tls = args.contains(&"--tls-cert");
        let serve = Self {
            child,
            log,
            port,
            tls,
        };
        // Readiness only; the TLS tests check the certificate themselves.
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(tls)
            .build()
            .expect("an HTTP client");
        let url = format!("{}/healthz", serve.base_url());
        wait_for(
            "ionctl serve to answer /healthz",
            Duration::from_secs(15),
            || {
                let request = client.get(&url).send();
                async move {
                    request
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(|_| ())
                }
            },
        )
        .await;
        serve
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- log of ionctl serve ---\n{}", self.log());
        }
    }
}
