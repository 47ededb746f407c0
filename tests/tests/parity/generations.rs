//! Generations: the tasks that made them, and listing by type.

use dal::DalError;
use dal::prelude::*;
use parity_tests::parity_test;
use serde_json::json;

parity_test!(async fn generations_by_task_and_by_type(t) {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    let p = t.db.projects().create(NewProject::new(user.id, "P")).await.unwrap();
    let other = t.db.projects().create(NewProject::new(user.id, "Q")).await.unwrap();
    let a = t.db.tasks().create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();
    let b = t.db.tasks().create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();
    let gens = t.db.generations();
    let image = gens
        .create(NewGeneration::new(p.id).tasks(vec![a.id]).location("a.png").generation_type("image"))
        .await
        .unwrap();
    let video = gens
        .create(NewGeneration::new(p.id).tasks(vec![a.id, b.id]).generation_type("video"))
        .await
        .unwrap();
    let untyped = gens.create(NewGeneration::new(p.id)).await.unwrap();
    assert_eq!(untyped.tasks.len(), 0);
    gens.create(NewGeneration::new(other.id).generation_type("image"))
        .await
        .unwrap();

    assert_eq!(gens.get(image.id).await.unwrap(), image);
    let with_a: Vec<Id> = gens.containing_task(a.id).await.unwrap().iter().map(|g| g.id).collect();
    assert_eq!(with_a, vec![image.id, video.id]);
    let with_b: Vec<Id> = gens.containing_task(b.id).await.unwrap().iter().map(|g| g.id).collect();
    assert_eq!(with_b, vec![video.id]);
    assert!(gens.containing_task(Id::new()).await.unwrap().is_empty());

    let images = gens.list_for_project(p.id, Some("image"), PageRequest::first(100)).await.unwrap().items;
    assert_eq!(images, vec![image.clone()]);
    assert_eq!(gens.list_for_project(p.id, None, PageRequest::first(100)).await.unwrap().items.len(), 3);

    let foreign = gens
        .create(NewGeneration::new(other.id).tasks(vec![a.id]))
        .await
        .unwrap_err();
    assert!(matches!(foreign, DalError::InvalidValue { .. }), "{foreign:?}");

    let mut moved = image.clone();
    moved.location = Some("b.png".into());
    moved.tasks = vec![b.id.uuid()].into();
    let moved = gens.update(moved).await.unwrap();
    assert_eq!(moved.location.as_deref(), Some("b.png"));
    assert!(gens.containing_task(a.id).await.unwrap().iter().all(|g| g.id != image.id));

    gens.delete(image.id).await.unwrap();
    assert!(matches!(gens.get(image.id).await, Err(DalError::NotFound { entity: "generation", .. })));
    assert!(matches!(gens.delete(image.id).await, Err(DalError::NotFound { .. })));
});
