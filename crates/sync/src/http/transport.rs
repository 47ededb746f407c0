//! [`HttpTransport`]: a device's way to a sync server, over HTTPS (rustls) with a bearer
//! token the application supplies and may refresh.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{EVENTS_PATH, ErrorBody, PULL_PATH, PUSH_PATH, SETTLED_PATH, SNAPSHOT_PATH};
use crate::protocol::{PullPage, PullRequest, PushAck, PushBatch, SettledQuery, SettledReply};
use crate::transport::{Transport, TransportError};

/// Where the transport gets its bearer token, asked before every request: an application
/// whose tokens expire (Supabase's last an hour) hands out a fresh one here.
///
/// ```
/// use sync::http::{StaticToken, TokenProvider};
/// # async fn run() {
/// let tokens = StaticToken::new("eyJhbGciOi...");
/// assert_eq!(tokens.token().await.unwrap(), "eyJhbGciOi...");
/// # }
/// ```
#[async_trait]
pub trait TokenProvider: Send + Sync {
    /// The token to send now; `Err` (why, without the token) stops the request as
    /// unauthorized.
    async fn token(&self) -> Result<String, String>;
}

/// A token that never changes (a service's long-lived token, or a test's).
#[derive(Clone)]
pub struct StaticToken(String);

impl StaticToken {
    /// The provider of `token`.
    pub fn new(token: impl Into<String>) -> StaticToken {
        StaticToken(token.into())
    }
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

#[async_trait]
impl TokenProvider for StaticToken {
    async fn token(&self) -> Result<String, String> {
        Ok(self.0.clone())
    }
}

/// The transport cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpTransportError {
    /// The server's address is not an `http://` or `https://` URL.
    #[error("the sync server URL is not usable: {0}")]
    Url(String),
    /// A root certificate given to trust does not parse.
    #[error("the root certificate is not usable: {0}")]
    Certificate(String),
    /// The HTTP client could not be built (TLS set-up).
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
}

/// Requests over this size are sent gzip-compressed.
const COMPRESS_FROM: usize = 1024;

/// Pushes and pulls through a sync server (`sync-server`), as the user whose token
/// [`TokenProvider`] gives. The server decides what the user may read and write; the
/// device holds no database credentials.
///
/// ```no_run
/// use std::sync::Arc;
/// use sync::http::{HttpTransport, StaticToken};
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let transport = HttpTransport::new("https://sync.example.com", Arc::new(StaticToken::new("jwt")))?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpTransport {
    base: url::Url,
    http: reqwest::Client,
    tokens: Arc<dyn TokenProvider>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("server", &redacted(&self.base))
            .finish_non_exhaustive()
    }
}

/// The URL without user name, password or query: what may be shown.
fn redacted(url: &url::Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    )
}

impl HttpTransport {
    /// A transport to the server at `base` (`https://…`, or `http://` on a trusted
    /// network), trusting the platform's usual roots (webpki).
    pub fn new(
        base: &str,
        tokens: Arc<dyn TokenProvider>,
    ) -> Result<HttpTransport, HttpTransportError> {
        HttpTransport::with_roots(base, tokens, &[])
    }

    /// Like [`HttpTransport::new`], also trusting the PEM certificates in `roots` (a
    /// private CA, or a test's self-signed server).
    pub fn with_roots(
        base: &str,
        tokens: Arc<dyn TokenProvider>,
        roots: &[&[u8]],
    ) -> Result<HttpTransport, HttpTransportError> {
        let base = url::Url::parse(base).map_err(|e| HttpTransportError::Url(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(HttpTransportError::Url(format!(
                "expected http:// or https:// with a host, not {}",
                redacted(&base)
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(HttpTransportError::Url(
                "credentials do not belong in the URL; the token provider supplies them".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .gzip(true)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60));
        for pem in roots {
            let certificate = reqwest::Certificate::from_pem(pem)
                .map_err(|e| HttpTransportError::Certificate(e.to_string()))?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder
            .build()
            .map_err(|e| HttpTransportError::Client(e.to_string()))?;
        Ok(HttpTransport { base, http, tokens })
    }

    /// The server's base URL.
    pub fn base(&self) -> &url::Url {
        &self.base
    }

    /// The URL of `path` on the server.
    pub fn url(&self, path: &str) -> url::Url {
        let mut url = self.base.clone();
        let joined = format!("{}{}", self.base.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        url
    }

    /// A bearer token from the provider, or the error that stops the request.
    pub async fn bearer(&self) -> Result<String, TransportError> {
        self.tokens
            .token()
            .await
            .map_err(|why| TransportError::Unauthorized(format!("no token: {why}")))
    }

    async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        path: &str,
        request: &Q,
    ) -> Result<A, TransportError> {
        let token = self.bearer().await?;
        let json = serde_json::to_vec(request)
            .map_err(|e| TransportError::Refused(format!("the request does not encode: {e}")))?;
        let mut post = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        post = if json.len() >= COMPRESS_FROM {
            post.header(reqwest::header::CONTENT_ENCODING, "gzip")
                .body(gzip(&json))
        } else {
            post.body(json)
        };
        let response = post.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                // A proxy's page or a cut-off body: the outcome is unknown, so retry.
                TransportError::Transient(format!("the server's answer does not parse: {e}"))
            });
        }
        Err(refusal(status, &bytes))
    }
}

impl HttpTransport {
    /// Downloads the server's snapshot of the user's rows (`GET /v1/snapshot`) into the
    /// new file `to`, streaming: the bytes as sent, for the snapshot crate to check and
    /// put in place (`snapshot::bootstrap` does both). A failed download removes what it
    /// wrote; `to` must not exist.
    pub async fn download_snapshot(&self, to: &std::path::Path) -> Result<u64, TransportError> {
        let token = self.bearer().await?;
        let response = self
            .http
            .get(self.url(SNAPSHOT_PATH))
            .bearer_auth(token)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.map_err(unreachable)?;
            return Err(refusal(status, &bytes));
        }
        let local = |e: std::io::Error| {
            TransportError::Refused(format!("cannot write {}: {e}", to.display()))
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(to)
            .map_err(local)?;
        let mut body = response.bytes_stream();
        let mut written = 0u64;
        let copied = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(unreachable)?;
                file.write_all(&chunk).map_err(local)?;
                written += chunk.len() as u64;
            }
            file.sync_all().map_err(local)
        }
        .await;
        if let Err(e) = copied {
            let _ = std::fs::remove_file(to);
            return Err(e);
        }
        Ok(written)
    }
}

/// The error an unsuccessful answer stands for: the sync server's error body, or for
/// anything else a 401 or a failure to retry.
fn refusal(status: reqwest::StatusCode, bytes: &[u8]) -> TransportError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => body.into_transport(),
        Err(_) if status.as_u16() == 401 => TransportError::Unauthorized(format!("HTTP {status}")),
        // Not the sync server's answer (a load balancer's 502, a gateway timeout): the
        // outcome is unknown.
        Err(_) => TransportError::Transient(format!("HTTP {status}")),
    }
}

/// A request that got no answer: whether it was applied is unknown, so it is retried
/// (the server applies each entry at most once).
fn unreachable(e: reqwest::Error) -> TransportError {
    // reqwest's message names the URL, which holds nothing secret (no credentials).
    TransportError::Transient(format!("the sync server did not answer: {e}"))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

#[async_trait]
impl Transport for HttpTransport {
    async fn push(&self, batch: PushBatch) -> Result<PushAck, TransportError> {
        self.call(PUSH_PATH, &batch).await
    }

    async fn pull(&self, request: PullRequest) -> Result<PullPage, TransportError> {
        self.call(PULL_PATH, &request).await
    }

    async fn settled(&self, query: SettledQuery) -> Result<SettledReply, TransportError> {
        self.call(SETTLED_PATH, &query).await
    }

    /// The server's Server-Sent Events: one item per `change` event.
    async fn changes(&self) -> Option<BoxStream<'static, ()>> {
        let token = self.bearer().await.ok()?;
        let response = self
            .http
            .get(self.url(EVENTS_PATH))
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success());
        let Some(response) = response else {
            // Unreachable or refused: an empty stream, opened again after a pause.
            return Some(futures::stream::empty().boxed());
        };
        Some(change_events(response.bytes_stream()).boxed())
    }
}

/// The `change` events of a Server-Sent Events byte stream (comments and keep-alives
/// skipped), ending with the stream or its first error.
fn change_events(
    bytes: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
) -> impl Stream<Item = ()> + Send {
    futures::stream::unfold(
        (Box::pin(bytes), Vec::<u8>::new()),
        |(mut bytes, mut buffer)| async move {
            loop {
                // An event ends at a blank line.
                if let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                    let event: Vec<u8> = buffer.drain(..end + 2).collect();
                    let is_change = String::from_utf8_lossy(&event)
                        .lines()
                        .any(|line| line.trim_end() == "event: change");
                    if is_change {
                        return Some(((), (bytes, buffer)));
                    }
                    continue;
                }
                match bytes.next().await {
                    Some(Ok(chunk)) => buffer.extend(chunk.iter().filter(|b| **b != b'\r')),
                    _ => return None,
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_under_the_base_path_and_never_show_credentials() {
        let tokens = Arc::new(StaticToken::new("secret-token"));
        let t = HttpTransport::new("https://sync.example.com:8443/api/", tokens.clone()).unwrap();
        assert_eq!(
            t.url(PUSH_PATH).as_str(),
            "https://sync.example.com:8443/api/v1/push"
        );
        let err = HttpTransport::new("https://u:pw@sync.example.com/", tokens).unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("pw") && !shown.contains("secret-token"),
            "{shown}"
        );
        assert!(format!("{:?}", StaticToken::new("secret-token")).contains("redacted"));
    }

    #[test]
    fn only_http_urls_are_accepted() {
        let tokens = Arc::new(StaticToken::new("t"));
        assert!(HttpTransport::new("postgres://u:pw@db/app", tokens.clone()).is_err());
        assert!(HttpTransport::new("not a url", tokens).is_err());
    }
}
