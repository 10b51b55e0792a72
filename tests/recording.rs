//! Recording: `ionctl record start` puts a recorder on a node of its own, which pulls the
//! session over the relay and writes one WebM per participant. Real etcd, real agents,
//! webrtc-rs publishers whose frames carry stamps (track, number, send time), so each file
//! is checked by what it holds: codecs, frame counts against what was sent, timestamps,
//! duration and the audio/video offset. `matroska-demuxer` reads the files back, and
//! `ffprobe` (installed by `scripts/install-deps`) must agree on the packet counts.

mod harness;
// The fake Cloud Storage server and a self-signing service-account key, for the uploads.
#[allow(dead_code)]
#[path = "gcs/fake.rs"]
mod fake;
#[allow(dead_code)]
#[path = "gcs/key.rs"]
mod key;

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::{AgentProcess, AgentSpec, Etcd, JoinConfig, Media, Peer, unique_prefix, wait_for};
use ion_cluster::loadtest::media::scan;
use ion_cluster::model::{NodeRecord, RecordingRecord, RecordingState, SessionRecord};
use ion_cluster::store::Store;
use matroska_demuxer::{Frame, MatroskaFile, TrackType};

const SECRET: &str = "recording-test-secret-0123456789abcdef";

/// etcd, one SFU node and one node free to record on, sharing the cluster secret.
struct Cluster {
    agents: Vec<AgentProcess>,
    store: Store,
    prefix: String,
    etcd: Etcd,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(test: &str) -> Cluster {
        Self::start_with(test, |spec| spec).await
    }

    /// `recorder` adds to the recorder node's configuration.
    async fn start_with(test: &str, recorder: impl Fn(AgentSpec) -> AgentSpec) -> Cluster {
        let etcd = Etcd::start().await;
        let prefix = unique_prefix(test);
        let store = etcd.store(&prefix).await;
        let dir = tempfile::tempdir().expect("a temp dir");
        let ids = [format!("{test}-sfu"), format!("{test}-recorder")];
        let agents: Vec<AgentProcess> = ids
            .iter()
            .map(|id| {
                let spec = spec(id, dir.path());
                let spec = if id.ends_with("-recorder") {
                    recorder(spec)
                } else {
                    spec
                };
                AgentProcess::start(&etcd, &prefix, spec)
            })
            .collect();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        harness::wait_registered(&store, &id_refs).await;
        Cluster {
            agents,
            store,
            prefix,
            etcd,
            dir,
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.agents[0].port)
    }

    /// Kills the recorder with -9 and starts it again with the same id, recording directory
    /// and `recorder` additions, as a crash and a restart by systemd would.
    fn restart_recorder(&mut self, recorder: impl Fn(AgentSpec) -> AgentSpec) {
        self.agents[1].kill9();
        let id = self.agents[1].node_id.clone();
        let spec = recorder(spec(&id, self.dir.path()));
        self.agents[1] = AgentProcess::start(&self.etcd, &self.prefix, spec);
    }

    async fn ionctl(&self, args: &[&str]) -> std::process::Output {
        let endpoint = self.etcd.endpoint();
        let mut all = vec!["--etcd", &endpoint, "--prefix", &self.prefix];
        all.extend_from_slice(args);
        harness::ionctl(&all).await
    }

    async fn recording(&self, sid: &str) -> Option<RecordingRecord> {
        self.store
            .get(&self.store.keys().recording(sid))
            .await
            .expect("reading etcd")
    }

    /// Waits until the recording of `sid` has files for `uids` of at least `ms` each.
    async fn wait_recorded(&self, sid: &str, uids: &[&str], ms: u64) -> RecordingRecord {
        wait_for(
            &format!("{ms} ms recorded of {uids:?}"),
            Duration::from_secs(ms / 1000 + 30),
            || async {
                let record = self.recording(sid).await?;
                let long_enough = uids.iter().all(|uid| {
                    record
                        .files
                        .iter()
                        .any(|f| f.uid == *uid && f.duration_ms >= ms)
                });
                long_enough.then_some(record)
            },
        )
        .await
    }
}

/// What one track of a file holds.
#[derive(Debug, Default)]
struct TrackFrames {
    /// Block timestamps (ms), in file order.
    timestamps: Vec<u64>,
    /// The publisher's send time of each frame (µs), from its first stamp.
    sent_us: Vec<u64>,
    keyframes: usize,
}

struct FileContents {
    codecs: Vec<String>,
    video: TrackFrames,
    audio: TrackFrames,
    duration_ms: f64,
    size: (u64, u64),
}

fn read_webm(path: &Path) -> FileContents {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut mkv = MatroskaFile::open(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut codecs = Vec::new();
    let (mut video_track, mut audio_track, mut size) = (0, 0, (0, 0));
    for track in mkv.tracks() {
        codecs.push(track.codec_id().to_owned());
        match track.track_type() {
            TrackType::Video => {
                video_track = track.track_number().get();
                let video = track.video().expect("video settings");
                size = (video.pixel_width().get(), video.pixel_height().get());
            }
            TrackType::Audio => audio_track = track.track_number().get(),
            other => panic!("unexpected track type {other:?}"),
        }
    }
    let duration_ms = mkv
        .info()
        .duration()
        .expect("a finished file has a Duration");
    let (mut video, mut audio) = (TrackFrames::default(), TrackFrames::default());
    let mut frame = Frame::default();
    let mut last = 0;
    while mkv
        .next_frame(&mut frame)
        .expect("the file reads to its end")
    {
        assert!(
            frame.timestamp >= last,
            "{}: timestamps go back from {last} to {}",
            path.display(),
            frame.timestamp
        );
        last = frame.timestamp;
        let into = if frame.track == video_track {
            &mut video
        } else {
            assert_eq!(frame.track, audio_track);
            &mut audio
        };
        into.timestamps.push(frame.timestamp);
        if frame.is_keyframe == Some(true) {
            into.keyframes += 1;
        }
        let mut first = None;
        scan(&frame.data, |stamp| {
            first.get_or_insert(stamp.sent_us);
        });
        into.sent_us
            .push(first.unwrap_or_else(|| panic!("a frame without a stamp in {}", path.display())));
    }
    FileContents {
        codecs,
        video,
        audio,
        duration_ms,
        size,
    }
}

/// Frames a publisher sent at `rate` per second between the first and last frame of `track`.
fn expected_frames(track: &TrackFrames, rate: f64) -> f64 {
    let first = *track.sent_us.first().expect("frames") as f64;
    let last = *track.sent_us.last().expect("frames") as f64;
    (last - first) / 1e6 * rate + 1.0
}

fn median(mut values: Vec<i64>) -> i64 {
    values.sort_unstable();
    values[values.len() / 2]
}

/// How much later than it was sent each frame sits in the file: send time (ms) minus block
/// timestamp, whose median is the file's start on the publisher's clock per track.
fn offsets(track: &TrackFrames) -> Vec<i64> {
    track
        .timestamps
        .iter()
        .zip(&track.sent_us)
        .map(|(ts, sent)| (*sent / 1000) as i64 - *ts as i64)
        .collect()
}

/// ffprobe's packet count per stream of `path`.
fn ffprobe_packets(path: &Path) -> Vec<u64> {
    let output = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-show_entries"])
        .arg("stream=codec_name,nb_read_packets")
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("running ffprobe (install it with `scripts/install-deps`)");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "ffprobe on {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            line.rsplit(',')
                .next()
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("ffprobe line {line:?}"))
        })
        .collect()
}

/// Alice and Bob publish audio and video in session `call`, and each receives the other.
/// The recorder's additions for uploading to `storage` with the service-account `key`.
fn uploading_to(
    storage: &fake::FakeStorage,
    key: &key::Key,
) -> impl Fn(AgentSpec) -> AgentSpec + use<> {
    let (url, key_file) = (storage.url(), key.path.display().to_string());
    move |spec: AgentSpec| {
        spec.set("recorder", "storage_url", url.clone())
            .set("recorder", "auth", "key-file")
            .set("recorder", "key_file", key_file.clone())
    }
}

/// Starts recording `call` into gs://rec-bucket/calls and waits for `ms` of alice and bob.
async fn record_into_bucket(cluster: &Cluster, ms: u64) {
    let args = [
        "record",
        "start",
        "call",
        "--bucket",
        "gs://rec-bucket/calls",
    ];
    let started = cluster.ionctl(&args).await;
    assert!(started.status.success(), "{}", harness::stderr(&started));
    cluster.wait_recorded("call", &["alice", "bob"], ms).await;
}

/// An agent of a recording test: its recordings go under `dir/<id>`.
fn spec(id: &str, dir: &Path) -> AgentSpec {
    AgentSpec::new(id)
        .set("auth", "secret", SECRET)
        .set("webrtc", "workers", 1)
        .set("recorder", "dir", dir.join(id).display().to_string())
}

async fn call(cluster: &Cluster) -> (Peer, Peer) {
    let alice = Peer::join(&cluster.url(), "call", "alice", JoinConfig::default())
        .await
        .expect("alice joins");
    alice.publish(Media::BOTH).await.expect("alice publishes");
    let bob = Peer::join(&cluster.url(), "call", "bob", JoinConfig::default())
        .await
        .expect("bob joins");
    bob.publish(Media::BOTH).await.expect("bob publishes");
    bob.wait_flowing_from("alice").await;
    alice.wait_flowing_from("bob").await;
    (alice, bob)
}

/// The call is untouched by what happened to its recording: Bob still receives, and
/// neither peer saw a problem.
async fn call_goes_on(alice: &Peer, bob: &Peer) {
    let before = bob.remote_tracks().iter().map(|t| t.packets).sum::<u64>();
    wait_for("bob to keep receiving", Duration::from_secs(5), || async {
        let now = bob.remote_tracks().iter().map(|t| t.packets).sum::<u64>();
        (now > before + 20).then_some(())
    })
    .await;
    alice.assert_no_problems();
    bob.assert_no_problems();
}

/// Starts recording `call`, which must succeed.
async fn record_call(cluster: &Cluster) {
    let started = cluster.ionctl(&["record", "start", "call"]).await;
    assert!(started.status.success(), "{}", harness::stderr(&started));
}

/// The stamped frames of a file that was never finished, as far as they read: (block
/// timestamp ms, send time µs) per frame, all tracks.
fn read_unfinished(path: &Path) -> Vec<(u64, u64)> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut mkv = MatroskaFile::open(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut frames = Vec::new();
    let mut frame = Frame::default();
    while let Ok(true) = mkv.next_frame(&mut frame) {
        let mut first = None;
        scan(&frame.data, |stamp| {
            first.get_or_insert(stamp.sent_us);
        });
        frames.push((frame.timestamp, first.expect("a stamped frame")));
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_publishers_are_recorded_into_a_webm_each_checked_by_content() {
    let cluster = Cluster::start("rec").await;
    let (alice, bob) = call(&cluster).await;
    record_call(&cluster).await;
    let record = cluster
        .recording("call")
        .await
        .expect("the recording's record");
    // A dedicated class: the recorder is the node that carries nothing else.
    assert_eq!(record.node, "rec-recorder");
    let session: SessionRecord = cluster
        .store
        .get(&cluster.store.keys().session("call"))
        .await
        .expect("reading etcd")
        .expect("the session");
    assert_eq!(session.node, "rec-sfu");

    cluster
        .wait_recorded("call", &["alice", "bob"], 10_000)
        .await;
    let stopped = cluster
        .ionctl(&["record", "stop", "call", "-o", "json"])
        .await;
    assert!(stopped.status.success(), "{}", harness::stderr(&stopped));
    let record = cluster.recording("call").await.expect("the record");
    assert_eq!(record.state, RecordingState::Done, "{record:?}");
    let dir = PathBuf::from(record.dir.as_deref().expect("the recording's directory"));
    assert!(dir.starts_with(cluster.dir.path()), "{}", dir.display());
    let mut names: Vec<&str> = record.files.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["alice.webm", "bob.webm"], "{record:?}");

    for file in &record.files {
        let path = dir.join(&file.name);
        let contents = read_webm(&path);
        assert_eq!(contents.codecs, ["V_VP8", "A_OPUS"], "{}", file.name);
        // The generator's keyframes are 640 × 360.
        assert_eq!(contents.size, (640, 360));
        let (video, audio) = (&contents.video, &contents.audio);
        assert!(video.keyframes >= 1);
        assert!(
            video.timestamps.first() == Some(&0) || audio.timestamps.first() == Some(&0),
            "the file starts at 0"
        );
        for (track, got, rate) in [
            ("video", video, f64::from(harness::VIDEO_FPS)),
            ("audio", audio, f64::from(harness::AUDIO_PPS)),
        ] {
            let expected = expected_frames(got, rate);
            let count = got.timestamps.len() as f64;
            assert!(
                (count - expected).abs() <= expected * 0.02,
                "{}: {count} {track} frames where {expected:.0} were sent",
                file.name
            );
        }
        let last = *video
            .timestamps
            .last()
            .max(audio.timestamps.last())
            .expect("frames");
        assert!(last >= 10_000, "{}: only {last} ms", file.name);
        assert!(
            (contents.duration_ms - last as f64).abs() <= 50.0,
            "{}: Duration {} ms, last frame at {last} ms",
            file.name,
            contents.duration_ms
        );
        let av = median(offsets(video)) - median(offsets(audio));
        assert!(
            av.abs() < 100,
            "{}: audio and video {av} ms apart",
            file.name
        );
        eprintln!(
            "{}: {} video and {} audio frames over {last} ms, A/V {av} ms",
            file.name,
            video.timestamps.len(),
            audio.timestamps.len()
        );
        assert_eq!(
            ffprobe_packets(&path),
            [video.timestamps.len() as u64, audio.timestamps.len() as u64],
            "{}",
            file.name
        );
        assert_eq!(
            std::fs::metadata(&path).expect("the file").len(),
            file.bytes
        );
    }
    // The reservation went with the recording: the recorder is free again.
    let reservation = cluster
        .store
        .get::<SessionRecord>(&cluster.store.keys().session(&record.reservation))
        .await
        .expect("reading etcd");
    assert!(reservation.is_none(), "{reservation:?}");
    alice.assert_no_problems();
    bob.assert_no_problems();
}

/// `record list` shows the recording; bad input gets a clear error and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_commands_say_what_is_wrong() {
    let cluster = Cluster::start("rec-cli").await;
    let bad_bucket = cluster
        .ionctl(&["record", "start", "call", "--bucket", "s3://nope"])
        .await;
    assert_eq!(bad_bucket.status.code(), Some(2));
    assert!(harness::stderr(&bad_bucket).contains("gs://BUCKET"));
    let unknown = cluster.ionctl(&["record", "stop", "nobody"]).await;
    assert_eq!(unknown.status.code(), Some(2));
    assert!(harness::stderr(&unknown).contains("has no recording"));

    let started = cluster.ionctl(&["record", "start", "call"]).await;
    assert!(started.status.success(), "{}", harness::stderr(&started));
    let again = cluster.ionctl(&["record", "start", "call"]).await;
    assert_eq!(again.status.code(), Some(2));
    assert!(harness::stderr(&again).contains("already being recorded"));

    // Once stopped, it can be started again.
    let stopped = cluster.ionctl(&["record", "stop", "call"]).await;
    assert!(stopped.status.success(), "{}", harness::stderr(&stopped));
    let restarted = cluster.ionctl(&["record", "start", "call"]).await;
    assert!(
        restarted.status.success(),
        "{}",
        harness::stderr(&restarted)
    );

    // A recording takes a node of its own: the second takes the other idle node, and a
    // third finds none (exit 4), leaving its demand for the autoscaler.
    let second = cluster.ionctl(&["record", "start", "other"]).await;
    assert!(second.status.success(), "{}", harness::stderr(&second));
    let third = cluster.ionctl(&["record", "start", "third"]).await;
    assert_eq!(third.status.code(), Some(4), "{}", harness::stderr(&third));
    assert!(harness::stderr(&third).contains("no node is free to record"));
    let pending: Option<ion_cluster::model::PendingDemand> = cluster
        .store
        .get(&cluster.store.keys().pending("third.rec"))
        .await
        .expect("reading etcd");
    assert_eq!(
        pending.map(|p| p.class),
        Some(ion_cluster::model::SessionClass::Recording)
    );
    assert!(cluster.recording("third").await.is_none());

    let listed = cluster.ionctl(&["record", "list", "-o", "json"]).await;
    assert!(listed.status.success());
    let records: Vec<RecordingRecord> =
        serde_json::from_slice(&listed.stdout).expect("record list -o json");
    assert_eq!(records.len(), 2);
    let nodes: std::collections::HashSet<&str> = records.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(nodes.len(), 2, "two recordings on one node: {records:?}");
    assert_eq!(records[0].sid, "call");
    let table = cluster.ionctl(&["record", "list"]).await;
    assert!(harness::stdout(&table).contains("rec-cli-recorder"));
}

/// A participant who leaves and rejoins goes on in the same file: one file for Alice that
/// reads to its end, with her frames from before and after the gap, in order, and the gap
/// where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_who_rejoins_goes_on_in_the_same_file() {
    let cluster = Cluster::start("rec-rejoin").await;
    let (alice, bob) = call(&cluster).await;
    record_call(&cluster).await;
    cluster
        .wait_recorded("call", &["alice", "bob"], 3_000)
        .await;
    alice.close().await;
    let left_us = ion_cluster::loadtest::media::now_us();
    let before = cluster.recording("call").await.expect("the record");
    let bob_ms = |r: &RecordingRecord| {
        r.files
            .iter()
            .find(|f| f.uid == "bob")
            .map_or(0, |f| f.duration_ms)
    };
    // Bob goes on alone for two seconds (his file grows), then Alice is back.
    let bob_before = bob_ms(&before);
    wait_for("bob's file to grow", Duration::from_secs(20), || async {
        let r = cluster.recording("call").await?;
        (bob_ms(&r) >= bob_before + 2_000).then_some(())
    })
    .await;
    let alice = Peer::join(&cluster.url(), "call", "alice", JoinConfig::default())
        .await
        .expect("alice joins again");
    alice
        .publish(Media::BOTH)
        .await
        .expect("alice publishes again");
    let back_us = ion_cluster::loadtest::media::now_us();
    bob.wait_flowing_from("alice").await;
    let alice_ms = |r: &RecordingRecord| {
        r.files
            .iter()
            .filter(|f| f.uid == "alice")
            .map(|f| f.duration_ms)
            .max()
            .unwrap_or(0)
    };
    let gap_end = alice_ms(&cluster.recording("call").await.expect("the record"));
    wait_for("alice recorded again", Duration::from_secs(20), || async {
        let r = cluster.recording("call").await?;
        (alice_ms(&r) >= gap_end + 3_000).then_some(())
    })
    .await;
    let stopped = cluster.ionctl(&["record", "stop", "call"]).await;
    assert!(stopped.status.success(), "{}", harness::stderr(&stopped));
    let record = cluster.recording("call").await.expect("the record");
    let mut names: Vec<&str> = record.files.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["alice.webm", "bob.webm"], "{record:?}");
    let path = PathBuf::from(record.dir.as_deref().expect("a directory")).join("alice.webm");
    let contents = read_webm(&path);
    let sent: Vec<u64> = contents
        .video
        .sent_us
        .iter()
        .chain(&contents.audio.sent_us)
        .copied()
        .collect();
    assert!(
        sent.iter().any(|s| *s < left_us),
        "no frames from before she left"
    );
    assert!(
        sent.iter().any(|s| *s >= back_us),
        "no frames from after she came back"
    );
    // The gap is in the file's time line, as long as she was away (give or take the
    // keyframe her return waited for).
    let video = &contents.video.timestamps;
    let gap = video.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let away_ms = (back_us - left_us) / 1000;
    assert!(
        gap + 500 >= away_ms && gap <= away_ms + 2_000,
        "the largest gap is {gap} ms; she was away {away_ms} ms"
    );
    assert_eq!(
        ffprobe_packets(&path),
        [video.len() as u64, contents.audio.timestamps.len() as u64]
    );
    bob.assert_no_problems();
    alice.assert_no_problems();
}

/// kill -9 of the recorder mid-session: each file on its disk reads, without a finish, up to
/// a few seconds before the kill (clusters reach the file whole and are fsynced), and the
/// call goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_recorder_leaves_files_readable_up_to_its_last_seconds() {
    let mut cluster = Cluster::start("rec-kill").await;
    let (alice, bob) = call(&cluster).await;
    record_call(&cluster).await;
    let record = cluster
        .wait_recorded("call", &["alice", "bob"], 6_000)
        .await;
    cluster.agents[1].kill9();
    let killed_us = ion_cluster::loadtest::media::now_us();
    let dir = PathBuf::from(record.dir.as_deref().expect("the recording's directory"));
    for uid in ["alice", "bob"] {
        let path = dir.join(format!("{uid}.webm"));
        let frames = read_unfinished(&path);
        assert!(
            frames.windows(2).all(|w| w[0].0 <= w[1].0),
            "{uid}: timestamps go back"
        );
        let last_sent = frames.iter().map(|f| f.1).max().expect("frames");
        let lost_ms = (killed_us - last_sent) / 1000;
        eprintln!(
            "{uid}: {} frames read, the last sent {lost_ms} ms before the kill",
            frames.len()
        );
        assert!(
            lost_ms <= 3_000,
            "{uid}: the file ends {lost_ms} ms before the kill"
        );
        assert!(frames.len() > 200, "{uid}: only {} frames", frames.len());
    }
    // Once the recorder's lease has lapsed, the record says it is lost, and `record stop`
    // marks it failed with the reason.
    let recorder = cluster.store.keys().node("rec-kill-recorder");
    wait_for(
        "the recorder's node to lapse",
        Duration::from_secs(20),
        || async {
            let gone = cluster
                .store
                .get::<NodeRecord>(&recorder)
                .await
                .ok()?
                .is_none();
            gone.then_some(())
        },
    )
    .await;
    let listed = cluster.ionctl(&["record", "list"]).await;
    assert!(
        harness::stdout(&listed).contains("lost"),
        "{}",
        harness::stdout(&listed)
    );
    let stopped = cluster.ionctl(&["record", "stop", "call"]).await;
    assert_eq!(
        stopped.status.code(),
        Some(1),
        "{}",
        harness::stderr(&stopped)
    );
    assert!(
        harness::stderr(&stopped).contains("is gone"),
        "{}",
        harness::stderr(&stopped)
    );
    call_goes_on(&alice, &bob).await;
}

/// The recorder's disk fills (a 128 KiB tmpfs made by the test): the recording stops as
/// failed with the cause in its record, each file reads to its end, and the call is not
/// touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_recording_with_a_clear_error_and_readable_files() {
    let mount = tempfile::tempdir().expect("a temp dir");
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=128k", "tmpfs"])
        .arg(mount.path())
        .status()
        .expect("running mount");
    assert!(
        status.success(),
        "mounting a 128 KiB tmpfs needs root (as .ci/run runs); run the test as root"
    );
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mount.path());
    let on_tmpfs = mount.path().display().to_string();
    let cluster = Cluster::start_with("rec-full", |spec| {
        spec.set("recorder", "dir", on_tmpfs.clone())
    })
    .await;
    let (alice, bob) = call(&cluster).await;
    record_call(&cluster).await;
    let record = wait_for("the recording to fail", Duration::from_secs(60), || async {
        cluster
            .recording("call")
            .await
            .filter(|r| r.state == RecordingState::Failed)
    })
    .await;
    let error = record.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("No space left on device") && error.contains("free space"),
        "{error}"
    );
    let log = cluster.agents[1].log();
    assert!(
        log.contains("recording failed") && log.contains("No space left"),
        "{log}"
    );
    // The recorder's node record says so too, and `ionctl nodes` shows it.
    let recorder = cluster.store.keys().node("rec-full-recorder");
    wait_for(
        "the node record's problem",
        Duration::from_secs(15),
        || async {
            let node: NodeRecord = cluster.store.get(&recorder).await.ok()??;
            node.problem.filter(|p| p.contains("No space left"))
        },
    )
    .await;
    let nodes = cluster.ionctl(&["nodes"]).await;
    assert!(
        harness::stdout(&nodes).contains("No space left"),
        "{}",
        harness::stdout(&nodes)
    );
    let dir = PathBuf::from(record.dir.as_deref().expect("the recording's directory"));
    assert_eq!(record.files.len(), 2, "{record:?}");
    for file in &record.files {
        let path = dir.join(&file.name);
        // Not finished, but whole up to its last cluster: the reader reaches the end of the
        // file without an error.
        let bytes = std::fs::read(&path).expect("the file");
        let mut mkv = MatroskaFile::open(std::io::Cursor::new(bytes)).expect("a WebM file");
        let mut frame = Frame::default();
        let mut frames = 0;
        loop {
            match mkv.next_frame(&mut frame) {
                Ok(true) => frames += 1,
                Ok(false) => break,
                Err(e) => panic!("{}: unreadable after {frames} frames: {e}", file.name),
            }
        }
        assert!(frames > 0, "{}", file.name);
    }
    let listed = cluster.ionctl(&["record", "list"]).await;
    assert!(
        harness::stdout(&listed).contains("failed"),
        "{}",
        harness::stdout(&listed)
    );
    call_goes_on(&alice, &bob).await;
}

/// The benchmark of `scripts/bench-record`: for 1, 10 and 50 participants that publish
/// (~500 kbit/s VP8 at 30 fps and Opus, generated) and subscribe to nothing, the recorder's
/// CPU per recorded stream and the megabytes it writes per minute, over a window of
/// `ION_BENCH_SECONDS` (20). Participant counts: `ION_BENCH_PARTICIPANTS` (1,10,50).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench-record"]
async fn recorder_cost_per_stream_and_bytes_per_minute() {
    let seconds: u64 = std::env::var("ION_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let counts: Vec<usize> = std::env::var("ION_BENCH_PARTICIPANTS")
        .unwrap_or_else(|_| "1,10,50".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let cluster = Cluster::start("rec-bench").await;
    let recorder_pid = cluster.agents[1].pid();
    // The same run's baseline: the SFU node forwarding the same streams to one subscriber,
    // the recorder's relay.
    let sfu_pid = cluster.agents[0].pid();
    let mut rows = Vec::new();
    for n in counts {
        let sid = format!("bench-{n}");
        let config = JoinConfig {
            no_subscribe: true,
            ..JoinConfig::default()
        };
        let mut peers = Vec::new();
        for i in 0..n {
            let peer = Peer::join(&cluster.url(), &sid, &format!("p{i}"), config)
                .await
                .expect("a participant joins");
            // Two full packets a frame at 30 fps: ~500 kbit/s, a camera's rate.
            peer.set_video_packets_per_frame(2);
            peer.publish(Media::BOTH).await.expect("it publishes");
            peers.push(peer);
        }
        let started = cluster
            .ionctl(&["record", "start", &sid, "--tracks", &(2 * n).to_string()])
            .await;
        assert!(started.status.success(), "{}", harness::stderr(&started));
        let uids: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
        let uid_refs: Vec<&str> = uids.iter().map(String::as_str).collect();
        let before = cluster.wait_recorded(&sid, &uid_refs, 2_000).await;
        let cpu_before = harness::cpu_seconds(recorder_pid);
        let sfu_before = harness::cpu_seconds(sfu_pid);
        let wall = std::time::Instant::now();
        // The measurement window: the recorder runs on its own, nothing to wait for.
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let cpu = harness::cpu_seconds(recorder_pid) - cpu_before;
        let sfu_cpu = harness::cpu_seconds(sfu_pid) - sfu_before;
        let elapsed = wall.elapsed().as_secs_f64();
        let after = cluster.recording(&sid).await.expect("the record");
        let bytes = after.bytes().saturating_sub(before.bytes()) as f64;
        let stopped = cluster.ionctl(&["record", "stop", &sid]).await;
        assert!(stopped.status.success(), "{}", harness::stderr(&stopped));
        let streams = (2 * n) as f64;
        let row = format!(
            "| {n} | {streams} | {:.1}% | {:.2}% | {:.2}% | {:.2}× | {:.1} | {:.2} |",
            100.0 * cpu / elapsed,
            100.0 * cpu / elapsed / streams,
            100.0 * sfu_cpu / elapsed / streams,
            cpu / sfu_cpu.max(1e-9),
            bytes / 1e6 / elapsed * 60.0,
            bytes / 1e6 / elapsed * 60.0 / n as f64,
        );
        eprintln!("{row}");
        rows.push(row);
        for peer in peers {
            peer.close().await;
        }
    }
    eprintln!(
        "\n| participants | streams | recorder CPU (of a core) | per stream | SFU per stream (same run) | recorder / SFU | MB written per minute | per participant |\n|---|---|---|---|---|---|---|---|"
    );
    for row in rows {
        eprintln!("{row}");
    }
}

/// With `--bucket`, the files go up to Cloud Storage when the recording stops (a fake JSON
/// API that checks the resumable protocol and the recorder's signed token). Alice's upload
/// meets a 503 and then a connection broken half-way through a chunk, and resumes from what
/// the session holds; Bob's object comes out corrupt, so his upload fails and his local file
/// stays. Only confirmed files are deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_upload_resuming_after_faults_and_keep_what_did_not_match() {
    let key = key::service_account_key();
    let storage = fake::FakeStorage::start(&["rec-bucket"], key::signed_by(&key)).await;
    // Alice's file: a 503, the status query, a broken connection, the status query, the rest.
    storage.fault_put(1, fake::Fault::Fail(503));
    storage.fault_put(3, fake::Fault::Break);
    // Bob's file (uploaded after Alice's, in name order): its object comes out corrupt.
    storage.fault_put(6, fake::Fault::Corrupt);
    let recorder = uploading_to(&storage, &key);
    let cluster = Cluster::start_with("rec-upload", &recorder).await;
    let (alice, bob) = call(&cluster).await;
    record_into_bucket(&cluster, 3_000).await;
    let stopped = cluster.ionctl(&["record", "stop", "call"]).await;
    assert!(stopped.status.success(), "{}", harness::stderr(&stopped));
    let record = wait_for("the uploads to end", Duration::from_secs(60), || async {
        cluster
            .recording("call")
            .await
            .filter(|r| !r.state.is_active() && r.state != RecordingState::Uploading)
    })
    .await;
    assert_eq!(storage.rejections(), Vec::<String>::new());
    assert_eq!(record.state, RecordingState::Failed, "{record:?}");
    let error = record.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("bob.webm") && error.contains("local file is kept"),
        "{error}"
    );
    let dir = PathBuf::from(record.dir.as_deref().expect("a directory"));
    let folder = dir
        .file_name()
        .expect("a name")
        .to_string_lossy()
        .into_owned();

    let alice_file = record
        .files
        .iter()
        .find(|f| f.uid == "alice")
        .expect("alice's file");
    let object = format!("calls/{folder}/alice.webm");
    assert_eq!(
        alice_file.uploaded.as_deref(),
        Some(format!("gs://rec-bucket/{object}").as_str())
    );
    assert!(
        !dir.join("alice.webm").exists(),
        "an uploaded file is deleted"
    );
    let bytes = storage
        .object("rec-bucket", &object)
        .expect("alice's object");
    assert_eq!(bytes.len() as u64, alice_file.bytes);
    let mut mkv = MatroskaFile::open(std::io::Cursor::new(bytes)).expect("a WebM object");
    let mut frame = Frame::default();
    let mut frames = 0;
    while mkv
        .next_frame(&mut frame)
        .expect("the object reads to its end")
    {
        frames += 1;
    }
    assert!(frames > 200, "{frames} frames in alice's object");
    // Both faults were met and got over: a status query follows each.
    let seen = storage.seen();
    assert!(seen.len() >= 6, "{seen:?}");

    let bob_file = record
        .files
        .iter()
        .find(|f| f.uid == "bob")
        .expect("bob's file");
    assert_eq!(bob_file.uploaded, None);
    let kept = dir.join("bob.webm");
    assert_eq!(
        std::fs::metadata(&kept).expect("bob's file is kept").len(),
        bob_file.bytes
    );
    let listed = cluster.ionctl(&["record", "list"]).await;
    assert!(
        harness::stdout(&listed).contains("1/2 to gs://rec-bucket/calls"),
        "{}",
        harness::stdout(&listed)
    );
    alice.assert_no_problems();
    bob.assert_no_problems();
}

/// The recorder is killed while Cloud Storage refuses its uploads, and restarted: it finds
/// the recording still `uploading` with its files on disk, uploads them, deletes them, and
/// the recording ends done.
#[tokio::test]
async fn an_upload_cut_short_by_a_restart_is_resumed() {
    let key = key::service_account_key();
    let storage = fake::FakeStorage::start(&["rec-bucket"], key::signed_by(&key)).await;
    let recorder = uploading_to(&storage, &key);
    let mut cluster = Cluster::start_with("rec-resume", &recorder).await;
    let (_alice, _bob) = call(&cluster).await;
    record_into_bucket(&cluster, 2_000).await;
    storage.fault_every_put(fake::Fault::Fail(503));
    let stopped = cluster
        .ionctl(&["record", "stop", "call", "--wait", "0s"])
        .await;
    assert!(
        harness::stderr(&stopped).len() < 400,
        "{}",
        harness::stderr(&stopped)
    );
    wait_for(
        "the upload to be refused",
        Duration::from_secs(30),
        || async {
            let record = cluster.recording("call").await?;
            (record.state == RecordingState::Uploading && storage.puts() >= 2).then_some(())
        },
    )
    .await;
    cluster.restart_recorder(&recorder);
    storage.heal();
    let record = wait_for(
        "the resumed upload to end",
        Duration::from_secs(60),
        || async {
            cluster
                .recording("call")
                .await
                .filter(|r| r.state != RecordingState::Uploading)
        },
    )
    .await;
    assert_eq!(record.state, RecordingState::Done, "{record:?}");
    assert_eq!(storage.rejections(), Vec::<String>::new());
    let dir = PathBuf::from(record.dir.as_deref().expect("a directory"));
    let folder = dir
        .file_name()
        .expect("a name")
        .to_string_lossy()
        .into_owned();
    for uid in ["alice", "bob"] {
        let file = record.files.iter().find(|f| f.uid == uid).expect("a file");
        let object = format!("calls/{folder}/{}", file.name);
        assert_eq!(
            file.uploaded.as_deref(),
            Some(format!("gs://rec-bucket/{object}").as_str())
        );
        let bytes = storage.object("rec-bucket", &object).expect("the object");
        assert_eq!(bytes.len() as u64, file.bytes);
        assert!(
            !dir.join(&file.name).exists(),
            "an uploaded file is deleted"
        );
    }
    assert!(
        cluster.agents[1]
            .log()
            .contains("resuming an upload a restart cut short")
    );
}
