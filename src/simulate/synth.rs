//! The synthetic trace generator. No public conferencing trace exists (Microsoft's
//! Switchboard and Tetris traces are private), so the day is made up from stated
//! assumptions, each a constant here and listed in docs/simulate.md:
//! - arrivals are a non-homogeneous Poisson process whose rate follows a business day in
//!   one time zone ([`diurnal`]), with bursts on the hour and the half hour, when scheduled
//!   meetings start ([`BURST_GAIN`], [`BURST_DECAY_S`]);
//! - each session draws a class from [`CLASS_MIX`], a size and a log-normal duration from
//!   its class's row of [`SHAPES`];
//! - participants join over the first minutes of a session and some leave early
//!   ([`JOIN_WINDOW_S`], [`EARLY_LEAVERS`]).
//!
//! The same configuration and seed always give the same trace.

use fastrand::Rng;

use super::clock::{HOUR, Millis, SECOND};
use super::trace::{SessionSpec, Trace};
use crate::model::SessionClass;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// Sessions expected over the whole span (the Poisson count varies around it).
    pub sessions: u32,
    pub seed: u64,
    /// Hours of arrivals, from midnight.
    pub hours: u32,
}

/// Share of sessions per class.
pub const CLASS_MIX: [(SessionClass, f64); 5] = [
    (SessionClass::Group, 0.40),
    (SessionClass::Meeting, 0.45),
    (SessionClass::Conference, 0.08),
    (SessionClass::Livestream, 0.05),
    (SessionClass::Recording, 0.02),
];

/// Size and duration of a class: a log-normal size (median, sigma, clamped to [min, max])
/// and a log-normal duration (median seconds, sigma).
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub class: SessionClass,
    pub size_median: f64,
    pub size_sigma: f64,
    pub size_min: u32,
    pub size_max: u32,
    pub duration_median_s: f64,
    pub duration_sigma: f64,
}

pub const SHAPES: [Shape; 5] = [
    Shape {
        class: SessionClass::Group,
        size_median: 3.5,
        size_sigma: 0.4,
        size_min: 2,
        size_max: 6,
        duration_median_s: 1_800.0,
        duration_sigma: 0.7,
    },
    Shape {
        class: SessionClass::Meeting,
        size_median: 6.0,
        size_sigma: 0.6,
        size_min: 2,
        size_max: 50,
        duration_median_s: 1_800.0,
        duration_sigma: 0.7,
    },
    Shape {
        class: SessionClass::Conference,
        size_median: 40.0,
        size_sigma: 0.7,
        size_min: 7,
        size_max: 300,
        duration_median_s: 3_600.0,
        duration_sigma: 0.5,
    },
    Shape {
        class: SessionClass::Livestream,
        size_median: 80.0,
        size_sigma: 1.0,
        size_min: 1,
        size_max: 3_000,
        duration_median_s: 3_600.0,
        duration_sigma: 0.6,
    },
    Shape {
        class: SessionClass::Recording,
        size_median: 4.0,
        size_sigma: 0.5,
        size_min: 1,
        size_max: 12,
        duration_median_s: 2_700.0,
        duration_sigma: 0.6,
    },
];

/// Durations are clamped to this range, seconds.
pub const DURATION_RANGE_S: (f64, f64) = (60.0, 6.0 * 3_600.0);
/// Participants join within the first min(this, a tenth of the session).
pub const JOIN_WINDOW_S: f64 = 300.0;
/// Share of participants who leave in the second half of a session instead of at its end.
pub const EARLY_LEAVERS: f64 = 0.25;
/// Rate multiplier right at :00 and :30 (1 + gain), decaying with [`BURST_DECAY_S`].
pub const BURST_GAIN: f64 = 4.0;
pub const BURST_DECAY_S: f64 = 90.0;
/// Participant changes of large sessions are grouped to this many seconds.
pub const COARSE_STEP_S: f64 = 10.0;

/// The relative arrival rate at `hour` of the day: a night floor and two humps, late morning
/// and mid-afternoon, as in one time zone's working day.
pub fn diurnal(hour: f64) -> f64 {
    let hump = |centre: f64, width: f64| (-((hour - centre) / width).powi(2)).exp();
    0.05 + hump(10.5, 2.5) + 0.85 * hump(15.0, 2.5)
}

/// The relative arrival rate at `t` seconds: [`diurnal`] times the burst after the last :00
/// or :30.
pub fn rate(t: f64) -> f64 {
    let hour = (t / 3_600.0) % 24.0;
    let since_mark = t % 1_800.0;
    diurnal(hour) * (1.0 + BURST_GAIN * (-since_mark / BURST_DECAY_S).exp())
}

fn standard_normal(rng: &mut Rng) -> f64 {
    // Box-Muller; 1 - f64() lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn log_normal(rng: &mut Rng, median: f64, sigma: f64) -> f64 {
    median * (sigma * standard_normal(rng)).exp()
}

fn exponential(rng: &mut Rng, rate: f64) -> f64 {
    -(1.0 - rng.f64()).ln() / rate
}

fn pick_class(rng: &mut Rng) -> SessionClass {
    let mut draw = rng.f64();
    for (class, share) in CLASS_MIX {
        if draw < share {
            return class;
        }
        draw -= share;
    }
    SessionClass::Group
}

fn shape_of(class: SessionClass) -> Shape {
    SHAPES
        .into_iter()
        .find(|s| s.class == class)
        .unwrap_or(SHAPES[0])
}

/// Participant steps: everyone joins within the join window, a share leave early.
fn participants(
    rng: &mut Rng,
    class: SessionClass,
    size: u32,
    duration_s: f64,
) -> Vec<(Millis, u32)> {
    if class == SessionClass::Recording {
        return Vec::new();
    }
    let grain = if size > 20 { COARSE_STEP_S } else { 1.0 };
    let window = JOIN_WINDOW_S.min(duration_s / 10.0);
    let mut changes: Vec<(u64, i64)> = Vec::with_capacity(2 * size as usize);
    for _ in 0..size {
        let join = (rng.f64() * window / grain).floor() * grain;
        changes.push(((join * 1_000.0) as u64, 1));
        if rng.f64() < EARLY_LEAVERS {
            let leave = duration_s * (0.5 + 0.5 * rng.f64());
            let leave = ((leave / grain).floor() * grain).max(join + grain);
            if leave < duration_s {
                changes.push(((leave * 1_000.0) as u64, -1));
            }
        }
    }
    changes.sort_unstable();
    let mut steps: Vec<(Millis, u32)> = Vec::new();
    let mut count = 0i64;
    for (offset, delta) in changes {
        count += delta;
        let now = u32::try_from(count.max(0)).unwrap_or(0);
        match steps.last_mut() {
            Some(last) if last.0 == offset => last.1 = now,
            _ => steps.push((offset, now)),
        }
    }
    steps
}

/// A trace drawn from `config`.
pub fn generate(config: &SynthConfig) -> Trace {
    let mut rng = Rng::with_seed(config.seed);
    let span_s = f64::from(config.hours) * (HOUR / SECOND) as f64;
    // The rate's integral over the span, per second, scales it to the wanted count.
    let total: f64 = (0..span_s as u64).map(|s| rate(s as f64 + 0.5)).sum();
    let peak = (0..24 * 60)
        .map(|m| diurnal(f64::from(m) / 60.0))
        .fold(0.0, f64::max)
        * (1.0 + BURST_GAIN);
    let scale = f64::from(config.sessions) / total.max(f64::MIN_POSITIVE);
    let mut sessions = Vec::with_capacity(config.sessions as usize + 1_000);
    let mut t = 0.0;
    if config.sessions == 0 {
        return Trace { sessions };
    }
    loop {
        t += exponential(&mut rng, peak * scale);
        if t >= span_s {
            break;
        }
        // Thinning: keep a candidate with probability rate / peak.
        if rng.f64() * peak > rate(t) {
            continue;
        }
        let class = pick_class(&mut rng);
        let shape = shape_of(class);
        let size = log_normal(&mut rng, shape.size_median, shape.size_sigma)
            .round()
            .clamp(f64::from(shape.size_min), f64::from(shape.size_max)) as u32;
        let duration_s = log_normal(&mut rng, shape.duration_median_s, shape.duration_sigma)
            .clamp(DURATION_RANGE_S.0, DURATION_RANGE_S.1)
            .round();
        let participants = participants(&mut rng, class, size, duration_s);
        sessions.push(SessionSpec {
            at: (t * 1_000.0) as Millis,
            sid: format!("s{:06}", sessions.len() + 1),
            class,
            size,
            duration: (duration_s * 1_000.0) as Millis,
            participants,
        });
    }
    Trace { sessions }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
        let config = SynthConfig {
            sessions: 500,
            seed: 7,
            hours: 24,
        };
        let a = generate(&config);
        assert_eq!(a, generate(&config));
        assert_ne!(a, generate(&SynthConfig { seed: 8, ..config }));
    }

    #[test]
    fn arrivals_follow_the_day_and_the_half_hours() {
        let trace = generate(&SynthConfig {
            sessions: 20_000,
            seed: 1,
            hours: 24,
        });
        let n = trace.sessions.len() as f64;
        assert!((n - 20_000.0).abs() < 600.0, "{n} sessions");
        let in_hour = |h: u64| trace.sessions.iter().filter(|s| s.at / HOUR == h).count();
        assert!(
            in_hour(10) > 10 * in_hour(3),
            "{} vs {}",
            in_hour(10),
            in_hour(3)
        );
        // The first 3 minutes after :00 and :30 get far more than their 10% share.
        let early = trace
            .sessions
            .iter()
            .filter(|s| (s.at / SECOND) % 1_800 < 180)
            .count() as f64;
        assert!(early / n > 0.2, "{}", early / n);
        assert!(trace.sessions.windows(2).all(|w| w[0].at <= w[1].at));
        for s in &trace.sessions {
            assert!(
                s.participants
                    .iter()
                    .all(|(offset, _)| *offset <= s.duration)
            );
            assert!(s.declared_demand().is_some(), "{s:?}");
        }
    }
}
