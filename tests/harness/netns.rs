//! A network namespace made by one test, joined to the host by two veth links: one for
//! etcd's traffic, one for signaling and media. Cutting the first partitions a node from
//! etcd while its calls go on. Addresses are private /30s of this test's own; the namespace
//! and its links are deleted on drop.

use std::process::Command;

/// One veth pair: the host end and the namespace end, each with its address.
#[derive(Debug, Clone)]
pub struct Link {
    pub host_if: String,
    pub ns_if: String,
    pub host_ip: String,
    pub ns_ip: String,
}

pub struct Netns {
    pub name: String,
    /// The link etcd's traffic takes.
    pub etcd: Link,
    /// The link signaling and media take.
    pub media: Link,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` ({e}); install iproute2 (scripts/install-deps)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Makes the namespace and its links, or says why the kernel (or our privileges)
    /// refused.
    pub fn create(tag: &str) -> Result<Self, String> {
        let n = std::process::id() % 200 + 20;
        let name = format!("ion-{tag}-{}", std::process::id());
        let link = |kind: &str, net: u32| Link {
            host_if: format!("i{kind}{n}h"),
            ns_if: format!("i{kind}{n}n"),
            host_ip: format!("10.{net}.{n}.1"),
            ns_ip: format!("10.{net}.{n}.2"),
        };
        let netns = Self {
            name,
            etcd: link("e", 231),
            media: link("m", 232),
        };
        ip(&["netns", "add", &netns.name])?;
        // From here on, drop removes what was made.
        netns.exec_ip(&["link", "set", "lo", "up"])?;
        for link in [&netns.etcd, &netns.media] {
            ip(&[
                "link",
                "add",
                &link.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &link.ns_if,
            ])?;
            ip(&["link", "set", &link.ns_if, "netns", &netns.name])?;
            ip(&[
                "addr",
                "add",
                &format!("{}/30", link.host_ip),
                "dev",
                &link.host_if,
            ])?;
            ip(&["link", "set", &link.host_if, "up"])?;
            netns.exec_ip(&[
                "addr",
                "add",
                &format!("{}/30", link.ns_ip),
                "dev",
                &link.ns_if,
            ])?;
            netns.exec_ip(&["link", "set", &link.ns_if, "up"])?;
        }
        Ok(netns)
    }

    fn exec_ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// The command prefix that runs a program inside the namespace.
    pub fn exec_prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .map(str::to_owned)
            .to_vec()
    }

    /// Takes the link down at both ends: packets are dropped, nothing is refused.
    pub fn cut(&self, link: &Link) {
        ip(&["link", "set", &link.host_if, "down"]).expect("cutting the link");
        self.exec_ip(&["link", "set", &link.ns_if, "down"])
            .expect("cutting the link");
    }

    pub fn heal(&self, link: &Link) {
        self.exec_ip(&["link", "set", &link.ns_if, "up"])
            .expect("healing the link");
        ip(&["link", "set", &link.host_if, "up"]).expect("healing the link");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the namespace ends, and with them both veth pairs.
        let _ = ip(&["netns", "del", &self.name]);
        for link in [&self.etcd, &self.media] {
            let _ = ip(&["link", "del", &link.host_if]);
        }
    }
}

/// Forwards TCP connections from `listen` to `target` (etcd on loopback), so a process in
/// the namespace reaches etcd across the etcd link. Runs until the runtime ends.
pub async fn tcp_forward(listen: &str, target: String) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .expect("binding the etcd forwarder");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    addr
}
