//! Who may use Studio, and which requests may change anything.
//!
//! * **Access token**: 32 random bytes made at start, printed once in the URL. A request
//!   with `?token=` that matches gets an `HttpOnly`, `SameSite=Strict` cookie and a
//!   redirect to the same address without the token (so it leaves the address bar and
//!   the history); afterwards the cookie is the key. Anything else gets 401.
//! * **Host check**: the `Host` header must be the address Studio listens on
//!   (`127.0.0.1:PORT` or `localhost:PORT`), so a page whose name resolves to 127.0.0.1
//!   (DNS rebinding) cannot talk to it.
//! * **CSRF**: every `POST` carries the per-process CSRF token in a form field, compared
//!   in constant time, and an `Origin` (or, without one, a `Referer`) of Studio's own
//!   address. Only `GET`, `HEAD` and `POST` are served; a `GET` never changes anything.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;

use crate::Studio;

/// The form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// The largest form Studio reads.
pub const MAX_FORM_BYTES: usize = 4 * 1024 * 1024;

/// The tokens of one Studio process and the address they are bound to.
pub struct Access {
    token: String,
    csrf: String,
    addr: SocketAddr,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without stopping at the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Access {
    /// New random tokens for a Studio listening on `addr`.
    pub fn new(addr: SocketAddr) -> Access {
        Access {
            token: random_hex(),
            csrf: random_hex(),
            addr,
        }
    }

    /// The access token (for the URL printed at start).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The CSRF token every form carries.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The cookie's name: one per port, as cookies are shared by every port of a host.
    pub fn cookie_name(&self) -> String {
        format!("studio_{}", self.addr.port())
    }

    fn host_allowed(&self, host: &str) -> bool {
        let port = self.addr.port();
        host == format!("127.0.0.1:{port}") || host == format!("localhost:{port}")
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        origin
            .strip_prefix("http://")
            .is_some_and(|host| self.host_allowed(host))
    }

    fn cookie_token<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    fn has_valid_cookie(&self, headers: &HeaderMap) -> bool {
        self.cookie_token(headers)
            .is_some_and(|t| constant_time_eq(t.as_bytes(), self.token.as_bytes()))
    }

    /// Whether a `POST` comes from Studio's own page: `Origin`, else `Referer`.
    fn same_origin(&self, headers: &HeaderMap) -> bool {
        if let Some(origin) = headers.get(header::ORIGIN) {
            return origin.to_str().is_ok_and(|o| self.origin_allowed(o));
        }
        headers
            .get(header::REFERER)
            .and_then(|r| r.to_str().ok())
            .and_then(|r| url::Url::parse(r).ok())
            .is_some_and(|r| self.origin_allowed(&r.origin().ascii_serialization()))
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut response = (status, message.to_owned()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The query without its `token` parameter, for the redirect after the exchange.
fn without_token(path: &str, query: &str) -> String {
    let kept: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        return path.to_owned();
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish();
    format!("{path}?{query}")
}

/// The guard in front of every route: host, token, and for `POST` the CSRF checks.
pub async fn guard(State(studio): State<Arc<Studio>>, request: Request, next: Next) -> Response {
    let access = &studio.access;
    let host_ok = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| access.host_allowed(h));
    if !host_ok {
        return refuse(
            StatusCode::FORBIDDEN,
            "this studio answers only at its own address (127.0.0.1 or localhost with its port)",
        );
    }
    let method = request.method().clone();
    if method != Method::GET && method != Method::HEAD && method != Method::POST {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and POST are served",
        );
    }
    let query_token = request.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(token) = query_token {
        if method == Method::POST || !constant_time_eq(token.as_bytes(), access.token.as_bytes()) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "wrong access token: open the URL studio printed when it started",
            );
        }
        let location = without_token(request.uri().path(), request.uri().query().unwrap_or(""));
        let cookie = format!(
            "{}={}; HttpOnly; SameSite=Strict; Path=/",
            access.cookie_name(),
            access.token
        );
        let mut response = StatusCode::SEE_OTHER.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::LOCATION,
            HeaderValue::from_str(&location).unwrap_or(HeaderValue::from_static("/")),
        );
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            headers.insert(header::SET_COOKIE, cookie);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return response;
    }
    if !access.has_valid_cookie(request.headers()) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "no access token: open the URL studio printed when it started (it carries ?token=...)",
        );
    }
    let request = if method == Method::POST {
        match check_post(access, request).await {
            Ok(request) => request,
            Err(response) => return response,
        }
    } else {
        request
    };
    let mut response = next.run(request).await;
    harden(response.headers_mut());
    response
}

/// Checks a `POST`'s origin and CSRF field, and hands the request on with its body.
async fn check_post(access: &Access, request: Request) -> Result<Request, Response> {
    if !access.same_origin(request.headers()) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "cross-site request refused: the form did not come from this studio's page",
        ));
    }
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| refuse(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large"))?;
    let csrf_ok = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .is_some_and(|(_, v)| constant_time_eq(v.as_bytes(), access.csrf.as_bytes()));
    if !csrf_ok {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token: reload the page and submit the form again",
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Headers every page gets: no caching, no framing, no scripts but Studio's own.
fn harden(headers: &mut HeaderMap) {
    let set = [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let addr: SocketAddr = "127.0.0.1:4983".parse().unwrap();
        let (a, b) = (Access::new(addr), Access::new(addr));
        assert_ne!(a.token(), b.token());
        assert_ne!(a.token(), a.csrf());
        assert_eq!(a.token().len(), 64);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!format!("{a:?}").contains(a.token()));
    }

    #[test]
    fn origins_and_hosts_are_the_studios_own() {
        let access = Access::new("127.0.0.1:4983".parse().unwrap());
        assert!(access.host_allowed("127.0.0.1:4983"));
        assert!(access.host_allowed("localhost:4983"));
        assert!(!access.host_allowed("evil.example:4983"));
        assert!(!access.host_allowed("127.0.0.1:4984"));
        assert!(access.origin_allowed("http://127.0.0.1:4983"));
        assert!(!access.origin_allowed("https://127.0.0.1:4983"));
        assert!(!access.origin_allowed("http://evil.example"));
        assert!(!access.origin_allowed("null"));
    }

    #[test]
    fn the_token_leaves_the_redirect() {
        assert_eq!(without_token("/", "token=abc"), "/");
        assert_eq!(
            without_token("/tables/tasks", "token=abc&sort=id"),
            "/tables/tasks?sort=id"
        );
    }
}
