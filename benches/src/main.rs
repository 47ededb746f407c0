//! `cargo run --release -p dal-bench [-- --quick] [--backend sqlite|postgres] [--pooler]`
//!
//! Measures, on both backends in one run and side by side, the library against a
//! hand-written sqlx baseline on the same pool and against plain SeaORM as usually written:
//! the `SELECT 1` floor, point get, a 50-row filtered list, insert one, update, delete, the
//! shot timeline join, bulk inserts and the seeder's scale mode. Prints medians and ratios
//! as Markdown (see BENCHMARKS.md). `--quick` uses tiny sizes so CI can keep it compiling
//! and running; its numbers mean nothing. `--pooler` measures instead what a
//! transaction-mode pooler costs per operation ([`pooler`]).

mod plain;
mod pooler;
mod raw;

use std::future::Future;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use dal::prelude::*;
use uuid::Uuid;

use plain::{Plain, PlainPostgres, PlainSqlite, Row};
use raw::Raw;

#[derive(Parser)]
struct Args {
    /// Tiny sizes, for CI.
    #[arg(long)]
    quick: bool,
    /// Only this backend (default: both).
    #[arg(long, value_enum)]
    backend: Option<Which>,
    /// Server to create the benchmark's Postgres database on.
    #[arg(
        long,
        env = "DAL_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// Measure the transaction-pooler costs instead: direct vs. the pooler mode vs.
    /// through PgBouncer (pool_mode=transaction).
    #[arg(long)]
    pooler: bool,
    /// With --pooler: a running PgBouncer (pool_mode=transaction) in front of the
    /// Postgres server; unset, one is started (the parity suite's harness).
    #[arg(long, env = "DAL_TEST_PGBOUNCER_URL")]
    pgbouncer_url: Option<String>,
    /// With --pooler: `synchronous_commit = off` on the scratch database, so the disk's
    /// flush latency (noisy on a shared machine) does not hide the round trips.
    #[arg(long, requires = "pooler")]
    no_sync_commit: bool,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Which {
    Sqlite,
    Postgres,
}

struct Sizes {
    iterations: usize,
    bulk: [usize; 2],
    scale: usize,
}

/// One line of the report.
struct Line {
    op: String,
    library: f64,
    raw: Option<f64>,
    plain: Option<f64>,
    /// `µs` (median latency: lower is better) or `rows/s` (throughput: higher is better).
    unit: &'static str,
    statements: Option<(u64, u64)>,
}

/// Medians of three variants of one operation, measured in interleaved rounds (a tenth of
/// the iterations of each in turn) so that drift on a shared machine hits all three alike.
/// `None` skips a variant. Warm-up calls use indices past the measured ones, so operations
/// that consume a row per call never meet the same row twice.
async fn compare<A, B, C, FA, FB, FC>(
    n: usize,
    mut a: A,
    mut b: Option<B>,
    mut c: Option<C>,
) -> (f64, Option<f64>, Option<f64>)
where
    A: FnMut(usize) -> FA,
    B: FnMut(usize) -> FB,
    C: FnMut(usize) -> FC,
    FA: Future<Output = ()>,
    FB: Future<Output = ()>,
    FC: Future<Output = ()>,
{
    let warm = n.div_ceil(10);
    for i in n..n + warm {
        a(i).await;
        if let Some(b) = b.as_mut() {
            b(i).await;
        }
        if let Some(c) = c.as_mut() {
            c(i).await;
        }
    }
    let (mut sa, mut sb, mut sc) = (Vec::new(), Vec::new(), Vec::new());
    let rounds = 10.min(n);
    for round in 0..rounds {
        let range = (round * n / rounds)..((round + 1) * n / rounds);
        for i in range.clone() {
            let t = Instant::now();
            a(i).await;
            sa.push(t.elapsed());
        }
        if let Some(b) = b.as_mut() {
            for i in range.clone() {
                let t = Instant::now();
                b(i).await;
                sb.push(t.elapsed());
            }
        }
        if let Some(c) = c.as_mut() {
            for i in range {
                let t = Instant::now();
                c(i).await;
                sc.push(t.elapsed());
            }
        }
    }
    let median = |mut v: Vec<Duration>| {
        (!v.is_empty()).then(|| {
            v.sort();
            v[v.len() / 2].as_secs_f64() * 1e6
        })
    };
    (median(sa).unwrap_or_default(), median(sb), median(sc))
}

async fn rate<Fut: Future<Output = ()>>(rows: usize, f: Fut) -> f64 {
    let start = Instant::now();
    f.await;
    rows as f64 / start.elapsed().as_secs_f64().max(1e-9)
}

fn rows(project: Id, n: usize) -> Vec<Row> {
    let now = dal::clock::now();
    (0..n)
        .map(|i| Row {
            id: Uuid::now_v7(),
            project_id: project.uuid(),
            task_type: "render".into(),
            params: serde_json::json!({ "frame": i, "quality": "high", "tags": ["a", "b"] }),
            status: TaskStatus::Queued,
            created_at: now,
        })
        .collect()
}

fn new_tasks(rows: &[Row]) -> Vec<NewTask> {
    rows.iter()
        .map(|r| NewTask::queued(Id(r.project_id), r.task_type.clone(), r.params.clone()))
        .collect()
}

async fn fresh_project(db: &Database) -> Id {
    db.projects()
        .create(NewProject::new(seed::DUMMY_USER_ID, "bench"))
        .await
        .unwrap()
        .id
}

async fn run(db: &Database, plain: &dyn Plain, sizes: &Sizes) -> Vec<Line> {
    let raw = Raw::new(db);
    let n = sizes.iterations;
    let mut lines = Vec::new();
    seed::seed(db).await.unwrap();

    // A project with 100 tasks, 50 of them matching the listing's filter.
    let project = fresh_project(db).await;
    let mut batch = Vec::new();
    for i in 0..100 {
        let mut t = NewTask::queued(project, "render", serde_json::json!({ "frame": i }));
        t.status = [
            TaskStatus::Queued,
            TaskStatus::Pending,
            TaskStatus::Complete,
            TaskStatus::Failed,
        ][i % 4];
        batch.push(t);
    }
    let ids = db.tasks().insert_many(batch).await.unwrap();

    let none = None::<fn(usize) -> std::future::Ready<()>>;
    let (floor, _, _) = compare(n, |_| raw.select_one(), none, none).await;
    lines.push(Line {
        op: "SELECT 1 (floor, raw sqlx)".into(),
        library: floor,
        raw: Some(floor),
        plain: None,
        unit: "µs",
        statements: None,
    });

    let stmts = |before: u64| db.statements_executed() - before;
    let before = db.statements_executed();
    db.tasks().get(ids[0]).await.unwrap();
    let get_stmts = stmts(before);
    let (library, raw_t, plain_t) = compare(
        n,
        |i| {
            let id = ids[i % 100];
            async move {
                db.tasks().get(id).await.unwrap();
            }
        },
        Some(|i: usize| {
            let r = &raw;
            let id = ids[i % 100];
            async move {
                r.get(id.uuid()).await;
            }
        }),
        Some(|i: usize| {
            let id = ids[i % 100];
            async move {
                plain.get(id.uuid()).await;
            }
        }),
    )
    .await;
    lines.push(Line {
        op: "point get by id".into(),
        library,
        raw: raw_t,
        plain: plain_t,
        unit: "µs",
        statements: Some((get_stmts, 1)),
    });

    let filter = TaskFilter::default()
        .status(TaskStatus::Queued)
        .status(TaskStatus::Pending);
    assert_eq!(
        db.tasks()
            .list_for_project(project, &filter, PageRequest::first(MAX_PAGE_SIZE))
            .await
            .unwrap()
            .items
            .len(),
        50
    );
    assert_eq!(raw.page(project.uuid()).await, 50);
    let (library, raw_t, plain_t) = compare(
        n,
        |_| {
            let f = filter.clone();
            async move {
                db.tasks()
                    .list_for_project(project, &f, PageRequest::first(MAX_PAGE_SIZE))
                    .await
                    .unwrap();
            }
        },
        Some(|_| {
            let r = &raw;
            async move {
                r.page(project.uuid()).await;
            }
        }),
        Some(|_| async {
            plain.page(project.uuid()).await;
        }),
    )
    .await;
    lines.push(Line {
        op: "50-row filtered list".into(),
        library,
        raw: raw_t,
        plain: plain_t,
        unit: "µs",
        statements: Some((1, 1)),
    });

    let target = fresh_project(db).await;
    let total = n + n.div_ceil(10);
    let (lib_rows, raw_rows, plain_rows) = (
        rows(target, total),
        rows(target, total),
        rows(target, total),
    );
    let lib_new = new_tasks(&lib_rows);
    let (library, raw_t, plain_t) = compare(
        n,
        |i| {
            let t = lib_new[i].clone();
            async move {
                db.tasks().create(t).await.unwrap();
            }
        },
        Some(|i: usize| {
            let r = &raw;
            let row = raw_rows[i].clone();
            async move {
                r.insert(row).await;
            }
        }),
        Some(|i: usize| {
            let row = plain_rows[i].clone();
            async move {
                plain.insert(row).await;
            }
        }),
    )
    .await;
    lines.push(Line {
        op: "insert one".into(),
        library,
        raw: raw_t,
        plain: plain_t,
        unit: "µs",
        statements: Some((1, 1)),
    });

    let models: Vec<entities::task::Model> = futures::future::join_all(
        ids.iter()
            .map(|id| async move { db.tasks().get(*id).await.unwrap() }),
    )
    .await;
    // Each update is based on the row as last written (its `row_version`), as a caller
    // that read it would be; the baselines do not check versions.
    let versions = std::sync::Mutex::new(models.iter().map(|m| m.row_version).collect::<Vec<_>>());
    let raw_tasks: Vec<raw::Task> =
        futures::future::join_all(ids.iter().map(|id| raw.get(id.uuid()))).await;
    let (library, raw_t, plain_t) = compare(
        n,
        |i| {
            let mut m = models[i % 100].clone();
            m.task_type = format!("render-{i}");
            let versions = &versions;
            m.row_version = versions.lock().unwrap()[i % 100];
            async move {
                let saved = db.tasks().update(m).await.unwrap();
                versions.lock().unwrap()[i % 100] = saved.row_version;
            }
        },
        Some(|i: usize| {
            let r = &raw;
            let t = &raw_tasks[i % 100];
            async move {
                r.update(t, &format!("render-{i}")).await;
            }
        }),
        Some(|i: usize| {
            let id = ids[i % 100];
            async move {
                plain.update(id.uuid(), &format!("render-{i}")).await;
            }
        }),
    )
    .await;
    lines.push(Line {
        op: "update (all columns, row returned)".into(),
        library,
        raw: raw_t,
        plain: plain_t,
        unit: "µs",
        // BEGIN, UPDATE … RETURNING, COMMIT: the returned row is read before the write
        // commits (`Database::statements_executed` counts only the UPDATE).
        statements: Some((3, 1)),
    });

    let doomed = fresh_project(db).await;
    let victims = |rows: Vec<Row>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    let (a, b, c) = (
        rows(doomed, total),
        rows(doomed, total),
        rows(doomed, total),
    );
    let (lib_ids, raw_ids, plain_ids) = (
        db.tasks().insert_many(new_tasks(&a)).await.unwrap(),
        victims(b.clone()),
        victims(c.clone()),
    );
    raw.bulk(b).await;
    raw.bulk(c).await;
    let (library, raw_t, plain_t) = compare(
        n,
        |i| {
            let id = lib_ids[i];
            async move {
                db.tasks().delete(id).await.unwrap();
            }
        },
        Some(|i: usize| {
            let r = &raw;
            let id = raw_ids[i];
            async move {
                r.delete(id).await;
            }
        }),
        Some(|i: usize| {
            let id = plain_ids[i];
            async move {
                plain.delete(id).await;
            }
        }),
    )
    .await;
    lines.push(Line {
        op: "delete".into(),
        library,
        raw: raw_t,
        plain: plain_t,
        unit: "µs",
        statements: Some((1, 1)),
    });

    let shot = db
        .shots()
        .create(NewShot::new(project, "timeline"))
        .await
        .unwrap();
    for id in ids.iter().take(20) {
        let g = db
            .generations()
            .create(NewGeneration::new(project).tasks(vec![*id]))
            .await
            .unwrap();
        db.shots()
            .add_to_timeline(shot.id, g.id, None)
            .await
            .unwrap();
    }
    let before = db.statements_executed();
    assert_eq!(db.shots().timeline(shot.id).await.unwrap().len(), 20);
    let timeline_stmts = stmts(before);
    assert_eq!(raw.timeline(shot.id.uuid()).await, 20);
    let (library, raw_t, _) = compare(
        n,
        |_| async {
            db.shots().timeline(shot.id).await.unwrap();
        },
        Some(|_| {
            let r = &raw;
            async move {
                r.timeline(shot.id.uuid()).await;
            }
        }),
        none,
    )
    .await;
    lines.push(Line {
        op: "timeline join (20 entries)".into(),
        library,
        raw: raw_t,
        plain: None,
        unit: "µs",
        statements: Some((timeline_stmts, 1)),
    });

    let columns = 9;
    let plain_chunk = match db.backend() {
        Backend::Sqlite => 32_766 / columns,
        Backend::Postgres => 65_535 / columns,
    };
    for size in sizes.bulk {
        let (p1, p2, p3) = (
            fresh_project(db).await,
            fresh_project(db).await,
            fresh_project(db).await,
        );
        let lib_batch = new_tasks(&rows(p1, size));
        let before = db.statements_executed();
        let library = rate(size, async {
            db.tasks().insert_many(lib_batch).await.unwrap();
        })
        .await;
        let bulk_stmts = stmts(before);
        let raw_rate = rate(size, raw.bulk(rows(p2, size))).await;
        let plain_rate = rate(size, plain.insert_many(rows(p3, size), plain_chunk)).await;
        lines.push(Line {
            op: format!("bulk insert {size} rows"),
            library,
            raw: Some(raw_rate),
            plain: Some(plain_rate),
            unit: "rows/s",
            // On Postgres both sides load with one COPY, which the counter does not see.
            statements: Some(match db.backend() {
                Backend::Postgres => (1, 1),
                Backend::Sqlite => (bulk_stmts, size as u64),
            }),
        });
    }

    let report_rows = (1
        + seed::scale::TASKS_PER_PROJECT
        + seed::scale::GENERATIONS_PER_PROJECT
        + seed::scale::SHOTS_PER_PROJECT * (1 + seed::scale::LINKS_PER_SHOT))
        * sizes.scale;
    let start = Instant::now();
    seed::scale::scale(db, sizes.scale, |_, _| {})
        .await
        .unwrap();
    let elapsed = start.elapsed();
    lines.push(Line {
        op: format!("seed --scale {} ({report_rows} rows)", sizes.scale),
        library: report_rows as f64 / elapsed.as_secs_f64().max(1e-9),
        raw: None,
        plain: None,
        unit: "rows/s",
        statements: None,
    });
    lines
}

fn ratio(line: &Line, other: Option<f64>) -> String {
    match other {
        None => "–".into(),
        Some(o) if line.unit == "µs" => format!("{:.2}", line.library / o),
        Some(o) => format!("{:.2}x", line.library / o),
    }
}

fn print(backend: &str, lines: &[Line]) {
    println!("\n### {backend}\n");
    println!(
        "| operation | unit | library | raw sqlx | plain SeaORM | library/raw | library/plain | statements (library/raw) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for l in lines {
        let num = |v: f64| {
            if l.unit == "µs" {
                format!("{v:.1}")
            } else {
                format!("{v:.0}")
            }
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            l.op,
            l.unit,
            num(l.library),
            l.raw.map(num).unwrap_or_else(|| "–".into()),
            l.plain.map(num).unwrap_or_else(|| "–".into()),
            ratio(l, l.raw),
            ratio(l, l.plain),
            l.statements
                .map(|(a, b)| format!("{a} / {b}"))
                .unwrap_or_else(|| "–".into()),
        );
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let sizes = if args.quick {
        Sizes {
            iterations: 20,
            bulk: [200, 1000],
            scale: 3,
        }
    } else {
        Sizes {
            iterations: 2000,
            bulk: [10_000, 100_000],
            scale: 200,
        }
    };
    println!(
        "dal-bench: {} iterations per latency, bulk {:?}, scale {} ({} build)",
        sizes.iterations,
        sizes.bulk,
        sizes.scale,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let started = Instant::now();
    if args.pooler {
        let mut scratch = dal_bench::ScratchPostgres::create(&args.postgres_url).await;
        let bouncer = match &args.pgbouncer_url {
            Some(url) => url.clone(),
            None => parity_tests::pgbouncer::start(
                &args.postgres_url,
                parity_tests::pgbouncer::Startup::Strict,
            )
            .unwrap_or_else(|e| panic!("cannot start PgBouncer ({e}); apt-get install pgbouncer, or pass --pgbouncer-url")),
        };
        if args.no_sync_commit {
            scratch.set("synchronous_commit", "off").await;
        }
        let through = parity_tests::database_url(&bouncer, scratch.name());
        let lines = pooler::run(&scratch.url, &through, &sizes).await;
        pooler::print(&lines);
        scratch.drop_database().await;
        eprintln!("done in {:.1?}", started.elapsed());
        return;
    }
    if args.backend != Some(Which::Postgres) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.db");
        let db = Database::connect(&Config::sqlite(&path)).await.unwrap();
        db.migrate().await.unwrap();
        let plain = PlainSqlite(
            sea_orm::Database::connect(format!("sqlite:{}?mode=rwc", path.display()))
                .await
                .unwrap(),
        );
        let lines = run(&db, &plain, &sizes).await;
        print("SQLite", &lines);
    }
    if args.backend != Some(Which::Sqlite) {
        let scratch = dal_bench::ScratchPostgres::create(&args.postgres_url).await;
        let url = scratch.url.clone();
        let db = Database::connect(&Config::postgres(&url).unwrap())
            .await
            .unwrap();
        db.migrate().await.unwrap();
        let plain = PlainPostgres(sea_orm::Database::connect(url.as_str()).await.unwrap());
        let lines = run(&db, &plain, &sizes).await;
        print("Postgres", &lines);
        db.close().await.unwrap();
        plain.0.close().await.unwrap();
        scratch.drop_database().await;
    }
    eprintln!("done in {:.1?}", started.elapsed().max(Duration::ZERO));
}
