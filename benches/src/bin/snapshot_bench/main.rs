//! `cargo run --release -p dal-bench --bin snapshot-bench [-- --quick]`
//!
//! Snapshots of 200,000 rows: exporting a local SQLite database (`VACUUM INTO`, then
//! counting and checksumming every row) against a plain `sqlite3 .backup` of the same
//! file, checking the snapshot, importing it, and exporting the same rows from Postgres
//! into a new SQLite file. Rows per second, medians of the rounds; prints Markdown (see
//! BENCHMARKS.md). `--quick` uses tiny sizes so CI keeps it running.

use std::process::Command;
use std::time::Instant;

use clap::Parser;
use dal::prelude::*;
use dal_bench::measure::{median, remove_replica};
use serde_json::json;
use snapshot::ExportOptions;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: dal_bench::CommonArgs,
    /// Rows in the database (tasks of one project, plus its user and project).
    #[arg(long, default_value_t = 200_000)]
    rows: usize,
    /// Rounds; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// `rows` tasks under one project of one user, in chunks.
async fn fill(db: &Database, rows: usize) {
    let user = db.users().create(NewUser::default()).await.unwrap();
    let project = db
        .projects()
        .create(NewProject::new(user.id, "bench"))
        .await
        .unwrap();
    for start in (0..rows).step_by(20_000) {
        let chunk = (start..rows.min(start + 20_000))
            .map(|i| NewTask::queued(project.id, "render", json!({"frame": i, "scene": "a"})))
            .collect();
        db.tasks().insert_many(chunk).await.expect("bulk insert");
    }
}

fn seconds<T>(started: Instant, value: T) -> (T, f64) {
    (value, started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let (rows, rounds) = if args.common.quick {
        (2_000, 1)
    } else {
        (args.rows, args.rounds.max(1))
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("local.db");
    let local = Database::connect(&Config::sqlite(&source)).await.unwrap();
    local.migrate().await.unwrap();
    fill(&local, rows).await;
    let total = rows + 2;

    let (mut export, mut backup, mut check, mut import) = (vec![], vec![], vec![], vec![]);
    let mut size = 0;
    for round in 0..rounds {
        let out = dir.path().join(format!("export-{round}.db"));
        let (meta, s) = seconds(
            Instant::now(),
            snapshot::export(&local, &out, &ExportOptions::new("snapshot-bench"), |_| {}).await,
        );
        let meta = meta.expect("export");
        assert_eq!(meta.row_counts.get("tasks"), Some(&(rows as u64)));
        export.push(s);
        size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);

        let copy = dir.path().join(format!("backup-{round}.db"));
        let started = Instant::now();
        let status = Command::new("sqlite3")
            .arg(&source)
            .arg(format!(".backup '{}'", copy.display()))
            .status()
            .expect("sqlite3 runs (apt-get install sqlite3)");
        assert!(status.success(), "sqlite3 .backup failed");
        backup.push(started.elapsed().as_secs_f64());

        let (checked, s) = seconds(Instant::now(), snapshot::check(&out).await);
        checked.expect("check");
        check.push(s);

        let target = dir.path().join(format!("imported-{round}.db"));
        let (imported, s) = seconds(Instant::now(), snapshot::import(&out, &target, false).await);
        imported.expect("import");
        import.push(s);
        for file in [&out, &copy, &target] {
            remove_replica(file);
        }
    }
    local.close().await.ok();

    // The same rows on Postgres, exported into a new SQLite file.
    let scratch = dal_bench::ScratchPostgres::create(&args.common.postgres_url).await;
    let server = Database::connect(&Config::postgres(&scratch.url).expect("scratch URL"))
        .await
        .expect("scratch database connects");
    server.migrate().await.expect("migrations apply");
    fill(&server, rows).await;
    let mut from_postgres = vec![];
    for round in 0..rounds {
        let out = dir.path().join(format!("postgres-{round}.db"));
        let (meta, s) = seconds(
            Instant::now(),
            snapshot::export(&server, &out, &ExportOptions::new("snapshot-bench"), |_| {}).await,
        );
        meta.expect("export from Postgres");
        from_postgres.push(s);
        remove_replica(&out);
    }
    server.close().await.ok();
    scratch.drop_database().await;

    let rate = |samples: &Vec<f64>| total as f64 / median(samples.clone());
    let backup_rate = rate(&backup);
    println!("| operation, {total} rows | rows/s | against `sqlite3 .backup` |");
    println!("|---|---:|---:|");
    println!(
        "| export of a local database (`VACUUM INTO`, count, checksum, stamp; {:.1} MiB) | {:.0} | {:.2}x |",
        size as f64 / 1_048_576.0,
        rate(&export),
        rate(&export) / backup_rate
    );
    println!("| `sqlite3 .backup` of the same file (baseline) | {backup_rate:.0} | 1.00x |");
    println!("| check (integrity, checksum) | {:.0} | |", rate(&check));
    println!(
        "| import (check, copy, swap, verify) | {:.0} | |",
        rate(&import)
    );
    println!(
        "| export from Postgres (every row, one snapshot) | {:.0} | |",
        rate(&from_postgres)
    );
    if args.common.quick {
        println!("\n(--quick: sizes are tiny; these numbers mean nothing)");
    }
}
