//! `cargo run --release -p dal-bench --bin sync-bench [-- --quick]`
//!
//! Measures offline-first sync between SQLite replicas and a scratch database on the
//! Postgres server: a full pull of a large table into a fresh replica (throughput, and the
//! process's peak memory growth at two table sizes, to show it does not follow the
//! table), an incremental pull with nothing new, local writes with capture on, and
//! pushing the outbox those writes left. Prints Markdown (see BENCHMARKS.md). `--quick`
//! uses tiny sizes so CI keeps it compiling and running; its numbers mean nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use dal::prelude::*;
use serde_json::json;
use sync::engine::sync_once;
use sync::{PostgresTransport, SyncClient, SyncOptions, Transport};

#[derive(Parser)]
struct Args {
    /// Tiny sizes, for CI.
    #[arg(long)]
    quick: bool,
    /// Server to create the benchmark's Postgres database on.
    #[arg(
        long,
        env = "DAL_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
}

/// The process's peak resident memory since the last [`reset_peak`], in KiB (Linux).
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Current resident memory in KiB (Linux).
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Starts a new peak-memory window (`/proc/self/clear_refs`, Linux 4.0+).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn replica(dir: &std::path::Path, name: &str) -> SyncClient {
    let db = Database::connect(&Config::sqlite(dir.join(format!("{name}.db"))))
        .await
        .expect("replica opens");
    SyncClient::open(db).await.expect("sync turns on")
}

/// Adds `n` tasks to `project` on the server, in bulk.
async fn fill(server: &Database, project: Id, n: usize) {
    for start in (0..n).step_by(20_000) {
        let chunk = (start..n.min(start + 20_000))
            .map(|i| NewTask::queued(project, "render", json!({"frame": i})))
            .collect();
        server
            .tasks()
            .insert_many(chunk)
            .await
            .expect("bulk insert");
    }
}

/// A full pull of everything on the server into a fresh replica: (seconds, peak memory
/// growth in MiB).
async fn full_pull(
    dir: &std::path::Path,
    name: &str,
    transport: &dyn Transport,
    options: &SyncOptions,
) -> (f64, Option<f64>) {
    let client = replica(dir, name).await;
    reset_peak();
    let before = resident_kib();
    let started = Instant::now();
    sync_once(&client, transport, options)
        .await
        .expect("full pull");
    let seconds = started.elapsed().as_secs_f64();
    let growth = match (peak_kib(), before) {
        (Some(peak), Some(before)) => Some(peak.saturating_sub(before) as f64 / 1024.0),
        _ => None,
    };
    client.database().clone().close().await.ok();
    (seconds, growth)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let (large, writes) = if args.quick {
        (2_000, 200)
    } else {
        (200_000, 10_000)
    };
    let small = large / 4;
    let options = SyncOptions::default();
    let scratch = dal_bench::ScratchPostgres::create(&args.postgres_url).await;
    let server = Database::connect(&Config::postgres(&scratch.url).expect("scratch URL"))
        .await
        .expect("scratch database connects");
    server.migrate().await.expect("migrations apply");
    let transport: Arc<dyn Transport> = Arc::new(PostgresTransport::new(server.clone()));
    let dir = tempfile::tempdir().expect("temp dir");

    let user = server.users().create(NewUser::default()).await.unwrap();
    let project = server
        .projects()
        .create(NewProject::new(user.id, "bench"))
        .await
        .unwrap();
    let mut lines = Vec::new();
    fill(&server, project.id, small).await;
    let (seconds, small_growth) =
        full_pull(dir.path(), "small", transport.as_ref(), &options).await;
    lines.push((
        format!("full pull, {small} rows, pages of {}", options.page),
        format!("{:.0} rows/s", small as f64 / seconds),
        small_growth,
    ));
    fill(&server, project.id, large - small).await;
    let (seconds, large_growth) =
        full_pull(dir.path(), "large", transport.as_ref(), &options).await;
    lines.push((
        format!("full pull, {large} rows, pages of {}", options.page),
        format!("{:.0} rows/s", large as f64 / seconds),
        large_growth,
    ));

    let client = replica(dir.path(), "writer").await;
    sync_once(&client, transport.as_ref(), &options)
        .await
        .expect("initial pull");
    let mut empty = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        sync_once(&client, transport.as_ref(), &options)
            .await
            .expect("empty sync");
        empty.push(started.elapsed());
    }
    lines.push((
        "sync with nothing to push or pull (median of 21)".into(),
        format!("{:.2} ms", median(empty).as_secs_f64() * 1000.0),
        None,
    ));
    let started = Instant::now();
    for i in 0..writes {
        client
            .database()
            .tasks()
            .create(NewTask::queued(project.id, "local", json!({"i": i})))
            .await
            .expect("local write");
    }
    let seconds = started.elapsed().as_secs_f64();
    lines.push((
        format!("local task creates with capture on, {writes}"),
        format!("{:.0} writes/s", writes as f64 / seconds),
        None,
    ));
    let started = Instant::now();
    sync_once(&client, transport.as_ref(), &options)
        .await
        .expect("push");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(client.pending().await.unwrap(), 0, "the outbox drained");
    lines.push((
        format!(
            "push of {writes} outbox entries, batches of {}",
            options.batch
        ),
        format!("{:.0} entries/s", writes as f64 / seconds),
        None,
    ));

    println!("| operation | result | peak memory growth |");
    println!("|---|---|---|");
    for (op, result, growth) in lines {
        let growth = growth.map_or("".into(), |mib| format!("{mib:.1} MiB"));
        println!("| {op} | {result} | {growth} |");
    }
    if args.quick {
        println!("\n(--quick: sizes are tiny; these numbers mean nothing)");
    }
    client.database().clone().close().await.ok();
    server.close().await.ok();
    scratch.drop_database().await;
}
