//! `ionctl bench place`: placement throughput against raw etcd transaction throughput, in one
//! run, with the same client. It plants synthetic nodes under a throwaway prefix, then at each
//! concurrency level measures (1) transactions of the reservation's shape with no decision, and
//! (2) placements through a mirrored placer, as `ionctl serve` runs it. It removes what it
//! wrote at the end. Progress goes to a callback; the CLI prints.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use etcd_client::{Compare, CompareOp, DeleteOptions, PutOptions, Txn, TxnOp};
use serde::Serialize;

pub mod decide;
pub mod floor;

use crate::capacity::MachineType;
use crate::model::{NodeRecord, SessionClass};
use crate::placement::{Policy, Request, Role, Strategy};
use crate::placer::{Outcome, PlaceError, Placer, PlacerOptions};
use crate::store::{Store, StoreError};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Synthetic node records to plant.
    pub nodes: u32,
    /// Placements (and raw transactions) per concurrency level.
    pub operations: u32,
    pub concurrency: Vec<u32>,
    /// What each placement asks for. Small sessions pile many reservations onto one node,
    /// which was the worst case for the range compare the commit once used.
    pub class: SessionClass,
    pub size: u32,
}

/// One concurrency level's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LevelResult {
    pub concurrency: u32,
    pub raw_txn_per_sec: f64,
    pub raw_p50_ms: f64,
    pub raw_p99_ms: f64,
    pub placements_per_sec: f64,
    pub place_p50_ms: f64,
    pub place_p99_ms: f64,
    /// placements/s over raw txn/s.
    pub ratio: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a placement failed: {0}")]
    Place(#[from] PlaceError),
    #[error("a placement found no capacity; the synthetic nodes should hold everything")]
    NoCapacity,
}

/// Runs the benchmark with `store`, whose prefix must be a throwaway one: everything under it
/// is deleted at the end.
pub async fn run(
    store: &Store,
    options: &BenchOptions,
    mut progress: impl FnMut(String),
) -> Result<Vec<LevelResult>, BenchError> {
    progress(format!("planting {} synthetic nodes", options.nodes));
    plant_nodes(store, options.nodes).await?;
    let mut results = Vec::new();
    let outcome = async {
        for &concurrency in &options.concurrency {
            let concurrency = concurrency.max(1);
            progress(format!("raw etcd transactions, {concurrency} at once"));
            let (raw_rate, raw_lat) = raw_txns(store, concurrency, options).await?;
            clear_sessions(store).await?;
            progress(format!("placements, {concurrency} placers at once"));
            let (place_rate, place_lat) = placements(store, concurrency, options).await?;
            clear_sessions(store).await?;
            results.push(LevelResult {
                concurrency,
                raw_txn_per_sec: raw_rate,
                raw_p50_ms: percentile(&raw_lat, 50),
                raw_p99_ms: percentile(&raw_lat, 99),
                placements_per_sec: place_rate,
                place_p50_ms: percentile(&place_lat, 50),
                place_p99_ms: percentile(&place_lat, 99),
                ratio: place_rate / raw_rate,
            });
        }
        Ok::<_, BenchError>(())
    }
    .await;
    progress("removing the benchmark's keys".to_owned());
    store
        .client()
        .delete(
            store.keys().prefix(),
            Some(DeleteOptions::new().with_prefix()),
        )
        .await
        .map_err(|e| store.classify(e))?;
    outcome.map(|()| results)
}

/// n2-highcpu-32 records (4,800 units each) with stats that stay fresh for the whole run.
async fn plant_nodes(store: &Store, count: u32) -> Result<(), StoreError> {
    let machine = MachineType::by_name("n2-highcpu-32").expect("in the catalogue");
    let now = SystemTime::now();
    let records: Vec<NodeRecord> = (0..count)
        .map(|i| NodeRecord {
            signal_url: format!("ws://10.0.{}.{}:7000/ws", i / 250, i % 250 + 1),
            address: format!("10.0.{}.{}", i / 250, i % 250 + 1),
            zone: "bench-zone".to_owned(),
            ..NodeRecord::blank(
                &format!("bench-{i:05}"),
                machine.name,
                machine.vcpus,
                machine.capacity(crate::capacity::DEFAULT_UNITS_PER_VCPU),
                now,
            )
        })
        .collect();
    let mut client = store.client();
    for chunk in records.chunks(50) {
        let ops: Vec<TxnOp> = chunk
            .iter()
            .flat_map(|n| {
                let value = serde_json::to_vec(n).expect("NodeRecord serialises");
                [
                    TxnOp::put(store.keys().node(&n.id), value, None),
                    TxnOp::put(store.keys().placement_rev(&n.id), "", None),
                ]
            })
            .collect();
        client
            .txn(Txn::new().and_then(ops))
            .await
            .map_err(|e| store.classify(e))?;
    }
    Ok(())
}

async fn clear_sessions(store: &Store) -> Result<(), StoreError> {
    let mut client = store.client();
    for prefix in [store.keys().sessions(), store.keys().placements()] {
        client
            .delete(prefix, Some(DeleteOptions::new().with_prefix()))
            .await
            .map_err(|e| store.classify(e))?;
    }
    Ok(())
}

/// `options.operations` transactions shaped like a reservation (three compares, two puts on a
/// lease, a revision bump, one delete), spread over the synthetic nodes, `concurrency` at a time; the rate and
/// each latency in ms.
async fn raw_txns(
    store: &Store,
    concurrency: u32,
    options: &BenchOptions,
) -> Result<(f64, Vec<f64>), StoreError> {
    let (total, nodes) = (options.operations, options.nodes.max(1));
    let lease = store.grant_lease(Duration::from_secs(120)).await?;
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (store, next) = (store.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = store.client();
            let keys = store.keys();
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, StoreError>(latencies);
                }
                let (node, sid) = (format!("bench-{:05}", i % nodes), format!("raw-{i}"));
                let txn = Txn::new()
                    .when([
                        Compare::create_revision(keys.session(&sid), CompareOp::Equal, 0),
                        Compare::version(keys.placement_rev(&node), CompareOp::Greater, 0),
                        Compare::mod_revision(keys.placement_rev(&node), CompareOp::Less, i64::MAX),
                    ])
                    .and_then([
                        TxnOp::put(
                            keys.session(&sid),
                            vec![b'x'; 200],
                            Some(PutOptions::new().with_lease(lease)),
                        ),
                        TxnOp::put(
                            keys.placement(&node, &sid),
                            "2",
                            Some(PutOptions::new().with_lease(lease)),
                        ),
                        TxnOp::put(
                            keys.placement_rev(&node),
                            "",
                            Some(PutOptions::new().with_ignore_lease()),
                        ),
                        TxnOp::delete(keys.pending(&sid), None),
                    ]);
                let begun = Instant::now();
                client.txn(txn).await.map_err(|e| store.classify(e))?;
                latencies.push(begun.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("a benchmark task panicked")?);
    }
    let rate = f64::from(total) / started.elapsed().as_secs_f64();
    store.revoke_lease(lease).await?;
    Ok((rate, latencies))
}

/// `options.operations` placements of `options.class` and `options.size` through one mirrored
/// placer, `concurrency` callers at a time; the rate and each latency in ms.
async fn placements(
    store: &Store,
    concurrency: u32,
    options: &BenchOptions,
) -> Result<(f64, Vec<f64>), BenchError> {
    let (total, class, size) = (options.operations, options.class, options.size);
    let placer_options = PlacerOptions {
        // The synthetic nodes send no heartbeats; their planted stats must not go stale.
        policy: Policy {
            stats_max_age: Duration::from_secs(24 * 3600),
            ..Policy::default()
        },
        mirror: true,
        ..PlacerOptions::default()
    };
    let placer = Arc::new(Placer::start(store.clone(), placer_options).await?);
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let run = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (placer, next, run) = (placer.clone(), next.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, BenchError>(latencies);
                }
                let request = Request {
                    sid: format!("{run}-{i}"),
                    class,
                    size,
                    strategy: Strategy::Binpack,
                    role: Role::Publisher,
                    uid: None,
                };
                let begun = Instant::now();
                match placer.place(request).await? {
                    Outcome::Placed { .. } => {}
                    _ => return Err(BenchError::NoCapacity),
                }
                latencies.push(begun.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("a benchmark task panicked")?);
    }
    Ok((
        f64::from(total) / started.elapsed().as_secs_f64(),
        latencies,
    ))
}

/// The `p`th percentile (nearest rank) of `values`; 0 for none.
fn percentile(values: &[f64], p: usize) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (sorted.len() * p).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50), 50.0);
        assert_eq!(percentile(&values, 99), 99.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50), 2.0);
        assert_eq!(percentile(&[], 99), 0.0);
    }
}
