//! Pictures where they beat text: a project's task dependency graph as SVG (status
//! colours, lease holders and expiry), a shot's timeline as an ordered strip.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use dal::prelude::*;

use super::failure;
use crate::Studio;
use crate::html::{error_page, esc, page, segment};

const NODE_W: i64 = 220;
const NODE_H: i64 = 64;
const GAP_X: i64 = 70;
const GAP_Y: i64 = 24;

/// The fill of a task of `status`.
pub fn colour(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Pending => "#e5e7eb",
        TaskStatus::Queued => "#bfdbfe",
        TaskStatus::InProgress => "#fde68a",
        TaskStatus::Complete => "#bbf7d0",
        TaskStatus::Failed => "#fecaca",
        TaskStatus::Cancelled => "#d1d5db",
    }
}

async fn all_tasks(db: &Database, project: Id) -> dal::Result<Vec<Task>> {
    let mut tasks = Vec::new();
    let mut request = PageRequest::first(MAX_PAGE_SIZE);
    loop {
        let page = db
            .tasks()
            .list_for_project(project, &TaskFilter::default(), request)
            .await?;
        tasks.extend(page.items);
        match page.next {
            Some(cursor) => request = PageRequest::after(cursor, MAX_PAGE_SIZE),
            None => return Ok(tasks),
        }
    }
}

/// Each task's column: the length of its longest chain of dependencies in the project
/// (a dependency outside the project, or a cycle, counts as none).
pub fn depths(tasks: &[Task]) -> HashMap<Id, usize> {
    let by_id: HashMap<Id, &Task> = tasks.iter().map(|t| (t.id, t)).collect();
    let mut depth: HashMap<Id, usize> = HashMap::new();
    // At most n rounds: each lengthens the longest settled chain by one.
    for _ in 0..=tasks.len() {
        let mut changed = false;
        for task in tasks {
            let d = task
                .dependant_on
                .iter()
                .filter(|dep| by_id.contains_key(dep))
                .map(|dep| depth.get(dep).copied().unwrap_or(0) + 1)
                .max()
                .unwrap_or(0)
                .min(tasks.len());
            if depth.get(&task.id) != Some(&d) {
                depth.insert(task.id, d);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    depth
}

/// The SVG of `tasks`: one node per task, an arrow from each dependency to its dependant.
pub fn task_svg(tasks: &[Task]) -> String {
    let depth = depths(tasks);
    let mut row_of_column: HashMap<usize, i64> = HashMap::new();
    let mut place: HashMap<Id, (i64, i64)> = HashMap::new();
    for task in tasks {
        let column = depth.get(&task.id).copied().unwrap_or(0);
        let row = row_of_column.entry(column).or_insert(0);
        place.insert(
            task.id,
            (
                10 + column as i64 * (NODE_W + GAP_X),
                10 + *row * (NODE_H + GAP_Y),
            ),
        );
        *row += 1;
    }
    let width = 20 + (row_of_column.len() as i64).max(1) * (NODE_W + GAP_X);
    let height = 20 + row_of_column.values().max().copied().unwrap_or(1) * (NODE_H + GAP_Y);
    let mut edges = String::new();
    let mut nodes = String::new();
    for task in tasks {
        let (x, y) = place[&task.id];
        for dep in task.dependant_on.iter() {
            if let Some((dx, dy)) = place.get(dep) {
                edges.push_str(&format!(
                    "<line class=\"edge\" x1=\"{}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#6b7280\" marker-end=\"url(#arrow)\"/>",
                    dx + NODE_W,
                    dy + NODE_H / 2,
                    y + NODE_H / 2
                ));
            }
        }
        let lease = match (&task.claimed_by, task.lease_expires_at) {
            (Some(holder), Some(until)) if task.status == TaskStatus::InProgress => format!(
                "held by {holder} until {}",
                until.format("%Y-%m-%d %H:%M:%SZ")
            ),
            (Some(holder), _) => format!("last claimed by {holder}"),
            _ => String::new(),
        };
        nodes.push_str(&format!(
            "<a href=\"/tables/tasks/rows/{id}\"><g class=\"task\" data-id=\"{id}\" data-status=\"{status}\">\
             <title>{id}</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\" fill=\"{fill}\" stroke=\"#374151\"/>\
             <text x=\"{tx}\" y=\"{t1}\" font-size=\"13\" font-weight=\"bold\">{kind}</text>\
             <text x=\"{tx}\" y=\"{t2}\" font-size=\"12\">{status}</text>\
             <text class=\"lease\" x=\"{tx}\" y=\"{t3}\" font-size=\"11\">{lease}</text></g></a>",
            id = task.id.0,
            status = esc(task.status.as_str()),
            fill = colour(task.status),
            tx = x + 8,
            t1 = y + 18,
            t2 = y + 36,
            t3 = y + 54,
            kind = esc(&task.task_type),
            lease = esc(&lease),
        ));
    }
    format!(
        "<svg id=\"task-graph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#6b7280\"/></marker></defs>{edges}{nodes}</svg>"
    )
}

fn parse(studio: &Studio, id: &str) -> Result<Id, Response> {
    uuid::Uuid::parse_str(id).map(Id).map_err(|_| {
        error_page(
            studio,
            StatusCode::BAD_REQUEST,
            "Bad id",
            &format!("{id:?} is not a uuid"),
        )
    })
}

/// `GET /projects/{id}/graph`.
pub async fn project_graph(State(studio): State<Arc<Studio>>, Path(id): Path<String>) -> Response {
    let project_id = match parse(&studio, &id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let project = match studio.db.projects().get(project_id).await {
        Ok(project) => project,
        Err(e) => return failure(&studio, &e),
    };
    let tasks = match all_tasks(&studio.db, project_id).await {
        Ok(tasks) => tasks,
        Err(e) => return failure(&studio, &e),
    };
    let legend: String = TaskStatus::ALL
        .iter()
        .map(|s| {
            format!(
                "<span style=\"background:{};padding:0 .5em;margin-right:.5em\">{}</span>",
                colour(*s),
                esc(s.as_str())
            )
        })
        .collect();
    let body = format!(
        "<p><a href=\"/tables/projects/rows/{}\">the project's row</a> · {} tasks</p><p>{legend}</p>{}",
        segment(&id),
        tasks.len(),
        task_svg(&tasks)
    );
    page(&studio, &format!("Tasks of {}", project.name), &body)
}

/// `GET /shots/{id}/timeline`: the shot's generations in timeline order.
pub async fn shot_timeline(State(studio): State<Arc<Studio>>, Path(id): Path<String>) -> Response {
    let shot_id = match parse(&studio, &id) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let (shot, timeline) = match (
        studio.db.shots().get(shot_id).await,
        studio.db.shots().timeline(shot_id).await,
    ) {
        (Ok(shot), Ok(timeline)) => (shot, timeline),
        (Err(e), _) | (_, Err(e)) => return failure(&studio, &e),
    };
    let mut strip = String::from(
        "<ol id=\"timeline\" style=\"display:flex;gap:.5em;list-style:none;padding:0\">",
    );
    for entry in &timeline {
        let generation = &entry.generation;
        strip.push_str(&format!(
            "<li class=\"generation\" data-id=\"{id}\" style=\"border:1px solid #374151;border-radius:6px;padding:.5em;min-width:10em\">\
             <strong>{position}</strong> <a href=\"/tables/generations/rows/{id}\">{kind}</a><br>\
             <span class=\"muted\">{location}</span></li>",
            id = generation.id.0,
            position = entry.link.position,
            kind = esc(generation.generation_type.as_deref().unwrap_or("generation")),
            location = esc(generation.location.as_deref().unwrap_or("")),
        ));
    }
    strip.push_str("</ol>");
    let body = format!(
        "<p><a href=\"/tables/shots/rows/{}\">the shot's row</a> · {} generations</p>{strip}",
        segment(&id),
        timeline.len()
    );
    page(&studio, &format!("Timeline of {}", shot.name), &body)
}
