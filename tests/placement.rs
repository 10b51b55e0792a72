//! Placement against a real etcd: the race-free commit, the seed's problems P2/P3 and P5–P7,
//! draining and held nodes, affinity, reservation expiry, `--wait`, tokens and bad input. Node
//! records are planted directly; what placement reads is their capacity and stats.

mod harness;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use harness::{
    Etcd, audit, ionctl, ionctl_with_env, node_record, plant, stderr, unique_prefix, wait_for,
};
use ion_cluster::api::PlaceAnswer;
use ion_cluster::model::{
    DrainRequest, NodeState, PendingDemand, SessionClass, SessionRecord, SessionState,
};
use ion_cluster::placement::{Request, Role, Strategy};
use ion_cluster::placer::{Outcome, Placer, PlacerOptions};
use ion_cluster::store::{Claim, Commit, IfUnplaced, Store};
use ion_cluster::token::{JoinSecret, verify};

struct Cluster {
    etcd: Etcd,
    prefix: String,
    store: Store,
}

impl Cluster {
    async fn start(test: &str) -> Self {
        let etcd = Etcd::start().await;
        let prefix = unique_prefix(test);
        let store = etcd.store(&prefix).await;
        Self {
            etcd,
            prefix,
            store,
        }
    }

    /// `ionctl place -o json` with `args`; the parsed answer and the exit code.
    async fn place(&self, args: &[&str]) -> (Option<PlaceAnswer>, i32, String) {
        self.place_env(args, &[]).await
    }

    async fn place_env(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Option<PlaceAnswer>, i32, String) {
        let endpoint = self.etcd.endpoint();
        let base = [
            "place",
            "-o",
            "json",
            "--etcd",
            &endpoint,
            "--prefix",
            &self.prefix,
        ];
        let output = ionctl_with_env(&[&base[..], args].concat(), env).await;
        let answer = serde_json::from_slice(&output.stdout).ok();
        (answer, output.status.code().unwrap_or(-1), stderr(&output))
    }
}

fn node_of(answer: &Option<PlaceAnswer>) -> Option<&str> {
    answer.as_ref().and_then(|a| a.node.as_deref())
}

/// The commit's guard, one node's placement revision key, against a real etcd: it fails on any
/// demand added to the node after the decision (a placer's commit, an agent restoring a session,
/// the key deleted with a lease and created again), holds otherwise, and a node whose key is
/// missing gets one on the first conflict.
#[tokio::test]
async fn the_commit_fails_on_demand_added_to_the_node_after_the_decision() {
    let c = Cluster::start("commit-guard").await;
    let store = &c.store;
    let rev_key = store.keys().placement_rev("n1");
    let rev = || {
        let mut client = store.client();
        let key = rev_key.clone();
        async move {
            let response = client.get(key, None).await.expect("get");
            response
                .kvs()
                .first()
                .map(|kv| (kv.mod_revision(), kv.lease()))
        }
    };
    let now = || async { store.snapshot().await.expect("read").revision };
    let lease = store
        .grant_lease(Duration::from_secs(60))
        .await
        .expect("lease");
    let session = |sid: &str| SessionRecord {
        sid: sid.to_owned(),
        class: SessionClass::Group,
        size: 2,
        demand: 2,
        node: "n1".to_owned(),
        state: SessionState::Reserved,
        relays: Vec::new(),
        edge_demand: 0,
        created_at: SystemTime::now(),
    };
    let commit = |sid: &str, decided_at: i64| {
        let record = session(sid);
        async move {
            store
                .commit_reservations(&[record], decided_at, lease)
                .await
                .expect("txn")
        }
    };
    let exists = |sid: &str| {
        let key = store.keys().session(sid);
        async move {
            store
                .get::<SessionRecord>(&key)
                .await
                .expect("get")
                .is_some()
        }
    };

    // A record written by hand has no revision key: the first commit conflicts and creates
    // it, on the record's lease (none here), so the next decision can commit.
    plant(store, &[node_record("n1", 2, 0.0)]).await;
    let decided = now().await;
    assert!(matches!(
        commit("a", decided).await,
        Commit::Conflict { .. }
    ));
    assert!(!exists("a").await);
    assert_eq!(rev().await.map(|(_, lease)| lease), Some(0));
    let Commit::Committed { revision: first } = commit("a", now().await).await else {
        panic!("a fresh decision on a node with its revision key must commit");
    };
    assert_eq!(
        rev().await.map(|(at, _)| at),
        Some(first),
        "the commit bumps it"
    );

    // Decided before `a` landed: conflicts, and writes nothing.
    assert!(matches!(
        commit("b", first - 1).await,
        Commit::Conflict { .. }
    ));
    assert!(!exists("b").await);
    // Decided with `a` in view: commits. The same session again: conflicts.
    assert!(matches!(commit("b", first).await, Commit::Committed { .. }));
    assert!(matches!(
        commit("b", i64::MAX - 1).await,
        Commit::Conflict { .. }
    ));

    // A stats write (the node record) and a session ending do not conflict.
    let decided = now().await;
    plant(store, &[node_record("n1", 2, 0.5)]).await;
    store.release_session("a", "n1").await.expect("release");
    assert!(matches!(
        commit("c", decided).await,
        Commit::Committed { .. }
    ));

    // An agent adopting a reservation moves it onto its lease without bumping the key; an
    // agent restoring a session it lost (a partition longer than the TTL) adds demand and
    // bumps it, so a decision made before the restore conflicts.
    let node_lease = store
        .grant_lease(Duration::from_secs(60))
        .await
        .expect("lease");
    let before = rev().await;
    let adopted = store
        .claim_session("c", "n1", node_lease, &IfUnplaced::Refuse)
        .await
        .expect("claim");
    assert!(matches!(adopted, Claim::Adopted(_)), "{adopted:?}");
    assert_eq!(rev().await, before, "adopting adds no demand");
    let decided = now().await;
    let restored = store
        .claim_session(
            "lost",
            "n1",
            node_lease,
            &IfUnplaced::Restore(session("lost")),
        )
        .await
        .expect("claim");
    assert!(matches!(restored, Claim::Created(_)), "{restored:?}");
    assert!(matches!(
        commit("d", decided).await,
        Commit::Conflict { .. }
    ));
    assert!(!exists("d").await);

    // The key lapsing with a lease after a commit bumped it: a decision made before cannot
    // commit while the key is absent, nor after it is created again.
    let decided = now().await;
    assert!(matches!(
        commit("e", now().await).await,
        Commit::Committed { .. }
    ));
    store.revoke_lease(node_lease).await.expect("revoke");
    assert_eq!(
        rev().await,
        None,
        "the restore put the key on the node's lease"
    );
    assert!(matches!(
        commit("f", decided).await,
        Commit::Conflict { .. }
    ));
    assert!(rev().await.is_some(), "the conflict created the key again");
    assert!(matches!(
        commit("f", decided).await,
        Commit::Conflict { .. }
    ));
    assert!(!exists("f").await);
    assert!(matches!(
        commit("f", now().await).await,
        Commit::Committed { .. }
    ));
}

/// 200 placements from 4 processes at once onto 3 nodes of different sizes: the audit shows
/// no node above its headroom at any point, and every request got a node or a clear
/// no-capacity answer.
#[tokio::test]
async fn race_of_four_processes_never_overbooks() {
    let c = Arc::new(Cluster::start("race").await);
    plant(
        &c.store,
        &[
            node_record("small", 2, 0.0),
            node_record("medium", 4, 0.0),
            node_record("large", 8, 0.0),
        ],
    )
    .await;
    let mut workers = Vec::new();
    for worker in 0..4 {
        let c = c.clone();
        workers.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for i in 0..50 {
                // Groups of 3..6 and meetings of 4..12: 6 to 108 units each, 2,100 in all.
                let (class, size) = if i % 2 == 0 {
                    ("group", 3 + i % 4)
                } else {
                    ("meeting", 4 + i % 9)
                };
                let sid = format!("w{worker}-{i}");
                let size = size.to_string();
                let (answer, code, err) = c
                    .place(&["--class", class, "--size", &size, "--session", &sid])
                    .await;
                results.push((sid, answer, code, err));
            }
            results
        }));
    }
    let mut placed = 0;
    let mut refused = 0;
    for worker in workers {
        for (sid, answer, code, err) in worker.await.expect("worker") {
            let answer =
                answer.unwrap_or_else(|| panic!("{sid}: no JSON answer (exit {code}): {err}"));
            match (answer.decision.as_str(), code) {
                ("place", 0) => placed += 1,
                ("no_capacity", 4) => {
                    assert!(err.contains("no node can take"), "{sid}: {err}");
                    refused += 1;
                }
                other => panic!("{sid}: unexpected {other:?}: {err}"),
            }
        }
    }
    assert_eq!(placed + refused, 200);
    let committed = audit(&c.store).await;
    assert_eq!(
        c.store.sessions().await.expect("sessions").items.len(),
        placed
    );
    // 2,100 units asked for and 2,100 × ~0.85 available: many fit, some cannot.
    assert!(
        placed > 50 && refused > 0,
        "placed {placed}, refused {refused}"
    );
    assert_eq!(
        committed.len(),
        3,
        "every node took sessions: {committed:?}"
    );
}

/// P5: 100 group placements at once while every node reports CPU 0. Committed units count at
/// once, so the placements spread as capacity requires and none is overbooked.
#[tokio::test]
async fn load_lag_a_burst_is_spread_by_committed_units() {
    let c = Cluster::start("load-lag").await;
    plant(
        &c.store,
        &[
            node_record("a", 8, 0.0),
            node_record("b", 8, 0.0),
            node_record("c", 8, 0.0),
            node_record("d", 8, 0.0),
        ],
    )
    .await;
    // Ten placers with their own connections and committers, ten requests each at once.
    let mut tasks = Vec::new();
    for p in 0..10 {
        let store = c.etcd.store(&c.prefix).await;
        let placer = Arc::new(
            Placer::start(store, PlacerOptions::default())
                .await
                .expect("placer"),
        );
        for i in 0..10 {
            let placer = placer.clone();
            tasks.push(tokio::spawn(async move {
                let request = Request {
                    sid: format!("p{p}-{i}"),
                    class: SessionClass::Group,
                    size: 6,
                    strategy: Strategy::Binpack,
                    role: Role::Publisher,
                    uid: None,
                };
                placer.place(request).await
            }));
        }
    }
    for task in tasks {
        let outcome = task.await.expect("task").expect("placed");
        assert!(
            matches!(
                outcome,
                Outcome::Placed {
                    existing: false,
                    ..
                }
            ),
            "{outcome:?}"
        );
    }
    // 100 × 30 units; a node takes 1,080 under 0.90, i.e. 36 groups: three nodes are needed,
    // and binpack leaves the fourth empty.
    let committed = audit(&c.store).await;
    let mut loads: Vec<u32> = committed.values().copied().collect();
    loads.sort();
    assert_eq!(loads, [840, 1080, 1080], "{committed:?}");
}

/// P6: a 1-vCPU node at 1% carries 1.5 units; a 16-vCPU node at 10% carries 240. Raw CPU would
/// pick the first; a meeting of 15 (135 units) only fits the second in units.
#[tokio::test]
async fn heterogeneous_nodes_compare_in_units() {
    let c = Cluster::start("heterogeneous").await;
    plant(
        &c.store,
        &[
            node_record("one-vcpu", 1, 0.01),
            node_record("sixteen-vcpu", 16, 0.10),
        ],
    )
    .await;
    let (answer, code, err) = c.place(&["--class", "meeting", "--size", "15"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(node_of(&answer), Some("sixteen-vcpu"));
    // A small group fits both; binpack takes the fuller one after placement in units: the
    // one-vCPU node at (1.5 + 6) / 150 = 5% against (240 + 6 + 135) / 2,400 = 16%.
    let (answer, _, _) = c.place(&["--class", "group", "--size", "3"]).await;
    assert_eq!(node_of(&answer), Some("sixteen-vcpu"));
    let (answer, _, _) = c
        .place(&["--class", "group", "--size", "3", "--strategy", "spread"])
        .await;
    assert_eq!(node_of(&answer), Some("one-vcpu"));
}

/// P7: ten small sessions on three empty equal nodes all go to one node.
#[tokio::test]
async fn binpack_fills_one_node_before_touching_the_next() {
    let c = Cluster::start("binpack").await;
    plant(
        &c.store,
        &[
            node_record("a", 2, 0.0),
            node_record("b", 2, 0.0),
            node_record("c", 2, 0.0),
        ],
    )
    .await;
    for i in 0..10 {
        let (answer, code, err) = c
            .place(&[
                "--class",
                "group",
                "--size",
                "3",
                "--session",
                &format!("s{i}"),
            ])
            .await;
        assert_eq!(code, 0, "{err}");
        assert_eq!(node_of(&answer), Some("a"), "session {i}");
    }
    assert_eq!(
        audit(&c.store).await.into_iter().collect::<Vec<_>>(),
        [("a".to_owned(), 60)]
    );
}

/// P2/P3: a conference of 300 (1,794 units) never lands on a node that cannot hold it; a group
/// is admitted up to 0.90 utilisation where a meeting stops at 0.80.
#[tokio::test]
async fn classes_set_demand_and_headroom() {
    let c = Cluster::start("classes").await;
    plant(&c.store, &[node_record("eight", 8, 0.0)]).await;
    let (answer, code, err) = c
        .place(&[
            "--class",
            "conference",
            "--size",
            "300",
            "--session",
            "conf",
        ])
        .await;
    assert_eq!(code, 4, "{err}");
    let answer = answer.expect("JSON");
    assert_eq!(answer.decision, "no_capacity");
    assert_eq!(answer.machine_type.as_deref(), Some("n2-highcpu-16"));
    let pending: PendingDemand = c
        .store
        .get(&c.store.keys().pending("conf"))
        .await
        .expect("get")
        .expect("pending written");
    assert_eq!(pending.demand, 1794);
    assert!(
        err.contains("pending/conf") && err.contains("n2-highcpu-16"),
        "{err}"
    );
    plant(&c.store, &[node_record("sixteen", 16, 0.0)]).await;
    let (answer, code, err) = c
        .place(&[
            "--class",
            "conference",
            "--size",
            "300",
            "--session",
            "conf",
        ])
        .await;
    assert_eq!((code, node_of(&answer)), (0, Some("sixteen")), "{err}");
    // The commit removed the pending demand.
    assert!(
        c.store
            .get::<PendingDemand>(&c.store.keys().pending("conf"))
            .await
            .expect("get")
            .is_none()
    );

    // 2 vCPUs (300 units) at 80% CPU: a group of 3 reaches 82% (≤ 0.90), a meeting of 3 would too
    // but meetings stop at 0.80.
    let c = Cluster::start("classes-headroom").await;
    plant(&c.store, &[node_record("busy", 2, 0.80)]).await;
    let (answer, code, err) = c.place(&["--class", "group", "--size", "3"]).await;
    assert_eq!((code, node_of(&answer)), (0, Some("busy")), "{err}");
    let (answer, code, _) = c.place(&["--class", "meeting", "--size", "3"]).await;
    assert_eq!(
        (code, answer.map(|a| a.decision)),
        (4, Some("no_capacity".to_owned()))
    );
}

#[tokio::test]
async fn draining_and_held_nodes_are_never_chosen() {
    let c = Cluster::start("draining").await;
    let mut draining = node_record("draining", 8, 0.3);
    draining.state = NodeState::Draining;
    let mut held = node_record("held", 8, 0.3);
    held.hold_for = Some("someone-else".to_owned());
    plant(
        &c.store,
        &[
            draining,
            held,
            node_record("drain-requested", 8, 0.3),
            node_record("free", 1, 0.0),
        ],
    )
    .await;
    let drain = DrainRequest {
        requested_at: SystemTime::now(),
        deadline: None,
        reason: None,
    };
    c.store
        .put(&c.store.keys().drain("drain-requested"), &drain)
        .await
        .expect("drain");
    for i in 0..4 {
        let (answer, code, err) = c
            .place(&[
                "--class",
                "group",
                "--size",
                "6",
                "--session",
                &format!("s{i}"),
            ])
            .await;
        assert_eq!((code, node_of(&answer)), (0, Some("free")), "{err}");
    }
    // The free node is full (4 × 30 of 135): the others still take nothing.
    let (answer, code, _) = c.place(&["--class", "group", "--size", "6"]).await;
    assert_eq!(
        (code, answer.map(|a| a.decision)),
        (4, Some("no_capacity".to_owned()))
    );
    // The held node takes the session it is held for.
    let (answer, code, err) = c
        .place(&[
            "--class",
            "group",
            "--size",
            "6",
            "--session",
            "someone-else",
        ])
        .await;
    assert_eq!((code, node_of(&answer)), (0, Some("held")), "{err}");
}

#[tokio::test]
async fn placing_an_existing_session_returns_its_node() {
    let c = Cluster::start("affinity").await;
    plant(
        &c.store,
        &[node_record("a", 2, 0.0), node_record("b", 2, 0.0)],
    )
    .await;
    let (first, code, err) = c
        .place(&["--class", "group", "--size", "4", "--session", "room"])
        .await;
    assert_eq!(code, 0, "{err}");
    // Even with another strategy and a size that would choose differently.
    let (second, code, err) = c
        .place(&[
            "--class",
            "meeting",
            "--size",
            "20",
            "--session",
            "room",
            "--strategy",
            "spread",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let second = second.expect("JSON");
    assert_eq!(second.decision, "existing");
    assert_eq!(second.node.as_deref(), node_of(&first));
    assert_eq!(c.store.sessions().await.expect("sessions").items.len(), 1);
}

#[tokio::test]
async fn an_unjoined_reservation_expires_and_frees_its_capacity() {
    let c = Cluster::start("expiry").await;
    // 150 units × 0.90: one group of 6 (30) fits four times, not five.
    plant(&c.store, &[node_record("only", 1, 0.0)]).await;
    for i in 0..4 {
        let (_, code, err) = c
            .place(&[
                "--class",
                "group",
                "--size",
                "6",
                "--session",
                &format!("s{i}"),
                "--reservation-ttl",
                "2s",
            ])
            .await;
        assert_eq!(code, 0, "{err}");
    }
    let (_, code, _) = c
        .place(&["--class", "group", "--size", "6", "--session", "late"])
        .await;
    assert_eq!(code, 4);
    let keys = c.store.keys().clone();
    wait_for(
        "the reservations to expire",
        Duration::from_secs(15),
        || async {
            let sessions = c.store.sessions().await.expect("sessions");
            let placements = c
                .store
                .client()
                .get(
                    keys.placements(),
                    Some(
                        etcd_client::GetOptions::new()
                            .with_prefix()
                            .with_count_only(),
                    ),
                )
                .await
                .expect("count");
            (sessions.items.is_empty() && placements.count() == 0).then_some(())
        },
    )
    .await;
    let (answer, code, err) = c
        .place(&["--class", "group", "--size", "6", "--session", "late"])
        .await;
    assert_eq!((code, node_of(&answer)), (0, Some("only")), "{err}");
}

#[tokio::test]
async fn wait_places_as_soon_as_a_node_fits() {
    let c = Cluster::start("wait").await;
    plant(&c.store, &[node_record("tiny", 1, 0.0)]).await;
    let endpoint = c.etcd.endpoint();
    let args = [
        "place",
        "-o",
        "json",
        "--etcd",
        &endpoint,
        "--prefix",
        &c.prefix,
        "--class",
        "meeting",
        "--size",
        "30",
        "--session",
        "big",
        "--wait",
        "25s",
    ];
    let waiting = ionctl(&args);
    let store = c.store.clone();
    let grow = async move {
        let key = store.keys().pending("big");
        wait_for("pending/big", Duration::from_secs(10), || async {
            store.get::<PendingDemand>(&key).await.expect("get")
        })
        .await;
        plant(&store, &[node_record("new", 4, 0.0)]).await;
    };
    let (output, ()) = tokio::join!(waiting, grow);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let answer: PlaceAnswer = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer.node.as_deref(), Some("new"));
    assert!(
        stderr(&output).contains("waiting for capacity"),
        "{}",
        stderr(&output)
    );
    assert!(
        c.store
            .get::<PendingDemand>(&c.store.keys().pending("big"))
            .await
            .expect("get")
            .is_none()
    );

    // Nothing comes: the wait ends with the no-capacity exit.
    let args = [
        "place", "--etcd", &endpoint, "--prefix", &c.prefix, "--class", "meeting", "--size", "50",
        "--wait", "1s",
    ];
    let output = ionctl(&args).await;
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(stderr(&output).contains("within 1s"), "{}", stderr(&output));
}

#[tokio::test]
async fn the_answer_carries_a_join_token_for_the_session_and_node() {
    let c = Cluster::start("token").await;
    plant(&c.store, &[node_record("a", 2, 0.0)]).await;
    let secret = "s3cret-s3cret-s3cret-s3cret-s3cret";
    let (answer, code, err) = c
        .place_env(
            &["--class", "group", "--size", "2"],
            &[("IONCTL_JOIN_SECRET", secret)],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    let answer = answer.expect("JSON");
    assert_eq!(
        answer.signal_url.as_deref(),
        Some("ws://127.0.0.1:7000/ws?node=a")
    );
    let secret = JoinSecret::new(secret).expect("secret");
    let claims = verify(
        &secret,
        answer.token.as_deref(),
        &answer.sid,
        "a",
        SystemTime::now(),
    )
    .expect("a valid token");
    assert!(claims.exp > claims.iat && claims.exp - claims.iat <= 300);
    assert!(
        verify(
            &secret,
            answer.token.as_deref(),
            &answer.sid,
            "b",
            SystemTime::now()
        )
        .is_err()
    );

    // Without a secret: no token, and a note saying how to get one.
    let (answer, code, err) = c.place(&["--class", "group", "--size", "2"]).await;
    assert_eq!(code, 0);
    assert!(answer.expect("JSON").token.is_none());
    assert!(err.contains("IONCTL_JOIN_SECRET"), "{err}");
    // A weak secret is a usage error.
    let (_, code, err) = c
        .place_env(
            &["--class", "group", "--size", "2"],
            &[("IONCTL_JOIN_SECRET", "short")],
        )
        .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at least 32"), "{err}");
}

#[tokio::test]
async fn bad_requests_get_a_usage_error_and_a_dead_etcd_exit_3() {
    let dead = format!("http://127.0.0.1:{}", harness::free_port());
    let output = ionctl(&["place", "--class", "group", "--size", "7", "--etcd", &dead]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("class meeting"),
        "{}",
        stderr(&output)
    );
    let output = ionctl(&["place", "--class", "party", "--size", "3"]).await;
    assert_eq!(output.status.code(), Some(2));
    let output = ionctl(&[
        "place",
        "--class",
        "group",
        "--size",
        "3",
        "--session",
        "a/b",
        "--etcd",
        &dead,
    ])
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("session id \"a/b\""),
        "{}",
        stderr(&output)
    );
    let output = ionctl(&[
        "place",
        "--class",
        "group",
        "--size",
        "3",
        "--etcd",
        &dead,
        "--connect-timeout",
        "300ms",
    ])
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
}
