//! Tests of the whole simulation: determinism, that our policy is production's code, known
//! answers on hand-made traces, the fluid bound, and the anchors' documented behaviour.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::clock::{Millis, SECOND};
use super::cluster::{Cluster, SessionState};
use super::engine::{self, Outcome, Settings};
use super::policies::ours::{Ours, OursConfig, Shortcut};
use super::policies::{self, Policy, PolicyConfig, PolicyKind};
use super::prices::PriceTable;
use super::report::{self, PolicyReport};
use super::synth::{SynthConfig, generate};
use super::trace::{SessionSpec, Trace};
use super::{Config, default_settings, simulate};
use crate::model::SessionClass;
use crate::placement::{Decision, Strategy};

fn settings() -> Settings {
    Settings {
        // Periodic work stops with the last session, so small traces run fast.
        horizon: 0,
        ..default_settings(150)
    }
}

fn session(at_s: u64, sid: &str, class: SessionClass, size: u32, duration_s: u64) -> SessionSpec {
    SessionSpec {
        at: at_s * SECOND,
        sid: sid.to_owned(),
        class,
        size,
        duration: duration_s * SECOND,
        participants: Vec::new(),
    }
}

fn no_warm_pool() -> OursConfig {
    let mut config = OursConfig::production();
    config.autoscale.warm_pool.clear();
    config
}

fn run(trace: &Trace, policy: &mut dyn Policy) -> Outcome {
    engine::run(trace, policy, &settings(), &mut |_| {})
}

fn run_ours(trace: &Trace, config: OursConfig) -> Outcome {
    run(trace, &mut Ours::new(config))
}

fn reported(name: &str, outcome: Outcome, trace: &Trace) -> PolicyReport {
    report::policy_report(
        name,
        String::new(),
        outcome,
        &PriceTable::default(),
        report::demand_unit_hours(trace),
    )
}

fn policy_config() -> PolicyConfig {
    PolicyConfig {
        ours: OursConfig::production(),
        fleet_machine_type: "n2-highcpu-4".to_owned(),
        fixed_fleet: 4,
        min_nodes: 1,
        max_nodes: 100,
        seed: 3,
    }
}

fn config(policies: Vec<PolicyKind>, threads: usize) -> Config {
    Config {
        settings: default_settings(150),
        policies,
        policy_config: policy_config(),
        prices: PriceTable::default(),
        source: "test".to_owned(),
        threads,
    }
}

fn json(trace: &Trace, config: &Config) -> String {
    serde_json::to_string(&simulate(trace, config, &|_, _| {})).unwrap()
}

#[test]
fn the_same_seed_and_trace_give_byte_identical_json() {
    let trace = generate(&SynthConfig {
        sessions: 600,
        seed: 11,
        hours: 24,
    });
    let all = config(PolicyKind::ALL.to_vec(), 2);
    let first = json(&trace, &all);
    assert_eq!(first, json(&trace, &all));
    // One thread or two: the same bytes.
    assert_eq!(first, json(&trace, &config(PolicyKind::ALL.to_vec(), 1)));
    let other = generate(&SynthConfig {
        sessions: 600,
        seed: 12,
        hours: 24,
    });
    assert_ne!(first, json(&other, &all));
}

#[test]
fn one_long_session_takes_one_node() {
    let trace = Trace {
        sessions: vec![session(10, "long", SessionClass::Meeting, 8, 6 * 3_600)],
    };
    let outcome = run_ours(&trace, no_warm_pool());
    let report = reported("ours", outcome, &trace);
    assert_eq!((report.spawns, report.peak_nodes, report.placed), (1, 1, 1));
    // Waited for the boot (and the autoscaler's tick), then ran 6 hours; the run ends with
    // the session (and its last load report).
    assert!(
        (40.0..=43.0).contains(&report.wait_max_s),
        "{}",
        report.wait_max_s
    );
    assert!(
        (6.01..6.02).contains(&report.node_hours),
        "{}",
        report.node_hours
    );
    assert_eq!(report.overloaded, 0);
}

#[test]
fn a_burst_beyond_the_warm_pool_waits_about_the_boot_delay() {
    // 30 meetings of 10 (90 units each) at once; the warm n2-highcpu-4 holds 5 of them under
    // the meeting headroom (480 of 600 units).
    let trace = Trace {
        sessions: (0..30)
            .map(|i| session(60, &format!("m{i:02}"), SessionClass::Meeting, 10, 1_800))
            .collect(),
    };
    let outcome = run_ours(&trace, OursConfig::production());
    let mut waits = outcome.waits.clone();
    waits.sort_unstable();
    assert_eq!(waits.len(), 30);
    assert!(waits[..5].iter().all(|w| *w == 0), "{waits:?}");
    // The rest wait for machines spawned on the next autoscaler tick (2 s) and booted in 40 s.
    assert!(
        waits[5..]
            .iter()
            .all(|w| (40 * SECOND..=44 * SECOND).contains(w)),
        "{waits:?}"
    );
    let report = reported("ours", outcome, &trace);
    assert_eq!(report.overloaded, 0);
}

#[test]
fn the_engine_runs_productions_knobs() {
    // A warm pool is why a lone session waits for nothing.
    let trace = Trace {
        sessions: vec![session(30, "a", SessionClass::Group, 4, 600)],
    };
    let warm = run_ours(&trace, OursConfig::production());
    let cold = run_ours(&trace, no_warm_pool());
    assert_eq!(warm.waits, vec![0]);
    assert!(cold.waits[0] >= 40 * SECOND, "{:?}", cold.waits);

    // Binpack stacks two sessions on one of two warm nodes; spread puts them apart.
    let two_warm = |strategy| {
        let mut config = OursConfig::production();
        config.autoscale.warm_pool = [("n2-highcpu-4".to_owned(), 2)].into_iter().collect();
        config.strategy = strategy;
        config
    };
    let trace = Trace {
        sessions: vec![
            session(5, "a", SessionClass::Group, 4, 100),
            session(6, "b", SessionClass::Group, 4, 100),
        ],
    };
    let binpack = run_ours(&trace, two_warm(Strategy::Binpack));
    let spread = run_ours(&trace, two_warm(Strategy::Spread));
    assert_eq!(placements(&binpack), vec![0, 0]);
    assert_eq!(placements(&spread), vec![0, 1]);
}

/// The origin machine of every placed session, in trace order.
fn placements(outcome: &Outcome) -> Vec<u32> {
    outcome
        .cluster
        .sessions
        .iter()
        .filter_map(|s| s.origin)
        .collect()
}

#[test]
fn livekit_lowest_sends_simultaneous_joins_to_one_node_and_two_choice_spreads_them() {
    let trace = Trace {
        sessions: (0..100)
            .map(|i| session(10, &format!("g{i:03}"), SessionClass::Group, 2, 600))
            .collect(),
    };
    let config = policy_config();
    let mut lowest = policies::build(PolicyKind::LivekitLowest, &config);
    let outcome = run(&trace, lowest.as_mut());
    let nodes = placements(&outcome);
    assert_eq!(nodes.len(), 100);
    assert!(nodes.iter().all(|n| *n == nodes[0]), "{nodes:?}");
    let mut two = policies::build(PolicyKind::LivekitTwochoice, &config);
    let outcome = run(&trace, two.as_mut());
    let mut distinct = placements(&outcome);
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{distinct:?}");
}

#[test]
fn jitsi_autoscaler_waits_two_periods_at_the_threshold_before_scaling_up() {
    // Six meetings of 10 load the one bridge to 540 of 600 units (stress 0.9) from t = 1 s,
    // reported 10 s later. Periods end at 0, 60, 120 s: the first with high stress is 60 s,
    // the second 120 s.
    let trace = Trace {
        sessions: (0..6)
            .map(|i| session(1, &format!("m{i}"), SessionClass::Meeting, 10, 3_600))
            .collect(),
    };
    let mut jitsi = policies::build(PolicyKind::Jitsi, &policy_config());
    let outcome = run(&trace, jitsi.as_mut());
    let spawned: Vec<Millis> = outcome
        .cluster
        .machines
        .iter()
        .filter(|m| m.spawned_at > 0)
        .map(|m| m.spawned_at)
        .collect();
    assert_eq!(spawned.first(), Some(&(120 * SECOND)), "{spawned:?}");
    // The grace period: no second spawn before 120 + 480 s.
    assert!(
        spawned.get(1).is_none_or(|t| *t >= 600 * SECOND),
        "{spawned:?}"
    );
}

#[test]
fn a_mig_drops_the_sessions_of_the_vms_it_scales_in() {
    // A burst fills the group, which grows; once it has ended, scale-in deletes VMs. Sessions
    // on them are dropped, as a MIG does not drain.
    // Long sessions arrive 20 s apart once the group has grown, so each sees the others'
    // load and they spread over the VMs.
    let mut sessions: Vec<SessionSpec> = (0..40)
        .map(|i| session(1, &format!("b{i:02}"), SessionClass::Meeting, 10, 900))
        .collect();
    sessions.extend((0..8).map(|i| {
        session(
            300 + 20 * i,
            &format!("l{i}"),
            SessionClass::Meeting,
            3,
            4 * 3_600,
        )
    }));
    let trace = Trace { sessions };
    let mut mig = policies::build(PolicyKind::GceMig, &policy_config());
    let outcome = run(&trace, mig.as_mut());
    let report = reported("gce-mig", outcome, &trace);
    let figures = (report.spawns, report.deletes, report.dropped);
    assert!(
        figures.0 > 0 && figures.1 > 0 && figures.2 > 0,
        "{figures:?}"
    );
}

#[test]
fn skipping_dominated_requests_changes_nothing() {
    let trace = generate(&SynthConfig {
        sessions: 3_000,
        seed: 5,
        hours: 24,
    });
    let mut with = config(vec![PolicyKind::Ours], 1);
    with.settings.cluster.boot_delay = 90 * SECOND;
    let mut without = with.clone();
    without.settings.skip_dominated = false;
    assert_eq!(json(&trace, &with), json(&trace, &without));
}

#[test]
fn not_asking_decide_where_nothing_has_room_changes_nothing() {
    let mut settings = settings();
    // Slow boots keep callers queued, so the shortcut is taken often.
    settings.cluster.boot_delay = 90 * SECOND;
    let day = generate(&SynthConfig {
        sessions: 3_000,
        seed: 6,
        hours: 24,
    });
    // Meetings in waves beyond the warm pool, while earlier ones still run: callers of a
    // shared class queue next to machines that are partly full, warming up or held.
    let waves = Trace {
        sessions: (0..120_u32)
            .map(|i| {
                let size = 6 + (i * 7) % 40;
                let at = 10 + u64::from(i / 30) * 45;
                session(at, &format!("m{i:03}"), SessionClass::Meeting, size, 1_200)
            })
            .collect(),
    };
    // Six machines full of groups that end one by one, in shuffled order, while a
    // conference waits with no machine to come (the fleet is at its cap): room grows 30
    // units at a time until a split holds the conference, so the shortcut meets the split's
    // exact edge.
    let mut six_at_most = OursConfig::production();
    six_at_most
        .autoscale
        .warm_pool
        .insert("n2-highcpu-4".to_owned(), 6);
    six_at_most.autoscale.max_nodes = 6;
    let mut draining = Trace {
        sessions: (0..100_u64)
            .map(|i| {
                session(
                    10,
                    &format!("g{i:03}"),
                    SessionClass::Group,
                    6,
                    300 + i * 37 % 100,
                )
            })
            .collect(),
    };
    draining.sessions.push(session(
        200,
        "conference",
        SessionClass::Conference,
        250,
        600,
    ));
    let mut agreed: BTreeMap<SessionClass, u32> = BTreeMap::new();
    for (trace, config, settings) in [
        (&day, OursConfig::production(), &settings),
        (&waves, OursConfig::production(), &settings),
        (&draining, six_at_most, &settings),
    ] {
        let run = |shortcut: Shortcut| {
            let mut ours = Ours::new(config.clone());
            ours.shortcut = shortcut;
            let outcome = engine::run(trace, &mut ours, settings, &mut |_| {});
            let json = serde_json::to_string(&reported("ours", outcome, trace)).unwrap();
            (json, ours.verified)
        };
        let (asked_always, _) = run(Shortcut::Off);
        // Where the shortcut says "wait", `decide` is asked as well and must agree.
        let (shortcut, (agreeing, disagreed)) = run(Shortcut::Verify);
        assert_eq!(disagreed, Vec::<String>::new());
        assert_eq!(shortcut, asked_always);
        for (class, count) in agreeing {
            *agreed.entry(class).or_default() += count;
        }
    }
    // Every kind of rule was exercised: classes that span nodes, dedicated ones and a shared
    // one placed whole.
    for class in [
        SessionClass::Conference,
        SessionClass::Livestream,
        SessionClass::Recording,
        SessionClass::Meeting,
    ] {
        assert!(
            agreed.get(&class).copied().unwrap_or(0) > 0,
            "the shortcut was never taken for a {class}: {agreed:?}"
        );
    }
}

#[test]
fn summed_sessions_give_the_decisions_of_the_full_records() {
    let trace = generate(&SynthConfig {
        sessions: 400,
        seed: 9,
        hours: 2,
    });
    let mut cluster = Cluster::new(settings().cluster, &trace.sessions);
    for machine_type in [
        "n2-highcpu-4",
        "n2-highcpu-4",
        "n2-highcpu-8",
        "n1-standard-1",
    ] {
        cluster.add_ready(machine_type);
    }
    let mut rng = fastrand::Rng::with_seed(4);
    let mut ours = Ours::new(OursConfig::production());
    ours.start(&cluster);
    let mut compared = 0;
    for (index, spec) in trace.sessions.iter().enumerate() {
        let now = spec.at;
        let (compact, full) = ours.decide_both_ways(&cluster, &trace, spec, now);
        assert_eq!(compact, full, "session {index}");
        compared += 1;
        // Carry the decision out (some sessions split over nodes), and end a few sessions.
        let shares = match compact {
            Decision::Place { node, demand } => vec![(cluster.by_name(&node).unwrap(), demand)],
            Decision::Split {
                origin,
                edges,
                origin_demand,
                edge_demand,
            } => std::iter::once((cluster.by_name(&origin).unwrap(), origin_demand))
                .chain(
                    edges
                        .iter()
                        .map(|e| (cluster.by_name(e).unwrap(), edge_demand)),
                )
                .collect(),
            _ => continue,
        };
        cluster.set_state(index as u32, SessionState::Waiting { since: now });
        cluster.commit(index as u32, spec, &shares, now);
        cluster.set_participants(index as u32, spec.size, now);
        let request = policies::Request {
            index: index as u32,
            spec,
            demand: spec.declared_demand(),
            since: now,
        };
        ours.placed(&cluster, &request, now);
        if rng.u8(..4) == 0 {
            cluster.end(index as u32, now);
            ours.ended(index as u32);
        }
    }
    assert_eq!(compared, trace.sessions.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// No policy provisions less capacity-time than the demand it served within capacity:
    /// the fluid bound is a lower bound.
    #[test]
    fn the_fluid_bound_never_exceeds_any_policys_node_hours(
        sessions in prop::collection::vec(
            (0u64..7_200, 0usize..3, 2u32..20, 60u64..5_400), 1..25)
    ) {
        let mut specs: Vec<SessionSpec> = sessions
            .iter()
            .enumerate()
            .map(|(i, (at, class, size, duration))| {
                let class = [SessionClass::Group, SessionClass::Meeting, SessionClass::Conference][*class];
                let size = if class == SessionClass::Group { 2 + size % 5 } else { *size };
                session(*at, &format!("p{i}"), class, size, *duration)
            })
            .collect();
        specs.sort_by_key(|s| s.at);
        let trace = Trace { sessions: specs };
        let demand = report::demand_unit_hours(&trace);
        let config = policy_config();
        for kind in PolicyKind::ALL {
            let mut policy = policies::build(kind, &config);
            let outcome = run(&trace, policy.as_mut());
            let report = reported(kind.name(), outcome, &trace);
            let served_within_capacity = report.over_capacity_unit_hours == 0.0
                && report.refused + report.abandoned + report.dropped == 0;
            if served_within_capacity || kind == PolicyKind::Ours {
                prop_assert!(
                    report.capacity_unit_hours >= demand - 1e-6,
                    "{}: {} unit-hours provisioned for {demand}",
                    kind.name(),
                    report.capacity_unit_hours
                );
                prop_assert!(report.ratio_to_bound >= 1.0 - 1e-3);
            }
        }
    }
}
