//! Sync over HTTP: the protocol's requests as JSON over HTTPS, so a device talks to a
//! sync server (the `sync-server` crate) and never holds the database's credentials.
//!
//! This module is the contract both sides build on: the paths, the error body and how an
//! error maps to a status code and back to a [`TransportError`]. [`HttpTransport`] is the
//! client side.
//!
//! | request | body | answer |
//! |---|---|---|
//! | `POST /v1/push` | [`PushBatch`](crate::protocol::PushBatch) | [`PushAck`](crate::protocol::PushAck) |
//! | `POST /v1/pull` | [`PullRequest`](crate::protocol::PullRequest) | [`PullPage`](crate::protocol::PullPage) |
//! | `POST /v1/settled` | [`SettledQuery`](crate::protocol::SettledQuery) | [`SettledReply`](crate::protocol::SettledReply) |
//! | `GET /v1/events` | | Server-Sent Events: `change` when the server has something new |
//! | `GET /health` | | `{"status":"ok"}` when the database answers |
//!
//! Every request but `/health` carries `Authorization: Bearer <JWT>`. Bodies may be
//! gzip-compressed both ways (`Content-Encoding` / `Accept-Encoding`). A failure answers
//! with an [`ErrorBody`].

mod transport;

use serde::{Deserialize, Serialize};

pub use transport::{HttpTransport, HttpTransportError, StaticToken, TokenProvider};

use crate::transport::TransportError;

/// Where a client pushes a batch.
pub const PUSH_PATH: &str = "/v1/push";
/// Where a client pulls a page.
pub const PULL_PATH: &str = "/v1/pull";
/// Where a replica taking a new client id asks which of its entries the server has.
pub const SETTLED_PATH: &str = "/v1/settled";
/// Where a client listens for live updates (Server-Sent Events).
pub const EVENTS_PATH: &str = "/v1/events";
/// Where a new device downloads its user's rows as one SQLite replica (GET).
pub const SNAPSHOT_PATH: &str = "/v1/snapshot";
/// Where a load balancer checks that an instance can reach the database.
pub const HEALTH_PATH: &str = "/health";

/// What went wrong, as the wire names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not a request of this protocol (malformed JSON, wrong shape, bad
    /// compression). Nothing was read or written.
    BadRequest,
    /// No token, or a token that is expired, forged, for another audience or without a
    /// user. Nothing was read or written.
    Unauthorized,
    /// The token is good, but the request is not the user's to make (a client id bound
    /// to another user).
    Forbidden,
    /// The body, the batch or the requested page is over the server's limit.
    TooLarge,
    /// A push that does not start where the server expects (`last_seq` says where).
    Gap,
    /// A push that reuses settled sequence numbers for different writes (`seq`).
    Diverged,
    /// The server will not take this request, now or later.
    Refused,
    /// The server could not do it now (its database is unreachable): try again later.
    Unavailable,
}

impl ErrorCode {
    /// The HTTP status the code travels with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::TooLarge => 413,
            ErrorCode::Gap | ErrorCode::Diverged => 409,
            ErrorCode::Refused => 422,
            ErrorCode::Unavailable => 503,
        }
    }
}

/// The body of every failed request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorCode,
    /// In words, for a log or a person; never a token or row contents.
    pub message: String,
    /// With [`ErrorCode::Gap`]: the last sequence number the server has settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<i64>,
    /// With [`ErrorCode::Diverged`]: the first reused sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

impl ErrorBody {
    /// A body with no sequence numbers.
    pub fn new(error: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error,
            message: message.into(),
            last_seq: None,
            seq: None,
        }
    }

    /// How the server answers a [`TransportError`] of its sync operations.
    pub fn from_transport(error: &TransportError) -> ErrorBody {
        match error {
            TransportError::Transient(_) => {
                // The cause (a database error) stays in the server's log.
                ErrorBody::new(ErrorCode::Unavailable, "the server cannot do this now")
            }
            TransportError::Gap { last_seq } => ErrorBody {
                last_seq: Some(*last_seq),
                ..ErrorBody::new(ErrorCode::Gap, error.to_string())
            },
            TransportError::Diverged { seq } => ErrorBody {
                seq: Some(*seq),
                ..ErrorBody::new(ErrorCode::Diverged, error.to_string())
            },
            TransportError::Refused(why) => ErrorBody::new(ErrorCode::Refused, why.clone()),
            TransportError::Unauthorized(why) => {
                ErrorBody::new(ErrorCode::Unauthorized, why.clone())
            }
            TransportError::TooLarge(why) => ErrorBody::new(ErrorCode::TooLarge, why.clone()),
        }
    }

    /// What a client makes of the body.
    pub fn into_transport(self) -> TransportError {
        match self.error {
            ErrorCode::Unavailable => TransportError::Transient(self.message),
            ErrorCode::Gap => TransportError::Gap {
                last_seq: self.last_seq.unwrap_or(0),
            },
            ErrorCode::Diverged => TransportError::Diverged {
                seq: self.seq.unwrap_or(0),
            },
            ErrorCode::Unauthorized => TransportError::Unauthorized(self.message),
            ErrorCode::TooLarge => TransportError::TooLarge(self.message),
            ErrorCode::BadRequest | ErrorCode::Forbidden | ErrorCode::Refused => {
                TransportError::Refused(format!("{:?}: {}", self.error, self.message))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_cross_the_wire_unchanged() {
        for error in [
            TransportError::Gap { last_seq: 41 },
            TransportError::Diverged { seq: 7 },
            TransportError::Unauthorized("the token has expired".into()),
            TransportError::TooLarge("at most 3 entries".into()),
        ] {
            let body = ErrorBody::from_transport(&error);
            let text = serde_json::to_string(&body).unwrap();
            let back: ErrorBody = serde_json::from_str(&text).unwrap();
            assert_eq!(back.into_transport(), error, "{text}");
        }
        let transient = ErrorBody::from_transport(&TransportError::Transient(
            "connection to postgres://app:hunter2@db refused".into(),
        ));
        assert_eq!(transient.error.status(), 503);
        assert!(!transient.message.contains("hunter2"));
    }

    #[test]
    fn every_code_has_its_status() {
        let text = serde_json::to_string(&ErrorBody::new(ErrorCode::TooLarge, "x")).unwrap();
        assert_eq!(text, r#"{"error":"too_large","message":"x"}"#);
        assert_eq!(ErrorCode::TooLarge.status(), 413);
        assert_eq!(ErrorCode::Unauthorized.status(), 401);
        assert_eq!(ErrorCode::BadRequest.status(), 400);
    }
}
