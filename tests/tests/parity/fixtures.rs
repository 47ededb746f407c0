//! Rows for tests, inserted with plain SeaORM active models through `&Database`, which
//! exercises the value mapping without the repositories.

use chrono::Utc;
use dal::Database;
use entities::{Id, IdList, TaskStatus};
use sea_orm::{ActiveModelTrait, Set};

/// A user, a project of theirs, and one row in every other table hanging off the project.
pub struct Tree {
    pub user: entities::user::Model,
    pub project: entities::project::Model,
    pub task: entities::task::Model,
    pub generation: entities::generation::Model,
    pub shot: entities::shot::Model,
    pub link: entities::shot_generation::Model,
}

pub async fn user(db: &Database) -> entities::user::Model {
    entities::user::ActiveModel {
        row_version: sea_orm::ActiveValue::Set(1),
        id: Set(Id::new()),
        email: Set(Some(format!("{}@example.com", Id::new()))),
        display_name: Set(Some("Test User".into())),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .expect("insert user")
}

pub async fn tree(db: &Database) -> Tree {
    let user = user(db).await;
    let now = Utc::now();
    let project = entities::project::ActiveModel {
        row_version: sea_orm::ActiveValue::Set(1),
        id: Set(Id::new()),
        name: Set("Project".into()),
        user_id: Set(user.id),
        created_at: Set(now),
    }
    .insert(db)
    .await
    .expect("insert project");
    let dependency = Id::new();
    let task = entities::task::ActiveModel {
        row_version: sea_orm::ActiveValue::Set(1),
        id: Set(Id::new()),
        task_type: Set("render".into()),
        params: Set(serde_json::json!({"frames": [1, 2, 3], "title": "ünïcode ✓"})),
        status: Set(TaskStatus::Queued),
        dependant_on: Set(IdList::from(vec![dependency.uuid()])),
        output_location: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        project_id: Set(project.id),
        // The lease columns take their defaults.
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert task");
    let generation = entities::generation::ActiveModel {
        row_version: sea_orm::ActiveValue::Set(1),
        id: Set(Id::new()),
        tasks: Set(IdList::from(vec![task.id.uuid()])),
        location: Set(Some("s3://bucket/key".into())),
        generation_type: Set(Some("image".into())),
        created_at: Set(now),
        updated_at: Set(now),
        project_id: Set(project.id),
    }
    .insert(db)
    .await
    .expect("insert generation");
    let shot = entities::shot::ActiveModel {
        row_version: sea_orm::ActiveValue::Set(1),
        id: Set(Id::new()),
        name: Set("Shot".into()),
        created_at: Set(now),
        updated_at: Set(now),
        project_id: Set(project.id),
    }
    .insert(db)
    .await
    .expect("insert shot");
    let link = entities::shot_generation::ActiveModel {
        row_version: sea_orm::ActiveValue::Set(1),
        id: Set(Id::new()),
        shot_id: Set(shot.id),
        generation_id: Set(generation.id),
        position: Set(0),
    }
    .insert(db)
    .await
    .expect("insert shot_generation");
    Tree {
        user,
        project,
        task,
        generation,
        shot,
        link,
    }
}
