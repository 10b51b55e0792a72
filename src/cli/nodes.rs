//! `ionctl nodes`: every registered node with its size, load and condition (why placement
//! would pass it over: held, draining, warming up, host busy).

use std::time::SystemTime;

use clap::Args;

use super::output::{OutputArgs, OutputFormat, print_json, print_table, short_age, table};
use super::{CliError, Context};
use crate::api::node_views;

#[derive(Debug, Args)]
pub struct NodesArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn run(context: &Context, args: NodesArgs) -> Result<(), CliError> {
    let store = context.store().await?;
    let mut snapshot = store.snapshot().await?;
    snapshot.nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let now = SystemTime::now();
    let views = node_views(
        &snapshot.nodes,
        &snapshot.sessions,
        now,
        &context.policy.load_rules(),
    );
    match args.output.output {
        OutputFormat::Json => print_json(&views),
        OutputFormat::Table => {
            if views.is_empty() {
                eprintln!(
                    "No nodes registered under {} at {}.",
                    store.keys().prefix(),
                    store.endpoints().join(",")
                );
                return Ok(());
            }
            let mut out = table(&[
                "id",
                "state",
                "machine type",
                "vcpus",
                "cpu agent/host",
                "load",
                "sessions",
                "peers",
                "stats age",
                "condition",
            ]);
            for view in &views {
                let node = view.record;
                let state = match &node.hold_for {
                    Some(sid) => format!("{} (held for {sid})", node.state),
                    None => node.state.to_string(),
                };
                out.add_row(vec![
                    node.id.clone(),
                    state,
                    node.machine_type.clone(),
                    node.vcpus.to_string(),
                    format!(
                        "{:.0}%/{:.0}%",
                        node.stats.agent_cpu * 100.0,
                        node.stats.cpu * 100.0
                    ),
                    format!(
                        "{:.0}/{} ({:.0}%)",
                        view.load.effective_units,
                        view.load.capacity,
                        view.load.utilisation * 100.0
                    ),
                    node.stats.sessions.to_string(),
                    node.stats.peers.to_string(),
                    short_age(node.stats_age(now)),
                    {
                        let condition = view
                            .condition_reason
                            .clone()
                            .unwrap_or_else(|| view.condition.to_owned());
                        // A problem the node reports (a failed recording) is shown with it.
                        match &node.problem {
                            Some(problem) => format!("{condition}; {problem}"),
                            None => condition,
                        }
                    },
                ]);
            }
            print_table(&mut out)
        }
    }
}
