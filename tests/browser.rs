//! The proof of compatibility: Chromium runs the unmodified ion-sdk-js 1.8.2 bundles against a
//! real agent. Tab A publishes its fake camera and microphone, tab B joins the same session
//! and must decode more than 30 video frames and receive audio (`tests/browser/run.mjs`); with
//! simulcast, it must keep decoding while the agent switches it between layers. Across nodes,
//! tab B joins an edge of a livestream whose origin carries tab A.
//! `scripts/install-deps --browser` installs Chromium and the npm packages.

mod harness;

use std::path::Path;
use std::time::Duration;

use harness::{AgentProcess, AgentSpec, Etcd, unique_prefix, wait_for};
use ion_cluster::model::{SessionClass, SessionRecord, SessionState};

/// The cluster secret the agents sign relays with; joins need no token.
const RELAY_SECRET: &str = "browser-relay-secret-0123456789abcdef";

/// Starts etcd and an agent, runs `run.mjs` against it in session `sid` (with `mode`, if
/// any), and returns its JSON report once the session key is gone again. With `edge`, a
/// second agent is the edge of a livestream on the first, and tab B joins it.
async fn run_tabs(sid: &str, mode: Option<&str>, edge: bool) -> serde_json::Value {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir
            .join("node_modules/ion-sdk-js/dist/ion-sdk.min.js")
            .exists(),
        "the browser test's npm packages are missing: run `scripts/install-deps --browser`"
    );
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("browser");
    let store = etcd.store(&prefix).await;
    let spec = |id: &str| AgentSpec::new(id).set("auth", "secret", RELAY_SECRET);
    let agent = AgentProcess::start(&etcd, &prefix, spec("browser-1"));
    let edge_agent = edge.then(|| AgentProcess::start(&etcd, &prefix, spec("browser-edge")));
    let nodes: Vec<&str> = std::iter::once("browser-1")
        .chain(edge.then_some("browser-edge"))
        .collect();
    harness::wait_registered(&store, &nodes).await;
    if edge {
        let record = SessionRecord {
            sid: sid.to_owned(),
            class: SessionClass::Livestream,
            size: 2,
            demand: 2,
            node: "browser-1".to_owned(),
            state: SessionState::Reserved,
            relays: vec!["browser-edge".to_owned()],
            edge_demand: 1,
            created_at: std::time::SystemTime::now(),
        };
        store
            .put(&store.keys().session(sid), &record)
            .await
            .expect("writing the livestream's record");
    }

    let url = format!("ws://127.0.0.1:{}/ws", agent.port);
    let viewer_url = edge_agent
        .as_ref()
        .map_or_else(|| url.clone(), |e| format!("ws://127.0.0.1:{}/ws", e.port));
    let report = run_script(
        &url,
        sid,
        mode.unwrap_or("plain"),
        &viewer_url,
        &[],
        async || {},
    )
    .await;

    // Both tabs closed with the browser: the last leave deletes the session key.
    let key = store.keys().session(sid);
    wait_for(
        "the session key to be deleted",
        Duration::from_secs(45),
        || async {
            store
                .get::<SessionRecord>(&key)
                .await
                .ok()
                .flatten()
                .is_none()
                .then_some(())
        },
    )
    .await;
    report
}

/// Runs `run.mjs` (tab A joins `url`, tab B `viewer_url`) and returns its JSON report, which
/// must say the run succeeded. In `failover` and `hold` modes, `on_flowing` runs when the
/// script says media flows, and the script goes on once it has returned.
async fn run_script(
    url: &str,
    sid: &str,
    mode: &str,
    viewer_url: &str,
    env: &[(&str, &std::ffi::OsStr)],
    on_flowing: impl AsyncFnOnce(),
) -> serde_json::Value {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let timeout = if mode == "plain" || mode == "simulcast" {
        60
    } else {
        100
    };
    let mut node = tokio::process::Command::new("node")
        .arg(browser_dir.join("run.mjs"))
        .arg(url)
        .arg(sid)
        .arg((timeout * 1000).to_string())
        .arg(mode)
        .arg(viewer_url)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running node (install it with `scripts/install-deps --browser`)");
    let mut stdin = node.stdin.take().expect("node's stdin");
    let mut lines = tokio::io::BufReader::new(node.stdout.take().expect("node's stdout")).lines();
    let mut stderr = node.stderr.take().expect("node's stderr");
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut on_flowing = Some(on_flowing);
    let mut last = String::new();
    let run = async {
        // While the tabs are in the session, the agent holds its key.
        while let Some(line) = lines.next_line().await.expect("reading node's stdout") {
            if line.contains(r#""event":"flowing""#) {
                if let Some(hook) = on_flowing.take() {
                    hook().await;
                }
                stdin.write_all(b"go\n").await.expect("writing to node");
            } else {
                last = line;
            }
        }
        node.wait().await.expect("waiting for node")
    };
    let status = tokio::time::timeout(Duration::from_secs(timeout + 60), run)
        .await
        .unwrap_or_else(|_| panic!("the browser test finished within {} s", timeout + 60));
    let stderr = stderr.await.unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(&last)
        .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{last}\n{stderr}"));
    assert!(
        status.success(),
        "browser test failed: {report:#}\n{stderr}"
    );
    eprintln!("browser report: {report}");
    report
}

fn inbound<'a>(report: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    report["inbound"]
        .as_array()
        .expect("inbound stats")
        .iter()
        .find(|s| s["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} track: {report:#}"))
}

/// Tab B decoded more than 30 video frames and received audio.
fn decoded_video_and_audio(report: &serde_json::Value) {
    let video = inbound(report, "video");
    assert!(
        video["framesDecoded"].as_u64().unwrap_or(0) > 30,
        "{report:#}"
    );
    let audio = inbound(report, "audio");
    assert!(
        audio["packetsReceived"].as_u64().unwrap_or(0) > 0,
        "{report:#}"
    );
}

#[tokio::test]
async fn ion_sdk_js_in_chromium_publishes_and_subscribes() {
    let report = run_tabs("browser-room", None, false).await;
    decoded_video_and_audio(&report);
    let kinds: Vec<&str> = report["subscriber"]["tracks"]
        .as_array()
        .expect("ontrack events")
        .iter()
        .filter_map(|t| t["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"audio") && kinds.contains(&"video"),
        "ontrack saw {kinds:?}"
    );
}

/// Simulcast from Chromium: the agent forwards one layer at a time and switches on a
/// keyframe, rewriting sequence numbers and timestamps so the subscriber's decoder sees one
/// stream. Turning the top layer off and on in the publishing tab forces a switch down and
/// one back up; the subscriber must keep decoding through both.
#[tokio::test]
async fn chromium_simulcast_layers_switch_without_stopping_the_decoder() {
    let report = run_tabs("browser-simulcast", Some("simulcast"), false).await;
    let phases = report["phases"].as_array().expect("simulcast phases");
    let names: Vec<&str> = phases.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "top layer",
            "lower layer after f stops",
            "top layer after f resumes"
        ],
        "{report:#}"
    );
    assert!(phases.iter().all(|p| p["ok"] == true), "{report:#}");
    let widths: Vec<u64> = phases
        .iter()
        .map(|p| p["inbound"]["frameWidth"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        widths[1] < widths[0] && widths[2] > widths[1],
        "the decoded width must drop with the top layer and come back: {widths:?}"
    );
}

/// ion-sdk-js as a viewer on an edge node: it joins the edge as it would any node (its
/// JSON-RPC join carries no role), and decodes the video tab A publishes on the origin,
/// which reaches the edge over the relay.
#[tokio::test]
async fn ion_sdk_js_on_an_edge_decodes_video_published_on_the_origin() {
    let report = run_tabs("browser-edge", None, true).await;
    decoded_video_and_audio(&report);
}

/// A 3-node cluster behind one `ionctl serve` gateway with a test certificate, as a web app
/// served over https sees it.
struct FrontDoor {
    agents: Vec<AgentProcess>,
    store: ion_cluster::store::Store,
    certificate: harness::TestCertificate,
    _gateway: harness::ServeProcess,
    _dir: tempfile::TempDir,
    _etcd: Etcd,
    port: u16,
}

impl FrontDoor {
    const SECRET: &str = "browser-gateway-secret-0123456789abcdef";

    async fn start(name: &str) -> Self {
        let etcd = Etcd::start().await;
        let prefix = unique_prefix(name);
        let store = etcd.store(&prefix).await;
        let ids: Vec<String> = (1..=3).map(|i| format!("{name}-{i}")).collect();
        let agents: Vec<AgentProcess> = ids
            .iter()
            .map(|id| {
                let spec = AgentSpec::new(id).set("auth", "enabled", true).set(
                    "auth",
                    "secret",
                    Self::SECRET,
                );
                AgentProcess::start(&etcd, &prefix, spec)
            })
            .collect();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        harness::wait_registered(&store, &id_refs).await;
        let dir = tempfile::tempdir().expect("a temp dir");
        let certificate = harness::TestCertificate::write(dir.path());
        let gateway = harness::ServeProcess::start_with(
            &etcd,
            &prefix,
            &[("IONCTL_JOIN_SECRET", Self::SECRET)],
            &certificate.serve_args(),
        )
        .await;
        Self {
            agents,
            store,
            certificate,
            port: gateway.port,
            _gateway: gateway,
            _dir: dir,
            _etcd: etcd,
        }
    }

    /// The gateway's `wss://` URL with a client token for a group call `sid`: all the app
    /// is configured with.
    fn url(&self, sid: &str) -> String {
        let grant = ion_cluster::token::ClientGrant {
            sid: sid.to_owned(),
            class: Some(SessionClass::Group),
            size: Some(2),
            role: None,
        };
        let secret = ion_cluster::token::JoinSecret::new(Self::SECRET).expect("a long secret");
        let token = ion_cluster::token::issue_client(
            &secret,
            &grant,
            std::time::SystemTime::now(),
            Duration::from_secs(600),
        );
        format!("wss://127.0.0.1:{}/ws?access_token={token}", self.port)
    }

    /// Runs both tabs in `sid` through the gateway; see `run_script`.
    async fn run(
        &self,
        sid: &str,
        mode: &str,
        on_flowing: impl AsyncFnOnce(),
    ) -> serde_json::Value {
        let url = self.url(sid);
        let env = [
            ("ION_TEST_TLS_CERT", self.certificate.cert.as_os_str()),
            ("ION_TEST_TLS_KEY", self.certificate.key.as_os_str()),
        ];
        run_script(&url, sid, mode, &url, &env, on_flowing).await
    }

    /// The nodes whose agent logged claiming `sid`.
    fn claimed(&self, sid: &str) -> Vec<String> {
        self.agents
            .iter()
            .filter(|a| {
                a.log()
                    .lines()
                    .any(|l| l.contains("session claimed") && l.contains(sid))
            })
            .map(|a| a.node_id.clone())
            .collect()
    }
}

/// The front door: a page served over https runs the unmodified ion-sdk-js, whose only
/// configuration is the gateway's `wss://` URL with a client token. On a 3-node cluster both
/// tabs join through the gateway, land on one node, and decode each other's media. Chromium
/// trusts the test's certificate by its key's hash, not by ignoring certificate errors.
#[tokio::test]
async fn ion_sdk_js_over_https_uses_the_cluster_through_one_wss_url() {
    let front_door = FrontDoor::start("gw-browser").await;
    let report = front_door
        .run("browser-front-door", "plain", async || {})
        .await;
    decoded_video_and_audio(&report);
    // One node claimed the session; the others never saw it.
    let claimed = front_door.claimed("browser-front-door");
    assert_eq!(claimed.len(), 1, "claimed on {claimed:?}");
}

/// The session's node is killed while both tabs are in the call: each tab's WebSocket
/// through the gateway closes, and a rejoin through the same URL (a new ion-sdk-js Client,
/// with backoff, as docs/operations.md says) lands on another node, where the subscribing
/// tab decodes the publisher's media again.
#[tokio::test]
async fn ion_sdk_js_rejoins_through_the_gateway_after_its_node_is_killed() {
    let front_door = FrontDoor::start("gw-failover").await;
    let sid = "browser-failover";
    let mut dead = String::new();
    let report = front_door
        .run(sid, "failover", async || {
            let record: SessionRecord = front_door
                .store
                .get(&front_door.store.keys().session(sid))
                .await
                .expect("reading etcd")
                .expect("the session is placed");
            let agent = front_door
                .agents
                .iter()
                .find(|a| a.node_id == record.node)
                .expect("the session's agent");
            agent.signal("KILL");
            dead = record.node;
        })
        .await;
    decoded_video_and_audio(&report);
    let closed = report["closed"]
        .as_array()
        .expect("how the tabs' sockets closed");
    assert!(
        closed.len() == 2 && closed.iter().all(|c| c["code"].is_u64()),
        "{report:#}"
    );
    let claimed = front_door.claimed(sid);
    assert!(
        claimed.iter().any(|node| *node != dead),
        "the rejoin must land on a node other than {dead}: claimed on {claimed:?}"
    );
}

/// ion-sdk-js publishes from Chromium, and `ionctl record` records it on a node of its own:
/// the publisher's WebM decodes without a single error in ffmpeg (real VP8 and Opus from a
/// browser, as a player would read them).
#[tokio::test]
async fn a_recording_of_ion_sdk_js_decodes_in_ffmpeg() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("browser-record");
    let store = etcd.store(&prefix).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let ids = ["browser-rec-sfu", "browser-rec-recorder"];
    let agents: Vec<AgentProcess> = ids
        .iter()
        .map(|id| {
            let spec = AgentSpec::new(id).set("auth", "secret", RELAY_SECRET).set(
                "recorder",
                "dir",
                dir.path().display().to_string(),
            );
            AgentProcess::start(&etcd, &prefix, spec)
        })
        .collect();
    harness::wait_registered(&store, &ids).await;
    let endpoint = etcd.endpoint();
    let ionctl = async |args: &[&str]| {
        let mut all = vec!["--etcd", endpoint.as_str(), "--prefix", prefix.as_str()];
        all.extend_from_slice(args);
        harness::ionctl(&all).await
    };
    let url = format!("ws://127.0.0.1:{}/ws", agents[0].port);
    let key = store.keys().recording("browser-rec");
    let mut record = None;
    let report = run_script(&url, "browser-rec", "hold", &url, &[], async || {
        let started = ionctl(&["record", "start", "browser-rec"]).await;
        assert!(started.status.success(), "{}", harness::stderr(&started));
        wait_for("5 s of tab A recorded", Duration::from_secs(40), || async {
            let r: ion_cluster::model::RecordingRecord = store.get(&key).await.ok()??;
            r.files
                .iter()
                .any(|f| f.uid == "tab-a" && f.duration_ms >= 5_000)
                .then_some(())
        })
        .await;
        let stopped = ionctl(&["record", "stop", "browser-rec"]).await;
        assert!(stopped.status.success(), "{}", harness::stderr(&stopped));
        record = store
            .get::<ion_cluster::model::RecordingRecord>(&key)
            .await
            .ok()
            .flatten();
    })
    .await;
    decoded_video_and_audio(&report);
    let record = record.expect("the recording's record");
    let file = record
        .files
        .iter()
        .find(|f| f.uid == "tab-a")
        .unwrap_or_else(|| panic!("no file of tab A: {record:?}"));
    let path = Path::new(record.dir.as_deref().expect("a directory")).join(&file.name);
    let decoded = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&path)
        // The input's own millisecond time base: with the default (1/frame rate), two
        // frames of a browser's variable-rate video less than a frame apart round to one
        // output time and the null muxer complains, though the file is fine.
        .args(["-enc_time_base", "-1", "-f", "null", "-"])
        .output()
        .expect("running ffmpeg (install it with `scripts/install-deps`)");
    let errors = String::from_utf8_lossy(&decoded.stderr);
    assert!(
        decoded.status.success() && errors.trim().is_empty(),
        "ffmpeg reports errors decoding {}: {errors}",
        path.display()
    );
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .expect("running ffprobe");
    let codecs = String::from_utf8_lossy(&probe.stdout);
    assert_eq!(
        codecs.split_whitespace().collect::<Vec<_>>(),
        ["vp8", "opus"],
        "{codecs}"
    );
    eprintln!(
        "{}: {} bytes, {} ms",
        file.name, file.bytes, file.duration_ms
    );
}
