//! `ionctl bench place`: measures placements/s and latency against raw etcd transactions/s
//! in the same run (see [`crate::bench`]), under a throwaway key prefix.

use std::io::Write;

use clap::{Args, Subcommand};

use super::output::{OutputArgs, OutputFormat, print_json, print_table, table};
use super::values::ClassArg;
use super::{CliError, Context};
use crate::bench::{BenchError, BenchOptions, run};
use crate::placement::{Role, Strategy};
use crate::placer::checked_request;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Placements/s with p50/p99 latency against raw etcd txn/s, at several concurrencies.
    Place(PlaceBenchArgs),
}

#[derive(Debug, Args)]
pub struct PlaceBenchArgs {
    /// Synthetic node records to place onto.
    #[arg(long, default_value_t = 1000)]
    pub nodes: u32,
    /// Placements (and raw transactions) per concurrency level.
    #[arg(long, default_value_t = 2000)]
    pub operations: u32,
    /// Class of every placed session.
    #[arg(long, value_enum, default_value_t = ClassArg::Group)]
    pub class: ClassArg,
    /// Size of every placed session; small ones put the most reservations on one node.
    #[arg(long, default_value_t = 2)]
    pub size: u32,
    /// Concurrent placers, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<u32>,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn run_bench(context: &Context, args: BenchArgs) -> Result<(), CliError> {
    let BenchWhat::Place(args) = args.what;
    checked_request(
        None,
        args.class.into(),
        args.size,
        Strategy::Binpack,
        Role::Publisher,
    )
    .map_err(CliError::usage)?;
    // Everything goes under a prefix of its own, deleted at the end, so a real cluster under
    // the configured prefix is never touched.
    let mut etcd = context.etcd.clone();
    etcd.prefix = format!(
        "{}-bench-{}/",
        etcd.prefix.trim_end_matches('/'),
        uuid::Uuid::new_v4().simple()
    );
    let store = Store::connect(&etcd).await?;
    let options = BenchOptions {
        nodes: args.nodes,
        operations: args.operations,
        concurrency: args.concurrency,
        class: args.class.into(),
        size: args.size,
    };
    let results = run(&store, &options, |step| {
        let _ = writeln!(std::io::stderr(), "bench: {step}");
    })
    .await
    .map_err(|e| match e {
        BenchError::Store(e) => e.into(),
        BenchError::Place(e) => e.into(),
        other => CliError::other(other),
    })?;
    match args.output.output {
        OutputFormat::Json => print_json(&results),
        OutputFormat::Table => {
            let mut out = table(&[
                "placers",
                "raw txn/s",
                "raw p50",
                "raw p99",
                "placements/s",
                "place p50",
                "place p99",
                "ratio",
            ]);
            for r in &results {
                out.add_row(vec![
                    r.concurrency.to_string(),
                    format!("{:.0}", r.raw_txn_per_sec),
                    format!("{:.2} ms", r.raw_p50_ms),
                    format!("{:.2} ms", r.raw_p99_ms),
                    format!("{:.0}", r.placements_per_sec),
                    format!("{:.2} ms", r.place_p50_ms),
                    format!("{:.2} ms", r.place_p99_ms),
                    format!("{:.2}", r.ratio),
                ]);
            }
            print_table(&mut out)
        }
    }
}
