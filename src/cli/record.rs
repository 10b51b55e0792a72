//! `ionctl record`: start, stop and list recordings. `start` places a `recording`
//! reservation (a dedicated class: the recorder node carries nothing else) through the same
//! placer as `ionctl place`, and writes `recordings/<sid>` naming that node, which then
//! records the session; `stop` asks it to finish; `list` shows every recording's state.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use anyhow::anyhow;
use clap::{Args, Subcommand};

use super::output::{OutputArgs, OutputFormat, print_json, print_table, short_age, table};
use super::{CliError, Context, Exit};
use crate::model::{RecordingRecord, RecordingState, SessionClass};
use crate::placement::{Role, Strategy};
use crate::placer::{Outcome, Placer, PlacerOptions, checked_request};

#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(subcommand)]
    pub command: RecordCommand,
}

#[derive(Debug, Subcommand)]
pub enum RecordCommand {
    /// Record session SID on a node of its own (one WebM per participant).
    Start(StartArgs),
    /// Finish the recording of SID: its files are closed and complete.
    Stop(StopArgs),
    /// Recordings, their node, state, duration, bytes and files.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The session to record.
    pub sid: String,
    /// Upload the files to this Cloud Storage bucket (`gs://bucket[/prefix]`) when the
    /// recording stops [default: keep them on the recorder's disk].
    #[arg(long, value_name = "gs://BUCKET[/PREFIX]")]
    pub bucket: Option<String>,
    /// Tracks the recorder is sized for (its reservation's demand).
    #[arg(long, default_value_t = 20)]
    pub tracks: u32,
    /// When no node is free to record on, watch the cluster this long for one (the
    /// autoscaler starts one held for the recording).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// The session whose recording to stop.
    pub sid: String,
    /// Wait this long for the recorder to finish the files (0s: do not wait).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub wait: Duration,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn run(context: &Context, args: RecordArgs) -> Result<(), CliError> {
    match args.command {
        RecordCommand::Start(args) => start(context, args).await,
        RecordCommand::Stop(args) => stop(context, args).await,
        RecordCommand::List(args) => list(context, args).await,
    }
}

/// Checks `gs://bucket[/prefix]`.
fn checked_bucket(bucket: &str) -> Result<(), CliError> {
    let name = bucket
        .strip_prefix("gs://")
        .map(|rest| rest.split('/').next().unwrap_or_default());
    match name {
        Some(name)
            if (3..=63).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)) =>
        {
            Ok(())
        }
        _ => Err(CliError::usage(anyhow!(
            "--bucket {bucket:?} is not a Cloud Storage bucket: give gs://BUCKET or \
             gs://BUCKET/PREFIX (bucket names are 3-63 lowercase letters, digits, -, _ or .)"
        ))),
    }
}

async fn start(context: &Context, args: StartArgs) -> Result<(), CliError> {
    if let Some(bucket) = &args.bucket {
        checked_bucket(bucket)?;
    }
    crate::model::keys::validate_id("session", &args.sid).map_err(CliError::usage)?;
    let reservation = RecordingRecord::reservation_for(&args.sid);
    let request = checked_request(
        Some(reservation.clone()),
        SessionClass::Recording,
        args.tracks,
        Strategy::Binpack,
        Role::Publisher,
    )
    .map_err(CliError::usage)?;
    let store = context.store().await?;
    let key = store.keys().recording(&args.sid);
    let registered = |node: &str| {
        let key = store.keys().node(node);
        let store = store.clone();
        async move { store.get::<crate::model::NodeRecord>(&key).await }
    };
    // The recording before this one must be over: its recorder still writes into the record
    // while it records, finishes or uploads. A recorder that died left its record as it was:
    // it writes nothing any more.
    if let Some(existing) = store.get::<RecordingRecord>(&key).await?
        && matches!(
            existing.state,
            RecordingState::Requested | RecordingState::Recording | RecordingState::Uploading
        )
        && registered(&existing.node).await?.is_some()
    {
        let why = if existing.state == RecordingState::Uploading || existing.stop_requested {
            format!(
                "node {} is still finishing the previous recording of {} ({}); start again once \
                 `ionctl record list` shows it done or failed",
                existing.node,
                args.sid,
                if existing.state == RecordingState::Uploading {
                    "uploading"
                } else {
                    "stopping"
                }
            )
        } else {
            format!(
                "session {} is already being recorded on node {} ({}); `ionctl record stop {}` first",
                args.sid,
                existing.node,
                existing.state.as_str(),
                args.sid
            )
        };
        return Err(CliError::usage(anyhow!(why)));
    }
    let options = PlacerOptions {
        policy: context.policy.clone(),
        ..PlacerOptions::default()
    };
    let placer = Placer::start(store.clone(), options).await?;
    let outcome = match args.wait {
        None => placer.place(request.clone()).await,
        Some(wait) => placer.place_waiting(request.clone(), wait, |_| {}).await,
    }?;
    let node = match outcome {
        Outcome::Placed { node, .. } => node,
        Outcome::NoCapacity { pending, .. } => {
            return Err(CliError::new(
                Exit::NoCapacity,
                anyhow!(
                    "no node is free to record session {} on; wrote {} for the autoscaler, which \
                     starts one held for it; run again with --wait 2m to take it when it registers",
                    args.sid,
                    store.keys().pending(&pending.sid),
                ),
            ));
        }
        Outcome::Refused { reason } => return Err(CliError::usage(anyhow!(reason))),
    };
    let record = RecordingRecord {
        sid: args.sid.clone(),
        node,
        reservation,
        state: RecordingState::Requested,
        bucket: args.bucket,
        stop_requested: false,
        requested_at: SystemTime::now(),
        started_at: None,
        stopped_at: None,
        dir: None,
        files: Vec::new(),
        error: None,
    };
    store.put(&key, &record).await?;
    match args.output.output {
        OutputFormat::Json => print_json(&record),
        OutputFormat::Table => {
            println!(
                "recording session {} on node {} (`ionctl record list` follows it)",
                record.sid, record.node
            );
            Ok(())
        }
    }
}

async fn stop(context: &Context, args: StopArgs) -> Result<(), CliError> {
    let store = context.store().await?;
    let key = store.keys().recording(&args.sid);
    let record = store
        .update(&key, |r: &mut RecordingRecord| {
            let change = r.state.is_active() && !r.stop_requested;
            r.stop_requested = true;
            change
        })
        .await?
        .ok_or_else(|| {
            CliError::usage(anyhow!(
                "session {} has no recording; `ionctl record list` shows the recordings",
                args.sid
            ))
        })?;
    let node_gone = store
        .get::<crate::model::NodeRecord>(&store.keys().node(&record.node))
        .await?
        .is_none();
    let mut record = record;
    if record.state.is_active() && node_gone {
        // Nobody is left to finish it: say so in the record, for `record list`.
        let why = format!(
            "its recorder node {} is gone; the files on its disk end where it stopped",
            record.node
        );
        record = store
            .update(&key, |r: &mut RecordingRecord| {
                r.state = RecordingState::Failed;
                r.error = Some(why.clone());
                r.stopped_at = Some(SystemTime::now());
                true
            })
            .await?
            .unwrap_or(record);
    }
    let deadline = tokio::time::Instant::now() + args.wait;
    while record.state.is_active() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        match store.get::<RecordingRecord>(&key).await? {
            Some(now) => record = now,
            None => break,
        }
    }
    match args.output.output {
        OutputFormat::Json => print_json(&record)?,
        OutputFormat::Table => {
            let nodes = HashSet::from([record.node.clone()]);
            print_recordings(std::slice::from_ref(&record), &nodes)?
        }
    }
    match record.state {
        RecordingState::Failed => Err(CliError::other(anyhow!(
            "the recording of {} failed: {}",
            record.sid,
            record.error.as_deref().unwrap_or("no reason given")
        ))),
        state if state.is_active() && !args.wait.is_zero() => Err(CliError::other(anyhow!(
            "node {} has not finished the recording of {} within {}; `ionctl record list` \
             shows when it does",
            record.node,
            record.sid,
            humantime::format_duration(args.wait)
        ))),
        _ => Ok(()),
    }
}

async fn list(context: &Context, args: ListArgs) -> Result<(), CliError> {
    let store = context.store().await?;
    let mut recordings: Vec<RecordingRecord> = store
        .list::<RecordingRecord>(&store.keys().recordings(), None)
        .await?
        .items
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    recordings.sort_by(|a, b| a.sid.cmp(&b.sid));
    match args.output.output {
        OutputFormat::Json => print_json(&recordings),
        OutputFormat::Table => {
            if recordings.is_empty() {
                eprintln!("No recordings under {}.", store.keys().prefix());
                return Ok(());
            }
            let nodes: HashSet<String> = store
                .nodes()
                .await?
                .items
                .into_iter()
                .map(|(_, n)| n.id)
                .collect();
            print_recordings(&recordings, &nodes)
        }
    }
}

/// The recordings as a table; `nodes` are the registered ones: an active recording on a
/// node that is gone shows as lost.
fn print_recordings(
    recordings: &[RecordingRecord],
    nodes: &HashSet<String>,
) -> Result<(), CliError> {
    let now = SystemTime::now();
    let mut out = table(&[
        "sid", "node", "state", "duration", "bytes", "files", "upload", "error",
    ]);
    for r in recordings {
        let state = if r.state.is_active() && !nodes.contains(&r.node) {
            "lost: its node is gone".to_owned()
        } else if r.stop_requested && r.state.is_active() {
            "stopping".to_owned()
        } else {
            r.state.as_str().to_owned()
        };
        out.add_row(vec![
            r.sid.clone(),
            r.node.clone(),
            state,
            short_age(r.duration(now)),
            r.bytes().to_string(),
            r.files.len().to_string(),
            match &r.bucket {
                Some(bucket) => format!("{}/{} to {bucket}", r.uploaded(), r.files.len()),
                None => "local".to_owned(),
            },
            r.error.clone().unwrap_or_default(),
        ]);
    }
    print_table(&mut out)
}

#[cfg(test)]
mod tests {
    use super::checked_bucket;

    #[test]
    fn buckets_are_gs_urls_with_a_valid_name() {
        assert!(checked_bucket("gs://my-recordings").is_ok());
        assert!(checked_bucket("gs://my-recordings/calls/2026").is_ok());
        for bad in ["my-recordings", "s3://b", "gs://", "gs://UPPER", "gs://ab"] {
            assert!(checked_bucket(bad).is_err(), "{bad}");
        }
    }
}
