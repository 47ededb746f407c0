//! Every `DalError` variant, provoked on both backends; callers match on variants only.

use std::time::Duration;

use dal::prelude::*;
use dal::{DalError, TimeoutKind};
use parity_tests::parity_test;
use serde_json::json;

parity_test!(async fn not_found_conflict_missing_parent_and_invalid_value(t) {
    let users = t.db.users();
    assert!(matches!(users.get(Id::new()).await, Err(DalError::NotFound { entity: "user", .. })));

    users.create(NewUser { email: Some("a@b.c".into()), display_name: None }).await.unwrap();
    let err = users.create(NewUser { email: Some("a@b.c".into()), display_name: None }).await.unwrap_err();
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

parity_test!(async fn an_unreachable_database_is_a_connection_error(t) {
    let config = match t.backend() {
        Backend::Sqlite => Config::sqlite("/nonexistent-directory-for-dal-tests/sub/db.sqlite"),
        Backend::Postgres => Config::postgres("postgres://postgres:Sekr1t-canary@127.0.0.1:1/none").unwrap(),
    }
    .with_acquire_timeout(Duration::from_secs(2));
    let err = Database::connect(&config).await.unwrap_err();
    assert!(matches!(err, DalError::Connection { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(!format!("{err} {err:?}").contains("Sekr1t-canary"), "no password in {err}");
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
