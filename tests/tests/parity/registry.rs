//! The guard of "one declaration of a table drives everything": the entities (through the
//! schema registry), the live tables, the capture triggers and the owner policies agree
//! for every table, and a change to any one of them alone is reported.

use dal::Backend;
use entities::schema::{self, Column, Kind, Role, Table};
use migration::SchemaManager;
use migration::registry;
use migration_history::synced;
use parity_tests::{TestDb, parity_test};
use sea_orm::ConnectionTrait;

/// The registry as the entities give it, with `tasks` edited by `edit`.
fn registry_with(edit: impl Fn(&mut Table)) -> Vec<Table> {
    let mut tables = schema::tables().to_vec();
    edit(tables.iter_mut().find(|t| t.name == "tasks").unwrap());
    tables
}

/// A new data column, as an entity field would declare it.
fn priority(table: &mut Table) {
    table.columns.push(Column {
        name: "priority",
        kind: Kind::Int,
        nullable: true,
        role: Role::Data,
    });
}

/// A database of its own (one connection: SQLite DDL on a pooled connection can meet a
/// stale catalog on another).
async fn single(t: &TestDb) -> dal::Database {
    t.connect(&t.config.clone().with_max_connections(1)).await
}

/// The comparison runs in a transaction, as it must (one session through a pooler).
async fn differences(db: &dal::Database, tables: &[Table]) -> Vec<String> {
    let uow = db.begin().await.unwrap();
    let found = registry::differences(&uow, tables)
        .await
        .expect("the comparison runs");
    uow.rollback().await.unwrap();
    found
}

fn mentions(problems: &[String], words: &[&str]) -> bool {
    problems.iter().any(|p| words.iter().all(|w| p.contains(w)))
}

parity_test!(async fn entities_live_tables_and_capture_triggers_agree(t) {
    let db = single(&t).await;
    assert_eq!(differences(&db, schema::tables()).await, Vec::<String>::new());

    // The entity changed alone: a field the database does not have.
    let problems = differences(&db, &registry_with(priority)).await;
    assert!(mentions(&problems, &["tasks.priority", "not in the database"]), "{problems:#?}");

    // The database changed alone: a column no entity declares.
    db.execute_unprepared("ALTER TABLE tasks ADD COLUMN priority integer").await.unwrap();
    let problems = differences(&db, schema::tables()).await;
    assert!(mentions(&problems, &["tasks.priority", "not in the entity"]), "{problems:#?}");

    // Both changed, the capture triggers not rebuilt: on SQLite the new column would never
    // reach the outbox. (Postgres stamps whole rows: nothing lists columns there.)
    let both = registry_with(priority);
    let problems = differences(&db, &both).await;
    match t.backend() {
        Backend::Sqlite => assert!(
            mentions(&problems, &["tasks.priority", "not captured by tasks_capture_insert"])
                && mentions(&problems, &["tasks.priority", "not captured by tasks_capture_update"]),
            "{problems:#?}"
        ),
        Backend::Postgres => assert_eq!(problems, Vec::<String>::new()),
    }

    // What a migration does: rebuild them for the columns the table has now.
    synced::rebuild_capture(&SchemaManager::new(db.sea_orm_connection()), "tasks").await.unwrap();
    assert_eq!(differences(&db, &both).await, Vec::<String>::new());

    // The triggers changed alone: rebuilt without a column the registry has. On Postgres,
    // the stamp trigger dropped.
    match t.backend() {
        Backend::Sqlite => {
            let columns: Vec<String> = both[2].data_columns().filter(|c| *c != "status").map(str::to_owned).collect();
            db.execute_unprepared("DROP TRIGGER tasks_capture_insert").await.unwrap();
            let [insert, _, _] = synced::capture_triggers("tasks", &columns);
            db.execute_unprepared(&insert).await.unwrap();
            let problems = differences(&db, &both).await;
            assert!(mentions(&problems, &["tasks.status", "not captured by tasks_capture_insert"]), "{problems:#?}");
            assert!(!mentions(&problems, &["tasks_capture_update"]), "{problems:#?}");
        }
        Backend::Postgres => {
            db.execute_unprepared("DROP TRIGGER tasks_sync_stamp ON tasks").await.unwrap();
            let problems = differences(&db, &both).await;
            assert!(mentions(&problems, &["tasks_sync_stamp", "missing"]), "{problems:#?}");
            assert!(!mentions(&problems, &["tasks_sync_notify"]), "{problems:#?}");
            db.execute_unprepared("DROP TRIGGER tasks_sync_notify_updated ON tasks").await.unwrap();
            let problems = differences(&db, &both).await;
            assert!(mentions(&problems, &["tasks_sync_notify_updated", "missing"]), "{problems:#?}");
        }
    }
    db.close().await.unwrap();
});

parity_test!(async fn parents_in_the_entities_match_the_foreign_keys(t) {
    let db = single(&t).await;
    // An entity that forgot a relation, and one that claims a foreign key the table lacks.
    let mut tables = schema::tables().to_vec();
    let links = tables.iter_mut().find(|t| t.name == "shot_generations").unwrap();
    links.parents.retain(|p| p.table != "generations");
    let problems = differences(&db, &tables).await;
    assert!(mentions(&problems, &["shot_generations.generation_id references generations in the database"]), "{problems:#?}");
    db.close().await.unwrap();
});

parity_test!(async fn the_owner_policies_follow_the_registrys_parents(t) {
    let db = single(&t).await;
    if t.backend() == Backend::Sqlite {
        // SQLite has no row-level security; the scoped repositories are its guard.
        return;
    }
    // A policy rewritten by hand to a rule the registry does not give.
    db.execute_unprepared(
        "ALTER POLICY tasks_owner ON tasks USING (project_id IS NOT NULL) WITH CHECK (project_id IS NOT NULL)",
    )
    .await
    .unwrap();
    let problems = differences(&db, schema::tables()).await;
    assert!(mentions(&problems, &["tasks: policy tasks_owner is", "the registry's parent path gives"]), "{problems:#?}");

    // Rebuilt from the registry's path, it agrees again.
    let tasks = schema::table("tasks").unwrap();
    let path = registry::owner_path(schema::tables(), tasks);
    synced::owner_policy(&SchemaManager::new(db.sea_orm_connection()), "tasks", &path).await.unwrap();
    assert_eq!(differences(&db, schema::tables()).await, Vec::<String>::new());

    // Only the check on written rows loosened: readers see the same rows, but a writer
    // could put a row under another user's project.
    db.execute_unprepared("ALTER POLICY generations_owner ON generations WITH CHECK (true)").await.unwrap();
    let problems = differences(&db, schema::tables()).await;
    assert!(mentions(&problems, &["generations: policy generations_owner is", "WITH CHECK true"]), "{problems:#?}");

    // A synced table whose deletes no longer reach replicas.
    db.execute_unprepared("DROP TRIGGER tasks_sync_removal ON tasks").await.unwrap();
    db.execute_unprepared("DROP TRIGGER shots_sync_moved ON shots").await.unwrap();
    db.execute_unprepared(
        "CREATE TRIGGER shots_sync_moved AFTER UPDATE OF name ON shots FOR EACH ROW EXECUTE FUNCTION dal_sync_moved_shots()",
    )
    .await
    .unwrap();
    let problems = differences(&db, schema::tables()).await;
    assert!(mentions(&problems, &["tasks: trigger tasks_sync_removal is missing"]), "{problems:#?}");
    assert!(mentions(&problems, &["shots: trigger shots_sync_moved watches name", "first parent is project_id"]), "{problems:#?}");
    for name in ["tasks", "shots"] {
        let path = registry::owner_path(schema::tables(), schema::table(name).unwrap());
        synced::removal_triggers(&SchemaManager::new(db.sea_orm_connection()), name, &path).await.unwrap();
    }
    assert!(!mentions(&differences(&db, schema::tables()).await, &["sync_"]));

    // Live updates: a notify trigger gone, the first version's trigger (which woke every
    // client) back, a notify function naming the wrong owners.
    db.execute_unprepared("DROP TRIGGER generations_sync_notify_deleted ON generations").await.unwrap();
    db.execute_unprepared(
        "CREATE TRIGGER tasks_sync_notify AFTER INSERT ON tasks FOR EACH STATEMENT EXECUTE FUNCTION dal_sync_notify_tasks()",
    )
    .await
    .unwrap();
    for sql in migration_history::notify::notify_statements("shots", &[]) {
        db.execute_unprepared(&sql).await.unwrap();
    }
    db.execute_unprepared("ALTER FUNCTION dal_sync_notify_generations() SECURITY INVOKER").await.unwrap();
    let problems = differences(&db, schema::tables()).await;
    assert!(mentions(&problems, &["generations: the live-update trigger generations_sync_notify_deleted is missing"]), "{problems:#?}");
    assert!(mentions(&problems, &["tasks: trigger tasks_sync_notify wakes every client"]), "{problems:#?}");
    assert!(mentions(&problems, &["shots: dal_sync_notify_shots() does not follow the registry's parent path"]), "{problems:#?}");
    assert!(mentions(&problems, &["generations: dal_sync_notify_generations() runs with the writer's rights"]), "{problems:#?}");
    for name in ["generations", "tasks", "shots"] {
        let path = registry::owner_path(schema::tables(), schema::table(name).unwrap());
        synced::owner_policy(&SchemaManager::new(db.sea_orm_connection()), name, &path).await.unwrap();
    }
    assert!(!mentions(&differences(&db, schema::tables()).await, &["notify"]));

    db.execute_unprepared("DROP POLICY shots_owner ON shots").await.unwrap();
    let problems = differences(&db, schema::tables()).await;
    assert!(mentions(&problems, &["shots_owner", "missing"]), "{problems:#?}");
    db.close().await.unwrap();
});

parity_test!(async fn a_new_table_made_synced_agrees_with_its_registry_entry(t) {
    use migration::columns::Columns;
    use migration::{Alias, Table as Ddl};
    use sea_orm::TransactionTrait;
    let db = single(&t).await;
    // In one transaction, as a migration runs: through a transaction-mode pooler a
    // statement prepared outside one may meet another server session.
    let ddl = db.sea_orm_connection().begin().await.unwrap();
    let manager = SchemaManager::new(&ddl);
    let c = Columns::new(db.sea_orm_connection().get_database_backend(), "notes");
    manager
        .create_table(
            Ddl::create()
                .table(Alias::new("notes"))
                .col(c.id())
                .col(c.text("body"))
                .col(c.uuid("task_id"))
                .foreign_key(&mut c.cascade_to("task_id", "tasks"))
                .to_owned(),
        )
        .await
        .unwrap();
    manager.create_index(c.index_on("task_id")).await.unwrap();
    synced::make_synced(&manager, "notes").await.unwrap();
    let path = [("task_id", "tasks"), ("project_id", "projects"), ("user_id", "users")];
    synced::owner_policy(&manager, "notes", &path).await.unwrap();
    ddl.commit().await.unwrap();

    // The entry an entity `notes` (id, body, task_id, row_version; belongs to tasks)
    // would give.
    let column = |name, kind, role| Column { name, kind, nullable: false, role };
    let mut columns = vec![
        column("id", Kind::Uuid, Role::Key),
        column("body", Kind::Text, Role::Data),
        column("task_id", Kind::Uuid, Role::Data),
        column("row_version", Kind::Int, Role::Local),
    ];
    columns.extend(schema::SYNC_METADATA.iter().map(|&(name, kind, nullable, role)| Column { name, kind, nullable, role }));
    let notes = Table {
        name: "notes",
        columns,
        parents: vec![schema::Parent { column: "task_id", table: "tasks" }],
    };
    let mut tables = schema::tables().to_vec();
    tables.push(notes);
    assert_eq!(registry::owner_path(&tables, tables.last().unwrap()), path);
    assert_eq!(differences(&db, &tables).await, Vec::<String>::new());
    db.close().await.unwrap();
});
