//! Every `DalError` variant, provoked on both backends; callers match on variants only.

use std::time::Duration;

use dal::prelude::*;
use dal::{ConfigError, DalError, ErrorKind, TimeoutKind};
use parity_tests::{parity_test, postgres_test};
use sea_orm::sea_query::{Alias, Query};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::json;

parity_test!(async fn not_found_conflict_missing_parent_and_invalid_value(t) {
    let users = t.db.users();
    assert!(matches!(users.get(Id::new()).await, Err(DalError::NotFound { entity: "user", .. })));

    users.create(NewUser::new().email("a@b.c")).await.unwrap();
    let err = users.create(NewUser::new().email("a@b.c")).await.unwrap_err();
    assert!(matches!(err, DalError::Conflict { .. }) && !err.is_retryable(), "{err:?}");

    let err = t.db.projects().create(NewProject::new(Id::new(), "P")).await.unwrap_err();
    assert!(matches!(err, DalError::MissingParent { .. }) && !err.is_retryable(), "{err:?}");

    // Values only one backend could store fail the same way on both.
    let user = users.create(NewUser::default()).await.unwrap();
    let err = t.db.projects().create(NewProject::new(user.id, "nul\0byte")).await.unwrap_err();
    assert!(matches!(err, DalError::InvalidValue { .. }), "{err:?}");
    let project = t.db.projects().create(NewProject::new(user.id, "P")).await.unwrap();
    let err = t.db.tasks().create(NewTask::queued(project.id, "x", json!({"k": "\u{0}"}))).await.unwrap_err();
    assert!(matches!(err, DalError::InvalidValue { .. }), "{err:?}");
    let err = t.db.tasks().create(NewTask::queued(project.id, "x", json!({"\u{0}": 1}))).await.unwrap_err();
    assert!(matches!(err, DalError::InvalidValue { .. }), "{err:?}");
    let mut far = project.clone();
    far.created_at = chrono::DateTime::from_timestamp(253_402_300_800, 0).unwrap(); // year 10000
    use sea_orm::{ActiveModelTrait, IntoActiveModel};
    let err = DalError::from(far.into_active_model().reset_all().update(&t.db).await.unwrap_err());
    assert!(matches!(err, DalError::InvalidValue { .. }), "{err:?}");
    assert_eq!(t.db.projects().list_for_user(user.id, PageRequest::first(10)).await.unwrap().items.len(), 1);
});

parity_test!(async fn lock_contention_is_busy_and_retryable(t) {
    let a = t.db.users().create(NewUser::default()).await.unwrap();
    let b = t.db.users().create(NewUser::default()).await.unwrap();
    let err = match t.backend() {
        Backend::Sqlite => {
            // A writer holds the lock past another's busy timeout.
            let holder = t.db.begin().await.unwrap();
            holder.users().update(a.clone()).await.unwrap();
            let impatient = t.connect(&t.config.clone().with_busy_timeout(Duration::from_millis(100))).await;
            let err = impatient.users().update(b.clone()).await.unwrap_err();
            holder.commit().await.unwrap();
            impatient.users().update(b.clone()).await.expect("the retry succeeds");
            err
        }
        Backend::Postgres => {
            // Two units of work lock the same two rows in opposite orders: a deadlock,
            // which Postgres breaks by failing one of them (40P01).
            let first = t.db.begin().await.unwrap();
            let second = t.db.begin().await.unwrap();
            first.users().update(a.clone()).await.unwrap();
            second.users().update(b.clone()).await.unwrap();
            let (first_users, second_users) = (first.users(), second.users());
            let (x, y) = tokio::join!(first_users.update(b.clone()), second_users.update(a.clone()));
            let err = match (x, y) {
                (Err(e), Ok(_)) | (Ok(_), Err(e)) => e,
                other => panic!("exactly one side of a deadlock fails: {other:?}"),
            };
            drop((first, second));
            err
        }
    };
    assert!(matches!(err, DalError::Busy { .. }), "{err:?}");
    assert!(err.is_retryable());
});

parity_test!(async fn an_exhausted_pool_times_out_with_a_typed_error(t) {
    let config = t.config.clone().with_max_connections(1).with_acquire_timeout(Duration::from_millis(200));
    let db = t.connect(&config).await;
    let holder = db.begin().await.unwrap();
    let started = std::time::Instant::now();
    let err = db.users().get(Id::new()).await.unwrap_err();
    assert!(matches!(err, DalError::Timeout { what: TimeoutKind::PoolAcquire, .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(5), "within the acquire timeout");
    holder.rollback().await.unwrap();
    assert!(matches!(db.users().get(Id::new()).await, Err(DalError::NotFound { .. })), "the pool recovers");
});

// A SQLite file cannot be unreachable; one that cannot be opened is a configuration
// error (below).
postgres_test!(async fn an_unreachable_database_is_a_connection_error(_t) {
    let config = Config::postgres("postgres://postgres:Sekr1t-canary@127.0.0.1:1/none")
        .unwrap()
        .with_acquire_timeout(Duration::from_secs(2));
    let err = Database::connect(&config).await.unwrap_err();
    assert!(matches!(err, DalError::Connection { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(!format!("{err} {err:?}").contains("Sekr1t-canary"), "no password in {err}");
});

parity_test!(async fn a_database_that_cannot_exist_yet_is_a_configuration_error(t) {
    let (config, expected) = match t.backend() {
        // SQLITE_CANTOPEN: the file's directory does not exist.
        Backend::Sqlite => {
            let path = std::path::PathBuf::from("/nonexistent-directory-for-dal-tests/sub/db.sqlite");
            (Config::sqlite(&path), ConfigKind::SqliteCannotOpen(path))
        }
        // 3D000 on the server itself (PgBouncer answers for its own list of databases).
        Backend::Postgres => {
            let mut url = url::Url::parse(t.direct_url.as_deref().unwrap()).unwrap();
            url.set_path("/dal_tests_no_such_database");
            url.set_password(Some("Sekr1t-canary")).unwrap();
            (Config::postgres(url.as_str()).unwrap(), ConfigKind::PostgresDatabaseMissing)
        }
    };
    let err = Database::connect(&config.with_acquire_timeout(Duration::from_secs(2))).await.unwrap_err();
    match (&err, expected) {
        (DalError::Config(ConfigError::SqliteCannotOpen { path, .. }), ConfigKind::SqliteCannotOpen(expected)) => {
            assert_eq!(path, &expected);
        }
        (DalError::Config(ConfigError::PostgresDatabaseMissing { database }), ConfigKind::PostgresDatabaseMissing) => {
            assert_eq!(database, "dal_tests_no_such_database");
        }
        _ => panic!("{err:?}"),
    }
    assert!(!err.is_retryable());
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(!format!("{err} {err:?}").contains("Sekr1t-canary"), "no password in {err}");
});

enum ConfigKind {
    SqliteCannotOpen(std::path::PathBuf),
    PostgresDatabaseMissing,
}

/// What a constraint error names: `(table, constraint, column)`.
fn names(err: &DalError) -> (Option<&str>, Option<&str>, Option<&str>) {
    (err.table(), err.constraint(), err.column())
}

parity_test!(async fn constraint_errors_name_the_table_constraint_and_column(t) {
    let pg = t.backend() == Backend::Postgres;
    let users = t.db.users();
    let ada = users.create(NewUser::new().email("ada@example.com")).await.unwrap();

    // A taken email, told apart from a taken id without reading `detail`.
    let email = users.create(NewUser::new().email("ada@example.com")).await.unwrap_err();
    assert!(matches!(email, DalError::Conflict { .. }), "{email:?}");
    assert_eq!(names(&email), (Some("users"), pg.then_some("users_email_key"), Some("email")), "{email:?}");
    let twin = entities::user::ActiveModel {
        row_version: sea_orm::ActiveValue::Set(1), id: Set(ada.id), email: Set(None), display_name: Set(None), created_at: Set(ada.created_at) };
    let id = DalError::from(twin.insert(&t.db).await.unwrap_err());
    assert!(matches!(id, DalError::Conflict { .. }), "{id:?}");
    assert_eq!(names(&id), (Some("users"), pg.then_some("users_pkey"), Some("id")), "{id:?}");
    assert_eq!((email.kind(), id.kind()), (ErrorKind::Conflict, ErrorKind::Conflict));

    // A dangling foreign key: SQLite names nothing, the repository names the table.
    let orphan = t.db.projects().create(NewProject::new(Id::new(), "P")).await.unwrap_err();
    assert!(matches!(orphan, DalError::MissingParent { .. }), "{orphan:?}");
    let expected = if pg { (Some("projects"), Some("projects_user_id_fkey"), Some("user_id")) } else { (Some("projects"), None, None) };
    assert_eq!(names(&orphan), expected, "{orphan:?}");
    assert_eq!(orphan.kind().as_str(), "missing_parent");

    // A CHECK, written raw: named the same on both; only Postgres names the table.
    let project = t.db.projects().create(NewProject::new(ada.id, "P")).await.unwrap();
    let insert = |status: Option<&str>, task_type: Option<&str>| {
        let mut columns = vec!["id", "params", "project_id"];
        let mut values: Vec<sea_orm::sea_query::SimpleExpr> = vec![Id::new().into(), json!({}).into(), project.id.into()];
        if let Some(status) = status {
            columns.push("status");
            values.push(status.into());
        }
        if let Some(task_type) = task_type {
            columns.push("task_type");
            values.push(task_type.into());
        }
        Query::insert().into_table(Alias::new("tasks")).columns(columns.into_iter().map(Alias::new)).values_panic(values).to_owned()
    };
    let check = DalError::from(t.db.execute(&insert(Some("Done"), Some("render"))).await.unwrap_err());
    assert!(matches!(check, DalError::InvalidValue { .. }), "{check:?}");
    assert_eq!(names(&check), (pg.then_some("tasks"), Some("tasks_status_check"), None), "{check:?}");
    // NOT NULL: table and column on both.
    let not_null = DalError::from(t.db.execute(&insert(None, None)).await.unwrap_err());
    assert!(matches!(not_null, DalError::InvalidValue { .. }), "{not_null:?}");
    assert_eq!(names(&not_null), (Some("tasks"), None, Some("task_type")), "{not_null:?}");

    // A value the library refuses before the database sees it names nothing and has no source.
    let refused = t.db.projects().create(NewProject::new(ada.id, " ")).await.unwrap_err();
    assert!(matches!(refused, DalError::InvalidValue { .. }), "{refused:?}");
    assert_eq!(names(&refused), (None, None, None));
    assert!(std::error::Error::source(&refused).is_none());
});

parity_test!(async fn the_driver_error_is_the_source(t) {
    use std::error::Error as _;
    let users = t.db.users();
    users.create(NewUser::new().email("a@b.c")).await.unwrap();
    let err = users.create(NewUser::new().email("a@b.c")).await.unwrap_err();
    let source = err.source().expect("a driver error behind a Conflict");
    let Some(sqlx::Error::Database(db)) = source.downcast_ref::<sqlx::Error>() else {
        panic!("not a sqlx database error: {source:?}");
    };
    assert_eq!(db.kind(), sqlx::error::ErrorKind::UniqueViolation, "{db:?}");
    let code = db.code().map(|c| c.into_owned());
    match t.backend() {
        Backend::Sqlite => assert_eq!(code.as_deref(), Some("2067")),
        Backend::Postgres => assert_eq!(code.as_deref(), Some("23505")),
    }
    // Equal errors stay equal with their sources; clones share the source.
    assert_eq!(err.clone(), err);
    assert!(err.clone().source().is_some());

    // A database error the library has no variant for keeps its source too.
    let err = DalError::from(t.db.execute_unprepared("SELECT * FROM no_such_table").await.unwrap_err());
    assert_eq!(err.kind(), ErrorKind::Database, "{err:?}");
    assert!(err.source().and_then(|s| s.downcast_ref::<sqlx::Error>()).is_some(), "{err:?}");
});

#[test]
fn configuration_errors_are_typed() {
    let err = DalError::from(
        Config::from_lookup(|v| (v == "APP_ENV").then(|| "prod".to_owned())).unwrap_err(),
    );
    assert!(
        matches!(
            err,
            DalError::Config(dal::ConfigError::UnknownAppEnv { .. })
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}
