//! The committed DDL dumps (`schema/postgres.sql`, `schema/sqlite.sql`) are usable DDL:
//! loaded with the backend's own command-line client into an empty database, they give a
//! database `migration check` finds identical to the history.

use std::path::Path;
use std::process::Command;

use dal::Backend;
use dal_config::DatabaseTarget;
use migration::cli;
use parity_tests::parity_test;

/// Runs `program` with `args`, failing the test with what to install when it is missing.
fn run(program: &str, package: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "`{program}` is needed to load the committed dump ({e}): install it, e.g. \
             `apt-get install {package}` on Debian (.ci/run does)"
            )
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

parity_test!(empty async fn the_committed_dump_loads_into_an_empty_database_that_check_accepts(t) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match t.backend() {
        Backend::Sqlite => {
            let DatabaseTarget::Sqlite { path, .. } = &t.config.target else {
                unreachable!("a SQLite test runs on a file");
            };
            let dump = repo.join("schema/sqlite.sql");
            // `.read` inside the client: no shell to redirect standard input.
            run("sqlite3", "sqlite3", &[
                "-bail",
                path.to_str().expect("a UTF-8 path"),
                &format!(".read '{}'", dump.display()),
            ]);
        }
        Backend::Postgres => {
            // Directly, not through PgBouncer: psql is what a person loading it runs.
            let url = t.direct_url.as_deref().expect("a direct URL on Postgres");
            let dump = repo.join("schema/postgres.sql");
            run("psql", "postgresql-client", &[
                "--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f",
                dump.to_str().expect("a UTF-8 path"),
            ]);
        }
    }
    assert_eq!(cli::check(&t.config).await.unwrap(), Vec::<String>::new());
});
