//! `--scale N`: N generated projects with a realistic fan-out, for benchmark databases.
//!
//! Project `i` (0-based) always gets the same ids, so `--scale 100` twice leaves 100
//! projects and `--scale 200` afterwards adds the next 100. Rows are written with the bulk
//! path, a batch of projects per transaction.

use chrono::{DateTime, Duration, Utc};
use dal::{Database, Result};
use entities::{IdList, TaskStatus, generation, project, shot, shot_generation, task};
use serde_json::json;

use crate::dataset::{Dataset, Existing};
use crate::report::Report;
use crate::{DUMMY_USER_ID, seed_id};

/// Rows per generated project.
pub const SHOTS_PER_PROJECT: usize = 4;
/// Tasks per generated project.
pub const TASKS_PER_PROJECT: usize = 12;
/// Generations per generated project.
pub const GENERATIONS_PER_PROJECT: usize = 8;
/// Timeline entries per generated shot.
pub const LINKS_PER_SHOT: usize = 4;

/// Projects written per transaction.
const BATCH: usize = 250;

/// The rows of generated project `i`, owned by the dummy user.
pub fn project(i: usize) -> Dataset {
    let slug = format!("scale/{i}");
    let base: DateTime<Utc> = DateTime::from_timestamp(1_738_368_000, 0).expect("2025-02-01")
        + Duration::seconds(i as i64);
    let project_id = seed_id("projects", &slug);
    let mut data = Dataset::default();
    data.projects.push(project::Model {
        row_version: 1,
        id: project_id,
        name: format!("Generated project {i}"),
        user_id: DUMMY_USER_ID,
        created_at: base,
    });
    let task_id = |t: usize| seed_id("tasks", &format!("{slug}/{t}"));
    for t in 0..TASKS_PER_PROJECT {
        // A chain with a fork: each task waits on the one before, every third also on the
        // first; statuses cycle through all six.
        let mut deps = Vec::new();
        if t > 0 {
            deps.push(task_id(t - 1).uuid());
        }
        if t > 1 && t % 3 == 0 {
            deps.push(task_id(0).uuid());
        }
        data.tasks.push(task::Model {
            row_version: 1,
            id: task_id(t),
            task_type: ["render", "upscale", "encode"][t % 3].to_owned(),
            params: json!({ "frame_start": t * 24, "frame_end": t * 24 + 23, "seed": i * 1000 + t }),
            status: TaskStatus::ALL[t % TaskStatus::ALL.len()],
            dependant_on: IdList::from(deps),
            output_location: None,
            created_at: base,
            updated_at: base,
            project_id,
            claimed_by: None,
            lease_expires_at: None,
            attempts: 0,
            max_attempts: 3,
            last_error: None,
        });
    }
    for g in 0..GENERATIONS_PER_PROJECT {
        data.generations.push(generation::Model {
            row_version: 1,
            id: seed_id("generations", &format!("{slug}/{g}")),
            tasks: IdList::from(vec![task_id(g % TASKS_PER_PROJECT).uuid()]),
            location: Some(format!("s3://scale/{i}/{g}.png")),
            generation_type: Some(if g % 4 == 3 { "video" } else { "image" }.to_owned()),
            created_at: base,
            updated_at: base,
            project_id,
        });
    }
    for s in 0..SHOTS_PER_PROJECT {
        let shot_id = seed_id("shots", &format!("{slug}/{s}"));
        data.shots.push(shot::Model {
            row_version: 1,
            id: shot_id,
            name: format!("Shot {s}"),
            created_at: base,
            updated_at: base,
            project_id,
        });
        for p in 0..LINKS_PER_SHOT {
            data.shot_generations.push(shot_generation::Model {
                row_version: 1,
                id: seed_id("shot_generations", &format!("{slug}/{s}/{p}")),
                shot_id,
                generation_id: data.generations[(s + p) % GENERATIONS_PER_PROJECT].id,
                position: p as i32,
            });
        }
    }
    data
}

/// Writes generated projects `0..n` (missing ones only), calling `progress(done, n)` after
/// each batch.
pub async fn scale(
    db: &Database,
    n: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Report> {
    let mut report = Report::default();
    let mut done = 0;
    while done < n {
        let end = (done + BATCH).min(n);
        let mut batch = Dataset::default();
        for i in done..end {
            let p = project(i);
            batch.projects.extend(p.projects);
            batch.tasks.extend(p.tasks);
            batch.generations.extend(p.generations);
            batch.shots.extend(p.shots);
            batch.shot_generations.extend(p.shot_generations);
        }
        let uow = db.begin().await?;
        batch.write(&uow, Existing::Keep, &mut report).await?;
        uow.commit().await?;
        done = end;
        progress(done, n);
    }
    Ok(report)
}
