//! A real etcd server for one test: plain, or over mutual TLS with RBAC.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::Permission;
use ion_cluster::store::{EtcdOptions, Store, TlsOptions};

use super::free_port;
use super::pki::{CertFiles, TestCa};

/// The etcd user the cluster's agents and ionctl run as, when RBAC is on.
pub const CLUSTER_USER: &str = "ion";
pub const CLUSTER_PASSWORD: &str = "ion-cluster-password";
/// A user whose role reads and writes another prefix only.
pub const OUTSIDER_USER: &str = "outsider";
pub const OUTSIDER_PASSWORD: &str = "outsider-password";
const ROOT_PASSWORD: &str = "root-password";

/// How a secure etcd is set up.
#[derive(Debug, Clone, Default)]
pub struct Secure {
    /// Turn on auth, with a role that reads and writes only this prefix for [`CLUSTER_USER`].
    pub rbac_prefix: Option<String>,
    /// Issue JWT auth tokens that expire after this long (etcd's simple tokens are renewed
    /// by every use, so only JWTs make a busy client's token expire).
    pub token_ttl: Option<Duration>,
}

/// TLS material of a secure etcd.
pub struct Tls {
    pub ca: TestCa,
    pub server: CertFiles,
    /// The cluster's client certificate (common name [`CLUSTER_USER`]).
    pub client: CertFiles,
    secure: Secure,
    /// Auth is on (after [`Etcd::enable_rbac`]): clients log in as [`CLUSTER_USER`].
    auth_enabled: bool,
}

pub struct Etcd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    tls: Option<Tls>,
}

impl Etcd {
    /// Starts etcd (`ETCD_BIN`, else `etcd` on PATH) and waits until it answers.
    pub async fn start() -> Self {
        Self::launch(None).await
    }

    /// Starts etcd serving clients over TLS and requiring a client certificate signed by a CA
    /// made for this test (`--client-cert-auth`), then, as `secure` asks, turns on auth with
    /// the cluster's user and role.
    pub async fn start_secure(secure: Secure) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir for etcd");
        let ca = TestCa::new(dir.path(), "etcd");
        let tls = Tls {
            server: ca.server(),
            client: ca.client(CLUSTER_USER),
            ca,
            secure,
            auth_enabled: false,
        };
        let mut etcd = Self::launch_in(dir, Some(tls)).await;
        if let Some(prefix) = etcd.tls.as_ref().and_then(|t| t.secure.rbac_prefix.clone()) {
            etcd.enable_rbac(&prefix).await;
        }
        etcd
    }

    async fn launch(tls: Option<Tls>) -> Self {
        Self::launch_in(tempfile::tempdir().expect("a temp dir for etcd"), tls).await
    }

    async fn launch_in(dir: tempfile::TempDir, tls: Option<Tls>) -> Self {
        let mut etcd = Self {
            child: None,
            dir,
            client_port: 0,
            peer_port: 0,
            tls,
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
        let client = self.endpoint();
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
            .args(self.security_args())
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

    fn security_args(&self) -> Vec<String> {
        let Some(tls) = &self.tls else {
            return Vec::new();
        };
        let mut args = vec![
            format!("--cert-file={}", tls.server.cert.display()),
            format!("--key-file={}", tls.server.key.display()),
            format!("--trusted-ca-file={}", tls.ca.cert.display()),
            "--client-cert-auth".to_owned(),
        ];
        if let Some(ttl) = tls.secure.token_ttl {
            let key = rcgen::KeyPair::generate().expect("a token signing key");
            let private = self.dir.path().join("jwt-key.pem");
            let public = self.dir.path().join("jwt-pub.pem");
            if !private.exists() {
                std::fs::write(&private, key.serialize_pem()).expect("writing the JWT key");
                std::fs::write(&public, key.public_key_pem()).expect("writing the JWT key");
            }
            args.push(format!(
                "--auth-token=jwt,pub-key={},priv-key={},sign-method=ES256,ttl={}s",
                public.display(),
                private.display(),
                ttl.as_secs().max(1)
            ));
        }
        args
    }

    /// Adds root, the cluster's role and user (read-write on `prefix` only) and an outsider
    /// (read-write elsewhere only), then enables auth: what docs/operations.md tells an
    /// operator to do with etcdctl.
    async fn enable_rbac(&mut self, prefix: &str) {
        // Before auth is on, the client certificate alone is enough.
        let mut admin = Store::connect(&self.options("/"))
            .await
            .expect("connecting as admin")
            .client();
        let elsewhere = "/elsewhere/";
        let steps = async {
            admin.user_add("root", ROOT_PASSWORD, None).await?;
            admin.role_add("root").await?;
            admin.user_grant_role("root", "root").await?;
            for (user, password, role, keys) in [
                (CLUSTER_USER, CLUSTER_PASSWORD, "ion-cluster", prefix),
                (OUTSIDER_USER, OUTSIDER_PASSWORD, "elsewhere", elsewhere),
            ] {
                admin.role_add(role).await?;
                admin
                    .role_grant_permission(role, Permission::read_write(keys).with_prefix())
                    .await?;
                admin.user_add(user, password, None).await?;
                admin.user_grant_role(user, role).await?;
            }
            admin.auth_enable().await?;
            Ok::<_, etcd_client::Error>(())
        };
        steps.await.expect("setting up etcd's users and roles");
        if let Some(tls) = &mut self.tls {
            tls.auth_enabled = true;
        }
        assert!(
            self.wait_ready(Duration::from_secs(15)).await,
            "etcd did not answer the cluster's user after auth was enabled:\n{}",
            self.log()
        );
    }

    async fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut last_error = None;
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                eprintln!("etcd exited with {status}:\n{}", self.log());
                return false;
            }
            let mut options = self.options(self.ready_prefix());
            options.connect_timeout = Duration::from_millis(500);
            match Store::connect(&options).await {
                Ok(_) => return true,
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some(e) = last_error {
            eprintln!("etcd did not answer within {timeout:?}; the last attempt: {e}");
        }
        false
    }

    /// A prefix the harness may read: with RBAC, only the cluster's is.
    fn ready_prefix(&self) -> &str {
        self.tls
            .as_ref()
            .filter(|t| t.auth_enabled)
            .and_then(|t| t.secure.rbac_prefix.as_deref())
            .unwrap_or("/")
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The TLS material, when this etcd is secure.
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// How the cluster reaches this etcd: with a secure one, over TLS with the cluster's
    /// client certificate and, with RBAC, as the cluster's user.
    pub fn options(&self, prefix: &str) -> EtcdOptions {
        let mut options = EtcdOptions {
            endpoints: vec![self.endpoint()],
            prefix: prefix.to_owned(),
            connect_timeout: Duration::from_secs(2),
            ..EtcdOptions::default()
        };
        if let Some(tls) = &self.tls {
            options.tls = Some(TlsOptions {
                ca_file: Some(tls.ca.cert.clone()),
                cert_file: Some(tls.client.cert.clone()),
                key_file: Some(tls.client.key.clone()),
                domain: None,
            });
            if tls.auth_enabled {
                options.username = Some(CLUSTER_USER.to_owned());
                options.password = Some(CLUSTER_PASSWORD.to_owned());
            }
        }
        options
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
