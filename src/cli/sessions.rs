//! `ionctl sessions`: sessions, their class, demand and node; a session that spans nodes
//! with its edges and the peers each of its nodes reports.

use std::collections::HashMap;
use std::time::SystemTime;

use clap::Args;

use super::output::{OutputArgs, OutputFormat, print_json, print_table, short_age, table};
use super::{CliError, Context};

#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// Only sessions on this node (as origin or edge).
    #[arg(long)]
    pub node: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn run(context: &Context, args: SessionsArgs) -> Result<(), CliError> {
    let store = context.store().await?;
    let mut sessions: Vec<_> = store
        .sessions()
        .await?
        .items
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| args.node.as_ref().is_none_or(|n| s.is_on(n)))
        .collect();
    sessions.sort_by(|a, b| a.sid.cmp(&b.sid));
    match args.output.output {
        OutputFormat::Json => print_json(&sessions),
        OutputFormat::Table => {
            if sessions.is_empty() {
                eprintln!("No sessions under {}.", store.keys().prefix());
                return Ok(());
            }
            let now = SystemTime::now();
            // Peers per node, for the nodes of spanning sessions (dedicated: all theirs).
            let peers: HashMap<String, u32> = if sessions.iter().any(|s| !s.relays.is_empty()) {
                store
                    .nodes()
                    .await?
                    .items
                    .into_iter()
                    .map(|(_, n)| (n.id, n.stats.peers))
                    .collect()
            } else {
                HashMap::new()
            };
            let edge = |id: &String| match peers.get(id) {
                Some(count) => format!("{id} ({count} peers)"),
                None => format!("{id} (gone)"),
            };
            let mut out = table(&[
                "sid", "class", "size", "demand", "node", "edges", "state", "age",
            ]);
            for s in &sessions {
                let edges = if s.relays.is_empty() {
                    "-".to_owned()
                } else {
                    format!(
                        "{} × {} units: {}",
                        s.relays.len(),
                        s.edge_demand,
                        s.relays.iter().map(edge).collect::<Vec<_>>().join(", ")
                    )
                };
                out.add_row(vec![
                    s.sid.clone(),
                    s.class.to_string(),
                    s.size.to_string(),
                    s.demand.to_string(),
                    s.node.clone(),
                    edges,
                    s.state.to_string(),
                    short_age(now.duration_since(s.created_at).unwrap_or_default()),
                ]);
            }
            print_table(&mut out)
        }
    }
}
