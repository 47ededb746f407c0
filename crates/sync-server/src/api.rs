//! The HTTP endpoints: authentication first, then a bounded body, then the sync
//! operation as the authenticated user. Every failure is an [`ErrorBody`] with its status.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use sea_orm::ConnectionTrait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sync::http::{ErrorBody, ErrorCode, HEALTH_PATH, PULL_PATH, PUSH_PATH, SETTLED_PATH};
use sync::protocol::{PullRequest, PushBatch, SettledQuery};
use uuid::Uuid;

use crate::App;
use crate::auth::{AuthError, Session};
use crate::clients::{self, Binding};
use crate::events::Change;

/// A failed request, as the client will read it (a handler returns
/// `Result<Response, Failure>`; axum turns either side into the response).
pub struct Failure(ErrorBody);

impl Failure {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure(ErrorBody::new(code, message))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.error.status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json(status, &self.0);
        if self.0.error == ErrorCode::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            Bytes::from(bytes),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The routes, on `app`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(PUSH_PATH, post(push))
        .route(PULL_PATH, post(pull))
        .route(SETTLED_PATH, post(settled))
        .route(HEALTH_PATH, get(health))
        .route(sync::http::EVENTS_PATH, get(crate::events::stream))
        .route(sync::http::SNAPSHOT_PATH, get(crate::snapshot::download))
        .with_state(app)
}

/// The user the request's token stands for.
pub(crate) async fn authenticate(app: &App, headers: &HeaderMap) -> Result<Uuid, Failure> {
    session(app, headers).await.map(|s| s.user)
}

/// The request's token, accepted: its user and until when.
pub(crate) async fn session(app: &App, headers: &HeaderMap) -> Result<Session, Failure> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    app.verifier
        .session(authorization)
        .await
        .map_err(|e| match e {
            // The token may be good: a client told "unauthorized" would stop syncing
            // until its user signs in again, over an outage of the server's keys.
            AuthError::KeysUnavailable => Failure::new(ErrorCode::Unavailable, e.to_string()),
            e => Failure::new(ErrorCode::Unauthorized, e.to_string()),
        })
}

/// How long a request's body may take to arrive once its headers have.
const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// The body as `T`, read up to the limit (after decompression): over it is 413, not
/// JSON of the right shape (or not valid gzip) is 400.
async fn read<T: DeserializeOwned>(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, Failure> {
    let limit = app.limits.body_bytes;
    let too_large = || {
        Failure::new(
            ErrorCode::TooLarge,
            format!("the request body is over the server's limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // A body trickling in holds a connection and a task: it gets a deadline.
    let collected = tokio::time::timeout(
        BODY_DEADLINE,
        http_body_util::Limited::new(body, limit).collect(),
    );
    let Ok(collected) = collected.await else {
        return Err(Failure::new(
            ErrorCode::BadRequest,
            format!("the request body did not arrive within {BODY_DEADLINE:?}"),
        ));
    };
    let bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(too_large());
        }
        Err(e) => {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                format!("the request body could not be read: {e}"),
            ));
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        Failure::new(
            ErrorCode::BadRequest,
            format!("the request is not valid: {e}"),
        )
    })
}

async fn push(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let user = authenticate(&app, &headers).await?;
    let batch: PushBatch = read(&app, &headers, body).await?;
    if batch.entries.len() > app.limits.batch_entries {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!(
                "a push may carry at most {} entries; this one has {}",
                app.limits.batch_entries,
                batch.entries.len()
            ),
        ));
    }
    match clients::bind(&app.db, batch.client_id, user).await {
        Ok(Binding::Owned) => {}
        Ok(Binding::Foreign) => {
            tracing::info!(%user, "push refused: the client id belongs to another user");
            return Err(Failure::new(
                ErrorCode::Forbidden,
                "this client id belongs to another user; a new replica needs a new client id",
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, "binding a client failed");
            return Err(Failure::new(
                ErrorCode::Unavailable,
                "the server cannot do this now",
            ));
        }
    }
    let entries = batch.entries.len();
    match app.server.push_as(user, batch).await {
        Ok(ack) => {
            tracing::info!(%user, entries, last_seq = ack.last_seq, rejected = ack.rejected.len(), "push");
            // The user's other devices; a server without `LISTEN` hears of nothing else.
            app.events.changed_for(Change::Users([user].into()));
            Ok(json(StatusCode::OK, &ack))
        }
        Err(e) => {
            tracing::info!(%user, entries, error = %e, "push not applied");
            Err(Failure(ErrorBody::from_transport(&e)))
        }
    }
}

async fn pull(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let user = authenticate(&app, &headers).await?;
    let request: PullRequest = read(&app, &headers, body).await?;
    if request.limit > app.limits.page_rows {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!(
                "a pull page may ask for at most {} rows; this one asks for {}",
                app.limits.page_rows, request.limit
            ),
        ));
    }
    match app.server.pull_as(user, request).await {
        Ok(page) => {
            tracing::debug!(%user, rows = page.rows.len(), "pull");
            Ok(json(StatusCode::OK, &page))
        }
        Err(e) => {
            tracing::info!(%user, error = %e, "pull failed");
            Err(Failure(ErrorBody::from_transport(&e)))
        }
    }
}

/// Which of a client's entries the server has (for a replica taking a new client id).
/// Only the user the client id is bound to gets an answer; for anyone else it is the
/// empty answer of an unknown client, so the endpoint tells nothing about another user's
/// client ids. Asking binds nothing.
async fn settled(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let user = authenticate(&app, &headers).await?;
    let query: SettledQuery = read(&app, &headers, body).await?;
    if query.entries.len() > app.limits.batch_entries {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!(
                "a question may name at most {} entries; this one names {}",
                app.limits.batch_entries,
                query.entries.len()
            ),
        ));
    }
    let asked = query.entries.len();
    match app.server.settled_as(user, query).await {
        Ok(reply) => {
            tracing::info!(%user, asked, settled = reply.settled.len(), "settled");
            Ok(json(StatusCode::OK, &reply))
        }
        Err(e) => {
            tracing::info!(%user, asked, error = %e, "settled failed");
            Err(Failure(ErrorBody::from_transport(&e)))
        }
    }
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let ping = app
        .db
        .transaction(|uow| {
            Box::pin(async move {
                let backend = uow.get_database_backend();
                uow.query_one_raw(sea_orm::Statement::from_string(backend, "SELECT 1"))
                    .await?;
                Ok(())
            })
        })
        .await;
    match ping {
        Ok(()) => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        Err(e) => {
            tracing::warn!(error = %e, "health check: the database does not answer");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"status": "unavailable"}),
            )
        }
    }
}
