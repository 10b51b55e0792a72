//! The discrete-event loop: sessions arrive, wait, are placed by the policy, change size and
//! end; machines boot and report their load late; the policy's autoscaler ticks. One run
//! replays one trace under one policy; nothing in it reads the clock or a global random
//! source, so a run is a pure function of its inputs.

use super::clock::{MINUTE, Millis, Queue, SECOND};
use super::cluster::{Cluster, ClusterSettings, SessionState};
use super::policies::{Placement, Policy, Request};
use super::trace::Trace;
use crate::model::{SessionClass, Units};

/// Something that happens at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    Arrive(u32),
    /// Session, index of its participant step.
    Step(u32, u32),
    End(u32),
    Abandon(u32),
    Boot(u32),
    HoldExpire(u32),
    /// A machine's reported load moves by this many units.
    Observe(u32, i64),
    Scale,
    Retry,
    Sample,
}

/// How a run behaves, apart from the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub cluster: ClusterSettings,
    /// A caller gives up after waiting this long.
    pub patience: Millis,
    /// The shortest gap between two attempts to place the waiting sessions (production's
    /// placer recheck interval).
    pub recheck: Millis,
    pub sample_every: Millis,
    /// Periodic work stops after this instant once no session is left.
    pub horizon: Millis,
    /// Within one attempt over the waiting sessions, a session is not asked about when one of
    /// its class with no more demand was just refused room (see [`skippable`]). Off in the
    /// test that shows it changes nothing.
    pub skip_dominated: bool,
}

/// One sample of the cluster, for the charts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: Millis,
    /// Machines up or booting.
    pub nodes: u32,
    /// Units carried right now, all machines.
    pub load: u64,
    /// Units of capacity of the machines up or booting.
    pub capacity: u64,
}

/// What a run leaves for the report.
#[derive(Debug)]
pub struct Outcome {
    pub cluster: Cluster,
    /// Request to placement, per placed session.
    pub waits: Vec<Millis>,
    pub samples: Vec<Sample>,
    pub end: Millis,
    pub refused: u32,
    pub abandoned: u32,
    /// The first reason a policy gave for refusing, and how often refusals happened.
    pub refusal: Option<String>,
}

/// Classes whose answer from a policy can only get worse with more demand, all else equal:
/// those placed on one node. Sessions of classes that may span nodes are always asked.
fn skippable(class: SessionClass) -> bool {
    !matches!(class, SessionClass::Conference | SessionClass::Livestream)
}

struct Run<'a> {
    trace: &'a Trace,
    settings: &'a Settings,
    policy: &'a mut dyn Policy,
    cluster: Cluster,
    queue: Queue<Event>,
    waiting: Vec<u32>,
    retry_at: Option<Millis>,
    last_pass: Option<Millis>,
    waits: Vec<Millis>,
    refused: u32,
    abandoned: u32,
    refusal: Option<String>,
    /// Sessions that have not asked yet.
    to_arrive: usize,
}

/// Replays `trace` under `policy`. `progress` hears the simulated time now and then.
pub fn run(
    trace: &Trace,
    policy: &mut dyn Policy,
    settings: &Settings,
    progress: &mut dyn FnMut(Millis),
) -> Outcome {
    let cluster = Cluster::new(settings.cluster.clone(), &trace.sessions);
    let mut run = Run {
        trace,
        settings,
        policy,
        cluster,
        queue: Queue::default(),
        waiting: Vec::new(),
        retry_at: None,
        last_pass: None,
        waits: Vec::with_capacity(trace.sessions.len()),
        refused: 0,
        abandoned: 0,
        refusal: None,
        to_arrive: trace.sessions.len(),
    };
    for machine_type in run.policy.initial_fleet() {
        run.cluster.add_ready(&machine_type);
    }
    run.policy.start(&run.cluster);
    // Arrivals are taken in time order beside the queue rather than pushed into it: a day's
    // arrivals in the heap made every pop deeper. At equal times they come before any queued
    // event, as they would have with the lowest push numbers.
    let mut arrivals: Vec<u32> = (0..trace.sessions.len() as u32).collect();
    arrivals.sort_by_key(|&index| trace.sessions[index as usize].at);
    let mut arrivals = arrivals.into_iter().peekable();
    if run.policy.scale_interval().is_some() {
        run.queue.push(0, Event::Scale);
    }
    run.queue.push(0, Event::Sample);
    let mut samples = Vec::new();
    let mut now = 0;
    let mut handled: u64 = 0;
    loop {
        let arrival = arrivals
            .peek()
            .map(|&index| (trace.sessions[index as usize].at, index));
        let (at, event) = match arrival {
            Some((at, index)) if run.queue.next_at().is_none_or(|queued| at <= queued) => {
                arrivals.next();
                (at, Event::Arrive(index))
            }
            _ => match run.queue.pop() {
                Some(next) => next,
                None => break,
            },
        };
        now = at;
        handled += 1;
        if handled.is_multiple_of(65_536) {
            progress(now);
        }
        match event {
            Event::Arrive(s) => {
                run.to_arrive -= 1;
                run.arrive(s, now);
            }
            Event::Step(s, step) => {
                if matches!(run.state(s), SessionState::Placed { .. })
                    && let Some((_, count)) = run.trace.sessions[s as usize].step(step as usize)
                {
                    run.cluster.set_participants(s, count, now);
                }
            }
            Event::End(s) => {
                if matches!(run.state(s), SessionState::Placed { .. }) {
                    run.cluster.end(s, now);
                    run.policy.ended(s);
                    run.want_retry(now);
                }
            }
            Event::Abandon(s) => {
                if run.cluster.is_waiting(s) {
                    run.cluster.set_state(s, SessionState::Abandoned);
                    run.waiting.retain(|w| *w != s);
                    run.abandoned += 1;
                    run.policy.abandoned(&run.trace.sessions[s as usize]);
                }
            }
            Event::Boot(m) => {
                run.cluster.boot(m, now);
                run.want_retry(now);
            }
            Event::HoldExpire(m) => {
                run.cluster.hold_expire(m);
                run.want_retry(now);
            }
            Event::Observe(m, delta) => {
                run.cluster.observe(m, delta);
                if delta < 0 {
                    run.want_retry(now);
                }
            }
            Event::Scale => {
                run.policy.scale(&mut run.cluster, now);
                if let Some(interval) = run.policy.scale_interval()
                    && run.goes_on(now)
                {
                    run.queue.push(now + interval, Event::Scale);
                }
            }
            Event::Retry => {
                run.retry_at = None;
                run.retry(now);
            }
            Event::Sample => {
                samples.push(run.sample(now));
                if run.goes_on(now) {
                    run.queue.push(now + settings.sample_every, Event::Sample);
                }
            }
        }
        for (at, event) in run.cluster.outbox.drain(..) {
            run.queue.push(at, event);
        }
    }
    let end = now.max(settings.horizon);
    run.cluster.close(end);
    progress(end);
    Outcome {
        cluster: run.cluster,
        waits: run.waits,
        samples,
        end,
        refused: run.refused,
        abandoned: run.abandoned,
        refusal: run.refusal,
    }
}

impl Run<'_> {
    fn state(&self, session: u32) -> SessionState {
        self.cluster.sessions[session as usize].state
    }

    /// Periodic work goes on until the horizon, and after it while sessions remain.
    fn goes_on(&self, now: Millis) -> bool {
        now < self.settings.horizon
            || self.to_arrive > 0
            || self.cluster.placed_now > 0
            || !self.waiting.is_empty()
    }

    fn sample(&self, now: Millis) -> Sample {
        let mut sample = Sample {
            at: now,
            nodes: 0,
            load: 0,
            capacity: 0,
        };
        for machine in self.cluster.live() {
            sample.nodes += 1;
            sample.load += u64::from(machine.actual);
            sample.capacity += u64::from(machine.capacity);
        }
        sample
    }

    fn arrive(&mut self, session: u32, now: Millis) {
        self.cluster
            .set_state(session, SessionState::Waiting { since: now });
        self.queue
            .push(now + self.settings.patience, Event::Abandon(session));
        if !self.try_place(session, now) && self.cluster.is_waiting(session) {
            self.waiting.push(session);
            self.want_retry(now);
        }
    }

    /// Asks the policy again for the waiting sessions, no sooner than the recheck interval
    /// after the last time.
    fn want_retry(&mut self, now: Millis) {
        if self.waiting.is_empty() || self.retry_at.is_some() {
            return;
        }
        let at = self
            .last_pass
            .map_or(now, |last| now.max(last + self.settings.recheck));
        self.retry_at = Some(at);
        self.queue.push(at, Event::Retry);
    }

    fn retry(&mut self, now: Millis) {
        self.last_pass = Some(now);
        let waiting = std::mem::take(&mut self.waiting);
        let held: Vec<String> = self
            .cluster
            .live()
            .filter_map(|m| m.hold_for.clone())
            .collect();
        let mut refused_room: Vec<(SessionClass, Units)> = Vec::new();
        let mut still = Vec::with_capacity(waiting.len());
        for session in waiting {
            if !self.cluster.is_waiting(session) {
                continue;
            }
            let spec = &self.trace.sessions[session as usize];
            let demand = spec.declared_demand().unwrap_or(Units::MAX);
            let dominated = self.settings.skip_dominated
                && skippable(spec.class)
                && !held.contains(&spec.sid)
                && refused_room
                    .iter()
                    .any(|(class, least)| *class == spec.class && demand >= *least);
            if dominated {
                still.push(session);
                continue;
            }
            if !self.try_place(session, now) && self.cluster.is_waiting(session) {
                refused_room.push((spec.class, demand));
                still.push(session);
            }
        }
        // Sessions that arrived during the attempt come after the older ones.
        still.append(&mut self.waiting);
        self.waiting = still;
        if !self.waiting.is_empty() && self.retry_at.is_none() {
            // Nothing may change for a while (a machine booting): look again at the next
            // change, or after a second at the latest, as a waiting placer's watch would.
            let at = now + SECOND.max(self.settings.recheck);
            self.retry_at = Some(at);
            self.queue.push(at, Event::Retry);
        }
    }

    /// One attempt to place `session`; true when it was placed.
    fn try_place(&mut self, session: u32, now: Millis) -> bool {
        let spec = &self.trace.sessions[session as usize];
        let since = match self.state(session) {
            SessionState::Waiting { since } => since,
            _ => return false,
        };
        let request = Request {
            index: session,
            spec,
            demand: spec.declared_demand(),
            since,
        };
        match self.policy.place(&self.cluster, &request, now) {
            Placement::On(shares) => {
                self.cluster.commit(session, spec, &shares, now);
                let steps = spec.steps();
                self.cluster.set_participants(session, steps[0].1, now);
                for (index, (offset, _)) in steps.iter().enumerate().skip(1) {
                    if *offset < spec.duration {
                        self.queue
                            .push(now + offset, Event::Step(session, index as u32));
                    }
                }
                self.queue.push(now + spec.duration, Event::End(session));
                self.waits.push(now - spec.at);
                self.policy.placed(&self.cluster, &request, now);
                true
            }
            Placement::Wait => false,
            Placement::Refuse(reason) => {
                self.cluster.set_state(session, SessionState::Refused);
                self.refused += 1;
                self.refusal.get_or_insert(reason);
                false
            }
        }
    }
}

/// A minute, the default sampling period.
pub const SAMPLE_EVERY: Millis = MINUTE;
