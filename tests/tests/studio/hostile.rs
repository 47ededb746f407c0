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
