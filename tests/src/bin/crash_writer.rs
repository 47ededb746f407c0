//! A child process for the reliability tests; SQLite only.
//!
//! * `crash_writer write DB FIRST_BATCH ROWS`: commits batches of ROWS tasks, batch k
//!   tagged `batch-k` in `task_type`, printing `committed k` after each commit, until
//!   killed.
//! * `crash_writer hold DB`: takes the write lock (`BEGIN IMMEDIATE`), prints `locked`,
//!   and holds it until killed.

use std::io::Write;

use dal::prelude::*;
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let db = Database::connect(&Config::sqlite(&args[2]))
        .await
        .expect("open the database");
    let mut out = std::io::stdout();
    match args[1].as_str() {
        "write" => {
            let project: Id = std::env::var("DAL_CRASH_PROJECT").unwrap().parse().unwrap();
            let rows: usize = args[4].parse().unwrap();
            let mut batch: u64 = args[3].parse().unwrap();
            loop {
                let tasks = (0..rows)
                    .map(|i| {
                        NewTask::queued(project, format!("batch-{batch}"), json!({ "row": i }))
                    })
                    .collect();
                db.tasks().insert_many(tasks).await.expect("batch commits");
                writeln!(out, "committed {batch}").unwrap();
                out.flush().unwrap();
                batch += 1;
            }
        }
        "hold" => {
            let uow = db.begin().await.expect("take the write lock");
            writeln!(out, "locked").unwrap();
            out.flush().unwrap();
            std::future::pending::<()>().await;
            drop(uow);
        }
        other => panic!("unknown mode {other}"),
    }
}
