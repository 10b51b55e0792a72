//! How many client connections a server holds (the gateway, and the agent's signaling port):
//! at most so many in all and from one IP address. A connection takes a slot before its
//! upgrade and gives it back when it ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

/// The caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub total: usize,
    pub per_ip: usize,
}

/// Open connections, counted against [`Limits`].
#[derive(Debug)]
pub struct ConnectionLimits {
    limits: Limits,
    open: Arc<Mutex<Open>>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    #[error(
        "this server holds its maximum of {0} connections; try again shortly, or another replica"
    )]
    Total(usize),
    #[error("{ip} already has {limit} connections open, the most one address may; close some")]
    PerIp { ip: IpAddr, limit: usize },
}

impl Full {
    pub fn status(&self) -> StatusCode {
        match self {
            Full::Total(_) => StatusCode::SERVICE_UNAVAILABLE,
            Full::PerIp { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// One admitted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    ip: IpAddr,
    open: Arc<Mutex<Open>>,
}

impl ConnectionLimits {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            open: Arc::default(),
        }
    }

    pub fn admit(&self, ip: IpAddr) -> Result<Slot, Full> {
        let mut open = lock(&self.open);
        if open.total >= self.limits.total {
            return Err(Full::Total(self.limits.total));
        }
        let from_ip = open.by_ip.entry(ip).or_default();
        if *from_ip >= self.limits.per_ip {
            return Err(Full::PerIp {
                ip,
                limit: self.limits.per_ip,
            });
        }
        *from_ip += 1;
        open.total += 1;
        Ok(Slot {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        open.total -= 1;
        if let Some(count) = open.by_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.by_ip.remove(&self.ip);
            }
        }
    }
}

fn lock(open: &Mutex<Open>) -> std::sync::MutexGuard<'_, Open> {
    // Two counters that are updated together under the lock: still consistent after a panic.
    open.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_address_and_in_all_and_come_back_when_dropped() {
        let limits = ConnectionLimits::new(Limits {
            total: 3,
            per_ip: 2,
        });
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = limits.admit(a).expect("a's first");
        let _second = limits.admit(a).expect("a's second");
        assert_eq!(
            limits.admit(a).unwrap_err(),
            Full::PerIp { ip: a, limit: 2 }
        );
        let _third = limits.admit(b).expect("b's first");
        assert_eq!(limits.admit(b).unwrap_err(), Full::Total(3));
        drop(first);
        limits.admit(a).expect("a slot came back");
    }
}
