//! `ionctl place`: decides where a session goes, reserves it race-free, and prints the node,
//! its signal URL and a join token. When no node fits it writes `pending/<sid>` for the
//! autoscaler and exits 4, or with `--wait` watches the cluster until a node fits.

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

use anyhow::anyhow;
use clap::Args;

use super::output::{OutputArgs, OutputFormat, print_json, print_table, table};
use super::values::{ClassArg, RoleArg, StrategyArg};
use super::{CliError, Context, Exit};
use crate::api::PlaceAnswer;
use crate::placer::{Outcome, Placer, PlacerOptions, Progress, checked_request};

#[derive(Debug, Args)]
pub struct PlaceArgs {
    /// Session class; it sets the size limits, demand and headroom.
    #[arg(long, value_enum)]
    pub class: ClassArg,
    /// Participants (viewers for livestream, tracks for recording).
    #[arg(long)]
    pub size: u32,
    /// Session id [default: a new UUID]. Placing an existing session returns its node.
    #[arg(long = "session")]
    pub session: Option<String>,
    /// How to pick among the nodes that fit.
    #[arg(long, value_enum, default_value_t = StrategyArg::Binpack)]
    pub strategy: StrategyArg,
    /// Who joins: a publisher goes to the session's origin, a viewer of a session that spans
    /// nodes to its node (origin or edge) with the most room.
    #[arg(long, value_enum, default_value_t = RoleArg::Publisher)]
    pub role: RoleArg,
    /// The participant: viewers of a session that spans nodes are spread over its nodes by
    /// it, in proportion to their room [default: the node with the most room].
    #[arg(long, value_name = "UID")]
    pub uid: Option<String>,
    /// When no node fits, watch the cluster this long for one (e.g. 30s, 5m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
    /// How long the reservation holds if nobody joins.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub reservation_ttl: Duration,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn run(context: &Context, args: PlaceArgs) -> Result<(), CliError> {
    // Everything about the request is checked before etcd is contacted.
    let mut request = checked_request(
        args.session,
        args.class.into(),
        args.size,
        args.strategy.into(),
        args.role.into(),
    )
    .map_err(CliError::usage)?;
    request.uid = args.uid;
    let secret = context.join_secret()?;
    let store = context.store().await?;
    let options = PlacerOptions {
        policy: context.policy.clone(),
        reservation_ttl: args.reservation_ttl,
        ..PlacerOptions::default()
    };
    let placer = Placer::start(store.clone(), options).await?;
    let outcome = match args.wait {
        None => placer.place(request.clone()).await,
        Some(wait) => {
            let mut progress = ProgressLine::new();
            let outcome = placer
                .place_waiting(request.clone(), wait, |p| progress.show(&p))
                .await;
            progress.finish();
            outcome
        }
    }?;
    if secret.is_none() && matches!(outcome, Outcome::Placed { .. }) {
        eprintln!(
            "note: no join token: set [auth] secret in the config file or {} to get one",
            super::context::JOIN_SECRET_ENV
        );
    }
    let answer = PlaceAnswer::new(
        &request,
        &outcome,
        store.keys(),
        secret.as_ref(),
        SystemTime::now(),
        context.auth.token_ttl,
    );
    match args.output.output {
        OutputFormat::Json => print_json(&answer)?,
        OutputFormat::Table => print_answer(&answer)?,
    }
    match outcome {
        Outcome::Placed { .. } => Ok(()),
        Outcome::NoCapacity {
            pending,
            booting: Some(instance),
            ..
        } => Err(CliError::new(
            Exit::NoCapacity,
            anyhow!(
                "instance {instance}, started for session {}, has not registered{}; place again \
                 with --wait to take it when it does (see `ionctl instances`)",
                pending.sid,
                match args.wait {
                    Some(wait) => format!(" within {}", humantime::format_duration(wait)),
                    None => " yet".to_owned(),
                },
            ),
        )),
        Outcome::NoCapacity { pending, count, .. } => Err(CliError::new(
            Exit::NoCapacity,
            anyhow!(
                "no node can take this {} of {} ({} units){}; wrote {} for the autoscaler, which \
                 would add {count} × {}",
                request.class,
                request.size,
                pending.demand,
                match args.wait {
                    Some(wait) => format!(" within {}", humantime::format_duration(wait)),
                    None => String::new(),
                },
                store.keys().pending(&pending.sid),
                pending.machine_type.as_deref().unwrap_or("?"),
            ),
        )),
        Outcome::Refused { reason } => Err(CliError::usage(anyhow!(reason))),
    }
}

fn print_answer(answer: &PlaceAnswer) -> Result<(), CliError> {
    let mut out = table(&["field", "value"]);
    let mut row = |field: &str, value: Option<String>| {
        if let Some(value) = value {
            out.add_row(vec![field.to_owned(), value]);
        }
    };
    row("decision", Some(answer.decision.clone()));
    row("session", Some(answer.sid.clone()));
    row(
        "demand",
        answer
            .demand
            .map(|d| format!("{d} units ({} of {})", answer.class, answer.size)),
    );
    row("node", answer.node.clone());
    row("origin", answer.origin.clone());
    row(
        "edges",
        (!answer.edges.is_empty()).then(|| answer.edges.join(", ")),
    );
    row("signal url", answer.signal_url.clone());
    row("token", answer.token.clone());
    row("token expires", answer.token_expires_at.clone());
    row("pending", answer.pending.clone());
    row(
        "booting",
        answer
            .booting
            .as_ref()
            .map(|i| format!("{i} (started for this session)")),
    );
    row(
        "needs",
        answer
            .machine_type
            .as_ref()
            .map(|m| format!("{} × {m}", answer.count.unwrap_or(1))),
    );
    row("reason", answer.reason.clone());
    print_table(&mut out)
}

/// Progress of `--wait` on stderr: on a terminal, one line redrawn in place on every report;
/// otherwise a plain line at most every 10 s.
struct ProgressLine {
    tty: bool,
    drawn: bool,
    last_plain: Option<std::time::Instant>,
}

const PLAIN_EVERY: Duration = Duration::from_secs(10);

impl ProgressLine {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            drawn: false,
            last_plain: None,
        }
    }

    fn show(&mut self, progress: &Progress) {
        if !self.tty {
            let due = self.last_plain.is_none_or(|at| at.elapsed() >= PLAIN_EVERY);
            if !due || !matches!(progress, Progress::Waiting { .. }) {
                return;
            }
            self.last_plain = Some(std::time::Instant::now());
        }
        let text = match progress {
            Progress::Waiting {
                pending,
                booting,
                remaining,
            } => format!(
                "waiting for {} for {} units ({} left; pending/{} written)",
                match booting {
                    Some(instance) => format!("instance {instance}, booting for this session,"),
                    None => "capacity".to_owned(),
                },
                pending.demand,
                // Whole seconds, rounded up: "1s left" until the very end.
                humantime::format_duration(Duration::from_secs(
                    remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0)
                )),
                pending.sid
            ),
            Progress::Changed { revision } => {
                format!("the cluster changed at revision {revision}; deciding again")
            }
        };
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            self.drawn = true;
            write!(err, "\r\x1b[K{text}")
        } else {
            writeln!(err, "{text}")
        };
        let _ = err.flush();
    }

    fn finish(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}
