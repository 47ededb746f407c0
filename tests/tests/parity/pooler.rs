//! Through a transaction-mode pooler (PgBouncer `pool_mode=transaction`): the failures the
//! pooler mode exists for, shown to be real with it off, and the statement timeout held
//! per transaction with it on. (Every parity test also runs through PgBouncer, as
//! `<test>::pgbouncer`.)

use std::collections::HashSet;
use std::time::Duration;

use dal::prelude::*;
use dal::{PoolMode, TimeoutKind};
use parity_tests::{Setup, Target, TestDb, pgbouncer};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;

/// The test's database through the lenient PgBouncer (which accepts the session
/// settings a pool without the pooler mode sends, and drops them).
fn through_lenient_pgbouncer(t: &TestDb) -> String {
    let direct = url::Url::parse(t.direct_url.as_deref().unwrap()).unwrap();
    parity_tests::database_url(
        &pgbouncer::lenient_url(),
        direct.path().trim_start_matches('/'),
    )
}

/// What `examples/task_worker` does, on two pools of the same database (two serverless
/// instances, say): queue renders -> encode -> publish, then claim and complete every
/// task with a worker on each pool. Returns the tasks completed.
async fn task_worker_sequence(a: &Database, b: &Database) -> dal::Result<usize> {
    let project = a
        .transaction(|uow| {
            Box::pin(async move {
                let user = uow.users().create(NewUser::default()).await?;
                let project = uow
                    .projects()
                    .create(NewProject::new(user.id, "pipeline"))
                    .await?;
                let mut renders = Vec::new();
                for frame in 0..4 {
                    let task = NewTask::queued(project.id, "render", json!({ "frame": frame }));
                    renders.push(uow.tasks().create(task).await?.id);
                }
                let encode = NewTask::queued(project.id, "encode", json!({})).dependant_on(renders);
                let encode = uow.tasks().create(encode).await?;
                let publish =
                    NewTask::queued(project.id, "publish", json!({})).dependant_on([encode.id]);
                uow.tasks().create(publish).await?;
                Ok(project)
            })
        })
        .await?;
    let mut done = Vec::new();
    // The workers take turns, so the two pools' statements interleave deterministically.
    'work: loop {
        for db in [a, b] {
            let mut claimed = None;
            for kind in ["render", "encode", "publish"] {
                if let Some(task) = db.tasks().claim_in_project(project.id, kind).await? {
                    claimed = Some(task);
                    break;
                }
            }
            match claimed {
                Some(mut task) => {
                    task.output_location = Some(format!("s3://demo/{}", task.id));
                    db.tasks().update(task.clone()).await?;
                    db.tasks().set_status(task.id, TaskStatus::Complete).await?;
                    done.push(task.id);
                }
                None => break 'work,
            }
        }
    }
    let complete = TaskFilter::default().status(TaskStatus::Complete);
    let finished = a
        .tasks()
        .list_for_project(project.id, &complete, PageRequest::first(100))
        .await?
        .items;
    assert_eq!(
        done.iter().collect::<HashSet<_>>().len(),
        done.len(),
        "no task ran twice"
    );
    assert_eq!(finished.len(), done.len());
    Ok(done.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_pooler_mode_the_task_worker_fails_through_pgbouncer() {
    parity_tests::run_on(Target::PgBouncer, Setup::Migrated, |t| async move {
        // With the mode on (the harness's pool, and a second one): it works.
        let second = t.connect(&t.config).await;
        assert_eq!(task_worker_sequence(&t.db, &second).await.unwrap(), 6);

        // With it off, a strict PgBouncer refuses the session settings outright...
        let session = t.config.clone().with_pool_mode(PoolMode::Session);
        match Database::connect(&session).await {
            Err(DalError::Connection { detail, .. }) => {
                assert!(detail.contains("unsupported startup parameter"), "{detail}")
            }
            other => panic!("session settings through PgBouncer: {other:?}"),
        }

        // ...and one that drops them lets the pool connect, loses the statement timeout,
        // and fails on the prepared statements, as the product did.
        let lenient = Config::postgres(&through_lenient_pgbouncer(&t))
            .unwrap()
            .with_pool_mode(PoolMode::Session);
        let (a, b) = (t.connect(&lenient).await, t.connect(&lenient).await);
        assert!(!a.behind_transaction_pooler());
        let uow = a.begin().await.unwrap();
        let row = uow
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SHOW statement_timeout",
            ))
            .await
            .unwrap()
            .unwrap();
        let timeout: String = row.try_get_by_index(0).unwrap();
        assert_ne!(timeout, "30s", "the start-up statement_timeout was dropped");
        uow.rollback().await.unwrap();
        match task_worker_sequence(&a, &b).await {
            Err(DalError::Database { detail, .. }) => assert!(
                detail.contains("prepared statement \"sqlx_s_") && detail.contains("exists"),
                "{detail}"
            ),
            other => panic!("without the pooler mode: {other:?}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_statement_cache_off_sqlx_no_longer_leaves_named_statements_behind_pgbouncer() {
    // sqlx 0.9.0 with `statement_cache_capacity(0)` still named the statements SeaORM
    // sent (`sqlx_s_N`, persistent) and never closed them, so the next client on that
    // server session collided; that is why the library's pooler mode sends unnamed
    // statements inside explicit transactions. sqlx 0.9.1 sends unnamed ones with the
    // cache off. Pinned here so a change of sqlx either way is noticed; the library's
    // own path (below) depends on neither.
    parity_tests::run_on(Target::PgBouncer, Setup::Empty, |t| async move {
        let dal_config::DatabaseTarget::Postgres { url } = t.config.target.clone() else {
            unreachable!("a PgBouncer target is Postgres")
        };
        let options: sqlx::postgres::PgConnectOptions = url.expose_secret().parse().unwrap();
        let options = options.statement_cache_capacity(0).extra_float_digits(None);
        let select = || {
            Statement::from_sql_and_values(DbBackend::Postgres, "SELECT $1::int AS n", [7.into()])
        };
        let mut outcomes = Vec::new();
        for _ in 0..2 {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await
                .unwrap();
            let db = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
            outcomes.push(db.query_one_raw(select()).await.map(|_| ()));
            db.close().await.unwrap();
        }
        assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
        assert!(
            outcomes[1].is_ok(),
            "a second client on the same server session: {:?}",
            outcomes[1]
        );

        // The pooler mode's path, the same two fresh pools in a row: fine.
        for _ in 0..2 {
            let db = t.connect(&t.config).await;
            let row = db.query_one_raw(select()).await.unwrap().unwrap();
            assert_eq!(row.try_get::<i32>("", "n").unwrap(), 7);
            db.close().await.unwrap();
        }
    })
    .await;
}

async fn setting(exec: &impl ConnectionTrait) -> String {
    let row = exec
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_setting('statement_timeout') AS v",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "v").unwrap()
}

async fn sleep(exec: &impl ConnectionTrait, seconds: f64) -> dal::Result<()> {
    exec.execute_raw(Statement::from_string(
        DbBackend::Postgres,
        format!("SELECT pg_sleep({seconds})"),
    ))
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statement_timeout_holds_per_transaction_through_pgbouncer() {
    parity_tests::run_on(Target::PgBouncer, Setup::Migrated, |t| async move {
        // Another client leaves a session setting on a server session (outside a
        // transaction, it stays there), and the database has a default of its own.
        let direct = t.direct_config().unwrap();
        let admin = t.connect(&direct).await;
        admin
            .execute_unprepared(&format!(
                "ALTER DATABASE \"{}\" SET statement_timeout = '50ms'",
                url::Url::parse(t.direct_url.as_deref().unwrap())
                    .unwrap()
                    .path()
                    .trim_start_matches('/')
            ))
            .await
            .unwrap();
        let db = t
            .connect(
                &t.config
                    .clone()
                    .with_statement_timeout(Duration::from_millis(300)),
            )
            .await;
        db.execute_unprepared("SET statement_timeout = 0")
            .await
            .unwrap();

        // Every transaction, on the pool or a unit of work, whatever session it lands on,
        // has the configured timeout, and it stops a statement that runs longer.
        assert_eq!(setting(&db).await, "300ms");
        for _ in 0..3 {
            let uow = db.begin().await.unwrap();
            assert_eq!(setting(&uow).await, "300ms");
            assert!(matches!(
                sleep(&uow, 30.0).await,
                Err(DalError::Timeout {
                    what: TimeoutKind::Statement,
                    ..
                })
            ));
            uow.rollback().await.unwrap();
            assert!(matches!(
                sleep(&db, 30.0).await,
                Err(DalError::Timeout {
                    what: TimeoutKind::Statement,
                    ..
                })
            ));
        }
        let uow = db.begin_with(Isolation::Serializable).await.unwrap();
        assert_eq!(setting(&uow).await, "300ms");
        uow.commit().await.unwrap();

        // A zero timeout turns it off in each transaction, over the database's default.
        let unlimited = t
            .connect(&t.config.clone().with_statement_timeout(Duration::ZERO))
            .await;
        assert_eq!(setting(&unlimited).await, "0");
        sleep(&unlimited, 0.2).await.expect("no timeout");
        let uow = unlimited.begin().await.unwrap();
        sleep(&uow, 0.2)
            .await
            .expect("no timeout in a unit of work");
        uow.commit().await.unwrap();
    })
    .await;
}
