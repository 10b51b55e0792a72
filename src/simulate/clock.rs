//! Virtual time: milliseconds since the start of the simulated day, the mapping to the
//! `SystemTime` the production records carry, and the event queue the engine pops in time
//! order (ties in the order they were pushed, so a run never depends on heap internals).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, SystemTime};

/// Milliseconds since the start of the simulation.
pub type Millis = u64;

pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

/// Machines of the initial fleet started this long before the simulation, so they are past
/// any warm-up when it begins.
pub const PREHISTORY: Millis = HOUR;

/// A fixed date, so that records and reports never depend on the wall clock.
const EPOCH_SECS: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// The `SystemTime` of simulated instant `t`. Instant 0 is [`PREHISTORY`] after the base date,
/// so machines of the initial fleet can be started before it.
pub fn system_time(t: Millis) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS) + Duration::from_millis(PREHISTORY + t)
}

/// The start of the initial fleet's agents, before instant 0.
pub fn before_start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS)
}

pub fn millis(duration: Duration) -> Millis {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

pub fn seconds(t: Millis) -> f64 {
    t as f64 / SECOND as f64
}

/// Events ordered by time, then by push order.
#[derive(Debug)]
pub struct Queue<E: Ord> {
    heap: BinaryHeap<Reverse<(Millis, u64, E)>>,
    pushed: u64,
}

impl<E: Ord> Default for Queue<E> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            pushed: 0,
        }
    }
}

impl<E: Ord> Queue<E> {
    pub fn push(&mut self, at: Millis, event: E) {
        self.pushed += 1;
        self.heap.push(Reverse((at, self.pushed, event)));
    }

    pub fn pop(&mut self) -> Option<(Millis, E)> {
        self.heap.pop().map(|Reverse((at, _, event))| (at, event))
    }

    /// When the next event is due.
    pub fn next_at(&self) -> Option<Millis> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_pop_in_push_order() {
        let mut queue = Queue::default();
        queue.push(5, 'b');
        queue.push(1, 'z');
        queue.push(5, 'a');
        let order: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(order, vec![(1, 'z'), (5, 'b'), (5, 'a')]);
    }
}
