//! The Cloud Storage uploader (`ion_cluster::gcs`) against a fake JSON API (tests/gcs/fake.rs)
//! that checks the resumable protocol as the real service does: chunking, resuming after 5xx
//! and broken connections from what the session really holds, new sessions after expiry,
//! the CRC32C check that keeps the local file, and errors that are final at once. The bearer
//! tokens are self-signed by a throwaway service-account key, and the fake verifies them.

#[path = "gcs/fake.rs"]
mod fake;
#[path = "gcs/key.rs"]
mod key;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use fake::{AuthCheck, FakeStorage, Fault, QUANTUM, Seen};
use ion_cluster::compute::{Auth, RetryPolicy, install_crypto_provider};
use ion_cluster::gcs::{BucketPath, CHUNK_QUANTUM, StorageConfig, UploadError, Uploader};
use key::{Key, service_account_key, signed_by};
use serde_json::{Value, json};

const BUCKET: &str = "rec-bucket";
/// ~1.3 MiB: five full chunks and a short one.
const SIZE: usize = 1_363_148;

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_attempts: 8,
    }
}

fn uploader(fake: &FakeStorage, key: &Key) -> Uploader {
    Uploader::new(StorageConfig {
        base_url: fake.url(),
        auth: Auth::KeyFile(key.path.clone()),
        retry: fast_retry(),
        chunk_bytes: 262_144,
    })
    .expect("the uploader builds")
}

/// A file of `len` random bytes.
fn random_file(dir: &Path, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).expect("writing the file");
    (path, bytes)
}

fn object_name() -> String {
    BucketPath::parse(&format!("gs://{BUCKET}/calls/2026"))
        .expect("a bucket path")
        .object("room-1/alice.webm")
}

fn put_requests(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter().filter(|s| s.method == "PUT").collect()
}

/// The chunks cover `0..size` in order, each but the last exactly one quantum.
fn assert_contiguous(chunks: &[&Seen], size: u64) {
    let mut next = 0;
    for (i, seen) in chunks.iter().enumerate() {
        let (first, last, total) = seen.chunk().unwrap_or_else(|| panic!("a chunk: {seen:?}"));
        assert_eq!((first, total), (next, size), "{seen:?}");
        assert_eq!(seen.body_len as u64, last - first + 1, "{seen:?}");
        if i + 1 < chunks.len() {
            assert_eq!(last - first + 1, QUANTUM, "{seen:?}");
        }
        next = last + 1;
    }
    assert_eq!(next, size, "the chunks end at the end of the file");
}

#[tokio::test]
async fn files_go_up_in_contiguous_quantum_chunks() {
    install_crypto_provider();
    let key = service_account_key();
    assert_eq!(CHUNK_QUANTUM as u64, QUANTUM);
    let name = object_name();
    for (len, seed) in [(SIZE, 1), (2 * CHUNK_QUANTUM, 2), (1000, 3), (0, 4)] {
        let fake = FakeStorage::start(&[BUCKET], signed_by(&key)).await;
        let (path, bytes) = random_file(key.dir.path(), &format!("{len}.webm"), len, seed);
        let uploaded = uploader(&fake, &key)
            .upload_file(&path, BUCKET, &name)
            .await
            .unwrap_or_else(|e| panic!("{len} bytes: {e}"));
        assert_eq!(fake.rejections(), Vec::<String>::new(), "{len} bytes");
        assert_eq!(uploaded.url, format!("gs://{BUCKET}/{name}"));
        assert_eq!(uploaded.bytes, len as u64);
        assert_eq!(fake.objects(), vec![(BUCKET.to_owned(), name.clone())]);
        assert!(
            fake.object(BUCKET, &name) == Some(bytes.clone()),
            "{len} bytes differ"
        );
        let resource = fake.resource(BUCKET, &name).expect("the object resource");
        assert_eq!(resource["contentType"], "video/webm");

        let seen = fake.seen();
        assert_eq!(uploaded.requests as usize, seen.len(), "{seen:#?}");
        assert_eq!(seen[0].method, "POST");
        let puts = put_requests(&seen);
        assert_eq!(puts.len(), seen.len() - 1, "one POST, then PUTs: {seen:#?}");
        let session = puts[0].upload_id().expect("a session URI");
        assert!(
            puts.iter()
                .all(|p| p.upload_id().as_deref() == Some(&session))
        );
        let (last, before) = puts.split_last().expect("a PUT");
        assert_eq!(last.status, 200, "{last:?}");
        assert!(before.iter().all(|p| p.status == 308), "{seen:#?}");
        if len == 0 {
            assert_eq!(puts.len(), 1);
            assert_eq!(last.content_range.as_deref(), Some("bytes */0"));
        } else {
            assert_eq!(puts.len(), len.div_ceil(CHUNK_QUANTUM), "{seen:#?}");
            assert_contiguous(&puts, len as u64);
        }
    }
}

#[tokio::test]
async fn a_503_and_a_broken_connection_resume_from_what_the_session_holds() {
    install_crypto_provider();
    let key = service_account_key();
    let fake = FakeStorage::start(&[BUCKET], signed_by(&key)).await;
    fake.fault_put(2, Fault::Fail(503));
    fake.fault_put(4, Fault::Break);
    let (path, bytes) = random_file(key.dir.path(), "a.webm", SIZE, 5);
    let name = object_name();
    let uploaded = uploader(&fake, &key)
        .upload_file(&path, BUCKET, &name)
        .await
        .expect("the upload resumes");
    assert_eq!(fake.rejections(), Vec::<String>::new());
    assert!(
        fake.object(BUCKET, &name) == Some(bytes),
        "the object differs"
    );

    let seen = fake.seen();
    assert_eq!(uploaded.requests as usize, seen.len());
    assert_eq!(seen.iter().filter(|s| s.method == "POST").count(), 1);
    let puts = put_requests(&seen);
    let total = SIZE as u64;
    let q = QUANTUM;
    // PUT 2 failed before keeping anything: the session still holds the first chunk.
    assert_eq!(puts[1].fault, Some(Fault::Fail(503)));
    assert_eq!(puts[1].chunk(), Some((q, 2 * q - 1, total)));
    assert!(puts[2].is_status_query(), "{:?}", puts[2]);
    assert_eq!(puts[2].range.as_deref(), Some("bytes=0-262143"));
    // PUT 4 sent the second chunk again; half of it was kept before the connection broke.
    assert_eq!(puts[3].fault, Some(Fault::Break));
    assert_eq!(puts[3].chunk(), Some((q, 2 * q - 1, total)));
    assert!(puts[4].is_status_query(), "{:?}", puts[4]);
    let held = q + q / 2;
    assert_eq!(puts[4].range, Some(format!("bytes=0-{}", held - 1)));
    // The rest goes from there, not from the uploader's own idea of the offset.
    let rest: Vec<&Seen> = puts[5..].to_vec();
    assert_eq!(rest[0].chunk().map(|c| c.0), Some(held));
    let mut next = held;
    for seen in &rest {
        let (first, last, _) = seen.chunk().expect("chunks after the faults");
        assert_eq!(first, next, "{seen:?}");
        next = last + 1;
    }
    assert_eq!(next, total);
    assert_eq!(rest.last().map(|s| s.status), Some(200));
}

/// The answer to a chunk the session kept is lost, and so is the next status query's: the
/// uploader sends the chunk again from where it last knew, and the session takes only what
/// is new. A lost answer to the last chunk is found by a status query (200 with the object).
#[tokio::test]
async fn lost_answers_are_found_out_by_asking_the_session() {
    install_crypto_provider();
    let key = service_account_key();
    let fake = FakeStorage::start(&[BUCKET], signed_by(&key)).await;
    fake.fault_put(2, Fault::Lose);
    fake.fault_put(3, Fault::Fail(503));
    let (path, bytes) = random_file(key.dir.path(), "a.webm", SIZE, 10);
    let name = object_name();
    let uploaded = uploader(&fake, &key)
        .upload_file(&path, BUCKET, &name)
        .await
        .expect("the upload survives lost answers");
    assert_eq!(fake.rejections(), Vec::<String>::new());
    assert!(
        fake.object(BUCKET, &name) == Some(bytes.clone()),
        "the object differs"
    );
    let seen = fake.seen();
    assert_eq!(uploaded.requests as usize, seen.len());
    let puts = put_requests(&seen);
    let (q, total) = (QUANTUM, SIZE as u64);
    assert_eq!(puts[1].chunk(), Some((q, 2 * q - 1, total)));
    assert!(
        puts[2].is_status_query() && puts[2].status == 503,
        "{:?}",
        puts[2]
    );
    // Sent again although the session holds it: 308 with both chunks held.
    assert_eq!(puts[3].chunk(), Some((q, 2 * q - 1, total)));
    assert_eq!(puts[3].range, Some(format!("bytes=0-{}", 2 * q - 1)));
    assert_eq!(puts[4].chunk().map(|c| c.0), Some(2 * q));

    // The last chunk's answer lost: the object is complete, and a status query says so.
    let fake = FakeStorage::start(&[BUCKET], signed_by(&key)).await;
    let chunks = SIZE.div_ceil(CHUNK_QUANTUM);
    fake.fault_put(chunks, Fault::Lose);
    let uploaded = uploader(&fake, &key)
        .upload_file(&path, BUCKET, &name)
        .await
        .expect("the status query finds the object");
    assert_eq!(fake.rejections(), Vec::<String>::new());
    assert!(
        fake.object(BUCKET, &name) == Some(bytes),
        "the object differs"
    );
    let seen = fake.seen();
    assert_eq!(uploaded.requests as usize, seen.len());
    let puts = put_requests(&seen);
    assert_eq!(puts.len(), chunks + 1, "{seen:#?}");
    assert_eq!(puts[chunks - 1].fault, Some(Fault::Lose));
    assert!(puts[chunks].is_status_query() && puts[chunks].status == 200);
}

#[tokio::test]
async fn an_expired_session_starts_the_upload_again() {
    install_crypto_provider();
    let key = service_account_key();
    let fake = FakeStorage::start(&[BUCKET], signed_by(&key)).await;
    fake.fault_put(3, Fault::Expire);
    let (path, bytes) = random_file(key.dir.path(), "a.webm", SIZE, 6);
    let name = object_name();
    let uploaded = uploader(&fake, &key)
        .upload_file(&path, BUCKET, &name)
        .await
        .expect("a new session finishes the upload");
    // A PUT to the forgotten session would have been refused (404) and kept here.
    assert_eq!(fake.rejections(), Vec::<String>::new());
    assert!(
        fake.object(BUCKET, &name) == Some(bytes),
        "the object differs"
    );

    let seen = fake.seen();
    assert_eq!(uploaded.requests as usize, seen.len());
    let posts: Vec<usize> = (0..seen.len())
        .filter(|&i| seen[i].method == "POST")
        .collect();
    assert_eq!(posts.len(), 2, "a second session: {seen:#?}");
    let expired = &seen[posts[1] - 1];
    assert_eq!((expired.fault, expired.status), (Some(Fault::Expire), 410));
    let first = put_requests(&seen[..posts[1]]);
    let second = put_requests(&seen[posts[1]..]);
    assert_ne!(first[0].upload_id(), second[0].upload_id());
    assert!(
        second
            .iter()
            .all(|p| p.upload_id() == second[0].upload_id())
    );
    assert_contiguous(&second, SIZE as u64);
    assert_eq!(second.last().map(|s| s.status), Some(200));
}

#[tokio::test]
async fn a_corrupt_object_is_a_mismatch_and_the_file_is_kept() {
    install_crypto_provider();
    let key = service_account_key();
    let fake = FakeStorage::start(&[BUCKET], signed_by(&key)).await;
    fake.fault_put(2, Fault::Corrupt);
    let (path, bytes) = random_file(key.dir.path(), "a.webm", SIZE, 7);
    let name = object_name();
    let error = uploader(&fake, &key)
        .upload_file(&path, BUCKET, &name)
        .await
        .expect_err("the CRC32C differs");
    assert_eq!(fake.rejections(), Vec::<String>::new());
    let text = error.to_string();
    match &error {
        UploadError::Mismatch { bucket, object, .. } => {
            assert_eq!((bucket.as_str(), object.as_str()), (BUCKET, name.as_str()));
        }
        other => panic!("not a mismatch: {other:?}"),
    }
    assert!(text.contains("the local file is kept"), "{text}");
    let crc = crc32c::crc32c(&bytes);
    let expected = base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes());
    assert!(text.contains(&expected), "{text}");
    // The uploader never deletes: the file is there, unchanged.
    assert!(
        std::fs::read(&path).ok() == Some(bytes.clone()),
        "the file changed"
    );
    // The object really differs, in one byte.
    let stored = fake.object(BUCKET, &name).expect("the (corrupt) object");
    assert_eq!(stored.len(), bytes.len());
    assert_eq!(stored.iter().zip(&bytes).filter(|(a, b)| a != b).count(), 1);
}

#[tokio::test]
async fn a_missing_bucket_and_bad_credentials_are_final_at_once() {
    install_crypto_provider();
    let key = service_account_key();
    let (path, _) = random_file(key.dir.path(), "a.webm", 1000, 8);
    let name = object_name();

    let fake = FakeStorage::start(&["other-bucket"], signed_by(&key)).await;
    let error = uploader(&fake, &key)
        .upload_file(&path, BUCKET, &name)
        .await
        .expect_err("no such bucket");
    let text = error.to_string();
    match error {
        UploadError::Refused {
            status, message, ..
        } => {
            assert_eq!(status, 404);
            assert_eq!(message, "The specified bucket does not exist.");
        }
        other => panic!("not refused: {other:?}"),
    }
    assert!(
        text.contains("The specified bucket does not exist."),
        "{text}"
    );
    assert_eq!(fake.seen().len(), 1, "no retries: {:#?}", fake.seen());
    assert_eq!(fake.rejections(), Vec::<String>::new());
    assert!(fake.objects().is_empty());

    // Refused credentials, on the session POST.
    let refuse: AuthCheck = Arc::new(|_: &str| Err("revoked".to_owned()));
    let fake = FakeStorage::start(&[BUCKET], refuse).await;
    let error = uploader(&fake, &key)
        .upload_file(&path, BUCKET, &name)
        .await
        .expect_err("bad credentials");
    match &error {
        UploadError::Refused {
            status: 401,
            message,
            ..
        } => assert_eq!(message, "Invalid Credentials"),
        other => panic!("not a 401: {other:?}"),
    }
    assert_eq!(fake.seen().len(), 1, "no retries: {:#?}", fake.seen());
    assert_eq!(fake.rejections(), ["bad token: revoked"]);

    // Credentials refused from the first chunk on.
    let calls = Arc::new(AtomicUsize::new(0));
    let check = signed_by(&key);
    let first_only: AuthCheck = Arc::new(move |token: &str| {
        check(token)?;
        match calls.fetch_add(1, Ordering::SeqCst) {
            0 => Ok(()),
            _ => Err("revoked".to_owned()),
        }
    });
    let fake = FakeStorage::start(&[BUCKET], first_only).await;
    let error = uploader(&fake, &key)
        .upload_file(&path, BUCKET, &name)
        .await
        .expect_err("bad credentials");
    assert!(
        matches!(
            error,
            UploadError::Refused {
                status: 401,
                what: "the upload",
                ..
            }
        ),
        "{error:?}"
    );
    let seen = fake.seen();
    assert_eq!(
        seen.iter()
            .map(|s| (s.method.as_str(), s.status))
            .collect::<Vec<_>>(),
        [("POST", 200), ("PUT", 401)]
    );
}

#[tokio::test]
async fn faults_beyond_max_attempts_give_up_saying_how_many() {
    install_crypto_provider();
    let key = service_account_key();
    let fake = FakeStorage::start(&[BUCKET], signed_by(&key)).await;
    fake.fault_every_put(Fault::Fail(503));
    let (path, _) = random_file(key.dir.path(), "a.webm", SIZE, 9);
    let started = Instant::now();
    let error = uploader(&fake, &key)
        .upload_file(&path, BUCKET, &object_name())
        .await
        .expect_err("every PUT fails");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the delays are short"
    );
    let text = error.to_string();
    match &error {
        UploadError::GaveUp { attempts, last, .. } => {
            assert_eq!(*attempts, 8);
            assert!(last.contains("503"), "{last}");
        }
        other => panic!("did not give up: {other:?}"),
    }
    assert!(text.contains("after 8 attempts"), "{text}");
    let seen = fake.seen();
    let puts = put_requests(&seen);
    // Eight tries of the first chunk, with a status query between each two.
    assert_eq!(puts.iter().filter(|p| p.chunk().is_some()).count(), 8);
    assert_eq!(puts.iter().filter(|p| p.is_status_query()).count(), 7);
    assert!(puts.iter().all(|p| p.status == 503));
    assert_eq!(fake.rejections(), Vec::<String>::new());
    assert!(fake.objects().is_empty());
}

/// The fake refuses what the real service would, so "no rejections" above means something,
/// and its broken connection really breaks.
#[tokio::test]
async fn the_fake_refuses_what_the_real_service_would() {
    install_crypto_provider();
    let fake = FakeStorage::start(
        &[BUCKET],
        Arc::new(|token: &str| {
            if token == "tok" {
                Ok(())
            } else {
                Err(format!("{token:?}"))
            }
        }),
    )
    .await;
    let http = reqwest::Client::new();
    let q = QUANTUM as usize;
    let total = 2 * q + 10;
    let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let open_url = format!(
        "{}/upload/storage/v1/b/{BUCKET}/o?uploadType=resumable&name=a.webm",
        fake.url()
    );
    let open = |url: &str, length: Option<usize>, body: Value| {
        let mut request = http
            .post(url)
            .bearer_auth("tok")
            .header("X-Upload-Content-Type", "video/webm")
            .json(&body);
        if let Some(length) = length {
            request = request.header("X-Upload-Content-Length", length);
        }
        request.send()
    };
    let mut refused = 0;
    let no_type = open_url.replace("uploadType=resumable&", "");
    let status = open(&no_type, Some(total), json!({}))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 400);
    let status = open(&open_url, None, json!({})).await.unwrap().status();
    assert_eq!(status, 400);
    let other_name = json!({"name": "b.webm"});
    let status = open(&open_url, Some(total), other_name)
        .await
        .unwrap()
        .status();
    assert_eq!(status, 400);
    refused += 3;
    assert_eq!(fake.rejections().len(), refused, "{:#?}", fake.rejections());

    let response = open(&open_url, Some(total), json!({"name": "a.webm"}))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(session.contains("upload_id="), "{session}");
    let put = |range: String, body: &[u8], token: &str| {
        http.put(&session)
            .bearer_auth(token)
            .header("Content-Range", range)
            .body(body.to_vec())
            .send()
    };
    let range_of = |r: &reqwest::Response| {
        r.headers()
            .get("range")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    for (range, body, token, status) in [
        // Not a multiple of 256 KiB, and not the last chunk.
        (
            format!("bytes 0-{}/{total}", q / 2 - 1),
            &data[..q / 2],
            "tok",
            400,
        ),
        // A gap: the session holds nothing yet.
        (
            format!("bytes {q}-{}/{total}", 2 * q - 1),
            &data[q..2 * q],
            "tok",
            400,
        ),
        // Not the size the session was opened with.
        (
            format!("bytes 0-{}/{}", q - 1, total + 1),
            &data[..q],
            "tok",
            400,
        ),
        // A body shorter than its range.
        (
            format!("bytes 0-{}/{total}", q - 1),
            &data[..q - 1],
            "tok",
            400,
        ),
        // Past the end.
        (format!("bytes 0-{total}/{total}"), &data[..], "tok", 400),
        (
            format!("bytes 0-{}/{total}", q - 1),
            &data[..q],
            "forged",
            401,
        ),
    ] {
        let answer = put(range.clone(), body, token).await.unwrap();
        assert_eq!(answer.status(), status, "{range}");
        refused += 1;
    }
    assert_eq!(fake.rejections().len(), refused, "{:#?}", fake.rejections());
    let answer = put(format!("bytes */{total}"), &[], "tok").await.unwrap();
    assert_eq!((answer.status().as_u16(), range_of(&answer)), (308, None));

    // A chunk, then one that overlaps it: the session takes what is new.
    let answer = put(format!("bytes 0-{}/{total}", q - 1), &data[..q], "tok")
        .await
        .unwrap();
    assert_eq!(answer.status(), 308);
    assert_eq!(range_of(&answer), Some(format!("bytes=0-{}", q - 1)));
    let answer = put(
        format!("bytes 0-{}/{total}", 2 * q - 1),
        &data[..2 * q],
        "tok",
    )
    .await
    .unwrap();
    assert_eq!(range_of(&answer), Some(format!("bytes=0-{}", 2 * q - 1)));
    let answer = put(
        format!("bytes {}-{}/{total}", 2 * q, total - 1),
        &data[2 * q..],
        "tok",
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    let resource: Value = answer.json().await.unwrap();
    let crc = crc32c::crc32c(&data).to_be_bytes();
    assert_eq!(resource["kind"], "storage#object");
    assert_eq!(resource["size"], total.to_string());
    assert_eq!(
        resource["crc32c"],
        base64::engine::general_purpose::STANDARD.encode(crc)
    );
    let answer = put(format!("bytes */{total}"), &[], "tok").await.unwrap();
    assert_eq!(
        answer.status(),
        200,
        "a complete session answers with the object"
    );
    assert_eq!(answer.json::<Value>().await.unwrap(), resource);
    assert!(fake.object(BUCKET, "a.webm") == Some(data.clone()));
    assert_eq!(fake.rejections().len(), refused);

    // A broken connection: the client sees an error, and the session half the chunk.
    let response = open(&open_url, Some(total), json!({})).await.unwrap();
    let session = response.headers()["location"].to_str().unwrap().to_owned();
    fake.fault_put(fake.puts() + 1, Fault::Break);
    let sent = http
        .put(&session)
        .bearer_auth("tok")
        .header("Content-Range", format!("bytes 0-{}/{total}", q - 1))
        .body(data[..q].to_vec())
        .send()
        .await;
    let broke = match sent {
        Err(error) => Some(error),
        Ok(response) => response.bytes().await.err(),
    };
    assert!(broke.is_some(), "the connection did not break");
    let answer = http
        .put(&session)
        .bearer_auth("tok")
        .header("Content-Range", format!("bytes */{total}"))
        .send()
        .await
        .unwrap();
    assert_eq!(range_of(&answer), Some(format!("bytes=0-{}", q / 2 - 1)));
    assert_eq!(fake.rejections().len(), refused);
}
