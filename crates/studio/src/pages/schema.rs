//! The schema: applied and pending migrations, the schema version, and the drift check,
//! from the migration tooling's own functions (`migration status` and `migration check`).

use std::sync::Arc;

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use dal::Database;

use crate::Studio;
use crate::html::{esc, page};

/// `GET /schema`; with `?drift=1`, the drift check too.
pub async fn page_handler(
    State(studio): State<Arc<Studio>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut body = String::new();
    let version = match studio.db.schema_version().await {
        Ok(Some(version)) => esc(&version),
        Ok(None) => "none: no migration applied".to_owned(),
        Err(e) => format!("<span class=\"error\">{}</span>", esc(&e.to_string())),
    };
    body.push_str(&format!(
        "<p>schema version: <strong id=\"schema-version\">{version}</strong>; this build's newest: {}</p>",
        esc(Database::latest_schema_version())
    ));
    body.push_str("<h2>Migrations</h2>");
    match migration::cli::status(&studio.db).await {
        Ok(states) => {
            let pending = states.iter().filter(|s| !s.applied).count();
            body.push_str(&format!(
                "<p id=\"pending-count\">{pending} pending</p><table id=\"migrations\"><tr><th>migration</th><th>state</th></tr>"
            ));
            for state in states {
                let shown = if state.applied { "applied" } else { "pending" };
                body.push_str(&format!(
                    "<tr class=\"{shown}\"><td>{}</td><td>{shown}</td></tr>",
                    esc(&state.name)
                ));
            }
            body.push_str("</table>");
        }
        Err(e) => body.push_str(&format!(
            "<p class=\"error\">{}</p>",
            esc(&dal::DalError::from(e).to_string())
        )),
    }
    body.push_str("<h2>Drift check</h2><p class=\"muted\">The live database compared with what the migration history makes (<code>migration check</code>).</p>");
    // On Postgres the check migrates a scratch schema inside the database it looks at:
    // never done by merely opening the page, only when asked for.
    if !query.contains_key("drift") {
        body.push_str(
            "<p><a id=\"run-drift\" href=\"/schema?drift=1\">run the drift check</a> \
             <span class=\"muted\">(on Postgres it creates a scratch schema <code>dal_scratch_…</code> \
             in this database, migrates it and drops it)</span></p>",
        );
        return page(&studio, "Schema", &body);
    }
    // The check makes a scratch schema in the live database (Postgres) and drops it
    // after: it runs to its end on a task of its own, so a visitor who leaves or reloads
    // the page meanwhile (which drops this request) does not leave the scratch behind.
    let config = studio.config.clone();
    let checked = tokio::spawn(async move {
        migration::cli::check(&config)
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(format!("the check stopped: {e}")));
    match checked {
        Ok(problems) if problems.is_empty() => {
            body.push_str("<p id=\"drift\" class=\"clean\">no differences</p>");
        }
        Ok(problems) => {
            body.push_str(&format!(
                "<p>{} differences:</p><ul id=\"drift\">",
                problems.len()
            ));
            for problem in problems {
                body.push_str(&format!("<li>{}</li>", esc(&problem)));
            }
            body.push_str("</ul>");
        }
        Err(e) => body.push_str(&format!(
            "<p id=\"drift\" class=\"error\">the check did not run: {}</p>",
            esc(&e)
        )),
    }
    page(&studio, "Schema", &body)
}
