//! Edits through the repositories: saved values reach the database, refusals come back
//! next to their field, a stale edit shows both versions, read-only means read-only.

use dal::prelude::*;
use parity_tests::parity_test;
use reqwest::StatusCode;
use serde_json::json;

use crate::tables::project_with_tasks;
use crate::web::{Web, all_between, task_form};

parity_test!(async fn an_edit_is_saved_through_the_repository(t) {
    let (_, tasks) = project_with_tasks(&t.db, 1).await;
    let task = &tasks[0];
    let web = Web::start(&t, true).await;
    let path = format!("/tables/tasks/rows/{}", task.id.0);
    let row = web.page(&path).await;
    assert!(row.contains("id=\"save\""), "a writable studio shows the form");
    let version = task.row_version.to_string();
    let saved = web.post(&format!("{path}/edit"), &task_form(task, "Complete", &version)).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let now = t.db.tasks().get(task.id).await.unwrap();
    assert_eq!(now.status, TaskStatus::Complete);
    assert_eq!(now.params, json!({"frames": 24}));
    assert_eq!(now.row_version, task.row_version + 1);
});

parity_test!(async fn refusals_come_back_next_to_their_field_in_plain_words(t) {
    let (project, tasks) = project_with_tasks(&t.db, 1).await;
    let task = &tasks[0];
    let web = Web::start(&t, true).await;
    let path = format!("/tables/tasks/rows/{}/edit", task.id.0);
    let version = task.row_version.to_string();

    // A status the schema does not admit.
    let bad = web.post(&path, &task_form(task, "Done", &version)).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let said = all_between(&bad.body, "id=\"error-status\">", "</span>");
    assert_eq!(said.len(), 1, "{}", bad.body);
    assert!(said[0].contains("&quot;Done&quot; is not a status"), "{}", said[0]);
    assert!(said[0].contains("In Progress"), "{}", said[0]);
    assert_eq!(t.db.tasks().get(task.id).await.unwrap(), *task, "nothing was written");

    // JSON that does not parse.
    let mut form = task_form(task, "Queued", &version);
    form[3] = ("params", "{frames: 24");
    let bad = web.post(&path, &form).await;
    assert!(all_between(&bad.body, "id=\"error-params\">", "</span>")[0].contains("not valid JSON"));

    // A duplicate email.
    web.post("/tables/users/new", &[("email", "a@example.test"), ("display_name", "A")]).await;
    let b = t.db.users().create(NewUser::new().email("b@example.test")).await.unwrap();
    let taken = web
        .post(
            &format!("/tables/users/rows/{}/edit", b.id.0),
            &[("row_version", &b.row_version.to_string()), ("email", "a@example.test"), ("display_name", "")],
        )
        .await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY);
    let said = all_between(&taken.body, "id=\"error-email\">", "</span>");
    assert_eq!(said, ["another row of users already has this email"], "{}", taken.body);

    // A missing parent.
    let nobody = uuid::Uuid::new_v4().to_string();
    let orphan = web
        .post(
            "/tables/tasks/new",
            &[
                ("project_id", nobody.as_str()),
                ("task_type", "render"),
                ("status", "Queued"),
                ("params", "{}"),
                ("dependant_on", ""),
            ],
        )
        .await;
    assert_eq!(orphan.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", orphan.body);
    let said = all_between(&orphan.body, "id=\"error-project_id\">", "</span>");
    assert_eq!(said.len(), 1, "{}", orphan.body);
    assert!(said[0].contains("does not exist"), "{}", said[0]);

    // And a good creation lands.
    let created = web
        .post(
            "/tables/tasks/new",
            &[
                ("project_id", project.id.0.to_string().as_str()),
                ("task_type", "encode"),
                ("status", "Pending"),
                ("params", "{\"a\": 1}"),
                ("dependant_on", task.id.0.to_string().as_str()),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let id = created.location.unwrap().rsplit('/').next().unwrap().to_owned();
    let new = t.db.tasks().get(Id(id.parse().unwrap())).await.unwrap();
    assert_eq!(new.status, TaskStatus::Pending);
    assert!(new.dependant_on.contains(&task.id));
});

parity_test!(async fn a_stale_edit_shows_both_versions_instead_of_overwriting(t) {
    let (_, tasks) = project_with_tasks(&t.db, 1).await;
    let task = &tasks[0];
    let web = Web::start(&t, true).await;
    let path = format!("/tables/tasks/rows/{}/edit", task.id.0);
    let read_at = task.row_version.to_string();
    // Someone else changes the task after the form was loaded.
    let theirs = t.db.tasks().set_status(task.id, TaskStatus::Failed).await.unwrap();
    let stale = web.post(&path, &task_form(task, "Complete", &read_at)).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert!(stale.body.contains("id=\"stale\""));
    let mine = all_between(&stale.body, "<table id=\"mine\">", "</table>")[0];
    let now = all_between(&stale.body, "<table id=\"theirs\">", "</table>")[0];
    assert!(mine.contains("Complete") && !mine.contains("Failed"), "{mine}");
    assert!(now.contains("Failed") && !now.contains("Complete"), "{now}");
    assert_eq!(t.db.tasks().get(task.id).await.unwrap(), theirs, "nothing overwritten");

    // Saving mine over it uses the version shown beside it.
    let again = theirs.row_version.to_string();
    let saved = web.post(&path, &task_form(task, "Complete", &again)).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(t.db.tasks().get(task.id).await.unwrap().status, TaskStatus::Complete);
});

parity_test!(async fn a_read_only_studio_changes_nothing(t) {
    let (_, tasks) = project_with_tasks(&t.db, 1).await;
    let task = &tasks[0];
    let web = Web::start(&t, false).await;
    let path = format!("/tables/tasks/rows/{}", task.id.0);
    let row = web.page(&path).await;
    assert!(!row.contains("<form method=\"post\""), "a read-only studio shows a form");
    let version = task.row_version.to_string();
    let refused = web.post(&format!("{path}/edit"), &task_form(task, "Complete", &version)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = web.post(&format!("{path}/delete"), &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(t.db.tasks().get(task.id).await.unwrap(), *task);
});

parity_test!(async fn a_delete_asks_first_then_tombstones_through_the_repository(t) {
    let (project, tasks) = project_with_tasks(&t.db, 2).await;
    let web = Web::start(&t, true).await;
    let path = format!("/tables/projects/rows/{}/delete", project.id.0);
    let confirm = web.page(&path).await;
    assert!(confirm.contains("id=\"confirm\""));
    assert!(t.db.projects().get(project.id).await.is_ok(), "asking deletes nothing");
    let deleted = web.post(&path, &[]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert!(matches!(t.db.projects().get(project.id).await, Err(DalError::NotFound { .. })));
    assert!(matches!(t.db.tasks().get(tasks[0].id).await, Err(DalError::NotFound { .. })));
    let shown = web.page("/tables/projects?deleted=1").await;
    assert!(shown.contains("row tombstone"));
});
