//! The proof of compatibility: Chromium runs the unmodified ion-sdk-js 1.8.2 bundles against a
//! real agent. Tab A publishes its fake camera and microphone, tab B joins the same session
//! and must decode more than 30 video frames and receive audio (`tests/browser/run.mjs`).
//! `scripts/install-deps --browser` installs Chromium and the npm packages.

mod harness;

use std::path::Path;
use std::time::Duration;

use harness::{AgentProcess, AgentSpec, Etcd, unique_prefix, wait_for};
use ion_cluster::model::SessionRecord;

#[tokio::test]
async fn ion_sdk_js_in_chromium_publishes_and_subscribes() {
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
        .arg("browser-room")
        .arg("60000")
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
    let inbound = report["inbound"].as_array().expect("inbound stats");
    let video = inbound
        .iter()
        .find(|s| s["kind"] == "video")
        .expect("a video track");
    assert!(
        video["framesDecoded"].as_u64().unwrap_or(0) > 30,
        "{report:#}"
    );
    let audio = inbound
        .iter()
        .find(|s| s["kind"] == "audio")
        .expect("an audio track");
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

    // Both tabs closed with the browser: the last leave deletes the session key.
    let key = store.keys().session("browser-room");
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
}
