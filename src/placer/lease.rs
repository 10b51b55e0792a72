//! Reservation leases. Reservations made close together share one lease, so a placement costs
//! one etcd transaction and not a lease grant as well: a lease is reused for a tenth of its
//! TTL, so a reservation nobody joins lapses between 0.9 × TTL and TTL after it was made.

use std::time::{Duration, Instant};

use crate::store::{LeaseId, Store, StoreError};

pub(super) struct Leases {
    ttl: Duration,
    current: Option<(LeaseId, Instant)>,
}

impl Leases {
    pub(super) fn new(ttl: Duration) -> Self {
        Self { ttl, current: None }
    }

    /// A lease with at least 0.9 × TTL left.
    pub(super) async fn current(&mut self, store: &Store) -> Result<LeaseId, StoreError> {
        match self.current {
            Some((lease, granted)) if granted.elapsed() < self.ttl / 10 => Ok(lease),
            _ => {
                let granted = Instant::now();
                let lease = store.grant_lease(self.ttl).await?;
                self.current = Some((lease, granted));
                Ok(lease)
            }
        }
    }

    /// Forgets the current lease, after etcd said it is gone.
    pub(super) fn forget(&mut self) {
        self.current = None;
    }
}
