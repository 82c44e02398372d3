//! Errors as `application/problem+json` (RFC 9457), and the request
//! extractors whose rejections become problems that name the bad field.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::store::StoreError;

/// An RFC 9457 problem.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What was wrong, naming the field where one was.
    pub detail: String,
    /// Seconds a client should wait before retrying (the `Retry-After` header).
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// The same problem, telling the client to retry after `seconds`.
    pub fn retry_after(mut self, seconds: u32) -> Problem {
        self.retry_after = Some(seconds);
        self
    }

    /// The store cannot be reached or is restarting (503, retry later).
    pub fn store_unavailable(error: impl std::fmt::Display) -> Problem {
        tracing::warn!(%error, "the store is unavailable");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "the store cannot be reached just now; nothing was changed, retry after the Retry-After seconds",
        )
        .retry_after(STORE_RETRY_AFTER)
    }

    /// A bad request field (422).
    pub fn field(field: &str, detail: impl std::fmt::Display) -> Problem {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            format!("{field}: {detail}"),
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// Not ready yet (503): no plan is in place; retry shortly.
    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", detail)
            .retry_after(STORE_RETRY_AFTER)
    }

    pub fn internal(error: impl std::fmt::Display) -> Problem {
        tracing::error!(%error, "request failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle the request; it has been logged",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Problem {
        match error {
            StoreError::NoPlan => Problem::unavailable("no plan is loaded yet; see GET /readyz"),
            StoreError::UnknownAccount(_) | StoreError::NotLeased(_) => {
                Problem::not_found(error.to_string())
            }
            StoreError::LeasedToOther { .. } => Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("agent_id: {error}"),
            ),
            StoreError::IdempotencyConflict(_) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                error.to_string(),
            ),
            StoreError::StaleCursor(_) => {
                Problem::new(StatusCode::CONFLICT, "stale-cursor", error.to_string())
            }
            StoreError::NothingToLift { .. } => {
                Problem::new(StatusCode::CONFLICT, "nothing-to-lift", error.to_string())
            }
            StoreError::Db(_) if error.retryable() => Problem::store_unavailable(error),
            StoreError::Invalid(_)
            | StoreError::Db(_)
            | StoreError::Migrate(_)
            | StoreError::AuditUnguarded { .. } => Problem::internal(error),
        }
    }
}

/// Seconds a client is told to wait when the store is unavailable.
pub const STORE_RETRY_AFTER: u32 = 2;

/// A JSON body whose rejections (syntax, unknown or missing fields, wrong
/// types, size) are problems.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(Problem::new(
                rejection.status(),
                "invalid-body",
                rejection.body_text(),
            )),
        }
    }
}

/// A query string whose rejections are problems.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                rejection.body_text(),
            )),
        }
    }
}

/// Path parameters whose rejections (not UTF-8, not a number) are problems.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(Problem::new(
                rejection.status(),
                "invalid-path",
                rejection.body_text(),
            )),
        }
    }
}
