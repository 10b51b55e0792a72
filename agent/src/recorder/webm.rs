//! The recorder's WebM (Matroska) writer: one file per participant, holding its VP8 and Opus
//! frames as they arrived (no transcoding).
//!
//! Durability is why this is ours. Frames collect in an in-memory cluster; a closed cluster is
//! appended to the file whole and the file is fsynced, so a crash (even kill -9) loses at most
//! the open cluster (≤ 2 s) and leaves a file that readers parse up to its last complete
//! cluster. For that the Segment is written with unknown size and Info holds an 11-byte Void
//! where Duration goes; `finish` patches both in place (seek, write, seek back), so a finished
//! file has a real Segment size and Duration.
//!
//! We chose this over the `webm` crate (libwebm) because the crash guarantee depends on exactly
//! when bytes reach the file (whole clusters, then fsync), which is simplest to state and test
//! with a writer we control, and it needs no C++ build. An independent reader checks the
//! files: matroska-demuxer in the tests below, ffprobe in the integration tests.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

/// No VP8 or Opus frame from a call comes near this, so a bigger one is a caller's bug.
const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// A VP8 keyframe starts a new cluster once the open one is this old, so players seek well.
const KEYFRAME_CLUSTER_MS: u64 = 1000;
/// No cluster spans this much: it bounds what a crash loses, and keeps every block's
/// timestamp (an i16 relative to its cluster's) in range.
const MAX_CLUSTER_MS: u64 = 2000;

/// Opus decoders drop this many samples (at 48 kHz) at the start; WebM states it twice, in
/// OpusHead and (in ns) as CodecDelay.
const OPUS_PRE_SKIP: u16 = 312;
const OPUS_CODEC_DELAY_NS: u64 = 6_500_000;
/// What Opus needs decoded before a seek target to converge (RFC 7845 recommends 80 ms).
const OPUS_SEEK_PRE_ROLL_NS: u64 = 80_000_000;
const OPUS_RATE: u32 = 48_000;

/// An 8-byte size field holding "unknown": the Segment's, until `finish` knows its size.
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
/// Duration's element is 11 bytes (2-byte id, size byte, f64), so Info reserves it as an
/// 11-byte Void (id, size byte, 9 zeros) and nothing shifts when `finish` fills it in.
const DURATION_ELEMENT_LEN: usize = 11;

// Element ids, with their length markers, as they are written.
const EBML: u32 = 0x1A45_DFA3;
const EBML_VERSION: u32 = 0x4286;
const EBML_READ_VERSION: u32 = 0x42F7;
const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
const DOC_TYPE: u32 = 0x4282;
const DOC_TYPE_VERSION: u32 = 0x4287;
const DOC_TYPE_READ_VERSION: u32 = 0x4285;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const MUXING_APP: u32 = 0x4D80;
const WRITING_APP: u32 = 0x5741;
const DURATION: u32 = 0x4489;
const VOID: u32 = 0xEC;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_UID: u32 = 0x73C5;
const FLAG_LACING: u32 = 0x9C;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const CODEC_DELAY: u32 = 0x56AA;
const SEEK_PRE_ROLL: u32 = 0x56BB;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;
const CLUSTER: u32 = 0x1F43_B675;
const TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;

/// A track of a recording file; its track number is its index + 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// VP8 video; the size is the first keyframe's.
    Vp8 { width: u16, height: u16 },
    /// Opus audio at 48 kHz.
    Opus { channels: u8 },
}

/// What a finished (or failed) file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    /// The file's length.
    pub bytes: u64,
    /// The last frame's timestamp, in ms since the file's start.
    pub duration_ms: u64,
    /// Frames in the file, per track (index 0 is track 1).
    pub frames: Vec<u64>,
}

/// Writes one WebM file, cluster by cluster.
///
/// Dropping a writer without [`finish`](Self::finish) does not finish the file: it is left as
/// a crash would leave it, its open cluster lost and its Segment of unknown size. Call
/// [`flush_cluster`](Self::flush_cluster) first to keep the open cluster.
pub struct WebmWriter {
    mux: Muxer<File>,
}

impl WebmWriter {
    /// Creates `path` (must not exist: use create_new) and writes the EBML header, the
    /// Segment (unknown size), Info and Tracks; fsyncs.
    pub fn create(path: &Path, tracks: &[TrackKind]) -> io::Result<Self> {
        check_tracks(tracks)?;
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        match Muxer::start(file, tracks) {
            Ok(mux) => Ok(Self { mux }),
            Err(e) => {
                // A file without its headers is of no use to anyone, and only we have it.
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// Adds one frame of `track` (1-based) at `timestamp_ms` since the file's start.
    /// Callers interleave tracks in timestamp order; a timestamp below the last one written
    /// (any track) is raised to it, so the file's timestamps never decrease.
    /// A new cluster starts before a VP8 keyframe when the open cluster is >= 1000 ms old,
    /// and before any frame that is >= 2000 ms past the cluster's start. Closing a cluster
    /// appends it to the file and fsyncs. An error leaves the file as it was before the
    /// failed cluster write (truncate back to the last good length with set_len if a write
    /// fails part way, ignoring a failure of that), and the writer refuses further frames.
    pub fn write_frame(
        &mut self,
        track: u64,
        timestamp_ms: u64,
        keyframe: bool,
        data: &[u8],
    ) -> io::Result<()> {
        self.mux.write_frame(track, timestamp_ms, keyframe, data)
    }

    /// Bytes in the file so far (what has reached it, not the open cluster).
    pub fn bytes_written(&self) -> u64 {
        self.mux.len
    }

    /// The last timestamp written, in ms (the open cluster's frames included).
    pub fn duration_ms(&self) -> u64 {
        self.mux.last_ms
    }

    /// Writes the open cluster, patches Duration and the Segment size, fsyncs.
    pub fn finish(mut self) -> io::Result<FileSummary> {
        self.mux.finish()
    }

    /// Writes the open cluster and fsyncs, without finishing (used on stop-on-error paths and
    /// before shutdown).
    pub fn flush_cluster(&mut self) -> io::Result<()> {
        self.mux.flush_cluster()
    }
}

impl fmt::Debug for WebmWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebmWriter")
            .field("tracks", &self.mux.tracks)
            .field("bytes_written", &self.mux.len)
            .field("duration_ms", &self.mux.last_ms)
            .field("failed", &self.mux.failed)
            .finish_non_exhaustive()
    }
}

/// Where a writer's bytes go: a `File`, or in tests a disk that fills up.
trait Storage: Write + Seek {
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    fn sync(&mut self) -> io::Result<()>;
}

impl Storage for File {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    // fdatasync: it makes the data and the file's length durable, all a reader needs after a
    // crash, and skips the timestamps.
    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

/// The writer proper, over any storage so that tests can make writes fail.
struct Muxer<S> {
    out: S,
    tracks: Vec<TrackKind>,
    /// The file's length: everything before it is whole and synced.
    len: u64,
    /// Where the Segment's 8-byte size field is, and where the Segment's data starts.
    segment_size_at: u64,
    segment_data_at: u64,
    /// Where Info's Void is, which `finish` overwrites with Duration.
    duration_at: u64,
    cluster: Option<Cluster>,
    /// The last timestamp taken (open cluster included), and the last one in the file.
    last_ms: u64,
    file_last_ms: u64,
    /// Frames in the file, per track.
    frames: Vec<u64>,
    /// Set when a cluster write failed: the file ends at `len` and takes nothing more.
    failed: bool,
}

/// The cluster being filled.
struct Cluster {
    start_ms: u64,
    last_ms: u64,
    /// Its Timestamp and SimpleBlocks: everything but its own id and size.
    body: Vec<u8>,
    frames: Vec<u64>,
}

impl<S: Storage> Muxer<S> {
    /// Writes the file's headers to `out` (empty, at position 0) and syncs.
    fn start(mut out: S, tracks: &[TrackKind]) -> io::Result<Self> {
        let mut head = Vec::with_capacity(256);

        let mut ebml = Vec::new();
        put_uint(&mut ebml, EBML_VERSION, 1);
        put_uint(&mut ebml, EBML_READ_VERSION, 1);
        put_uint(&mut ebml, EBML_MAX_ID_LENGTH, 4);
        put_uint(&mut ebml, EBML_MAX_SIZE_LENGTH, 8);
        put_bytes(&mut ebml, DOC_TYPE, b"webm");
        put_uint(&mut ebml, DOC_TYPE_VERSION, 4);
        put_uint(&mut ebml, DOC_TYPE_READ_VERSION, 2);
        put_bytes(&mut head, EBML, &ebml);

        put_id(&mut head, SEGMENT);
        let segment_size_at = head.len();
        head.extend_from_slice(&UNKNOWN_SIZE);
        let segment_data_at = head.len();

        let mut info = Vec::new();
        put_uint(&mut info, TIMESTAMP_SCALE, 1_000_000);
        put_bytes(&mut info, MUXING_APP, b"ion-agent");
        let writing_app = concat!("ion-agent ", env!("CARGO_PKG_VERSION"));
        put_bytes(&mut info, WRITING_APP, writing_app.as_bytes());
        let void_in_info = info.len();
        put_bytes(&mut info, VOID, &[0; DURATION_ELEMENT_LEN - 2]);
        put_id(&mut head, INFO);
        put_size(&mut head, info.len() as u64);
        let duration_at = head.len() + void_in_info;
        head.extend_from_slice(&info);

        let mut entries = Vec::new();
        for (i, kind) in tracks.iter().enumerate() {
            put_bytes(&mut entries, TRACK_ENTRY, &track_entry(i as u64 + 1, *kind));
        }
        put_bytes(&mut head, TRACKS, &entries);

        out.write_all(&head)?;
        out.sync()?;
        Ok(Self {
            out,
            tracks: tracks.to_vec(),
            len: head.len() as u64,
            segment_size_at: segment_size_at as u64,
            segment_data_at: segment_data_at as u64,
            duration_at: duration_at as u64,
            cluster: None,
            last_ms: 0,
            file_last_ms: 0,
            frames: vec![0; tracks.len()],
            failed: false,
        })
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other(
                "an earlier write to this recording file failed; it takes nothing more",
            ));
        }
        Ok(())
    }

    fn write_frame(
        &mut self,
        track: u64,
        timestamp_ms: u64,
        keyframe: bool,
        data: &[u8],
    ) -> io::Result<()> {
        self.check_usable()?;
        let index = track
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.tracks.len())
            .ok_or_else(|| {
                invalid_input(format!(
                    "track {track} is not in this recording file (it has tracks 1 to {})",
                    self.tracks.len()
                ))
            })?;
        if data.len() > MAX_FRAME_BYTES {
            return Err(invalid_input(format!(
                "a frame of {} bytes on track {track} is over the {} MiB limit",
                data.len(),
                MAX_FRAME_BYTES >> 20
            )));
        }
        let timestamp_ms = timestamp_ms.max(self.last_ms);
        let vp8 = matches!(self.tracks[index], TrackKind::Vp8 { .. });
        // Every Opus frame decodes on its own.
        let keyframe = keyframe || !vp8;

        if let Some(cluster) = &self.cluster {
            let age = timestamp_ms - cluster.start_ms;
            if age >= MAX_CLUSTER_MS || (vp8 && keyframe && age >= KEYFRAME_CLUSTER_MS) {
                self.write_cluster()?;
            }
        }
        let tracks = self.tracks.len();
        let cluster = self.cluster.get_or_insert_with(|| {
            let mut body = Vec::with_capacity(64 * 1024);
            put_uint(&mut body, TIMESTAMP, timestamp_ms);
            Cluster {
                start_ms: timestamp_ms,
                last_ms: timestamp_ms,
                body,
                frames: vec![0; tracks],
            }
        });
        let relative = i16::try_from(timestamp_ms - cluster.start_ms)
            .expect("a cluster spans less than MAX_CLUSTER_MS, which fits an i16");

        let mut block_head = Vec::with_capacity(12);
        put_size(&mut block_head, track);
        block_head.extend_from_slice(&relative.to_be_bytes());
        block_head.push(if keyframe { 0x80 } else { 0x00 });
        put_id(&mut cluster.body, SIMPLE_BLOCK);
        put_size(&mut cluster.body, (block_head.len() + data.len()) as u64);
        cluster.body.extend_from_slice(&block_head);
        cluster.body.extend_from_slice(data);
        cluster.frames[index] += 1;
        cluster.last_ms = timestamp_ms;
        self.last_ms = timestamp_ms;
        Ok(())
    }

    fn flush_cluster(&mut self) -> io::Result<()> {
        self.check_usable()?;
        self.write_cluster()
    }

    /// Appends the open cluster, if any, in one write and syncs.
    fn write_cluster(&mut self) -> io::Result<()> {
        let Some(cluster) = self.cluster.take() else {
            return Ok(());
        };
        let mut bytes = Vec::with_capacity(12 + cluster.body.len());
        put_bytes(&mut bytes, CLUSTER, &cluster.body);
        if let Err(e) = self.out.write_all(&bytes).and_then(|()| self.out.sync()) {
            self.failed = true;
            // Cut a partly written cluster off so the file ends on a whole one. Should this
            // fail too, readers still stop at the torn cluster.
            let _ = self.out.set_len(self.len);
            let _ = self.out.seek(SeekFrom::Start(self.len));
            return Err(e);
        }
        self.len += bytes.len() as u64;
        for (total, n) in self.frames.iter_mut().zip(&cluster.frames) {
            *total += n;
        }
        self.file_last_ms = cluster.last_ms;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<FileSummary> {
        self.check_usable()?;
        self.write_cluster()?;

        let mut duration = Vec::with_capacity(DURATION_ELEMENT_LEN);
        put_float(&mut duration, DURATION, self.file_last_ms as f64);
        debug_assert_eq!(duration.len(), DURATION_ELEMENT_LEN);
        self.patch(self.duration_at, &duration)?;
        let segment_size = (1 << 56) | (self.len - self.segment_data_at);
        self.patch(self.segment_size_at, &segment_size.to_be_bytes())?;
        self.out.sync()?;

        Ok(FileSummary {
            bytes: self.len,
            duration_ms: self.file_last_ms,
            frames: self.frames.clone(),
        })
    }

    /// Overwrites `bytes` at `at` and goes back to the end.
    fn patch(&mut self, at: u64, bytes: &[u8]) -> io::Result<()> {
        self.out.seek(SeekFrom::Start(at))?;
        self.out.write_all(bytes)?;
        self.out.seek(SeekFrom::Start(self.len))?;
        Ok(())
    }
}

/// Refuses tracks that would make a file players reject, before the file exists.
fn check_tracks(tracks: &[TrackKind]) -> io::Result<()> {
    if tracks.is_empty() {
        return Err(invalid_input("a recording file needs at least one track"));
    }
    for kind in tracks {
        match *kind {
            TrackKind::Vp8 { width, height } if width == 0 || height == 0 => {
                return Err(invalid_input(format!(
                    "a VP8 track cannot be {width}x{height}"
                )));
            }
            // OpusHead's channel mapping family 0 carries mono or stereo only.
            TrackKind::Opus { channels } if !(1..=2).contains(&channels) => {
                return Err(invalid_input(format!(
                    "an Opus track has 1 or 2 channels, not {channels}"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A TrackEntry's body.
fn track_entry(number: u64, kind: TrackKind) -> Vec<u8> {
    let mut entry = Vec::with_capacity(96);
    put_uint(&mut entry, TRACK_NUMBER, number);
    put_uint(&mut entry, TRACK_UID, number);
    put_uint(&mut entry, FLAG_LACING, 0);
    match kind {
        TrackKind::Vp8 { width, height } => {
            put_uint(&mut entry, TRACK_TYPE, 1);
            put_bytes(&mut entry, CODEC_ID, b"V_VP8");
            let mut video = Vec::new();
            put_uint(&mut video, PIXEL_WIDTH, width.into());
            put_uint(&mut video, PIXEL_HEIGHT, height.into());
            put_bytes(&mut entry, VIDEO, &video);
        }
        TrackKind::Opus { channels } => {
            put_uint(&mut entry, TRACK_TYPE, 2);
            put_bytes(&mut entry, CODEC_ID, b"A_OPUS");
            put_uint(&mut entry, CODEC_DELAY, OPUS_CODEC_DELAY_NS);
            put_uint(&mut entry, SEEK_PRE_ROLL, OPUS_SEEK_PRE_ROLL_NS);
            put_bytes(&mut entry, CODEC_PRIVATE, &opus_head(channels));
            let mut audio = Vec::new();
            put_float(&mut audio, SAMPLING_FREQUENCY, OPUS_RATE.into());
            put_uint(&mut audio, CHANNELS, channels.into());
            put_bytes(&mut entry, AUDIO, &audio);
        }
    }
    entry
}

/// The Opus identification header (RFC 7845 section 5.1), WebM's CodecPrivate for Opus.
fn opus_head(channels: u8) -> [u8; 19] {
    let mut head = [0; 19];
    head[..8].copy_from_slice(b"OpusHead");
    head[8] = 1;
    head[9] = channels;
    head[10..12].copy_from_slice(&OPUS_PRE_SKIP.to_le_bytes());
    head[12..16].copy_from_slice(&OPUS_RATE.to_le_bytes());
    // Output gain 0 (bytes 16..18) and channel mapping family 0 (byte 18).
    head
}

fn invalid_input(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.into())
}

/// Appends an element id: its bytes already carry their length marker.
fn put_id(buf: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    buf.extend_from_slice(&bytes[zeros..]);
}

/// Appends `n` as the shortest EBML variable-length integer (element sizes, track numbers).
fn put_size(buf: &mut Vec<u8>, n: u64) {
    // A vint of w bytes holds 7w bits, and all ones means "unknown", so it holds up to
    // 2^(7w) - 2.
    let width = (1..=8usize)
        .find(|&w| n < (1 << (7 * w)) - 1)
        .expect("sizes in a recording file stay far below 2^56");
    let marked = n | (1 << (7 * width));
    buf.extend_from_slice(&marked.to_be_bytes()[8 - width..]);
}

/// Appends an unsigned integer element in as few bytes as hold it (at least one).
fn put_uint(buf: &mut Vec<u8>, id: u32, value: u64) {
    let bytes = value.to_be_bytes();
    let zeros = bytes.iter().take_while(|&&b| b == 0).count().min(7);
    put_bytes(buf, id, &bytes[zeros..]);
}

/// Appends an 8-byte float element.
fn put_float(buf: &mut Vec<u8>, id: u32, value: f64) {
    put_bytes(buf, id, &value.to_be_bytes());
}

/// Appends an element holding `data` (a string, binary or a master element's body).
fn put_bytes(buf: &mut Vec<u8>, id: u32, data: &[u8]) {
    put_id(buf, id);
    put_size(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use matroska_demuxer::{DemuxError, Frame, MatroskaFile, TrackType};

    use super::*;

    const VIDEO_TRACKS: [TrackKind; 2] = [
        TrackKind::Vp8 {
            width: 640,
            height: 480,
        },
        TrackKind::Opus { channels: 2 },
    ];

    /// A frame as the test wrote it.
    #[derive(Debug, Clone, PartialEq)]
    struct Sent {
        track: u64,
        timestamp: u64,
        keyframe: bool,
        data: Vec<u8>,
    }

    /// Video every 33 ms with a keyframe each second, audio every 20 ms, in timestamp order
    /// (video first on a tie), up to `until_ms`. Keyframes are big enough to need a 3-byte
    /// block size; every payload is distinct, so a misframed block cannot pass for another.
    fn call(until_ms: u64) -> Vec<Sent> {
        let (mut v, mut a) = (0u64, 0u64);
        let mut sent = Vec::new();
        loop {
            let (vt, at) = (v * 33, a * 20);
            if vt >= until_ms && at >= until_ms {
                return sent;
            }
            if vt <= at && vt < until_ms {
                let keyframe = v == 0 || vt / 1000 != (vt - 33) / 1000;
                let len = if keyframe {
                    20_000
                } else {
                    100 + (v * 37 % 200)
                };
                sent.push(Sent {
                    track: 1,
                    timestamp: vt,
                    keyframe,
                    data: payload(1, v, len),
                });
                v += 1;
            } else {
                sent.push(Sent {
                    track: 2,
                    timestamp: at,
                    keyframe: true,
                    data: payload(2, a, 60 + a % 20),
                });
                a += 1;
            }
        }
    }

    fn payload(track: u64, i: u64, len: u64) -> Vec<u8> {
        (0..len)
            .map(|j| (track * 101 + i * 7 + j * 13) as u8)
            .collect()
    }

    /// Writes `sent`, returning how many of them had reached the file after each write.
    fn send(writer: &mut WebmWriter, sent: &[Sent]) -> usize {
        let mut in_file = 0;
        let mut len = writer.bytes_written();
        for (i, f) in sent.iter().enumerate() {
            writer
                .write_frame(f.track, f.timestamp, f.keyframe, &f.data)
                .unwrap();
            if writer.bytes_written() != len {
                // Frame i opened a new cluster, so the one closed held every frame before it.
                len = writer.bytes_written();
                in_file = i;
            }
        }
        in_file
    }

    /// Every frame a demuxer gets from `bytes`, and how reading ended.
    fn read_frames(bytes: &[u8]) -> (Vec<Frame>, Result<(), DemuxError>) {
        let mut mkv = MatroskaFile::open(Cursor::new(bytes)).expect("the file opens");
        let mut frames = Vec::new();
        let mut frame = Frame::default();
        loop {
            match mkv.next_frame(&mut frame) {
                Ok(true) => frames.push(frame.clone()),
                Ok(false) => return (frames, Ok(())),
                Err(e) => return (frames, Err(e)),
            }
        }
    }

    /// Asserts that `read` are the first frames of `sent`, each whole and where it was put.
    fn assert_prefix(read: &[Frame], sent: &[Sent]) {
        assert!(read.len() <= sent.len(), "{} frames read", read.len());
        for (i, (r, s)) in read.iter().zip(sent).enumerate() {
            assert_eq!(r.track, s.track, "frame {i}'s track");
            assert_eq!(r.timestamp, s.timestamp, "frame {i}'s timestamp");
            assert_eq!(r.is_keyframe, Some(s.keyframe), "frame {i}'s keyframe flag");
            assert!(r.data == s.data, "frame {i}'s data differs");
        }
    }

    #[test]
    fn a_finished_file_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.webm");
        let sent = call(10_000);
        let last = sent.last().unwrap().timestamp;
        let mut writer = WebmWriter::create(&path, &VIDEO_TRACKS).unwrap();
        send(&mut writer, &sent);
        assert_eq!(writer.duration_ms(), last);
        let summary = writer.finish().unwrap();

        let bytes = std::fs::read(&path).unwrap();
        let count = |track| sent.iter().filter(|f| f.track == track).count() as u64;
        assert_eq!(
            summary,
            FileSummary {
                bytes: bytes.len() as u64,
                duration_ms: last,
                frames: vec![count(1), count(2)],
            }
        );
        // The EBML header is 36 bytes; the Segment's 8-byte size follows its id.
        assert_eq!(bytes[36..40], [0x18, 0x53, 0x80, 0x67]);
        assert_eq!(bytes[40], 0x01, "the Segment size is 8 bytes wide");
        let mut size = [0; 8];
        size[1..].copy_from_slice(&bytes[41..48]);
        assert_eq!(u64::from_be_bytes(size), bytes.len() as u64 - 48);

        let mkv = MatroskaFile::open(Cursor::new(&bytes[..])).unwrap();
        let header = mkv.ebml_header();
        assert_eq!(header.doc_type(), "webm");
        assert_eq!(header.doc_type_version(), 4);
        assert_eq!(header.doc_type_read_version(), 2);
        let info = mkv.info();
        assert_eq!(info.timestamp_scale().get(), 1_000_000);
        let duration = info.duration().expect("finish writes Duration");
        assert!((duration - last as f64).abs() < 1.0, "duration {duration}");
        assert_eq!(info.muxing_app(), "ion-agent");
        assert!(info.writing_app().starts_with("ion-agent "));

        let tracks = mkv.tracks();
        assert_eq!(tracks.len(), 2);
        let (video, audio) = (&tracks[0], &tracks[1]);
        assert_eq!(video.track_number().get(), 1);
        assert_eq!(video.track_type(), TrackType::Video);
        assert_eq!(video.codec_id(), "V_VP8");
        assert!(!video.flag_lacing());
        let pixels = video.video().expect("a Video element");
        assert_eq!(pixels.pixel_width().get(), 640);
        assert_eq!(pixels.pixel_height().get(), 480);
        assert_eq!(audio.track_number().get(), 2);
        assert_eq!(audio.track_type(), TrackType::Audio);
        assert_eq!(audio.codec_id(), "A_OPUS");
        assert!(!audio.flag_lacing());
        let opus_head = [
            b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', 1, 2, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0,
            0, 0,
        ];
        assert_eq!(audio.codec_private(), Some(&opus_head[..]));
        assert_eq!(audio.codec_delay(), Some(6_500_000));
        assert_eq!(audio.seek_pre_roll(), Some(80_000_000));
        let sound = audio.audio().expect("an Audio element");
        assert_eq!(sound.sampling_frequency(), 48_000.0);
        assert_eq!(sound.channels().get(), 2);

        let (read, end) = read_frames(&bytes);
        end.unwrap();
        assert_eq!(read.len(), sent.len());
        assert_prefix(&read, &sent);
        assert!(read.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    }

    #[test]
    fn the_headers_are_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.webm");
        let writer = WebmWriter::create(&path, &[TrackKind::Opus { channels: 1 }]).unwrap();
        let len = writer.bytes_written();
        drop(writer);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, len);

        let mut expected = vec![
            0x1A, 0x45, 0xDF, 0xA3, 0x9F, // EBML, 31 bytes
            0x42, 0x86, 0x81, 0x01, 0x42, 0xF7, 0x81, 0x01, 0x42, 0xF2, 0x81, 0x04, 0x42, 0xF3,
            0x81, 0x08, 0x42, 0x82, 0x84, b'w', b'e', b'b', b'm', 0x42, 0x87, 0x81, 0x04, 0x42,
            0x85, 0x81, 0x02, // the EBML header's fields
            0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, // Segment
        ];
        let writing_app = format!("ion-agent {}", env!("CARGO_PKG_VERSION"));
        let info_len = 7 + 12 + 3 + writing_app.len() + 11;
        expected.extend([0x15, 0x49, 0xA9, 0x66, 0x80 | info_len as u8]);
        expected.extend([0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40]);
        expected.extend([0x4D, 0x80, 0x89]);
        expected.extend(b"ion-agent");
        expected.extend([0x57, 0x41, 0x80 | writing_app.len() as u8]);
        expected.extend(writing_app.as_bytes());
        expected.extend([0xEC, 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let opus_entry: &[u8] = &[
            0xD7, 0x81, 0x01, 0x73, 0xC5, 0x81, 0x01, 0x9C, 0x81, 0x00, 0x83, 0x81, 0x02, 0x86,
            0x86, b'A', b'_', b'O', b'P', b'U', b'S', // number, uid, lacing, type, codec
            0x56, 0xAA, 0x83, 0x63, 0x2E, 0xA0, 0x56, 0xBB, 0x84, 0x04, 0xC4, 0xB4,
            0x00, // delays
            0x63, 0xA2, 0x93, b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', 1, 1, 0x38, 0x01,
            0x80, 0xBB, 0, 0, 0, 0, 0, // OpusHead
            0xE1, 0x8D, 0xB5, 0x88, 0x40, 0xE7, 0x70, 0, 0, 0, 0, 0, 0x9F, 0x81,
            0x01, // Audio
        ];
        assert_eq!(opus_entry.len(), 71);
        expected.extend([0x16, 0x54, 0xAE, 0x6B, 0x80 | 73, 0xAE, 0x80 | 71]);
        expected.extend(opus_entry);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn sizes_are_the_shortest_vints() {
        let size = |n| {
            let mut buf = Vec::new();
            put_size(&mut buf, n);
            buf
        };
        assert_eq!(size(0), [0x80]);
        assert_eq!(size(126), [0xFE]);
        // 127 in one byte would read as "unknown".
        assert_eq!(size(127), [0x40, 0x7F]);
        assert_eq!(size(16_382), [0x7F, 0xFE]);
        assert_eq!(size(16_383), [0x20, 0x3F, 0xFF]);
        assert_eq!(size(1 << 24), [0x11, 0x00, 0x00, 0x00]);
        assert_eq!(size(1 << 28), [0x08, 0x10, 0x00, 0x00, 0x00]);

        let uint = |v| {
            let mut buf = Vec::new();
            put_uint(&mut buf, TIMESTAMP, v);
            buf
        };
        assert_eq!(uint(0), [0xE7, 0x81, 0x00]);
        assert_eq!(uint(255), [0xE7, 0x81, 0xFF]);
        assert_eq!(uint(256), [0xE7, 0x82, 0x01, 0x00]);
        assert_eq!(
            uint(u64::MAX),
            [0xE7, 0x88, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }

    #[test]
    fn clusters_close_at_keyframes_after_1_s_and_always_after_2_s() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = WebmWriter::create(&dir.path().join("a.webm"), &VIDEO_TRACKS).unwrap();
        let grew = |w: &mut WebmWriter, track, ts, key| {
            let before = w.bytes_written();
            w.write_frame(track, ts, key, &[0xAB; 50]).unwrap();
            w.bytes_written() != before
        };
        assert!(!grew(&mut writer, 1, 0, true));
        assert!(!grew(&mut writer, 2, 10, false));
        assert!(!grew(&mut writer, 1, 500, false));
        assert!(!grew(&mut writer, 1, 999, true), "a keyframe under 1 s in");
        assert!(!grew(&mut writer, 2, 1500, true), "audio under 2 s in");
        assert!(grew(&mut writer, 1, 1500, true), "a keyframe 1.5 s in");
        // The new cluster started at 1500.
        assert!(!grew(&mut writer, 1, 3499, false));
        assert!(grew(&mut writer, 1, 3500, false), "a delta frame 2 s in");
        assert!(!grew(&mut writer, 2, 5499, true));
        assert!(grew(&mut writer, 2, 5500, true), "audio 2 s in");
        assert!(!grew(&mut writer, 1, 6000, true), "a keyframe 0.5 s in");
        writer.finish().unwrap();
    }

    #[test]
    fn a_crash_keeps_every_closed_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crash.webm");
        let sent = call(5_000);
        let mut writer = WebmWriter::create(&path, &VIDEO_TRACKS).unwrap();
        let in_file = send(&mut writer, &sent);
        let len = writer.bytes_written();
        // Dropping is what a crash leaves: the open cluster lost, nothing patched.
        drop(writer);

        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, len);
        assert_eq!(bytes[40..48], UNKNOWN_SIZE);
        let (read, end) = read_frames(&bytes);
        end.unwrap();
        assert_eq!(read.len(), in_file);
        assert_prefix(&read, &sent);
        let last = sent.last().unwrap().timestamp;
        let older = sent.iter().filter(|f| f.timestamp + 2000 <= last).count();
        assert!(
            read.len() >= older,
            "{} read, {older} older than 2 s",
            read.len()
        );
        assert!(read.len() < sent.len());
        let mkv = MatroskaFile::open(Cursor::new(&bytes[..])).unwrap();
        assert_eq!(mkv.info().duration(), None);
    }

    #[test]
    fn flush_cluster_keeps_the_open_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flushed.webm");
        let sent = call(1_500);
        let mut writer = WebmWriter::create(&path, &VIDEO_TRACKS).unwrap();
        send(&mut writer, &sent);
        writer.flush_cluster().unwrap();
        let len = writer.bytes_written();
        drop(writer);

        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, len);
        let (read, end) = read_frames(&bytes);
        end.unwrap();
        assert_eq!(read.len(), sent.len());
        assert_prefix(&read, &sent);
    }

    #[test]
    fn a_file_cut_inside_its_last_cluster_reads_up_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.webm");
        let sent = call(6_000);
        let mut writer = WebmWriter::create(&path, &VIDEO_TRACKS).unwrap();
        let in_earlier_clusters = send(&mut writer, &sent);
        let last_cluster_at = writer.bytes_written() as usize;
        writer.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(last_cluster_at < bytes.len());

        let (read, end) = read_frames(&bytes[..last_cluster_at]);
        end.unwrap();
        assert_eq!(read.len(), in_earlier_clusters);
        assert_prefix(&read, &sent);

        let cuts = (last_cluster_at + 1..bytes.len()).step_by(97);
        for cut in cuts.chain([bytes.len() - 1]) {
            // The demuxer may stop with an error at the torn block; what it gave must be
            // whole and right.
            let (read, _) = read_frames(&bytes[..cut]);
            assert!(read.len() >= in_earlier_clusters, "cut at {cut}");
            assert!(read.len() < sent.len(), "cut at {cut}");
            assert_prefix(&read, &sent);
        }
    }

    #[test]
    fn timestamps_never_go_back_and_bad_frames_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd.webm");
        let mut writer = WebmWriter::create(&path, &VIDEO_TRACKS).unwrap();
        writer.write_frame(2, 100, true, b"a0").unwrap();
        writer.write_frame(1, 90, true, b"v0").unwrap();
        // The caller's keyframe flag means nothing for Opus: every frame is one.
        writer.write_frame(2, 50, false, b"a1").unwrap();
        writer.write_frame(1, 140, false, b"v1").unwrap();
        assert_eq!(writer.duration_ms(), 140);

        for track in [0, 3, u64::MAX] {
            let err = writer.write_frame(track, 150, true, b"x").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "track {track}");
            assert!(err.to_string().contains(&format!("track {track}")), "{err}");
        }
        let huge = vec![0; MAX_FRAME_BYTES + 1];
        let err = writer.write_frame(1, 150, true, &huge).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // A frame of exactly the limit is fine, and a refused frame spoils nothing.
        writer
            .write_frame(1, 150, false, &huge[..MAX_FRAME_BYTES])
            .unwrap();
        writer.write_frame(2, 160, true, b"a2").unwrap();
        let summary = writer.finish().unwrap();
        assert_eq!(summary.frames, [3, 3]);
        assert_eq!(summary.duration_ms, 160);

        let (read, end) = read_frames(&std::fs::read(&path).unwrap());
        end.unwrap();
        let got: Vec<_> = read
            .iter()
            .map(|f| (f.track, f.timestamp, f.is_keyframe.unwrap()))
            .collect();
        let expected = [
            (2, 100, true),
            (1, 100, true),
            (2, 100, true),
            (1, 140, false),
            (1, 150, false),
            (2, 160, true),
        ];
        assert_eq!(got, expected);
        assert_eq!(read[4].data.len(), MAX_FRAME_BYTES);
    }

    #[test]
    fn create_refuses_an_existing_file_and_bad_tracks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taken.webm");
        std::fs::write(&path, b"keep me").unwrap();
        let err = WebmWriter::create(&path, &VIDEO_TRACKS).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");

        let fresh = dir.path().join("fresh.webm");
        let bad: [&[TrackKind]; 4] = [
            &[],
            &[TrackKind::Vp8 {
                width: 0,
                height: 480,
            }],
            &[TrackKind::Opus { channels: 0 }],
            &[TrackKind::Opus { channels: 6 }],
        ];
        for tracks in bad {
            let err = WebmWriter::create(&fresh, tracks).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{tracks:?}");
            assert!(!fresh.exists());
        }
    }

    /// A disk that holds `room` bytes, and whose syncs can fail.
    #[derive(Default)]
    struct SmallDisk {
        data: Vec<u8>,
        pos: usize,
        room: usize,
        /// The most the disk ever held.
        high_water: usize,
        sync_fails: bool,
    }

    impl Write for SmallDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.room.saturating_sub(self.pos));
            if n == 0 && !buf.is_empty() {
                return Err(io::ErrorKind::StorageFull.into());
            }
            let end = self.pos + n;
            if self.data.len() < end {
                self.data.resize(end, 0);
            }
            self.data[self.pos..end].copy_from_slice(&buf[..n]);
            self.pos = end;
            self.high_water = self.high_water.max(self.data.len());
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seek for SmallDisk {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            let SeekFrom::Start(at) = to else {
                unimplemented!("the writer seeks from the start only")
            };
            self.pos = at as usize;
            Ok(at)
        }
    }

    impl Storage for SmallDisk {
        fn set_len(&mut self, len: u64) -> io::Result<()> {
            self.data.resize(len as usize, 0);
            Ok(())
        }

        fn sync(&mut self) -> io::Result<()> {
            if self.sync_fails {
                return Err(io::Error::other("EIO"));
            }
            Ok(())
        }
    }

    /// Writes audio frames (20 ms, 100 bytes) until one fails.
    fn fill(mux: &mut Muxer<SmallDisk>) -> (io::Error, Vec<Sent>) {
        let mut sent = Vec::new();
        for i in 0..10_000u64 {
            let frame = Sent {
                track: 1,
                timestamp: i * 20,
                keyframe: true,
                data: payload(1, i, 100),
            };
            if let Err(e) = mux.write_frame(1, frame.timestamp, true, &frame.data) {
                return (e, sent);
            }
            sent.push(frame);
        }
        panic!("the disk never filled");
    }

    #[test]
    fn a_full_disk_leaves_the_file_at_its_last_whole_cluster() {
        let tracks = [TrackKind::Opus { channels: 2 }];
        let disk = SmallDisk {
            room: usize::MAX,
            ..SmallDisk::default()
        };
        let mut mux = Muxer::start(disk, &tracks).unwrap();
        // Two 2-second clusters of 100 frames (about 10.6 kB each) fit; the third does not.
        mux.out.room = mux.len as usize + 30_000;
        let (err, sent) = fill(&mut mux);
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(
            mux.out.high_water, mux.out.room,
            "the third cluster went in part way"
        );
        assert_eq!(mux.out.data.len() as u64, mux.len);
        assert_eq!(mux.frames, [200]);

        let (read, end) = read_frames(&mux.out.data);
        end.unwrap();
        assert_eq!(read.len(), 200);
        assert_prefix(&read, &sent);

        mux.out.room = usize::MAX;
        let err = mux.write_frame(1, 1_000_000, true, b"late").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert!(mux.flush_cluster().is_err());
        assert!(mux.finish().is_err());
        assert_eq!(mux.out.data.len() as u64, mux.len);
    }

    #[test]
    fn a_failed_sync_undoes_the_cluster_write() {
        let disk = SmallDisk {
            room: usize::MAX,
            ..SmallDisk::default()
        };
        let mut mux = Muxer::start(disk, &VIDEO_TRACKS).unwrap();
        let head = mux.len;
        mux.write_frame(2, 0, true, &[1; 100]).unwrap();
        mux.out.sync_fails = true;
        let err = mux.write_frame(2, 2000, true, &[2; 100]).unwrap_err();
        assert_eq!(err.to_string(), "EIO");
        assert_eq!(mux.len, head);
        assert_eq!(mux.out.data.len() as u64, head);
        assert!(mux.out.high_water as u64 > head);
        assert_eq!(mux.frames, [0, 0]);
        assert!(mux.write_frame(2, 2020, true, &[3; 100]).is_err());
    }
}
