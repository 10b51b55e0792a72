//! The placement and scaling policies a simulation compares. [`ours`] is production's own
//! `placement::decide` and `autoscale::plan`; the others are the behaviour of the systems
//! people run today, each written from its documentation (named in its file), as small pure
//! functions of the simulated cluster.

pub mod gce_mig;
pub mod jitsi;
pub mod livekit;
pub mod ours;
pub mod seed;

use super::clock::Millis;
use super::cluster::{Cluster, Machine, MachineId};
use super::trace::SessionSpec;
use crate::model::Units;

/// A session asking to be placed.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub index: u32,
    pub spec: &'a SessionSpec,
    /// What its declared size costs; `None` when its class does not admit that size.
    pub demand: Option<Units>,
    /// When it first asked.
    pub since: Millis,
}

/// A policy's answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// (machine, units reserved there); the first is the origin.
    On(Vec<(MachineId, Units)>),
    /// Not now; ask again when something changes.
    Wait,
    Refuse(String),
}

/// One way of placing sessions and sizing the fleet.
pub trait Policy: Send {
    /// The name on the command line and in the report.
    fn name(&self) -> &str;
    /// One line on what it does, for the report.
    fn summary(&self) -> String;
    /// Machine types ready when the simulation starts.
    fn initial_fleet(&self) -> Vec<String>;
    /// Called once the initial fleet exists.
    fn start(&mut self, _cluster: &Cluster) {}
    /// Time between two autoscaler ticks; `None` for a fixed fleet.
    fn scale_interval(&self) -> Option<Millis>;
    fn place(&mut self, cluster: &Cluster, request: &Request<'_>, now: Millis) -> Placement;
    fn scale(&mut self, _cluster: &mut Cluster, _now: Millis) {}
    fn placed(&mut self, _cluster: &Cluster, _request: &Request<'_>, _now: Millis) {}
    fn ended(&mut self, _session: u32) {}
    fn abandoned(&mut self, _spec: &SessionSpec) {}
}

/// The policies `ionctl simulate --policies` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PolicyKind {
    Ours,
    Seed,
    LivekitLowest,
    LivekitTwochoice,
    LivekitHpa,
    Jitsi,
    GceMig,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 7] = [
        PolicyKind::Ours,
        PolicyKind::Seed,
        PolicyKind::LivekitLowest,
        PolicyKind::LivekitTwochoice,
        PolicyKind::LivekitHpa,
        PolicyKind::Jitsi,
        PolicyKind::GceMig,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Ours => "ours",
            PolicyKind::Seed => "seed",
            PolicyKind::LivekitLowest => "livekit-lowest",
            PolicyKind::LivekitTwochoice => "livekit-twochoice",
            PolicyKind::LivekitHpa => "livekit-hpa",
            PolicyKind::Jitsi => "jitsi",
            PolicyKind::GceMig => "gce-mig",
        }
    }

    pub fn by_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn names() -> String {
        Self::ALL.map(PolicyKind::name).join(", ")
    }
}

/// What the policies are built from.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    pub ours: ours::OursConfig,
    /// The machine type of the other policies' fleets.
    pub fleet_machine_type: String,
    /// Machines of the fixed fleets (LiveKit without an autoscaler).
    pub fixed_fleet: u32,
    /// The fewest machines an autoscaled foreign fleet keeps.
    pub min_nodes: u32,
    pub max_nodes: u32,
    /// Seeds the random choices of policies that make them (two-choice).
    pub seed: u64,
}

pub fn build(kind: PolicyKind, config: &PolicyConfig) -> Box<dyn Policy> {
    let fleet = config.fleet_machine_type.clone();
    match kind {
        PolicyKind::Ours => Box::new(ours::Ours::new(config.ours.clone())),
        PolicyKind::Seed => Box::new(seed::Seed::new(fleet, config.min_nodes, config.max_nodes)),
        PolicyKind::LivekitLowest => Box::new(livekit::LiveKit::fixed(
            livekit::Algorithm::Lowest,
            fleet,
            config.fixed_fleet,
            config.seed,
        )),
        PolicyKind::LivekitTwochoice => Box::new(livekit::LiveKit::fixed(
            livekit::Algorithm::TwoChoice,
            fleet,
            config.fixed_fleet,
            config.seed,
        )),
        PolicyKind::LivekitHpa => Box::new(livekit::LiveKit::hpa(
            fleet,
            config.min_nodes,
            config.max_nodes,
            config.seed,
        )),
        PolicyKind::Jitsi => Box::new(jitsi::Jitsi::new(fleet, config.min_nodes, config.max_nodes)),
        PolicyKind::GceMig => Box::new(gce_mig::GceMig::new(
            fleet,
            config.min_nodes,
            config.max_nodes,
        )),
    }
}

/// A scale-in stabilisation window, as Kubernetes' HPA and Compute Engine's autoscaler keep
/// it: scale up to a recommendation at once, scale in only to the highest recommendation
/// of the last `window`.
#[derive(Debug, Clone)]
pub struct Stabilised {
    window: Millis,
    recommendations: std::collections::VecDeque<(Millis, u32)>,
}

impl Stabilised {
    pub fn new(window: Millis) -> Self {
        Self {
            window,
            recommendations: std::collections::VecDeque::new(),
        }
    }

    /// Records `recommended` at `now` and returns the size to scale in to: the highest
    /// recommendation within the window.
    pub fn record(&mut self, now: Millis, recommended: u32) -> u32 {
        self.recommendations.push_back((now, recommended));
        while self
            .recommendations
            .front()
            .is_some_and(|(at, _)| now - at > self.window)
        {
            self.recommendations.pop_front();
        }
        self.recommendations
            .iter()
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(recommended)
    }
}

/// The machine with the lowest reported CPU among `machines`; ties go to the lower id.
pub fn lowest_cpu<'a>(
    machines: impl Iterator<Item = &'a Machine>,
    cpu: impl Fn(&Machine) -> f64,
) -> Option<&'a Machine> {
    machines.min_by(|a, b| cpu(a).total_cmp(&cpu(b)).then(a.id.cmp(&b.id)))
}

/// The refusal of a size its class does not admit, in production's words.
pub fn invalid_size(spec: &SessionSpec) -> Placement {
    let reason = crate::capacity::ClassSpec::of(spec.class)
        .demand(spec.size)
        .err()
        .map_or_else(|| "invalid size".to_owned(), |e| e.to_string());
    Placement::Refuse(reason)
}

/// `n` ready, undrained machines to retire, the least loaded first (ties: the newest).
pub fn least_loaded(cluster: &Cluster, n: usize) -> Vec<MachineId> {
    let mut ready: Vec<&Machine> = cluster.placeable().collect();
    ready.sort_by(|a, b| {
        a.actual
            .cmp(&b.actual)
            .then(a.observed.cmp(&b.observed))
            .then(b.id.cmp(&a.id))
    });
    ready.into_iter().take(n).map(|m| m.id).collect()
}
