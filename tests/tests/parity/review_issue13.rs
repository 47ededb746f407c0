//! Findings of a hostile review of issue 13 (row versions, patches, scoped paging), each a
//! test that failed before its fix.

use dal::DalError;
use dal::prelude::*;
use parity_tests::{TestDb, parity_test};
use serde_json::json;

use crate::foreign_writes::exec;

/// A user with a project holding one task and one generation of that task.
struct Owner {
    user: Id,
    project: Id,
    task: Task,
    generation: Generation,
}

async fn owner(t: &TestDb, name: &str) -> Owner {
    let user = t.db.users().create(NewUser::default()).await.unwrap().id;
    let project =
        t.db.projects()
            .create(NewProject::new(user, name))
            .await
            .unwrap()
            .id;
    let task =
        t.db.tasks()
            .create(NewTask::queued(project, "render", json!({})))
            .await
            .unwrap();
    let generation =
        t.db.generations()
            .create(NewGeneration::new(project).tasks(vec![task.id]))
            .await
            .unwrap();
    Owner {
        user,
        project,
        task,
        generation,
    }
}

// The scoped views promise that another user's row cannot be told from a missing one. A
// write naming another user's task as a dependency (or as a generation's task) used to be
// refused with `InvalidValue` "... belongs to project <their project>, not <mine>":
// confirming the task exists and naming its owner's project. It must be the `NotFound` a
// task that does not exist gets, and write nothing.
parity_test!(async fn a_scoped_write_naming_another_users_task_finds_no_such_task(t) {
    let a = owner(&t, "alice").await;
    let b = owner(&t, "bob").await;
    let scope = t.db.for_user(a.user);
    let theirs = b.task.id;
    let no_such_task = |what: &str, named_as: &str, outcome: String, err: Option<DalError>| {
        let expected_key = format!("{theirs} (named as a {named_as})");
        assert!(
            matches!(&err, Some(DalError::NotFound { entity: "task", key, .. }) if *key == expected_key),
            "{what}: {outcome}"
        );
        assert!(!outcome.contains(&b.project.to_string()), "{what} names bob's project: {outcome}");
    };
    macro_rules! refused {
        ($what:expr, $named_as:expr, $call:expr) => {{
            let outcome = $call.await;
            let text = format!("{outcome:?}");
            no_such_task($what, $named_as, text, outcome.err());
        }};
    }

    refused!("create", "dependency",
        scope.tasks().create(NewTask::queued(a.project, "x", json!({})).dependant_on([theirs])));
    refused!("insert_many", "dependency",
        scope.tasks().insert_many(vec![NewTask::queued(a.project, "x", json!({})).dependant_on([theirs])]));
    let mut edited = a.task.clone();
    edited.dependant_on = [theirs].into_iter().collect();
    refused!("update", "dependency", scope.tasks().update(edited));
    refused!("patch", "dependency",
        scope.tasks().patch(a.task.id, TaskPatch::new().dependant_on([theirs])));
    refused!("generation create", "generation task",
        scope.generations().create(NewGeneration::new(a.project).tasks(vec![theirs])));
    let mut edited = a.generation.clone();
    edited.tasks = [theirs].into_iter().collect();
    refused!("generation update", "generation task", scope.generations().update(edited));
    refused!("generation patch", "generation task",
        scope.generations().patch(a.generation.id, GenerationPatch::new().tasks([theirs])));

    // Nothing was written, and alice's own dependencies still work through the scope.
    let all = TaskFilter::default();
    assert_eq!(t.db.tasks().count_for_project(a.project, &all).await.unwrap(), 1);
    assert_eq!(t.db.generations().count_for_project(a.project, None).await.unwrap(), 1);
    assert_eq!(t.db.tasks().get(a.task.id).await.unwrap(), a.task);
    assert_eq!(t.db.generations().get(a.generation.id).await.unwrap(), a.generation);
    let next = scope
        .tasks()
        .create(NewTask::queued(a.project, "encode", json!({})).dependant_on([a.task.id]))
        .await
        .unwrap();
    let patched = scope
        .generations()
        .patch(a.generation.id, GenerationPatch::new().tasks([a.task.id, next.id]))
        .await
        .unwrap();
    assert_eq!(patched.tasks.len(), 2);
});

// A full update takes the version from the caller's model and writes `version + 1`: a
// model carrying `i64::MAX` (made up, or read from a row another program pushed there)
// overflowed, a panic in debug builds and a wrap to `i64::MIN` in release (a version
// going backwards, on a row at `i64::MAX`). It must be `Stale` when the row is at
// another version, and a refusal that writes nothing when it really is at the largest.
parity_test!(async fn an_update_naming_the_largest_version_is_refused_without_overflow(t) {
    let a = owner(&t, "alice").await;
    let stale = |what: &str, outcome: String, err: Option<DalError>| {
        assert!(
            matches!(err, Some(DalError::Stale { expected: i64::MAX, actual, .. }) if actual < 10),
            "{what}: {outcome}"
        );
    };
    macro_rules! check {
        ($what:expr, $call:expr) => {{
            let outcome = $call.await;
            let text = format!("{outcome:?}");
            stale($what, text, outcome.err());
        }};
    }
    let user = t.db.users().get(a.user).await.unwrap();
    check!("user", t.db.users().update(User { row_version: i64::MAX, ..user }));
    let project = t.db.projects().get(a.project).await.unwrap();
    check!("project", t.db.projects().update(Project { row_version: i64::MAX, ..project }));
    check!("task", t.db.tasks().update(Task { row_version: i64::MAX, ..a.task.clone() }));
    check!("generation",
        t.db.generations().update(Generation { row_version: i64::MAX, ..a.generation.clone() }));
    let shot = t.db.shots().create(NewShot::new(a.project, "s")).await.unwrap();
    check!("shot", t.db.shots().update(Shot { row_version: i64::MAX, ..shot }));

    // Only another program can put a row at the largest version; from there no write of
    // the library can move it on, so each is refused and nothing changes.
    exec(&t, &format!("UPDATE tasks SET row_version = {} WHERE id = '{}'", i64::MAX, a.task.id))
        .await
        .unwrap();
    let at_max = t.db.tasks().get(a.task.id).await.unwrap();
    assert_eq!(at_max.row_version, i64::MAX);
    let update = t.db.tasks().update(Task { params: json!({"x": 1}), ..at_max.clone() }).await;
    assert!(matches!(update, Err(DalError::InvalidValue { .. })), "{update:?}");
    let patch = t.db.tasks().patch(at_max.id, TaskPatch::new().params(json!({"x": 1}))).await;
    assert!(matches!(patch, Err(DalError::InvalidValue { .. })), "{patch:?}");
    assert_eq!(t.db.tasks().get(a.task.id).await.unwrap(), at_max);
});
