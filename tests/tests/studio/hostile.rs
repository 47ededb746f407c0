//! What a hostile review of Studio found: each test failed before its fix.

use dal::prelude::*;
use parity_tests::parity_test;
use reqwest::StatusCode;

use crate::tables::project_with_tasks;
use crate::web::{Web, all_between, task_form};

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
    parity_tests::run_on(
        parity_tests::Target::Postgres,
        parity_tests::Setup::Migrated,
        |t| async move {
            let web = Web::start(&t, false).await;
            let scratch = || async {
                let rows =
                    t.db.query_sql(
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
                    .get(format!("{}/schema?drift=1", web.base))
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
            assert_eq!(
                scratch().await,
                0,
                "scratch schemas left in the live database"
            );
        },
    )
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

const PAYLOADS: [&str; 4] = [
    "\"><script>alert(1)</script>",
    "</textarea><img src=x onerror=alert(1)>",
    "</title></text><svg onload=alert(1)>",
    "'><a href=javascript:alert(1)>x</a>",
];

fn assert_inert(path: &str, body: &str) {
    for bad in [
        "<script>alert",
        "<img src=x",
        "<svg onload",
        "<a href=javascript",
    ] {
        assert!(
            !body.contains(bad),
            "{path} renders {bad:?} as markup: {body}"
        );
    }
}

parity_test!(async fn no_stored_or_submitted_value_is_rendered_as_markup(t) {
    // A regression guard (it passed as written): every page a stored or submitted value
    // reaches, with payloads for text, attribute, textarea and SVG contexts.
    let user = t.db.users().create(NewUser::new().display_name(PAYLOADS[0])).await.unwrap();
    let project = t.db.projects().create(NewProject::new(user.id, PAYLOADS[2])).await.unwrap();
    let mut ids = Vec::new();
    for p in PAYLOADS {
        let task = t.db.tasks().create(NewTask::queued(project.id, p, serde_json::json!({"k": p}))).await.unwrap();
        ids.push(task.id);
    }
    let claimed = t.db.tasks().claim_as(PAYLOADS[0], PAYLOADS[3], std::time::Duration::from_secs(60)).await.unwrap();
    assert!(claimed.is_some(), "a lease holder is drawn in the graph");
    let shot = t.db.shots().create(NewShot::new(project.id, PAYLOADS[1])).await.unwrap();
    let g = t.db.generations().create(NewGeneration::new(project.id).location(PAYLOADS[3]).generation_type(PAYLOADS[1])).await.unwrap();
    t.db.shots().add_to_timeline(shot.id, g.id, None).await.unwrap();
    let web = Web::start(&t, true).await;
    let mut paths = vec![
        "/".to_owned(),
        "/tables/tasks".to_owned(),
        "/tables/users".to_owned(),
        "/tables/projects".to_owned(),
        "/tables/generations".to_owned(),
        format!("/projects/{}/graph", project.id.0),
        format!("/shots/{}/timeline", shot.id.0),
        format!("/tables/users/rows/{}", user.id.0),
        format!("/tables/shots/rows/{}", shot.id.0),
        format!("/tables/generations/rows/{}", g.id.0),
        format!("/tables/tasks?column=task_type&value={}", url::form_urlencoded::byte_serialize(PAYLOADS[1].as_bytes()).collect::<String>()),
        format!("/tables/tasks?sort={}", url::form_urlencoded::byte_serialize(PAYLOADS[0].as_bytes()).collect::<String>()),
        format!("/tables/{}", url::form_urlencoded::byte_serialize(PAYLOADS[2].as_bytes()).collect::<String>()),
        format!("/tables/tasks/new?project_id={}", url::form_urlencoded::byte_serialize(PAYLOADS[1].as_bytes()).collect::<String>()),
    ];
    for id in &ids {
        paths.push(format!("/tables/tasks/rows/{}", id.0));
    }
    for path in &paths {
        let a = web.get(path).await;
        assert_inert(path, &a.body);
    }
    // Echoed forms: refused and stale.
    for p in PAYLOADS {
        let path = format!("/tables/tasks/rows/{}/edit", ids[0].0);
        let form = [("row_version", "1"), ("task_type", p), ("status", p), ("params", p), ("dependant_on", p), ("output_location", p)];
        let a = web.post(&path, &form).await;
        assert_inert(&path, &a.body);
        let form = [("row_version", "99"), ("task_type", p), ("status", "Queued"), ("params", "{}"), ("dependant_on", ""), ("output_location", p)];
        let a = web.post(&path, &form).await;
        assert_eq!(a.status, StatusCode::CONFLICT);
        assert_inert(&path, &a.body);
        let a = web.post("/tables/projects/new", &[("user_id", p), ("name", p)]).await;
        assert_inert("new project", &a.body);
    }
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_acted_on_twice_at_once_is_acted_on_once_and_says_so() {
    // A retry and a discard of the same dead letter (two tabs, a double click) race
    // past the look-up; the one that finds it gone must not answer as if it had acted
    // (a "discarded" that was in fact sent to the server).
    use parity_tests::{Setup, Target};
    parity_tests::run_on(Target::Postgres, Setup::Migrated, |t| async move {
        let dir = tempfile::tempdir().unwrap();
        let w = crate::replica::world(&t, dir.path()).await;
        let replica = Web::start_with(w.b.database().clone(), w.b_config.clone(), true).await;
        let seq = w.b.dead_letters().await.unwrap()[0].seq;
        let retry = format!("/sync/dead-letters/{seq}/retry");
        let discard = format!("/sync/dead-letters/{seq}/discard");
        let (a, b, c) = tokio::join!(
            replica.post(&retry, &[]),
            replica.post(&retry, &[]),
            replica.post(&discard, &[])
        );
        let done = [&a, &b, &c]
            .iter()
            .filter(|r| r.status == StatusCode::SEE_OTHER)
            .count();
        assert_eq!(done, 1, "{} {} {}", a.status, b.status, c.status);
        for r in [&a, &b, &c] {
            assert!(
                [
                    StatusCode::SEE_OTHER,
                    StatusCode::CONFLICT,
                    StatusCode::NOT_FOUND
                ]
                .contains(&r.status),
                "{}",
                r.body
            );
        }
        let (pending, dead) = (
            w.b.pending().await.unwrap(),
            w.b.dead_letters().await.unwrap().len(),
        );
        assert_eq!(dead, 0);
        // Whichever won: retried (one entry pending) or discarded (none).
        if c.status == StatusCode::SEE_OTHER {
            assert_eq!(pending, 0);
        } else {
            assert_eq!(pending, 1);
        }
        // A seq that is not (or no longer) a dead letter, and an unknown action.
        assert_eq!(
            replica
                .post("/sync/dead-letters/424242/retry", &[])
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            replica
                .post("/sync/dead-letters/-1/discard", &[])
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            replica
                .post(&format!("/sync/dead-letters/{seq}/explode"), &[])
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    })
    .await;
}

parity_test!(async fn an_uppercase_uuid_finds_its_row_on_every_backend(t) {
    // A uuid typed or pasted in capitals is the same uuid: Postgres compares uuids, so it
    // found the row there, while SQLite compared the text and found nothing.
    let (project, tasks) = project_with_tasks(&t.db, 1).await;
    let web = Web::start(&t, false).await;
    let id = tasks[0].id.0.to_string();
    let (up, project_up) = (id.to_uppercase(), project.id.0.to_string().to_uppercase());
    let row = web.get(&format!("/tables/tasks/rows/{up}")).await;
    assert_eq!(row.status, StatusCode::OK, "{}", row.body);
    let found = web.get(&format!("/find/{up}")).await;
    assert_eq!(found.status, StatusCode::SEE_OTHER, "{}", found.body);
    for filter in [format!("column=project_id&value={project_up}"), format!("column=id&value={up}")] {
        let listing = web.page(&format!("/tables/tasks?{filter}")).await;
        assert_eq!(all_between(&listing, "<tr class=\"row\" data-id=\"", "\""), [id.as_str()], "{filter}");
    }
    let deps = web.page(&format!("/tables/generations?column=tasks&value={up}")).await;
    assert!(deps.contains("0 matching rows"));
});
