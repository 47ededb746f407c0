//! A worker process for the lease tests, to be killed with SIGKILL while it holds a task:
//!
//! `lease_holder sqlite PATH TASK_TYPE WORKER LEASE_MS` or
//! `lease_holder postgres URL TASK_TYPE WORKER LEASE_MS [transaction]` (the last word for
//! a URL that reaches the server through PgBouncer in transaction mode)
//!
//! claims a task of TASK_TYPE as WORKER with a lease of LEASE_MS milliseconds, prints
//! `claimed <task id>` (or `nothing`), and then sleeps, never heartbeating, until killed.

use std::io::Write;
use std::time::Duration;

use dal::PoolMode;
use dal::prelude::*;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let config = match args[1].as_str() {
        "sqlite" => Config::sqlite(&args[2]),
        "postgres" => {
            let config = Config::postgres(&args[2]).expect("a Postgres URL");
            match args.get(6).map(String::as_str) {
                Some("transaction") => config.with_pool_mode(PoolMode::Transaction),
                _ => config,
            }
        }
        other => panic!("unknown backend {other}"),
    };
    let lease = Duration::from_millis(args[5].parse().expect("LEASE_MS"));
    let db = Database::connect(&config).await.expect("open the database");
    let claimed = db
        .tasks()
        .claim_as(&args[3], &args[4], lease)
        .await
        .expect("the claim runs");
    let mut out = std::io::stdout();
    match claimed {
        Some(task) => writeln!(out, "claimed {}", task.id).unwrap(),
        None => writeln!(out, "nothing").unwrap(),
    }
    out.flush().unwrap();
    std::future::pending::<()>().await;
}
