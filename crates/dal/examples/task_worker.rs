//! A small application service on the public API only: a pool of workers that claim ready
//! tasks, do the work, and record the result, on whichever database `APP_ENV` names.
//!
//! ```sh
//! cargo run -p dal --example task_worker                         # ./local.db
//! APP_ENV=web DATABASE_URL=postgres://... cargo run -p dal --example task_worker
//! ```
//!
//! It queues a small pipeline (renders, then an encode that waits for all of them, then a
//! publish that waits for the encode), runs four workers until nothing is left, and exits
//! non-zero unless every task it queued completed exactly once.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use dal::prelude::*;
use serde_json::json;

const WORKERS: usize = 4;
const RENDERS: usize = 12;
const TASK_TYPES: [&str; 3] = ["render", "encode", "publish"];

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("task_worker: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let db = Database::from_env().await?;
    db.migrate().await?;
    println!("task_worker on {}", db.backend());

    let project = queue_pipeline(&db).await?;
    let queued = db
        .tasks()
        .count_for_project(project.id, &TaskFilter::default())
        .await?;
    println!("queued {queued} tasks in project {}", project.id);

    let workers: Vec<_> = (0..WORKERS)
        .map(|n| tokio::spawn(work(n, db.clone(), project.id)))
        .collect();
    let mut done = Vec::new();
    for worker in workers {
        done.extend(worker.await??);
    }

    let unique: HashSet<Id> = done.iter().copied().collect();
    let complete = TaskFilter::default().status(TaskStatus::Complete);
    let finished = db.tasks().count_for_project(project.id, &complete).await?;
    println!(
        "{} tasks done by {WORKERS} workers; {finished} complete in the database",
        done.len(),
    );
    if unique.len() != done.len() || finished != queued {
        return Err("some task was run twice or not at all".into());
    }
    db.projects().delete(project.id).await?;
    Ok(())
}

/// A user's project with renders -> encode -> publish.
async fn queue_pipeline(db: &Database) -> dal::Result<entities::project::Model> {
    db.transaction(|uow| {
        Box::pin(async move {
            let user = uow
                .users()
                .create(NewUser::new().display_name("worker demo"))
                .await?;
            let project = uow
                .projects()
                .create(NewProject::new(user.id, "pipeline"))
                .await?;
            let mut renders = Vec::new();
            for frame in 0..RENDERS {
                let task = uow
                    .tasks()
                    .create(NewTask::queued(
                        project.id,
                        "render",
                        json!({ "frame": frame }),
                    ))
                    .await?;
                renders.push(task.id);
            }
            let encode = uow
                .tasks()
                .create(
                    NewTask::queued(project.id, "encode", json!({ "codec": "av1" }))
                        .dependant_on(renders),
                )
                .await?;
            uow.tasks()
                .create(NewTask::queued(project.id, "publish", json!({})).dependant_on([encode.id]))
                .await?;
            Ok(project)
        })
    })
    .await
}

/// Claims and completes tasks until none of the project's tasks is left to do.
async fn work(n: usize, db: Database, project: Id) -> dal::Result<Vec<Id>> {
    let mut done = Vec::new();
    loop {
        let mut claimed = None;
        for kind in TASK_TYPES {
            if let Some(task) = db.tasks().claim_in_project(project, kind).await? {
                claimed = Some(task);
                break;
            }
        }
        let Some(mut task) = claimed else {
            let open = TaskFilter::default()
                .status(TaskStatus::Queued)
                .status(TaskStatus::InProgress);
            if db.tasks().count_for_project(project, &open).await? == 0 {
                return Ok(done);
            }
            // Work remains but waits on a dependency another worker is running.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        // "Do the work", then record where the output went and mark it complete.
        task.output_location = Some(format!("s3://demo/{}/{}.out", task.task_type, task.id));
        db.tasks().update(task.clone()).await?;
        db.tasks().set_status(task.id, TaskStatus::Complete).await?;
        println!("worker {n}: {} {}", task.task_type, task.id);
        done.push(task.id);
    }
}
