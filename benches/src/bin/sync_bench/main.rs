//! `cargo run --release -p dal-bench --bin sync-bench [-- --quick]`
//!
//! Measures offline-first sync between SQLite replicas and a scratch database on the
//! Postgres server: a full pull of a large table into a fresh replica (throughput, and the
//! process's peak memory growth at two table sizes, to show it does not follow the
//! table), an incremental pull with nothing new, local writes with capture on, and
//! pushing the outbox those writes left. Prints Markdown (see BENCHMARKS.md). `--quick`
//! uses tiny sizes so CI keeps it compiling and running; its numbers mean nothing.

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use dal::prelude::*;
use serde_json::json;
use sync::engine::sync_once;
use sync::protocol::PullRequest;
use sync::{PostgresTransport, SyncOptions, Transport};

mod baseline;

use dal_bench::measure::{measured, median, percentile, remove_replica, replica};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: dal_bench::CommonArgs,
    /// Rows of the large full pull (a quarter of it for the small one).
    #[arg(long, default_value_t = 200_000)]
    rows: usize,
    /// Rounds of the full pulls (library and baseline interleaved); medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Only the push cases (on a scratch database of their own).
    #[arg(long)]
    push_only: bool,
    /// Outbox entries each push case writes and pushes.
    #[arg(long, default_value_t = 10_000)]
    writes: usize,
    /// Batch sizes of the push cases (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [200, 1_000, 10_000])]
    batches: Vec<usize>,
}

/// The push cases (see `dal_bench::sync_push`), printed as their own table.
async fn push_table(args: &Args, dir: &std::path::Path) {
    let (writes, rounds) = if args.common.quick {
        (200, 1)
    } else {
        (args.writes, args.rounds.max(1))
    };
    let lines = dal_bench::sync_push::push_cases(
        &args.common.postgres_url,
        dir,
        writes,
        &args.batches,
        rounds,
    )
    .await;
    println!(
        "\n| push, end to end | entries/s | server side alone | hand-written set-based apply | push/baseline time |"
    );
    println!("|---|---:|---:|---:|---:|");
    for line in lines {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.2}x |",
            line.operation,
            line.rate,
            line.server_rate,
            line.baseline_rate,
            line.baseline_rate / line.rate
        );
    }
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

/// A full pull of everything on the server into a fresh replica, pages of `page`:
/// (seconds, peak memory growth in MiB).
async fn library_pull(
    dir: &std::path::Path,
    name: &str,
    transport: &dyn Transport,
    page: usize,
) -> (f64, Option<f64>) {
    let client = replica(dir, name).await;
    let options = SyncOptions {
        page,
        ..SyncOptions::default()
    };
    let (outcome, seconds, growth) = measured(sync_once(&client, transport, &options)).await;
    outcome.expect("full pull");
    client.database().clone().close().await.ok();
    remove_replica(&dir.join(format!("{name}.db")));
    (seconds, growth)
}

/// The hand-written baseline (see `baseline.rs`), pages of `page`.
async fn baseline_pull(
    dir: &std::path::Path,
    name: &str,
    pg: &sqlx::PgPool,
    page: usize,
    expected: usize,
) -> (f64, Option<f64>) {
    let path = dir.join(format!("{name}.db"));
    baseline::prepare(&path).await;
    let (copied, seconds, growth) = measured(baseline::full_pull(pg, &path, page)).await;
    assert!(copied >= expected, "the baseline copied every row");
    remove_replica(&path);
    (seconds, growth)
}

/// The server's side of a full pull alone: every page read through the transport, none
/// stored. Returns seconds.
async fn server_pages(transport: &dyn Transport, page: usize) -> f64 {
    let started = Instant::now();
    let mut request = PullRequest {
        limit: page,
        ..PullRequest::default()
    };
    loop {
        let answer = transport.pull(request.clone()).await.expect("page read");
        match answer.next {
            Some(next) => {
                request.to_txid = Some(answer.to_txid);
                request.after = Some(next);
            }
            None => break,
        }
    }
    started.elapsed().as_secs_f64()
}

/// One line of the report.
struct Line {
    operation: String,
    result: String,
    baseline: String,
    ratio: String,
    growth: Option<f64>,
}

impl Line {
    fn plain(operation: String, result: String) -> Line {
        Line {
            operation,
            result,
            baseline: String::new(),
            ratio: String::new(),
            growth: None,
        }
    }
}

/// Full pulls of the server's `rows` rows, library and baseline interleaved over
/// `rounds` rounds (each a fresh replica), plus the library at the other page sizes of
/// `sweep` and the server's side alone: medians, and the largest memory growth.
#[allow(clippy::too_many_arguments)]
async fn full_pulls(
    lines: &mut Vec<Line>,
    dir: &std::path::Path,
    transport: &dyn Transport,
    pg: &sqlx::PgPool,
    rows: usize,
    default_page: usize,
    sweep: &[usize],
    rounds: usize,
) {
    let mut library: Vec<(Vec<f64>, Option<f64>)> = vec![(Vec::new(), None); sweep.len()];
    let mut server: Vec<Vec<f64>> = vec![Vec::new(); sweep.len()];
    let mut raw: (Vec<f64>, Option<f64>) = (Vec::new(), None);
    let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    for round in 0..rounds {
        for (i, &page) in sweep.iter().enumerate() {
            let (seconds, growth) =
                library_pull(dir, &format!("lib-{rows}-{page}-{round}"), transport, page).await;
            library[i].0.push(seconds);
            library[i].1 = max(library[i].1, growth);
            server[i].push(server_pages(transport, page).await);
            if page == default_page {
                let (seconds, growth) =
                    baseline_pull(dir, &format!("raw-{rows}-{round}"), pg, page, rows).await;
                raw.0.push(seconds);
                raw.1 = max(raw.1, growth);
            }
        }
    }
    let raw_rate = rows as f64 / median(raw.0);
    for (i, &page) in sweep.iter().enumerate() {
        let rate = rows as f64 / median(library[i].0.clone());
        let (baseline, ratio) = if page == default_page {
            (
                format!("{raw_rate:.0} rows/s"),
                format!("{:.2}x", rate / raw_rate),
            )
        } else {
            (String::new(), String::new())
        };
        lines.push(Line {
            operation: format!("full pull into a new replica, {rows} rows, pages of {page}"),
            result: format!("{rate:.0} rows/s"),
            baseline,
            ratio,
            growth: library[i].1,
        });
    }
    if sweep.len() > 1 || rows > 10_000 {
        for (i, &page) in sweep.iter().enumerate() {
            lines.push(Line::plain(
                format!("server side alone (pages read, not stored), {rows} rows, pages of {page}"),
                format!("{:.0} rows/s", rows as f64 / median(server[i].clone())),
            ));
        }
    }
    lines.push(Line {
        operation: format!("baseline's peak memory growth, {rows} rows, pages of {default_page}"),
        result: String::new(),
        baseline: String::new(),
        ratio: String::new(),
        growth: raw.1,
    });
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.push_only {
        let dir = tempfile::tempdir().expect("temp dir");
        push_table(&args, dir.path()).await;
        return;
    }
    let (large, writes, rounds, empty_syncs) = if args.common.quick {
        (2_000, 200, 1, 20)
    } else {
        (args.rows, 10_000, args.rounds.max(1), 200)
    };
    let small = large / 4;
    let options = SyncOptions::default();
    let sweep: Vec<usize> = if args.common.quick {
        vec![options.page]
    } else {
        let mut sizes = vec![500, 2_000, 5_000];
        if !sizes.contains(&options.page) {
            sizes.push(options.page);
        }
        sizes
    };
    let scratch = dal_bench::ScratchPostgres::create(&args.common.postgres_url).await;
    let server = Database::connect(&Config::postgres(&scratch.url).expect("scratch URL"))
        .await
        .expect("scratch database connects");
    server.migrate().await.expect("migrations apply");
    let pg = sqlx::PgPool::connect(&scratch.url)
        .await
        .expect("baseline pool connects");
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
    full_pulls(
        &mut lines,
        dir.path(),
        transport.as_ref(),
        &pg,
        small,
        options.page,
        &[options.page],
        rounds,
    )
    .await;
    fill(&server, project.id, large - small).await;
    full_pulls(
        &mut lines,
        dir.path(),
        transport.as_ref(),
        &pg,
        large,
        options.page,
        &sweep,
        rounds,
    )
    .await;

    let client = replica(dir.path(), "writer").await;
    sync_once(&client, transport.as_ref(), &options)
        .await
        .expect("initial pull");
    let mut empty = Vec::new();
    for _ in 0..empty_syncs {
        let started = Instant::now();
        sync_once(&client, transport.as_ref(), &options)
            .await
            .expect("empty sync");
        empty.push(started.elapsed());
    }
    lines.push(Line::plain(
        format!(
            "sync with nothing to push or pull, direct transport (median / p99 of {empty_syncs})"
        ),
        format!(
            "{:.2} ms / {:.2} ms",
            percentile(empty.clone(), 0.5).as_secs_f64() * 1000.0,
            percentile(empty, 0.99).as_secs_f64() * 1000.0
        ),
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
    lines.push(Line::plain(
        format!("local task creates with capture on, {writes}"),
        format!("{:.0} writes/s", writes as f64 / seconds),
    ));
    println!("| operation | library | baseline | library/baseline | peak memory growth |");
    println!("|---|---:|---:|---:|---:|");
    for line in lines {
        let growth = line.growth.map_or("".into(), |mib| format!("{mib:.1} MiB"));
        println!(
            "| {} | {} | {} | {} | {growth} |",
            line.operation, line.result, line.baseline, line.ratio
        );
    }
    client.database().clone().close().await.ok();
    pg.close().await;
    server.close().await.ok();
    scratch.drop_database().await;
    push_table(&args, dir.path()).await;
    if args.common.quick {
        println!("\n(--quick: sizes are tiny; these numbers mean nothing)");
    }
}
