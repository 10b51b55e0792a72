use std::time::Instant;

use super::Pacer;
use super::PaddingRequest;
use super::QueueState;
use crate::Reason;
use crate::pacer::PacerReason;
use crate::rtp_::{Bitrate, DataSize, MidRid, TwccClusterId};

/// A null pacer that doesn't pace.
#[derive(Debug, Default)]
pub struct NullPacer {
    /// The queues of the last `handle_timeout`, each with its packets left to hand out
    /// and when it last sent. ion-cluster patch 2 (PATCHES.md): no map hashed with
    /// SipHash twice per packet; patch 4: the last send lives beside its queue, so
    /// picking a queue is one pass, not one search of a side list per queue.
    queues: Vec<Queue>,
    /// The index in `queues` that `poll_queue` handed out last, for `register_send`.
    last_polled: Option<usize>,
    /// Set when `poll_queue` hands out a queue that `register_send` never confirms:
    /// the stream had nothing to send after all, so the snapshot is stale.
    unsent_since: Option<Instant>,
}

#[derive(Debug)]
struct Queue {
    midrid: MidRid,
    /// Packets of the snapshot not yet handed out.
    packet_count: u32,
    created_at: Instant,
    /// When this queue last sent; `None` (first in order) if never.
    last_send: Option<Instant>,
}

impl NullPacer {
    /// Takes a fresh snapshot of one queue, leaving the others as they are. ion-cluster
    /// patch 4 (PATCHES.md): a write released on its own refreshes only its stream.
    pub(crate) fn refresh_queue(&mut self, state: QueueState) {
        match self.queues.iter_mut().find(|q| q.midrid == state.midrid) {
            Some(queue) => {
                queue.packet_count = state.snapshot.packet_count;
                queue.created_at = state.snapshot.created_at;
            }
            None => self.queues.push(Queue {
                midrid: state.midrid,
                packet_count: state.snapshot.packet_count,
                created_at: state.snapshot.created_at,
                last_send: None,
            }),
        }
    }
}

impl Pacer for NullPacer {
    fn set_pacing_rate(&mut self, _padding_bitrate: Bitrate) {
        // We don't care
    }

    fn set_padding_rate(&mut self, _padding_bitrate: Bitrate) {
        // We don't care
    }
    fn poll_timeout(&self) -> (Option<Instant>, Reason) {
        // Only a poll that sent nothing needs a fresh snapshot: other queued packets go
        // out on the next poll. New media requests a timeout, and receiving a NACK
        // refreshes the snapshot through Rtc::handle_input before polling resumes.
        (self.unsent_since, Reason::Pacer(PacerReason::Handle))
    }

    fn handle_timeout(
        &mut self,
        _now: Instant,
        iter: impl Iterator<Item = QueueState>,
    ) -> Option<PaddingRequest> {
        self.unsent_since = None;
        self.last_polled = None;
        let mut index = 0;
        for state in iter {
            // The streams come in the same order every time, so a queue is almost always
            // where it was; search only when the set of streams changed.
            let found = match self.queues.get(index) {
                Some(queue) if queue.midrid == state.midrid => Some(index),
                _ => (index..self.queues.len()).find(|&i| self.queues[i].midrid == state.midrid),
            };
            match found {
                Some(i) => {
                    self.queues.swap(index, i);
                    let queue = &mut self.queues[index];
                    queue.packet_count = state.snapshot.packet_count;
                    queue.created_at = state.snapshot.created_at;
                }
                None => self.queues.insert(
                    index,
                    Queue {
                        midrid: state.midrid,
                        packet_count: state.snapshot.packet_count,
                        created_at: state.snapshot.created_at,
                        last_send: None,
                    },
                ),
            }
            index += 1;
        }
        self.queues.truncate(index);

        None
    }

    fn poll_queue(&mut self) -> Option<(MidRid, Option<TwccClusterId>)> {
        // Pick a queue using round robin, prioritize the least recently sent on queue.
        let (index, queue) = self
            .queues
            .iter_mut()
            .enumerate()
            .filter(|(_, q)| q.packet_count > 0)
            .min_by_key(|(_, q)| q.last_send)?;

        queue.packet_count -= 1;
        self.unsent_since = Some(queue.created_at);
        self.last_polled = Some(index);

        Some((queue.midrid, None))
    }

    fn register_send(&mut self, now: Instant, _packet_size: DataSize, from: MidRid) {
        self.unsent_since = None;
        let polled = self
            .last_polled
            .filter(|&i| self.queues.get(i).is_some_and(|q| q.midrid == from));
        let index = polled.or_else(|| self.queues.iter().position(|q| q.midrid == from));
        match index {
            Some(i) => self.queues[i].last_send = Some(now),
            None => self.queues.push(Queue {
                midrid: from,
                packet_count: 0,
                created_at: now,
                last_send: Some(now),
            }),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::pacer::QueueSnapshot;

    fn queue(mid: &str, packet_count: u32, now: Instant) -> QueueState {
        QueueState {
            midrid: MidRid(mid.into(), None),
            unpaced: true,
            use_for_padding: false,
            snapshot: QueueSnapshot {
                created_at: now,
                packet_count,
                ..Default::default()
            },
        }
    }

    #[test]
    fn drains_every_queue_without_another_timeout() {
        let now = Instant::now();
        let mut pacer = NullPacer::default();
        let queues = [queue("a", 2, now), queue("b", 1, now), queue("c", 0, now)];
        pacer.handle_timeout(now, queues.into_iter());

        let mut sent = vec![];
        for _ in 0..3 {
            let (midrid, _) = pacer.poll_queue().expect("queued packet");
            pacer.register_send(now, DataSize::bytes(100), midrid);
            assert_eq!(pacer.poll_timeout().0, None, "no timeout between sends");
            sent.push(midrid.mid().to_string());
        }
        sent.sort();
        assert_eq!(sent, ["a", "a", "b"]);
        assert_eq!(pacer.poll_queue(), None);
        assert_eq!(pacer.poll_timeout().0, None, "no timeout after draining");
    }

    #[test]
    fn unsent_poll_asks_for_a_fresh_snapshot() {
        let now = Instant::now();
        let mut pacer = NullPacer::default();
        pacer.handle_timeout(now, [queue("a", 1, now), queue("b", 1, now)].into_iter());

        assert!(pacer.poll_queue().is_some());
        assert_eq!(pacer.poll_timeout().0, Some(now), "stream sent nothing");

        pacer.handle_timeout(now, [queue("b", 1, now)].into_iter());
        assert_eq!(pacer.poll_timeout().0, None);
        let (midrid, _) = pacer.poll_queue().expect("remaining packet");
        assert_eq!(midrid, MidRid("b".into(), None));
        pacer.register_send(now, DataSize::bytes(100), midrid);
        assert_eq!(pacer.poll_queue(), None);
        assert_eq!(pacer.poll_timeout().0, None);
    }

    #[test]
    fn round_robin_by_least_recently_sent() {
        let now = Instant::now();
        let mut pacer = NullPacer::default();
        pacer.register_send(now, DataSize::bytes(100), MidRid("a".into(), None));
        let later = now + std::time::Duration::from_millis(1);
        pacer.register_send(later, DataSize::bytes(100), MidRid("b".into(), None));
        pacer.handle_timeout(
            later,
            [queue("a", 1, later), queue("b", 1, later)].into_iter(),
        );

        assert_eq!(pacer.poll_queue(), Some((MidRid("a".into(), None), None)));
    }

    #[test]
    fn a_queue_keeps_its_last_send_when_the_streams_come_in_another_order() {
        let now = Instant::now();
        let later = now + std::time::Duration::from_millis(1);
        let mut pacer = NullPacer::default();
        pacer.handle_timeout(now, [queue("a", 1, now), queue("b", 1, now)].into_iter());
        let (first, _) = pacer.poll_queue().expect("queued packet");
        assert_eq!(
            first,
            MidRid("a".into(), None),
            "never-sent queues go in order"
        );
        pacer.register_send(now, DataSize::bytes(100), first);

        // A new stream and a new order: "a" sent last, so "c" (never) and "b" (never) go first.
        let queues = [
            queue("c", 1, later),
            queue("b", 1, later),
            queue("a", 1, later),
        ];
        pacer.handle_timeout(later, queues.into_iter());
        let mut sent = vec![];
        while let Some((midrid, _)) = pacer.poll_queue() {
            pacer.register_send(later, DataSize::bytes(100), midrid);
            sent.push(midrid.mid().to_string());
        }
        assert_eq!(sent, ["c", "b", "a"]);
    }
}
