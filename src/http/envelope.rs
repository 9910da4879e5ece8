//! The success envelope `{"data": …, "meta": {"version", "request_id", pagination?}}` and the
//! request id that both envelopes carry. The id lives in a task-local set by the outermost
//! middleware, so any response built while serving the request can read it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

tokio::task_local! {
    static REQUEST_ID: String;
}

pub fn new_request_id() -> String {
    format!("req_{}", uuid::Uuid::now_v7().simple())
}

/// Runs `fut` with `id` as the current request id.
pub async fn with_request_id<F: Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| new_request_id())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Meta {
    pub version: &'static str,
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

impl Meta {
    pub fn new(request_id: String) -> Self {
        Meta { version: "1.0", request_id, pagination: None }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pagination {
    pub total_count: i64,
    /// Opaque cursor for the next page; null on the last page.
    pub cursor: Option<String>,
    pub has_more: bool,
    /// True when `total_count` is not exact (counting would have needed a scan; see API.md §10).
    pub total_is_estimate: bool,
}

#[derive(Serialize)]
struct Body<T> {
    data: T,
    meta: Meta,
}

/// A 2xx response wrapped in the success envelope.
pub struct Api<T> {
    status: StatusCode,
    data: T,
    pagination: Option<Pagination>,
}

impl<T: Serialize> Api<T> {
    pub fn ok(data: T) -> Self {
        Api { status: StatusCode::OK, data, pagination: None }
    }
    pub fn created(data: T) -> Self {
        Api { status: StatusCode::CREATED, data, pagination: None }
    }
    pub fn page(data: T, pagination: Pagination) -> Self {
        Api { status: StatusCode::OK, data, pagination: Some(pagination) }
    }
}

/// The body to keep in an idempotency record when it differs from the one sent: the secrets a
/// response shows once are replaced by a marker (`keys::SHOWN_ONCE`).
#[derive(Clone)]
pub struct RecordedBody(pub axum::body::Bytes);

impl<T: Serialize> IntoResponse for Api<T> {
    fn into_response(self) -> Response {
        let mut meta = Meta::new(current_request_id());
        meta.pagination = self.pagination;
        let body = Body { data: self.data, meta };
        crate::auth::keys::take_shown();
        let bytes = match serde_json::to_vec(&body) {
            Ok(b) => b,
            Err(e) => return crate::error::ApiError::Internal(e.into()).into_response(),
        };
        let recorded = crate::auth::keys::take_shown()
            .then(|| crate::auth::keys::recording(|| serde_json::to_vec(&body)).ok())
            .flatten();
        let mut response =
            (self.status, [(axum::http::header::CONTENT_TYPE, "application/json")], bytes).into_response();
        if let Some(recorded) = recorded {
            response.extensions_mut().insert(RecordedBody(recorded.into()));
        }
        response
    }
}
