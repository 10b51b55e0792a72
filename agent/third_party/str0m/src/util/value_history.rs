use std::collections::VecDeque;
use std::iter::Sum;
use std::ops::{AddAssign, SubAssign};
use std::time::{Duration, Instant};

/// Holds a history values of type T for up to a certain Duration, as well as the
/// cumulated (total) value.
///
/// ion-cluster patch 18 (PATCHES.md): values pushed within [`BIN_WIDTH`] of the open bin's
/// start are added to that bin, so the history holds one entry per bin, not one per value,
/// and a value leaves the sum with its bin, up to `BIN_WIDTH` early. Patch 19: the open bin
/// is kept here, beside the sum, and goes to `history` when the next one opens.
#[derive(Debug)]
pub(crate) struct ValueHistory<T> {
    value: T,
    open_bin: Option<OpenBin<T>>,
    history: VecDeque<(Instant, T)>,
    max_time: Duration,
}

const DEFAULT_VALUE_HISTORY_DURATION: Duration = Duration::from_secs(1);

/// How close in time values share an entry (patch 18). The resend cap, the one reader,
/// reads the sum at most every 50 ms (`StreamTx::rtx_ratio_downsampled`), so its window moves
/// in steps of that size already.
const BIN_WIDTH: Duration = Duration::from_millis(50);

/// The newest bin, which values still join (patches 18 and 19).
#[derive(Debug)]
struct OpenBin<T> {
    start: Instant,
    /// `start + BIN_WIDTH`, kept so that a value is placed with a comparison: the
    /// subtraction of two `Instant`s it replaces was 1% of a forwarded packet's instructions
    /// (ion-cluster patch 20).
    ends: Instant,
    sum: T,
}

impl<T: Default> Default for ValueHistory<T> {
    fn default() -> Self {
        Self {
            value: Default::default(),
            open_bin: None,
            history: Default::default(),
            max_time: DEFAULT_VALUE_HISTORY_DURATION,
        }
    }
}

impl<T> ValueHistory<T>
where
    T: Copy + AddAssign + SubAssign + Sum,
{
    /// Adds a timed value
    /// Note: time should always monotonically increase in subsequent calls to add()
    pub fn push(&mut self, t: Instant, v: T) {
        self.value += v;
        // A stream sends up to a hundred packets a second, and each entry was read once more
        // a second later by the purge, long out of the cache (patch 18). Most values only
        // touch the open bin, in this struct (patch 19).
        // A value before the bin's start (time going back) joins it, as the newest.
        if let Some(bin) = &mut self.open_bin
            && t < bin.ends
        {
            bin.sum += v;
            return;
        }
        let opened = OpenBin {
            start: t,
            ends: t.checked_add(BIN_WIDTH).unwrap_or(t),
            sum: v,
        };
        if let Some(closed) = self.open_bin.replace(opened) {
            self.history.push_back((closed.start, closed.sum));
        }
    }

    /// Returns the sum of all values in the history up to max_time. Might
    /// return stale value unless [`ValueHistory::purge_old`] is called before.
    pub fn sum(&self) -> T {
        self.value
    }

    /// How many entries are held, the open bin included (the tests of ion-cluster patches 12
    /// and 18).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.history.len() + usize::from(self.open_bin.is_some())
    }

    /// Recalculates sum purging values older than `now - max_time`.
    pub fn purge_old(&mut self, now: Instant) {
        let is_old = |t: Instant| now.duration_since(t) > self.max_time;
        while self.history.front().is_some_and(|&(t, _)| is_old(t)) {
            if let Some((_, v)) = self.history.pop_front() {
                self.value -= v;
            }
        }
        // The open bin is the newest: it goes once every closed one has.
        if self.history.is_empty()
            && let Some(bin) = self.open_bin.take_if(|bin| is_old(bin.start))
        {
            self.value -= bin.sum;
        }
    }
}

#[allow(clippy::unchecked_time_subtraction)]
#[cfg(test)]
mod test {
    use std::time::{Duration, Instant};

    use super::ValueHistory;

    #[test]
    fn with_value_test() {
        let now = Instant::now();

        let mut h = ValueHistory {
            value: 11,
            max_time: Duration::from_secs(1),
            ..Default::default()
        };

        assert_eq!(h.sum(), 11);
        h.purge_old(now);
        assert_eq!(h.sum(), 11);
        h.push(now - Duration::from_millis(1500), 22);
        h.push(now - Duration::from_millis(500), 22);
        assert_eq!(h.sum(), 11 + 22 + 22);
        h.purge_old(now);
        assert_eq!(h.sum(), 11 + 22);
        h.push(now, 0);
        assert_eq!(h.sum(), 11 + 22);
    }

    #[test]
    fn values_close_in_time_share_an_entry_and_leave_with_it() {
        // Patch 18: 100 values 10 ms apart over one second make 20 entries of 50 ms.
        let start = Instant::now();
        let mut h = ValueHistory::default();
        for i in 0..100u64 {
            h.push(start + Duration::from_millis(10 * i), 1u64);
            if i < 5 {
                assert!(h.history.is_empty(), "the open bin is kept beside the sum");
            }
        }
        assert_eq!(h.sum(), 100);
        assert_eq!(h.len(), 20);

        // 1.2 s after the start, the bins that began at 0 to 150 ms have left: the bin
        // that began at 150 ms is 1.05 s old. Its values at 150–190 ms leave together.
        h.purge_old(start + Duration::from_millis(1200));
        assert_eq!(h.sum(), 100 - 20);
        assert_eq!(h.len(), 16);

        // A value 50 ms or more after the newest bin's start opens a new one.
        h.push(start + Duration::from_millis(1000), 5);
        assert_eq!(h.len(), 17);
        assert_eq!(h.sum(), 85);
    }

    #[test]
    fn test() {
        let now = Instant::now();
        let mut h = ValueHistory::default();

        assert_eq!(h.sum(), 0);
        h.push(now - Duration::from_millis(1500), 22);
        assert_eq!(h.sum(), 22);
        h.purge_old(now);
        assert_eq!(h.sum(), 0);
        h.push(now - Duration::from_millis(700), 22);
        h.push(now - Duration::from_millis(500), 33);
        assert_eq!(h.sum(), 22 + 33);
        h.purge_old(now);
        assert_eq!(h.sum(), 22 + 33);

        h.purge_old(now + Duration::from_millis(400));
        assert_eq!(h.sum(), 33);
        h.purge_old(now + Duration::from_millis(600));
        assert_eq!(h.sum(), 0);
    }
}
