//! `ionctl loadtest`: webrtc-rs participants against one agent (`--url`, or a node from the
//! placer with `--place`), then the summary in the style of `lk perf load-test`: tracks
//! received of expected, bitrate, loss, latency, errors, and the agent's CPU per forwarded
//! packet. `--calibrate` ramps subscribers and prints the measured `units_per_vcpu`.
//! Progress goes to stderr (a bar on a terminal, plain lines otherwise); stdout holds only
//! the result.

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

use anyhow::anyhow;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::output::{OutputArgs, OutputFormat, print_json, print_table, table, write_stdout};
use super::values::{AgentCpuArg, ClassArg, TargetArg};
use super::{CliError, Context, Exit, GlobalArgs};
use crate::api::PlaceAnswer;
use crate::capacity::ClassSpec;
use crate::loadtest::calibrate::Policy;
use crate::loadtest::media::VideoShape;
use crate::loadtest::report::{AgentReport, CalibrationReport, ClientReport, Report, Summary};
use crate::loadtest::sfu::Sfu;
use crate::loadtest::{self, AgentProbe, Progress};
use crate::model::SessionClass;
use crate::placement::{Role, Strategy};
use crate::placer::{Outcome, Placer, PlacerOptions, checked_request};
use crate::store::Store;

/// The capacity unit's reference video rate (docs/placement.md).
const REFERENCE_BITRATE: u64 = 500_000;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("join_at").required(true).args(["url", "place"])))]
pub struct LoadtestArgs {
    /// The agent's signaling URL, e.g. ws://127.0.0.1:7000/ws (Janus under scripts/janus:
    /// ws://10.213.0.1:8188, from inside its network namespace).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Get a node from the placer, as `ionctl place` does, and join it with the join token.
    #[arg(long)]
    pub place: bool,
    /// The SFU at --url: ion (an agent) or janus (Janus's videoroom, for a same-run
    /// comparison; its CPU is read from /proc when it is local).
    #[arg(long, value_enum, value_name = "SFU", default_value_t = TargetArg::Ion, conflicts_with = "place")]
    pub target: TargetArg,
    /// Session class for --place [default: livestream for one publisher and more than 5
    /// subscribers, else group up to 6 participants, meeting up to 50, conference above].
    #[arg(long, value_enum, requires = "place")]
    pub class: Option<ClassArg>,
    /// Session id [default: loadtest-<random>, or a new UUID with --place].
    #[arg(long = "session", value_name = "S")]
    pub session: Option<String>,
    /// Participants that publish video (and audio) and subscribe to everyone else.
    #[arg(long, value_name = "P", default_value_t = 1)]
    pub publishers: u32,
    /// Participants that only subscribe. With --calibrate: the most to ramp to.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub subscribers: u32,
    /// The measurement window (each step's, with --calibrate) [default: 30s; 10s with
    /// --calibrate].
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// VP8 bitrate per publisher: bits/s, with an optional k or M (500k, 1.5M).
    #[arg(long, value_name = "R", default_value = "500k", value_parser = parse_bitrate)]
    pub video_bitrate: u64,
    /// VP8 frames per second.
    #[arg(long, value_name = "FPS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: u32,
    /// Publish Opus audio (50 packets/s) beside the video; on unless --no-audio.
    #[arg(long, overrides_with = "no_audio")]
    pub audio: bool,
    /// Publish video only.
    #[arg(long, overrides_with = "audio")]
    pub no_audio: bool,
    /// Offer and accept RTX for VP8, as Chrome does, so that the SFU keeps sent video for
    /// resending, and its memory shows it.
    #[arg(long)]
    pub rtx: bool,
    /// Joins per second.
    #[arg(long, value_name = "RATE", default_value_t = 10.0)]
    pub ramp: f64,
    /// Time after the joins, once media flows, before the window opens.
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Ramp subscribers of one publisher (500 kbps VP8 + Opus) until the agent uses 80% of
    /// its cores, loss passes 1% or this machine saturates; print units_per_vcpu.
    #[arg(long, conflicts_with_all = ["publishers", "video_bitrate", "no_audio"])]
    pub calibrate: bool,
    /// Where the agent's CPU comes from: proc (/proc of a local agent), metrics (the
    /// agent's own process_cpu_seconds_total on its /metrics, also remote), etcd (its node
    /// record: the whole machine); auto takes the first of these that is available.
    #[arg(long, value_enum, value_name = "SOURCE", default_value_t = AgentCpuArg::Auto)]
    pub agent_cpu: AgentCpuArg,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// "500k", "1.5M", "800000" → bits per second.
fn parse_bitrate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, scale) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        _ => (t, 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a bitrate; write e.g. 500k, 1.5M or 800000"))?;
    let bps = value * scale;
    if !(8_000.0..=50_000_000.0).contains(&bps) {
        return Err(format!("{text:?} is outside 8k..50M bits per second"));
    }
    Ok(bps as u64)
}

/// The class `--place` uses when none is given.
pub fn default_class(publishers: u32, subscribers: u32) -> SessionClass {
    let total = publishers + subscribers;
    if publishers == 1 && subscribers > 5 {
        SessionClass::Livestream
    } else if total <= 6 {
        SessionClass::Group
    } else if total <= 50 {
        SessionClass::Meeting
    } else {
        SessionClass::Conference
    }
}

struct Target {
    url: String,
    token: Option<String>,
    node: Option<String>,
    session: String,
    store: Option<Store>,
    /// With --place, for a session that may span nodes: each subscriber placed as a viewer.
    viewer_route: Option<loadtest::ViewerRoute>,
}

pub async fn run(global: &GlobalArgs, args: LoadtestArgs) -> Result<(), CliError> {
    let publishers = if args.calibrate { 1 } else { args.publishers };
    if publishers == 0 {
        return Err(CliError::usage(anyhow!(
            "--publishers 0 leaves nothing to receive; use at least 1"
        )));
    }
    if !args.calibrate && publishers + args.subscribers < 2 {
        return Err(CliError::usage(anyhow!(
            "one participant alone receives nothing; add --subscribers or --publishers"
        )));
    }
    if !(args.ramp.is_finite() && args.ramp > 0.0) {
        return Err(CliError::usage(anyhow!(
            "--ramp {} must be a positive number of joins per second",
            args.ramp
        )));
    }
    let duration = args.duration.unwrap_or(if args.calibrate {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(30)
    });
    if duration < Duration::from_secs(1) {
        return Err(CliError::usage(anyhow!(
            "--duration {} is too short to measure; use at least 1s",
            humantime::format_duration(duration)
        )));
    }
    let target = resolve_target(global, &args, publishers).await?;
    let probe = AgentProbe::resolve(&target.url, target.store.clone(), target.node.clone());
    let config = loadtest::Config {
        url: target.url.clone(),
        token: target.token,
        node: target.node,
        session: target.session,
        publishers,
        subscribers: if args.calibrate { 0 } else { args.subscribers },
        duration,
        video: VideoShape {
            bitrate_bps: if args.calibrate {
                REFERENCE_BITRATE
            } else {
                args.video_bitrate
            },
            fps: args.fps,
        },
        audio: args.calibrate || !args.no_audio,
        rtx: args.rtx,
        ramp: args.ramp,
        warmup: args.warmup,
        join_timeout: Duration::from_secs(5),
        keyframe_interval: Duration::from_secs(2),
        agent_cpu: args.agent_cpu.into(),
        viewer_route: target.viewer_route,
        sfu: args.target.into(),
    };
    let mut painter = PhaseBar::new();
    if args.calibrate {
        let policy = Policy {
            max_subscribers: args.subscribers.max(1),
            ..Policy::default()
        };
        let result =
            loadtest::run_calibration(config, policy, &probe, &mut |p| painter.show(p)).await;
        painter.finish();
        let report = result.map_err(loadtest_error)?;
        return match args.output.output {
            OutputFormat::Json => print_json(&report),
            OutputFormat::Table => print_calibration(&report),
        };
    }
    let result = loadtest::run(config, &probe, &mut |p| painter.show(p)).await;
    painter.finish();
    let report = result.map_err(loadtest_error)?;
    match args.output.output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Table => print_report(&report)?,
    }
    if report.summary.tracks_expected > 0 && report.summary.tracks_received == 0 {
        return Err(CliError::other(anyhow!(
            "no media arrived at any subscriber ({} tracks expected); see the errors above",
            report.summary.tracks_expected
        )));
    }
    Ok(())
}

fn loadtest_error(error: loadtest::Error) -> CliError {
    if error.is_unreachable_or_refused() {
        CliError::new(Exit::AgentUnreachable, error)
    } else {
        CliError::other(error)
    }
}

async fn resolve_target(
    global: &GlobalArgs,
    args: &LoadtestArgs,
    publishers: u32,
) -> Result<Target, CliError> {
    if let Some(url) = &args.url {
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            CliError::usage(anyhow!(
                "--url {url:?} is not a URL ({e}); write e.g. ws://127.0.0.1:7000/ws"
            ))
        })?;
        if !matches!(parsed.scheme(), "ws" | "wss") {
            return Err(CliError::usage(anyhow!(
                "--url {url:?} must be a ws:// or wss:// signaling URL, e.g. ws://127.0.0.1:7000/ws"
            )));
        }
        // A remote agent's vcpus (and, with --agent-cpu etcd, its CPU) come from its node
        // record: etcd is asked only then.
        let store = if loadtest::local_port(url).is_some() {
            None
        } else {
            let context = Context::resolve(global)?;
            match context.store().await {
                Ok(store) => Some(store),
                Err(error) => {
                    eprintln!(
                        "note: the agent is not local and etcd is not reachable ({:#}): its CPU \
                         can only come from its /metrics, and its vcpus are unknown",
                        error.source
                    );
                    None
                }
            }
        };
        return Ok(Target {
            url: url.clone(),
            token: None,
            node: None,
            session: args.session.clone().unwrap_or_else(|| {
                format!(
                    "loadtest-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                )
            }),
            store,
            viewer_route: None,
        });
    }
    // --place: exactly what `ionctl place` does.
    let subscribers = if args.calibrate {
        args.subscribers.max(1)
    } else {
        args.subscribers
    };
    let class = args.class.map_or_else(
        || default_class(publishers, subscribers),
        SessionClass::from,
    );
    let size = match class {
        SessionClass::Livestream => subscribers.max(1),
        _ => publishers + subscribers,
    };
    let context = Context::resolve(global)?;
    let request = checked_request(
        args.session.clone(),
        class,
        size,
        Strategy::Binpack,
        Role::Publisher,
    )
    .map_err(CliError::usage)?;
    let secret = context.join_secret()?;
    let store = context.store().await?;
    let options = PlacerOptions {
        policy: context.policy.clone(),
        ..PlacerOptions::default()
    };
    let placer = Placer::start(store.clone(), options).await?;
    let outcome = placer.place(request.clone()).await?;
    let answer = PlaceAnswer::new(
        &request,
        &outcome,
        store.keys(),
        secret.as_ref(),
        SystemTime::now(),
        context.auth.token_ttl,
    );
    match outcome {
        Outcome::Placed { .. } => {}
        Outcome::NoCapacity { .. } => {
            return Err(CliError::new(
                Exit::NoCapacity,
                anyhow!(
                    "no node can take a {class} of {size} for the load test; `ionctl place \
                     --class {class} --size {size}` shows what it would need"
                ),
            ));
        }
        Outcome::Refused { reason } => return Err(CliError::usage(anyhow!(reason))),
    }
    let url = answer
        .signal_url
        .clone()
        .ok_or_else(|| CliError::other(anyhow!("the placer answered without a signal URL")))?;
    eprintln!(
        "placed {class} {} ({} units) on {} ({url})",
        request.sid,
        answer.demand.unwrap_or_default(),
        answer.node.as_deref().unwrap_or("?"),
    );
    if answer.token.is_none() {
        eprintln!(
            "note: no join token: set [auth] secret in the config file or {} if the agent \
             requires one",
            super::context::JOIN_SECRET_ENV
        );
    }
    let viewer_route = ClassSpec::of(class).spans.then(|| {
        viewer_route(
            std::sync::Arc::new(placer),
            request.clone(),
            secret,
            context.auth.token_ttl,
        )
    });
    Ok(Target {
        url,
        token: answer.token,
        node: answer.node,
        session: request.sid,
        store: Some(store),
        viewer_route,
    })
}

/// Each subscriber of a session that may span nodes placed as `ionctl place --session S
/// --role viewer --uid U` would be: on the edge its uid draws, with a token for that node.
fn viewer_route(
    placer: std::sync::Arc<Placer>,
    session: crate::placement::Request,
    secret: Option<crate::token::JoinSecret>,
    token_ttl: Duration,
) -> loadtest::ViewerRoute {
    let route = move |uid: String| -> loadtest::RouteFuture {
        let placer = placer.clone();
        let secret = secret.clone();
        let request = crate::placement::Request {
            role: Role::Viewer,
            uid: Some(uid),
            ..session.clone()
        };
        Box::pin(async move {
            let outcome = placer
                .place(request.clone())
                .await
                .map_err(|e| e.to_string())?;
            let answer = PlaceAnswer::new(
                &request,
                &outcome,
                placer.store().keys(),
                secret.as_ref(),
                SystemTime::now(),
                token_ttl,
            );
            match (outcome, answer.signal_url) {
                (Outcome::Placed { .. }, Some(url)) => Ok(loadtest::JoinTarget {
                    url,
                    token: answer.token,
                    node: answer.node,
                }),
                (Outcome::Placed { .. }, None) => {
                    Err("the placer answered without a signal URL".to_owned())
                }
                (Outcome::NoCapacity { .. }, _) => {
                    Err("no node of the session has room for another viewer".to_owned())
                }
                (Outcome::Refused { reason }, _) => Err(reason),
            }
        })
    };
    loadtest::ViewerRoute(std::sync::Arc::new(route))
}

/// Progress on stderr: a bar on a terminal; elsewhere one plain line per phase.
struct PhaseBar {
    bar: Option<ProgressBar>,
    phase: &'static str,
}

impl PhaseBar {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {prefix:<10} [{bar:30}] {pos}/{len} {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self { bar, phase: "" }
    }

    fn phase(&mut self, phase: &'static str, plain: impl FnOnce() -> String) {
        if self.phase != phase {
            self.phase = phase;
            match &self.bar {
                Some(bar) => bar.set_prefix(phase),
                None => {
                    let _ = writeln!(std::io::stderr(), "{}", plain());
                }
            }
        }
    }

    fn show(&mut self, progress: Progress) {
        match progress {
            Progress::Joining { done, total } => {
                self.phase("joining", || format!("joining {total} participants"));
                self.set(u64::from(done), u64::from(total), "");
            }
            Progress::Waiting { flowing, expected } => {
                self.phase("media", || format!("waiting for {expected} tracks to flow"));
                self.set(flowing, expected, "tracks flowing");
            }
            Progress::WarmingUp => self.phase("warm-up", || "warming up".to_owned()),
            Progress::Measuring { elapsed, total } => {
                self.phase("measuring", || {
                    format!("measuring for {}", humantime::format_duration(total))
                });
                self.set(elapsed.as_secs(), total.as_secs(), "s");
            }
            Progress::Step { subscribers } => {
                // Each step repeats the phases.
                self.phase = "";
                let line = format!("calibration step: {subscribers} subscribers");
                match &self.bar {
                    Some(bar) => bar.println(line),
                    None => {
                        let _ = writeln!(std::io::stderr(), "{line}");
                    }
                }
            }
            Progress::Closing => self.phase("leaving", || "leaving".to_owned()),
        }
    }

    fn set(&self, pos: u64, len: u64, msg: &'static str) {
        if let Some(bar) = &self.bar {
            bar.set_length(len.max(1));
            bar.set_position(pos);
            bar.set_message(msg);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"))
}

fn rate(bps: f64) -> String {
    if bps >= 1e6 {
        format!("{:.2} Mbps", bps / 1e6)
    } else {
        format!("{:.0} kbps", bps / 1e3)
    }
}

fn percent(fraction: f64) -> String {
    format!("{:.2}%", fraction * 100.0)
}

fn summary_rows(
    sfu: Sfu,
    summary: &Summary,
    agent: &AgentReport,
    client: &ClientReport,
) -> Vec<[String; 2]> {
    let mut rows = vec![
        [
            "tracks received".to_owned(),
            format!("{} of {}", summary.tracks_received, summary.tracks_expected),
        ],
        [
            "packets received".to_owned(),
            format!(
                "{} of {} (loss {})",
                summary.packets_received,
                summary.packets_expected,
                percent(summary.loss)
            ),
        ],
        ["total bitrate".to_owned(), rate(summary.bitrate_bps)],
        [
            "latency p50 / p99 / max".to_owned(),
            format!(
                "{} / {} / {}",
                ms(summary.latency_p50_ms),
                ms(summary.latency_p99_ms),
                ms(summary.latency_max_ms)
            ),
        ],
        [
            "participants".to_owned(),
            format!(
                "{} joined, {} failed to join",
                summary.participants_joined, summary.join_errors
            ),
        ],
        [
            "errors".to_owned(),
            summary
                .errors
                .iter()
                .map(|e| e.count)
                .sum::<u32>()
                .to_string(),
        ],
    ];
    let source = match agent.cpu_source {
        crate::loadtest::report::CpuSource::Proc => match agent.pid {
            Some(pid) => format!("/proc/{pid}/stat"),
            None => "/proc".to_owned(),
        },
        crate::loadtest::report::CpuSource::Metrics => {
            "process_cpu_seconds_total on its /metrics".to_owned()
        }
        crate::loadtest::report::CpuSource::Etcd => "node record in etcd".to_owned(),
        crate::loadtest::report::CpuSource::Unavailable => "unavailable".to_owned(),
    };
    let sfu = match sfu {
        Sfu::Ion => "agent",
        Sfu::Janus => "janus",
    };
    rows.push([
        format!("{sfu} cpu"),
        match (agent.cores_busy, agent.vcpus) {
            (Some(cores), Some(vcpus)) => {
                format!("{cores:.2} cores of {vcpus} ({source})")
            }
            (Some(cores), None) => format!("{cores:.2} cores ({source})"),
            _ => format!("- ({source})"),
        },
    ]);
    if let Some(rss) = agent.rss_bytes {
        rows.push([
            format!("{sfu} rss"),
            format!("{:.1} MiB", rss as f64 / (1024.0 * 1024.0)),
        ]);
    }
    rows.push([
        "forwarded packets".to_owned(),
        format!(
            "{:.0} ({})",
            agent.packets_forwarded,
            match agent.packets_source {
                crate::loadtest::report::PacketSource::Metrics => "agent /metrics",
                crate::loadtest::report::PacketSource::Subscribers => "received by subscribers",
            }
        ),
    ]);
    if agent.send_drops.is_some() || agent.forward_errors.is_some() {
        let count = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
        rows.push([
            "agent send drops / forward errors".to_owned(),
            format!(
                "{} / {}",
                count(agent.send_drops),
                count(agent.forward_errors)
            ),
        ]);
    }
    rows.push([
        "sfu cpu-s per million packets".to_owned(),
        agent
            .cpu_seconds_per_million_packets
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
    ]);
    rows.push([
        "packets per core-second".to_owned(),
        agent
            .packets_per_core_second
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}")),
    ]);
    rows.push([
        "load generator cpu".to_owned(),
        match (client.cores_busy, client.vcpus) {
            (Some(cores), Some(vcpus)) => format!("{cores:.2} cores of {vcpus}"),
            (Some(cores), None) => format!("{cores:.2} cores"),
            _ => "-".to_owned(),
        } + &client
            .host_busy
            .map(|b| format!(" (its cores {:.0}% busy with all work)", b * 100.0))
            .unwrap_or_default(),
    ]);
    rows
}

fn print_report(report: &Report) -> Result<(), CliError> {
    let mut tracks = table(&[
        "publisher",
        "kind",
        "subscribers",
        "sent",
        "received",
        "loss",
        "bitrate",
        "p50",
        "p99",
    ]);
    for row in &report.publisher_tracks {
        tracks.add_row(vec![
            row.publisher.clone(),
            row.kind.to_string(),
            format!("{}/{}", row.subscribers_receiving, row.subscribers_expected),
            row.sent.to_string(),
            format!("{}/{}", row.packets_received, row.packets_expected),
            percent(row.loss),
            rate(row.bitrate_bps),
            ms(row.latency_p50_ms),
            ms(row.latency_p99_ms),
        ]);
    }
    print_table(&mut tracks)?;
    write_stdout(b"\n")?;
    if !report.nodes.is_empty() {
        let mut nodes = table(&["node", "subscribers", "received", "loss", "p50", "p99"]);
        for row in &report.nodes {
            nodes.add_row(vec![
                row.node.clone(),
                row.subscribers.to_string(),
                format!("{}/{}", row.packets_received, row.packets_expected),
                percent(row.loss),
                ms(row.latency_p50_ms),
                ms(row.latency_p99_ms),
            ]);
        }
        print_table(&mut nodes)?;
        write_stdout(b"\n")?;
    }
    let mut summary = table(&["summary", ""]);
    for [k, v] in summary_rows(
        report.config.target,
        &report.summary,
        &report.agent,
        &report.client,
    ) {
        summary.add_row(vec![k, v]);
    }
    print_table(&mut summary)?;
    if !report.summary.errors.is_empty() {
        let mut text = String::from("\nerrors:\n");
        for e in report.summary.errors.iter().take(10) {
            text.push_str(&format!("  {} × {}\n", e.count, e.message));
        }
        write_stdout(text.as_bytes())?;
    }
    Ok(())
}

fn print_calibration(report: &CalibrationReport) -> Result<(), CliError> {
    let mut steps = table(&[
        "subscribers",
        "units",
        "agent cores",
        "client cores",
        "loss",
        "p99",
    ]);
    for (sample, step) in report.samples.iter().zip(&report.steps) {
        steps.add_row(vec![
            sample.subscribers.to_string(),
            format!("{:.0}", sample.units),
            format!("{:.2} of {}", sample.agent_cores_busy, sample.agent_vcpus),
            format!("{:.2} of {}", sample.client_cores_busy, sample.client_vcpus),
            percent(sample.loss),
            ms(step.summary.latency_p99_ms),
        ]);
    }
    print_table(&mut steps)?;
    let c = &report.calibration;
    let mut text = format!(
        "\nstopped: {}\nfit: {:.4} cores per unit + {:.3} cores fixed → {:.1} units per fully \
         used vCPU\n",
        c.reason, c.marginal_cores_per_unit, c.fixed_cores, c.fit_units_per_vcpu
    );
    if let Some(bound) = c.loss_limited_units_per_vcpu {
        text.push_str(&format!("loss-limited: {bound:.1} units per vCPU\n"));
    }
    if c.extrapolated {
        text.push_str(&format!(
            "extrapolated: the agent reached only {:.0}% of its cores, so the result extends \
             the fit beyond what was measured\n",
            c.max_measured_utilisation * 100.0
        ));
    }
    text.push_str(&format!(
        "\nunits_per_vcpu = {}\n\nSet it under [cluster] in the agent's TOML:\n  [cluster]\n  {}\nor in its environment:\n  {}\n",
        c.units_per_vcpu, report.config_line, report.env
    ));
    write_stdout(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates_parse_with_units() {
        assert_eq!(parse_bitrate("500k"), Ok(500_000));
        assert_eq!(parse_bitrate("1.5M"), Ok(1_500_000));
        assert_eq!(parse_bitrate("800000"), Ok(800_000));
        assert!(parse_bitrate("fast").is_err());
        assert!(parse_bitrate("1k").is_err());
    }

    #[test]
    fn default_classes_follow_the_shape() {
        assert_eq!(default_class(1, 200), SessionClass::Livestream);
        assert_eq!(default_class(6, 0), SessionClass::Group);
        assert_eq!(default_class(1, 3), SessionClass::Group);
        assert_eq!(default_class(10, 20), SessionClass::Meeting);
        assert_eq!(default_class(10, 100), SessionClass::Conference);
    }
}
