//! "Plain SeaORM as usually written": `sea_orm::Database::connect(url)` with its default
//! options, and the usual calls (`find_by_id`, `ActiveModel::insert`, `insert_many`).
//! On Postgres the workspace's entities work as they are; on SQLite plain SeaORM cannot
//! bind a `Uuid` as text, so the usual SQLite entity keeps ids and lists as `String`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entities::{Id, IdList, TaskStatus};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use uuid::Uuid;

/// A task row as the benchmark writes it.
#[derive(Clone, Debug)]
pub struct Row {
    pub id: Uuid,
    pub project_id: Uuid,
    pub task_type: String,
    pub params: serde_json::Value,
    pub status: TaskStatus,
    pub created_at: DateTime<Utc>,
}

/// The operations measured, as plain SeaORM writes them.
#[async_trait]
pub trait Plain: Send + Sync {
    async fn get(&self, id: Uuid) -> usize;
    async fn page(&self, project: Uuid) -> usize;
    async fn insert(&self, row: Row);
    async fn update(&self, id: Uuid, task_type: &str);
    async fn delete(&self, id: Uuid);
    async fn insert_many(&self, rows: Vec<Row>, chunk: usize);
}

pub struct PlainPostgres(pub DatabaseConnection);

fn pg_model(r: Row) -> entities::task::ActiveModel {
    entities::task::ActiveModel {
        row_version: Set(1),
        id: Set(Id(r.id)),
        task_type: Set(r.task_type),
        params: Set(r.params),
        status: Set(r.status),
        dependant_on: Set(IdList::new()),
        output_location: Set(None),
        created_at: Set(r.created_at),
        updated_at: Set(r.created_at),
        project_id: Set(Id(r.project_id)),
        // The lease columns take their defaults.
        ..Default::default()
    }
}

#[async_trait]
impl Plain for PlainPostgres {
    async fn get(&self, id: Uuid) -> usize {
        entities::task::Entity::find_by_id(Id(id))
            .one(&self.0)
            .await
            .unwrap()
            .iter()
            .count()
    }
    async fn page(&self, project: Uuid) -> usize {
        use entities::task::Column;
        entities::task::Entity::find()
            .filter(Column::ProjectId.eq(Id(project)))
            .filter(Column::Status.is_in([TaskStatus::Queued, TaskStatus::Pending]))
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::Id)
            .all(&self.0)
            .await
            .unwrap()
            .len()
    }
    async fn insert(&self, row: Row) {
        pg_model(row).insert(&self.0).await.unwrap();
    }
    async fn update(&self, id: Uuid, task_type: &str) {
        entities::task::ActiveModel {
            id: sea_orm::ActiveValue::Unchanged(Id(id)),
            task_type: Set(task_type.to_owned()),
            ..Default::default()
        }
        .update(&self.0)
        .await
        .unwrap();
    }
    async fn delete(&self, id: Uuid) {
        entities::task::Entity::delete_by_id(Id(id))
            .exec(&self.0)
            .await
            .unwrap();
    }
    async fn insert_many(&self, rows: Vec<Row>, chunk: usize) {
        let tx = self.0.begin().await.unwrap();
        for part in rows.chunks(chunk) {
            entities::task::Entity::insert_many(part.iter().cloned().map(pg_model))
                .exec(&tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
}

/// The usual SQLite entity: text ids and a JSON text list.
pub mod sqlite_task {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "tasks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub task_type: String,
        pub params: Json,
        pub status: String,
        pub dependant_on: String,
        pub output_location: Option<String>,
        pub created_at: String,
        pub updated_at: String,
        pub project_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub struct PlainSqlite(pub DatabaseConnection);

fn sqlite_model(r: Row) -> sqlite_task::ActiveModel {
    let at = r.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    sqlite_task::ActiveModel {
        id: Set(r.id.to_string()),
        task_type: Set(r.task_type),
        params: Set(r.params),
        status: Set(r.status.as_str().to_owned()),
        dependant_on: Set("[]".to_owned()),
        output_location: Set(None),
        created_at: Set(at.clone()),
        updated_at: Set(at),
        project_id: Set(r.project_id.to_string()),
    }
}

#[async_trait]
impl Plain for PlainSqlite {
    async fn get(&self, id: Uuid) -> usize {
        sqlite_task::Entity::find_by_id(id.to_string())
            .one(&self.0)
            .await
            .unwrap()
            .iter()
            .count()
    }
    async fn page(&self, project: Uuid) -> usize {
        use sqlite_task::Column;
        sqlite_task::Entity::find()
            .filter(Column::ProjectId.eq(project.to_string()))
            .filter(Column::Status.is_in(["Queued", "Pending"]))
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::Id)
            .all(&self.0)
            .await
            .unwrap()
            .len()
    }
    async fn insert(&self, row: Row) {
        sqlite_model(row).insert(&self.0).await.unwrap();
    }
    async fn update(&self, id: Uuid, task_type: &str) {
        sqlite_task::ActiveModel {
            id: sea_orm::ActiveValue::Unchanged(id.to_string()),
            task_type: Set(task_type.to_owned()),
            ..Default::default()
        }
        .update(&self.0)
        .await
        .unwrap();
    }
    async fn delete(&self, id: Uuid) {
        sqlite_task::Entity::delete_by_id(id.to_string())
            .exec(&self.0)
            .await
            .unwrap();
    }
    async fn insert_many(&self, rows: Vec<Row>, chunk: usize) {
        let tx = self.0.begin().await.unwrap();
        for part in rows.chunks(chunk) {
            sqlite_task::Entity::insert_many(part.iter().cloned().map(sqlite_model))
                .exec(&tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
}
