//! `cargo run --release -p dal-bench --bin claim-bench [-- --quick] [--backend sqlite|postgres]`
//!
//! Measures task claiming as a worker pool does it: each of 1, 4 or 16 concurrent workers
//! loops claiming one task of a type through the library (`claim_as`) and completing it as
//! its holder (`complete`), and the cycles finished over a fixed wall time are counted.
//! Side by side, the same cycle hand-written over sqlx on the library's own pool and the
//! same partial index ([`raw`]), and raw sqlx sending the library's own statements. Each
//! backend at two queue sizes: a short queue (1,000 tasks) and a long one in a big table
//! (200,000 queued and 1,000,000 finished tasks), to show whether a claim slows down as
//! the queue and the table grow. SQLite on a real file
//! (WAL, the library's pool settings), Postgres on a scratch database dropped afterwards.
//! Prints Markdown (see BENCHMARKS.md). `--quick` uses tiny sizes so CI keeps it compiling
//! and running; its numbers mean nothing.

mod load;
mod raw;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use dal::prelude::*;
use uuid::Uuid;

use load::Load;
use raw::Raw;

#[derive(Parser)]
struct Args {
    /// `--quick`: tiny sizes and a second per cell.
    #[command(flatten)]
    common: dal_bench::CommonArgs,
    /// Only this backend (default: both).
    #[arg(long, value_enum)]
    backend: Option<Which>,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Which {
    Sqlite,
    Postgres,
}

const TASK_TYPE: &str = "render";
/// Long enough that no lease lapses during a run: every claim takes a queued task.
const LEASE: Duration = Duration::from_secs(300);
const WORKERS: [usize; 3] = [1, 4, 16];

struct Sizes {
    /// Queued tasks in the short queue, and in the long one.
    queues: [usize; 2],
    /// Finished tasks added with the long queue.
    finished: usize,
    /// Per cell and variant, unmeasured, before the first round.
    warmup: Duration,
    /// Per round and variant, measured.
    slice: Duration,
    rounds: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Library,
    Raw,
    /// Raw sqlx sending the library's statements ([`Raw::cycle_as_library`]).
    Shaped,
}

const VARIANTS: [Variant; 3] = [Variant::Library, Variant::Raw, Variant::Shaped];

struct Bench {
    db: Database,
    raw: Raw,
}

impl Bench {
    /// One claim and its completion by `worker`; the task's id, or `None` when nothing was
    /// claimable.
    async fn cycle(&self, variant: Variant, worker: &str) -> Option<Uuid> {
        match variant {
            Variant::Library => {
                let tasks = self.db.tasks();
                let task = tasks
                    .claim_as(TASK_TYPE, worker, LEASE)
                    .await
                    .expect("claim")?;
                let done = tasks
                    .complete(task.id, worker, Some("out".into()))
                    .await
                    .expect("complete");
                Some(done.id.uuid())
            }
            Variant::Raw => self.raw.cycle(TASK_TYPE, worker, LEASE).await,
            Variant::Shaped => self.raw.cycle_as_library(TASK_TYPE, worker, LEASE).await,
        }
    }
}

/// What one variant did in one cell, summed over its rounds.
#[derive(Default)]
struct Tally {
    cycles: u64,
    seconds: f64,
    /// Statements the library counted (`statements_executed`), for the library variant.
    statements: u64,
    /// Claims that found nothing: the queue ran dry (should stay 0).
    empty: u64,
}

impl Tally {
    fn rate(&self) -> f64 {
        self.cycles as f64 / self.seconds.max(1e-9)
    }
}

/// `workers` workers cycle until `time` is up or, together, `budget` cycles are done;
/// returns the cycles, the wall time until the last worker stopped, the completed tasks'
/// ids and the empty claims.
async fn segment(
    bench: &Arc<Bench>,
    variant: Variant,
    workers: usize,
    time: Duration,
    budget: u64,
) -> (u64, f64, Vec<Uuid>, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + time;
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (bench, done, stop) = (bench.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                let name = format!("bench-worker-{w}");
                let (mut ids, mut empty) = (Vec::new(), 0u64);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match bench.cycle(variant, &name).await {
                        Some(id) => {
                            ids.push(id);
                            if done.fetch_add(1, Ordering::Relaxed) + 1 >= budget {
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                        None => {
                            empty += 1;
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
                (ids, empty)
            })
        })
        .collect();
    let (mut ids, mut empty) = (Vec::new(), 0);
    for handle in handles {
        let (mine, none) = handle.await.expect("worker");
        ids.extend(mine);
        empty += none;
    }
    let seconds = started.elapsed().as_secs_f64();
    (ids.len() as u64, seconds, ids, empty)
}

/// Runs `variant` for `time` of measured wall time in segments of at most half the queue,
/// putting the completed tasks back after each (unmeasured), so the queue never falls
/// below half its size.
async fn run(
    bench: &Arc<Bench>,
    variant: Variant,
    workers: usize,
    queue: usize,
    time: Duration,
    tally: &mut Tally,
) {
    let budget = (queue / 2) as u64;
    let mut left = time;
    while !left.is_zero() {
        let before = bench.db.statements_executed();
        let (cycles, seconds, ids, empty) = segment(bench, variant, workers, left, budget).await;
        tally.statements += bench.db.statements_executed() - before;
        tally.cycles += cycles;
        tally.seconds += seconds;
        tally.empty += empty;
        load::requeue(&bench.raw, &ids).await;
        left = left.saturating_sub(Duration::from_secs_f64(seconds));
    }
}

/// One line of a backend's table.
struct Cell {
    workers: usize,
    queue: usize,
    library: Tally,
    raw: Tally,
    shaped: Tally,
}

/// Every variant at `workers` workers on the queue as loaded: a warm-up each, then
/// `rounds` interleaved rounds, so drift on a shared machine hits both alike.
async fn cell(bench: &Arc<Bench>, sizes: &Sizes, workers: usize, queue: usize) -> Cell {
    let queued = load::queued(&bench.raw, TASK_TYPE).await;
    assert_eq!(queued, queue as i64, "the queue is back to its size");
    let mut ignored = Tally::default();
    for variant in VARIANTS {
        run(bench, variant, workers, queue, sizes.warmup, &mut ignored).await;
    }
    let mut tallies: [Tally; 3] = Default::default();
    for _ in 0..sizes.rounds {
        for (variant, tally) in VARIANTS.into_iter().zip(&mut tallies) {
            run(bench, variant, workers, queue, sizes.slice, tally).await;
        }
    }
    let [library, raw, shaped] = tallies;
    eprintln!(
        "  {workers:>2} workers, {queue} queued: library {:.0}/s, raw {:.0}/s, raw with the library's statements {:.0}/s",
        library.rate(),
        raw.rate(),
        shaped.rate()
    );
    Cell {
        workers,
        queue,
        library,
        raw,
        shaped,
    }
}

async fn measure(db: Database, sizes: &Sizes) -> Vec<Cell> {
    db.migrate().await.expect("migrations apply");
    let user = db.users().create(NewUser::default()).await.unwrap();
    let project = db
        .projects()
        .create(NewProject::new(user.id, "claim bench"))
        .await
        .unwrap();
    let bench = Arc::new(Bench {
        raw: Raw::new(&db),
        db,
    });
    let now = dal::clock::now();
    let load = Load {
        project: project.id.uuid(),
        task_type: TASK_TYPE,
        finished_base: now - chrono::Duration::days(60),
        queued_base: now - chrono::Duration::days(30),
    };
    let [short, long] = sizes.queues;
    let mut cells = Vec::new();

    let started = Instant::now();
    load.queued(&bench.raw, 0..short).await;
    load::settle(&bench.raw, true).await;
    eprintln!("  loaded {short} queued in {:.1?}", started.elapsed());
    for workers in WORKERS {
        cells.push(cell(&bench, sizes, workers, short).await);
        load::settle(&bench.raw, false).await;
    }

    let started = Instant::now();
    load.finished(&bench.raw, sizes.finished).await;
    load.queued(&bench.raw, short..long).await;
    load::settle(&bench.raw, true).await;
    eprintln!(
        "  loaded {} finished and {} more queued in {:.1?}",
        sizes.finished,
        long - short,
        started.elapsed()
    );
    for workers in WORKERS {
        cells.push(cell(&bench, sizes, workers, long).await);
        load::settle(&bench.raw, false).await;
    }
    bench.db.clone().close().await.ok();
    cells
}

fn thousands(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

fn report(title: &str, pool: u32, sizes: &Sizes, cells: &[Cell]) {
    let [short, long] = sizes.queues.map(thousands);
    println!("### {title} (pool of {pool} connections)\n");
    println!(
        "| workers | {short}: library | {short}: raw | {short}: raw, library's statements | library/raw | {long}: library | {long}: raw | {long}: raw, library's statements | library/raw | {long}/{short} library | {long}/{short} raw |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for workers in WORKERS {
        let of = |queue| {
            cells
                .iter()
                .find(|c| c.workers == workers && c.queue == queue)
                .expect("cell")
        };
        let (s, l) = (of(sizes.queues[0]), of(sizes.queues[1]));
        let (sl, sr, ss, ll, lr, ls) = (
            s.library.rate(),
            s.raw.rate(),
            s.shaped.rate(),
            l.library.rate(),
            l.raw.rate(),
            l.shaped.rate(),
        );
        println!(
            "| {workers} | {sl:.0} | {sr:.0} | {ss:.0} | {:.2} | {ll:.0} | {lr:.0} | {ls:.0} | {:.2} | {:.2} | {:.2} |",
            sl / sr,
            ll / lr,
            ll / sl,
            lr / sr
        );
    }
    let library: (u64, u64) = cells.iter().fold((0, 0), |(s, c), cell| {
        (s + cell.library.statements, c + cell.library.cycles)
    });
    let empty: u64 = cells
        .iter()
        .map(|c| c.library.empty + c.raw.empty + c.shaped.empty)
        .sum();
    println!(
        "\nCycles/s, higher is better. Library statements per cycle (`statements_executed`, \
         BEGIN/COMMIT not counted): {:.2}. Claims that found the queue empty: {empty}.\n",
        library.0 as f64 / library.1.max(1) as f64
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let sizes = if args.common.quick {
        Sizes {
            queues: [100, 2_000],
            finished: 10_000,
            warmup: Duration::from_millis(100),
            slice: Duration::from_millis(200),
            rounds: 2,
        }
    } else {
        Sizes {
            queues: [1_000, 200_000],
            finished: 1_000_000,
            warmup: Duration::from_secs(1),
            slice: Duration::from_millis(2_500),
            rounds: 2,
        }
    };
    let wanted = |which| args.backend.is_none_or(|b| b == which);

    if wanted(Which::Sqlite) {
        eprintln!("SQLite");
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config::sqlite(dir.path().join("claims.db"));
        let db = Database::connect(&config).await.expect("SQLite opens");
        let cells = measure(db, &sizes).await;
        report("SQLite", config.max_connections, &sizes, &cells);
    }
    if wanted(Which::Postgres) {
        eprintln!("Postgres");
        let scratch = dal_bench::ScratchPostgres::create(&args.common.postgres_url).await;
        let config = Config::postgres(&scratch.url).expect("scratch URL");
        let db = Database::connect(&config)
            .await
            .expect("scratch database connects");
        let cells = measure(db, &sizes).await;
        report("Postgres", config.max_connections, &sizes, &cells);
        scratch.drop_database().await;
    }
    if args.common.quick {
        println!("(--quick: sizes are tiny; these numbers mean nothing)");
    }
}
