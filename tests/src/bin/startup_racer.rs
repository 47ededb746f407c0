//! A child process for the concurrent start-up test: one of several processes that open,
//! create and migrate the same new database at the same moment, as a dev server, the
//! seeder and a test run do.
//!
//! `startup_racer` reads `APP_ENV` / `DATABASE_URL` (as an application would), prints
//! `ready`, waits for a line on standard input (the start signal, written to every racer
//! at once), then connects, migrates and creates one user. It prints `ok`, or
//! `error in STEP:` with the error's `Debug` form and exits with status 1.

use std::io::{BufRead, Write};

use dal::prelude::*;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let config = Config::from_lookup(|name| std::env::var(name).ok()).expect("configuration");
    let mut out = std::io::stdout();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    let mut go = String::new();
    std::io::stdin().lock().read_line(&mut go).unwrap();
    let outcome = async {
        let db = Database::connect(&config)
            .await
            .map_err(|e| ("connect", e))?;
        db.migrate().await.map_err(|e| ("migrate", e))?;
        let user = db.users().create(NewUser::default()).await;
        user.map_err(|e| ("write", e))?;
        db.close().await.map_err(|e| ("close", e))
    }
    .await;
    match outcome {
        Ok(()) => writeln!(out, "ok").unwrap(),
        Err((step, e)) => {
            writeln!(out, "error in {step}: {e:?}").unwrap();
            out.flush().unwrap();
            std::process::exit(1);
        }
    }
}
