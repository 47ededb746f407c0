//! Tables: every registry table with its count, keyset pages, sorting, filtering,
//! tombstones, uuid links.

use dal::prelude::*;
use parity_tests::parity_test;
use reqwest::StatusCode;
use serde_json::json;

use crate::web::{Web, all_between};

/// A user, a project and `n` tasks of alternating types, oldest first.
pub async fn project_with_tasks(db: &Database, n: usize) -> (Project, Vec<Task>) {
    let user = db.users().create(NewUser::default()).await.unwrap();
    let project = db
        .projects()
        .create(NewProject::new(user.id, "Film"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..n {
        let kind = if i % 2 == 0 { "render" } else { "encode" };
        let task = db
            .tasks()
            .create(NewTask::queued(
                project.id,
                kind,
                json!({"i": i, "html": "<b>"}),
            ))
            .await
            .unwrap();
        tasks.push(task);
    }
    (project, tasks)
}

fn ids_on(page: &str) -> Vec<String> {
    all_between(page, "<tr class=\"row", ">")
        .iter()
        .map(|attrs| all_between(attrs, "data-id=\"", "\"")[0].to_owned())
        .collect()
}

parity_test!(async fn every_table_of_the_schema_is_listed_with_its_row_count(t) {
    let (_, tasks) = project_with_tasks(&t.db, 3).await;
    t.db.tasks().delete(tasks[0].id).await.unwrap();
    let web = Web::start(&t, false).await;
    let home = web.page("/").await;
    // The registry is the one list of tables: each of them, and nothing else, is shown.
    let shown: Vec<&str> = all_between(&home, "<tr data-table=\"", "\"");
    let registry: Vec<&str> = entities::schema::tables().iter().map(|t| t.name).collect();
    assert_eq!(shown, registry);
    for table in entities::schema::tables() {
        let rows = t
            .db
            .query_sql(&format!("SELECT count(*) FROM {} WHERE NOT deleted", table.name), vec![])
            .await
            .unwrap();
        let live: i64 = rows[0].try_get_by_index(0).unwrap();
        let row = all_between(&home, &format!("<tr data-table=\"{}\">", table.name), "</tr>")[0];
        assert!(
            row.contains(&format!("<td class=\"count\">{live}</td>")),
            "{}: expected {live} rows in {row}",
            table.name
        );
        // And each table's page opens.
        web.page(&format!("/tables/{}", table.name)).await;
    }
    let tasks_row = all_between(&home, "<tr data-table=\"tasks\">", "</tr>")[0];
    assert!(tasks_row.contains("<td class=\"count\">2</td><td>1</td>"), "{tasks_row}");
});

parity_test!(async fn rows_page_by_key_sort_by_an_indexed_column_and_filter(t) {
    let (project, tasks) = project_with_tasks(&t.db, 7).await;
    let web = Web::start(&t, false).await;
    let mut expected: Vec<String> = tasks.iter().map(|t| t.id.0.to_string()).collect();
    expected.sort();

    // Keyset pages of 3 by id: every row once, in order.
    let mut seen = Vec::new();
    let mut path = "/tables/tasks?limit=3".to_owned();
    loop {
        let page = web.page(&path).await;
        let ids = ids_on(&page);
        assert!(ids.len() <= 3);
        seen.extend(ids);
        match all_between(&page, "<a id=\"next\" href=\"", "\"").first() {
            Some(next) => path = next.replace("&amp;", "&"),
            None => break,
        }
    }
    assert_eq!(seen, expected);

    // Sorted by task_type (indexed), then id, still in pages.
    let mut by_type: Vec<(String, String)> = tasks
        .iter()
        .map(|t| (t.task_type.clone(), t.id.0.to_string()))
        .collect();
    by_type.sort();
    let first = web.page("/tables/tasks?sort=task_type&limit=4").await;
    let next = all_between(&first, "<a id=\"next\" href=\"", "\"")[0].replace("&amp;", "&");
    let second = web.page(&next).await;
    let sorted: Vec<String> = ids_on(&first).into_iter().chain(ids_on(&second)).collect();
    assert_eq!(sorted, by_type.into_iter().map(|(_, id)| id).collect::<Vec<_>>());

    // A column that is not indexed is refused.
    assert_eq!(web.get("/tables/tasks?sort=params").await.status, StatusCode::BAD_REQUEST);

    // Filter by value, and by a uuid in a uuid list.
    let renders = web.page("/tables/tasks?column=task_type&value=render").await;
    assert_eq!(ids_on(&renders).len(), 4);
    let dependant = t
        .db
        .tasks()
        .create(NewTask::queued(project.id, "publish", json!({})).dependant_on([tasks[2].id]))
        .await
        .unwrap();
    let waiting = web
        .page(&format!("/tables/tasks?column=dependant_on&value={}", tasks[2].id.0))
        .await;
    assert_eq!(ids_on(&waiting), [dependant.id.0.to_string()]);
    let bad = web.get("/tables/tasks?column=project_id&value=nope").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("is not a uuid"), "{}", bad.body);

    // JSON pretty-printed and escaped.
    assert!(renders.contains("&quot;html&quot;: &quot;&lt;b&gt;&quot;"), "{renders}");
});

parity_test!(async fn tombstoned_rows_are_hidden_unless_asked_for(t) {
    let (_, tasks) = project_with_tasks(&t.db, 3).await;
    t.db.tasks().delete(tasks[1].id).await.unwrap();
    let web = Web::start(&t, false).await;
    let gone = tasks[1].id.0.to_string();
    let live = web.page("/tables/tasks").await;
    assert_eq!(ids_on(&live).len(), 2);
    assert!(!ids_on(&live).contains(&gone));
    let all = web.page("/tables/tasks?deleted=1").await;
    assert!(ids_on(&all).contains(&gone));
    assert!(all.contains(&format!("<tr class=\"row tombstone\" data-id=\"{gone}\">")));
    let row = web.page(&format!("/tables/tasks/rows/{gone}")).await;
    assert!(row.contains("tombstoned"));
});

parity_test!(async fn uuids_and_uuid_lists_link_to_the_rows_they_name(t) {
    let (project, tasks) = project_with_tasks(&t.db, 2).await;
    let generation = t
        .db
        .generations()
        .create(NewGeneration::new(project.id).tasks([tasks[0].id, tasks[1].id]))
        .await
        .unwrap();
    let web = Web::start(&t, false).await;
    let row = web.page(&format!("/tables/generations/rows/{}", generation.id.0)).await;
    assert!(row.contains(&format!("href=\"/tables/projects/rows/{}\"", project.id.0)));
    for task in &tasks {
        let link = format!("/find/{}", task.id.0);
        assert!(row.contains(&format!("href=\"{link}\"")), "{row}");
        let found = web.get(&link).await;
        assert_eq!(found.status, StatusCode::SEE_OTHER);
        assert_eq!(found.location.unwrap(), format!("/tables/tasks/rows/{}", task.id.0));
    }
    // The project's page links to the rows under it.
    let project_page = web.page(&format!("/tables/projects/rows/{}", project.id.0)).await;
    assert!(project_page.contains(&format!(
        "/tables/tasks?column=project_id&amp;value={}",
        project.id.0
    )));
    let missing = web.get(&format!("/find/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
});
