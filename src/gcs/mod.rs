//! Cloud Storage uploads through the JSON API's resumable protocol, for recordings:
//!
//! 1. `POST {base}/upload/storage/v1/b/{bucket}/o?uploadType=resumable&name={object}` opens
//!    an upload session; its URI comes back in `Location`.
//! 2. The file goes up in chunks (`PUT {session}` with `Content-Range: bytes a-b/size`, each
//!    chunk but the last a multiple of 256 KiB); the service answers 308 with the `Range` it
//!    holds, and 200/201 with the object once it has every byte.
//! 3. After a 5xx, a 429 or a broken connection the uploader asks the session what it holds
//!    (`Content-Range: bytes */size`) and goes on from there, with backoff; a session that
//!    has expired (404/410) starts again.
//! 4. The upload counts only when the object's `size` and `crc32c` match the file's; the
//!    caller deletes the local file only then.
//!
//! Credentials are those of the Compute client ([`crate::compute::Auth`]); the base URL is
//! configurable so tests can run it against a local fake.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use reqwest::{StatusCode, Url};
use thiserror::Error;

use crate::compute::{Auth, GceError, RetryPolicy, TokenSource};

pub const DEFAULT_BASE_URL: &str = "https://storage.googleapis.com";
/// Resumable chunks must be multiples of this, except the last.
pub const CHUNK_QUANTUM: usize = 256 * 1024;
/// 308 Resume Incomplete: the session holds part of the object.
const RESUME_INCOMPLETE: u16 = 308;

#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// `https://storage.googleapis.com`, or a test server.
    pub base_url: String,
    pub auth: Auth,
    pub retry: RetryPolicy,
    /// Bytes per request; rounded down to a multiple of [`CHUNK_QUANTUM`] (at least one).
    pub chunk_bytes: usize,
}

impl StorageConfig {
    pub fn new(auth: Auth) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            auth,
            retry: RetryPolicy::default(),
            chunk_bytes: 32 * CHUNK_QUANTUM,
        }
    }
}

/// `gs://bucket[/prefix]`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketPath {
    pub bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
}

impl BucketPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text.strip_prefix("gs://").ok_or_else(|| {
            format!("{text:?} is not a Cloud Storage path: give gs://BUCKET or gs://BUCKET/PREFIX")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
        if !valid {
            return Err(format!(
                "{bucket:?} in {text:?} is not a bucket name: 3-63 lowercase letters, digits, -, _ or ."
            ));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    /// The object name of `name` under the prefix.
    pub fn object(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

#[derive(Debug, Error)]
pub enum UploadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Google(#[from] GceError),
    #[error("Cloud Storage answered {status} to {what}: {message}")]
    Refused {
        status: u16,
        what: &'static str,
        message: String,
    },
    #[error("gave up on {what} after {attempts} attempts: {last}")]
    GaveUp {
        what: &'static str,
        attempts: u32,
        last: String,
    },
    #[error(
        "gs://{bucket}/{object} does not match the file: {found} uploaded where the file has \
         {expected}; the local file is kept"
    )]
    Mismatch {
        bucket: String,
        object: String,
        found: String,
        expected: String,
    },
}

/// A confirmed upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// `gs://bucket/object`.
    pub url: String,
    pub bytes: u64,
    /// Requests sent in all (chunks, status queries, retries): how hard it was.
    pub requests: u32,
}

/// Uploads files to Cloud Storage. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Uploader {
    http: reqwest::Client,
    base: Url,
    tokens: TokenSource,
    retry: RetryPolicy,
    chunk_bytes: usize,
}

/// What one request came back with, as the protocol sees it.
enum Answer {
    /// The object is complete: its resource.
    Done(serde_json::Value),
    /// The session holds this many bytes from the start.
    Holds(u64),
    /// The session is gone (404/410): start a new one.
    Expired,
    /// Worth another try: a 5xx, a 429 or a broken connection.
    Transient(String),
}

impl Uploader {
    pub fn new(config: StorageConfig) -> Result<Self, GceError> {
        let (base, http) = crate::compute::api_client(&config.base_url, Duration::from_secs(120))?;
        Ok(Self {
            http,
            base,
            tokens: TokenSource::new(&config.auth)?,
            retry: config.retry,
            chunk_bytes: (config.chunk_bytes / CHUNK_QUANTUM).max(1) * CHUNK_QUANTUM,
        })
    }

    /// Uploads `path` as `object` in `bucket` and checks the object against the file.
    pub async fn upload_file(
        &self,
        path: &Path,
        bucket: &str,
        object: &str,
    ) -> Result<Uploaded, UploadError> {
        let read_error = |source| UploadError::Read {
            path: path.display().to_string(),
            source,
        };
        let (size, crc) = file_crc32c(path).map_err(read_error)?;
        let mut file = std::fs::File::open(path).map_err(read_error)?;
        let mut requests = 0;
        let mut failures = 0;
        let mut last_failure: String;
        'session: loop {
            let session = self
                .open_session(bucket, object, size, &mut requests)
                .await?;
            let mut offset = 0;
            loop {
                let answer = if offset < size || size == 0 {
                    let end = (offset + self.chunk_bytes as u64).min(size);
                    let mut chunk = vec![0; (end - offset) as usize];
                    file.seek(SeekFrom::Start(offset))
                        .and_then(|_| file.read_exact(&mut chunk))
                        .map_err(read_error)?;
                    let range = if size == 0 {
                        "bytes */0".to_owned()
                    } else {
                        format!("bytes {offset}-{}/{size}", end - 1)
                    };
                    requests += 1;
                    self.put(&session, range, chunk).await?
                } else {
                    requests += 1;
                    self.put(&session, format!("bytes */{size}"), Vec::new())
                        .await?
                };
                let expired = matches!(answer, Answer::Expired);
                match answer {
                    Answer::Done(object_resource) => {
                        return confirmed(&object_resource, bucket, object, size, crc, requests);
                    }
                    // Progress: faults count afresh, so a long upload that recovers from
                    // one now and then is not given up on.
                    Answer::Holds(held) if held > offset => {
                        offset = held;
                        failures = 0;
                        continue;
                    }
                    // A 308 that holds nothing more (or has lost its Range header): count it,
                    // so that a session that keeps taking nothing cannot loop for ever.
                    Answer::Holds(held) => {
                        offset = held;
                        last_failure = format!("the session took none of the bytes from {held}");
                    }
                    Answer::Expired => last_failure = "the upload session expired".to_owned(),
                    Answer::Transient(why) => last_failure = why,
                }
                failures += 1;
                if failures >= self.retry.max_attempts {
                    return Err(UploadError::GaveUp {
                        what: "the upload",
                        attempts: failures,
                        last: last_failure,
                    });
                }
                tracing::warn!(%bucket, %object, offset, error = %last_failure, "upload interrupted; resuming");
                tokio::time::sleep(self.retry.delay(failures, None)).await;
                if expired {
                    continue 'session;
                }
                // What does the session hold? Ask before sending more.
                requests += 1;
                match self
                    .put(&session, format!("bytes */{size}"), Vec::new())
                    .await?
                {
                    Answer::Holds(held) => offset = held,
                    Answer::Done(object_resource) => {
                        return confirmed(&object_resource, bucket, object, size, crc, requests);
                    }
                    Answer::Expired => continue 'session,
                    Answer::Transient(why) => {
                        // The next round sends from the last known offset; the service
                        // answers with what it really holds.
                        tracing::warn!(%bucket, %object, error = %why, "cannot ask the upload session what it holds");
                    }
                }
            }
        }
    }

    /// Opens a resumable session and returns its URI, retrying what is worth retrying.
    async fn open_session(
        &self,
        bucket: &str,
        object: &str,
        size: u64,
        requests: &mut u32,
    ) -> Result<Url, UploadError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("the base URL can carry a path")
            .pop_if_empty()
            .extend(["upload", "storage", "v1", "b", bucket, "o"]);
        url.query_pairs_mut()
            .append_pair("uploadType", "resumable")
            .append_pair("name", object);
        let mut failures = 0;
        loop {
            *requests += 1;
            let token = self.tokens.token().await?;
            let sent = self
                .http
                .post(url.clone())
                .bearer_auth(token)
                .header("X-Upload-Content-Type", "video/webm")
                .header("X-Upload-Content-Length", size)
                .json(&serde_json::json!({ "name": object, "contentType": "video/webm" }))
                .send()
                .await;
            let why = match sent {
                Ok(response) if response.status().is_success() => {
                    let location = response
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| Url::parse(v).ok());
                    match location {
                        Some(location) => return Ok(location),
                        None => "no session URI in Location".to_owned(),
                    }
                }
                Ok(response) if retryable(response.status()) => {
                    format!("{}", response.status())
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    return Err(UploadError::Refused {
                        status,
                        what: "opening the upload",
                        message: error_message(response).await,
                    });
                }
                Err(error) => error.to_string(),
            };
            failures += 1;
            if failures >= self.retry.max_attempts {
                return Err(UploadError::GaveUp {
                    what: "opening the upload",
                    attempts: failures,
                    last: why,
                });
            }
            tokio::time::sleep(self.retry.delay(failures, None)).await;
        }
    }

    /// One PUT to the session: a chunk, or (empty) a status query.
    async fn put(
        &self,
        session: &Url,
        range: String,
        body: Vec<u8>,
    ) -> Result<Answer, UploadError> {
        let token = self.tokens.token().await?;
        let sent = self
            .http
            .put(session.clone())
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_RANGE, range)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => return Ok(Answer::Transient(error.to_string())),
        };
        let status = response.status();
        if status.as_u16() == RESUME_INCOMPLETE {
            let held = response
                .headers()
                .get(reqwest::header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(held_bytes)
                .unwrap_or(0);
            return Ok(Answer::Holds(held));
        }
        if status.is_success() {
            return Ok(match response.json::<serde_json::Value>().await {
                Ok(object) => Answer::Done(object),
                // The connection broke while the answer came: ask the session again.
                Err(error) => Answer::Transient(format!("reading the answer: {error}")),
            });
        }
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Ok(Answer::Expired);
        }
        if retryable(status) {
            return Ok(Answer::Transient(status.to_string()));
        }
        Err(UploadError::Refused {
            status: status.as_u16(),
            what: "the upload",
            message: error_message(response).await,
        })
    }
}

fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// The bytes a `Range: bytes=0-N` header says the session holds: N + 1.
fn held_bytes(range: &str) -> Option<u64> {
    let last = range.strip_prefix("bytes=0-")?.trim().parse::<u64>().ok()?;
    last.checked_add(1)
}

/// Google's error body's message, else the body.
async fn error_message(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or(text)
}

/// The upload, once the object resource shows the file's size and CRC32C.
fn confirmed(
    object_resource: &serde_json::Value,
    bucket: &str,
    object: &str,
    size: u64,
    crc: u32,
    requests: u32,
) -> Result<Uploaded, UploadError> {
    check(object_resource, bucket, object, size, crc)?;
    Ok(Uploaded {
        url: format!("gs://{bucket}/{object}"),
        bytes: size,
        requests,
    })
}

/// The object resource must have the file's size and CRC32C.
fn check(
    object_resource: &serde_json::Value,
    bucket: &str,
    object: &str,
    size: u64,
    crc: u32,
) -> Result<(), UploadError> {
    let found_size = object_resource["size"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok());
    let found_crc = object_resource["crc32c"].as_str().map(str::to_owned);
    let expected_crc = base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes());
    if found_size == Some(size) && found_crc.as_deref() == Some(expected_crc.as_str()) {
        return Ok(());
    }
    Err(UploadError::Mismatch {
        bucket: bucket.to_owned(),
        object: object.to_owned(),
        found: format!(
            "{} bytes with CRC32C {}",
            found_size.map_or("?".to_owned(), |s| s.to_string()),
            found_crc.as_deref().unwrap_or("?")
        ),
        expected: format!("{size} bytes with CRC32C {expected_crc}"),
    })
}

/// The file's size and CRC32C (Castagnoli), read in pieces.
pub fn file_crc32c(path: &Path) -> std::io::Result<(u64, u32)> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0; 1 << 20];
    let (mut size, mut crc) = (0u64, 0u32);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((size, crc));
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        size += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_paths_parse_and_name_objects() {
        let path = BucketPath::parse("gs://rec-bucket/calls/2026/").unwrap();
        assert_eq!(path.bucket, "rec-bucket");
        assert_eq!(path.object("a/alice.webm"), "calls/2026/a/alice.webm");
        assert_eq!(
            BucketPath::parse("gs://rec-bucket").unwrap().object("x"),
            "x"
        );
        for bad in [
            "rec-bucket",
            "s3://rec-bucket",
            "gs://",
            "gs://UP",
            "gs://ab/x",
        ] {
            assert!(BucketPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_held_range_is_read_from_a_308() {
        assert_eq!(held_bytes("bytes=0-262143"), Some(262_144));
        assert_eq!(held_bytes("bytes=5-9"), None);
        assert_eq!(held_bytes("garbage"), None);
        assert_eq!(held_bytes(&format!("bytes=0-{}", u64::MAX)), None);
    }

    #[test]
    fn an_object_counts_only_with_the_files_size_and_crc32c() {
        // CRC32C of "123456789" is 0xE3069283 (RFC 3720's check value).
        let crc = crc32c::crc32c(b"123456789");
        assert_eq!(crc, 0xE306_9283);
        let good = serde_json::json!({ "size": "9", "crc32c": "4waSgw==" });
        assert!(check(&good, "b", "o", 9, crc).is_ok());
        let short = serde_json::json!({ "size": "8", "crc32c": "4waSgw==" });
        let error = check(&short, "b", "o", 9, crc).unwrap_err().to_string();
        assert!(error.contains("local file is kept"), "{error}");
        let corrupt = serde_json::json!({ "size": "9", "crc32c": "AAAAAA==" });
        assert!(check(&corrupt, "b", "o", 9, crc).is_err());
    }
}
