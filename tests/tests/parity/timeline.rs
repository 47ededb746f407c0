//! Shot timelines: positions stay dense `0..n` whatever happens to them.

use dal::DalError;
use dal::prelude::*;
use parity_tests::{TestDb, parity_test};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

struct Scene {
    shot: entities::shot::Model,
    generations: Vec<entities::generation::Model>,
    foreign: entities::generation::Model,
}

async fn scene(t: &TestDb, generations: usize) -> Scene {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    let p =
        t.db.projects()
            .create(NewProject::new(user.id, "P"))
            .await
            .unwrap();
    let q =
        t.db.projects()
            .create(NewProject::new(user.id, "Q"))
            .await
            .unwrap();
    let shot =
        t.db.shots()
            .create(NewShot::new(p.id, "Opening"))
            .await
            .unwrap();
    let mut made = Vec::new();
    for _ in 0..generations {
        made.push(
            t.db.generations()
                .create(NewGeneration::new(p.id))
                .await
                .unwrap(),
        );
    }
    let foreign =
        t.db.generations()
            .create(NewGeneration::new(q.id))
            .await
            .unwrap();
    Scene {
        shot,
        generations: made,
        foreign,
    }
}

/// The timeline as (link id, generation id), checking positions are exactly 0..n.
async fn order<E: Executor>(exec: &E, shot: Id) -> Vec<(Id, Id)> {
    let timeline = exec.shots().timeline(shot).await.unwrap();
    for (i, entry) in timeline.iter().enumerate() {
        assert_eq!(
            entry.link.position, i as i32,
            "dense positions: {timeline:#?}"
        );
        assert_eq!(entry.generation.id, entry.link.generation_id);
    }
    timeline
        .iter()
        .map(|e| (e.link.id, e.generation.id))
        .collect()
}

parity_test!(async fn add_move_remove_keep_the_timeline_dense(t) {
    let s = scene(&t, 4).await;
    let shots = t.db.shots();
    let g: Vec<Id> = s.generations.iter().map(|g| g.id).collect();

    let l0 = shots.add_to_timeline(s.shot.id, g[0], None).await.unwrap();
    let l1 = shots.add_to_timeline(s.shot.id, g[1], None).await.unwrap();
    let l2 = shots.add_to_timeline(s.shot.id, g[2], Some(0)).await.unwrap();
    let l3 = shots.add_to_timeline(s.shot.id, g[3], Some(99)).await.unwrap();
    assert_eq!(l3.position, 3, "a position past the end appends");
    let gens = |o: Vec<(Id, Id)>| o.into_iter().map(|(_, g)| g).collect::<Vec<_>>();
    assert_eq!(gens(order(&t.db, s.shot.id).await), vec![g[2], g[0], g[1], g[3]]);

    // The same generation may appear twice; each place has its own link.
    let again = shots.add_to_timeline(s.shot.id, g[0], Some(2)).await.unwrap();
    assert_eq!(gens(order(&t.db, s.shot.id).await), vec![g[2], g[0], g[0], g[1], g[3]]);

    shots.move_in_timeline(l2.id, 4).await.unwrap();
    assert_eq!(gens(order(&t.db, s.shot.id).await), vec![g[0], g[0], g[1], g[3], g[2]]);
    shots.move_in_timeline(l1.id, 0).await.unwrap();
    assert_eq!(gens(order(&t.db, s.shot.id).await), vec![g[1], g[0], g[0], g[3], g[2]]);

    shots.remove_from_timeline(again.id).await.unwrap();
    shots.remove_from_timeline(l0.id).await.unwrap();
    assert_eq!(gens(order(&t.db, s.shot.id).await), vec![g[1], g[3], g[2]]);

    let refused = shots.add_to_timeline(s.shot.id, s.foreign.id, None).await.unwrap_err();
    assert!(matches!(refused, DalError::InvalidValue { .. }), "{refused:?}");
    assert_eq!(order(&t.db, s.shot.id).await.len(), 3, "nothing was added");

    assert!(matches!(shots.timeline(Id::new()).await, Err(DalError::NotFound { entity: "shot", .. })));
    assert!(matches!(shots.add_to_timeline(Id::new(), g[0], None).await, Err(DalError::NotFound { entity: "shot", .. })));
    assert!(matches!(shots.add_to_timeline(s.shot.id, Id::new(), None).await, Err(DalError::NotFound { entity: "generation", .. })));
    assert!(matches!(shots.move_in_timeline(Id::new(), 0).await, Err(DalError::NotFound { .. })));
    assert!(matches!(shots.remove_from_timeline(l0.id).await, Err(DalError::NotFound { .. })));
});

parity_test!(async fn shots_crud(t) {
    let s = scene(&t, 1).await;
    let shots = t.db.shots();
    assert_eq!(shots.get(s.shot.id).await.unwrap(), s.shot);
    let blank = shots.create(NewShot::new(s.shot.project_id, "")).await.unwrap_err();
    assert!(matches!(blank, DalError::InvalidValue { .. }));
    let second = shots.create(NewShot::new(s.shot.project_id, "Second")).await.unwrap();
    assert_eq!(shots.list_for_project(s.shot.project_id).await.unwrap(), vec![s.shot.clone(), second.clone()]);
    let mut renamed = second.clone();
    renamed.name = "Closing".into();
    assert_eq!(shots.update(renamed).await.unwrap().name, "Closing");
    shots.add_to_timeline(second.id, s.generations[0].id, None).await.unwrap();
    shots.delete(second.id).await.unwrap();
    assert!(matches!(shots.get(second.id).await, Err(DalError::NotFound { .. })));
    assert!(t.db.generations().get(s.generations[0].id).await.is_ok(), "generations outlive a shot");
});

#[derive(Clone, Debug)]
enum Op {
    Add { generation: usize, at: Option<i32> },
    Move { entry: usize, to: i32 },
    Remove { entry: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..5, proptest::option::of(0i32..12))
            .prop_map(|(generation, at)| Op::Add { generation, at }),
        (0usize..64, 0i32..12).prop_map(|(entry, to)| Op::Move { entry, to }),
        (0usize..64).prop_map(|entry| Op::Remove { entry }),
    ]
}

parity_test!(async fn random_operation_sequences_match_a_model_and_stay_dense(t) {
    // A fixed seed: the same sequences on both backends and on every run.
    let mut runner = TestRunner::deterministic();
    let s = scene(&t, 5).await;
    let shots = t.db.shots();
    for case in 0..8 {
        // Start each case from an empty timeline.
        for (link, _) in order(&t.db, s.shot.id).await {
            shots.remove_from_timeline(link).await.unwrap();
        }
        let ops = proptest::collection::vec(op(), 1..25).new_tree(&mut runner).unwrap().current();
        let mut model: Vec<(Id, Id)> = Vec::new();
        for op in &ops {
            match *op {
                Op::Add { generation, at } => {
                    let g = s.generations[generation].id;
                    let link = shots.add_to_timeline(s.shot.id, g, at).await.unwrap();
                    let index = at.map_or(model.len(), |a| (a as usize).min(model.len()));
                    model.insert(index, (link.id, g));
                }
                Op::Move { entry, to } if !model.is_empty() => {
                    let entry = model.remove(entry % (model.len()));
                    shots.move_in_timeline(entry.0, to).await.unwrap();
                    let index = (to as usize).min(model.len());
                    model.insert(index, entry);
                }
                Op::Remove { entry } if !model.is_empty() => {
                    let entry = model.remove(entry % model.len());
                    shots.remove_from_timeline(entry.0).await.unwrap();
                }
                _ => {}
            }
            assert_eq!(order(&t.db, s.shot.id).await, model, "case {case}, after {op:?} in {ops:?}");
        }
    }
});

parity_test!(async fn concurrent_timeline_edits_stay_dense(t) {
    let s = scene(&t, 5).await;
    let workers = (0..4).map(|w| {
        let db = t.db.clone();
        let shot = s.shot.id;
        let generations: Vec<Id> = s.generations.iter().map(|g| g.id).collect();
        tokio::spawn(async move {
            for i in 0..10i32 {
                let link = db.shots().add_to_timeline(shot, generations[(w + i as usize) % 5], Some(i % 3)).await.unwrap();
                if i % 3 == 0 {
                    db.shots().move_in_timeline(link.id, 0).await.unwrap();
                }
                if i % 4 == 0 {
                    db.shots().remove_from_timeline(link.id).await.unwrap();
                }
            }
        })
    });
    for worker in futures::future::join_all(workers).await {
        worker.unwrap();
    }
    // 4 workers x 10 adds, minus the 3 removals each.
    assert_eq!(order(&t.db, s.shot.id).await.len(), 4 * (10 - 3));
});

parity_test!(async fn deleting_a_generation_closes_up_the_timelines_that_showed_it(t) {
    let s = scene(&t, 3).await;
    let g: Vec<Id> = s.generations.iter().map(|g| g.id).collect();
    for id in [g[0], g[1], g[2], g[1]] {
        t.db.shots().add_to_timeline(s.shot.id, id, None).await.unwrap();
    }
    t.db.generations().delete(g[1]).await.unwrap();
    let gens = |o: Vec<(Id, Id)>| o.into_iter().map(|(_, g)| g).collect::<Vec<_>>();
    assert_eq!(gens(order(&t.db, s.shot.id).await), vec![g[0], g[2]], "dense 0..n, order kept");
    t.db.shots().add_to_timeline(s.shot.id, g[0], None).await.unwrap();
    assert_eq!(gens(order(&t.db, s.shot.id).await), vec![g[0], g[2], g[0]]);
    assert!(matches!(t.db.generations().delete(g[1]).await, Err(DalError::NotFound { .. })));
});

parity_test!(async fn a_negative_position_is_refused_and_changes_nothing(t) {
    let s = scene(&t, 2).await;
    let shots = t.db.shots();
    let first = shots.add_to_timeline(s.shot.id, s.generations[0].id, None).await.unwrap();
    match shots.add_to_timeline(s.shot.id, s.generations[1].id, Some(-1)).await {
        Err(DalError::InvalidValue { .. }) => {}
        other => panic!("expected InvalidValue, got {other:?}"),
    }
    match shots.move_in_timeline(first.id, -3).await {
        Err(DalError::InvalidValue { .. }) => {}
        other => panic!("expected InvalidValue, got {other:?}"),
    }
    let timeline = shots.timeline(s.shot.id).await.unwrap();
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0].link, first);
});
