//! Optimistic concurrency and partial updates: a full update based on a stale read is
//! refused with `Stale` and changes nothing; a patch writes only its columns, so writers of
//! different columns never undo each other; writes by other programs move the version too.

use dal::DalError;
use dal::prelude::*;
use parity_tests::{TestDb, parity_test};
use serde_json::json;

use crate::foreign_writes::exec;

async fn project(t: &TestDb) -> Id {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    t.db.projects()
        .create(NewProject::new(user.id, "p"))
        .await
        .unwrap()
        .id
}

fn assert_stale<T: std::fmt::Debug>(
    outcome: Result<T, DalError>,
    entity: &str,
    id: Id,
    expected: i64,
    actual: i64,
) {
    match outcome {
        Err(DalError::Stale {
            entity: e,
            id: i,
            expected: x,
            actual: a,
            ..
        }) => {
            assert_eq!((e, i, x, a), (entity, id, expected, actual));
        }
        other => panic!("expected Stale for {entity} {id}, got {other:?}"),
    }
}

parity_test!(
    async fn a_stale_full_update_never_undoes_a_claim(t) {
        let project = project(&t).await;
        let created =
            t.db.tasks()
                .create(NewTask::queued(project, "render", json!({"frames": 1})))
                .await
                .unwrap();
        assert_eq!(created.row_version, 1);
        // A UI reads the task...
        let read = t.db.tasks().get(created.id).await.unwrap();
        // ...a worker claims it...
        let claimed = t.db.tasks().claim("render").await.unwrap().unwrap();
        assert_eq!(claimed.id, created.id);
        assert_eq!(claimed.row_version, 2);
        // ...and the UI saves its copy, still `Queued`.
        let mut edited = read.clone();
        edited.params = json!({"frames": 2});
        assert_stale(t.db.tasks().update(edited).await, "task", created.id, 1, 2);
        let now = t.db.tasks().get(created.id).await.unwrap();
        assert_eq!(now, claimed, "the refused update changed nothing");
        assert_eq!(now.status, TaskStatus::InProgress);
        assert!(
            t.db.tasks().claim("render").await.unwrap().is_none(),
            "claimed once"
        );
    }
);

parity_test!(
    async fn an_update_based_on_the_current_version_succeeds_and_moves_it_on(t) {
        let project = project(&t).await;
        let task =
            t.db.tasks()
                .create(NewTask::queued(project, "render", json!({})))
                .await
                .unwrap();
        let mut edit = task.clone();
        edit.output_location = Some("s3://a".into());
        let saved = t.db.tasks().update(edit.clone()).await.unwrap();
        assert_eq!(saved.row_version, 2);
        assert_eq!(saved.output_location.as_deref(), Some("s3://a"));
        assert_eq!(t.db.tasks().get(task.id).await.unwrap(), saved);
        // The same edit again is now stale; the saved row is the base for the next one.
        assert_stale(t.db.tasks().update(edit).await, "task", task.id, 1, 2);
        let mut next = saved.clone();
        next.output_location = Some("s3://b".into());
        assert_eq!(t.db.tasks().update(next).await.unwrap().row_version, 3);
    }
);

parity_test!(
    async fn two_concurrent_patches_of_different_columns_both_survive(t) {
        let project = project(&t).await;
        for round in 0..10 {
            let task =
                t.db.tasks()
                    .create(NewTask::queued(project, "render", json!({"round": round})))
                    .await
                    .unwrap();
            let tasks = t.db.tasks();
            let (a, b) = tokio::join!(
                tasks.patch(task.id, TaskPatch::new().output_location(format!("s3://{round}"))),
                tasks.patch(task.id, TaskPatch::new().status(TaskStatus::Complete)),
            );
            a.unwrap();
            b.unwrap();
            let now = t.db.tasks().get(task.id).await.unwrap();
            assert_eq!(now.output_location, Some(format!("s3://{round}")));
            assert_eq!(now.status, TaskStatus::Complete);
            assert_eq!(now.params, json!({"round": round}), "untouched");
            assert_eq!(now.row_version, 3, "two writes");
        }
    }
);

parity_test!(
    async fn a_patch_writes_only_its_columns_and_checks_a_version_it_names(t) {
        let project = project(&t).await;
        let task =
            t.db.tasks()
                .create(NewTask::queued(project, "render", json!({"a": 1})))
                .await
                .unwrap();
        t.db.tasks()
            .set_status(task.id, TaskStatus::InProgress)
            .await
            .unwrap();
        // A patch that names no version applies on top of whatever happened.
        let located =
            t.db.tasks()
                .patch(task.id, TaskPatch::new().output_location("s3://x"))
                .await
                .unwrap();
        assert_eq!(located.status, TaskStatus::InProgress, "status untouched");
        assert_eq!(located.row_version, 3);
        assert!(located.updated_at >= task.updated_at);
        // One that names the version it read is refused once the row moved on.
        assert_stale(
            t.db.tasks()
                .patch(task.id, TaskPatch::new().params(json!({"a": 2})).if_version(1))
                .await,
            "task",
            task.id,
            1,
            3,
        );
        assert_eq!(t.db.tasks().get(task.id).await.unwrap(), located);
        let patched =
            t.db.tasks()
                .patch(task.id, TaskPatch::new().params(json!({"a": 2})).if_version(3))
                .await
                .unwrap();
        assert_eq!(patched.params, json!({"a": 2}));
        assert_eq!(patched.row_version, 4);
        // An empty patch writes nothing, but still checks the version it names.
        let same =
            t.db.tasks()
                .patch(task.id, TaskPatch::new())
                .await
                .unwrap();
        assert_eq!(same, patched);
        assert_stale(
            t.db.tasks()
                .patch(task.id, TaskPatch::new().if_version(3))
                .await,
            "task",
            task.id,
            3,
            4,
        );
        // Invalid values are refused before anything is written.
        assert!(matches!(
            t.db.tasks()
                .patch(task.id, TaskPatch::new().task_type("  "))
                .await,
            Err(DalError::InvalidValue { .. })
        ));
        assert!(matches!(
            t.db.tasks()
                .patch(task.id, TaskPatch::new().dependant_on([Id::new()]))
                .await,
            Err(DalError::NotFound { entity: "task", .. })
        ));
        assert_eq!(t.db.tasks().get(task.id).await.unwrap(), patched);
    }
);

parity_test!(
    async fn a_missing_or_deleted_row_is_not_found_not_stale(t) {
        let project = project(&t).await;
        let task =
            t.db.tasks()
                .create(NewTask::queued(project, "render", json!({})))
                .await
                .unwrap();
        t.db.tasks().delete(task.id).await.unwrap();
        let missing = |e: Result<task_model::Model, DalError>| {
            assert!(
                matches!(e, Err(DalError::NotFound { entity: "task", .. })),
                "{e:?}"
            )
        };
        missing(t.db.tasks().update(task.clone()).await);
        missing(
            t.db.tasks()
                .patch(task.id, TaskPatch::new().status(TaskStatus::Complete))
                .await,
        );
        missing(
            t.db.tasks()
                .patch(Id::new(), TaskPatch::new().status(TaskStatus::Complete).if_version(1))
                .await,
        );
    }
);

parity_test!(
    async fn every_repository_refuses_a_stale_update(t) {
        let user = t.db.users().create(NewUser::default()).await.unwrap();
        let changed =
            t.db.users()
                .patch(user.id, UserPatch::new().display_name(Some("A".into())))
                .await
                .unwrap();
        assert_eq!(changed.row_version, 2);
        assert_stale(t.db.users().update(user.clone()).await, "user", user.id, 1, 2);

        let project =
            t.db.projects()
                .create(NewProject::new(user.id, "p"))
                .await
                .unwrap();
        t.db.projects()
            .patch(project.id, ProjectPatch::new().name("q"))
            .await
            .unwrap();
        assert_stale(
            t.db.projects().update(project.clone()).await,
            "project",
            project.id,
            1,
            2,
        );

        let generation =
            t.db.generations()
                .create(NewGeneration::new(project.id))
                .await
                .unwrap();
        t.db.generations()
            .patch(generation.id, GenerationPatch::new().location(Some("s3://g".into())))
            .await
            .unwrap();
        assert_stale(
            t.db.generations().update(generation.clone()).await,
            "generation",
            generation.id,
            1,
            2,
        );

        let shot =
            t.db.shots()
                .create(NewShot::new(project.id, "s"))
                .await
                .unwrap();
        // Timeline edits change the shot (`updated_at`), so they move its version too.
        t.db.shots()
            .add_to_timeline(shot.id, generation.id, None)
            .await
            .unwrap();
        assert_stale(
            t.db.shots().update(shot.clone()).await,
            "shot",
            shot.id,
            1,
            2,
        );
        assert_eq!(
            t.db.shots()
                .patch(shot.id, ShotPatch::new().name("t").if_version(2))
                .await
                .unwrap()
                .row_version,
            3
        );
    }
);

parity_test!(
    async fn a_write_by_another_program_makes_an_earlier_read_stale(t) {
        let project = project(&t).await;
        let task =
            t.db.tasks()
                .create(NewTask::queued(project, "render", json!({})))
                .await
                .unwrap();
        // The web app, psql, or the sync engine applying a pulled row: plain SQL that does
        // not know `row_version`. The trigger moves it on.
        exec(
            &t,
            &format!(
                "UPDATE tasks SET output_location = 'web' WHERE id = '{}'",
                task.id
            ),
        )
        .await
        .unwrap();
        let now = t.db.tasks().get(task.id).await.unwrap();
        assert_eq!(now.row_version, 2);
        assert_eq!(now.output_location.as_deref(), Some("web"));
        assert_stale(t.db.tasks().update(task.clone()).await, "task", task.id, 1, 2);
        // Two writes in one statement's worth of rows: each row moves once.
        exec(
            &t,
            &format!("UPDATE tasks SET params = '{{}}' WHERE project_id = '{project}'"),
        )
        .await
        .unwrap();
        assert_eq!(t.db.tasks().get(task.id).await.unwrap().row_version, 3);
    }
);

parity_test!(
    async fn a_stale_update_inside_a_unit_of_work_leaves_the_unit_usable(t) {
        let project = project(&t).await;
        let task =
            t.db.tasks()
                .create(NewTask::queued(project, "render", json!({})))
                .await
                .unwrap();
        t.db.tasks()
            .set_status(task.id, TaskStatus::Cancelled)
            .await
            .unwrap();
        let uow = t.db.begin().await.unwrap();
        assert_stale(uow.tasks().update(task.clone()).await, "task", task.id, 1, 2);
        // Stale is an answer, not a failed statement: the unit goes on and commits.
        let fresh = uow.tasks().get(task.id).await.unwrap();
        let mut edit = fresh.clone();
        edit.output_location = Some("kept".into());
        uow.tasks().update(edit).await.unwrap();
        uow.commit().await.unwrap();
        let now = t.db.tasks().get(task.id).await.unwrap();
        assert_eq!(now.output_location.as_deref(), Some("kept"));
        assert_eq!(now.status, TaskStatus::Cancelled);
        assert_eq!(now.row_version, 3);
    }
);

use entities::task as task_model;

parity_test!(
    async fn a_bulk_upsert_moves_the_version_on_never_back(t) {
        use sea_orm::IntoActiveModel;
        let project = project(&t).await;
        let task =
            t.db.tasks()
                .create(NewTask::queued(project, "render", json!({})))
                .await
                .unwrap();
        let moved =
            t.db.tasks()
                .patch(task.id, TaskPatch::new().status(TaskStatus::Failed))
                .await
                .unwrap();
        assert_eq!(moved.row_version, 2);
        // An overwrite built from the row as first read (version 1): the stored version
        // moves on to 3, so a form holding version 1 or 2 is stale afterwards.
        let overwrite = entities::task::Model {
            output_location: Some("bulk".into()),
            ..task.clone()
        };
        dal::bulk::upsert(&t.db, vec![overwrite.into_active_model()], &[])
            .await
            .unwrap();
        let now = t.db.tasks().get(task.id).await.unwrap();
        assert_eq!(now.output_location.as_deref(), Some("bulk"));
        assert_eq!(now.row_version, 3);
        assert_stale(t.db.tasks().update(moved).await, "task", task.id, 2, 3);
    }
);
