//! HTML by hand: escaping, the page frame, forms and links. Every value that reaches a
//! page goes through [`esc`].

use axum::response::{Html, IntoResponse, Response};

use crate::Studio;

/// Escapes text for an HTML element's content or a quoted attribute value.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A path with a query built from `pairs` (values percent-encoded), escaped for an
/// attribute.
pub fn href(path: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return esc(path);
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    esc(&format!("{path}?{query}"))
}

/// One path segment, percent-encoded (a table name or an id from the database).
pub fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
header{background:#1f2937;color:#fff;padding:.5em 1em;display:flex;gap:1.5em;align-items:center}\
header a{color:#fff}main{padding:1em}table{border-collapse:collapse;font-size:.9em}\
td,th{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;text-align:left}\
pre{margin:0;font-size:.9em}.error{color:#b91c1c}.muted{color:#6b7280}\
.badge{padding:.1em .5em;border-radius:.5em;background:#374151}\
.badge.write{background:#b45309}.notice{background:#fef3c7;padding:.5em;margin:.5em 0}\
.side{display:flex;gap:2em}.side>div{flex:1}label{display:block;margin-top:.5em}\
input[type=text],textarea{width:40em;max-width:100%}";

/// A whole page: the header with the database (redacted) and the mode, then `body`.
pub fn page(studio: &Studio, title: &str, body: &str) -> Response {
    let mode = if studio.writable {
        "<span class=\"badge write\">writable</span>"
    } else {
        "<span class=\"badge\">read-only</span>"
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title} · studio</title>\
         <style>{STYLE}</style></head><body><header><strong>studio</strong>\
         <a href=\"/\">tables</a><a href=\"/schema\">schema</a><a href=\"/sync\">sync</a>\
         <span class=\"muted\">{backend}: {target}</span>{mode}</header>\
         <main><h1>{title}</h1>{body}</main></body></html>",
        title = esc(title),
        backend = esc(studio.config.backend().as_str()),
        target = esc(&studio.config.describe_target()),
    ))
    .into_response()
}

/// A `POST` form to `action` carrying the CSRF token, with `inner` inside.
pub fn form(studio: &Studio, action: &str, inner: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"{}\" value=\"{}\">{inner}</form>",
        esc(action),
        crate::auth::CSRF_FIELD,
        esc(studio.access.csrf()),
    )
}

/// An error page with `status`.
pub fn error_page(
    studio: &Studio,
    status: axum::http::StatusCode,
    title: &str,
    message: &str,
) -> Response {
    let mut response = page(
        studio,
        title,
        &format!("<p class=\"error\">{}</p>", esc(message)),
    );
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(
            href("/tables/tasks", &[("filter", "a&b"), ("value", "\"x\"")]),
            "/tables/tasks?filter=a%26b&amp;value=%22x%22"
        );
        assert_eq!(segment("a/b c"), "a%2Fb+c");
    }
}
