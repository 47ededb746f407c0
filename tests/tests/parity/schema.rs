//! The live schema is the one the design's type-mapping table describes, on each backend.

use dal::Backend;
use parity_tests::{TestDb, parity_test};
use sea_orm::{ConnectionTrait, EntityTrait, Statement};

async fn rows(t: &TestDb, sql: &str) -> Vec<sea_orm::QueryResult> {
    t.db.query_all_raw(Statement::from_string(t.db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// (table, column, what the design says it is)
const COLUMNS: &[(&str, &str, &str)] = &[
    ("users", "id", "uuid"),
    ("users", "created_at", "timestamp"),
    ("projects", "id", "uuid"),
    ("projects", "user_id", "uuid"),
    ("projects", "created_at", "timestamp"),
    ("tasks", "id", "uuid"),
    ("tasks", "params", "json"),
    ("tasks", "dependant_on", "uuid list"),
    ("tasks", "created_at", "timestamp"),
    ("tasks", "updated_at", "timestamp"),
    ("tasks", "project_id", "uuid"),
    ("generations", "id", "uuid"),
    ("generations", "tasks", "uuid list"),
    ("generations", "created_at", "timestamp"),
    ("generations", "updated_at", "timestamp"),
    ("generations", "project_id", "uuid"),
    ("shots", "id", "uuid"),
    ("shots", "project_id", "uuid"),
    ("shot_generations", "id", "uuid"),
    ("shot_generations", "shot_id", "uuid"),
    ("shot_generations", "generation_id", "uuid"),
];

parity_test!(async fn column_types_follow_the_type_mapping(t) {
    for (table, column, kind) in COLUMNS {
        let (declared, expected) = match t.backend() {
            Backend::Postgres => {
                let sql = format!(
                    "SELECT data_type::text AS d, udt_name::text AS u FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name = '{table}' AND column_name = '{column}'"
                );
                let row = &rows(&t, &sql).await[0];
                let data_type: String = row.try_get("", "d").unwrap();
                let udt: String = row.try_get("", "u").unwrap();
                let expected = match *kind {
                    "uuid" => "uuid/uuid",
                    "uuid list" => "ARRAY/_uuid",
                    "json" => "jsonb/jsonb",
                    "timestamp" => "timestamp with time zone/timestamptz",
                    other => unreachable!("{other}"),
                };
                (format!("{data_type}/{udt}"), expected)
            }
            Backend::Sqlite => {
                let sql = format!("SELECT type AS d FROM pragma_table_info('{table}') WHERE name = '{column}'");
                let declared: String = rows(&t, &sql).await[0].try_get("", "d").unwrap();
                (declared, "TEXT")
            }
        };
        assert_eq!(declared, expected, "{table}.{column} ({kind})");
    }
});

parity_test!(async fn stored_values_have_the_designed_representation(t) {
    let tree = crate::fixtures::tree(&t.db).await;
    match t.backend() {
        Backend::Sqlite => {
            let row = &rows(&t, "SELECT typeof(id) AS id_type, typeof(project_id) AS fk_type, \
                json_valid(params) AS params_ok, json_type(dependant_on) AS deps_type, \
                dependant_on AS deps, created_at AS created FROM tasks").await[0];
            assert_eq!(row.try_get::<String>("", "id_type").unwrap(), "text");
            assert_eq!(row.try_get::<String>("", "fk_type").unwrap(), "text");
            assert_eq!(row.try_get::<i32>("", "params_ok").unwrap(), 1);
            assert_eq!(row.try_get::<String>("", "deps_type").unwrap(), "array");
            let deps: String = row.try_get("", "deps").unwrap();
            assert_eq!(deps, format!("[\"{}\"]", tree.task.dependant_on[0]));
            let created: String = row.try_get("", "created").unwrap();
            assert_eq!(created.len(), "2026-01-01T00:00:00.000000Z".len(), "{created}");
            assert!(created.ends_with('Z') && created.as_bytes()[10] == b'T', "{created}");
            let id: String = rows(&t, "SELECT id AS v FROM tasks").await[0].try_get("", "v").unwrap();
            assert_eq!(id, tree.task.id.to_string(), "canonical lowercase hyphenated");
        }
        Backend::Postgres => {
            let row = &rows(&t, "SELECT pg_typeof(id)::text AS id_type, pg_typeof(dependant_on)::text AS deps_type, \
                jsonb_typeof(params) AS params_type FROM tasks").await[0];
            assert_eq!(row.try_get::<String>("", "id_type").unwrap(), "uuid");
            assert_eq!(row.try_get::<String>("", "deps_type").unwrap(), "uuid[]");
            assert_eq!(row.try_get::<String>("", "params_type").unwrap(), "object");
        }
    }
    // Whatever the storage, every value reads back equal to what was written.
    let task = entities::task::Entity::find_by_id(tree.task.id).one(&t.db).await.unwrap().unwrap();
    assert_eq!(task, tree.task);
    let generation = entities::generation::Entity::find_by_id(tree.generation.id).one(&t.db).await.unwrap().unwrap();
    assert_eq!(generation, tree.generation);
});

parity_test!(async fn database_defaults_fill_ids_timestamps_and_lists(t) {
    // Another writer that leaves ids and timestamps to the database gets the same shapes.
    let user = crate::fixtures::user(&t.db).await;
    t.db.execute_raw(Statement::from_sql_and_values(
        t.db.get_database_backend(),
        match t.backend() {
            Backend::Sqlite => "INSERT INTO projects (name, user_id) VALUES (?, ?)",
            Backend::Postgres => "INSERT INTO projects (name, user_id) VALUES ($1, $2)",
        },
        ["defaults".into(), user.id.into()],
    ))
    .await
    .unwrap();
    let project = entities::project::Entity::find().one(&t.db).await.unwrap().expect("a project");
    assert_eq!(project.id.get_version_num(), 4, "a random uuid from the database default");
    let age = chrono::Utc::now() - project.created_at;
    assert!(age.num_seconds().abs() < 60, "created_at defaults to now: {}", project.created_at);
});
