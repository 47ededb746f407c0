//! The database itself enforces the schema's rules, with the same error variant on both.

use dal::DalError;
use entities::{Id, TaskStatus};
use parity_tests::parity_test;
use sea_orm::sea_query::{Alias, Query};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, ModelTrait, PaginatorTrait, Set};

parity_test!(async fn a_bad_status_is_rejected_by_the_database(t) {
    let tree = crate::fixtures::tree(&t.db).await;
    // Raw SQL, so only the CHECK constraint stands between the value and the table.
    let insert = Query::insert()
        .into_table(Alias::new("tasks"))
        .columns(["id", "task_type", "params", "status", "project_id"].map(Alias::new))
        .values_panic([
            Id::new().into(),
            "render".into(),
            serde_json::json!({}).into(),
            "Done".into(),
            tree.project.id.into(),
        ])
        .to_owned();
    let err = DalError::from(t.db.execute(&insert).await.expect_err("CHECK refuses 'Done'"));
    assert!(matches!(err, DalError::InvalidValue { .. }), "{err:?}");

    for status in TaskStatus::ALL {
        let mut task: entities::task::ActiveModel = tree.task.clone().into();
        task.status = Set(status);
        task.update(&t.db).await.unwrap_or_else(|e| panic!("{status} is allowed: {e}"));
    }
});

parity_test!(async fn a_child_without_its_parent_is_rejected(t) {
    let now = chrono::Utc::now();
    let orphan = entities::project::ActiveModel {
        row_version: sea_orm::ActiveValue::Set(1),
        id: Set(Id::new()),
        name: Set("orphan".into()),
        user_id: Set(Id::new()),
        created_at: Set(now),
    };
    let err = DalError::from(orphan.insert(&t.db).await.expect_err("no such user"));
    assert!(matches!(err, DalError::MissingParent { .. }), "{err:?}");
    assert_eq!(entities::project::Entity::find().count(&t.db).await.unwrap(), 0);
});

parity_test!(async fn a_duplicate_email_is_a_conflict(t) {
    let user = crate::fixtures::user(&t.db).await;
    let twin = entities::user::ActiveModel {
        row_version: sea_orm::ActiveValue::Set(1),
        id: Set(Id::new()),
        email: user.email.clone().map(Some).map(Set).unwrap(),
        display_name: Set(None),
        created_at: Set(chrono::Utc::now()),
    };
    let err = DalError::from(twin.insert(&t.db).await.expect_err("email is unique"));
    assert!(matches!(err, DalError::Conflict { .. }), "{err:?}");
});

parity_test!(async fn deleting_a_project_removes_everything_under_it(t) {
    let tree = crate::fixtures::tree(&t.db).await;
    let other = crate::fixtures::tree(&t.db).await;
    tree.project.clone().delete(&t.db).await.unwrap();

    use entities::*;
    assert_eq!(task::Entity::find().count(&t.db).await.unwrap(), 1);
    assert_eq!(generation::Entity::find().count(&t.db).await.unwrap(), 1);
    assert_eq!(shot::Entity::find().count(&t.db).await.unwrap(), 1);
    assert_eq!(shot_generation::Entity::find().count(&t.db).await.unwrap(), 1);
    assert!(task::Entity::find_by_id(tree.task.id).one(&t.db).await.unwrap().is_none());
    assert!(shot::Entity::find_by_id(tree.shot.id).one(&t.db).await.unwrap().is_none());
    assert!(shot_generation::Entity::find_by_id(tree.link.id).one(&t.db).await.unwrap().is_none());
    assert!(task::Entity::find_by_id(other.task.id).one(&t.db).await.unwrap().is_some());
    assert!(user::Entity::find_by_id(tree.user.id).one(&t.db).await.unwrap().is_some(), "the owner stays");

    // And a user takes their projects with them.
    other.user.delete(&t.db).await.unwrap();
    assert_eq!(project::Entity::find().count(&t.db).await.unwrap(), 0);
    assert_eq!(shot_generation::Entity::find().count(&t.db).await.unwrap(), 0);
});

parity_test!(async fn sqlite_text_shapes_are_enforced_like_postgres_types(t) {
    // A uuid that is not canonical, JSON that is not JSON, a timestamp in another format:
    // Postgres refuses them by type, SQLite by CHECK; both give InvalidValue.
    let tree = crate::fixtures::tree(&t.db).await;
    let bad_rows: [(&str, sea_orm::Value); 3] = [
        ("id", "NOT-A-UUID".into()),
        ("params", "{not json".into()),
        ("created_at", "yesterday".into()),
    ];
    for (column, value) in bad_rows {
        let mut values: Vec<sea_orm::Value> = vec![
            Id::new().into(),
            "render".into(),
            serde_json::json!({}).into(),
            tree.project.id.into(),
        ];
        let columns = ["id", "task_type", "params", "project_id"];
        let index = columns.iter().position(|c| *c == column);
        let mut cols: Vec<&str> = columns.to_vec();
        match index {
            Some(i) => values[i] = value,
            None => {
                cols.push(column);
                values.push(value);
            }
        }
        let insert = Query::insert()
            .into_table(Alias::new("tasks"))
            .columns(cols.iter().map(|c| Alias::new(*c)))
            .values_panic(values.into_iter().map(sea_orm::sea_query::Expr::val))
            .to_owned();
        let err = DalError::from(t.db.execute(&insert).await.expect_err(column));
        assert!(matches!(err, DalError::InvalidValue { .. }), "{column}: {err:?}");
    }
});
