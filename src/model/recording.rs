//! `recordings/<sid>`: one recording of a session. `ionctl record start` writes it with the
//! recorder node chosen; from then on the recorder writes its progress into it and
//! `ionctl record stop` sets `stop_requested`. Both sides update it with a guarded
//! read-modify-write ([`crate::store::Store::update`]), so neither loses the other's field.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Where a recording is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// Asked for; the recorder node has not picked it up yet.
    Requested,
    Recording,
    /// Stopped; the files are complete and go up to the bucket, if the recording has one.
    Uploading,
    /// Stopped; the files are complete on the recorder's disk, or uploaded to the bucket.
    Done,
    /// Stopped by an error (`error` says which); the files hold what was written before it.
    Failed,
}

impl RecordingState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Requested => "requested",
            RecordingState::Recording => "recording",
            RecordingState::Uploading => "uploading",
            RecordingState::Done => "done",
            RecordingState::Failed => "failed",
        }
    }

    /// Still to be recorded or recording (an upload after the stop is not).
    pub fn is_active(self) -> bool {
        matches!(self, RecordingState::Requested | RecordingState::Recording)
    }
}

/// One WebM file of a recording: one participant's tracks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedFile {
    /// File name in the recorder's directory for the session (`<uid>.webm`).
    pub name: String,
    /// The participant it holds.
    pub uid: String,
    pub bytes: u64,
    pub duration_ms: u64,
    /// `gs://bucket/object` once the upload is confirmed (size and CRC32C match); the
    /// local file is deleted then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingRecord {
    pub sid: String,
    /// The recorder node.
    pub node: String,
    /// The session id of the recorder's capacity reservation (class `recording`).
    pub reservation: String,
    pub state: RecordingState,
    /// `gs://bucket[/prefix]` to upload to; local only when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default)]
    pub stop_requested: bool,
    #[serde(with = "super::time")]
    pub requested_at: SystemTime,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::time::option"
    )]
    pub started_at: Option<SystemTime>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::time::option"
    )]
    pub stopped_at: Option<SystemTime>,
    /// Where the files are on the recorder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    #[serde(default)]
    pub files: Vec<RecordedFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RecordingRecord {
    /// The reservation id of the recording of `sid`: ids end in `.rec` only for recordings.
    pub fn reservation_for(sid: &str) -> String {
        format!("{sid}.rec")
    }

    /// Files uploaded, of all.
    pub fn uploaded(&self) -> usize {
        self.files.iter().filter(|f| f.uploaded.is_some()).count()
    }

    pub fn bytes(&self) -> u64 {
        // Saturating: sizes come from etcd, and a sum that overflows must not panic
        // (found by `fuzz_tests::records::recording_records`).
        self.files
            .iter()
            .fold(0, |sum, f| sum.saturating_add(f.bytes))
    }

    /// Recorded time so far (or in all, once stopped).
    pub fn duration(&self, now: SystemTime) -> std::time::Duration {
        match self.started_at {
            Some(start) => self
                .stopped_at
                .unwrap_or(now)
                .duration_since(start)
                .unwrap_or_default(),
            None => std::time::Duration::ZERO,
        }
    }
}
