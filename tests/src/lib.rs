//! The harness behind the parity suite: each test body runs once per backend, on a
//! database of its own that is created for it and dropped after it.
//!
//! * SQLite: a file in a fresh temporary directory.
//! * Postgres: a new database on the server at `DAL_TEST_POSTGRES_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`), dropped with `WITH (FORCE)` afterwards.
//!   If no server answers, the Postgres half **fails** and says how to point it at one.
//! * PgBouncer: the same kind of database, reached through a PgBouncer in
//!   `pool_mode=transaction` ([`pgbouncer`]) with [`dal::PoolMode::Transaction`]. If no
//!   PgBouncer can be found or started, that third run **fails** and says how to get one.
//!
//! `DAL_TEST_BACKENDS` (default `sqlite,postgres,pgbouncer`) picks the backends
//! explicitly, e.g. one per CI job; a test of a backend left out says so in its output.
//!
//! ```ignore
//! parity_test!(async fn creates_a_user(t) {
//!     let user = t.db.users().create(NewUser::default()).await.unwrap();
//!     assert_eq!(t.db.users().get(user.id).await.unwrap(), user);
//! });
//! ```
//! expands to `creates_a_user::sqlite`, `creates_a_user::postgres` and
//! `creates_a_user::pgbouncer`. A test that needs a direct server session (it kills
//! backends, say) is written `parity_test!(session_only("why") async fn ...)`: its
//! `pgbouncer` run is `#[ignore]`d with that reason, visible in every test run's output
//! and listed in the README.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use dal::{Backend, Config, Database, PoolMode};
use futures::FutureExt;
use sea_orm::{ConnectionTrait, Statement};
use sqlx::{Connection, PgConnection};

pub mod pgbouncer;

/// The variable naming the Postgres server tests create their databases on.
pub const POSTGRES_URL_VAR: &str = "DAL_TEST_POSTGRES_URL";
/// The backends to test, comma-separated (default: all three).
pub const BACKENDS_VAR: &str = "DAL_TEST_BACKENDS";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Where a parity test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A SQLite file.
    Sqlite,
    /// The Postgres server, directly.
    Postgres,
    /// The same server through PgBouncer in `pool_mode=transaction`.
    PgBouncer,
}

impl Target {
    /// Its name in test names and `DAL_TEST_BACKENDS`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Target::Sqlite => "sqlite",
            Target::Postgres => "postgres",
            Target::PgBouncer => "pgbouncer",
        }
    }

    /// The database engine behind it.
    pub const fn backend(self) -> Backend {
        match self {
            Target::Sqlite => Backend::Sqlite,
            Target::Postgres | Target::PgBouncer => Backend::Postgres,
        }
    }
}

impl From<Backend> for Target {
    fn from(backend: Backend) -> Target {
        match backend {
            Backend::Sqlite => Target::Sqlite,
            Backend::Postgres => Target::Postgres,
        }
    }
}

/// What a test gets: a connected [`Database`] on a database of its own.
pub struct TestDb {
    /// The pool, on the test's own database.
    pub db: Database,
    /// The configuration it was opened with (to open more pools, or run the CLI).
    pub config: Config,
    /// Where it runs.
    pub target: Target,
    /// The test's database on the server itself, bypassing any pooler (Postgres and
    /// PgBouncer targets): for checks that need a session of their own.
    pub direct_url: Option<String>,
}

impl TestDb {
    /// The backend under test.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Whether the test runs through PgBouncer.
    pub fn through_pgbouncer(&self) -> bool {
        self.target == Target::PgBouncer
    }

    /// A direct, session-mode configuration of the test's database: the Postgres server
    /// itself even when the test runs through PgBouncer (`None` on SQLite).
    pub fn direct_config(&self) -> Option<Config> {
        self.direct_url
            .as_deref()
            .map(|url| Config::postgres(url).expect("direct URL is valid"))
    }

    /// Through PgBouncer: asserts that no server session of the test's database holds
    /// anything a transaction left behind ([`pgbouncer::server_session_leftovers`]), which
    /// the next client of that session would collide with or see; `after` names what ran
    /// (through PgBouncer, so there is at least one session to inspect). Does nothing on
    /// the other targets.
    pub async fn assert_server_sessions_clean(&self, after: &str) {
        if !self.through_pgbouncer() {
            return;
        }
        let dal_config::DatabaseTarget::Postgres { url } = &self.config.target else {
            unreachable!("PgBouncer runs are on Postgres");
        };
        let direct = self
            .direct_url
            .as_deref()
            .expect("a direct URL on Postgres");
        let (sessions, found) =
            pgbouncer::server_session_leftovers(url.expose_secret(), direct).await;
        assert!(
            sessions > 0,
            "{after}: PgBouncer holds no server session of the test database to inspect"
        );
        assert!(
            found.is_empty(),
            "{after} left state on PgBouncer's server sessions:\n{}",
            found.join("\n")
        );
    }

    /// Another pool on the same database, e.g. with different settings.
    pub async fn connect(&self, config: &Config) -> Database {
        Database::connect(config)
            .await
            .expect("second pool connects")
    }
}

/// Whether the test's database starts empty or with every migration applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// No tables at all.
    Empty,
    /// `Database::migrate` has run.
    Migrated,
}

/// A created database and how to remove it.
enum Owned {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

/// Waits for `condition` to hold, polling it every few milliseconds, and panics naming
/// `what` if it still does not after 10 s: tests wait for the event itself, never for a
/// guessed duration.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !condition().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after 10 s waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Runs `body` on a fresh database of `backend` (directly), then drops that database,
/// whether the body passed or panicked.
pub async fn run<F, Fut>(backend: Backend, setup: Setup, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    run_on(backend.into(), setup, body).await
}

/// Runs `body` on a fresh database at `target`, then drops that database, whether the
/// body passed or panicked.
pub async fn run_on<F, Fut>(target: Target, setup: Setup, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    if !selected_target(target) {
        eprintln!(
            "SKIPPED on {}: {BACKENDS_VAR} does not include it",
            target.as_str()
        );
        return;
    }
    let (config, owned, direct_url) = create(target).await;
    let db = Database::connect(&config)
        .await
        .expect("test database connects");
    assert_backend(&db, target.backend()).await;
    assert_eq!(
        db.behind_transaction_pooler(),
        target == Target::PgBouncer,
        "the pool mode fits the target"
    );
    if setup == Setup::Migrated {
        db.migrate().await.expect("migrations apply");
    }
    let outcome = AssertUnwindSafe(body(TestDb {
        db: db.clone(),
        config,
        target,
        direct_url,
    }))
    .catch_unwind()
    .await;
    let _ = db.close().await;
    drop_database(owned).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Checks the pool really talks to the backend the test is named after.
async fn assert_backend(db: &Database, backend: Backend) {
    assert_eq!(db.backend(), backend);
    let sql = match backend {
        Backend::Sqlite => "SELECT 'SQLite ' || sqlite_version() AS v",
        Backend::Postgres => "SELECT version() AS v",
    };
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("version query")
        .expect("a version row");
    let version: String = row.try_get("", "v").expect("version text");
    let expected = match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    assert!(
        version.starts_with(expected),
        "expected {expected}, connected to {version}"
    );
}

/// Whether `DAL_TEST_BACKENDS` includes `backend` (unset: every backend).
pub fn selected(backend: Backend) -> bool {
    selected_target(backend.into())
}

/// Whether `DAL_TEST_BACKENDS` includes `target` (unset: every target).
pub fn selected_target(target: Target) -> bool {
    match std::env::var(BACKENDS_VAR) {
        Ok(list) => list
            .split(',')
            .any(|b| b.trim().eq_ignore_ascii_case(target.as_str())),
        Err(_) => true,
    }
}

async fn create(target: Target) -> (Config, Owned, Option<String>) {
    match target {
        Target::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let config = Config::sqlite(dir.path().join("test.db"));
            (config, Owned::Sqlite(dir), None)
        }
        Target::Postgres | Target::PgBouncer => {
            // Before the database exists, so a missing PgBouncer fails with its own message.
            let bouncer = (target == Target::PgBouncer).then(pgbouncer::pgbouncer_url);
            let admin_url = postgres_admin_url();
            let name = format!("dal_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = admin_connection(&admin_url).await;
            ensure_cluster_roles(&mut admin).await;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .expect("CREATE DATABASE for the test");
            let _ = admin.close().await;
            let direct = database_url(&admin_url, &name);
            let config = match bouncer {
                None => Config::postgres(&direct).expect("test Postgres URL is valid"),
                Some(bouncer) => Config::postgres(&database_url(&bouncer, &name))
                    .expect("test PgBouncer URL is valid")
                    .with_pool_mode(PoolMode::Transaction),
            };
            (config, Owned::Postgres { admin_url, name }, Some(direct))
        }
    }
}

/// Creates the cluster-wide role the row-level-security migration grants to, before any
/// test migrates. Roles are shared by every database of the cluster, and two first
/// `CREATE ROLE`s racing in parallel tests fail with `unique_violation`, which that
/// migration (applied, checksummed, so not edited) only tolerates as `duplicate_object`.
async fn ensure_cluster_roles(admin: &mut PgConnection) {
    sqlx::query(
        "DO $$ BEGIN CREATE ROLE authenticated NOLOGIN; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    )
    .execute(admin)
    .await
    .expect("the authenticated role exists");
}

async fn drop_database(owned: Owned) {
    if let Owned::Postgres { admin_url, name } = owned {
        let mut admin = admin_connection(&admin_url).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .expect("DROP DATABASE after the test");
        let _ = admin.close().await;
    }
}

/// The server URL for test databases.
pub fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// `admin_url` with its database replaced by `name`.
pub fn database_url(admin_url: &str, name: &str) -> String {
    let mut url = url_parse(admin_url);
    url.set_path(&format!("/{name}"));
    url.to_string()
}

fn url_parse(admin_url: &str) -> url::Url {
    url::Url::parse(admin_url).unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is not a URL: {e}"))
}

async fn admin_connection(admin_url: &str) -> PgConnection {
    match PgConnection::connect(admin_url).await {
        Ok(conn) => conn,
        Err(e) => panic!(
            "the Postgres half of the parity suite needs a server, and none answered at {shown}: {e}\n\
             Start the local one (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start),\n\
             or point {POSTGRES_URL_VAR} at a server where this user may CREATE DATABASE,\n\
             or set {BACKENDS_VAR}=sqlite to leave Postgres out explicitly.",
            shown = dal_config::SecretUrl::new(admin_url),
        ),
    }
}

/// Stamps out one `#[tokio::test]` per target from one body, named `<test>::sqlite`,
/// `<test>::postgres` and `<test>::pgbouncer`. Prefix the body with `empty` for a
/// database without migrations, and with `session_only("reason")` for a test that needs
/// a direct server session: its `pgbouncer` run is then `#[ignore]`d with that reason
/// (still there, so `cargo test -- --ignored` shows what fails through the pooler).
#[macro_export]
macro_rules! parity_test {
    (session_only($why:literal) empty async fn $name:ident($t:ident) $body:block) => {
        $crate::parity_test!(@emit $name, $t, $crate::Setup::Empty, $body, #[ignore = $why]);
    };
    (session_only($why:literal) async fn $name:ident($t:ident) $body:block) => {
        $crate::parity_test!(@emit $name, $t, $crate::Setup::Migrated, $body, #[ignore = $why]);
    };
    (empty async fn $name:ident($t:ident) $body:block) => {
        $crate::parity_test!(@emit $name, $t, $crate::Setup::Empty, $body,);
    };
    (async fn $name:ident($t:ident) $body:block) => {
        $crate::parity_test!(@emit $name, $t, $crate::Setup::Migrated, $body,);
    };
    (@emit $name:ident, $t:ident, $setup:expr, $body:block, $(#[$pooler:meta])?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($t: $crate::TestDb) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::run_on($crate::Target::Sqlite, $setup, body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::run_on($crate::Target::Postgres, $setup, body).await;
            }

            $(#[$pooler])?
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pgbouncer() {
                $crate::run_on($crate::Target::PgBouncer, $setup, body).await;
            }
        }
    };
}

/// A test of what only Postgres has (row-level security, killed backends, statement
/// timeouts): one run on the server directly, `<test>::direct`, and one through
/// PgBouncer, `<test>::pgbouncer` (`session_only("reason")` ignores the latter, as in
/// [`parity_test!`]). Not `::postgres`, so the parity counts stay one per backend.
#[macro_export]
macro_rules! postgres_test {
    (session_only($why:literal) async fn $name:ident($t:ident) $body:block) => {
        $crate::postgres_test!(@emit $name, $t, $body, #[ignore = $why]);
    };
    (async fn $name:ident($t:ident) $body:block) => {
        $crate::postgres_test!(@emit $name, $t, $body,);
    };
    (@emit $name:ident, $t:ident, $body:block, $(#[$pooler:meta])?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($t: $crate::TestDb) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn direct() {
                $crate::run_on($crate::Target::Postgres, $crate::Setup::Migrated, body).await;
            }

            $(#[$pooler])?
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pgbouncer() {
                $crate::run_on($crate::Target::PgBouncer, $crate::Setup::Migrated, body).await;
            }
        }
    };
}
