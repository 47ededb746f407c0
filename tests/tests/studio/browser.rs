//! Studio in a real browser, on SQLite and on Postgres: open the page, page through a
//! table, follow a uuid link, edit a task's status (and see it in the database), get the
//! error for a bad value, open the task graph, retry a dead letter.

use dal::prelude::*;
use fantoccini::{Client, Locator};
use parity_tests::{Setup, Target, TestDb};
use serde_json::json;
use studio::{Options, Running};

use crate::driver::Browser;
use crate::replica::world;

async fn css(client: &Client, selector: &str) -> fantoccini::elements::Element {
    match client.wait().for_element(Locator::Css(selector)).await {
        Ok(element) => element,
        Err(e) => {
            let at = client.current_url().await.map(|u| u.to_string());
            let page = client.source().await.unwrap_or_default();
            panic!("no {selector} on {at:?}: {e}\n{page}")
        }
    }
}

/// Clicks `selector` (a form's button) and waits until the browser shows the next
/// document: the page it leaves may hold the elements the test looks for next.
async fn submit(client: &Client, selector: &str) {
    client
        .execute(
            "document.documentElement.setAttribute('data-left', '1')",
            vec![],
        )
        .await
        .unwrap();
    css(client, selector).await.click().await.unwrap();
    for _ in 0..200 {
        if client.find(Locator::Css("html[data-left]")).await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("clicking {selector} led to no new page within 10 s");
}

async fn path_of(client: &Client) -> String {
    let url = client.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

async fn start(db: Database, config: Config) -> Running {
    studio::start_on(db, config, Options::on_port(0).writable(true, true))
        .await
        .expect("studio starts")
}

/// A project whose tasks form a chain: task i waits for task i - 1.
async fn chain(db: &Database, n: usize) -> (Project, Vec<Task>) {
    let user = db.users().create(NewUser::default()).await.unwrap();
    let project = db
        .projects()
        .create(NewProject::new(user.id, "Film"))
        .await
        .unwrap();
    let mut tasks: Vec<Task> = Vec::new();
    for i in 0..n {
        let mut new = NewTask::queued(project.id, format!("step-{i}"), json!({"i": i}));
        if let Some(previous) = tasks.last() {
            new = new.dependant_on([previous.id]);
        }
        tasks.push(db.tasks().create(new).await.unwrap());
    }
    (project, tasks)
}

async fn the_whole_tour(t: TestDb) {
    let (project, tasks) = chain(&t.db, 7).await;
    let running = start(t.db.clone(), t.config.clone()).await;
    let browser = Browser::start().await;
    let client = &browser.client;

    // The page opens with the printed URL, which the browser does not keep.
    client.goto(&running.url_with_token()).await.unwrap();
    css(client, "#tables").await;
    assert_eq!(path_of(client).await, "/");
    css(client, "tr[data-table=\"tasks\"] a")
        .await
        .click()
        .await
        .unwrap();
    css(client, "#rows").await;
    assert_eq!(path_of(client).await, "/tables/tasks");

    // Page through the tasks three at a time.
    client
        .goto(&format!("{}/tables/tasks?limit=3", running.base_url()))
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        css(client, "#rows").await;
        for row in client.find_all(Locator::Css("tr.row")).await.unwrap() {
            seen.push(row.attr("data-id").await.unwrap().unwrap());
        }
        match client.find(Locator::Css("#next")).await {
            Ok(next) => next.click().await.unwrap(),
            Err(_) => break,
        }
    }
    let mut expected: Vec<String> = tasks.iter().map(|t| t.id.0.to_string()).collect();
    expected.sort();
    assert_eq!(seen, expected, "every task once, in key order");

    // Follow a uuid link: the last task's dependency.
    let last = tasks.last().unwrap();
    let before = &tasks[tasks.len() - 2];
    client
        .goto(&format!(
            "{}/tables/tasks/rows/{}",
            running.base_url(),
            last.id.0
        ))
        .await
        .unwrap();
    css(client, "tr[data-column=\"dependant_on\"] a.uuid")
        .await
        .click()
        .await
        .unwrap();
    css(client, "#row").await;
    assert_eq!(
        path_of(client).await,
        format!("/tables/tasks/rows/{}", before.id.0)
    );

    // Edit its status, and see it in the database.
    let status = css(client, "#field-status").await;
    status.clear().await.unwrap();
    status.send_keys("Complete").await.unwrap();
    submit(client, "#save").await;
    css(client, "#row").await;
    assert_eq!(
        t.db.tasks().get(before.id).await.unwrap().status,
        TaskStatus::Complete
    );

    // A status the schema refuses: the error next to the field, nothing written.
    let status = css(client, "#field-status").await;
    status.clear().await.unwrap();
    status.send_keys("Done").await.unwrap();
    submit(client, "#save").await;
    let error = css(client, "#error-status").await.text().await.unwrap();
    assert!(error.contains("\"Done\" is not a status"), "{error}");
    assert_eq!(
        t.db.tasks().get(before.id).await.unwrap().status,
        TaskStatus::Complete
    );

    // The task graph: an SVG with one node per task.
    client
        .goto(&format!(
            "{}/tables/projects/rows/{}",
            running.base_url(),
            project.id.0
        ))
        .await
        .unwrap();
    css(client, "#graph").await.click().await.unwrap();
    css(client, "svg#task-graph").await;
    let nodes = client
        .find_all(Locator::Css("svg#task-graph g.task"))
        .await
        .unwrap();
    assert_eq!(nodes.len(), tasks.len());
    let complete = client
        .find_all(Locator::Css(
            "svg#task-graph g.task[data-status=\"Complete\"]",
        ))
        .await
        .unwrap();
    assert_eq!(complete.len(), 1);

    // Retry a dead letter on a replica of a Postgres server.
    parity_tests::run_on(Target::Postgres, Setup::Migrated, |server| async move {
        let dir = tempfile::tempdir().unwrap();
        let w = world(&server, dir.path()).await;
        let replica = start(w.b.database().clone(), w.b_config.clone()).await;
        client.goto(&replica.url_with_token()).await.unwrap();
        css(client, "#tables").await;
        client
            .goto(&format!("{}/sync", replica.base_url()))
            .await
            .unwrap();
        let reason = css(client, "tr.dead-letter td.reason")
            .await
            .text()
            .await
            .unwrap();
        assert!(reason.contains("was deleted"), "{reason}");
        css(client, "tr.dead-letter a.retry")
            .await
            .click()
            .await
            .unwrap();
        assert_eq!(
            w.b.dead_letters().await.unwrap().len(),
            1,
            "asking changes nothing"
        );
        css(client, "#confirm").await.click().await.unwrap();
        // The sync page, not the confirmation (which shows the letter in a #dead-letters
        // table too, so waiting for that raced the form's submission).
        css(client, "#outbox").await;
        assert!(w.b.dead_letters().await.unwrap().is_empty());
        assert_eq!(w.b.pending().await.unwrap(), 1, "back in the outbox");
        assert_eq!(
            client
                .find_all(Locator::Css("tr.entry"))
                .await
                .unwrap()
                .len(),
            1
        );
        replica.stop().await.unwrap();
    })
    .await;

    browser.close().await;
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_browser_on_sqlite() {
    parity_tests::run_on(Target::Sqlite, Setup::Migrated, the_whole_tour).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_browser_on_postgres() {
    parity_tests::run_on(Target::Postgres, Setup::Migrated, the_whole_tour).await;
}
