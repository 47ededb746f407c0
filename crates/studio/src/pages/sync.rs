//! Sync: on a replica, the outbox, the dead letters (retry or discard, each confirmed)
//! and the replica's sync state; on the server, the conflict log.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use dal::prelude::*;
use sync::{DeadLetter, LastSync, SyncClient};

use super::failure;
use super::values::{pretty_json, row_link};
use crate::Studio;
use crate::html::{error_page, esc, form, page};

/// Outbox entries and conflicts shown at most.
const SHOWN: usize = 200;

fn text(row: &dal::sql::QueryResult, i: usize) -> String {
    row.try_get_by_index::<Option<String>>(i)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// `GET /sync`.
pub async fn page_handler(State(studio): State<Arc<Studio>>) -> Response {
    let body = match studio.db.backend() {
        Backend::Postgres => conflicts(&studio).await,
        Backend::Sqlite => replica(&studio).await,
    };
    match body {
        Ok(body) => page(&studio, "Sync", &body),
        Err(e) => failure(&studio, &e),
    }
}

async fn conflicts(studio: &Studio) -> dal::Result<String> {
    if !studio.db.has_table("sync_conflicts").await? {
        return Ok(
            "<p id=\"no-conflict-log\">This database has no conflict log \
                   (<code>sync_conflicts</code>): its sync migration is not applied. \
                   See <a href=\"/schema\">the schema page</a>.</p>"
                .to_owned(),
        );
    }
    let rows = studio
        .db
        .query_sql(
            &format!(
                "SELECT id::text, client_id::text, seq::text, table_name, row_id::text, column_name, \
                 losing_value::text, winning_value::text, rule, \
                 to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
                 FROM sync_conflicts ORDER BY id DESC LIMIT {SHOWN}"
            ),
            vec![],
        )
        .await?;
    let mut out = format!(
        "<p>The server's conflict log: values a later write overwrote (newest first, at most {SHOWN}).</p>\
         <table id=\"conflicts\"><tr><th>when</th><th>table</th><th>row</th><th>column</th><th>losing</th><th>winning</th><th>rule</th><th>client, seq</th></tr>"
    );
    for row in &rows {
        let table = text(row, 3);
        out.push_str(&format!(
            "<tr class=\"conflict\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td><td><pre>{}</pre></td><td>{}</td><td>{} #{}</td></tr>",
            esc(&text(row, 9)),
            esc(&table),
            row_link(entities::schema::table(&table).map(|t| t.name), &text(row, 4)),
            esc(&text(row, 5)),
            esc(&pretty_json(&text(row, 6))),
            esc(&pretty_json(&text(row, 7))),
            esc(&text(row, 8)),
            esc(&text(row, 1)),
            esc(&text(row, 2)),
        ));
    }
    out.push_str("</table>");
    if rows.is_empty() {
        out.push_str("<p class=\"muted\" id=\"no-conflicts\">no conflicts recorded</p>");
    }
    Ok(out)
}

async fn replica(studio: &Studio) -> dal::Result<String> {
    let Some(client) = SyncClient::existing(studio.db.clone()).await? else {
        return Ok("<p id=\"not-a-replica\">This database is not a replica: sync was never turned on for it \
                   (no client id in <code>sync_state</code>).</p>"
            .to_owned());
    };
    let mut out = format!(
        "<p>Replica, client id <code id=\"client-id\">{}</code>. <span id=\"pending\">{}</span> changes waiting to be pushed.</p>",
        client.client_id(),
        client.pending().await?
    );
    out.push_str(&last_sync(client.last_sync().await?));
    if let Some(re) = client.last_reidentified().await? {
        out.push_str(&format!(
            "<p class=\"notice\">Took a new client id: {}</p>",
            esc(&serde_json::to_string(&re).unwrap_or_default())
        ));
    }
    out.push_str(&dead_letter_table(studio, &client.dead_letters().await?));
    let entries = studio
        .db
        .query_sql(
            &format!(
                "SELECT CAST(seq AS TEXT), table_name, row_id, op, changes, client_time \
                 FROM sync_outbox ORDER BY seq LIMIT {SHOWN}"
            ),
            vec![],
        )
        .await?;
    out.push_str(&format!(
        "<h2>Outbox</h2><p class=\"muted\">Oldest first, at most {SHOWN}.</p><table id=\"outbox\">\
         <tr><th>seq</th><th>table</th><th>row</th><th>op</th><th>changes</th><th>written</th></tr>"
    ));
    for row in &entries {
        let table = text(row, 1);
        out.push_str(&format!(
            "<tr class=\"entry\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td><td>{}</td></tr>",
            esc(&text(row, 0)),
            esc(&table),
            row_link(entities::schema::table(&table).map(|t| t.name), &text(row, 2)),
            esc(&text(row, 3)),
            esc(&pretty_json(&text(row, 4))),
            esc(&text(row, 5)),
        ));
    }
    out.push_str("</table>");
    let state = studio
        .db
        .query_sql("SELECT key, value FROM sync_state ORDER BY key", vec![])
        .await?;
    out.push_str("<h2>Sync state</h2><table id=\"sync-state\">");
    for row in &state {
        out.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>",
            esc(&text(row, 0)),
            esc(&text(row, 1))
        ));
    }
    out.push_str("</table>");
    Ok(out)
}

/// The outcome of the last sync an engine ran on the replica, as the engine stored it.
fn last_sync(last: Option<LastSync>) -> String {
    let Some(last) = last else {
        return "<p id=\"last-sync\" class=\"muted\">No sync engine has run on this replica yet.</p>"
            .to_owned();
    };
    let success = last
        .last_success
        .map_or_else(|| "never".to_owned(), |at| at.to_rfc3339());
    match &last.error {
        None => format!(
            "<p id=\"last-sync\">Last sync: <span class=\"ok\">succeeded</span> at {}.</p>",
            esc(&last.at.to_rfc3339())
        ),
        Some(error) => format!(
            "<p id=\"last-sync\">Last sync: <span class=\"failed\">failed</span> at {}{}: \
             <code id=\"last-sync-error\">{}</code>. Last success: {}.</p>",
            esc(&last.at.to_rfc3339()),
            if last.unauthorized {
                " (the server refused the credentials; syncing waits for a new token)"
            } else {
                ""
            },
            esc(error),
            esc(&success)
        ),
    }
}

fn dead_letter_table(studio: &Studio, letters: &[DeadLetter]) -> String {
    let mut out = format!(
        "<h2>Dead letters</h2><p>{} changes the server refused for good.</p><table id=\"dead-letters\">\
         <tr><th>seq</th><th>table</th><th>row</th><th>op</th><th>changes</th><th>reason</th><th></th></tr>",
        letters.len()
    );
    for letter in letters {
        let actions = if studio.writable {
            format!(
                "<a class=\"retry\" href=\"/sync/dead-letters/{seq}/retry\">retry…</a> \
                 <a class=\"discard\" href=\"/sync/dead-letters/{seq}/discard\">discard…</a>",
                seq = letter.seq
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "<tr class=\"dead-letter\" data-seq=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td><td class=\"reason\">{}</td><td>{actions}</td></tr>",
            letter.seq,
            letter.seq,
            esc(&letter.table),
            row_link(entities::schema::table(&letter.table).map(|t| t.name), &letter.row_id),
            esc(&letter.op),
            esc(&pretty_json(&letter.changes)),
            esc(&letter.reason),
        ));
    }
    out.push_str("</table>");
    out
}

/// What a dead letter action is, in words, or `None` for an unknown one.
fn describe(action: &str) -> Option<&'static str> {
    match action {
        "retry" => Some("Send this change to the server again (it goes to the end of the outbox)"),
        "discard" => Some("Drop this change for good (it is not sent again)"),
        _ => None,
    }
}

async fn letter_or_page(studio: &Studio, seq: i64) -> Result<(SyncClient, DeadLetter), Response> {
    let client = match SyncClient::existing(studio.db.clone()).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return Err(error_page(
                studio,
                StatusCode::NOT_FOUND,
                "Not a replica",
                "this database has no dead letters",
            ));
        }
        Err(e) => return Err(failure(studio, &e)),
    };
    match client.dead_letters().await {
        Ok(letters) => match letters.into_iter().find(|l| l.seq == seq) {
            Some(letter) => Ok((client, letter)),
            None => Err(error_page(
                studio,
                StatusCode::NOT_FOUND,
                "No such dead letter",
                &format!("no dead letter #{seq}"),
            )),
        },
        Err(e) => Err(failure(studio, &e)),
    }
}

fn check(studio: &Studio, action: &str) -> Result<&'static str, Response> {
    if !studio.writable {
        return Err(error_page(
            studio,
            StatusCode::FORBIDDEN,
            "Read-only",
            "studio was started without --write: it only reads",
        ));
    }
    describe(action).ok_or_else(|| {
        error_page(
            studio,
            StatusCode::NOT_FOUND,
            "No such action",
            "retry or discard",
        )
    })
}

/// `GET /sync/dead-letters/{seq}/{retry|discard}`: the confirmation.
pub async fn confirm(
    State(studio): State<Arc<Studio>>,
    Path((seq, action)): Path<(i64, String)>,
) -> Response {
    let what = match check(&studio, &action) {
        Ok(what) => what,
        Err(response) => return response,
    };
    let letter = match letter_or_page(&studio, seq).await {
        Ok((_, letter)) => letter,
        Err(response) => return response,
    };
    let inner = format!(
        "<p>{what}?</p>{}<button id=\"confirm\">{}</button> <a href=\"/sync\">cancel</a>",
        dead_letter_table(&studio, std::slice::from_ref(&letter)),
        esc(&action)
    );
    page(
        &studio,
        &format!("{action} dead letter #{seq}?"),
        &form(
            &studio,
            &format!("/sync/dead-letters/{seq}/{action}"),
            &inner,
        ),
    )
}

/// `POST /sync/dead-letters/{seq}/{retry|discard}`.
pub async fn act(
    State(studio): State<Arc<Studio>>,
    Path((seq, action)): Path<(i64, String)>,
) -> Response {
    if let Err(response) = check(&studio, &action) {
        return response;
    }
    let client = match letter_or_page(&studio, seq).await {
        Ok((client, _)) => client,
        Err(response) => return response,
    };
    let done = match action.as_str() {
        "retry" => client.retry_dead_letter(seq).await,
        _ => client.discard_dead_letter(seq).await,
    };
    match done {
        Ok(true) => Redirect::to("/sync").into_response(),
        // Another request retried or discarded it between the look-up and now: say so
        // rather than answer as if this action had been done.
        Ok(false) => error_page(
            &studio,
            StatusCode::CONFLICT,
            "Nothing done",
            &format!(
                "dead letter #{seq} was retried or discarded by another request meanwhile: nothing was done"
            ),
        ),
        Err(e) => failure(&studio, &e),
    }
}
