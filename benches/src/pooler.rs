//! `dal-bench --pooler`: what a transaction-mode pooler costs per operation.
//!
//! Three pools on one scratch database, measured in interleaved rounds like the rest of
//! the benchmark:
//!
//! * **direct**: the server itself, session mode (today's path: cached prepared
//!   statements, one round trip a statement);
//! * **mode only**: the server itself with `DB_POOL_MODE=transaction` (the pooler mode's
//!   own cost: a transaction per statement, unnamed statements, `SET LOCAL`);
//! * **PgBouncer**: through PgBouncer in `pool_mode=transaction` with the mode on (what a
//!   serverless deployment pays: the mode plus the pooler's hop).

use dal::prelude::*;
use dal::{PoolMode, UnitOfWork};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::{Line, Sizes, compare};

/// The three pools.
struct Pools {
    direct: Database,
    mode_only: Database,
    pgbouncer: Database,
}

/// Runs the comparison on the scratch database `direct_url`, reached through PgBouncer at
/// `pgbouncer_url`.
pub(crate) async fn run(direct_url: &str, pgbouncer_url: &str, sizes: &Sizes) -> Vec<Line> {
    let direct = Config::postgres(direct_url).unwrap();
    let pools = Pools {
        direct: Database::connect(&direct).await.unwrap(),
        mode_only: Database::connect(&direct.clone().with_pool_mode(PoolMode::Transaction))
            .await
            .unwrap(),
        pgbouncer: Database::connect(
            &Config::postgres(pgbouncer_url)
                .unwrap()
                .with_pool_mode(PoolMode::Transaction),
        )
        .await
        .unwrap(),
    };
    assert!(!pools.direct.behind_transaction_pooler());
    assert!(
        pools.mode_only.behind_transaction_pooler() && pools.pgbouncer.behind_transaction_pooler()
    );
    pools.direct.migrate().await.unwrap();
    seed::seed(&pools.direct).await.unwrap();

    let n = sizes.iterations;
    let total = n + n.div_ceil(10);
    let mut lines = Vec::new();
    let each = [&pools.direct, &pools.mode_only, &pools.pgbouncer];

    let select_one = |db: &Database| {
        let db = db.clone();
        async move {
            db.query_one_raw(Statement::from_string(DbBackend::Postgres, "SELECT 1"))
                .await
                .unwrap();
        }
    };
    lines.push(measure("SELECT 1 on the pool", n, each, |db, _| select_one(db)).await);

    // Rows to read and update: one project, 100 tasks.
    let project = crate::fresh_project(&pools.direct).await;
    let ids = pools
        .direct
        .tasks()
        .insert_many(
            (0..100)
                .map(|i| NewTask::queued(project, "render", serde_json::json!({ "frame": i })))
                .collect(),
        )
        .await
        .unwrap();
    lines.push(
        measure("point get by id", n, each, |db, i| {
            let (db, id) = (db.clone(), ids[i % 100]);
            async move {
                db.tasks().get(id).await.unwrap();
            }
        })
        .await,
    );
    lines.push(
        measure("insert one", n, each, |db, i| {
            let db = db.clone();
            async move {
                let task = NewTask::queued(project, "insert", serde_json::json!({ "i": i }));
                db.tasks().create(task).await.unwrap();
            }
        })
        .await,
    );
    let models: Vec<entities::task::Model> = futures::future::join_all(
        ids.iter()
            .map(|id| async { pools.direct.tasks().get(*id).await.unwrap() }),
    )
    .await;
    // Each update is based on the row as last written, as a caller that read it would be.
    let versions = std::sync::Mutex::new(models.iter().map(|m| m.row_version).collect::<Vec<_>>());
    lines.push(
        measure("update (all columns)", n, each, |db, i| {
            let db = db.clone();
            let mut model = models[i % 100].clone();
            model.task_type = format!("render-{i}");
            let versions = &versions;
            model.row_version = versions.lock().unwrap()[i % 100];
            async move {
                let saved = db.tasks().update(model).await.unwrap();
                versions.lock().unwrap()[i % 100] = saved.row_version;
            }
        })
        .await,
    );
    lines.push(
        measure(
            "unit of work: get + update + insert, commit",
            n,
            each,
            |db, i| {
                let db = db.clone();
                let id = ids[i % 100];
                async move {
                    db.transaction(|uow: &UnitOfWork| {
                        Box::pin(async move {
                            let mut task = uow.tasks().get(id).await?;
                            task.output_location = Some(format!("s3://out/{i}"));
                            uow.tasks().update(task).await?;
                            uow.tasks()
                                .create(NewTask::queued(project, "uow", serde_json::json!({})))
                                .await?;
                            Ok(())
                        })
                    })
                    .await
                    .unwrap();
                }
            },
        )
        .await,
    );

    // Claims: each variant drains a queue of its own, one task per call.
    let mut queues = Vec::new();
    for db in each {
        let queue = crate::fresh_project(db).await;
        db.tasks()
            .insert_many(
                (0..total)
                    .map(|i| NewTask::queued(queue, "claim", serde_json::json!({ "i": i })))
                    .collect(),
            )
            .await
            .unwrap();
        queues.push(queue);
    }
    let (direct_q, mode_q, bouncer_q) = (queues[0], queues[1], queues[2]);
    let claim = |db: &Database, queue: Id| {
        let db = db.clone();
        async move {
            let task = db.tasks().claim_in_project(queue, "claim").await.unwrap();
            assert!(task.is_some(), "the queue is long enough");
        }
    };
    let (a, b, c) = compare(
        n,
        |_| claim(&pools.direct, direct_q),
        Some(|_| claim(&pools.mode_only, mode_q)),
        Some(|_| claim(&pools.pgbouncer, bouncer_q)),
    )
    .await;
    lines.push(line("claim (one task)", a, b, c));

    for db in [pools.direct, pools.mode_only, pools.pgbouncer] {
        db.close().await.unwrap();
    }
    lines
}

/// The same operation on each pool, interleaved.
async fn measure<F, Fut>(op: &str, n: usize, pools: [&Database; 3], f: F) -> Line
where
    F: Fn(&Database, usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let [a, b, c] = pools;
    let (x, y, z) = compare(n, |i| f(a, i), Some(|i| f(b, i)), Some(|i| f(c, i))).await;
    line(op, x, y, z)
}

/// A line of the report: `library` is the direct pool, `raw` the mode alone, `plain`
/// PgBouncer (the columns are renamed when printed).
fn line(op: &str, direct: f64, mode_only: Option<f64>, pgbouncer: Option<f64>) -> Line {
    Line {
        op: op.to_owned(),
        library: direct,
        raw: mode_only,
        plain: pgbouncer,
        unit: "µs",
        statements: None,
    }
}

/// Prints the pooler table.
pub(crate) fn print(lines: &[Line]) {
    println!("\n### Postgres through a transaction pooler\n");
    println!(
        "| operation | direct (µs) | mode only, direct (µs) | through PgBouncer (µs) | mode only / direct | PgBouncer / direct | PgBouncer − direct (µs) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for l in lines {
        let (mode, bouncer) = (l.raw.unwrap_or_default(), l.plain.unwrap_or_default());
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:+.1} |",
            l.op,
            l.library,
            mode,
            bouncer,
            mode / l.library,
            bouncer / l.library,
            bouncer - l.library,
        );
    }
}
