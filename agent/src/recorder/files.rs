//! From received frames to one WebM per participant. A participant's file opens on its
//! first video keyframe (or its first audio frame when it publishes no video), so it starts
//! decodable; the video track takes that keyframe's size. Frames wait in a short reorder
//! window and go into the file in capture order, so audio and video interleave and line up.
//! A participant who leaves and rejoins goes on in the same file; a track kind the file was
//! opened without (video turned on later) starts the next part, `<uid>-2.webm`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ion_cluster::model::RecordedFile;
use str0m::media::MediaKind;

use super::pull::{Frame, Received};
use super::webm::{TrackKind, WebmWriter};

/// How long a frame waits for earlier frames of other tracks before it is written. A
/// browser on a busy machine sends its audio in bursts up to a few hundred milliseconds
/// behind its video; a second holds them, and costs only memory and the last second of a
/// crash.
const REORDER_WINDOW: Duration = Duration::from_secs(1);
/// How long a participant's audio waits for its video's first keyframe before the file
/// opens with audio only.
const VIDEO_WAIT: Duration = Duration::from_secs(3);

/// The files of one recording.
pub struct Files {
    dir: PathBuf,
    participants: HashMap<String, Participant>,
    /// Finished parts, for the record.
    done: Vec<RecordedFile>,
}

struct Participant {
    uid: String,
    /// Track kinds the participant has announced and not ended.
    kinds: Vec<MediaKind>,
    /// Frames held before the file opens.
    early: Vec<Frame>,
    file: Option<OpenFile>,
    /// Parts opened so far.
    parts: u32,
}

struct OpenFile {
    name: String,
    writer: WebmWriter,
    /// Capture time of the file's first frame: timestamp 0.
    epoch: SystemTime,
    video: Option<u64>,
    audio: Option<u64>,
    /// Frames by capture time, not yet written.
    pending: BTreeMap<(SystemTime, u64), Frame>,
    next_seq: u64,
    /// Per track number, the last timestamp written and where that frame ends: a track's
    /// timestamps strictly increase, as players want (two frames of a track at one
    /// millisecond are refused), and audio frames never overlap.
    last_ms: HashMap<u64, (u64, u64)>,
}

impl Files {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            participants: HashMap::new(),
            done: Vec::new(),
        }
    }

    /// Takes one frame or track end. An error is the file system's (a full disk): the
    /// recording must stop.
    pub fn take(&mut self, received: Received) -> std::io::Result<()> {
        match received {
            Received::Added { stream, kind } => {
                let participant = participant(&mut self.participants, &stream);
                if !participant.kinds.contains(&kind) {
                    participant.kinds.push(kind);
                }
                Ok(())
            }
            Received::Frame(frame) => {
                let participant = participant(&mut self.participants, &frame.stream);
                if !participant.kinds.contains(&frame.kind) {
                    participant.kinds.push(frame.kind);
                }
                participant.take(&self.dir, frame, &mut self.done)
            }
            Received::Ended { stream, kind } => {
                if let Some(p) = self.participants.get_mut(&stream) {
                    p.kinds.retain(|k| *k != kind);
                }
                Ok(())
            }
        }
    }

    /// The files so far: finished parts and open ones as they stand.
    pub fn summary(&self) -> Vec<RecordedFile> {
        let mut files = self.done.clone();
        for p in self.participants.values() {
            if let Some(file) = &p.file {
                files.push(RecordedFile {
                    name: file.name.clone(),
                    uid: p.uid.clone(),
                    bytes: file.writer.bytes_written(),
                    duration_ms: file.writer.duration_ms(),
                    uploaded: None,
                });
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        files
    }

    /// Writes everything held and finishes every file. Goes on past a failing file, and
    /// returns the first error.
    pub fn finish(&mut self) -> std::io::Result<Vec<RecordedFile>> {
        let mut first_error = None;
        for p in self.participants.values_mut() {
            if let Err(e) = p.close(&mut self.done) {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(self.summary()),
        }
    }

    /// Writes what the reorder windows hold, without finishing the files: what a stop on
    /// an error keeps.
    pub fn flush(&mut self) {
        for p in self.participants.values_mut() {
            if let Some(file) = &mut p.file {
                let _ = file.drain(None).and_then(|()| file.writer.flush_cluster());
            }
        }
    }
}

/// The participant whose msid stream id is `stream` (its uid).
fn participant<'a>(
    participants: &'a mut HashMap<String, Participant>,
    stream: &str,
) -> &'a mut Participant {
    let uid = if stream.is_empty() { "unknown" } else { stream };
    participants
        .entry(uid.to_owned())
        .or_insert_with(|| Participant::new(uid.to_owned()))
}

impl Participant {
    fn new(uid: String) -> Self {
        Self {
            uid,
            kinds: Vec::new(),
            early: Vec::new(),
            file: None,
            parts: 0,
        }
    }

    fn take(
        &mut self,
        dir: &Path,
        frame: Frame,
        done: &mut Vec<RecordedFile>,
    ) -> std::io::Result<()> {
        let fits = self.file.as_ref().is_none_or(|f| f.has(frame.kind));
        if !fits {
            // A kind the open part has no track for: finish it and begin the next.
            self.close(done)?;
        }
        if self.file.is_none() {
            self.early.push(frame);
            return self.open_when_ready(dir);
        }
        let file = self.file.as_mut().expect("checked above");
        file.push(frame);
        file.drain(Some(REORDER_WINDOW))
    }

    /// Opens the file once it can start on a keyframe: the first video keyframe, or audio
    /// alone when no video comes within [`VIDEO_WAIT`].
    fn open_when_ready(&mut self, dir: &Path) -> std::io::Result<()> {
        let keyframe = self
            .early
            .iter()
            .position(|f| f.kind == MediaKind::Video && f.keyframe);
        let first = self.early.first().map(|f| f.captured);
        let latest = self.early.last().map(|f| f.captured);
        let waited_enough = match (first, latest) {
            (Some(first), Some(latest)) => {
                latest.duration_since(first).unwrap_or_default() >= VIDEO_WAIT
            }
            _ => false,
        };
        let has_video = self.kinds.contains(&MediaKind::Video);
        let (start, tracks) = match keyframe {
            Some(i) => {
                let size = vp8_size(&self.early[i].data).unwrap_or((640, 480));
                let mut tracks = vec![TrackKind::Vp8 {
                    width: size.0,
                    height: size.1,
                }];
                if self.kinds.contains(&MediaKind::Audio) {
                    tracks.push(TrackKind::Opus { channels: 2 });
                }
                (self.early[i].captured, tracks)
            }
            None if !has_video || waited_enough => {
                let Some(first) = first else { return Ok(()) };
                (first, vec![TrackKind::Opus { channels: 2 }])
            }
            None => {
                // Audio waits for the video's keyframe, but not for ever.
                return Ok(());
            }
        };
        self.parts += 1;
        let name = if self.parts == 1 {
            format!("{}.webm", file_stem(&self.uid))
        } else {
            format!("{}-{}.webm", file_stem(&self.uid), self.parts)
        };
        let writer = WebmWriter::create(&dir.join(&name), &tracks)?;
        let mut file = OpenFile {
            name,
            writer,
            epoch: start,
            video: tracks
                .iter()
                .position(|t| matches!(t, TrackKind::Vp8 { .. }))
                .map(|i| i as u64 + 1),
            audio: tracks
                .iter()
                .position(|t| matches!(t, TrackKind::Opus { .. }))
                .map(|i| i as u64 + 1),
            pending: BTreeMap::new(),
            next_seq: 0,
            last_ms: HashMap::new(),
        };
        // The file starts on the keyframe: what was captured before it is left out.
        for frame in std::mem::take(&mut self.early) {
            if frame.captured >= start && file.has(frame.kind) {
                file.push(frame);
            }
        }
        let drained = file.drain(Some(REORDER_WINDOW));
        self.file = Some(file);
        drained
    }

    fn close(&mut self, done: &mut Vec<RecordedFile>) -> std::io::Result<()> {
        self.early.clear();
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        let drained = file.drain(None);
        let summary = file.writer.finish();
        drained?;
        let summary = summary?;
        done.push(RecordedFile {
            name: file.name,
            uid: self.uid.clone(),
            bytes: summary.bytes,
            duration_ms: summary.duration_ms,
            uploaded: None,
        });
        Ok(())
    }
}

impl OpenFile {
    fn has(&self, kind: MediaKind) -> bool {
        match kind {
            MediaKind::Video => self.video.is_some(),
            MediaKind::Audio => self.audio.is_some(),
        }
    }

    fn push(&mut self, frame: Frame) {
        self.pending.insert((frame.captured, self.next_seq), frame);
        self.next_seq += 1;
    }

    /// Writes held frames in capture order: those older than `window` behind the newest,
    /// or all of them when `window` is None.
    fn drain(&mut self, window: Option<Duration>) -> std::io::Result<()> {
        let newest = match self.pending.last_key_value() {
            Some(((t, _), _)) => *t,
            None => return Ok(()),
        };
        while let Some(entry) = self.pending.first_entry() {
            let captured = entry.key().0;
            if let Some(window) = window
                && newest.duration_since(captured).unwrap_or_default() < window
            {
                break;
            }
            let frame = entry.remove();
            let track = match frame.kind {
                MediaKind::Video => self.video,
                MediaKind::Audio => self.audio,
            };
            let Some(track) = track else { continue };
            let mut at = captured
                .duration_since(self.epoch)
                .unwrap_or_default()
                .as_millis() as u64;
            let lasts = match frame.kind {
                MediaKind::Audio => opus_duration_ms(&frame.data).unwrap_or(0),
                MediaKind::Video => 0,
            };
            // Audio later than the reorder window would be pushed onto the file's last
            // timestamp, stacked over other frames: a gap plays better than that. (Video
            // is kept: a missing frame breaks the decoder until the next keyframe.)
            if lasts > 0 && at < self.writer.duration_ms() {
                continue;
            }
            if let Some(&(last, end)) = self.last_ms.get(&track) {
                // A sender report moved the track's clock back (the first one, correcting
                // the arrival times that stood in): audio that would play over audio
                // already written is dropped, so the track keeps its place against the
                // video instead of drifting by the overlap. A millisecond is rounding.
                if lasts > 0 && at + 1 < end {
                    continue;
                }
                at = at.max(last + 1);
            }
            self.last_ms.insert(track, (at, at + lasts));
            self.writer
                .write_frame(track, at, frame.keyframe, &frame.data)?;
        }
        Ok(())
    }
}

/// The file name (without extension) for participant `uid`, which comes from a client's
/// join: the uid itself when it is a safe name (letters, digits, `-`, `_`, and `.` after the
/// first character, at most 100), else the safe characters with `_` for the rest and a hash
/// of the whole uid, so no uid reaches outside the recording's directory (`../x`, `/etc/x`)
/// and two uids never share a file.
pub fn file_stem(uid: &str) -> String {
    const MAX: usize = 100;
    let safe = |i: usize, c: char| {
        c.is_ascii_alphanumeric() || c == '-' || c == '_' || (c == '.' && i > 0)
    };
    if !uid.is_empty() && uid.len() <= MAX && uid.chars().enumerate().all(|(i, c)| safe(i, c)) {
        return uid.to_owned();
    }
    let cleaned: String = uid
        .chars()
        .enumerate()
        .map(|(i, c)| if safe(i, c) { c } else { '_' })
        .take(MAX - 17)
        .collect();
    // FNV-1a: stable across builds, unlike std's hasher.
    let hash = uid.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{cleaned}-{hash:016x}")
}

/// How long an Opus packet plays, in whole milliseconds, from its TOC byte (RFC 6716
/// §3.1): the frame size of its configuration times its frame count.
pub fn opus_duration_ms(packet: &[u8]) -> Option<u64> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame sizes in tenths of a millisecond: SILK 10–60, hybrid 10–20, CELT 2.5–20.
    let tenths: u64 = match config {
        0..=11 => [100, 200, 400, 600][usize::from(config % 4)],
        12..=15 => [100, 200][usize::from(config % 2)],
        _ => [25, 50, 100, 200][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u64::from(*packet.get(1)? & 0x3f),
    };
    Some(tenths * frames / 10)
}

/// Width and height from a VP8 keyframe's header (RFC 6386 §9.1), if it is one.
pub fn vp8_size(frame: &[u8]) -> Option<(u16, u16)> {
    let keyframe = frame.first()? & 0x01 == 0;
    if !keyframe || frame.len() < 10 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((width, height))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use matroska_demuxer::{Frame as ReadFrame, MatroskaFile};
    use str0m::media::MediaKind;

    use super::{Files, file_stem, opus_duration_ms, vp8_size};
    use crate::recorder::pull::{Frame, Received};

    #[test]
    fn a_uid_never_names_a_file_outside_the_recording_or_another_uid_s_file() {
        assert_eq!(file_stem("alice-1_b.c"), "alice-1_b.c");
        let dir = std::path::Path::new("/rec/s-1");
        let mut stems = std::collections::HashSet::new();
        for uid in [
            "../../etc/passwd",
            "/etc/x",
            "..",
            ".hidden",
            "",
            "a/b",
            "a_b",
            "ü",
            "a\0b",
        ] {
            let stem = file_stem(uid);
            assert!(
                !stem.contains('/') && !stem.starts_with('.') && !stem.is_empty(),
                "{stem}"
            );
            let path = dir.join(format!("{stem}.webm"));
            assert_eq!(path.parent(), Some(dir), "{uid:?} -> {}", path.display());
            assert!(stems.insert(stem), "{uid:?} shares a file");
        }
        assert!(file_stem(&"x".repeat(500)).len() <= 100);
    }

    #[test]
    fn opus_durations_follow_the_toc_byte() {
        // CELT 20 ms, one frame (what browsers send); SILK 60 ms; two CELT 10 ms frames;
        // code 3 with 3 frames of 20 ms; an empty packet has no duration.
        assert_eq!(opus_duration_ms(&[31 << 3]), Some(20));
        assert_eq!(opus_duration_ms(&[3 << 3]), Some(60));
        assert_eq!(opus_duration_ms(&[(30 << 3) | 1]), Some(20));
        assert_eq!(opus_duration_ms(&[(31 << 3) | 3, 3]), Some(60));
        assert_eq!(opus_duration_ms(&[]), None);
        assert_eq!(opus_duration_ms(&[(31 << 3) | 3]), None);
    }

    /// Audio-only frames of 20 ms, 20 ms apart, whose clock moves back 13 ms after the
    /// third frame (as when the first sender report corrects arrival times).
    #[test]
    fn audio_whose_clock_moves_back_is_not_written_over_itself() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut files = Files::new(dir.path());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let frame = |captured| {
            Received::Frame(Frame {
                stream: "alice".to_owned(),
                kind: MediaKind::Audio,
                captured,
                keyframe: true,
                data: Arc::from(vec![31 << 3, 0xaa, 0xbb]),
            })
        };
        files
            .take(Received::Added {
                stream: "alice".to_owned(),
                kind: MediaKind::Audio,
            })
            .expect("taken");
        let mut sent = vec![0, 20, 40];
        sent.extend((0..10).map(|i| 47 + 20 * i));
        for ms in &sent {
            files.take(frame(at(*ms))).expect("taken");
        }
        files.finish().expect("finished");
        let bytes = std::fs::read(dir.path().join("alice.webm")).expect("the file");
        let mut mkv = MatroskaFile::open(std::io::Cursor::new(bytes)).expect("it opens");
        let mut read = ReadFrame::default();
        let mut stamps = Vec::new();
        while mkv.next_frame(&mut read).expect("it reads") {
            stamps.push(read.timestamp);
        }
        // The frame at 47 would overlap the one at 40 by 13 ms: it is dropped, the rest
        // stay on the corrected clock.
        let expected: Vec<u64> = [0, 20, 40]
            .into_iter()
            .chain((1..10).map(|i| 47 + 20 * i))
            .collect();
        assert_eq!(stamps, expected);
    }

    /// A participant's audio arriving in a burst longer than the reorder window behind its
    /// video: what is too late is left out, and no audio frame is stacked on another's time.
    #[test]
    fn audio_later_than_the_reorder_window_leaves_a_gap_not_a_pile() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut files = Files::new(dir.path());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let frame = |kind, ms: u64, data: Vec<u8>| {
            Received::Frame(Frame {
                stream: "bob".to_owned(),
                kind,
                captured: t0 + Duration::from_millis(ms),
                keyframe: kind == MediaKind::Audio || ms == 0,
                data: Arc::from(data),
            })
        };
        for kind in [MediaKind::Video, MediaKind::Audio] {
            let added = Received::Added {
                stream: "bob".to_owned(),
                kind,
            };
            files.take(added).expect("taken");
        }
        let keyframe = vec![0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01];
        files
            .take(frame(MediaKind::Video, 0, keyframe))
            .expect("taken");
        // Two seconds of video, then the same two seconds of audio at once.
        for ms in (40..=2_000).step_by(40) {
            files
                .take(frame(MediaKind::Video, ms, vec![0x51, 0, 0]))
                .expect("taken");
        }
        for ms in (0..=2_000).step_by(20) {
            files
                .take(frame(MediaKind::Audio, ms, vec![31 << 3, 1]))
                .expect("taken");
        }
        files.finish().expect("finished");
        let bytes = std::fs::read(dir.path().join("bob.webm")).expect("the file");
        let mut mkv = MatroskaFile::open(std::io::Cursor::new(bytes)).expect("it opens");
        let audio_track = 2;
        let mut read = ReadFrame::default();
        let mut audio = Vec::new();
        while mkv.next_frame(&mut read).expect("it reads") {
            if read.track == audio_track {
                audio.push(read.timestamp);
            }
        }
        assert!(
            !audio.is_empty(),
            "the audio still in the window is written"
        );
        assert!(
            audio.windows(2).all(|w| w[1] >= w[0] + 20),
            "audio frames overlap: {audio:?}"
        );
        assert_eq!(audio.last(), Some(&2_000));
    }

    /// Real VP8 from ffmpeg's libvpx, one second each at 640x360, then 320x180 (a simulcast
    /// layer switch down, which the relay makes at a keyframe of the new layer, numbers and
    /// times continuing), then 1280x720 (the publisher's resolution goes up): the file
    /// holds every frame in order, each switch on a keyframe, and ffmpeg decodes it whole,
    /// frame sizes following the stream.
    #[test]
    fn a_layer_switch_and_a_resolution_change_leave_the_file_playable() {
        const SIZES: [(u16, u16); 3] = [(640, 360), (320, 180), (1280, 720)];
        const FPS: u64 = 30;
        let dir = tempfile::tempdir().expect("a temp dir");
        let streams: Vec<Vec<Vec<u8>>> = SIZES
            .iter()
            .map(|&(w, h)| ivf_frames(&encode_vp8(dir.path(), w, h, FPS)))
            .collect();
        let mut files = Files::new(dir.path());
        files
            .take(Received::Added {
                stream: "alice".to_owned(),
                kind: MediaKind::Video,
            })
            .expect("taken");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut sent = 0u64;
        for (stream, &size) in streams.iter().zip(&SIZES) {
            assert_eq!(
                vp8_size(&stream[0]),
                Some(size),
                "each stream starts on a keyframe"
            );
            for data in stream {
                files
                    .take(Received::Frame(Frame {
                        stream: "alice".to_owned(),
                        kind: MediaKind::Video,
                        captured: t0 + Duration::from_millis(sent * 1000 / FPS),
                        keyframe: vp8_size(data).is_some(),
                        data: Arc::from(data.as_slice()),
                    }))
                    .expect("taken");
                sent += 1;
            }
        }
        files.finish().expect("finished");
        let path = dir.path().join("alice.webm");

        let mut mkv =
            MatroskaFile::open(std::fs::File::open(&path).expect("the file")).expect("it opens");
        let mut read = ReadFrame::default();
        let (mut timestamps, mut sizes_at_keyframes) = (Vec::new(), Vec::new());
        while mkv.next_frame(&mut read).expect("it reads") {
            if read.is_keyframe == Some(true) {
                sizes_at_keyframes.push((timestamps.len(), vp8_size(&read.data)));
            }
            timestamps.push(read.timestamp);
        }
        assert_eq!(timestamps.len() as u64, sent, "every frame is in the file");
        assert!(timestamps.windows(2).all(|w| w[1] > w[0]), "{timestamps:?}");
        let per = streams.iter().map(Vec::len).collect::<Vec<_>>();
        for (at, size) in [
            (0, SIZES[0]),
            (per[0], SIZES[1]),
            (per[0] + per[1], SIZES[2]),
        ] {
            assert!(
                sizes_at_keyframes.contains(&(at, Some(size))),
                "no {size:?} keyframe at frame {at}: {sizes_at_keyframes:?}"
            );
        }

        let decoded = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&path)
            .args(["-f", "null", "-"])
            .output()
            .expect("ffmpeg runs (scripts/install-deps installs it)");
        let complaints = String::from_utf8_lossy(&decoded.stderr);
        assert!(
            decoded.status.success() && complaints.trim().is_empty(),
            "{complaints}"
        );
        let probe = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "frame=width,height",
                "-of",
                "csv=p=0",
            ])
            .arg(&path)
            .output()
            .expect("ffprobe runs (scripts/install-deps installs it)");
        let frames: Vec<String> = String::from_utf8_lossy(&probe.stdout)
            .lines()
            .map(|l| l.trim_end_matches(',').to_owned())
            .collect();
        let expected: Vec<String> = SIZES
            .iter()
            .zip(&per)
            .flat_map(|(&(w, h), &n)| std::iter::repeat_n(format!("{w},{h}"), n))
            .collect();
        assert_eq!(frames, expected, "the decoded frames' sizes");
    }

    /// One second of ffmpeg's test pattern at `width`x`height`, VP8 in an IVF file: a
    /// keyframe, then delta frames.
    fn encode_vp8(dir: &std::path::Path, width: u16, height: u16, fps: u64) -> Vec<u8> {
        let path = dir.join(format!("{width}x{height}.ivf"));
        let source = format!("testsrc=size={width}x{height}:rate={fps}:duration=1");
        let encoded = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i", &source])
            .args([
                "-c:v",
                "libvpx",
                "-g",
                "1000",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
            ])
            .arg(&path)
            .output()
            .expect("ffmpeg runs (scripts/install-deps installs it)");
        assert!(
            encoded.status.success(),
            "{}",
            String::from_utf8_lossy(&encoded.stderr)
        );
        std::fs::read(path).expect("the encoded file")
    }

    /// The frames of an IVF file: a 32-byte header, then each frame's 4-byte size, 8-byte
    /// timestamp and data.
    fn ivf_frames(ivf: &[u8]) -> Vec<Vec<u8>> {
        assert_eq!(&ivf[..4], b"DKIF", "an IVF file");
        let mut rest = &ivf[32..];
        let mut frames = Vec::new();
        while rest.len() >= 12 {
            let size = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            frames.push(rest[12..12 + size].to_vec());
            rest = &rest[12 + size..];
        }
        frames
    }

    #[test]
    fn a_vp8_keyframe_gives_its_size_and_other_frames_none() {
        // Frame tag (key frame, shown), start code, 640 x 360 with scaling bits set.
        let key = [0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x42, 0x68, 0x01];
        assert_eq!(vp8_size(&key), Some((640, 360)));
        let mut inter = key;
        inter[0] |= 0x01;
        assert_eq!(vp8_size(&inter), None);
        assert_eq!(vp8_size(&key[..8]), None);
    }
}
