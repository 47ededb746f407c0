//! A scratch database with the whole migration history applied: what the history
//! produces, to dump as DDL or to compare a live database with.
//!
//! SQLite: a file in a temporary directory. Postgres: a temporary *schema* in the
//! configured database (no `CREATE DATABASE` privilege needed, so it works on Supabase),
//! dropped afterwards. Behind a transaction-mode pooler, which takes no `search_path` at
//! start-up, the schema lives only inside one transaction that migrates, inspects and
//! drops it.

use std::str::FromStr;

use dal_config::{Config, DatabaseTarget};
use sea_orm_migration::sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sea_orm_migration::sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, SqlxPostgresConnector,
};

use crate::inspect::{Schema, inspect};
use crate::locked::{self, Route};
use crate::{Migrator, MigratorTrait, checksum};

/// The schema the migration history produces on the backend `like` points at.
pub async fn expected_schema(like: &Config) -> Result<Schema, DbErr> {
    migrated_schema(like, None).await
}

/// The schema the first `steps` migrations of the history produce (all of them with
/// `None`) on the backend `like` points at.
pub async fn migrated_schema(like: &Config, steps: Option<u32>) -> Result<Schema, DbErr> {
    if let (DatabaseTarget::Postgres { .. }, route @ Route::TransactionPooler { .. }) =
        (&like.target, Route::of(like))
    {
        return schema_in_one_transaction(like, route, Contents::Migrations(steps)).await;
    }
    let scratch = Scratch::create(like).await?;
    let result = async {
        Migrator::up(&scratch.db, steps).await?;
        checksum::record(&scratch.db).await?;
        inspect(&scratch.db).await
    }
    .await;
    scratch.remove().await?;
    result
}

/// The schema the SQL script `ddl` creates on an empty scratch database of the backend
/// `like` points at (unqualified names land in the scratch).
pub async fn schema_of(like: &Config, ddl: &str) -> Result<Schema, DbErr> {
    if let (DatabaseTarget::Postgres { .. }, route @ Route::TransactionPooler { .. }) =
        (&like.target, Route::of(like))
    {
        return schema_in_one_transaction(like, route, Contents::Ddl(ddl.to_owned())).await;
    }
    let scratch = Scratch::create(like).await?;
    let result = async {
        scratch.db.execute_unprepared(ddl).await?;
        inspect(&scratch.db).await
    }
    .await;
    scratch.remove().await?;
    result
}

/// What a scratch schema is filled with.
enum Contents {
    /// The first `steps` migrations of the history (all with `None`).
    Migrations(Option<u32>),
    /// An SQL script.
    Ddl(String),
}

/// The scratch schema made, filled, inspected and dropped in one transaction, with
/// `SET LOCAL search_path`.
async fn schema_in_one_transaction(
    like: &Config,
    route: Route,
    contents: Contents,
) -> Result<Schema, DbErr> {
    let db = dal_config::connect(&like.clone().with_max_connections(1))
        .await
        .map_err(db_err)?;
    let schema = format!("dal_scratch_{}", uuid::Uuid::new_v4().simple());
    let result = locked::in_locked_transaction(&db, route, |tx| {
        Box::pin(async move {
            tx.execute_unprepared(&format!(
                "CREATE SCHEMA {schema}; SET LOCAL search_path = {schema}"
            ))
            .await?;
            match contents {
                Contents::Migrations(steps) => {
                    Migrator::up(tx, steps).await?;
                    checksum::record(tx).await?;
                }
                Contents::Ddl(ddl) => {
                    tx.execute_unprepared(&ddl).await?;
                }
            }
            let expected = inspect(tx).await?;
            tx.execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE"))
                .await?;
            Ok(expected)
        })
    })
    .await;
    db.close().await?;
    result
}

/// A migrated scratch database and what removing it takes.
struct Scratch {
    db: DatabaseConnection,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        admin: DatabaseConnection,
        schema: String,
    },
}

fn db_err(e: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(e.to_string())
}

impl Scratch {
    async fn create(like: &Config) -> Result<Scratch, DbErr> {
        match &like.target {
            DatabaseTarget::Sqlite { .. } => {
                let dir = tempfile::tempdir().map_err(db_err)?;
                let config = Config::sqlite(dir.path().join("scratch.db")).with_max_connections(1);
                let db = dal_config::connect(&config).await.map_err(db_err)?;
                Ok(Scratch {
                    db,
                    cleanup: Cleanup::Sqlite(dir),
                })
            }
            DatabaseTarget::Postgres { url } => {
                let admin = dal_config::connect(&like.clone().with_max_connections(1))
                    .await
                    .map_err(db_err)?;
                let schema = format!("dal_scratch_{}", uuid::Uuid::new_v4().simple());
                admin
                    .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
                    .await?;
                let options = PgConnectOptions::from_str(url.expose_secret())
                    .map_err(db_err)?
                    .options([("search_path", schema.as_str())]);
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await;
                let pool = match pool {
                    Ok(pool) => pool,
                    Err(e) => {
                        let _ = admin
                            .execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE"))
                            .await;
                        return Err(db_err(e));
                    }
                };
                Ok(Scratch {
                    db: SqlxPostgresConnector::from_sqlx_postgres_pool(pool),
                    cleanup: Cleanup::Postgres { admin, schema },
                })
            }
        }
    }

    async fn remove(self) -> Result<(), DbErr> {
        self.db.close().await?;
        if let Cleanup::Postgres { admin, schema } = self.cleanup {
            debug_assert_eq!(admin.get_database_backend(), DbBackend::Postgres);
            admin
                .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await?;
            admin.close().await?;
        }
        Ok(())
    }
}
