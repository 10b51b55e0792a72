//! `ionctl drain NODE...` and `ionctl undrain NODE...`: write and delete `drain/<node>`.
//!
//! A drain runs in steps — check the arguments, request every drain, report — so that later
//! steps (waiting for the nodes to empty) slot in after [`request_drains`] without touching
//! the others.

use std::time::SystemTime;

use anyhow::anyhow;
use clap::Args;
use serde::Serialize;

use super::output::{OutputArgs, OutputFormat, print_json, print_table, table};
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
    unknown_nodes(&store, &requested.unknown)
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
