//! The built-in sample: the dummy user and a small, realistic world of projects, shots,
//! generations and tasks whose dependencies form a DAG with every status represented.
//! Every id and timestamp is fixed, so every database seeded with it holds the same rows.

use chrono::{DateTime, Duration, Utc};
use entities::{IdList, TaskStatus, generation, project, shot, shot_generation, task, user};
use serde_json::json;

use crate::dataset::Dataset;
use crate::{DUMMY_USER_EMAIL, DUMMY_USER_ID, seed_id};

/// When the sample world was "created"; rows are spaced a minute apart from here.
fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_735_689_600, 0).expect("2025-01-01T00:00:00Z")
}

/// The dummy user and the sample projects.
pub fn sample() -> Dataset {
    let mut clock = epoch();
    let mut tick = || {
        clock += Duration::minutes(1);
        clock
    };
    let mut data = Dataset::default();
    data.users.push(user::Model {
        row_version: 1,
        id: DUMMY_USER_ID,
        email: Some(DUMMY_USER_EMAIL.to_owned()),
        display_name: Some("Dummy User".to_owned()),
        created_at: epoch(),
    });

    for (slug, name) in [
        ("demo-film", "Demo Film"),
        ("music-video", "Music Video"),
        ("storyboard-tests", "Storyboard Tests"),
    ] {
        let project_id = seed_id("projects", slug);
        data.projects.push(project::Model {
            row_version: 1,
            id: project_id,
            name: name.to_owned(),
            user_id: DUMMY_USER_ID,
            created_at: tick(),
        });

        // script -> storyboard -> render-a, render-b -> upscale -> encode -> publish,
        // plus a failed and a cancelled attempt: all six statuses, one DAG.
        let pipeline: [(&str, &str, TaskStatus, &[&str]); 9] = [
            ("script", "write", TaskStatus::Complete, &[]),
            ("storyboard", "draw", TaskStatus::Complete, &["script"]),
            (
                "render-a",
                "render",
                TaskStatus::InProgress,
                &["storyboard"],
            ),
            ("render-b", "render", TaskStatus::Queued, &["storyboard"]),
            ("render-old", "render", TaskStatus::Failed, &["storyboard"]),
            (
                "upscale",
                "upscale",
                TaskStatus::Queued,
                &["render-a", "render-b"],
            ),
            ("encode", "encode", TaskStatus::Pending, &["upscale"]),
            ("publish", "publish", TaskStatus::Pending, &["encode"]),
            ("teaser", "render", TaskStatus::Cancelled, &["script"]),
        ];
        let task_id = |key: &str| seed_id("tasks", &format!("{slug}/{key}"));
        for (key, task_type, status, deps) in pipeline {
            let at = tick();
            data.tasks.push(task::Model {
                row_version: 1,
                id: task_id(key),
                task_type: task_type.to_owned(),
                params: json!({ "step": key, "project": slug, "quality": "draft" }),
                status,
                dependant_on: deps.iter().map(|d| task_id(d).uuid()).collect::<IdList>(),
                output_location: (status == TaskStatus::Complete)
                    .then(|| format!("s3://seed/{slug}/{key}.json")),
                created_at: at,
                updated_at: at,
                project_id,
                claimed_by: None,
                lease_expires_at: None,
                attempts: 0,
                max_attempts: 3,
                last_error: None,
            });
        }

        let mut generation_ids = Vec::new();
        for (key, kind, made_by) in [
            ("board-1", "image", "storyboard"),
            ("board-2", "image", "storyboard"),
            ("board-3", "image", "storyboard"),
            ("animatic", "video", "storyboard"),
        ] {
            let at = tick();
            let id = seed_id("generations", &format!("{slug}/{key}"));
            generation_ids.push(id);
            data.generations.push(generation::Model {
                row_version: 1,
                id,
                tasks: IdList::from(vec![task_id(made_by).uuid()]),
                location: Some(format!("s3://seed/{slug}/{key}")),
                generation_type: Some(kind.to_owned()),
                created_at: at,
                updated_at: at,
                project_id,
            });
        }

        for (key, name, timeline) in [
            ("opening", "Opening", &[0usize, 1, 3][..]),
            ("closing", "Closing", &[2, 1][..]),
        ] {
            let at = tick();
            let shot_id = seed_id("shots", &format!("{slug}/{key}"));
            data.shots.push(shot::Model {
                row_version: 1,
                id: shot_id,
                name: name.to_owned(),
                created_at: at,
                updated_at: at,
                project_id,
            });
            for (position, g) in timeline.iter().enumerate() {
                data.shot_generations.push(shot_generation::Model {
                    row_version: 1,
                    id: seed_id("shot_generations", &format!("{slug}/{key}/{position}")),
                    shot_id,
                    generation_id: generation_ids[*g],
                    position: position as i32,
                });
            }
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_status_is_represented_and_dependencies_form_a_dag() {
        let data = sample();
        let statuses: HashSet<TaskStatus> = data.tasks.iter().map(|t| t.status).collect();
        assert_eq!(statuses.len(), TaskStatus::ALL.len());
        // Tasks are listed in a topological order: every dependency comes earlier.
        let mut seen = HashSet::new();
        for t in &data.tasks {
            assert!(
                t.dependant_on.iter().all(|d| seen.contains(&d.uuid())),
                "{} waits on a later task",
                t.id
            );
            seen.insert(t.id.uuid());
        }
        assert_eq!(sample(), data, "deterministic");
    }
}
