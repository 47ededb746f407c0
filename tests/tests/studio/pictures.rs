//! Pictures: the task graph (one node per task, status colours, leases) and a shot's
//! timeline strip.

use std::time::Duration;

use dal::prelude::*;
use parity_tests::parity_test;
use serde_json::json;

use crate::web::{Web, all_between};

parity_test!(async fn a_projects_task_graph_has_one_node_per_task_and_shows_leases(t) {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    let project = t.db.projects().create(NewProject::new(user.id, "Film")).await.unwrap();
    let tasks = t.db.tasks();
    let script = tasks.create(NewTask::queued(project.id, "script", json!({}))).await.unwrap();
    let a = tasks
        .create(NewTask::queued(project.id, "render", json!({})).dependant_on([script.id]))
        .await
        .unwrap();
    let b = tasks
        .create(NewTask::queued(project.id, "render", json!({})).dependant_on([script.id]))
        .await
        .unwrap();
    tasks
        .create(NewTask::queued(project.id, "encode", json!({})).dependant_on([a.id, b.id]))
        .await
        .unwrap();
    tasks.set_status(b.id, TaskStatus::Failed).await.unwrap();
    let claimed = tasks
        .claim_as("script", "worker-7", Duration::from_secs(600))
        .await
        .unwrap()
        .expect("the script task is ready");
    // Another project's task stays out of this graph.
    let other = t.db.projects().create(NewProject::new(user.id, "Other")).await.unwrap();
    tasks.create(NewTask::queued(other.id, "x", json!({}))).await.unwrap();

    let web = Web::start(&t, false).await;
    let graph = web.page(&format!("/projects/{}/graph", project.id.0)).await;
    let svg = all_between(&graph, "<svg id=\"task-graph\"", "</svg>")[0];
    assert_eq!(svg.matches("<g class=\"task\"").count(), 4);
    assert_eq!(svg.matches("<line class=\"edge\"").count(), 4, "one arrow per dependency");
    assert!(svg.contains(&format!("data-id=\"{}\" data-status=\"Failed\"", b.id.0)));
    let until = claimed.lease_expires_at.unwrap().format("%Y-%m-%d %H:%M:%SZ").to_string();
    assert!(svg.contains(&format!("held by worker-7 until {until}")), "{svg}");
});

parity_test!(async fn a_shots_timeline_is_a_strip_in_order(t) {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    let project = t.db.projects().create(NewProject::new(user.id, "Film")).await.unwrap();
    let shot = t.db.shots().create(NewShot::new(project.id, "Opening")).await.unwrap();
    let mut generations = Vec::new();
    for kind in ["image", "video", "upscale"] {
        let g = t
            .db
            .generations()
            .create(NewGeneration::new(project.id).generation_type(kind))
            .await
            .unwrap();
        generations.push(g);
    }
    // Added out of order: 0 = video, 1 = image, 2 = upscale.
    let shots = t.db.shots();
    shots.add_to_timeline(shot.id, generations[1].id, None).await.unwrap();
    shots.add_to_timeline(shot.id, generations[2].id, None).await.unwrap();
    shots.add_to_timeline(shot.id, generations[0].id, Some(1)).await.unwrap();
    let web = Web::start(&t, false).await;
    let row = web.page(&format!("/tables/shots/rows/{}", shot.id.0)).await;
    assert!(row.contains("id=\"timeline\""), "the shot's page links to its timeline");
    let strip = web.page(&format!("/shots/{}/timeline", shot.id.0)).await;
    let shown = all_between(&strip, "<li class=\"generation\" data-id=\"", "\"");
    let expected: Vec<String> = [1, 0, 2].iter().map(|&i| generations[i].id.0.to_string()).collect();
    assert_eq!(shown, expected);
});
