//! What the benchmark binaries share: a scratch Postgres database per run.

pub mod measure;
pub mod sync_push;

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use uuid::Uuid;

/// The options every benchmark binary takes (`#[command(flatten)]` them).
#[derive(clap::Args, Debug)]
pub struct CommonArgs {
    /// Tiny sizes, for CI: the numbers mean nothing, the run proves the code works.
    #[arg(long)]
    pub quick: bool,
    /// Server to create the benchmark's Postgres database on.
    #[arg(
        long,
        env = "DAL_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres_url: String,
}

/// A database created on a Postgres server for one run, with every migration applied.
pub struct ScratchPostgres {
    admin: PgConnection,
    name: String,
    /// Its URL (with `sslmode=prefer` when the server URL names no mode).
    pub url: String,
}

impl ScratchPostgres {
    /// Creates `dal_bench_<random>` on the server at `server_url`.
    pub async fn create(server_url: &str) -> ScratchPostgres {
        let name = format!("dal_bench_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(server_url)
            .await
            .expect("Postgres for the benchmark (DAL_TEST_POSTGRES_URL)");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE for the benchmark");
        let mut url = url_with_database(server_url, &name);
        if !url.contains('?') {
            url.push_str("?sslmode=prefer");
        }
        ScratchPostgres { admin, name, url }
    }

    /// A default setting for every later session of the database.
    pub async fn set(&mut self, setting: &str, value: &str) {
        sqlx::query(AssertSqlSafe(format!(
            "ALTER DATABASE {} SET {setting} = '{value}'",
            self.name
        )))
        .execute(&mut self.admin)
        .await
        .expect("ALTER DATABASE for the benchmark");
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database (closing whatever is still connected to it).
    pub async fn drop_database(mut self) {
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut self.admin)
        .await
        .expect("DROP DATABASE after the benchmark");
    }
}

fn url_with_database(server: &str, name: &str) -> String {
    match server.rsplit_once('/') {
        Some((base, _)) if base.contains("://") && base.matches('/').count() >= 2 => {
            format!("{base}/{name}")
        }
        _ => format!("{server}/{name}"),
    }
}
