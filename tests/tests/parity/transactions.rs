//! Units of work: all or nothing, the same repositories, and no deadlock on a small pool.

use std::time::Duration;

use dal::DalError;
use dal::prelude::*;
use parity_tests::parity_test;
use serde_json::json;

parity_test!(async fn commit_keeps_rollback_and_drop_discard(t) {
    let uow = t.db.begin().await.unwrap();
    let kept = uow.users().create(NewUser::default()).await.unwrap();
    assert_eq!(uow.users().get(kept.id).await.unwrap(), kept, "visible inside");
    uow.commit().await.unwrap();
    assert_eq!(t.db.users().get(kept.id).await.unwrap(), kept);

    let uow = t.db.begin().await.unwrap();
    let user = uow.users().create(NewUser::default()).await.unwrap();
    uow.projects().create(NewProject::new(user.id, "P")).await.unwrap();
    uow.rollback().await.unwrap();
    assert!(matches!(t.db.users().get(user.id).await, Err(DalError::NotFound { .. })));

    let dropped = {
        let uow = t.db.begin().await.unwrap();
        uow.users().create(NewUser::default()).await.unwrap().id
    };
    assert!(matches!(t.db.users().get(dropped).await, Err(DalError::NotFound { .. })));
});

parity_test!(async fn the_closure_form_commits_on_ok_and_rolls_back_on_err(t) {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    let project = t
        .db
        .transaction(|uow| Box::pin(async move {
            let project = uow.projects().create(NewProject::new(user.id, "P")).await?;
            uow.shots().create(NewShot::new(project.id, "S")).await?;
            Ok(project)
        }))
        .await
        .unwrap();
    assert_eq!(t.db.shots().list_for_project(project.id).await.unwrap().len(), 1);

    let err = t
        .db
        .transaction(|uow| Box::pin(async move {
            let shot = uow.shots().create(NewShot::new(project.id, "half-written")).await?;
            uow.shots().create(NewShot::new(Id::new(), "bad parent")).await?;
            Ok(shot)
        }))
        .await
        .unwrap_err();
    assert!(matches!(err, DalError::MissingParent { .. }), "{err:?}");
    assert_eq!(t.db.shots().list_for_project(project.id).await.unwrap().len(), 1, "nothing half-written");
});

parity_test!(async fn nested_units_of_work_roll_back_alone(t) {
    let uow = t.db.begin().await.unwrap();
    let outer = uow.users().create(NewUser::default()).await.unwrap();
    let inner = uow.begin().await.unwrap();
    let discarded = inner.users().create(NewUser::default()).await.unwrap();
    inner.rollback().await.unwrap();
    let nested = uow.begin().await.unwrap();
    let kept = nested.users().create(NewUser::default()).await.unwrap();
    nested.commit().await.unwrap();
    uow.commit().await.unwrap();
    assert!(t.db.users().get(outer.id).await.is_ok());
    assert!(t.db.users().get(kept.id).await.is_ok());
    let discarded = t.db.users().get(discarded.id).await;
    assert!(matches!(discarded, Err(DalError::NotFound { .. })), "{discarded:?}");
});

parity_test!(async fn a_unit_of_work_never_waits_on_its_own_pool(t) {
    // One connection: any repository call that went back to the pool while the unit of
    // work holds it would wait for the acquire timeout and fail.
    let config = t
        .config
        .clone()
        .with_max_connections(1)
        .with_acquire_timeout(Duration::from_secs(2));
    let db = t.connect(&config).await;
    let uow = db.begin().await.unwrap();
    let user = uow.users().create(NewUser::default()).await.unwrap();
    let project = uow.projects().create(NewProject::new(user.id, "P")).await.unwrap();
    let task = uow.tasks().create(NewTask::queued(project.id, "render", json!({}))).await.unwrap();
    uow.tasks().create(NewTask::queued(project.id, "encode", json!({})).dependant_on([task.id])).await.unwrap();
    assert_eq!(uow.tasks().claim("render").await.unwrap().unwrap().id, task.id);
    let generation = uow.generations().create(NewGeneration::new(project.id).tasks(vec![task.id])).await.unwrap();
    let shot = uow.shots().create(NewShot::new(project.id, "S")).await.unwrap();
    // Timeline edits open a nested unit of work of their own: on the same connection.
    let link = uow.shots().add_to_timeline(shot.id, generation.id, None).await.unwrap();
    uow.shots().move_in_timeline(link.id, 0).await.unwrap();
    assert_eq!(uow.shots().timeline(shot.id).await.unwrap().len(), 1);
    uow.projects().list_for_user(user.id, PageRequest::first(10)).await.unwrap();
    uow.commit().await.unwrap();

    // And the pool is free again afterwards.
    assert_eq!(db.shots().timeline(shot.id).await.unwrap().len(), 1);
});

parity_test!(async fn uncommitted_work_is_invisible_to_the_pool(t) {
    let uow = t.db.begin().await.unwrap();
    let user = uow.users().create(NewUser::default()).await.unwrap();
    let reader = t.connect(&t.config).await;
    assert!(matches!(reader.users().get(user.id).await, Err(DalError::NotFound { .. })));
    uow.commit().await.unwrap();
    assert!(reader.users().get(user.id).await.is_ok());
});

parity_test!(async fn after_a_failed_statement_a_unit_of_work_can_only_roll_back(t) {
    let uow = t.db.begin().await.unwrap();
    let kept = uow.users().create(NewUser::new().email("a@b.c")).await.unwrap();
    let dup = uow.users().create(NewUser::new().email("a@b.c")).await.unwrap_err();
    assert!(matches!(dup, DalError::Conflict { .. }), "{dup:?}");
    // Postgres has aborted the transaction; SQLite would carry on. Both refuse alike.
    let next = uow.users().create(NewUser::default()).await.unwrap_err();
    assert!(matches!(next, DalError::TransactionAborted { .. }), "{next:?}");
    let commit = uow.commit().await.unwrap_err();
    assert!(matches!(commit, DalError::TransactionAborted { .. }), "{commit:?}");
    assert!(matches!(t.db.users().get(kept.id).await, Err(DalError::NotFound { .. })), "nothing committed");

    // A statement that may fail goes in a nested unit of work; its failure stays there.
    let uow = t.db.begin().await.unwrap();
    let first = uow.users().create(NewUser::new().email("x@y.z")).await.unwrap();
    let attempt = uow.begin().await.unwrap();
    let err = attempt.users().create(NewUser::new().email("x@y.z")).await.unwrap_err();
    assert!(matches!(err, DalError::Conflict { .. }), "{err:?}");
    attempt.rollback().await.unwrap();
    let second = uow.users().create(NewUser::default()).await.unwrap();
    uow.commit().await.unwrap();
    assert!(t.db.users().get(first.id).await.is_ok());
    assert!(t.db.users().get(second.id).await.is_ok());

    // The closure form reports the abort even if the closure swallowed the error.
    let err = t
        .db
        .transaction(|uow| Box::pin(async move {
            let _ = uow.users().create(NewUser::new().email("x@y.z")).await;
            Ok(())
        }))
        .await
        .unwrap_err();
    assert!(matches!(err, DalError::TransactionAborted { .. }), "{err:?}");
});
