//! A fake Cloud Storage JSON API on loopback, for the resumable-upload tests (tests/gcs.rs).
//!
//! It serves only the resumable upload protocol, and checks it as the real service does, so
//! the uploader is tested against the protocol rather than against itself: the session
//! `POST` (bearer token, `uploadType=resumable`, `name`, `X-Upload-Content-Type`,
//! `X-Upload-Content-Length`, a JSON body naming the same object), and every `PUT` to a
//! session (`Content-Range` with the session's total, no gaps, body as long as its range,
//! every chunk but the last a multiple of 256 KiB). What a correct client would never send
//! is answered with Google's error body and kept in `rejections()`, so a test that ends with
//! none has spoken the protocol right. Faults are placed on PUTs by their number (status
//! queries count): an error status, a connection broken mid-answer after half or all of the
//! chunk was kept, an expired session, a corrupted byte.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

/// Every chunk but the last is a multiple of this.
pub const QUANTUM: u64 = 256 * 1024;

/// Accepts or refuses a bearer token, saying why.
pub type AuthCheck = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and Google's error body; keep nothing.
    Fail(u16),
    /// Keep the first half of the chunk, then break the connection in the middle of the
    /// answer (a 200 whose body stream fails, so hyper aborts the connection).
    Break,
    /// The session has expired: answer 410 and forget it.
    Expire,
    /// Keep the whole chunk, then break the connection as `Break` does: the answer is lost.
    Lose,
    /// Keep the chunk with its first new byte flipped, and answer as usual.
    Corrupt,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub content_range: Option<String>,
    pub body_len: usize,
    pub status: u16,
    /// The `Range` header of the answer (a 308 from a session holding bytes).
    pub range: Option<String>,
    pub fault: Option<Fault>,
}

impl Seen {
    /// A `PUT` with `Content-Range: bytes */TOTAL`.
    pub fn is_status_query(&self) -> bool {
        self.method == "PUT"
            && self
                .content_range
                .as_deref()
                .is_some_and(|r| r.starts_with("bytes */"))
    }

    /// `(first, last, total)` of a chunk's `Content-Range: bytes A-B/TOTAL`.
    pub fn chunk(&self) -> Option<(u64, u64, u64)> {
        match parse_content_range(self.content_range.as_deref()?).ok()? {
            (Some(range), Some(total)) => Some((range.0, range.1, total)),
            _ => None,
        }
    }

    pub fn upload_id(&self) -> Option<String> {
        query_of(&self.target).remove("upload_id")
    }
}

struct Session {
    bucket: String,
    name: String,
    content_type: String,
    total: u64,
    data: Vec<u8>,
    /// The object resource, once every byte is there.
    done: Option<Value>,
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Session>,
    objects: BTreeMap<(String, String), (Vec<u8>, Value)>,
    put_faults: HashMap<usize, Fault>,
    every_put: Option<Fault>,
    puts: usize,
    seen: Vec<Seen>,
    rejections: Vec<String>,
}

struct Shared {
    base: String,
    buckets: Vec<String>,
    auth: AuthCheck,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake state")
    }
}

pub struct FakeStorage {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStorage {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeStorage {
    /// A server holding `buckets`, accepting the bearer tokens `auth` accepts.
    pub async fn start(buckets: &[&str], auth: AuthCheck) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake Cloud Storage server");
        let addr = listener.local_addr().expect("its address");
        let shared = Arc::new(Shared {
            base: format!("http://{addr}"),
            buckets: buckets.iter().map(|b| (*b).to_owned()).collect(),
            auth,
            state: Mutex::new(State::default()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { shared, server }
    }

    /// The uploader's base URL: `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.shared.base.clone()
    }

    /// The `n`-th PUT (1-based, status queries included, over all sessions) meets `fault`.
    pub fn fault_put(&self, n: usize, fault: Fault) {
        self.shared.state().put_faults.insert(n, fault);
    }

    /// Every PUT without a fault of its own meets `fault`.
    pub fn fault_every_put(&self, fault: Fault) {
        self.shared.state().every_put = Some(fault);
    }

    /// PUTs go through again after [`Self::fault_every_put`].
    #[allow(dead_code)] // tests/recording.rs heals; tests/gcs.rs does not
    pub fn heal(&self) {
        self.shared.state().every_put = None;
    }

    /// PUTs seen so far: `fault_put(puts() + 1, ..)` hits the next one.
    pub fn puts(&self) -> usize {
        self.shared.state().puts
    }

    /// The bytes of `bucket/name`, once an upload has completed it.
    pub fn object(&self, bucket: &str, name: &str) -> Option<Vec<u8>> {
        self.shared
            .state()
            .objects
            .get(&(bucket.to_owned(), name.to_owned()))
            .map(|(bytes, _)| bytes.clone())
    }

    /// The object resource of `bucket/name`, as its last upload answered it.
    pub fn resource(&self, bucket: &str, name: &str) -> Option<Value> {
        self.shared
            .state()
            .objects
            .get(&(bucket.to_owned(), name.to_owned()))
            .map(|(_, resource)| resource.clone())
    }

    /// `(bucket, name)` of every object.
    pub fn objects(&self) -> Vec<(String, String)> {
        self.shared.state().objects.keys().cloned().collect()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.state().seen.clone()
    }

    pub fn rejections(&self) -> Vec<String> {
        self.shared.state().rejections.clone()
    }
}

fn google_error(status: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

/// Refuses what a correct client would never send, and keeps the reason.
fn reject(shared: &Shared, status: u16, reason: &str, why: String) -> Response {
    shared.state().rejections.push(why.clone());
    google_error(status, reason, &why)
}

/// The decoded query of a request target (`/path?a=b`).
fn query_of(target: &str) -> HashMap<String, String> {
    reqwest::Url::parse(&format!("http://fake{target}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

type Range = (Option<(u64, u64)>, Option<u64>);

/// `bytes A-B/TOTAL`, `bytes */TOTAL`; TOTAL may be `*` (not yet known).
fn parse_content_range(text: &str) -> Result<Range, String> {
    let bad = || format!("Content-Range {text:?} is not bytes A-B/TOTAL or bytes */TOTAL");
    let rest = text.strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, total) = rest.split_once('/').ok_or_else(bad)?;
    let total = match total {
        "*" => None,
        t => Some(t.parse::<u64>().map_err(|_| bad())?),
    };
    let range = match range {
        "*" => None,
        r => {
            let (a, b) = r.split_once('-').ok_or_else(bad)?;
            let (a, b) = (
                a.parse::<u64>().map_err(|_| bad())?,
                b.parse::<u64>().map_err(|_| bad())?,
            );
            if a > b {
                return Err(bad());
            }
            Some((a, b))
        }
    };
    if range.is_none() && total.is_none() {
        // `bytes */*` asks nothing the session does not know; fine for the real service, but
        // this uploader always knows the size.
        return Err(bad());
    }
    Ok((range, total))
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| uri.path().to_owned());
    let content_range = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (response, fault) = route(&shared, &method, &uri, &headers, &body);
    let range = response
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    shared.state().seen.push(Seen {
        method: method.to_string(),
        target,
        content_range,
        body_len: body.len(),
        status: response.status().as_u16(),
        range,
        fault,
    });
    response
}

fn route(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> (Response, Option<Fault>) {
    let path = uri.path();
    let bucket = path
        .strip_prefix("/upload/storage/v1/b/")
        .and_then(|rest| rest.strip_suffix("/o"))
        .filter(|b| !b.is_empty() && !b.contains('/'));
    let Some(bucket) = bucket else {
        let why = format!("no JSON API upload method at {method} {path}");
        return (reject(shared, 404, "notFound", why), None);
    };
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let query = query_of(&query);
    match *method {
        Method::POST => (open(shared, bucket, &query, headers, body), None),
        Method::PUT => put(shared, bucket, &query, headers, body),
        _ => {
            let why = format!("{method} {path}: uploads take POST (a session) or PUT (a chunk)");
            (reject(shared, 405, "methodNotAllowed", why), None)
        }
    }
}

/// The bearer token must pass the test's check; else the 401 to answer.
fn refuse_token(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let why = match authorization.strip_prefix("Bearer ") {
        None => format!("no bearer token ({authorization:?})"),
        Some(token) => match (shared.auth)(token) {
            Ok(()) => return None,
            Err(why) => format!("bad token: {why}"),
        },
    };
    shared.state().rejections.push(why);
    let body = json!({
        "error": {
            "code": 401,
            "message": "Invalid Credentials",
            "errors": [{
                "message": "Invalid Credentials",
                "domain": "global",
                "reason": "authError",
                "locationType": "header",
                "location": "Authorization",
            }],
        }
    });
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"https://accounts.google.com/\"",
            )],
            axum::Json(body),
        )
            .into_response(),
    )
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /upload/storage/v1/b/{bucket}/o?uploadType=resumable&name=...`: a new session.
fn open(
    shared: &Shared,
    bucket: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if let Some(refused) = refuse_token(shared, headers) {
        return refused;
    }
    let invalid = |why: String| reject(shared, 400, "invalid", why);
    if query.get("uploadType").map(String::as_str) != Some("resumable") {
        return invalid(format!(
            "uploadType is {:?}; a resumable upload needs uploadType=resumable",
            query.get("uploadType")
        ));
    }
    let Some(name) = query.get("name").filter(|n| !n.is_empty()) else {
        return invalid("no object name (the name query parameter)".to_owned());
    };
    let Some(media_type) = header_text(headers, "x-upload-content-type").filter(|t| !t.is_empty())
    else {
        return invalid("no X-Upload-Content-Type".to_owned());
    };
    let total = match header_text(headers, "x-upload-content-length").map(str::parse::<u64>) {
        Some(Ok(total)) => total,
        other => {
            return invalid(format!(
                "X-Upload-Content-Length is {other:?}, not a number"
            ));
        }
    };
    let content_type = header_text(headers, "content-type").unwrap_or("");
    if !content_type.starts_with("application/json") {
        return invalid(format!(
            "Content-Type {content_type:?}: the session's metadata is JSON"
        ));
    }
    let metadata = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(metadata)) => metadata,
        _ => return invalid("the body is not a JSON object (the object's metadata)".to_owned()),
    };
    if let Some(named) = metadata.get("name")
        && named.as_str() != Some(name.as_str())
    {
        return invalid(format!("the body names {named}, the query {name:?}"));
    }
    if !shared.buckets.iter().any(|b| b == bucket) {
        return google_error(404, "notFound", "The specified bucket does not exist.");
    }
    let content_type = metadata
        .get("contentType")
        .and_then(Value::as_str)
        .unwrap_or(media_type)
        .to_owned();
    let upload_id: String = (0..48).map(|_| fastrand::alphanumeric()).collect();
    let mut location = reqwest::Url::parse(&format!("{}/upload/storage/v1/b/o", shared.base))
        .expect("the fake's base URL");
    location
        .path_segments_mut()
        .expect("an http URL")
        .pop()
        .extend([bucket, "o"]);
    location
        .query_pairs_mut()
        .append_pair("uploadType", "resumable")
        .append_pair("name", name)
        .append_pair("upload_id", &upload_id);
    shared.state().sessions.insert(
        upload_id.clone(),
        Session {
            bucket: bucket.to_owned(),
            name: name.clone(),
            content_type,
            total,
            data: Vec::new(),
            done: None,
        },
    );
    (
        StatusCode::OK,
        [
            (header::LOCATION.as_str(), location.to_string()),
            ("x-guploader-uploadid", upload_id),
        ],
    )
        .into_response()
}

/// `PUT {session}`: a chunk, or a status query.
fn put(
    shared: &Shared,
    bucket: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> (Response, Option<Fault>) {
    if let Some(refused) = refuse_token(shared, headers) {
        return (refused, None);
    }
    let Some(upload_id) = query.get("upload_id") else {
        let why = "a PUT without upload_id: only a session URI takes chunks".to_owned();
        return (reject(shared, 400, "invalid", why), None);
    };
    let Some(content_range) = header_text(headers, "content-range") else {
        let why = "a PUT to a session without Content-Range".to_owned();
        return (reject(shared, 400, "invalid", why), None);
    };
    let (range, total) = match parse_content_range(content_range) {
        Ok(parsed) => parsed,
        Err(why) => return (reject(shared, 400, "invalid", why), None),
    };

    let mut guard = shared.state();
    let state = &mut *guard;
    state.puts += 1;
    let fault = state.put_faults.remove(&state.puts).or(state.every_put);
    let Some(session) = state.sessions.get_mut(upload_id) else {
        drop(guard);
        let why = format!("a PUT to session {upload_id}, which does not exist");
        return (reject(shared, 404, "notFound", why), fault);
    };
    let mut why = None;
    if session.bucket != bucket || query.get("name") != Some(&session.name) {
        why = Some(format!(
            "a PUT for {bucket}/{:?} to the session of {}/{}",
            query.get("name"),
            session.bucket,
            session.name
        ));
    } else if total.is_some_and(|t| t != session.total) {
        why = Some(format!(
            "Content-Range {content_range:?} for a session of {} bytes (X-Upload-Content-Length)",
            session.total
        ));
    } else if range.is_none() && !body.is_empty() {
        why = Some(format!(
            "a status query ({content_range}) with {} bytes",
            body.len()
        ));
    }
    if let Some(why) = why {
        drop(guard);
        return (reject(shared, 400, "invalid", why), fault);
    }
    match fault {
        Some(Fault::Fail(status)) => {
            return (google_error(status, "backendError", "Backend Error"), fault);
        }
        Some(Fault::Expire) => {
            state.sessions.remove(upload_id);
            let message = "The upload session has expired; start a new one.";
            return (google_error(410, "gone", message), fault);
        }
        _ => {}
    }
    if let Some(resource) = &session.done {
        return (axum::Json(resource.clone()).into_response(), fault);
    }

    let held = session.data.len() as u64;
    if let Some((first, last)) = range {
        let why = if first > held {
            Some(format!(
                "Content-Range {content_range:?} leaves a gap: the session holds {held} bytes"
            ))
        } else if last >= session.total {
            Some(format!(
                "Content-Range {content_range:?} goes past the object's {} bytes",
                session.total
            ))
        } else if body.len() as u64 != last - first + 1 {
            Some(format!(
                "Content-Range {content_range:?} with a body of {} bytes",
                body.len()
            ))
        } else if last + 1 < session.total && !(body.len() as u64).is_multiple_of(QUANTUM) {
            Some(format!(
                "a chunk of {} bytes before the last: not a multiple of {QUANTUM}",
                body.len()
            ))
        } else {
            None
        };
        if let Some(why) = why {
            drop(guard);
            return (reject(shared, 400, "invalid", why), fault);
        }
        let kept = if fault == Some(Fault::Break) {
            &body[..body.len() / 2]
        } else {
            body
        };
        // A chunk may start below what the session holds; it takes the bytes past that.
        let skip = (held - first) as usize;
        if kept.len() > skip {
            let start = session.data.len();
            session.data.extend_from_slice(&kept[skip..]);
            if fault == Some(Fault::Corrupt) {
                session.data[start] ^= 0xff;
            }
        }
    }

    let held = session.data.len() as u64;
    let response = if held == session.total {
        let (bucket, name) = (session.bucket.clone(), session.name.clone());
        let generation = state
            .objects
            .get(&(bucket.clone(), name.clone()))
            .and_then(|(_, r)| r["generation"].as_str()?.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        let resource = object_resource(&shared.base, session, generation);
        session.done = Some(resource.clone());
        let bytes = session.data.clone();
        state
            .objects
            .insert((bucket, name), (bytes, resource.clone()));
        axum::Json(resource).into_response()
    } else if held == 0 {
        StatusCode::PERMANENT_REDIRECT.into_response()
    } else {
        (
            StatusCode::PERMANENT_REDIRECT,
            [(header::RANGE, format!("bytes=0-{}", held - 1))],
        )
            .into_response()
    };
    drop(guard);
    if matches!(fault, Some(Fault::Break | Fault::Lose)) {
        return (broken(), fault);
    }
    (response, fault)
}

fn object_resource(base: &str, session: &Session, generation: u64) -> Value {
    let crc = crc32c::crc32c(&session.data);
    let crc = base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes());
    let id = format!("{}/{}/{generation}", session.bucket, session.name);
    let mut self_link = reqwest::Url::parse(&format!("{base}/storage/v1/b")).expect("base URL");
    self_link.path_segments_mut().expect("an http URL").extend([
        session.bucket.as_str(),
        "o",
        session.name.as_str(),
    ]);
    json!({
        "kind": "storage#object",
        "id": id,
        "selfLink": self_link.to_string(),
        "mediaLink": format!("{self_link}?generation={generation}&alt=media"),
        "name": session.name,
        "bucket": session.bucket,
        "generation": generation.to_string(),
        "metageneration": "1",
        "contentType": session.content_type,
        "storageClass": "STANDARD",
        "size": session.data.len().to_string(),
        "crc32c": crc,
        "etag": format!("CJ{generation}EAE="),
        "timeCreated": "2026-01-01T00:00:00.000Z",
        "updated": "2026-01-01T00:00:00.000Z",
    })
}

/// A 200 whose body breaks off: hyper aborts the connection when the stream fails, and the
/// client sees an incomplete message.
fn broken() -> Response {
    let parts: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"{\"kind\": \"storage#object\", \"si")),
        Err(std::io::Error::other("the fake breaks the connection")),
    ];
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(futures_util::stream::iter(parts)))
        .expect("a response")
}
