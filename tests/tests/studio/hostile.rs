//! What a hostile review of Studio found: each test failed before its fix.

use dal::prelude::*;
use parity_tests::parity_test;
use reqwest::StatusCode;

use crate::tables::project_with_tasks;
use crate::web::{Web, all_between};

fn task_form<'a>(task: &'a Task, status: &'a str, version: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("row_version", version),
        ("task_type", task.task_type.as_str()),
        ("status", status),
        ("params", "{}"),
        ("dependant_on", ""),
        ("output_location", ""),
    ]
}

parity_test!(async fn a_refused_edit_keeps_the_version_its_form_was_read_at(t) {
    // The form was loaded at version 1; someone else changes the row; the edit is
    // refused for a bad value. The page that asks to correct it must still carry the
    // version the user saw, or the corrected save overwrites the other change unseen.
    let (_, tasks) = project_with_tasks(&t.db, 1).await;
    let task = &tasks[0];
    let web = Web::start(&t, true).await;
    let path = format!("/tables/tasks/rows/{}/edit", task.id.0);
    let read_at = task.row_version.to_string();
    let theirs = t.db.tasks().set_status(task.id, TaskStatus::Failed).await.unwrap();
    let bad = web.post(&path, &task_form(task, "Done", &read_at)).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let carried = all_between(&bad.body, "name=\"row_version\" value=\"", "\"");
    assert_eq!(carried, [read_at.as_str()], "{}", bad.body);
    let corrected = web.post(&path, &task_form(task, "Complete", carried[0])).await;
    assert_eq!(corrected.status, StatusCode::CONFLICT, "{}", corrected.body);
    assert_eq!(t.db.tasks().get(task.id).await.unwrap(), theirs, "nothing overwritten");
});

parity_test!(async fn an_edit_without_its_version_is_refused_not_saved_blindly(t) {
    // A form that lost its row_version (or carries garbage) must not save without the
    // optimistic check.
    let (_, tasks) = project_with_tasks(&t.db, 1).await;
    let task = &tasks[0];
    let web = Web::start(&t, true).await;
    let path = format!("/tables/tasks/rows/{}/edit", task.id.0);
    for version in ["", "x", "1e3"] {
        let blind = web.post(&path, &task_form(task, "Complete", version)).await;
        assert_eq!(blind.status, StatusCode::BAD_REQUEST, "row_version {version:?}: {}", blind.body);
    }
    let mut form = task_form(task, "Complete", "");
    form.remove(0);
    let blind = web.post(&path, &form).await;
    assert_eq!(blind.status, StatusCode::BAD_REQUEST, "{}", blind.body);
    assert_eq!(t.db.tasks().get(task.id).await.unwrap(), *task, "nothing written");
});

parity_test!(async fn a_stale_timeline_move_is_not_saved(t) {
    // shot_generations rows are moved with move_in_timeline, which takes no version:
    // the version the form was read at must still be checked.
    let (project, _) = project_with_tasks(&t.db, 0).await;
    let shot = t.db.shots().create(NewShot::new(project.id, "s")).await.unwrap();
    let mut links = Vec::new();
    for _ in 0..3 {
        let g = t.db.generations().create(NewGeneration::new(project.id)).await.unwrap();
        links.push(t.db.shots().add_to_timeline(shot.id, g.id, None).await.unwrap());
    }
    let link = &links[2];
    let web = Web::start(&t, true).await;
    let path = format!("/tables/shot_generations/rows/{}/edit", link.id.0);
    let read_at = link.row_version.to_string();
    // Someone else moves it to the front meanwhile.
    let theirs = t.db.shots().move_in_timeline(link.id, 0).await.unwrap();
    let stale = web.post(&path, &[("row_version", read_at.as_str()), ("position", "1")]).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    let now = t.db.shots().timeline(shot.id).await.unwrap();
    assert_eq!(now[0].link.id, link.id, "the other move stands");
    assert_eq!(now[0].link.row_version, theirs.row_version);
    // At the version shown, the move is saved.
    let current = theirs.row_version.to_string();
    let moved = web.post(&path, &[("row_version", current.as_str()), ("position", "1")]).await;
    assert_eq!(moved.status, StatusCode::SEE_OTHER, "{}", moved.body);
    let now = t.db.shots().timeline(shot.id).await.unwrap();
    assert_eq!(now[1].link.id, link.id);
});
