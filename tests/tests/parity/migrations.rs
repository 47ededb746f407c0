//! The migration history and its commands, on both backends.

use dal::{AppEnv, Backend, DalError};
use migration::cli::{CliError, MigrateCommand as Command, MigrationState, execute};
use parity_tests::{TestDb, parity_test};
use sea_orm::{ConnectionTrait, EntityTrait, Statement};

/// The schema's tables, as the registry (the entities) has them.
fn table_names() -> Vec<&'static str> {
    entities::schema::tables().iter().map(|t| t.name).collect()
}

/// The schema's tables that exist right now, sorted.
async fn existing_tables(t: &TestDb) -> Vec<String> {
    let sql = match t.backend() {
        Backend::Sqlite => "SELECT name AS t FROM sqlite_master WHERE type = 'table'",
        Backend::Postgres => {
            "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = 'public'"
        }
    };
    let rows =
        t.db.query_all_raw(Statement::from_string(t.db.get_database_backend(), sql))
            .await
            .expect("list tables");
    let mut names: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "t").unwrap())
        .filter(|name| table_names().contains(&name.as_str()))
        .collect();
    names.sort();
    names
}

fn all_tables() -> Vec<String> {
    let mut names: Vec<String> = table_names().iter().map(|s| s.to_string()).collect();
    names.sort();
    names
}

fn applied(states: &[MigrationState]) -> usize {
    states.iter().filter(|s| s.applied).count()
}

parity_test!(empty async fn up_down_to_zero_and_up_again_with_status_at_each_step(t) {
    let total = execute(&t.config, Command::Status, false).await.unwrap().len();
    assert!(total >= 1);

    let states = execute(&t.config, Command::Status, false).await.unwrap();
    assert_eq!(applied(&states), 0, "a new database has nothing applied: {states:?}");
    assert!(existing_tables(&t).await.is_empty());

    let states = execute(&t.config, Command::Up { num: None }, false).await.unwrap();
    assert_eq!(applied(&states), total, "{states:?}");
    assert_eq!(existing_tables(&t).await, all_tables());

    let states = execute(&t.config, Command::Down { num: total as u32 }, true).await.unwrap();
    assert_eq!(applied(&states), 0, "{states:?}");
    assert!(existing_tables(&t).await.is_empty());

    let states = execute(&t.config, Command::Up { num: Some(1) }, false).await.unwrap();
    assert_eq!(applied(&states), 1, "{states:?}");
    assert!(states[0].applied);

    let states = execute(&t.config, Command::Up { num: None }, false).await.unwrap();
    assert_eq!(applied(&states), total, "{states:?}");
    assert_eq!(existing_tables(&t).await, all_tables());
    assert_eq!(
        t.db.applied_migrations().await.unwrap(),
        states.iter().map(|s| s.name.clone()).collect::<Vec<_>>()
    );
});

parity_test!(empty async fn fresh_refresh_and_reset(t) {
    let confirmed = true;
    execute(&t.config, Command::Up { num: None }, false).await.unwrap();
    let tree = crate::fixtures::tree(&t.db).await;

    let states = execute(&t.config, Command::Refresh, confirmed).await.unwrap();
    assert!(states.iter().all(|s| s.applied));
    assert_eq!(existing_tables(&t).await, all_tables());
    let gone = entities::user::Entity::find_by_id(tree.user.id).one(&t.db).await.unwrap();
    assert!(gone.is_none(), "refresh rolled back and re-applied, so the rows are gone");

    crate::fixtures::tree(&t.db).await;
    let states = execute(&t.config, Command::Fresh, confirmed).await.unwrap();
    assert!(states.iter().all(|s| s.applied));
    assert_eq!(existing_tables(&t).await, all_tables());

    let states = execute(&t.config, Command::Reset, confirmed).await.unwrap();
    assert_eq!(applied(&states), 0);
    assert!(existing_tables(&t).await.is_empty());
});

parity_test!(empty async fn destructive_commands_on_a_web_database_need_the_flag(t) {
    execute(&t.config, Command::Up { num: None }, false).await.unwrap();
    for command in [Command::Down { num: 1 }, Command::Fresh, Command::Refresh, Command::Reset] {
        let result = execute(&t.config, command, false).await;
        match t.config.app_env {
            AppEnv::Web => {
                let err = result.expect_err("refused without the flag");
                assert!(matches!(err, CliError::Refused { .. }), "{err}");
                assert!(err.to_string().contains("--dangerously-drop-web-data"), "{err}");
                assert_eq!(existing_tables(&t).await, all_tables(), "{} changed nothing", command.name());
            }
            AppEnv::Local => {
                result.unwrap_or_else(|e| panic!("{} runs on a local database: {e}", command.name()));
                execute(&t.config, Command::Up { num: None }, false).await.unwrap();
            }
        }
    }
});

parity_test!(empty async fn a_failing_migration_leaves_nothing_behind(t) {
    // A table in the way makes the initial migration fail halfway (after `users`,
    // `projects`, `tasks` and `generations` are created).
    t.db.execute_unprepared("CREATE TABLE shots (something integer)").await.unwrap();
    let err = t.db.migrate().await.expect_err("the migration cannot create shots");
    assert!(matches!(err, DalError::Migration { .. } | DalError::Database { .. }), "{err:?}");
    assert!(existing_tables(&t).await == vec!["shots".to_owned()], "only the obstacle remains");
    assert!(t.db.applied_migrations().await.unwrap().is_empty());

    t.db.execute_unprepared("DROP TABLE shots").await.unwrap();
    t.db.migrate().await.unwrap();
    assert_eq!(existing_tables(&t).await, all_tables());
});

parity_test!(empty async fn concurrent_migrations_apply_once(t) {
    let pools: Vec<dal::Database> = futures::future::join_all((0..4).map(|_| t.connect(&t.config))).await;
    let results = futures::future::join_all(pools.iter().map(|db| db.migrate())).await;
    for result in results {
        result.expect("every concurrent migrate succeeds");
    }
    assert_eq!(existing_tables(&t).await, all_tables());
    let total = execute(&t.config, Command::Status, false).await.unwrap();
    assert_eq!(t.db.applied_migrations().await.unwrap().len(), total.len());
});

parity_test!(empty async fn migrate_on_connect_applies_pending_migrations(t) {
    let db = t.connect(&t.config.clone().with_migrate_on_connect(true)).await;
    assert!(!db.applied_migrations().await.unwrap().is_empty());
    assert_eq!(existing_tables(&t).await, all_tables());
});
