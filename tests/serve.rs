//! `ionctl serve` as a real process against a real etcd: the HTTP API answers as `ionctl
//! place` does, bad input gets 400, no capacity 503 with the pending key, reads and metrics
//! work, and two replicas on one etcd never overbook a node.

mod harness;

use std::time::SystemTime;

use std::time::Duration;

use harness::{
    CuttableLink, Etcd, ServeProcess, audit, compact_now, ionctl, node_record, plant, stderr,
    unique_prefix, wait_for,
};
use ion_cluster::api::PlaceAnswer;
use ion_cluster::model::{DrainRequest, PendingDemand, SessionRecord};
use ion_cluster::token::{JoinSecret, verify};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "serve-test-secret-serve-test-secret";

async fn post(client: &reqwest::Client, serve: &ServeProcess, body: &Value) -> (StatusCode, Value) {
    let response = client
        .post(format!("{}/v1/place", serve.base_url()))
        .json(body)
        .send()
        .await
        .expect("POST /v1/place");
    let status = response.status();
    (status, response.json().await.expect("a JSON answer"))
}

#[tokio::test]
async fn http_answers_match_the_cli() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("serve-same");
    let store = etcd.store(&prefix).await;
    plant(
        &store,
        &[node_record("a", 2, 0.0), node_record("b", 2, 0.0)],
    )
    .await;
    let serve = ServeProcess::start(&etcd, &prefix, &[("IONCTL_JOIN_SECRET", SECRET)]).await;
    let client = reqwest::Client::new();
    let endpoint = etcd.endpoint();
    let cli = |args: &[&str]| {
        let args: Vec<String> = [
            "place", "-o", "json", "--etcd", &endpoint, "--prefix", &prefix,
        ]
        .iter()
        .chain(args)
        .map(|s| s.to_string())
        .collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let output = ionctl(&args).await;
            assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
            serde_json::from_slice::<PlaceAnswer>(&output.stdout).expect("JSON")
        }
    };

    let (status, body) = post(
        &client,
        &serve,
        &json!({"class": "group", "size": 3, "session": "s1"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let http: PlaceAnswer = serde_json::from_value(body).expect("a PlaceAnswer");
    assert_eq!(
        (http.decision.as_str(), http.node.as_deref()),
        ("place", Some("a"))
    );
    let secret = JoinSecret::new(SECRET).expect("secret");
    verify(&secret, http.token.as_deref(), "s1", "a", SystemTime::now()).expect("a valid token");

    // The CLI decides the same way on the same cluster, and each sees the other's session.
    let from_cli = cli(&["--class", "group", "--size", "3", "--session", "s2"]).await;
    assert_eq!(from_cli.node.as_deref(), Some("a"));
    let again = cli(&["--class", "group", "--size", "3", "--session", "s1"]).await;
    assert_eq!(
        (again.decision.as_str(), again.node.as_deref()),
        ("existing", Some("a"))
    );
    let (status, body) = post(
        &client,
        &serve,
        &json!({"class": "group", "size": 3, "session": "s2"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["decision"].as_str(), body["node"].as_str()),
        (Some("existing"), Some("a"))
    );
    assert_eq!(
        body["signal_url"],
        from_cli.signal_url.as_deref().expect("signal url")
    );

    let sessions: Vec<SessionRecord> = client
        .get(format!("{}/v1/sessions?node=a", serve.base_url()))
        .send()
        .await
        .expect("GET /v1/sessions")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        sessions.iter().map(|s| s.sid.as_str()).collect::<Vec<_>>(),
        ["s1", "s2"]
    );
    let nodes: Value = client
        .get(format!("{}/v1/nodes", serve.base_url()))
        .send()
        .await
        .expect("GET /v1/nodes")
        .json()
        .await
        .expect("JSON");
    assert_eq!(nodes[0]["id"], "a");
    assert_eq!(nodes[0]["load"]["committed_units"], 12);
    assert_eq!(nodes[1]["load"]["committed_units"], 0);

    let metrics = metrics_text(&client, &serve).await;
    assert!(
        metrics.contains("ion_placements_total{outcome=\"placed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ion_placements_total{outcome=\"existing\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ion_http_requests_total{route=\"/v1/place\",status=\"200\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn bad_input_gets_400_and_no_capacity_503() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("serve-bad");
    let store = etcd.store(&prefix).await;
    plant(&store, &[node_record("small", 2, 0.0)]).await;
    let serve = ServeProcess::start(&etcd, &prefix, &[]).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/place", serve.base_url());

    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"class\": \"group\",")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("JSON error");
    let message = body["error"].as_str().expect("an error message");
    assert!(message.contains("send JSON like"), "{message}");

    for (request, expect) in [
        (json!({"class": "group"}), "size"),
        (json!({"class": "party", "size": 3}), "party"),
        (json!({"class": "group", "size": 7}), "class meeting"),
        (
            json!({"class": "group", "size": 3, "session": "a/b"}),
            "session id",
        ),
        (
            json!({"class": "group", "size": 3, "colour": "red"}),
            "colour",
        ),
    ] {
        let (status, body) = post(&client, &serve, &request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{request}: {body}");
        let message = body["error"].as_str().expect("an error message");
        assert!(message.contains(expect), "{request}: {message}");
    }

    let (status, body) = post(
        &client,
        &serve,
        &json!({"class": "conference", "size": 300, "session": "big"}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["decision"], "no_capacity");
    let key = store.keys().pending("big");
    assert_eq!(body["pending"], key.as_str());
    let pending: PendingDemand = store
        .get(&key)
        .await
        .expect("get")
        .expect("pending written");
    assert_eq!(pending.demand, 1794);
}

/// Two replicas against one etcd take 60 requests at once between them; the audit finds no
/// node above its headroom, and every request was placed or answered 503.
#[tokio::test]
async fn two_replicas_never_overbook() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("serve-replicas");
    let store = etcd.store(&prefix).await;
    plant(
        &store,
        &[
            node_record("small", 1, 0.0),
            node_record("medium", 2, 0.0),
            node_record("large", 4, 0.0),
        ],
    )
    .await;
    let replicas = [
        ServeProcess::start(&etcd, &prefix, &[]).await,
        ServeProcess::start(&etcd, &prefix, &[]).await,
    ];
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let client = client.clone();
            let url = format!("{}/v1/place", replicas[i % 2].base_url());
            tokio::spawn(async move {
                let body = json!({"class": "group", "size": 3 + i % 4, "session": format!("r{i}")});
                client
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .expect("POST")
                    .status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("request task"));
    }
    let placed = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let full = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!(placed + full, 60, "{statuses:?}");
    // 60 groups of 3..6 ask 1,080 units; the nodes hold 945 under 0.90.
    assert!(
        placed > 30 && full > 0,
        "placed {placed}, no capacity {full}"
    );
    let committed = audit(&store).await;
    assert_eq!(committed.len(), 3, "{committed:?}");
}

/// The server decides from a watched mirror of the cluster: reservations that expire there
/// free their capacity for its next decision too.
#[tokio::test]
async fn the_mirror_sees_reservations_expire() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("serve-expiry");
    let store = etcd.store(&prefix).await;
    plant(&store, &[node_record("only", 1, 0.0)]).await;
    let serve = ServeProcess::start_with(&etcd, &prefix, &[], &["--reservation-ttl", "2s"]).await;
    let client = reqwest::Client::new();
    // 150 units × 0.90 hold four groups of 6 (30 units), not five.
    for i in 0..4 {
        let (status, body) = post(
            &client,
            &serve,
            &json!({"class": "group", "size": 6, "session": format!("s{i}")}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _) = post(
        &client,
        &serve,
        &json!({"class": "group", "size": 6, "session": "late"}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    wait_for(
        "the reservations to expire",
        Duration::from_secs(15),
        || async {
            store
                .sessions()
                .await
                .expect("sessions")
                .items
                .is_empty()
                .then_some(())
        },
    )
    .await;
    let (status, body) = wait_for(
        "the server to see the capacity",
        Duration::from_secs(5),
        || async {
            let (status, body) = post(
                &client,
                &serve,
                &json!({"class": "group", "size": 6, "session": "late"}),
            )
            .await;
            (status == StatusCode::OK).then_some((status, body))
        },
    )
    .await;
    assert_eq!(
        (status, body["node"].as_str()),
        (StatusCode::OK, Some("only"))
    );
}

/// `GET /metrics` of `ionctl serve`.
async fn metrics_text(client: &reqwest::Client, serve: &ServeProcess) -> String {
    client
        .get(format!("{}/metrics", serve.base_url()))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// A metric of `ionctl serve` as a number (0 when it has not been recorded yet).
async fn metric(client: &reqwest::Client, serve: &ServeProcess, name: &str) -> f64 {
    metrics_text(client, serve)
        .await
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// The placement mirror of a running `ionctl serve` across a lost connection to etcd: without
/// a compaction it resumes its watch from the revision it had (no listing) and applies what
/// changed meanwhile; after etcd compacted past that revision it lists again. Either way the
/// next placement is decided on the cluster as it is now: a stale mirror would place on a node
/// drained during the cut, and the commit's guard would not stop it.
#[tokio::test]
async fn the_mirror_resumes_after_a_cut_and_lists_again_only_after_a_compaction() {
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("serve-cut");
    let store = etcd.store(&prefix).await;
    let keys = store.keys().clone();
    plant(&store, &[node_record("first", 2, 0.0)]).await;
    let link = CuttableLink::start(&etcd.endpoint()).await;
    let serve = ServeProcess::start_at(&link.endpoint(), &prefix, &[], &[]).await;
    let client = reqwest::Client::new();
    let drain = |id: &str| {
        let (store, key) = (store.clone(), keys.drain(id));
        async move {
            let request = DrainRequest {
                requested_at: SystemTime::now(),
                deadline: None,
                reason: Some("cut test".to_owned()),
            };
            store.put(&key, &request).await.expect("drain")
        }
    };
    let caught_up = |revision: i64| {
        let (client, serve) = (&client, &serve);
        async move {
            wait_for(
                "the mirror to catch up",
                Duration::from_secs(20),
                || async {
                    (metric(client, serve, "ion_placer_mirror_revision").await >= revision as f64)
                        .then_some(())
                },
            )
            .await;
        }
    };
    let place = |sid: &'static str| {
        let (client, serve) = (&client, &serve);
        async move {
            let (status, body) = post(
                client,
                serve,
                &json!({"class": "group", "size": 2, "session": sid}),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["node"].as_str().expect("a node").to_owned()
        }
    };

    // A cut with no compaction: "first" is drained and "second" joins meanwhile.
    link.cut();
    drain("first").await;
    plant(&store, &[node_record("second", 2, 0.0)]).await;
    let last = store.revision().await.expect("revision");
    link.heal();
    caught_up(last).await;
    assert!(metric(&client, &serve, "ion_placer_mirror_watch_broken_total").await >= 1.0);
    assert_eq!(
        metric(&client, &serve, "ion_placer_mirror_relists_total").await,
        0.0,
        "a broken watch with nothing compacted resumes without listing"
    );
    assert_eq!(place("after-cut").await, "second");

    // A cut during which etcd compacts past the mirror's revision: it must list again.
    link.cut();
    // Two writes, so that the compaction removes one the mirror has not seen (etcd keeps
    // the revision it compacts at).
    drain("second").await;
    plant(&store, &[node_record("third", 2, 0.0)]).await;
    let last = compact_now(&store).await;
    link.heal();
    caught_up(last).await;
    assert!(metric(&client, &serve, "ion_placer_mirror_relists_total").await >= 1.0);
    assert_eq!(place("after-compaction").await, "third");
}
