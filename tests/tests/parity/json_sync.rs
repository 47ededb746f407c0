//! JSON numbers through sync: Postgres reformats them (`1e400` as 1 and 400 zeros, `1e-7`
//! as `0.0000001`), replicas store the library's canonical text. A value must read the
//! same everywhere, and a replica must never take the server's spelling for a change of
//! its own (it would resend the column and win conflicts with an unchanged value).

use dal::prelude::*;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::Value;

use crate::sync::{Rig, run_postgres};

const NUMBERS: &str = r#"{"big": 1e400, "tiny": 1e-7, "u": 18446744073709551617,
    "f": 1.50, "long": 0.1000000000000000000001, "neg": -0.0, "n": 1e2}"#;

async fn outbox_columns(db: &Database) -> Vec<String> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT changes FROM sync_outbox ORDER BY seq",
        ))
        .await
        .unwrap();
    rows.iter()
        .flat_map(|row| {
            let changes: String = row.try_get("", "changes").unwrap();
            let changes: serde_json::Map<String, Value> = serde_json::from_str(&changes).unwrap();
            changes.keys().cloned().collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_written_on_the_server_read_alike_on_replicas_and_are_not_resent() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (project, a) = rig.synced_client("a").await;
        // Another program (psql) writes the task on the server.
        let id = Id::new();
        rig.server
            .execute_unprepared(&format!(
                "INSERT INTO tasks (id, task_type, params, status, project_id) \
                 VALUES ('{id}', 'render', '{NUMBERS}', 'Queued', '{project}')"
            ))
            .await
            .unwrap();
        rig.sync(&a).await;
        let on_server = rig.server.tasks().get(id).await.unwrap();
        let on_replica = a.database().tasks().get(id).await.unwrap();
        assert_eq!(on_replica.params, on_server.params);
        let expected = entities::json::parse(NUMBERS.as_bytes()).unwrap();
        assert_eq!(on_server.params, expected);

        // A local update writes every column; the unchanged params must not be captured.
        let mut edited = on_replica.clone();
        edited.output_location = Some("local".into());
        a.database().tasks().update(edited).await.unwrap();
        let captured = outbox_columns(a.database()).await;
        assert!(
            captured.contains(&"output_location".to_owned()),
            "{captured:?}"
        );
        assert!(!captured.contains(&"params".to_owned()), "{captured:?}");
        rig.sync(&a).await;
        rig.assert_converged(a.database()).await;
        assert_eq!(rig.server.tasks().get(id).await.unwrap().params, expected);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_written_on_a_replica_reach_the_server_and_other_replicas_exactly() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (project, a) = rig.synced_client("a").await;
        let b = rig.client("b").await;
        let params: Value = serde_json::from_str(NUMBERS).unwrap();
        let task = a
            .database()
            .tasks()
            .create(NewTask::queued(project, "render", params))
            .await
            .unwrap();
        rig.sync(&a).await;
        rig.sync(&b).await;
        let on_server = rig.server.tasks().get(task.id).await.unwrap();
        assert_eq!(on_server.params, task.params);
        assert_eq!(
            b.database().tasks().get(task.id).await.unwrap().params,
            task.params
        );
        rig.assert_converged(b.database()).await;
        // The pulled text on b is what b's own write of the same value stores.
        let mut same = b.database().tasks().get(task.id).await.unwrap();
        same.output_location = Some("b".into());
        b.database().tasks().update(same).await.unwrap();
        let captured = outbox_columns(b.database()).await;
        assert!(
            captured.contains(&"output_location".to_owned()),
            "{captured:?}"
        );
        assert!(!captured.contains(&"params".to_owned()), "{captured:?}");
    })
    .await;
}
