//! The GCE provider against a fake Compute Engine v1 API and a fake metadata server
//! (tests/gce/fake.rs): request shapes, operations, paging, retries, zone fallback without
//! duplicates, the three kinds of credentials, and `ionctl spawn/instances/delete
//! --provider gce` end to end with a real etcd.

#[path = "gce/fake.rs"]
mod fake;
mod harness;
#[allow(dead_code)]
#[path = "gcs/key.rs"]
mod key;

use std::time::Duration;

use fake::{AuthCheck, FakeCompute, FakeMetadata, Fault, Route};
use harness::{Etcd, stderr, stdout, unique_prefix};
use ion_cluster::compute::{
    Auth, AuthMode, ClientConfig, ComputeClient, GceError, RetryPolicy, install_crypto_provider,
};
use ion_cluster::provider::gce::{GceProvider, GceSettings};
use ion_cluster::provider::{
    AgentBootstrap, InstanceSpec, InstanceStatus, Progress, Provider, ProviderError, ProviderEvent,
};
use serde_json::{Value, json};

const PROJECT: &str = "test-project";
const IMAGE: &str = "projects/test-project/global/images/family/ion-agent";
const SERVICE_ACCOUNT: &str = "ion-agent@test-project.iam.gserviceaccount.com";

fn token_is(expected: &'static str) -> AuthCheck {
    std::sync::Arc::new(move |token: &str| {
        if token == expected {
            Ok(())
        } else {
            Err(format!("{token:?} is not {expected:?}"))
        }
    })
}

fn settings(compute: &FakeCompute, metadata: &FakeMetadata, zones: &[&str]) -> GceSettings {
    GceSettings {
        project: PROJECT.to_owned(),
        zones: zones.iter().map(|z| (*z).to_owned()).collect(),
        image: IMAGE.to_owned(),
        service_account: Some(SERVICE_ACCOUNT.to_owned()),
        spot: true,
        cluster: "test".to_owned(),
        disk_size_gb: Some(20),
        disk_type: Some("pd-balanced".to_owned()),
        auth: AuthMode::Metadata,
        metadata_endpoint: Some(format!("http://{}", metadata.host)),
        base_url: compute.base_url.clone(),
        ..GceSettings::default()
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        max_attempts: 5,
    }
}

fn provider(settings: GceSettings) -> GceProvider {
    GceProvider::with_retry(settings, fast_retry(), Duration::from_millis(10))
        .expect("the provider builds")
}

fn spec(name: &str, hold: Option<&str>) -> InstanceSpec {
    InstanceSpec {
        name: name.to_owned(),
        machine_type: "n2-highcpu-4".to_owned(),
        zone: None,
        labels: Default::default(),
        hold_for: hold.map(str::to_owned),
        agent: AgentBootstrap {
            etcd_endpoints: vec![
                "http://10.0.0.2:2379".to_owned(),
                "http://10.0.0.3:2379".to_owned(),
            ],
            prefix: "/ion/v1/".to_owned(),
            units_per_vcpu: Some(180),
            hold_ttl: Some(Duration::from_secs(120)),
        },
    }
}

fn drain(events: &mut tokio::sync::mpsc::UnboundedReceiver<ProviderEvent>) -> Vec<ProviderEvent> {
    let mut all = Vec::new();
    while let Ok(event) = events.try_recv() {
        all.push(event);
    }
    all
}

fn metadata_item<'a>(body: &'a Value, key: &str) -> &'a str {
    body["metadata"]["items"]
        .as_array()
        .expect("metadata items")
        .iter()
        .find(|i| i["key"] == key)
        .and_then(|i| i["value"].as_str())
        .unwrap_or_else(|| panic!("no metadata item {key}"))
}

#[tokio::test]
async fn create_get_list_delete_follow_compute_v1() {
    install_crypto_provider();
    let metadata = FakeMetadata::start("tok-metadata").await;
    let compute = FakeCompute::start(PROJECT, IMAGE, 2, token_is("tok-metadata")).await;
    let provider = provider(settings(&compute, &metadata, &["zone-a"]));
    let name = "ion-n2-highcpu-4-aaaaaa";

    let (progress, mut events) = Progress::channel();
    let instance = provider
        .create(&spec(name, Some("s1")), &progress)
        .await
        .expect("created");
    assert_eq!(compute.rejections(), Vec::<String>::new());
    assert_eq!(instance.name, name);
    assert_eq!(instance.provider, "gce");
    assert_eq!(instance.zone, "zone-a");
    assert_eq!(instance.machine_type, "n2-highcpu-4");
    assert_eq!(instance.status, InstanceStatus::Running);
    assert_eq!(instance.hold_for.as_deref(), Some("s1"));
    assert!(
        instance
            .address
            .as_deref()
            .is_some_and(|a| a.starts_with("203.0.113.")),
        "{instance:?}"
    );

    // The operation was followed PENDING → RUNNING → DONE with zoneOperations.wait.
    let statuses: Vec<String> = drain(&mut events)
        .into_iter()
        .filter_map(|e| match e {
            ProviderEvent::Operation { status, .. } => Some(status),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, ["PENDING", "RUNNING", "DONE"]);
    assert_eq!(compute.seen_on(Route::Wait).len(), 2);

    // The bearer token came from the metadata server.
    assert!(metadata.hits() >= 1);

    // The insert request: requestId, and the body the issue asks for.
    let inserts = compute.seen_on(Route::Insert);
    assert_eq!(inserts.len(), 1);
    let insert = &inserts[0];
    assert_eq!(insert.method, "POST");
    assert_eq!(
        insert.path,
        "/compute/v1/projects/test-project/zones/zone-a/instances"
    );
    uuid::Uuid::parse_str(insert.request_id().expect("a requestId")).expect("a UUID");
    let body = insert.body.as_ref().expect("a JSON body");
    assert_eq!(body["name"], name);
    assert_eq!(
        body["machineType"],
        "zones/zone-a/machineTypes/n2-highcpu-4"
    );
    let disk = &body["disks"][0];
    assert_eq!(disk["boot"], true);
    assert_eq!(disk["autoDelete"], true);
    assert_eq!(disk["initializeParams"]["sourceImage"], IMAGE);
    assert_eq!(disk["initializeParams"]["diskSizeGb"], "20");
    assert_eq!(
        disk["initializeParams"]["diskType"],
        "zones/zone-a/diskTypes/pd-balanced"
    );
    let nic = &body["networkInterfaces"][0];
    assert_eq!(nic["network"], "global/networks/default");
    assert_eq!(nic["accessConfigs"][0]["type"], "ONE_TO_ONE_NAT");
    assert_eq!(
        body["labels"],
        json!({"ion-cluster": "test", "ion-hold": "s1"})
    );
    assert_eq!(body["scheduling"]["provisioningModel"], "SPOT");
    assert_eq!(body["scheduling"]["instanceTerminationAction"], "DELETE");
    assert_eq!(body["serviceAccounts"][0]["email"], SERVICE_ACCOUNT);
    assert_eq!(body["tags"]["items"], json!(["ion-agent"]));
    assert_eq!(metadata_item(body, "ion-hold"), "s1");
    let script = metadata_item(body, "startup-script");
    for line in [
        "#!/bin/bash",
        "ION_AGENT_NODE_ID=ion-n2-highcpu-4-aaaaaa",
        "ION_AGENT_ETCD_ENDPOINTS=http://10.0.0.2:2379,http://10.0.0.3:2379",
        "ION_AGENT_ETCD__PREFIX='\"/ion/v1/\"'",
        "ION_AGENT_CLUSTER__MACHINE_TYPE='\"n2-highcpu-4\"'",
        "ION_AGENT_CLUSTER__ZONE='\"zone-a\"'",
        "ION_AGENT_CLUSTER__UNITS_PER_VCPU=180",
        "ION_AGENT_CLUSTER__HOLD_FOR='\"s1\"'",
        "ION_AGENT_CLUSTER__HOLD_TTL=2m",
        "ION_AGENT_LISTEN=0.0.0.0:7000",
        "ION_AGENT_WEBRTC__UDP_PORT=50000",
        "ExecStart=/usr/local/bin/ion-agent",
        "TimeoutStopSec=2h5min",
        "systemctl restart ion-agent.service",
    ] {
        assert!(script.contains(line), "{line:?} missing from:\n{script}");
    }

    // instances.get.
    let got = provider
        .get(name, "zone-a")
        .await
        .expect("get")
        .expect("it exists");
    assert_eq!(got, instance);

    // instances.list: only this cluster's label, every page (2 per page here).
    for i in 0..4 {
        compute.seed(
            "zone-a",
            &format!("ion-seeded-{i}"),
            json!({"ion-cluster": "test"}),
        );
    }
    compute.seed("zone-a", "other-cluster", json!({"ion-cluster": "prod"}));
    compute.seed("zone-a", "unlabelled", json!({}));
    let listed: Vec<String> = provider
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(
        listed,
        [
            "ion-n2-highcpu-4-aaaaaa",
            "ion-seeded-0",
            "ion-seeded-1",
            "ion-seeded-2",
            "ion-seeded-3"
        ]
    );
    let pages = compute.seen_on(Route::List);
    assert_eq!(pages.len(), 3, "5 instances, 2 per page");
    assert_eq!(pages[0].query["filter"], "labels.ion-cluster = \"test\"");
    assert_eq!(pages[0].query.get("pageToken"), None);
    assert_eq!(pages[1].query["pageToken"], "page-2");
    assert_eq!(pages[2].query["pageToken"], "page-4");

    // instances.delete, with its own requestId; deleting again finds nothing and is fine.
    provider
        .delete(name, "zone-a", &Progress::none())
        .await
        .expect("deleted");
    assert_eq!(compute.instance("zone-a", name), None);
    let deletes = compute.seen_on(Route::Delete);
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].method, "DELETE");
    assert_eq!(
        deletes[0].path,
        format!("/compute/v1/projects/test-project/zones/zone-a/instances/{name}")
    );
    uuid::Uuid::parse_str(deletes[0].request_id().expect("a requestId")).expect("a UUID");
    assert_eq!(provider.get(name, "zone-a").await.expect("get"), None);
    provider
        .delete(name, "zone-a", &Progress::none())
        .await
        .expect("deleting a deleted instance is fine");
    assert_eq!(compute.rejections(), Vec::<String>::new());
}

#[tokio::test]
async fn faults_are_retried_and_full_zones_skipped_without_a_duplicate() {
    install_crypto_provider();
    let metadata = FakeMetadata::start("tok").await;
    let compute = FakeCompute::start(PROJECT, IMAGE, 10, token_is("tok")).await;
    // zone-a: 429, then quota exceeded (403). zone-b: 503, then accepted, and the operation
    // ends in ZONE_RESOURCE_POOL_EXHAUSTED. zone-c: the insert is done but its response is
    // lost (503), so the retry must find the same operation, not create a second VM.
    compute.over_quota("zone-a");
    compute.exhaust("zone-b");
    for fault in [
        Fault::Fail(429),
        Fault::Pass,
        Fault::Fail(503),
        Fault::Pass,
        Fault::LoseResponse(503),
    ] {
        compute.fault(Route::Insert, fault);
    }
    compute.fault(Route::Wait, Fault::Fail(503));
    let provider = provider(settings(
        &compute,
        &metadata,
        &["zone-a", "zone-b", "zone-c"],
    ));
    let name = "ion-n2-highcpu-4-bbbbbb";

    let (progress, mut events) = Progress::channel();
    let instance = provider
        .create(&spec(name, None), &progress)
        .await
        .expect("created in the third zone");
    assert_eq!(instance.zone, "zone-c");
    assert_eq!(compute.rejections(), Vec::<String>::new());

    // Exactly one VM, anywhere.
    assert_eq!(
        compute.instances(),
        [("zone-c".to_owned(), name.to_owned())]
    );
    assert_eq!(
        compute.applied_inserts(),
        [
            ("zone-b".to_owned(), name.to_owned()),
            ("zone-c".to_owned(), name.to_owned())
        ]
    );

    let inserts = compute.seen_on(Route::Insert);
    let statuses: Vec<u16> = inserts.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [429, 403, 503, 200, 503, 200]);
    let ids: Vec<&str> = inserts
        .iter()
        .map(|s| s.request_id().expect("a requestId"))
        .collect();
    // A retry keeps its requestId; another zone gets a new one.
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[2], ids[3]);
    assert_eq!(ids[4], ids[5]);
    assert!(
        ids[0] != ids[2] && ids[2] != ids[4] && ids[0] != ids[4],
        "{ids:?}"
    );
    let zones: Vec<&str> = inserts
        .iter()
        .map(|s| s.path.split('/').nth(6).unwrap_or_default())
        .collect();
    assert_eq!(
        zones,
        ["zone-a", "zone-a", "zone-b", "zone-b", "zone-c", "zone-c"]
    );

    let unavailable: Vec<String> = drain(&mut events)
        .into_iter()
        .filter_map(|e| match e {
            ProviderEvent::ZoneUnavailable { zone, reason, .. } => {
                Some(format!("{zone}: {reason}"))
            }
            _ => None,
        })
        .collect();
    assert_eq!(unavailable.len(), 2, "{unavailable:?}");
    assert!(unavailable[0].starts_with("zone-a") && unavailable[0].contains("quotaExceeded"));
    assert!(
        unavailable[1].starts_with("zone-b")
            && unavailable[1].contains("ZONE_RESOURCE_POOL_EXHAUSTED"),
        "{unavailable:?}"
    );
}

#[tokio::test]
async fn no_zone_with_room_is_an_error_that_names_every_zone() {
    install_crypto_provider();
    let metadata = FakeMetadata::start("tok").await;
    let compute = FakeCompute::start(PROJECT, IMAGE, 10, token_is("tok")).await;
    compute.exhaust("zone-a");
    compute.exhaust("zone-b");
    let provider = provider(settings(&compute, &metadata, &["zone-a", "zone-b"]));
    let error = provider
        .create(&spec("ion-full", None), &Progress::none())
        .await
        .expect_err("no zone has room");
    let ProviderError::NoZone { failures, .. } = &error else {
        panic!("not NoZone: {error}");
    };
    let zones: Vec<&str> = failures.iter().map(|(z, _)| z.as_str()).collect();
    assert_eq!(zones, ["zone-a", "zone-b"]);
    assert!(
        error.to_string().contains("ZONE_RESOURCE_POOL_EXHAUSTED"),
        "{error}"
    );
    assert!(compute.instances().is_empty());
}

#[tokio::test]
async fn retries_stop_after_the_configured_attempts() {
    install_crypto_provider();
    let metadata = FakeMetadata::start("tok").await;
    let compute = FakeCompute::start(PROJECT, IMAGE, 10, token_is("tok")).await;
    for _ in 0..10 {
        compute.fault(Route::Get, Fault::Fail(503));
    }
    let provider = provider(settings(&compute, &metadata, &["zone-a"]));
    let error = provider
        .get("ion-x", "zone-a")
        .await
        .expect_err("every attempt fails");
    assert!(
        matches!(
            error,
            ProviderError::Gce(GceError::RetriesExhausted { attempts: 5, .. })
        ),
        "{error}"
    );
    assert_eq!(compute.seen_on(Route::Get).len(), 5);
}

#[tokio::test]
async fn operations_can_be_followed_with_zone_operations_get() {
    install_crypto_provider();
    let metadata = FakeMetadata::start("tok").await;
    let compute = FakeCompute::start(PROJECT, IMAGE, 10, token_is("tok")).await;
    let settings = settings(&compute, &metadata, &["zone-a"]);
    let body = provider(settings.clone())
        .insert_body(&spec("ion-polled", None), "zone-a")
        .expect("a body");
    let mut config = ClientConfig::new(
        PROJECT,
        Auth::Metadata {
            endpoint: settings.metadata_endpoint.clone(),
        },
    );
    config.base_url = compute.base_url.clone();
    let client = ComputeClient::new(config).expect("client");
    let operation = client
        .insert_instance("zone-a", &body, &uuid::Uuid::new_v4().to_string())
        .await
        .expect("insert");
    assert_eq!(operation.kind, "compute#operation");
    assert_eq!(operation.operation_type, "insert");
    assert!(
        operation
            .target_link
            .ends_with("/zones/zone-a/instances/ion-polled")
    );
    let mut statuses = vec![operation.status.clone()];
    while statuses.last().map(String::as_str) != Some("DONE") {
        assert!(statuses.len() < 5, "{statuses:?}");
        let next = client
            .get_operation("zone-a", &operation.name)
            .await
            .expect("zoneOperations.get");
        statuses.push(next.status);
    }
    assert_eq!(statuses, ["PENDING", "RUNNING", "DONE"]);
    assert!(
        client
            .get_instance("zone-a", "ion-polled")
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(compute.rejections(), Vec::<String>::new());
}

/// The fake is only worth something if it refuses what Compute refuses.
#[tokio::test]
async fn the_fake_refuses_what_compute_would_refuse() {
    install_crypto_provider();
    let compute = FakeCompute::start(PROJECT, IMAGE, 10, token_is("tok")).await;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/projects/{PROJECT}/zones/zone-a/instances",
        compute.base_url
    );
    let good = json!({
        "name": "ion-good",
        "machineType": "zones/zone-a/machineTypes/e2-small",
        "disks": [{"boot": true, "autoDelete": true, "type": "PERSISTENT",
                   "initializeParams": {"sourceImage": IMAGE}}],
        "networkInterfaces": [{"network": "global/networks/default",
                               "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]}],
    });
    let post = |body: Value, token: Option<&str>, request_id: Option<&str>| {
        let mut request = http.post(&url).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = request_id {
            request = request.query(&[("requestId", id)]);
        }
        async move {
            request
                .send()
                .await
                .expect("the fake answers")
                .status()
                .as_u16()
        }
    };
    let id = uuid::Uuid::new_v4().to_string();
    assert_eq!(post(good.clone(), None, Some(&id)).await, 401);
    assert_eq!(post(good.clone(), Some("wrong"), Some(&id)).await, 401);
    assert_eq!(post(good.clone(), Some("tok"), None).await, 400);
    assert_eq!(
        post(good.clone(), Some("tok"), Some("not-a-uuid")).await,
        400
    );
    let broken = [
        ("machine_type", json!("zones/zone-a/machineTypes/e2-small")),
        ("machineType", json!("e2-small")),
        ("disks", json!([])),
        (
            "networkInterfaces",
            json!([{"network": "global/networks/default"}]),
        ),
        ("labels", json!({"Ion-Cluster": "x"})),
        (
            "scheduling",
            json!({"provisioningModel": "SPOT", "automaticRestart": true}),
        ),
    ];
    for (field, value) in broken {
        let mut body = good.clone();
        body[field] = value;
        assert_eq!(
            post(body, Some("tok"), Some(&uuid::Uuid::new_v4().to_string())).await,
            400,
            "{field} was accepted"
        );
    }
    assert_eq!(post(good, Some("tok"), Some(&id)).await, 200);
    assert_eq!(
        compute.rejections().len(),
        10,
        "{:#?}",
        compute.rejections()
    );
}

#[tokio::test]
async fn a_service_account_key_file_signs_its_own_token() {
    install_crypto_provider();
    // The Cloud Storage tests' throwaway key; its signature is checked here as there.
    let key = key::service_account_key();
    let check: AuthCheck = key::signed_by(&key);
    let compute = FakeCompute::start(PROJECT, IMAGE, 10, check).await;
    let metadata = FakeMetadata::start("unused").await;
    let mut settings = settings(&compute, &metadata, &["zone-a"]);
    settings.auth = AuthMode::KeyFile;
    settings.key_file = Some(key.path.clone());
    let listed = provider(settings)
        .list()
        .await
        .expect("list with a signed token");
    assert!(listed.is_empty());
    assert_eq!(compute.rejections(), Vec::<String>::new());
    assert_eq!(metadata.hits(), 0, "the key signs locally");

    // Not a service-account key: a clear error naming the file.
    let bad = key.dir.path().join("user.json");
    std::fs::write(&bad, r#"{"type": "authorized_user"}"#).expect("write");
    let mut settings = self::settings(&compute, &metadata, &["zone-a"]);
    settings.auth = AuthMode::KeyFile;
    settings.key_file = Some(bad.clone());
    let error = GceProvider::new(settings).expect_err("refused").to_string();
    assert!(error.contains(&bad.display().to_string()), "{error}");
}

/// `ionctl spawn/instances/delete --provider gce`, with Application Default Credentials
/// that fall back to the (fake) metadata server through GCE_METADATA_HOST.
#[tokio::test]
async fn ionctl_spawn_instances_delete_with_gce() {
    install_crypto_provider();
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("gce-cli");
    let metadata = FakeMetadata::start("tok-adc").await;
    let compute = FakeCompute::start(PROJECT, IMAGE, 10, token_is("tok-adc")).await;
    let home = tempfile::tempdir().expect("an empty HOME: no gcloud credentials");
    let endpoint = etcd.endpoint();
    let run = |args: Vec<&str>| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ionctl"));
        command
            .args(&args)
            .args(["--etcd", &endpoint, "--prefix", &prefix])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("no-config"))
            .env("GCE_METADATA_HOST", &metadata.host)
            .env("IONCTL_GCE_PROJECT", PROJECT)
            .env("IONCTL_GCE_ZONES", "zone-a,zone-b")
            .env("IONCTL_GCE_IMAGE", IMAGE)
            .env("IONCTL_GCE_CLUSTER", "test")
            .env("IONCTL_GCE_BASE_URL", &compute.base_url)
            .kill_on_drop(true);
        async move {
            tokio::time::timeout(Duration::from_secs(60), command.output())
                .await
                .expect("ionctl finished within 60 s")
                .expect("running ionctl")
        }
    };

    compute.exhaust("zone-a");
    let output = run(vec![
        "spawn",
        "--provider",
        "gce",
        "--machine-type",
        "n2-highcpu-8",
        "--name",
        "ion-cli-1",
        "--hold",
        "s1",
        "--spot",
        "-o",
        "json",
    ])
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let spawned: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(spawned["name"], "ion-cli-1");
    assert_eq!(spawned["provider"], "gce");
    assert_eq!(spawned["zone"], "zone-b");
    assert_eq!(spawned["state"], "booting");
    assert_eq!(spawned["hold_for"], "s1");
    let progress = stderr(&output);
    assert!(
        progress.contains("requested") && progress.contains("booting"),
        "{progress}"
    );
    assert!(
        progress.contains("zone zone-a cannot take it"),
        "{progress}"
    );
    assert!(metadata.hits() >= 1, "ADC used the metadata server");
    assert_eq!(compute.rejections(), Vec::<String>::new());
    let insert = compute
        .seen_on(Route::Insert)
        .pop()
        .and_then(|s| s.body)
        .expect("an insert body");
    assert_eq!(insert["scheduling"]["provisioningModel"], "SPOT");
    let script = metadata_item(&insert, "startup-script");
    assert!(
        script.contains(&format!("ION_AGENT_ETCD_ENDPOINTS={endpoint}")),
        "{script}"
    );
    assert!(
        script.contains(&format!("ION_AGENT_ETCD__PREFIX='\"{prefix}\"'")),
        "{script}"
    );

    let output = run(vec!["instances", "-o", "json"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let listed: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(listed[0]["name"], "ion-cli-1");
    assert_eq!(listed[0]["state"], "booting");
    assert_eq!(listed[0]["node"], Value::Null);
    let output = run(vec!["instances"]).await;
    let table = stdout(&output);
    assert!(
        table.starts_with("NAME") && table.contains("ion-cli-1"),
        "{table}"
    );

    // No node registered (nothing boots here), so the drain has nothing to wait for.
    let output = run(vec!["delete", "ion-cli-1", "--timeout", "5s"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(compute.instances().is_empty());
    let store = etcd.store(&prefix).await;
    let keys = store.keys().clone();
    assert_eq!(
        store
            .get::<Value>(&keys.instance("ion-cli-1"))
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        store
            .get::<Value>(&keys.drain("ion-cli-1"))
            .await
            .expect("get"),
        None
    );

    let output = run(vec!["delete", "ion-cli-1"]).await;
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    assert_eq!(compute.rejections(), Vec::<String>::new());
}

/// Runs `ionctl` with only `PATH` and `env` in its environment.
async fn ionctl_clean_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ionctl"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("ionctl finished within 60 s")
        .expect("running ionctl")
}

/// `[gce]` settings resolve flag > IONCTL_GCE_* > config file, key by key, and a typo in
/// the table is a usage error naming the file.
#[tokio::test]
async fn gce_settings_resolve_flag_then_env_then_file() {
    install_crypto_provider();
    let etcd = Etcd::start().await;
    let prefix = unique_prefix("gce-precedence");
    let metadata = FakeMetadata::start("tok").await;
    let compute = FakeCompute::start(PROJECT, IMAGE, 10, token_is("tok")).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[etcd]\nendpoints = [\"{}\"]\nprefix = \"{prefix}\"\n\n\
             [gce]\nproject = \"file-project\"\nzones = [\"zone-f\"]\n\
             image = \"projects/x/global/images/wrong\"\ncluster = \"test\"\n\
             auth = \"metadata\"\nmetadata_endpoint = \"http://{}\"\nbase_url = \"{}\"\n",
            etcd.endpoint(),
            metadata.host,
            compute.base_url
        ),
    )
    .expect("writing the config");
    let config = config.display().to_string();
    let home = dir.path().display().to_string();
    let output = ionctl_clean_env(
        &[
            "spawn",
            "--config",
            &config,
            "--machine-type",
            "e2-small",
            "--name",
            "ion-precedence",
            "--project",
            PROJECT,
        ],
        &[
            ("HOME", &home),
            ("IONCTL_GCE_PROJECT", "env-project"),
            ("IONCTL_GCE_IMAGE", IMAGE),
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(compute.rejections(), Vec::<String>::new());
    // The project from the flag, the image from the environment, the zone from the file.
    assert_eq!(
        compute.instances(),
        [("zone-f".to_owned(), "ion-precedence".to_owned())]
    );

    std::fs::write(dir.path().join("typo.toml"), "[gce]\nzone = [\"a\"]\n").expect("write");
    let typo = dir.path().join("typo.toml").display().to_string();
    let output = ionctl_clean_env(&["instances", "--config", &typo], &[("HOME", &home)]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&typo) && stderr(&output).contains("zone"),
        "{}",
        stderr(&output)
    );
}

/// A zone out of capacity or quota answers in several synchronous forms (503 or 403, the
/// cause in the error's reason or only in its message), besides the operation's error. Each
/// form moves the insert to the next zone at once: one request to the full zone, no
/// retries there. With every zone full, the error names each zone's cause once.
#[tokio::test]
async fn every_form_of_a_full_zone_moves_on_at_once() {
    install_crypto_provider();
    let forms = [
        Fault::Refuse(
            503,
            "ZONE_RESOURCE_POOL_EXHAUSTED",
            "The zone does not have enough resources available to fulfill the request.",
        ),
        Fault::Refuse(
            503,
            "backendError",
            "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS: The zone 'zone-a' does not have enough resources available to fulfill the request. '(resource type:compute)'.",
        ),
        Fault::Refuse(
            403,
            "resourcePoolExhausted",
            "The zone does not have enough resources.",
        ),
        Fault::Refuse(
            403,
            "forbidden",
            "QUOTA_EXCEEDED: Quota 'CPUS' exceeded. Limit: 24.0 in region europe-west1.",
        ),
        Fault::Refuse(
            403,
            "quotaExceeded",
            "Quota 'CPUS' exceeded. Limit: 24.0 in region europe-west1.",
        ),
    ];
    for form in forms {
        let metadata = FakeMetadata::start("tok").await;
        let compute = FakeCompute::start(PROJECT, IMAGE, 10, token_is("tok")).await;
        compute.fault(Route::Insert, form);
        let provider = provider(settings(&compute, &metadata, &["zone-a", "zone-b"]));
        let started = std::time::Instant::now();
        let instance = provider
            .create(&spec("ion-full-a", None), &Progress::none())
            .await
            .unwrap_or_else(|e| panic!("{form:?}: not created in zone-b: {e}"));
        assert_eq!(instance.zone, "zone-b", "{form:?}");
        let zones: Vec<String> = compute
            .seen_on(Route::Insert)
            .iter()
            .map(|s| s.path.split('/').nth(6).unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            zones,
            ["zone-a", "zone-b"],
            "{form:?}: retried the full zone"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{form:?}: took {:?}",
            started.elapsed()
        );
        assert_eq!(compute.rejections(), Vec::<String>::new());
    }

    // Every zone full: one line, each zone's cause once.
    let metadata = FakeMetadata::start("tok").await;
    let compute = FakeCompute::start(PROJECT, IMAGE, 10, token_is("tok")).await;
    for _ in 0..2 {
        compute.fault(
            Route::Insert,
            Fault::Refuse(
                503,
                "ZONE_RESOURCE_POOL_EXHAUSTED",
                "ZONE_RESOURCE_POOL_EXHAUSTED: no room",
            ),
        );
    }
    let provider = provider(settings(&compute, &metadata, &["zone-a", "zone-b"]));
    let error = provider
        .create(&spec("ion-full-b", None), &Progress::none())
        .await
        .expect_err("no zone has room")
        .to_string();
    assert_eq!(
        error.matches("ZONE_RESOURCE_POOL_EXHAUSTED").count(),
        2,
        "one cause per zone: {error}"
    );
    assert_eq!(compute.seen_on(Route::Insert).len(), 2, "{error}");
}
