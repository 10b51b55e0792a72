//! The recorder: any node that a `recording` reservation is placed on records the session it
//! names. `ionctl record start SID` places the reservation (a dedicated class, so the node
//! carries nothing else) and writes `recordings/<sid>` naming the node; this module follows
//! those records, and for each one of this node:
//!
//! - claims the reservation, which moves it onto the node lease like a live session;
//! - pulls the session's tracks from each of its nodes over the relay ([`pull`]), as one more
//!   node of the session, and writes one WebM per participant ([`files`], [`webm`]);
//! - reports progress (files, bytes, duration) into the record every [`REPORT_EVERY`];
//! - on `ionctl record stop` (or when the session ends) finishes the files, marks the record
//!   `done` and releases the reservation. A write error (a full disk) stops it as `failed`,
//!   with the error in the record and the log; the files keep what reached them.

pub(crate) mod files;
mod pull;
mod upload;
pub mod webm;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ion_cluster::model::{NodeRecord, RecordingRecord, RecordingState, SessionRecord};
use ion_cluster::store::{EtcdOptions, Store};
use ion_cluster::token::JoinSecret;
use tokio::sync::{mpsc, watch};

use crate::ownership::Ownership;
use crate::relay::edge::Origin;

/// How often the recordings of this node are read.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// How often a recording writes its progress into its record.
const REPORT_EVERY: Duration = Duration::from_secs(2);
/// Frames between the relays and the files: a few seconds of a large session.
const FRAME_QUEUE: usize = 4096;

/// What every recording on this node shares.
#[derive(Clone)]
pub struct RecorderContext {
    pub etcd: EtcdOptions,
    pub node_id: String,
    pub secret: Option<JoinSecret>,
    pub dir: PathBuf,
    /// Where the recorder's media sockets bind, and the address they announce.
    pub bind_ip: IpAddr,
    pub media_ip: IpAddr,
    pub ownership: Ownership,
    pub upload: upload::UploadSettings,
    /// The node record's `problem`: the last failed recording, until the next one starts.
    pub problem: watch::Sender<Option<String>>,
}

pub use upload::UploadSettings;

/// Follows `recordings/` for records of this node until `shutdown`, and runs each.
pub async fn follow(context: RecorderContext, mut shutdown: watch::Receiver<bool>) {
    let mut running: HashMap<String, watch::Sender<bool>> = HashMap::new();
    // Every recording's task in this process, recording or uploading, until it ends.
    let mut tasks: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut store: Option<Store> = None;
    loop {
        tasks.retain(|_, task| !task.is_finished());
        match mine(&context, &mut store).await {
            Ok(records) => {
                // Uploading, and no task of this process uploads it: this agent restarted
                // mid-upload. The files are on disk and the record says which are up.
                for record in &records {
                    if record.state == RecordingState::Uploading && !tasks.contains_key(&record.sid)
                    {
                        tracing::info!(sid = %record.sid, "resuming an upload a restart cut short");
                        let task = tokio::spawn(resume_upload(context.clone(), record.clone()));
                        tasks.insert(record.sid.clone(), task);
                    }
                }
                // Stopped before this node picked it up: nothing was recorded, and nobody
                // else ends it.
                let never_started: Vec<String> = records
                    .iter()
                    .filter(|r| {
                        r.state == RecordingState::Requested
                            && r.stop_requested
                            && !running.contains_key(&r.sid)
                    })
                    .map(|r| r.sid.clone())
                    .collect();
                for sid in never_started {
                    tracing::info!(%sid, "recording stopped before it began");
                    write_end(store.as_ref(), &sid, RecordingState::Done, None, &[]).await;
                }
                let wanted: HashSet<String> = records
                    .iter()
                    .filter(|r| r.state.is_active() && !r.stop_requested)
                    .map(|r| r.sid.clone())
                    .collect();
                running.retain(|sid, stop| {
                    let keep = wanted.contains(sid) && !stop.is_closed();
                    if !keep {
                        let _ = stop.send(true);
                    }
                    keep
                });
                for record in records {
                    if wanted.contains(&record.sid) && !running.contains_key(&record.sid) {
                        let (stop, stopped) = watch::channel(false);
                        running.insert(record.sid.clone(), stop);
                        let sid = record.sid.clone();
                        let task = tokio::spawn(record_session(context.clone(), record, stopped));
                        tasks.insert(sid, task);
                    }
                }
            }
            Err(error) => {
                store = None;
                tracing::warn!(%error, "cannot read this node's recordings; retrying");
            }
        }
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
        }
    }
    for stop in running.values() {
        let _ = stop.send(true);
    }
    // Give the recordings their moment to finish their files.
    for (_, stop) in running {
        stop.closed().await;
    }
}

/// Resolves once `stop` has flipped (or its sender is gone).
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn mine(
    context: &RecorderContext,
    store: &mut Option<Store>,
) -> Result<Vec<RecordingRecord>, ion_cluster::store::StoreError> {
    if store.is_none() {
        *store = Some(Store::connect(&context.etcd).await?);
    }
    let store = store.as_ref().expect("connected above");
    let listed = store
        .list::<RecordingRecord>(&store.keys().recordings(), None)
        .await?;
    Ok(listed
        .items
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r.node == context.node_id)
        .collect())
}

/// Records one session until `stop` flips or the session ends, then uploads its files when
/// the recording names a bucket.
async fn record_session(
    context: RecorderContext,
    record: RecordingRecord,
    mut stop: watch::Receiver<bool>,
) {
    let sid = record.sid.clone();
    let outcome = run(&context, &record, &mut stop).await;
    let (mut state, mut error, mut files, dir) = match outcome {
        Ok(Recorded { files, dir }) => (RecordingState::Done, None, files, Some(dir)),
        Err(Failure { why, files, dir }) => {
            tracing::error!(%sid, error = %why, "recording failed");
            context
                .problem
                .send_replace(Some(format!("the recording of {sid} failed: {why}")));
            (RecordingState::Failed, Some(why), files, dir)
        }
    };
    let store = Store::connect(&context.etcd).await.ok();
    let bucket = record
        .bucket
        .as_deref()
        .map(ion_cluster::gcs::BucketPath::parse);
    if let (RecordingState::Done, Some(bucket), Some(dir)) = (state, bucket, &dir)
        && !files.is_empty()
    {
        write_end(
            store.as_ref(),
            &sid,
            RecordingState::Uploading,
            None,
            &files,
        )
        .await;
        if let Err(why) = upload(&context, store.as_ref(), &sid, bucket, dir, &mut files).await {
            state = RecordingState::Failed;
            error = Some(why);
        }
    }
    write_end(store.as_ref(), &sid, state, error, &files).await;
    context.ownership.leave(&record.reservation).await;
    tracing::info!(%sid, state = state.as_str(), "recording ended");
}

/// Uploads a recording that was uploading when its agent stopped: what is not up yet goes
/// up from the directory the record names, and the record ends done or failed.
async fn resume_upload(context: RecorderContext, record: RecordingRecord) {
    let sid = record.sid.clone();
    let store = Store::connect(&context.etcd).await.ok();
    let mut files = record.files.clone();
    let outcome = match (record.bucket.as_deref(), record.dir.as_deref()) {
        (Some(bucket), Some(dir)) => {
            let bucket = ion_cluster::gcs::BucketPath::parse(bucket);
            upload(
                &context,
                store.as_ref(),
                &sid,
                bucket,
                Path::new(dir),
                &mut files,
            )
            .await
        }
        _ => Err("the record names no bucket or directory to upload from".to_owned()),
    };
    let (state, error) = match outcome {
        Ok(()) => (RecordingState::Done, None),
        Err(why) => (RecordingState::Failed, Some(why)),
    };
    write_end(store.as_ref(), &sid, state, error, &files).await;
    tracing::info!(%sid, state = state.as_str(), "resumed upload ended");
}

/// Uploads `files` from `dir`, marking each in the record as it goes up; the error, also
/// set as the node's problem, says what stays on disk.
async fn upload(
    context: &RecorderContext,
    store: Option<&Store>,
    sid: &str,
    bucket: Result<ion_cluster::gcs::BucketPath, String>,
    dir: &Path,
    files: &mut [ion_cluster::model::RecordedFile],
) -> Result<(), String> {
    let uploaded = match bucket {
        Ok(bucket) => {
            // Each confirmed file shows in the record as it goes up. A progress write
            // only ever adds an upload, so one that lands late loses nothing.
            let progress = |files: &[ion_cluster::model::RecordedFile]| {
                if let Some(store) = store.cloned() {
                    let (key, files) = (store.keys().recording(sid), files.to_vec());
                    tokio::spawn(async move {
                        let _ = store
                            .update(&key, |r: &mut RecordingRecord| {
                                for file in &mut r.files {
                                    let done = files.iter().find(|f| f.name == file.name);
                                    if let Some(url) = done.and_then(|f| f.uploaded.clone()) {
                                        file.uploaded.get_or_insert(url);
                                    }
                                }
                                true
                            })
                            .await;
                    });
                }
            };
            upload::upload_all(&context.upload, &bucket, dir, files, progress).await
        }
        Err(why) => Err(why),
    };
    if let Err(why) = &uploaded {
        tracing::error!(%sid, error = %why, "recording upload failed");
        context.problem.send_replace(Some(format!(
            "the upload of {sid}'s recording failed: {why}"
        )));
    }
    uploaded
}

/// Writes the recording's state, error and files into its record.
async fn write_end(
    store: Option<&Store>,
    sid: &str,
    state: RecordingState,
    error: Option<String>,
    files: &[ion_cluster::model::RecordedFile],
) {
    let Some(store) = store else {
        tracing::warn!(%sid, "cannot reach etcd to write the recording's end");
        return;
    };
    let written = store
        .update(&store.keys().recording(sid), |r: &mut RecordingRecord| {
            r.state = state;
            r.error.clone_from(&error);
            r.stopped_at.get_or_insert_with(SystemTime::now);
            if !files.is_empty() {
                r.files = files.to_vec();
            }
            true
        })
        .await;
    if let Err(error) = written {
        tracing::warn!(%sid, %error, "could not write the recording's end into etcd");
    }
}

/// A recording that stopped as asked: its files and where they are.
struct Recorded {
    files: Vec<ion_cluster::model::RecordedFile>,
    dir: PathBuf,
}

struct Failure {
    why: String,
    files: Vec<ion_cluster::model::RecordedFile>,
    dir: Option<PathBuf>,
}

impl Failure {
    fn early(why: String) -> Self {
        Self {
            why,
            files: Vec::new(),
            dir: None,
        }
    }
}

async fn run(
    context: &RecorderContext,
    record: &RecordingRecord,
    stop: &mut watch::Receiver<bool>,
) -> Result<Recorded, Failure> {
    let sid = &record.sid;
    let secret = crate::relay::no_secret(context.secret.as_ref())
        .map_err(Failure::early)?
        .clone();
    context
        .ownership
        .join(&record.reservation)
        .await
        .map_err(|e| {
            Failure::early(format!(
                "cannot claim the recording's reservation {}: {e}; run `ionctl record start {sid}` again",
                record.reservation
            ))
        })?;
    let started = SystemTime::now();
    let stamp = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let dir = context.dir.join(format!("{sid}-{stamp}"));
    std::fs::create_dir_all(&dir).map_err(|e| {
        Failure::early(format!(
            "cannot create {}: {e}; check [recorder] dir",
            dir.display()
        ))
    })?;
    let store = Store::connect(&context.etcd)
        .await
        .map_err(|e| Failure::early(e.to_string()))?;
    let key = store.keys().recording(sid);
    let dir_text = dir.display().to_string();
    store
        .update(&key, |r: &mut RecordingRecord| {
            r.state = RecordingState::Recording;
            r.started_at = Some(started);
            r.dir = Some(dir_text.clone());
            true
        })
        .await
        .map_err(|e| Failure::early(e.to_string()))?;
    tracing::info!(%sid, dir = %dir.display(), "recording");
    context.problem.send_replace(None);

    let (frames_tx, mut frames) = mpsc::channel(FRAME_QUEUE);
    let (stop_pulls, pulls_stopped) = watch::channel(false);
    let mut pulled: HashSet<String> = HashSet::new();
    let mut files = files::Files::new(&dir);
    let mut report = tokio::time::interval(REPORT_EVERY);
    let mut session_seen = false;
    let result = loop {
        tokio::select! {
            () = stopped(stop) => break Ok(()),
            received = frames.recv() => {
                let Some(received) = received else { continue };
                // Writes and fsyncs block: let the runtime move other tasks off this thread.
                if let Err(e) = tokio::task::block_in_place(|| files.take(received)) {
                    break Err(format!("writing the recording into {}: {e}; free space there (or point [recorder] dir elsewhere) and start the recording again", dir.display()));
                }
            }
            _ = report.tick() => {
                // New nodes of the session get a relay; a session that ended ends this.
                match sources(&store, sid, &context.node_id).await {
                    Ok(Some(origins)) => {
                        session_seen = true;
                        for origin in origins {
                            if pulled.insert(origin.node.clone()) {
                                let source = pull::Source {
                                    sid: sid.clone(),
                                    recorder: context.node_id.clone(),
                                    origin,
                                    secret: secret.clone(),
                                    bind_ip: context.bind_ip,
                                    media_ip: context.media_ip,
                                };
                                tokio::spawn(pull::pull(source, frames_tx.clone(), pulls_stopped.clone()));
                            }
                        }
                    }
                    Ok(None) if session_seen => break Ok(()),
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%sid, %error, "cannot read the recorded session's nodes"),
                }
                let summary = files.summary();
                let _ = store.update(&key, |r: &mut RecordingRecord| {
                    r.files = summary.clone();
                    true
                }).await;
            }
        }
    };
    let _ = stop_pulls.send(true);
    match result {
        Ok(()) => match tokio::task::block_in_place(|| files.finish()) {
            Ok(finished) => Ok(Recorded {
                files: finished,
                dir,
            }),
            Err(e) => Err(Failure {
                why: format!("finishing the recording in {}: {e}", dir.display()),
                files: files.summary(),
                dir: Some(dir),
            }),
        },
        Err(why) => {
            tokio::task::block_in_place(|| files.flush());
            Err(Failure {
                why,
                files: files.summary(),
                dir: Some(dir),
            })
        }
    }
}

/// The registered nodes of session `sid` to pull from; None when the session has no record.
async fn sources(
    store: &Store,
    sid: &str,
    this_node: &str,
) -> Result<Option<Vec<Origin>>, ion_cluster::store::StoreError> {
    let Some(session) = store
        .get::<SessionRecord>(&store.keys().session(sid))
        .await?
    else {
        return Ok(None);
    };
    let mut origins = Vec::new();
    for node in crate::relay::edge::sources(&session, this_node) {
        if let Some(record) = store.get::<NodeRecord>(&store.keys().node(&node)).await? {
            origins.push(Origin {
                node,
                signal_url: record.signal_url,
            });
        }
    }
    Ok(Some(origins))
}
