//! No password reaches a log line (at TRACE), an error message, `Display` or `Debug`,
//! whatever fails. A test binary of its own: it installs a global subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dal::DalError;
use dal::prelude::*;
use sea_orm::ConnectionTrait;

const CANARY: &str = "Canary-Pa55w0rd-7f3a91";

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The server URL with the canary as password (the local server trusts, so it connects).
fn canary_url(database: &str) -> String {
    let mut url = url::Url::parse(&parity_tests::postgres_admin_url()).unwrap();
    url.set_password(Some(CANARY)).unwrap();
    url.set_path(&format!("/{database}"));
    url.to_string()
}

#[test]
fn no_password_reaches_a_log_line_an_error_or_debug_output() {
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();
    let mut seen: Vec<String> = Vec::new();
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // Configuration errors.
            for bad in [
                format!("postgres://app:{CANARY}@db.example.com/app?sslmode=bogus"),
                format!("postgres://app:{CANARY}@[::1/app"),
                format!("mysql://app:{CANARY}@db/app"),
            ] {
                let err = Config::from_lookup(|v| match v {
                    "APP_ENV" => Some("web".into()),
                    "DATABASE_URL" => Some(bad.clone()),
                    _ => None,
                })
                .unwrap_err();
                seen.push(format!("{err} {err:?} {:?}", DalError::from(err.clone())));
            }
            // A server that does not answer.
            let refused = Config::postgres(&format!("postgres://app:{CANARY}@127.0.0.1:1/x"))
                .unwrap()
                .with_acquire_timeout(Duration::from_secs(1));
            seen.push(format!("{refused:?}"));
            let err = Database::connect(&refused).await.unwrap_err();
            seen.push(format!("{err} {err:?}"));

            // A working connection whose URL carries the canary, driven through every
            // kind of failure.
            let name = format!("dal_canary_{}", uuid::Uuid::new_v4().simple());
            let admin =
                Database::connect(&Config::postgres(&parity_tests::postgres_admin_url()).unwrap())
                    .await
                    .unwrap();
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            let config = Config::postgres(&canary_url(&name))
                .unwrap()
                .with_max_connections(1)
                .with_acquire_timeout(Duration::from_millis(200));
            seen.push(format!("{config:?} {}", config.describe_target()));
            let db = Database::connect(&config).await.unwrap();
            db.migrate().await.unwrap();
            seen.push(format!("{db:?}"));
            let user = db
                .users()
                .create(NewUser::new().email("a@b"))
                .await
                .unwrap();
            let errors = vec![
                db.users()
                    .create(NewUser::new().email("a@b"))
                    .await
                    .unwrap_err(),
                db.projects()
                    .create(NewProject::new(Id::new(), "p"))
                    .await
                    .unwrap_err(),
                db.projects()
                    .create(NewProject::new(user.id, "nul\0"))
                    .await
                    .unwrap_err(),
                db.users().get(Id::new()).await.unwrap_err(),
                DalError::from(
                    db.execute_unprepared("SELECT * FROM no_such_table")
                        .await
                        .unwrap_err(),
                ),
                {
                    let held = db.begin().await.unwrap();
                    let err = db.users().get(user.id).await.unwrap_err();
                    drop(held);
                    err
                },
            ];
            for err in errors {
                seen.push(format!("{err} {err:?}"));
            }
            db.close().await.unwrap();
            admin
                .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .await
                .unwrap();
        });
    }
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.lines().count() > 10,
        "TRACE logging captured the run:\n{logs}"
    );
    for line in logs.lines().chain(seen.iter().map(String::as_str)) {
        assert!(!line.contains(CANARY), "the password leaked: {line}");
    }
}
