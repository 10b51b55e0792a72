//! `ionctl drain NODE...` and `ionctl undrain NODE...`: write and delete `drain/<node>`.
//!
//! A drain runs in steps: check the arguments, request every drain, report, and with
//! `--wait` wait until every drained node carries no session ([`wait_until_empty`], which
//! `ionctl delete` shares).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::anyhow;
use clap::Args;
use serde::Serialize;

use super::output::{OutputArgs, OutputFormat, print_json, print_table, table};
use super::progress::Painter;
use super::{CliError, Context, Exit};
use crate::model::DrainRequest;
use crate::model::keys::validate_id;
use crate::store::{Store, StoreError, Undrained};

#[derive(Debug, Args)]
pub struct DrainArgs {
    /// Node ids to drain (as `ionctl nodes` lists them).
    #[arg(required = true, value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Why, for whoever looks at the drain request later.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Wait until every node carries no session (exit 5 if --timeout passes first).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (e.g. 30m, 2h).
    #[arg(long, value_name = "DUR", default_value = "1h", value_parser = humantime::parse_duration, requires = "wait")]
    pub timeout: Duration,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct UndrainArgs {
    /// Node ids to return to ready.
    #[arg(required = true, value_name = "NODE")]
    pub nodes: Vec<String>,
}

/// One node's drain request as the command reports it (`-o json` is this, as an array).
#[derive(Debug, Clone, Serialize)]
pub struct DrainReport {
    pub node: String,
    /// The node already had a drain request, which this one replaced.
    pub already_draining: bool,
    #[serde(flatten)]
    pub request: DrainRequest,
}

/// The drains written, and the nodes refused as unknown.
#[derive(Debug, Default)]
pub struct Requested {
    pub drained: Vec<DrainReport>,
    pub unknown: Vec<String>,
}

pub async fn run(context: &Context, args: DrainArgs) -> Result<(), CliError> {
    let nodes = checked_nodes(&args.nodes)?;
    let store = context.store().await?;
    let request = DrainRequest {
        requested_at: SystemTime::now(),
        deadline: None,
        reason: args.reason.clone(),
    };
    let requested = request_drains(&store, &nodes, &request).await?;
    print_drains(&requested.drained, args.output.output)?;
    if args.wait {
        let drained: Vec<String> = requested.drained.iter().map(|d| d.node.clone()).collect();
        wait_until_empty(&store, &drained, args.timeout, &mut Painter::new()).await?;
    }
    unknown_nodes(&store, &requested.unknown)
}

/// Sessions each of `nodes` still carries: the larger of its own count (stats) and the
/// session records placed on it. A node that is gone carries none.
async fn sessions_left(
    store: &Store,
    nodes: &[String],
) -> Result<BTreeMap<String, usize>, CliError> {
    let snapshot = store.snapshot().await?;
    Ok(nodes
        .iter()
        .map(|id| {
            let reported = snapshot
                .nodes
                .iter()
                .find(|n| &n.id == id)
                .map_or(0, |n| n.stats.sessions as usize);
            let placed = snapshot.sessions.iter().filter(|s| &s.node == id).count();
            (id.clone(), reported.max(placed))
        })
        .filter(|(_, left)| *left > 0)
        .collect())
}

/// Waits until none of `nodes` carries a session, showing what is left (one redrawn line on a
/// terminal, a plain line per change elsewhere). After `timeout` it fails with exit 5, naming
/// the nodes and their sessions; their drains stay.
pub async fn wait_until_empty(
    store: &Store,
    nodes: &[String],
    timeout: Duration,
    painter: &mut Painter,
) -> Result<(), CliError> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        let left = sessions_left(store, nodes).await?;
        let summary = left
            .iter()
            .map(|(node, n)| format!("{node}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        if left.is_empty() {
            painter.step("drained", &format!("{} carry no session", nodes.join(", ")));
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CliError::new(
                Exit::DrainTimeout,
                anyhow!(
                    "sessions left after {} (node: sessions): {summary}; the nodes stay \
                     draining. Wait longer with --timeout, or undrain them",
                    humantime::format_duration(timeout)
                ),
            ));
        }
        if last.as_ref() != Some(&summary) {
            painter.step("waiting", &format!("sessions left: {summary}"));
            last = Some(summary.clone());
        }
        painter.waiting(&format!("sessions left: {summary}"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn run_undrain(context: &Context, args: UndrainArgs) -> Result<(), CliError> {
    let nodes = checked_nodes(&args.nodes)?;
    let store = context.store().await?;
    let mut out = table(&["node", "result"]);
    let mut unknown = Vec::new();
    for node in &nodes {
        let result = match store.undrain(node).await {
            Ok(Undrained::Lifted) => "ready (drain lifted)",
            Ok(Undrained::WasNotDraining) => "ready (was not draining)",
            Err(StoreError::UnknownNode { .. }) => {
                unknown.push(node.clone());
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        out.add_row(vec![node.clone(), result.to_owned()]);
    }
    if unknown.len() < nodes.len() {
        print_table(&mut out)?;
    }
    unknown_nodes(&store, &unknown)
}

/// Writes `request` for every node, in order. An unknown node is noted and the others go on;
/// any other failure (etcd unreachable) stops at once.
pub async fn request_drains(
    store: &Store,
    nodes: &[String],
    request: &DrainRequest,
) -> Result<Requested, CliError> {
    let mut requested = Requested::default();
    for node in nodes {
        match store.drain(node, request).await {
            Ok(drained) => requested.drained.push(DrainReport {
                node: node.clone(),
                already_draining: drained.previous.is_some(),
                request: request.clone(),
            }),
            Err(StoreError::UnknownNode { .. }) => requested.unknown.push(node.clone()),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(requested)
}

fn print_drains(drained: &[DrainReport], format: OutputFormat) -> Result<(), CliError> {
    match format {
        OutputFormat::Json => print_json(drained),
        OutputFormat::Table if drained.is_empty() => Ok(()),
        OutputFormat::Table => {
            let mut out = table(&["node", "drain", "requested at", "reason"]);
            for report in drained {
                out.add_row(vec![
                    report.node.clone(),
                    if report.already_draining {
                        "renewed (was draining)"
                    } else {
                        "requested"
                    }
                    .to_owned(),
                    humantime::format_rfc3339_seconds(report.request.requested_at).to_string(),
                    report.request.reason.clone().unwrap_or_default(),
                ]);
            }
            print_table(&mut out)
        }
    }
}

/// Refuses a malformed node id before anything is written, and drops repeats.
fn checked_nodes(nodes: &[String]) -> Result<Vec<String>, CliError> {
    let mut checked: Vec<String> = Vec::with_capacity(nodes.len());
    for node in nodes {
        validate_id("node", node).map_err(CliError::usage)?;
        if !checked.contains(node) {
            checked.push(node.clone());
        }
    }
    Ok(checked)
}

/// Exit code 6 naming every unknown node, or success when there is none.
fn unknown_nodes(store: &Store, unknown: &[String]) -> Result<(), CliError> {
    match unknown {
        [] => Ok(()),
        [node] => Err(CliError::new(
            Exit::UnknownNode,
            StoreError::UnknownNode {
                node: node.clone(),
                prefix: store.keys().prefix().to_owned(),
            },
        )),
        nodes => Err(CliError::new(
            Exit::UnknownNode,
            anyhow!(
                "no nodes {} are registered under {}; `ionctl nodes` lists the nodes there",
                nodes
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                store.keys().prefix()
            ),
        )),
    }
}
