//! The migration history through Supabase's own tooling: the files
//! `migration supabase` writes, applied one by one with `psql -1` (what `supabase db push`
//! does: each file in one transaction) to an empty database, leave it exactly as
//! `migration up` would, and say so through `migration status` and `migration check`.

use std::process::Command;

use dal::prelude::*;
use migration::cli::{self, MigrateCommand};
use migration::supabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_files_applied_with_psql_give_the_migrated_schema() {
    if !parity_tests::selected(dal::Backend::Postgres) {
        eprintln!("SKIPPED on postgres");
        return;
    }
    let (url, name) = crate::create_database().await;
    let result = tokio::spawn(check_files(url)).await;
    crate::drop_database(&name).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}

async fn check_files(url: String) {
    let config = Config::postgres(&url).unwrap();
    // Exported against the very database they are applied to: the export leaves nothing
    // behind (it runs in a transaction that is rolled back).
    let files = supabase::export(&config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    supabase::write(&files, dir.path()).unwrap();

    let history = migration_history::sources();
    assert_eq!(files.len(), history.len());
    for (file, (name, _)) in files.iter().zip(&history) {
        assert_eq!(file.file_name, supabase::file_name(name).unwrap());
        let digits = &file.file_name[..14];
        assert!(
            digits.bytes().all(|b| b.is_ascii_digit()),
            "{}",
            file.file_name
        );
        assert_eq!(file.file_name.as_bytes()[14], b'_');
    }

    let before = cli::execute(&config, MigrateCommand::Status, false)
        .await
        .unwrap();
    assert!(
        before.iter().all(|m| !m.applied),
        "the export applied something: {before:?}"
    );

    // Applied with Postgres's own client, each file on its own, in name order, as
    // `supabase db push` applies them.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert_eq!(names.len(), files.len());
    for path in &names {
        let output = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f"])
            .arg(path)
            .arg(&url)
            .output()
            .expect("psql (the Postgres client) is installed");
        assert!(
            output.status.success(),
            "psql -1 -f {}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let after = cli::execute(&config, MigrateCommand::Status, false)
        .await
        .unwrap();
    assert!(after.iter().all(|m| m.applied), "{after:?}");
    assert_eq!(after.len(), history.len());
    let differences = cli::check(&config).await.unwrap();
    assert!(differences.is_empty(), "{differences:#?}");

    // The library takes the database as migrated: nothing pending, and it works.
    let db = Database::connect(&config).await.unwrap();
    db.migrate().await.unwrap();
    assert_eq!(
        db.schema_version().await.unwrap().as_deref(),
        Some(Database::latest_schema_version())
    );
    let user = db.users().create(NewUser::default()).await.unwrap();
    db.projects()
        .create(NewProject::new(user.id, "Trailer"))
        .await
        .unwrap();
    db.close().await.unwrap();

    // Deterministic: the same bytes again (here on a database that is now migrated).
    let again = supabase::export(&config).await.unwrap();
    assert_eq!(again, files);
    for path in &names {
        let written = std::fs::read(path).unwrap();
        let file = files.iter().find(|f| path.ends_with(&f.file_name)).unwrap();
        assert_eq!(written, file.sql.as_bytes());
    }
}

#[tokio::test]
async fn the_export_needs_postgres() {
    let err = supabase::export(&Config::sqlite("unused.db"))
        .await
        .unwrap_err();
    assert!(matches!(err, supabase::ExportError::NeedsPostgres), "{err}");
    assert!(!std::path::Path::new("unused.db").exists());
}
