//! Exponential backoff with jitter, for every loop that reconnects or retries: a delay that
//! doubles from `first` up to `max`, each one drawn from its upper half ("equal jitter") so a
//! fleet of agents or placers does not retry in step after an etcd restart.

use std::time::Duration;

/// The delay before the `failed`-th retry (1-based): `first × 2^(failed−1)`, at most `max`,
/// jittered within its upper half.
pub fn delay(first: Duration, max: Duration, failed: u32) -> Duration {
    let exponent = failed.saturating_sub(1).min(20);
    let base = first.saturating_mul(1 << exponent).min(max);
    let half = base / 2;
    half + half.mul_f64(fastrand::f64())
}

/// A loop's backoff: [`Backoff::next_delay`] after each failure, [`Backoff::reset`] after a
/// success.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    failed: u32,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            failed: 0,
        }
    }

    /// The pause before the next attempt; each call doubles the next one, up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        self.failed = self.failed.saturating_add(1);
        delay(self.first, self.max, self.failed)
    }

    /// The last attempt succeeded: the next failure waits the shortest delay again.
    pub fn reset(&mut self) {
        self.failed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_within_their_upper_half() {
        let first = Duration::from_millis(250);
        let max = Duration::from_secs(4);
        let mut backoff = Backoff::new(first, max);
        for base_ms in [250u64, 500, 1000, 2000, 4000, 4000, 4000] {
            let base = Duration::from_millis(base_ms);
            let d = backoff.next_delay();
            assert!(
                d >= base / 2 && d <= base,
                "{d:?} outside [{:?}, {base:?}]",
                base / 2
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= first);
    }
}
