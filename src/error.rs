//! One error type for the whole API. Every failure becomes the error envelope of API.md §0;
//! unexpected ones are logged with the request id and returned as a bare `INTERNAL_ERROR`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::envelope::{Meta, current_request_id};

/// One bad field: `{"field": "agent.did", "message": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Known {
        status: StatusCode,
        code: &'static str,
        message: String,
        details: Vec<serde_json::Value>,
        retry_after: Option<u64>,
    },
    /// Anything unexpected. The source is logged, never returned.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Known { status, code, message: message.into(), details: Vec::new(), retry_after: None }
    }

    pub fn with_details(mut self, items: impl IntoIterator<Item = serde_json::Value>) -> Self {
        if let ApiError::Known { details, .. } = &mut self {
            details.extend(items);
        }
        self
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let message = match errors.as_slice() {
            [one] => format!("{} {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR", message)
            .with_details(errors.into_iter().map(|e| serde_json::json!({"field": e.field, "message": e.message})))
    }

    /// Prefixes the `field` of every validation detail (`name` → `agent.name`).
    pub fn prefix_fields(mut self, prefix: &str) -> Self {
        if let ApiError::Known { code: "VALIDATION_ERROR", details, .. } = &mut self {
            for d in details.iter_mut() {
                if let Some(serde_json::Value::String(f)) = d.get_mut("field")
                    && !f.starts_with(prefix)
                {
                    *f = format!("{prefix}{f}");
                }
            }
        }
        self
    }

    pub fn field(field: &str, message: &str) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    pub fn malformed_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MALFORMED_JSON", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("{what} not found"))
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }
    /// A state machine refused: `details` names the current state.
    pub fn invalid_state(message: impl Into<String>, state: &str) -> Self {
        Self::conflict(message).with_details([serde_json::json!({"field": "status", "current": state})])
    }
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED", "too many requests; retry later")
            .with_retry_after(retry_after_secs)
    }

    /// Adds `retry-after` (whole seconds, at least 1).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        if let ApiError::Known { retry_after, .. } = &mut self {
            *retry_after = Some(secs.max(1));
        }
        self
    }
    /// `INVALID_AMOUNT` naming the field.
    pub fn invalid_amount(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_AMOUNT", format!("{field} {message}"))
            .with_details([serde_json::json!({"field": field, "message": message})])
    }
    pub fn payment_failed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYMENT_REQUIRED, "PAYMENT_FAILED", message)
    }
    pub fn payload_too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "request body exceeds the limit")
    }
    pub fn plan_limit(max: i64) -> Self {
        Self::new(StatusCode::FORBIDDEN, "PLAN_LIMIT_REACHED", format!("your plan allows at most {max} agents"))
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Known { code, .. } => code,
            ApiError::Internal(_) => "INTERNAL_ERROR",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        // A unique violation that reaches here was not translated by a slice: still a 409, not a 500.
        if let sqlx::Error::Database(db) = &err
            && db.is_unique_violation()
        {
            return ApiError::conflict("a resource with this value already exists");
        }
        // A concurrent request with the same idempotency key recorded it first (`Db::begin`).
        if matches!(&err, sqlx::Error::Protocol(m) if m == crate::http::idempotency::KEY_TAKEN) {
            return crate::http::idempotency::pending();
        }
        ApiError::Internal(err.into())
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    data: Option<()>,
    meta: Meta,
    errors: [ErrorItem<'a>; 1],
}

#[derive(Serialize)]
struct ErrorItem<'a> {
    code: &'a str,
    message: &'a str,
    details: &'a [serde_json::Value],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id();
        let (status, code, message, details, retry_after) = match &self {
            ApiError::Known { status, code, message, details, retry_after } => {
                (*status, *code, message.as_str(), details.as_slice(), *retry_after)
            }
            ApiError::Internal(err) => {
                tracing::error!(request_id = %request_id, error = ?err, "internal error");
                metrics::counter!("agentmarket_internal_errors_total").increment(1);
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_ERROR",
                    "internal error; quote the request id when reporting it",
                    &[][..],
                    None,
                )
            }
        };
        let body =
            ErrorBody { data: None, meta: Meta::new(request_id), errors: [ErrorItem { code, message, details }] };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert("retry-after", HeaderValue::from(secs));
        }
        response
    }
}
