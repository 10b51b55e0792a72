//! `ionctl loadtest --calibrate`, the decisions only (no I/O): which subscriber count to
//! measure next, when to stop, and what `units_per_vcpu` the samples support.
//!
//! A unit (docs/placement.md) is one forwarded downstream stream at the reference rate (500 kbps VP8
//! plus its audio) to one subscriber; with one publisher, units = subscribers. The agent's
//! busy cores are fitted against units by least squares, `cores = fixed + marginal × units`,
//! and `units_per_vcpu` is what one fully used vCPU carries on the measured machine:
//! `(vcpus − fixed) / (marginal × vcpus)`. When loss stopped the ramp, the result is bounded
//! by the last loss-free point.

use serde::Serialize;

/// One measured step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    pub subscribers: u32,
    pub units: f64,
    /// Agent CPU over the window, in cores (CPU-seconds per second).
    pub agent_cores_busy: f64,
    /// Cores the agent may use.
    pub agent_vcpus: f64,
    /// The load generator's CPU, in cores: its own, or all the work on the cores it may use
    /// when that is more (a shared core starves it too); and the cores it may use.
    pub client_cores_busy: f64,
    pub client_vcpus: f64,
    /// Publisher packets lost, 0..=1.
    pub loss: f64,
}

impl Sample {
    fn agent_utilisation(&self) -> f64 {
        self.agent_cores_busy / self.agent_vcpus.max(f64::MIN_POSITIVE)
    }

    fn client_utilisation(&self) -> f64 {
        self.client_cores_busy / self.client_vcpus.max(f64::MIN_POSITIVE)
    }
}

/// How the ramp goes and when it stops.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    /// Subscribers of the first step.
    pub start: u32,
    /// Each step multiplies the subscribers by this much at most...
    pub growth: f64,
    /// ...and adds at least this many.
    pub min_step: u32,
    pub max_subscribers: u32,
    /// Stop when the agent uses this fraction of its cores.
    pub agent_target: f64,
    /// Stop when loss exceeds this fraction.
    pub max_loss: f64,
    /// Stop when the load generator uses this fraction of its own cores: its numbers would
    /// no longer be the agent's.
    pub client_limit: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            start: 10,
            growth: 1.6,
            min_step: 10,
            max_subscribers: 1000,
            agent_target: 0.8,
            max_loss: 0.01,
            client_limit: 0.85,
        }
    }
}

/// Why the ramp stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The agent reached the CPU target.
    AgentCpu,
    /// Loss exceeded the limit.
    Loss,
    /// The load generator's own CPU saturated first.
    ClientSaturated,
    /// The subscriber maximum was reached first.
    MaxSubscribers,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::AgentCpu => "the agent reached the CPU target",
            StopReason::Loss => "loss exceeded the limit",
            StopReason::ClientSaturated => {
                "the load generator's cores saturated (its own work or other processes there)"
            }
            StopReason::MaxSubscribers => "the subscriber maximum was reached",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Continue { subscribers: u32 },
    Stop(StopReason),
}

/// The least-squares line `cores = fixed + marginal × units`, when the samples define one.
fn fit(samples: &[Sample]) -> Option<(f64, f64)> {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return None;
    }
    let mean_u = samples.iter().map(|s| s.units).sum::<f64>() / n;
    let mean_c = samples.iter().map(|s| s.agent_cores_busy).sum::<f64>() / n;
    let sxx: f64 = samples.iter().map(|s| (s.units - mean_u).powi(2)).sum();
    let sxy: f64 = samples
        .iter()
        .map(|s| (s.units - mean_u) * (s.agent_cores_busy - mean_c))
        .sum();
    if sxx.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !sxy.is_finite() {
        return None;
    }
    let marginal = sxy / sxx;
    let fixed = mean_c - marginal * mean_u;
    (marginal > 0.0 && fixed.is_finite()).then_some((fixed, marginal))
}

/// What to measure next, given the samples so far (oldest first).
pub fn next_step(samples: &[Sample], policy: &Policy) -> Step {
    let Some(last) = samples.last() else {
        return Step::Continue {
            subscribers: policy.start.clamp(1, policy.max_subscribers.max(1)),
        };
    };
    if last.loss > policy.max_loss {
        return Step::Stop(StopReason::Loss);
    }
    if last.agent_utilisation() >= policy.agent_target {
        return Step::Stop(StopReason::AgentCpu);
    }
    if last.client_utilisation() >= policy.client_limit {
        return Step::Stop(StopReason::ClientSaturated);
    }
    if last.subscribers >= policy.max_subscribers {
        return Step::Stop(StopReason::MaxSubscribers);
    }
    let current = last.subscribers;
    let grown = ((f64::from(current) * policy.growth).ceil() as u32)
        .max(current.saturating_add(policy.min_step.max(1)));
    let mut next = grown;
    // Aim at the CPU target when the fit says it is nearer than the geometric step.
    if let Some((fixed, marginal)) = fit(samples) {
        let units_per_subscriber = last.units / f64::from(last.subscribers.max(1));
        let target_units = (policy.agent_target * last.agent_vcpus - fixed) / marginal;
        let target = (target_units / units_per_subscriber.max(f64::MIN_POSITIVE)).ceil();
        if target.is_finite() && target > f64::from(current) {
            let target = target.min(f64::from(u32::MAX)) as u32;
            next = next.min(target.max(current.saturating_add(policy.min_step.max(1))));
        }
    }
    Step::Continue {
        subscribers: next.min(policy.max_subscribers),
    }
}

/// The result of a calibration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// What to write into the agent's config: `[cluster] units_per_vcpu`.
    pub units_per_vcpu: u32,
    /// The fit: agent cores busy per unit, and with no units.
    pub marginal_cores_per_unit: f64,
    pub fixed_cores: f64,
    /// Units per fully used vCPU by the fit alone.
    pub fit_units_per_vcpu: f64,
    /// Units per vCPU at the last loss-free step, when loss stopped the ramp.
    pub loss_limited_units_per_vcpu: Option<f64>,
    /// The agent's vCPUs the samples were taken on.
    pub agent_vcpus: f64,
    /// The highest agent utilisation measured (0..=1 of its cores).
    pub max_measured_utilisation: f64,
    pub reason: StopReason,
    /// True when the number comes from the fit beyond what was measured: the ramp stopped
    /// before the agent reached the CPU target (load generator saturated, maximum reached).
    pub extrapolated: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrateError {
    #[error(
        "calibration needs at least two steps with different numbers of subscribers; raise \
         --subscribers (the maximum) or lower the load generator's load"
    )]
    TooFewSamples,
    #[error(
        "the agent's CPU did not grow with the subscribers (no positive cost per unit); the \
         windows may be too short: raise --duration"
    )]
    NoCostPerUnit,
    #[error(
        "loss exceeded {limit:.1}% already at the first step ({subscribers} subscribers); \
         start lower or look at the network"
    )]
    LossFromStart { limit: f64, subscribers: u32 },
    #[error("the fixed cost of {fixed:.2} cores exceeds the agent's {vcpus} vCPUs")]
    FixedCostTooHigh { fixed: f64, vcpus: f64 },
}

/// `units_per_vcpu` from the samples of a ramp that stopped for `reason`.
pub fn calibrate(
    samples: &[Sample],
    reason: StopReason,
    policy: &Policy,
) -> Result<Calibration, CalibrateError> {
    let good: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.loss <= policy.max_loss)
        .collect();
    if good.is_empty() {
        if let Some(first) = samples.first() {
            return Err(CalibrateError::LossFromStart {
                limit: policy.max_loss * 100.0,
                subscribers: first.subscribers,
            });
        }
        return Err(CalibrateError::TooFewSamples);
    }
    // CPU under loss is of packets not all delivered; the fit uses the loss-free steps, or
    // every step when fewer than two are loss-free.
    let fitted: &[Sample] = if good.len() >= 2 { &good } else { samples };
    let distinct = fitted
        .iter()
        .map(|s| s.units.to_bits())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if distinct < 2 {
        return Err(CalibrateError::TooFewSamples);
    }
    let (fixed, marginal) = fit(fitted).ok_or(CalibrateError::NoCostPerUnit)?;
    let vcpus = samples
        .iter()
        .map(|s| s.agent_vcpus)
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    if fixed >= vcpus {
        return Err(CalibrateError::FixedCostTooHigh { fixed, vcpus });
    }
    let fit_units_per_vcpu = (vcpus - fixed) / (marginal * vcpus);
    let loss_limited_units_per_vcpu = (reason == StopReason::Loss).then(|| {
        let last_good = good.iter().map(|s| s.units).fold(0.0f64, f64::max);
        last_good / vcpus
    });
    let chosen = match loss_limited_units_per_vcpu {
        Some(bound) => fit_units_per_vcpu.min(bound),
        None => fit_units_per_vcpu,
    };
    let bounded_by_loss = loss_limited_units_per_vcpu.is_some_and(|b| b <= fit_units_per_vcpu);
    let max_measured_utilisation = samples
        .iter()
        .map(Sample::agent_utilisation)
        .fold(0.0f64, f64::max);
    let extrapolated = !bounded_by_loss && max_measured_utilisation < policy.agent_target;
    Ok(Calibration {
        // The epsilon keeps an exact 245 from flooring to 244 through rounding.
        units_per_vcpu: ((chosen + 1e-9).floor().min(f64::from(u32::MAX)) as u32).max(1),
        marginal_cores_per_unit: marginal,
        fixed_cores: fixed,
        fit_units_per_vcpu,
        loss_limited_units_per_vcpu,
        agent_vcpus: vcpus,
        max_measured_utilisation,
        reason,
        extrapolated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(subscribers: u32, agent_cores_busy: f64, loss: f64) -> Sample {
        Sample {
            subscribers,
            units: f64::from(subscribers),
            agent_cores_busy,
            agent_vcpus: 1.0,
            client_cores_busy: 0.5,
            client_vcpus: 1.0,
            loss,
        }
    }

    #[test]
    fn the_first_step_is_the_start() {
        let policy = Policy::default();
        assert_eq!(next_step(&[], &policy), Step::Continue { subscribers: 10 });
    }

    #[test]
    fn stops_for_each_reason() {
        let policy = Policy::default();
        let at = |s: Sample| next_step(&[s], &policy);
        assert_eq!(at(sample(10, 0.1, 0.02)), Step::Stop(StopReason::Loss));
        assert_eq!(at(sample(10, 0.85, 0.0)), Step::Stop(StopReason::AgentCpu));
        let client = Sample {
            client_cores_busy: 0.95,
            ..sample(10, 0.1, 0.0)
        };
        assert_eq!(at(client), Step::Stop(StopReason::ClientSaturated));
        assert_eq!(
            at(sample(1000, 0.1, 0.0)),
            Step::Stop(StopReason::MaxSubscribers)
        );
    }

    #[test]
    fn steps_grow_but_aim_at_the_target() {
        let policy = Policy::default();
        let Step::Continue { subscribers } = next_step(&[sample(10, 0.05, 0.0)], &policy) else {
            panic!("continues");
        };
        assert_eq!(subscribers, 20);
        // 0.01 cores per unit, 0.0 fixed: the target of 0.8 is at 80 subscribers.
        let samples = [sample(50, 0.5, 0.0), sample(70, 0.7, 0.0)];
        assert_eq!(
            next_step(&samples, &policy),
            Step::Continue { subscribers: 80 }
        );
    }

    #[test]
    fn a_clean_fit_gives_units_per_full_vcpu() {
        let policy = Policy::default();
        // 0.02 fixed + 0.004 per unit: (1 − 0.02) / 0.004 = 245.
        let samples: Vec<Sample> = [10, 50, 100, 200]
            .iter()
            .map(|&n| sample(n, 0.02 + 0.004 * f64::from(n), 0.0))
            .collect();
        let c = calibrate(&samples, StopReason::AgentCpu, &policy).expect("calibrates");
        assert_eq!(c.units_per_vcpu, 245);
        assert!(!c.extrapolated);
        let c = calibrate(&samples[..2], StopReason::ClientSaturated, &policy).expect("fits");
        assert!(c.extrapolated, "stopped at 22% of the agent");
    }

    #[test]
    fn loss_bounds_the_result() {
        let policy = Policy::default();
        let samples = [
            sample(10, 0.05, 0.0),
            sample(20, 0.09, 0.0),
            sample(40, 0.17, 0.05),
        ];
        let c = calibrate(&samples, StopReason::Loss, &policy).expect("calibrates");
        assert_eq!(c.units_per_vcpu, 20);
        assert!(!c.extrapolated);
        assert_eq!(
            calibrate(&samples[2..], StopReason::Loss, &policy),
            Err(CalibrateError::LossFromStart {
                limit: 1.0,
                subscribers: 40
            })
        );
    }

    #[test]
    fn bad_samples_are_errors_not_panics() {
        let policy = Policy::default();
        assert_eq!(
            calibrate(&[], StopReason::AgentCpu, &policy),
            Err(CalibrateError::TooFewSamples)
        );
        let flat = [sample(10, 0.1, 0.0), sample(20, 0.1, 0.0)];
        assert_eq!(
            calibrate(&flat, StopReason::MaxSubscribers, &policy),
            Err(CalibrateError::NoCostPerUnit)
        );
    }

    /// Recorded on 2026-11-23: a release ion-agent pinned to one core (`taskset -c 0`,
    /// `vcpus = 1`) and `ionctl loadtest --calibrate --subscribers 400 --duration 8s --ramp
    /// 25` pinned to the other, on a 2-core machine with another build running. The last
    /// step lost 4.9% (p99 618 ms), so loss bounds the result at the step before it.
    fn recorded() -> Vec<Sample> {
        let rows: [(u32, f64, f64, f64); 8] = [
            (10, 0.042224623886798644, 0.06582073723530381, 0.0),
            (20, 0.06579387348615831, 0.0968287194701957, 0.0),
            (32, 0.09438718526507286, 0.12791947476713741, 0.0),
            (52, 0.1277456239045135, 0.19471905779620122, 0.0),
            (84, 0.1676625825727407, 0.2819215277334245, 0.0),
            (135, 0.2744496257215273, 0.4135372188473691, 0.0),
            (216, 0.45073891882795536, 0.6829377557999319, 0.0),
            (
                346,
                0.5438426035837138,
                0.6521189590483449,
                0.04886363636363633,
            ),
        ];
        rows.iter()
            .map(|&(n, agent, client, loss)| Sample {
                subscribers: n,
                units: f64::from(n),
                agent_cores_busy: agent,
                agent_vcpus: 1.0,
                client_cores_busy: client,
                client_vcpus: 1.0,
                loss,
            })
            .collect()
    }

    #[test]
    fn recorded_ramp_replays_its_steps_and_result() {
        let policy = Policy {
            max_subscribers: 400,
            ..Policy::default()
        };
        let samples = recorded();
        // Each recorded step is the one next_step chose after the steps before it.
        for i in 0..samples.len() {
            assert_eq!(
                next_step(&samples[..i], &policy),
                Step::Continue {
                    subscribers: samples[i].subscribers
                },
                "step {i}"
            );
        }
        assert_eq!(next_step(&samples, &policy), Step::Stop(StopReason::Loss));
        let c = calibrate(&samples, StopReason::Loss, &policy).expect("calibrates");
        assert_eq!(c.units_per_vcpu, 216);
        assert_eq!(c.loss_limited_units_per_vcpu, Some(216.0));
        assert!(!c.extrapolated);
        // The loss-free steps alone: about 1.9 ms of a core per unit, 0.023 cores fixed.
        assert!(
            (c.marginal_cores_per_unit - 0.00193).abs() < 0.00005,
            "{c:?}"
        );
        assert!((c.fixed_cores - 0.0232).abs() < 0.002, "{c:?}");
        assert!((c.fit_units_per_vcpu - 505.5).abs() < 1.0, "{c:?}");
        // Without the lossy step the ramp would have gone on, and the fit alone is an
        // extrapolation from 45% of the core.
        let clean = &samples[..7];
        let c = calibrate(clean, StopReason::ClientSaturated, &policy).expect("calibrates");
        assert_eq!(c.units_per_vcpu, 505);
        assert!(c.extrapolated);
    }

    fn arb_samples() -> impl Strategy<Value = Vec<Sample>> {
        prop::collection::vec((1u32..2000, 0.0f64..8.0, 1.0f64..8.0, 0.0f64..0.05), 0..8).prop_map(
            |rows| {
                rows.into_iter()
                    .map(|(n, cores, vcpus, loss)| Sample {
                        subscribers: n,
                        units: f64::from(n),
                        agent_cores_busy: cores,
                        agent_vcpus: vcpus,
                        client_cores_busy: 0.1,
                        client_vcpus: 2.0,
                        loss,
                    })
                    .collect()
            },
        )
    }

    fn arb_reason() -> impl Strategy<Value = StopReason> {
        prop_oneof![
            Just(StopReason::AgentCpu),
            Just(StopReason::Loss),
            Just(StopReason::ClientSaturated),
            Just(StopReason::MaxSubscribers),
        ]
    }

    proptest! {
        #[test]
        fn never_panics(samples in arb_samples(), reason in arb_reason()) {
            let policy = Policy::default();
            let _ = calibrate(&samples, reason, &policy);
            if let Step::Continue { subscribers } = next_step(&samples, &policy) {
                prop_assert!(subscribers >= 1 && subscribers <= policy.max_subscribers);
                if let Some(last) = samples.last() {
                    prop_assert!(subscribers > last.subscribers);
                }
            }
        }

        #[test]
        fn a_cheaper_unit_never_yields_fewer_units(
            samples in arb_samples(),
            reason in arb_reason(),
            cheaper in 0.05f64..1.0,
        ) {
            let policy = Policy::default();
            let cheap: Vec<Sample> = samples
                .iter()
                .map(|s| Sample { agent_cores_busy: s.agent_cores_busy * cheaper, ..*s })
                .collect();
            if let (Ok(dear), Ok(cheap)) = (
                calibrate(&samples, reason, &policy),
                calibrate(&cheap, reason, &policy),
            ) {
                prop_assert!(cheap.units_per_vcpu >= dear.units_per_vcpu,
                    "{} < {}", cheap.units_per_vcpu, dear.units_per_vcpu);
            }
        }

        #[test]
        fn a_linear_cost_is_recovered(
            fixed in 0.0f64..0.2,
            per_unit in 0.0005f64..0.02,
            vcpus in 1u32..16,
        ) {
            let policy = Policy::default();
            let samples: Vec<Sample> = [10u32, 40, 90, 160]
                .iter()
                .map(|&n| Sample {
                    agent_vcpus: f64::from(vcpus),
                    ..sample(n, fixed + per_unit * f64::from(n), 0.0)
                })
                .collect();
            let c = calibrate(&samples, StopReason::AgentCpu, &policy).expect("calibrates");
            let want = (f64::from(vcpus) - fixed) / (per_unit * f64::from(vcpus));
            prop_assert!((c.fit_units_per_vcpu - want).abs() < 1e-6 * want.max(1.0));
        }
    }
}
