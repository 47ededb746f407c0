//! Review of live updates addressed to the users a change concerns (commit fcdd891): each
//! test is a finding, failing on the code as it was reviewed.

use std::collections::HashSet;

use dal::prelude::*;
use sea_orm::ConnectionTrait;

use crate::sync::run_postgres;
use crate::sync_live::{Notifications, owner};

/// A link of one user's generation into another user's timeline (written by the server,
/// or from before migration `m20261207_050000_link_policies`): when its generation's owner
/// deletes the generation as supabase-js would (as themselves, under row-level security),
/// the cascade removes the link from the other user's timeline, and logs its removal for
/// their replicas. That user is to be woken, though the deleting user cannot see their
/// shot: the notify function ran with the writer's rights, found no owner for the link,
/// and named only the deleting user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cascade_under_row_level_security_wakes_the_owner_of_the_rows_it_removes() {
    run_postgres(|t| async move {
        let server = t.db.clone();
        let mut heard = Notifications::listen(t.direct_url.as_deref().unwrap()).await;
        let (a, project_a) = owner(&server, "a's").await;
        let (b, project_b) = owner(&server, "b's").await;
        let generation = server
            .generations()
            .create(NewGeneration::new(project_a))
            .await
            .unwrap();
        let shot = server
            .shots()
            .create(NewShot::new(project_b, "Opening"))
            .await
            .unwrap();
        server
            .execute_unprepared(&format!(
                "INSERT INTO shot_generations (shot_id, generation_id) VALUES ('{}', '{}')",
                shot.id, generation.id
            ))
            .await
            .unwrap();
        assert_eq!(heard.owners(&server).await, HashSet::from([a, b]));

        let uow = server.begin_as_user(a).await.unwrap();
        uow.execute_unprepared(&format!(
            "DELETE FROM generations WHERE id = '{}'",
            generation.id
        ))
        .await
        .unwrap();
        uow.commit().await.unwrap();

        // b's replica has something to pull: the link's removal.
        let removed = server
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT count(*) AS n FROM sync_removals \
                     WHERE table_name = 'shot_generations' AND owner_id = '{b}'"
                ),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        assert_eq!(removed, 1, "the link's removal is logged for b");
        assert_eq!(heard.owners(&server).await, HashSet::from([a, b]));
    })
    .await;
}

/// A program writing the queue under a role of its own, trusted past row-level security
/// and granted what it writes (`INSERT` and `UPDATE` on `tasks`) but not the rest of the
/// schema, could write tasks before live updates named owners; the notify function, run
/// with the writer's rights, reads `projects` and refused the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_granted_only_the_table_it_writes_can_still_write_it() {
    run_postgres(|t| async move {
        let server = t.db.clone();
        let (a, project_a) = owner(&server, "a's").await;
        let mut heard = Notifications::listen(t.direct_url.as_deref().unwrap()).await;
        heard.owners(&server).await;
        let role = format!("dal_review_worker_{}", Id::new().0.simple());
        server
            .execute_unprepared(&format!(
                "CREATE ROLE {role} NOLOGIN BYPASSRLS; \
                 GRANT USAGE ON SCHEMA public TO {role}; \
                 GRANT INSERT, UPDATE ON tasks TO {role}"
            ))
            .await
            .unwrap();
        let uow = server.begin().await.unwrap();
        uow.execute_unprepared(&format!("SET LOCAL ROLE {role}"))
            .await
            .unwrap();
        let written = uow
            .execute_unprepared(&format!(
                "INSERT INTO tasks (project_id, task_type, params, status) \
                 VALUES ('{project_a}', 'render', '{{}}', 'Queued')"
            ))
            .await;
        match written {
            Ok(_) => uow.commit().await.unwrap(),
            Err(_) => drop(uow),
        }
        server
            .execute_unprepared(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
            .await
            .unwrap();
        written.expect("the worker's insert");
        assert_eq!(heard.owners(&server).await, HashSet::from([a]));
    })
    .await;
}
