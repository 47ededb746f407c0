//! Findings of a hostile review, each a test that failed before its fix.

use dal::Backend;
use migration::adopt::{AdoptOptions, DRAFT_POSTGRES, Outcome, adopt};
use parity_tests::Setup;
use sea_orm::{ConnectionTrait, Statement};

/// A Supabase draft commonly has a trigger that stamps `updated_at` on every UPDATE
/// (moddatetime). Adoption's backfill is an UPDATE: it must not fire the product's
/// triggers and silently rewrite the rows' `updated_at` (nor leave them off afterwards).
#[tokio::test]
async fn adoption_backfill_does_not_fire_the_drafts_update_triggers() {
    parity_tests::run(Backend::Postgres, Setup::Empty, |t| async move {
        let db = t.connect(&t.config.clone().with_max_connections(1)).await;
        db.execute_unprepared(DRAFT_POSTGRES).await.unwrap();
        db.execute_unprepared(
            "CREATE FUNCTION stamp_updated_at() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN NEW.updated_at = now(); RETURN NEW; END $$; \
             CREATE TRIGGER tasks_stamp BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION stamp_updated_at(); \
             INSERT INTO users (id) VALUES ('11111111-1111-4111-8111-111111111111'); \
             INSERT INTO projects (id, name, user_id) VALUES ('22222222-2222-4222-8222-222222222222', 'p', '11111111-1111-4111-8111-111111111111'); \
             INSERT INTO tasks (id, task_type, params, status, created_at, updated_at, project_id) VALUES \
             ('33333333-3333-4333-8333-333333333333', 'render', '{}', NULL, '2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z', '22222222-2222-4222-8222-222222222222')",
        )
        .await
        .unwrap();
        db.close().await.unwrap();

        let options = AdoptOptions { apply: true, ..AdoptOptions::default() };
        let outcome = adopt(&t.config, options).await.unwrap();
        assert!(matches!(outcome, Outcome::Applied(_)), "{outcome}");

        let db = t.connect(&t.config.clone().with_max_connections(1)).await;
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT status, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS u, \
                 (SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'tasks_stamp') AS enabled FROM tasks",
            ))
            .await
            .unwrap()
            .unwrap();
        let status: String = row.try_get("", "status").unwrap();
        let updated: String = row.try_get("", "u").unwrap();
        let enabled: String = row.try_get("", "enabled").unwrap();
        db.close().await.unwrap();
        assert_eq!(status, "Pending", "the backfill ran");
        assert_eq!(updated, "2024-01-02 00:00:00", "adoption rewrote updated_at through the draft's trigger");
        assert_eq!(enabled, "O", "the draft's trigger is left as it was");
    })
    .await;
}
