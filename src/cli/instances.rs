//! `ionctl instances`: the instances recorded under `instances/`, with the node each one
//! registered as (same name), if it has.

use std::time::SystemTime;

use clap::Args;
use serde::Serialize;

use super::output::{OutputArgs, OutputFormat, print_json, print_table, short_age, table};
use super::{CliError, Context};
use crate::model::{InstanceRecord, InstanceState, NodeRecord, NodeState};

#[derive(Debug, Args)]
pub struct InstancesArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

/// One instance as `-o json` shows it: the record, and its node once registered.
#[derive(Debug, Serialize)]
pub struct InstanceView {
    #[serde(flatten)]
    pub record: InstanceRecord,
    pub node: Option<NodeSummary>,
}

/// What the node of an instance says about itself.
#[derive(Debug, Serialize)]
pub struct NodeSummary {
    pub state: NodeState,
    pub signal_url: String,
    pub vcpus: u32,
    pub capacity: u32,
    pub sessions: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_for: Option<String>,
}

impl From<&NodeRecord> for NodeSummary {
    fn from(node: &NodeRecord) -> Self {
        Self {
            state: node.state,
            signal_url: node.signal_url.clone(),
            vcpus: node.vcpus,
            capacity: node.capacity,
            sessions: node.stats.sessions,
            hold_for: node.hold_for.clone(),
        }
    }
}

pub fn state_name(state: InstanceState) -> &'static str {
    match state {
        InstanceState::Creating => "creating",
        InstanceState::Booting => "booting",
        InstanceState::Ready => "ready",
        InstanceState::Deleting => "deleting",
    }
}

pub async fn run(context: &Context, args: InstancesArgs) -> Result<(), CliError> {
    let store = context.store().await?;
    let keys = store.keys().clone();
    let instances = store
        .list::<InstanceRecord>(&keys.instances(), None)
        .await?;
    let nodes = store
        .list::<NodeRecord>(&keys.nodes(), Some(instances.revision))
        .await?;
    let mut views: Vec<InstanceView> = instances
        .items
        .into_iter()
        .map(|(_, record)| {
            let node = nodes
                .items
                .iter()
                .find(|(id, _)| *id == record.name)
                .map(|(_, n)| NodeSummary::from(n));
            InstanceView { record, node }
        })
        .collect();
    views.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    match args.output.output {
        OutputFormat::Json => print_json(&views),
        OutputFormat::Table => {
            if views.is_empty() {
                eprintln!("No instances recorded under {}.", keys.prefix());
                return Ok(());
            }
            let now = SystemTime::now();
            let mut out = table(&[
                "name",
                "provider",
                "zone",
                "machine type",
                "state",
                "hold",
                "for demands",
                "node",
                "sessions",
                "age",
                "note",
            ]);
            for view in &views {
                let record = &view.record;
                out.add_row(vec![
                    record.name.clone(),
                    record.provider.clone(),
                    record.zone.clone(),
                    record.machine_type.clone(),
                    state_name(record.state).to_owned(),
                    record.hold_for.clone().unwrap_or_else(|| "-".to_owned()),
                    if record.demands.is_empty() {
                        "-".to_owned()
                    } else {
                        record.demands.join(",")
                    },
                    view.node
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |n| n.state.to_string()),
                    view.node
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |n| n.sessions.to_string()),
                    short_age(now.duration_since(record.created_at).unwrap_or_default()),
                    record.note.clone().unwrap_or_default(),
                ]);
            }
            print_table(&mut out)
        }
    }
}
