//! Raw SQL from `dal` alone: the value mapping on the way in, rows on the way out, and the
//! library's errors, the same on both backends.

use dal::DalError;
use dal::prelude::*;
use dal::sql::Value;
use parity_tests::parity_test;

/// `sql` with `$n` placeholders, in this backend's form.
fn placeholders(backend: Backend, sql: &str) -> String {
    match backend {
        Backend::Postgres => sql.to_owned(),
        Backend::Sqlite => {
            let mut out = sql.to_owned();
            for n in (1..10).rev() {
                out = out.replace(&format!("${n}"), "?");
            }
            out
        }
    }
}

parity_test!(async fn raw_sql_binds_ids_and_maps_errors_like_the_repositories(t) {
    let user = t.db.users().create(NewUser::new().email("raw@example.com")).await.unwrap();
    let project = t.db.projects().create(NewProject::new(user.id, "p")).await.unwrap();
    let task = t
        .db
        .tasks()
        .create(NewTask::queued(project.id, "render", serde_json::json!({})))
        .await
        .unwrap();

    let update = placeholders(t.backend(), "UPDATE tasks SET output_location = $1 WHERE project_id = $2");
    let changed = t
        .db
        .execute_sql(&update, vec![Value::from("s3://raw"), Value::from(project.id)])
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let read: Task = t.db.tasks().get(task.id).await.unwrap();
    assert_eq!(read.output_location.as_deref(), Some("s3://raw"));
    assert_eq!(read.row_version, 2, "the trigger moved the version");

    let select = placeholders(t.backend(), "SELECT id, output_location FROM tasks WHERE id = $1");
    let rows = t.db.query_sql(&select, vec![Value::from(task.id)]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].try_get::<Id>("", "id").unwrap(), task.id);

    let insert = placeholders(t.backend(), "INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3)");
    let duplicate = t
        .db
        .execute_sql(
            &insert,
            vec![Value::from(Id::new()), Value::from("raw@example.com"), Value::from(user.created_at)],
        )
        .await;
    assert!(matches!(duplicate, Err(DalError::Conflict { .. })), "{duplicate:?}");
});

#[test]
fn backend_and_app_env_parse_from_their_names() {
    assert_eq!("sqlite".parse::<Backend>().unwrap(), Backend::Sqlite);
    assert_eq!(" POSTGRES ".parse::<Backend>().unwrap(), Backend::Postgres);
    assert!(matches!(
        "mysql".parse::<Backend>(),
        Err(dal::ConfigError::UnknownBackend { .. })
    ));
    for backend in [Backend::Sqlite, Backend::Postgres] {
        assert_eq!(backend.to_string().parse::<Backend>().unwrap(), backend);
    }
}

#[test]
fn id_lists_compare_with_ids() {
    let (a, b) = (Id::new(), Id::new());
    let list: IdList = [a, b].into_iter().collect();
    assert_eq!(list, [a, b]);
    assert!(list.contains(&a));
    assert_eq!(list.iter().copied().collect::<Vec<Id>>(), vec![a, b]);
}
