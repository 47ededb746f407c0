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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_the_schema_page_early_leaves_no_scratch_schema_behind() {
    // The drift check migrates a scratch schema in the live Postgres database and drops
    // it after. A visitor who leaves the page (or reloads it) while it runs must not
    // leave that schema behind in the database Studio looks at.
    use dal::sql::Value;
    parity_tests::run_on(parity_tests::Target::Postgres, parity_tests::Setup::Migrated, |t| async move {
        let web = Web::start(&t, false).await;
        let scratch = || async {
            let rows = t
                .db
                .query_sql(
                    "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'dal_scratch_%'",
                    Vec::<Value>::new(),
                )
                .await
                .unwrap();
            rows.len()
        };
        assert_eq!(scratch().await, 0);
        for wait in [20u64, 50, 100, 200, 400, 800] {
            let _ = web
                .raw()
                .get(format!("{}/schema", web.base))
                .header(reqwest::header::COOKIE, web.cookie())
                .timeout(std::time::Duration::from_millis(wait))
                .send()
                .await;
        }
        // Whatever was under way has had time to finish.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while scratch().await > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert_eq!(scratch().await, 0, "scratch schemas left in the live database");
    })
    .await;
}

parity_test!(empty async fn a_database_not_yet_migrated_gets_pages_not_500s(t) {
    // The first thing a developer may point Studio at: an empty or half-migrated
    // database. The tables page says which tables are missing and points at the
    // schema page; the sync page says there is nothing to show.
    let web = Web::start(&t, false).await;
    let index = web.get("/").await;
    assert_eq!(index.status, StatusCode::OK, "{}", index.body);
    assert!(index.body.contains("id=\"not-migrated\""), "{}", index.body);
    assert!(index.body.contains("href=\"/schema\""));
    assert_eq!(all_between(&index.body, "<tr data-table=\"", "\"").len(), entities::schema::tables().len());
    let sync = web.get("/sync").await;
    assert_eq!(sync.status, StatusCode::OK, "{}", sync.body);
    assert_eq!(web.get("/schema").await.status, StatusCode::OK);
});
