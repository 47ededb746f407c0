//! The migration history as Supabase CLI migration files (`supabase/migrations/`), so
//! `supabase db push` applies exactly what `migration up` applies on Postgres.
//!
//! Each migration becomes `<14-digit timestamp>_<name>.sql` (from its name
//! `mYYYYMMDD_HHMMSS_name`) holding every statement the migration runs on Postgres,
//! followed by the rows that record it as applied: its `seaql_migrations` row and its
//! [`checksum::TABLE`] row. The first file also creates those two tables, as
//! sea-orm-migration and [`checksum::record`] create them. A file has no `BEGIN`/`COMMIT`:
//! the Supabase CLI, or `psql -1`, runs each file in one transaction.
//!
//! How the statements are obtained: each migration's `up` runs against a recording
//! connection for Postgres (sea-orm's mock database), which keeps every statement it is
//! given and refuses every read: a migration that reads from the database could decide on
//! what it finds, so it makes the export fail instead of writing a file that might differ
//! from what `up` does. Every recorded statement is rendered with its values inlined
//! (sea-query's escaping) and that text is run, in order, on a real Postgres database,
//! inside a transaction on a scratch schema that is rolled back at the end (nothing
//! persists, not even the schema). So the files hold exactly the text Postgres accepted,
//! in the order the migrations issued it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use dal_config::{Config, DatabaseTarget};
use sea_orm_migration::sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm_migration::sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseConnectionType, DatabaseTransaction, DbBackend,
    DbErr, ExecResult, MockDatabase, MockDatabaseConnection, MockDatabaseTrait, MockExecResult,
    QueryResult, Statement, Transaction, TransactionTrait,
};
use sea_orm_migration::{MigrationTrait, SchemaManager};

use crate::{Migrator, MigratorTrait, checksum, sources};

/// One migration file: its file name and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlFile {
    /// `<14-digit timestamp>_<name>.sql`.
    pub file_name: String,
    /// The SQL, one statement after another, each ending with `;`.
    pub sql: String,
}

/// Why the export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The export needs a Postgres server to run the migrations on.
    #[error(
        "`supabase` needs APP_ENV=web and a DATABASE_URL: the migrations run on that Postgres server in a transaction that is rolled back"
    )]
    NeedsPostgres,
    /// A migration's name does not have the `mYYYYMMDD_HHMMSS_name` shape.
    #[error("migration {0} is not named mYYYYMMDD_HHMMSS_name, so it has no Supabase file name")]
    BadName(String),
    /// Running a migration failed, or a migration read from the database.
    #[error("{0}")]
    Database(#[from] DbErr),
    /// Writing a file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The reason.
        source: std::io::Error,
    },
}

/// The Supabase file name of migration `name`: `m20250601_000001_initial_schema` becomes
/// `20250601000001_initial_schema.sql`.
pub fn file_name(name: &str) -> Result<String, ExportError> {
    let bad = || ExportError::BadName(name.to_owned());
    let rest = name.strip_prefix('m').ok_or_else(bad)?;
    let (date, rest) = rest.split_at_checked(8).ok_or_else(bad)?;
    let rest = rest.strip_prefix('_').ok_or_else(bad)?;
    let (time, rest) = rest.split_at_checked(6).ok_or_else(bad)?;
    let label = rest.strip_prefix('_').ok_or_else(bad)?;
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(date) || !digits(time) || label.is_empty() {
        return Err(bad());
    }
    Ok(format!("{date}{time}_{label}.sql"))
}

/// Every migration of the history as a Supabase migration file, oldest first. `like`
/// names the Postgres server to run them on (nothing is left behind there).
pub async fn export(like: &Config) -> Result<Vec<SqlFile>, ExportError> {
    if !matches!(like.target, DatabaseTarget::Postgres { .. }) {
        return Err(ExportError::NeedsPostgres);
    }
    let admin = dal_config::connect(&like.clone().with_max_connections(1))
        .await
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    let result = export_on(&admin).await;
    admin.close().await?;
    result
}

async fn export_on(admin: &DatabaseConnection) -> Result<Vec<SqlFile>, ExportError> {
    let tx = admin.begin().await?;
    let schema = format!("dal_export_{}", uuid::Uuid::new_v4().simple());
    tx.execute_unprepared(&format!("CREATE SCHEMA {schema}"))
        .await?;
    tx.execute_unprepared(&format!("SET LOCAL search_path TO {schema}"))
        .await?;
    let files = record_history(&tx).await;
    // Nothing of the scratch schema, nor of what the migrations did elsewhere (roles,
    // grants), outlives the export.
    tx.rollback().await?;
    files
}

async fn record_history(tx: &DatabaseTransaction) -> Result<Vec<SqlFile>, ExportError> {
    let migrations: Vec<Box<dyn MigrationTrait>> = Migrator::migrations();
    let sources = sources();
    assert_eq!(migrations.len(), sources.len(), "one source per migration");
    let mut files = Vec::new();
    for (index, (migration, (name, source))) in migrations.iter().zip(sources).enumerate() {
        assert_eq!(
            migration.name(),
            name,
            "sources() follows the history's order"
        );
        let file_name = file_name(name)?;
        let (db, log) = Recording::connection();
        if index == 0 {
            Migrator::install(&db).await?;
            db.execute(&checksum::create_table()).await?;
        }
        migration.up(&SchemaManager::new(&db)).await?;
        db.execute(
            Query::insert()
                .into_table(Alias::new("seaql_migrations"))
                .columns([Alias::new("version"), Alias::new("applied_at")])
                .values_panic([
                    name.into(),
                    // The time it is applied, as sea-orm-migration records it (seconds).
                    Expr::cust("extract(epoch FROM now())::bigint"),
                ]),
        )
        .await?;
        db.execute(
            Query::insert()
                .into_table(Alias::new(checksum::TABLE))
                .columns([Alias::new("version"), Alias::new("checksum")])
                .values_panic([name.into(), checksum::checksum(source).into()]),
        )
        .await?;
        let statements = std::mem::take(&mut *log.lock().expect("log lock"));
        let mut texts = Vec::with_capacity(statements.len());
        for statement in statements {
            // The text with its values inlined is what is run here and what the file holds.
            let text = statement.to_string();
            tx.execute_unprepared(&text)
                .await
                .map_err(|e| DbErr::Migration(format!("{name}: {e} (in `{text}`)")))?;
            texts.push(text);
        }
        files.push(SqlFile {
            sql: render(name, &texts),
            file_name,
        });
    }
    Ok(files)
}

fn render(name: &str, statements: &[String]) -> String {
    let mut sql = format!(
        "-- {name}: generated from the dal migration history by\n\
         -- `cargo run -p migration -- supabase --out supabase/migrations`. Do not edit;\n\
         -- add a migration to the history instead. One transaction per file.\n"
    );
    for statement in statements {
        sql.push('\n');
        sql.push_str(statement.trim());
        if !statement.trim_end().ends_with(';') {
            sql.push(';');
        }
        sql.push('\n');
    }
    sql
}

/// Writes `files` into `dir` (created if missing). Other files there are left alone.
pub fn write(files: &[SqlFile], dir: &Path) -> Result<(), ExportError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ExportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for file in files {
        let path = dir.join(&file.file_name);
        std::fs::write(&path, &file.sql).map_err(io(&path))?;
    }
    Ok(())
}

/// A connection that records each statement instead of running it (sea-orm's mock
/// database, which answers every write with "0 rows"), and refuses every read.
#[derive(Debug)]
struct Recording {
    log: Arc<Mutex<Vec<Statement>>>,
    answers: Option<MockDatabase>,
}

impl Recording {
    fn connection() -> (DatabaseConnection, Arc<Mutex<Vec<Statement>>>) {
        let log = Arc::new(Mutex::default());
        let recording = Recording {
            log: log.clone(),
            answers: Some(MockDatabase::new(DbBackend::Postgres)),
        };
        let connection = MockDatabaseConnection::new(recording);
        (
            DatabaseConnectionType::MockDatabaseConnection(Arc::new(connection)).into(),
            log,
        )
    }
}

impl MockDatabaseTrait for Recording {
    fn execute(&mut self, counter: usize, statement: Statement) -> Result<ExecResult, DbErr> {
        self.log.lock().expect("log lock").push(statement.clone());
        // The mock answers the n-th write with its n-th prepared result: prepare one more.
        let mut answers = self
            .answers
            .take()
            .expect("answers are put back after every write")
            .append_exec_results([MockExecResult::default()]);
        let answer = answers.execute(counter, statement);
        self.answers = Some(answers);
        answer
    }

    fn query(&mut self, _counter: usize, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        Err(DbErr::Migration(format!(
            "a migration read from the database ({statement}); what it runs could depend on \
             what it finds, so it cannot be exported as a fixed file"
        )))
    }

    fn begin(&mut self) {}

    fn commit(&mut self) {}

    fn rollback(&mut self) {}

    fn drain_transaction_log(&mut self) -> Vec<Transaction> {
        Vec::new()
    }

    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    fn ping(&self) -> Result<(), DbErr> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_the_migration_names() {
        assert_eq!(
            file_name("m20250601_000001_initial_schema").unwrap(),
            "20250601000001_initial_schema.sql"
        );
        assert_eq!(
            file_name("m20261123_112756_sync_pull_order_index").unwrap(),
            "20261123112756_sync_pull_order_index.sql"
        );
        for bad in [
            "20250601_000001_x",
            "m2025060_000001_x",
            "m20250601_00001_x",
            "m20250601-000001_x",
            "m20250601_000001_",
            "m2025a601_000001_x",
            "m",
        ] {
            assert!(
                matches!(file_name(bad), Err(ExportError::BadName(_))),
                "{bad}"
            );
        }
        for (name, _) in sources() {
            file_name(name).unwrap();
        }
    }

    #[test]
    fn statements_end_with_one_semicolon() {
        let sql = render("m1", &["SELECT 1".into(), "SELECT 2; ".into()]);
        assert!(sql.ends_with("\nSELECT 1;\n\nSELECT 2;\n"), "{sql}");
    }
}
