//! How one value is shown: uuids and uuid lists as links to the rows they name, JSON
//! pretty-printed, NULL marked.

use entities::schema::{Column, Kind, Table};

use crate::html::{esc, segment};

/// A link to the row with `id` in `table` (when known) or wherever it is (`/find`).
pub fn row_link(table: Option<&str>, id: &str) -> String {
    let href = match table {
        Some(table) => format!("/tables/{}/rows/{}", segment(table), segment(id)),
        None => format!("/find/{}", segment(id)),
    };
    format!("<a class=\"uuid\" href=\"{}\">{}</a>", esc(&href), esc(id))
}

/// The table a uuid column points into: the row's own table for `id`, the parent for a
/// foreign key (from the registry's `belongs_to` relations), unknown otherwise.
pub fn target_of<'a>(table: &'a Table, column: &Column) -> Option<&'a str> {
    if column.name == "id" {
        return Some(table.name);
    }
    table
        .parents
        .iter()
        .find(|p| p.column == column.name)
        .map(|p| p.table)
}

/// `value` of `column` as HTML.
pub fn cell(table: &Table, column: &Column, value: Option<&str>) -> String {
    let Some(value) = value else {
        return "<span class=\"muted\">null</span>".to_owned();
    };
    match column.kind {
        Kind::Uuid => row_link(target_of(table, column), value),
        Kind::UuidList => match serde_json::from_str::<Vec<String>>(value) {
            Ok(ids) if ids.is_empty() => "<span class=\"muted\">[]</span>".to_owned(),
            Ok(ids) => ids
                .iter()
                .map(|id| row_link(None, id))
                .collect::<Vec<_>>()
                .join("<br>"),
            Err(_) => esc(value),
        },
        Kind::Json => format!("<pre>{}</pre>", esc(&pretty_json(value))),
        _ => esc(value),
    }
}

/// JSON text indented, or as it is when it does not parse.
pub fn pretty_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_link_to_their_rows_and_json_is_indented() {
        let tasks = entities::schema::table("tasks").unwrap();
        let project = tasks.column("project_id").unwrap();
        let id = "0190f5b4-0000-7000-8000-000000000001";
        assert!(cell(tasks, project, Some(id)).contains(&format!("/tables/projects/rows/{id}")));
        let deps = tasks.column("dependant_on").unwrap();
        assert!(cell(tasks, deps, Some(&format!("[\"{id}\"]"))).contains(&format!("/find/{id}")));
        let params = tasks.column("params").unwrap();
        assert_eq!(
            cell(tasks, params, Some("{\"a\":[1,\"<b>\"]}")),
            "<pre>{\n  &quot;a&quot;: [\n    1,\n    &quot;&lt;b&gt;&quot;\n  ]\n}</pre>"
        );
        assert!(cell(tasks, params, None).contains("null"));
    }
}
