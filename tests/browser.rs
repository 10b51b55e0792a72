//! The proof of compatibility: Chromium runs the unmodified ion-sdk-js 1.8.2 bundles against a
//! real agent. Tab A publishes its fake camera and microphone, tab B joins the same session
//! and must decode more than 30 video frames and receive audio (`tests/browser/run.mjs`); with
//! simulcast, it must keep decoding while the agent switches it between layers.
//! `scripts/install-deps --browser` installs Chromium and the npm packages.

mod harness;

use std::path::Path;
use std::time::Duration;

use harness::{AgentProcess, AgentSpec, Etcd, unique_prefix, wait_for};
use ion_cluster::model::SessionRecord;

/// Starts etcd and an agent, runs `run.mjs` against it in session `sid` (with `mode`, if
/// any), and returns its JSON report once the session key is gone again.
async fn run_tabs(sid: &str, mode: Option<&str>) -> serde_json::Value {
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
    let agent = AgentProcess::start(&etcd, &prefix, AgentSpec::new("browser-1"));
    wait_for("the agent to register", Duration::from_secs(15), || async {
        store
            .get::<ion_cluster::model::NodeRecord>(&store.keys().node("browser-1"))
            .await
            .ok()
            .flatten()
    })
    .await;

    let url = format!("ws://127.0.0.1:{}/ws", agent.port);
    let mut node = tokio::process::Command::new("node");
    node.arg(browser_dir.join("run.mjs"))
        .arg(&url)
        .arg(sid)
        .arg("60000")
        .args(mode)
        .kill_on_drop(true);
    let run = node.output();
    // While the tabs are in the session, the agent holds its key.
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser test finished within 120 s")
        .expect("running node (install it with `scripts/install-deps --browser`)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{stdout}\n{stderr}"));
    assert!(
        output.status.success(),
        "browser test failed: {report:#}\n{stderr}"
    );
    eprintln!("browser report: {report}");

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

fn inbound<'a>(report: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    report["inbound"]
        .as_array()
        .expect("inbound stats")
        .iter()
        .find(|s| s["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} track: {report:#}"))
}

#[tokio::test]
async fn ion_sdk_js_in_chromium_publishes_and_subscribes() {
    let report = run_tabs("browser-room", None).await;
    let video = inbound(&report, "video");
    assert!(
        video["framesDecoded"].as_u64().unwrap_or(0) > 30,
        "{report:#}"
    );
    let audio = inbound(&report, "audio");
    assert!(
        audio["packetsReceived"].as_u64().unwrap_or(0) > 0,
        "{report:#}"
    );
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
    let report = run_tabs("browser-simulcast", Some("simulcast")).await;
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
