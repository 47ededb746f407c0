//! The seeder: idempotent, concurrent-safe, fixture files followed live, and scale mode.

use std::path::Path;
use std::time::Duration;

use dal::prelude::*;
use parity_tests::{TestDb, parity_test};
use sea_orm::{EntityTrait, QueryOrder};
use seed::{Dataset, WatchEvent};
use tokio::sync::mpsc;

/// Every row of every table, in id order.
async fn contents(db: &Database) -> Dataset {
    use entities::*;
    Dataset {
        users: user::Entity::find()
            .order_by_asc(user::Column::Id)
            .all(db)
            .await
            .unwrap(),
        projects: project::Entity::find()
            .order_by_asc(project::Column::Id)
            .all(db)
            .await
            .unwrap(),
        tasks: task::Entity::find()
            .order_by_asc(task::Column::Id)
            .all(db)
            .await
            .unwrap(),
        generations: generation::Entity::find()
            .order_by_asc(generation::Column::Id)
            .all(db)
            .await
            .unwrap(),
        shots: shot::Entity::find()
            .order_by_asc(shot::Column::Id)
            .all(db)
            .await
            .unwrap(),
        shot_generations: shot_generation::Entity::find()
            .order_by_asc(shot_generation::Column::Id)
            .all(db)
            .await
            .unwrap(),
    }
}

fn sorted(mut d: Dataset) -> Dataset {
    d.users.sort_by_key(|r| r.id);
    d.projects.sort_by_key(|r| r.id);
    d.tasks.sort_by_key(|r| r.id);
    d.generations.sort_by_key(|r| r.id);
    d.shots.sort_by_key(|r| r.id);
    d.shot_generations.sort_by_key(|r| r.id);
    d
}

parity_test!(empty async fn seeding_twice_leaves_the_same_rows_and_inserts_nothing(t) {
    let first = seed::seed(&t.db).await.unwrap();
    let sample = seed::sample();
    assert_eq!(first.inserted(), sample.ids().len() as u64);
    let after_first = contents(&t.db).await;
    // Every value, ids and timestamps included, is what the sample says: the same rows on
    // either backend and on every machine.
    assert_eq!(after_first, sorted(sample));
    assert!(after_first.tasks.iter().any(|t| !t.dependant_on.is_empty()));

    let second = seed::seed(&t.db).await.unwrap();
    assert_eq!(second.inserted(), 0, "{second}");
    assert_eq!(second.table("tasks").present, after_first.tasks.len() as u64);
    assert_eq!(contents(&t.db).await, after_first);
    assert_eq!(t.db.users().get(seed::DUMMY_USER_ID).await.unwrap().email.as_deref(), Some(seed::DUMMY_USER_EMAIL));
});

parity_test!(empty async fn the_seeder_keeps_edits_and_rows_it_did_not_create(t) {
    seed::seed(&t.db).await.unwrap();
    let mut project = t.db.projects().get(seed::seed_id("projects", "demo-film")).await.unwrap();
    project.name = "Renamed by the user".into();
    t.db.projects().update(project.clone()).await.unwrap();
    let mine = t.db.projects().create(NewProject::new(seed::DUMMY_USER_ID, "Made by the user")).await.unwrap();

    let again = seed::seed(&t.db).await.unwrap();
    assert_eq!(again.inserted(), 0);
    assert_eq!(t.db.projects().get(project.id).await.unwrap().name, "Renamed by the user");
    assert_eq!(t.db.projects().get(mine.id).await.unwrap(), mine);
});

parity_test!(empty async fn two_seeders_at_once_insert_each_row_once(t) {
    let other = t.connect(&t.config).await;
    let (a, b) = tokio::join!(seed::seed(&t.db), seed::seed(&other));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.inserted() + b.inserted(), seed::sample().ids().len() as u64, "{a}\n{b}");
    assert_eq!(contents(&t.db).await, sorted(seed::sample()));
});

parity_test!(async fn scale_mode_produces_the_expected_counts_idempotently(t) {
    seed::seed(&t.db).await.unwrap();
    let mut batches = 0;
    let report = seed::scale::scale(&t.db, 100, |_, _| batches += 1).await.unwrap();
    assert!(batches >= 1);
    assert_eq!(report.table("projects").inserted, 100);
    assert_eq!(report.table("tasks").inserted, 100 * seed::scale::TASKS_PER_PROJECT as u64);
    assert_eq!(report.table("generations").inserted, 100 * seed::scale::GENERATIONS_PER_PROJECT as u64);
    assert_eq!(report.table("shots").inserted, 100 * seed::scale::SHOTS_PER_PROJECT as u64);
    assert_eq!(
        report.table("shot_generations").inserted,
        100 * (seed::scale::SHOTS_PER_PROJECT * seed::scale::LINKS_PER_SHOT) as u64
    );
    let all = contents(&t.db).await;
    let sample = seed::sample();
    assert_eq!(all.projects.len(), 100 + sample.projects.len());
    assert_eq!(all.tasks.len(), 100 * seed::scale::TASKS_PER_PROJECT + sample.tasks.len());

    let again = seed::scale::scale(&t.db, 100, |_, _| {}).await.unwrap();
    assert_eq!(again.inserted(), 0);
    let more = seed::scale::scale(&t.db, 150, |_, _| {}).await.unwrap();
    assert_eq!(more.table("projects").inserted, 50);
    // The generated timelines are dense and the project reads back through the repositories.
    let shot = t.db.shots().list_for_project(seed::seed_id("projects", "scale/7")).await.unwrap()[0].clone();
    let timeline = t.db.shots().timeline(shot.id).await.unwrap();
    assert_eq!(timeline.len(), seed::scale::LINKS_PER_SHOT);
});

fn write(dir: &Path, name: &str, text: &str) {
    // Write-then-rename: the watcher never sees a half-written file.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

const PEOPLE: &str =
    r#"{ "users": [{ "key": "alice", "email": "alice@example.com", "display_name": "Alice" }] }"#;
const FILM: &str = r#"{
  "projects": [{ "key": "film", "user": "alice", "name": "Film" }],
  "tasks": [
    { "key": "render", "project": "film", "task_type": "render", "params": { "frames": 24 }, "status": "Complete" },
    { "key": "encode", "project": "film", "task_type": "encode", "status": "Queued", "dependant_on": ["render"] }
  ],
  "generations": [{ "key": "still", "project": "film", "tasks": ["render"], "type": "image" }],
  "shots": [{ "key": "opening", "project": "film", "name": "Opening", "timeline": ["still", "still"] }]
}"#;

fn id(table: &str, key: &str) -> Id {
    seed::seed_id(table, &format!("fixture/{key}"))
}

parity_test!(async fn fixture_files_apply_in_any_order_and_bad_files_change_nothing(t) {
    let dir = tempfile::tempdir().unwrap();
    // `a-film.json` refers to a user defined by the later `b-people.json`.
    write(dir.path(), "a-film.json", FILM);
    write(dir.path(), "b-people.json", PEOPLE);
    // Valid JSON whose second record refers to nobody: all or nothing.
    write(dir.path(), "c-broken.json", r#"{ "users": [{ "key": "bob" }], "projects": [{ "key": "p", "user": "nobody", "name": "P" }] }"#);
    write(dir.path(), "d-typo.json", r#"{ "users": [{ "key": "carol", "emial": "x" }] }"#);
    write(dir.path(), "e-status.json", r#"{ "tasks": [{ "key": "x", "project": "film", "task_type": "t", "status": "Done" }] }"#);

    let mut applied = seed::fixtures::Applied::default();
    let files = seed::fixtures::read_dir(dir.path()).unwrap();
    let (report, errors) = seed::fixtures::apply_all(&t.db, files, &mut applied).await;
    assert_eq!(report.table("tasks").inserted, 2, "{report}");
    let refused: Vec<String> = errors.iter().map(|e| e.path.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(refused, ["c-broken.json", "d-typo.json", "e-status.json"], "{errors:?}");
    assert!(errors[1].reason.contains("emial"), "names the problem: {}", errors[1]);
    assert!(errors[2].reason.contains("In Progress"), "lists the statuses: {}", errors[2]);
    assert!(matches!(t.db.users().get(id("users", "bob")).await, Err(DalError::NotFound { .. })), "nothing half-written");

    let encode = t.db.tasks().get(id("tasks", "encode")).await.unwrap();
    assert_eq!(encode.dependant_on.0, vec![id("tasks", "render").uuid()]);
    let timeline = t.db.shots().timeline(id("shots", "opening")).await.unwrap();
    assert_eq!(timeline.len(), 2);

    // Applying the same files again changes nothing and inserts nothing.
    let files = seed::fixtures::read_dir(dir.path()).unwrap();
    let (again, _) = seed::fixtures::apply_all(&t.db, files, &mut applied).await;
    assert_eq!(again.inserted(), 0, "{again}");
});

async fn next_event(events: &mut mpsc::UnboundedReceiver<WatchEvent>) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(15), events.recv())
        .await
        .expect("the watcher reacts within 15 s")
        .expect("the watcher is running")
}

async fn watch_dir(
    t: &TestDb,
    dir: &Path,
) -> (
    mpsc::UnboundedReceiver<WatchEvent>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let db = t.db.clone();
    let dir = dir.to_owned();
    let handle = tokio::spawn(async move {
        seed::watch(
            &db,
            &dir,
            Duration::from_millis(40),
            move |e| {
                let _ = tx.send(e);
            },
            async {
                let _ = stopped.await;
            },
        )
        .await
        .unwrap();
    });
    (rx, stop, handle)
}

parity_test!(async fn watch_follows_added_changed_and_deleted_files(t) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "people.json", PEOPLE);
    let (mut events, stop, handle) = watch_dir(&t, dir.path()).await;
    match next_event(&mut events).await {
        WatchEvent::Loaded { report, errors } => {
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(report.table("users").inserted, 1);
        }
        other => panic!("{other:?}"),
    }

    // Added.
    write(dir.path(), "film.json", FILM);
    assert!(matches!(next_event(&mut events).await, WatchEvent::Applied { .. }));
    assert_eq!(t.db.projects().get(id("projects", "film")).await.unwrap().name, "Film");

    // Changed: a renamed project, a task gone from the file, a shorter timeline.
    let changed = FILM
        .replace(r#""name": "Film""#, r#""name": "Feature""#)
        .replace(r#""timeline": ["still", "still"]"#, r#""timeline": ["still"]"#)
        .replace(
            r#",
    { "key": "encode", "project": "film", "task_type": "encode", "status": "Queued", "dependant_on": ["render"] }"#,
            "",
        );
    assert_ne!(changed, FILM);
    write(dir.path(), "film.json", &changed);
    match next_event(&mut events).await {
        WatchEvent::Applied { report, .. } => assert_eq!(report.table("tasks").deleted, 1, "{report}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.db.projects().get(id("projects", "film")).await.unwrap().name, "Feature");
    assert!(matches!(t.db.tasks().get(id("tasks", "encode")).await, Err(DalError::NotFound { .. })));
    assert_eq!(t.db.shots().timeline(id("shots", "opening")).await.unwrap().len(), 1);

    // Malformed: reported with its path, nothing changes.
    write(dir.path(), "film.json", "{ \"projects\": [ { \"key\": \"film\", ");
    match next_event(&mut events).await {
        WatchEvent::Rejected(e) => assert!(e.path.ends_with("film.json"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.db.projects().get(id("projects", "film")).await.unwrap().name, "Feature");

    // Deleted: the file's records go (the last applied version's).
    std::fs::remove_file(dir.path().join("film.json")).unwrap();
    assert!(matches!(next_event(&mut events).await, WatchEvent::Removed { .. }));
    assert!(matches!(t.db.projects().get(id("projects", "film")).await, Err(DalError::NotFound { .. })));
    assert!(t.db.users().get(id("users", "alice")).await.is_ok(), "another file's records stay");

    stop.send(()).unwrap();
    handle.await.unwrap();
});
