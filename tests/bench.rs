//! `ionctl bench place` on a small scale against a real etcd: it reports every level's figures
//! and leaves no key behind. `ionctl bench floor` on loopback: what its receivers read.

mod harness;

use etcd_client::GetOptions;
use harness::{Etcd, ionctl, stderr, unique_prefix};
use serde_json::Value;

#[tokio::test]
async fn bench_place_reports_each_level_and_cleans_up() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("bench");
    let endpoint = etcd.endpoint();
    let output = ionctl(&[
        "bench",
        "place",
        "--nodes",
        "20",
        "--operations",
        "40",
        "--concurrency",
        "1,4",
        "-o",
        "json",
        "--etcd",
        &endpoint,
        "--prefix",
        &prefix,
    ])
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let levels: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(levels.len(), 2);
    for (level, concurrency) in levels.iter().zip([1, 4]) {
        assert_eq!(level["concurrency"], concurrency);
        for field in [
            "raw_txn_per_sec",
            "placements_per_sec",
            "place_p50_ms",
            "place_p99_ms",
            "ratio",
        ] {
            let value = level[field]
                .as_f64()
                .unwrap_or_else(|| panic!("{field} missing: {level}"));
            assert!(value > 0.0 && value.is_finite(), "{field} = {value}");
        }
        assert!(level["place_p50_ms"].as_f64() <= level["place_p99_ms"].as_f64());
    }
    // Everything went under a throwaway prefix next to the cluster's, and is gone.
    let store = etcd.store("/").await;
    let left = store
        .client()
        .get(
            prefix.trim_end_matches('/'),
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .expect("count");
    assert_eq!(left.count(), 0, "the benchmark left keys behind");
}

/// `ionctl bench floor` through the CLI: both ways of receiving deliver every packet and say
/// which they used; a way that does not exist is a usage error that lists the real ones.
#[tokio::test]
async fn bench_floor_reports_how_its_receivers_read() {
    for receive in ["poll", "wait"] {
        let output = ionctl(&[
            "bench",
            "floor",
            "--receivers",
            "4",
            "--packets-per-second",
            "400",
            "--payload-bytes",
            "200",
            "--duration",
            "500ms",
            "--receive",
            receive,
            "-o",
            "json",
        ])
        .await;
        assert!(output.status.success(), "{}", stderr(&output));
        let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert_eq!(report["receive"], receive);
        let sent = report["packets_sent"].as_u64().expect("packets_sent");
        assert!(sent > 0, "{report}");
        assert_eq!(report["packets_received"].as_u64(), Some(sent), "{report}");
    }
    let output = ionctl(&["bench", "floor", "--receive", "sleep"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("sleep") && message.contains("poll") && message.contains("wait"),
        "{message}"
    );
}
