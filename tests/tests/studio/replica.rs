//! A replica with a dead letter and a server with a conflict, made by real syncs: two
//! SQLite replicas of the test's Postgres database.

use dal::prelude::*;
use parity_tests::TestDb;
use serde_json::json;
use sync::engine::sync_once;
use sync::{PostgresTransport, SyncClient, SyncOptions};

/// The server (the test's Postgres database) and two replicas in `dir`, after: both
/// renamed the shared project (B's write won: a conflict on the server), A deleted it,
/// and B added a task under it (refused: a dead letter on B).
pub struct World {
    pub a: SyncClient,
    pub b: SyncClient,
    pub b_config: Config,
    pub orphan: Id,
    pub transport: PostgresTransport,
}

pub async fn sync(client: &SyncClient, transport: &PostgresTransport) {
    sync_once(client, transport, &SyncOptions::default())
        .await
        .unwrap();
}

pub async fn world(t: &TestDb, dir: &std::path::Path) -> World {
    assert_eq!(t.backend(), Backend::Postgres, "the server is Postgres");
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    let project =
        t.db.projects()
            .create(NewProject::new(user.id, "shared"))
            .await
            .unwrap();
    let transport = PostgresTransport::new(t.db.clone());
    let open = |name: &str| Config::sqlite(dir.join(format!("{name}.db")));
    let a = SyncClient::open(Database::connect(&open("a")).await.unwrap())
        .await
        .unwrap();
    let b = SyncClient::open(Database::connect(&open("b")).await.unwrap())
        .await
        .unwrap();
    sync(&a, &transport).await;
    sync(&b, &transport).await;

    a.database()
        .projects()
        .patch(project.id, ProjectPatch::new().name("alpha"))
        .await
        .unwrap();
    b.database()
        .projects()
        .patch(project.id, ProjectPatch::new().name("beta"))
        .await
        .unwrap();
    sync(&a, &transport).await;
    sync(&b, &transport).await;

    a.database().projects().delete(project.id).await.unwrap();
    let orphan = b
        .database()
        .tasks()
        .create(NewTask::queued(project.id, "render", json!({})))
        .await
        .unwrap()
        .id;
    sync(&a, &transport).await;
    sync(&b, &transport).await;
    assert_eq!(
        b.dead_letters().await.unwrap().len(),
        1,
        "B has a dead letter"
    );
    World {
        a,
        b,
        b_config: open("b"),
        orphan,
        transport,
    }
}
