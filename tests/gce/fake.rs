//! A fake Compute Engine v1 API and a fake metadata server, on loopback, for the GCE tests.
//!
//! The Compute fake checks what the real API would refuse: the path and method of every
//! call, the `Authorization: Bearer` header, a UUID `requestId` on every mutating call,
//! and the shape of the `instances.insert` body (field names from Compute v1's Instance
//! resource, a boot disk from the configured image, an external IP through a
//! `ONE_TO_ONE_NAT` access config, label and metadata syntax, Spot scheduling rules).
//! Whatever it refuses is answered with Google's error body and kept in `rejections()`.
//! Operations go PENDING → RUNNING → DONE, one step per `zoneOperations.wait` or `get`.
//! Faults are injected per route: an error status before the work, or after it (a lost
//! response), plus zones that run out of resources or quota. Like the real API, a
//! `requestId` seen before returns the operation it started, so a retried insert never
//! creates a second instance.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Accepts or refuses a bearer token, saying why.
pub type AuthCheck = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Insert,
    Get,
    List,
    Delete,
    Wait,
    OperationGet,
}

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// No fault for this call (to place faults on later calls of the same route).
    Pass,
    /// Answer with this status (and an error body) without doing the work.
    Fail(u16),
    /// Do the work, then answer with this status, as when the response is lost.
    LoseResponse(u16),
    /// Refuse with this status, error reason and message (Google's error body), doing
    /// nothing: the forms a zone out of capacity or quota answers in synchronously.
    Refuse(u16, &'static str, &'static str),
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub route: Option<Route>,
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub status: u16,
    pub body: Option<Value>,
}

impl Seen {
    pub fn request_id(&self) -> Option<&str> {
        self.query.get("requestId").map(String::as_str)
    }
}

enum Effect {
    Create { instance: Value, exhausted: bool },
    Delete { zone: String, name: String },
}

struct Op {
    json: Value,
    pending: VecDeque<&'static str>,
    effect: Option<Effect>,
}

#[derive(Default)]
struct State {
    instances: BTreeMap<(String, String), Value>,
    operations: HashMap<String, Op>,
    request_ids: HashMap<String, String>,
    faults: HashMap<Route, VecDeque<Fault>>,
    exhausted: HashSet<String>,
    over_quota: HashSet<String>,
    seen: Vec<Seen>,
    rejections: Vec<String>,
    applied_inserts: Vec<(String, String)>,
    next_id: u64,
}

struct Shared {
    project: String,
    image: String,
    page_size: usize,
    auth: AuthCheck,
    base: String,
    state: Mutex<State>,
}

pub struct FakeCompute {
    /// What the client takes as its base URL: `http://127.0.0.1:<port>/compute/v1`.
    pub base_url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCompute {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeCompute {
    pub async fn start(project: &str, image: &str, page_size: usize, auth: AuthCheck) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake Compute server");
        let addr = listener.local_addr().expect("its address");
        let base = format!("http://{addr}/compute/v1");
        let shared = Arc::new(Shared {
            project: project.to_owned(),
            image: image.to_owned(),
            page_size,
            auth,
            base: base.clone(),
            state: Mutex::new(State::default()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url: base,
            shared,
            server,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().expect("fake state")
    }

    pub fn fault(&self, route: Route, fault: Fault) {
        self.state()
            .faults
            .entry(route)
            .or_default()
            .push_back(fault);
    }

    /// Inserts into `zone` end with ZONE_RESOURCE_POOL_EXHAUSTED.
    pub fn exhaust(&self, zone: &str) {
        self.state().exhausted.insert(zone.to_owned());
    }

    /// Inserts into `zone` are refused at once with 403 quotaExceeded.
    pub fn over_quota(&self, zone: &str) {
        self.state().over_quota.insert(zone.to_owned());
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }

    pub fn seen_on(&self, route: Route) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.route == Some(route))
            .collect()
    }

    pub fn rejections(&self) -> Vec<String> {
        self.state().rejections.clone()
    }

    /// `(zone, name)` of every insert that started an operation.
    pub fn applied_inserts(&self) -> Vec<(String, String)> {
        self.state().applied_inserts.clone()
    }

    /// `(zone, name)` of every instance that exists.
    pub fn instances(&self) -> Vec<(String, String)> {
        self.state().instances.keys().cloned().collect()
    }

    pub fn instance(&self, zone: &str, name: &str) -> Option<Value> {
        self.state()
            .instances
            .get(&(zone.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Puts an instance in place, as if created earlier.
    pub fn seed(&self, zone: &str, name: &str, labels: Value) {
        let body = json!({
            "name": name,
            "machineType": format!("zones/{zone}/machineTypes/e2-small"),
            "labels": labels,
        });
        let mut state = self.state();
        let instance = instance_json(&self.shared, &mut state, zone, &body);
        state
            .instances
            .insert((zone.to_owned(), name.to_owned()), instance);
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

fn parse_query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url_decode_pairs(q)
                .into_iter()
                .collect::<HashMap<String, String>>()
        })
        .unwrap_or_default()
}

fn url_decode_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = parse_query(&uri);
    let body_json: Option<Value> = serde_json::from_slice(&body).ok();
    let (route, response) = route_request(&shared, &method, &path, &query, &headers, &body);
    let status = response.status().as_u16();
    let mut state = shared.state.lock().expect("fake state");
    state.seen.push(Seen {
        route,
        method: method.to_string(),
        path,
        query,
        status,
        body: body_json,
    });
    response
}

fn reject(shared: &Shared, status: u16, reason: &str, why: String) -> Response {
    shared
        .state
        .lock()
        .expect("fake state")
        .rejections
        .push(why.clone());
    google_error(status, reason, &why)
}

fn route_request(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> (Option<Route>, Response) {
    let Some(rest) = path.strip_prefix("/compute/v1/") else {
        return (
            None,
            reject(shared, 404, "notFound", format!("unknown path {path}")),
        );
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let (project, zone, tail) = match segments.as_slice() {
        ["projects", project, "zones", zone, tail @ ..] => (*project, *zone, tail),
        _ => {
            return (
                None,
                reject(shared, 404, "notFound", format!("unknown path {path}")),
            );
        }
    };
    let route = match (method.as_str(), tail) {
        ("POST", ["instances"]) => Route::Insert,
        ("GET", ["instances"]) => Route::List,
        ("GET", ["instances", _]) => Route::Get,
        ("DELETE", ["instances", _]) => Route::Delete,
        ("POST", ["operations", _, "wait"]) => Route::Wait,
        ("GET", ["operations", _]) => Route::OperationGet,
        _ => {
            return (
                None,
                reject(
                    shared,
                    404,
                    "notFound",
                    format!("no Compute v1 method for {method} {path}"),
                ),
            );
        }
    };
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(token) = authorization.strip_prefix("Bearer ") else {
        return (
            Some(route),
            reject(
                shared,
                401,
                "authError",
                format!("{method} {path} without a bearer token ({authorization:?})"),
            ),
        );
    };
    if let Err(why) = (shared.auth)(token) {
        return (
            Some(route),
            reject(shared, 401, "authError", format!("bad token: {why}")),
        );
    }
    if project != shared.project {
        return (
            Some(route),
            reject(
                shared,
                404,
                "notFound",
                format!("unknown project {project}"),
            ),
        );
    }
    let fault = shared
        .state
        .lock()
        .expect("fake state")
        .faults
        .get_mut(&route)
        .and_then(VecDeque::pop_front);
    if let Some(Fault::Fail(status)) = fault {
        return (
            Some(route),
            google_error(status, "backendError", "injected failure"),
        );
    }
    if let Some(Fault::Refuse(status, reason, message)) = fault {
        return (Some(route), google_error(status, reason, message));
    }
    let response = match route {
        Route::Insert => insert(shared, zone, query, body),
        Route::List => list(shared, zone, query),
        Route::Get => get(shared, zone, tail[1]),
        Route::Delete => delete(shared, zone, tail[1], query),
        Route::Wait | Route::OperationGet => advance(shared, zone, tail[1]),
    };
    match fault {
        Some(Fault::LoseResponse(status)) => (
            Some(route),
            google_error(status, "backendError", "injected failure after the work"),
        ),
        _ => (Some(route), response),
    }
}

/// The `requestId` of a mutating call, which must be a UUID.
fn check_request_id(query: &HashMap<String, String>) -> Result<String, String> {
    let Some(id) = query.get("requestId") else {
        return Err("a mutating call without requestId".to_owned());
    };
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(format!("requestId {id:?} is not a UUID"));
    }
    Ok(id.clone())
}

fn operation_json(shared: &Shared, id: u64, zone: &str, kind: &str, target: &str) -> Value {
    let zone_url = format!("{}/projects/{}/zones/{zone}", shared.base, shared.project);
    json!({
        "kind": "compute#operation",
        "id": id.to_string(),
        "name": format!("operation-{id}-{kind}"),
        "zone": zone_url,
        "operationType": kind,
        "targetLink": format!("{zone_url}/instances/{target}"),
        "status": "PENDING",
        "progress": 0,
        "insertTime": "2026-01-01T00:00:00.000-00:00",
        "selfLink": format!("{zone_url}/operations/operation-{id}-{kind}"),
    })
}

fn instance_json(shared: &Shared, state: &mut State, zone: &str, body: &Value) -> Value {
    state.next_id += 1;
    let id = state.next_id;
    let zone_url = format!("{}/projects/{}/zones/{zone}", shared.base, shared.project);
    let machine_type = body["machineType"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    json!({
        "kind": "compute#instance",
        "id": (1_000_000 + id).to_string(),
        "name": body["name"],
        "machineType": format!("{zone_url}/machineTypes/{machine_type}"),
        "status": "RUNNING",
        "zone": zone_url,
        "labels": body.get("labels").cloned().unwrap_or(json!({})),
        "metadata": {
            "kind": "compute#metadata",
            "fingerprint": "abc=",
            "items": body.pointer("/metadata/items").cloned().unwrap_or(json!([])),
        },
        "networkInterfaces": [{
            "kind": "compute#networkInterface",
            "name": "nic0",
            "network": format!("{}/projects/{}/global/networks/default", shared.base, shared.project),
            "networkIP": format!("10.128.0.{}", id % 250),
            "accessConfigs": [{
                "kind": "compute#accessConfig",
                "type": "ONE_TO_ONE_NAT",
                "name": "External NAT",
                "natIP": format!("203.0.113.{}", id % 250),
                "networkTier": "PREMIUM",
            }],
        }],
        "creationTimestamp": "2026-01-01T00:00:00.000-00:00",
        "selfLink": format!("{zone_url}/instances/{}", body["name"].as_str().unwrap_or_default()),
    })
}

fn insert(shared: &Shared, zone: &str, query: &HashMap<String, String>, body: &[u8]) -> Response {
    let request_id = match check_request_id(query) {
        Ok(id) => id,
        Err(why) => return reject(shared, 400, "invalid", why),
    };
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return reject(
            shared,
            400,
            "parseError",
            "insert body is not JSON".to_owned(),
        );
    };
    if let Err(why) = validate_insert(&body, zone, &shared.image) {
        return reject(shared, 400, "invalid", format!("insert body: {why}"));
    }
    let mut state = shared.state.lock().expect("fake state");
    if let Some(op) = state.request_ids.get(&request_id) {
        // A retry: the same operation, and no new instance.
        return axum::Json(state.operations[op].json.clone()).into_response();
    }
    let name = body["name"].as_str().unwrap_or_default().to_owned();
    if state.over_quota.contains(zone) {
        drop(state);
        return google_error(
            403,
            "quotaExceeded",
            "Quota 'CPUS' exceeded.  Limit: 8.0 in region test.",
        );
    }
    if state
        .instances
        .contains_key(&(zone.to_owned(), name.clone()))
    {
        drop(state);
        return google_error(
            409,
            "alreadyExists",
            &format!("The resource 'projects/p/zones/{zone}/instances/{name}' already exists"),
        );
    }
    let instance = instance_json(shared, &mut state, zone, &body);
    state.next_id += 1;
    let id = state.next_id;
    let json = operation_json(shared, id, zone, "insert", &name);
    let op_name = json["name"].as_str().unwrap_or_default().to_owned();
    let exhausted = state.exhausted.contains(zone);
    state.operations.insert(
        op_name.clone(),
        Op {
            json: json.clone(),
            pending: VecDeque::from(["RUNNING", "DONE"]),
            effect: Some(Effect::Create {
                instance,
                exhausted,
            }),
        },
    );
    state.request_ids.insert(request_id, op_name);
    state.applied_inserts.push((zone.to_owned(), name));
    axum::Json(json).into_response()
}

fn delete(shared: &Shared, zone: &str, name: &str, query: &HashMap<String, String>) -> Response {
    let request_id = match check_request_id(query) {
        Ok(id) => id,
        Err(why) => return reject(shared, 400, "invalid", why),
    };
    let mut state = shared.state.lock().expect("fake state");
    if let Some(op) = state.request_ids.get(&request_id) {
        return axum::Json(state.operations[op].json.clone()).into_response();
    }
    if !state
        .instances
        .contains_key(&(zone.to_owned(), name.to_owned()))
    {
        drop(state);
        return not_found(zone, name);
    }
    state.next_id += 1;
    let id = state.next_id;
    let json = operation_json(shared, id, zone, "delete", name);
    let op_name = json["name"].as_str().unwrap_or_default().to_owned();
    state.operations.insert(
        op_name.clone(),
        Op {
            json: json.clone(),
            pending: VecDeque::from(["RUNNING", "DONE"]),
            effect: Some(Effect::Delete {
                zone: zone.to_owned(),
                name: name.to_owned(),
            }),
        },
    );
    state.request_ids.insert(request_id, op_name);
    axum::Json(json).into_response()
}

fn not_found(zone: &str, name: &str) -> Response {
    google_error(
        404,
        "notFound",
        &format!("The resource 'projects/p/zones/{zone}/instances/{name}' was not found"),
    )
}

fn get(shared: &Shared, zone: &str, name: &str) -> Response {
    let state = shared.state.lock().expect("fake state");
    match state.instances.get(&(zone.to_owned(), name.to_owned())) {
        Some(instance) => axum::Json(instance.clone()).into_response(),
        None => not_found(zone, name),
    }
}

fn list(shared: &Shared, zone: &str, query: &HashMap<String, String>) -> Response {
    if let Some(max) = query.get("maxResults") {
        match max.parse::<u32>() {
            Ok(n) if n <= 500 => {}
            _ => {
                return reject(
                    shared,
                    400,
                    "invalid",
                    format!("maxResults {max:?} is not 0..=500"),
                );
            }
        }
    }
    // The one filter form the client uses: labels.KEY = "VALUE".
    let label = match query.get("filter") {
        None => None,
        Some(filter) => {
            let parsed = filter
                .strip_prefix("labels.")
                .and_then(|rest| rest.split_once(" = "))
                .and_then(|(k, v)| {
                    Some((
                        k.to_owned(),
                        v.strip_prefix('"')?.strip_suffix('"')?.to_owned(),
                    ))
                });
            match parsed {
                Some(label) => Some(label),
                None => {
                    return reject(
                        shared,
                        400,
                        "invalid",
                        format!("filter {filter:?} is not labels.KEY = \"VALUE\""),
                    );
                }
            }
        }
    };
    let offset = match query.get("pageToken") {
        None => 0,
        Some(token) => match token.strip_prefix("page-").and_then(|n| n.parse().ok()) {
            Some(offset) => offset,
            None => {
                return reject(shared, 400, "invalid", format!("bad pageToken {token:?}"));
            }
        },
    };
    let state = shared.state.lock().expect("fake state");
    let matching: Vec<&Value> = state
        .instances
        .iter()
        .filter(|((z, _), _)| z == zone)
        .map(|(_, v)| v)
        .filter(|v| {
            label
                .as_ref()
                .is_none_or(|(k, value)| v["labels"][k].as_str() == Some(value.as_str()))
        })
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(shared.page_size)
        .map(|v| (*v).clone())
        .collect();
    let mut response = json!({
        "kind": "compute#instanceList",
        "id": format!("projects/{}/zones/{zone}/instances", shared.project),
        "items": page,
    });
    if offset + shared.page_size < matching.len() {
        response["nextPageToken"] = json!(format!("page-{}", offset + shared.page_size));
    }
    axum::Json(response).into_response()
}

/// One step of an operation: PENDING → RUNNING → DONE, applying its effect at DONE.
fn advance(shared: &Shared, zone: &str, name: &str) -> Response {
    let mut state = shared.state.lock().expect("fake state");
    let Some(op) = state.operations.get_mut(name) else {
        drop(state);
        return google_error(404, "notFound", &format!("operation {name} not found"));
    };
    if !op.json["zone"]
        .as_str()
        .unwrap_or_default()
        .ends_with(&format!("/zones/{zone}"))
    {
        drop(state);
        return reject(
            shared,
            404,
            "notFound",
            format!("operation {name} asked for in the wrong zone {zone}"),
        );
    }
    let mut effect = None;
    if let Some(status) = op.pending.pop_front() {
        op.json["status"] = json!(status);
        op.json["progress"] = json!(if status == "DONE" { 100 } else { 50 });
        if status == "DONE" {
            effect = op.effect.take();
        }
    }
    match effect {
        Some(Effect::Create {
            exhausted: true, ..
        }) => {
            op.json["error"] = json!({"errors": [{
                "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                "message": format!("The zone 'projects/{}/zones/{zone}' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.", shared.project),
            }]});
            op.json["httpErrorStatusCode"] = json!(503);
            op.json["httpErrorMessage"] = json!("SERVICE UNAVAILABLE");
        }
        Some(Effect::Create { instance, .. }) => {
            let key = (
                zone.to_owned(),
                instance["name"].as_str().unwrap_or_default().to_owned(),
            );
            let json = op.json.clone();
            state.instances.insert(key, instance);
            return axum::Json(json).into_response();
        }
        Some(Effect::Delete { zone, name }) => {
            let json = op.json.clone();
            state.instances.remove(&(zone, name));
            return axum::Json(json).into_response();
        }
        None => {}
    }
    axum::Json(op.json.clone()).into_response()
}

const INSTANCE_FIELDS: &[&str] = &[
    "name",
    "description",
    "machineType",
    "disks",
    "networkInterfaces",
    "labels",
    "metadata",
    "serviceAccounts",
    "scheduling",
    "tags",
    "minCpuPlatform",
    "guestAccelerators",
    "deletionProtection",
    "shieldedInstanceConfig",
    "confidentialInstanceConfig",
    "advancedMachineFeatures",
    "reservationAffinity",
    "resourcePolicies",
    "canIpForward",
    "hostname",
    "displayDevice",
    "networkPerformanceConfig",
    "params",
    "sourceMachineImage",
    "keyRevocationActionType",
    "privateIpv6GoogleAccessType",
    "instanceEncryptionKey",
];
const DISK_FIELDS: &[&str] = &[
    "type",
    "mode",
    "source",
    "deviceName",
    "boot",
    "initializeParams",
    "autoDelete",
    "interface",
    "guestOsFeatures",
    "diskEncryptionKey",
    "diskSizeGb",
    "licenses",
    "forceAttach",
    "architecture",
];
const DISK_INIT_FIELDS: &[&str] = &[
    "diskName",
    "sourceImage",
    "diskSizeGb",
    "diskType",
    "sourceImageEncryptionKey",
    "labels",
    "sourceSnapshot",
    "description",
    "replicaZones",
    "resourcePolicies",
    "onUpdateAction",
    "provisionedIops",
    "provisionedThroughput",
    "licenses",
    "architecture",
    "resourceManagerTags",
    "enableConfidentialCompute",
    "storagePool",
];
const NIC_FIELDS: &[&str] = &[
    "network",
    "subnetwork",
    "networkIP",
    "ipv6Address",
    "internalIpv6PrefixLength",
    "name",
    "accessConfigs",
    "ipv6AccessConfigs",
    "aliasIpRanges",
    "stackType",
    "ipv6AccessType",
    "queueCount",
    "nicType",
    "networkAttachment",
];
const ACCESS_CONFIG_FIELDS: &[&str] = &[
    "type",
    "name",
    "natIP",
    "externalIpv6",
    "externalIpv6PrefixLength",
    "setPublicPtr",
    "publicPtrDomainName",
    "networkTier",
    "securityPolicy",
];
const SCHEDULING_FIELDS: &[&str] = &[
    "onHostMaintenance",
    "automaticRestart",
    "preemptible",
    "nodeAffinities",
    "minNodeCpus",
    "locationHint",
    "provisioningModel",
    "instanceTerminationAction",
    "localSsdRecoveryTimeout",
    "maxRunDuration",
    "terminationTime",
    "onInstanceStopAction",
];

fn fields<'a>(
    value: &'a Value,
    what: &str,
    allowed: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("{what} is not an object"))?;
    if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("{what} has no field {unknown:?} in Compute v1"));
    }
    Ok(object)
}

fn string<'a>(
    object: &'a serde_json::Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<&'a str, String> {
    object
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what}.{key} is missing or not a string"))
}

fn rfc1035(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !name.ends_with('-')
}

fn one_of(value: Option<&Value>, what: &str, allowed: &[&str]) -> Result<(), String> {
    match value {
        None => Ok(()),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        Some(other) => Err(format!("{what} is {other}, not one of {allowed:?}")),
    }
}

/// The shape checks of `instances.insert`.
fn validate_insert(body: &Value, zone: &str, image: &str) -> Result<(), String> {
    let instance = fields(body, "Instance", INSTANCE_FIELDS)?;
    let name = string(instance, "name", "Instance")?;
    if !rfc1035(name) {
        return Err(format!("name {name:?} is not an RFC 1035 label"));
    }
    let machine_type = string(instance, "machineType", "Instance")?;
    let wanted = format!("zones/{zone}/machineTypes/");
    let Some(position) = machine_type.find(&wanted) else {
        return Err(format!(
            "machineType {machine_type:?} is not zones/{zone}/machineTypes/TYPE"
        ));
    };
    if machine_type[position + wanted.len()..].is_empty()
        || (position > 0 && !machine_type[..position].ends_with('/'))
    {
        return Err(format!("machineType {machine_type:?} is malformed"));
    }

    let disks = instance
        .get("disks")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or("disks is missing or empty")?;
    let mut boot_disks = 0;
    for disk in disks {
        let disk = fields(disk, "AttachedDisk", DISK_FIELDS)?;
        one_of(
            disk.get("type"),
            "AttachedDisk.type",
            &["PERSISTENT", "SCRATCH"],
        )?;
        if disk.get("boot").and_then(Value::as_bool) == Some(true) {
            boot_disks += 1;
            let init = fields(
                disk.get("initializeParams")
                    .ok_or("the boot disk has no initializeParams")?,
                "AttachedDiskInitializeParams",
                DISK_INIT_FIELDS,
            )?;
            let source = string(init, "sourceImage", "initializeParams")?;
            if source != image {
                return Err(format!(
                    "boot image {source:?} is not the configured {image:?}"
                ));
            }
            if let Some(size) = init.get("diskSizeGb") {
                let ok = size
                    .as_str()
                    .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
                if !ok {
                    return Err(format!("diskSizeGb {size} is not an int64 string"));
                }
            }
            if let Some(disk_type) = init.get("diskType") {
                let ok = disk_type
                    .as_str()
                    .is_some_and(|t| t.starts_with(&format!("zones/{zone}/diskTypes/")));
                if !ok {
                    return Err(format!(
                        "diskType {disk_type} is not zones/{zone}/diskTypes/TYPE"
                    ));
                }
            }
        }
    }
    if boot_disks != 1 {
        return Err(format!("{boot_disks} boot disks; exactly one is needed"));
    }

    let nics = instance
        .get("networkInterfaces")
        .and_then(Value::as_array)
        .filter(|n| !n.is_empty())
        .ok_or("networkInterfaces is missing or empty")?;
    let mut external = false;
    for nic in nics {
        let nic = fields(nic, "NetworkInterface", NIC_FIELDS)?;
        if !nic.contains_key("network") && !nic.contains_key("subnetwork") {
            return Err("a network interface names neither network nor subnetwork".to_owned());
        }
        for access in nic
            .get("accessConfigs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let access = fields(access, "AccessConfig", ACCESS_CONFIG_FIELDS)?;
            one_of(
                access.get("type"),
                "AccessConfig.type",
                &["ONE_TO_ONE_NAT", "DIRECT_IPV6"],
            )?;
            one_of(
                access.get("networkTier"),
                "AccessConfig.networkTier",
                &["PREMIUM", "STANDARD"],
            )?;
            external |= access.get("type").and_then(Value::as_str) == Some("ONE_TO_ONE_NAT");
        }
    }
    if !external {
        return Err("no ONE_TO_ONE_NAT access config: the VM would have no external IP".to_owned());
    }

    if let Some(labels) = instance.get("labels") {
        let labels = labels.as_object().ok_or("labels is not an object")?;
        for (key, value) in labels {
            let key_ok = key.len() <= 63
                && key.starts_with(|c: char| c.is_ascii_lowercase())
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            let value_ok = value.as_str().is_some_and(|v| {
                v.len() <= 63
                    && v.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
                    })
            });
            if !key_ok || !value_ok {
                return Err(format!("label {key:?}={value} breaks the label syntax"));
            }
        }
    }

    if let Some(metadata) = instance.get("metadata") {
        let metadata = fields(metadata, "Metadata", &["items", "fingerprint", "kind"])?;
        let mut keys = HashSet::new();
        for item in metadata
            .get("items")
            .and_then(Value::as_array)
            .ok_or("metadata.items is not an array")?
        {
            let item = fields(item, "Metadata.items[]", &["key", "value"])?;
            let key = string(item, "key", "Metadata.items[]")?;
            string(item, "value", "Metadata.items[]")?;
            let key_ok = !key.is_empty()
                && key.len() <= 128
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !key_ok || !keys.insert(key.to_owned()) {
                return Err(format!("metadata key {key:?} is invalid or repeated"));
            }
        }
    }

    for account in instance
        .get("serviceAccounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let account = fields(account, "ServiceAccount", &["email", "scopes"])?;
        string(account, "email", "ServiceAccount")?;
        let scopes_ok = account
            .get("scopes")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().all(Value::is_string));
        if !scopes_ok {
            return Err("ServiceAccount.scopes is not a list of strings".to_owned());
        }
    }

    if let Some(scheduling) = instance.get("scheduling") {
        let scheduling = fields(scheduling, "Scheduling", SCHEDULING_FIELDS)?;
        one_of(
            scheduling.get("provisioningModel"),
            "provisioningModel",
            &["STANDARD", "SPOT"],
        )?;
        one_of(
            scheduling.get("instanceTerminationAction"),
            "instanceTerminationAction",
            &["STOP", "DELETE"],
        )?;
        one_of(
            scheduling.get("onHostMaintenance"),
            "onHostMaintenance",
            &["MIGRATE", "TERMINATE"],
        )?;
        if scheduling.get("provisioningModel").and_then(Value::as_str) == Some("SPOT") {
            let restart = scheduling.get("automaticRestart").and_then(Value::as_bool);
            let maintenance = scheduling.get("onHostMaintenance").and_then(Value::as_str);
            if restart != Some(false) || maintenance != Some("TERMINATE") {
                return Err(
                    "Spot VMs need automaticRestart false and onHostMaintenance TERMINATE"
                        .to_owned(),
                );
            }
        }
    }

    if let Some(tags) = instance.get("tags") {
        let tags = fields(tags, "Tags", &["items", "fingerprint"])?;
        let ok = tags
            .get("items")
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().all(|t| t.as_str().is_some_and(rfc1035)));
        if !ok {
            return Err("tags.items must be RFC 1035 names".to_owned());
        }
    }
    Ok(())
}

/// A fake GCE metadata server that hands out one access token.
pub struct FakeMetadata {
    /// `127.0.0.1:<port>`, the form GCE_METADATA_HOST takes.
    pub host: String,
    hits: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeMetadata {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeMetadata {
    pub async fn start(token: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake metadata server");
        let host = listener.local_addr().expect("its address").to_string();
        let hits = Arc::new(AtomicUsize::new(0));
        let state = (token.to_owned(), hits.clone());
        let app = Router::new()
            .fallback(metadata_handle)
            .with_state(Arc::new(state));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { host, hits, server }
    }

    /// Token requests answered.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn metadata_handle(
    AxumState(state): AxumState<Arc<(String, Arc<AtomicUsize>)>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        return (StatusCode::FORBIDDEN, "Missing Metadata-Flavor: Google").into_response();
    }
    if uri.path() != "/computeMetadata/v1/instance/service-accounts/default/token" {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    state.1.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({
        "access_token": state.0,
        "expires_in": 3599,
        "token_type": "Bearer",
    }))
    .into_response()
}
