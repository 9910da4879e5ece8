//! Shared HTTP pieces and the router: envelopes, extractors, pagination, rate limits, the
//! middleware stack (request id → trace/metrics → request timeout → whole body read → panic
//! guard → credential), health, metrics, and the server that runs it (`server`).

pub mod endpoint;
pub mod envelope;
pub mod extract;
pub mod idempotency;
pub mod keyset;
pub mod outbound;
pub mod pagination;
pub mod rate_lease;
pub mod rate_limit;
pub mod server;

use std::sync::OnceLock;
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::{auth, openapi};
use envelope::Api;

pub fn router(state: AppState) -> Router {
    // The table's routes each run behind their guard (rate limit → access → idempotency); the
    // caller is resolved first, for every `/api` request.
    let api = endpoint::router(crate::routes::table(), &state)
        .route("/openapi.json", get(openapi_json))
        .route_layer(middleware::from_fn(remember_route))
        .layer(middleware::from_fn_with_state(state.clone(), auth::caller::resolve_caller));

    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(liveness))
        .route("/metrics", get(metrics_text))
        .merge(crate::dashboard::router(state.clone()))
        .merge(crate::payments::routes::callbacks())
        .merge(crate::mcp::router(&state))
        .fallback(route_not_found)
        .method_not_allowed_fallback(route_not_found)
        .layer(middleware::from_fn(extract::refuse_control_characters))
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()))
        .layer(middleware::from_fn_with_state(state.clone(), read_whole_body))
        .layer(middleware::from_fn_with_state(state.clone(), request_timeout))
        .layer(middleware::from_fn(observe))
        .with_state(state)
}

async fn route_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND", "no such route")
}

/// Outermost layer: a fresh request id for the envelopes and the `x-request-id` header, one
/// trace line and the request metrics. Headers are never logged (they carry credentials).
async fn observe(req: Request, next: Next) -> Response {
    let id = envelope::new_request_id();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let mut response = envelope::with_request_id(id.clone(), next.run(req)).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    // A downloaded artifact is served with its own content type; never let a browser sniff another.
    response.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    let route_label = response.extensions().get::<RouteLabel>().map(|r| r.0.clone()).unwrap_or_else(|| "other".into());
    metrics::counter!("agentmarket_http_requests_total", "method" => method.to_string(), "route" => route_label.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("agentmarket_http_request_duration_seconds", "method" => method.to_string(), "route" => route_label).record(elapsed.as_secs_f64());
    tracing::info!(request_id = %id, %method, %path, status, latency_ms = elapsed.as_millis() as u64, "request");
    response
}

/// The whole request, reading its body included, within `--request-timeout`: else
/// `408 REQUEST_TIMEOUT`, and the connection closes (its body may be half read). No route
/// streams today; one that does would need its own, longer deadline here.
async fn request_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.config.request_timeout;
    if limit.is_zero() {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => closing(
            ApiError::new(StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT", "the request was not completed in time")
                .into_response(),
        ),
    }
}

/// Reads the whole request body (at most `--max-body-bytes`) before anything else runs, so an
/// early answer (401, 404, 429…) never leaves unread bytes behind: hyper would close the
/// connection instead of keeping it alive for the client's next request.
async fn read_whole_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let limit = state.config.max_body_bytes;
    let (parts, body) = req.into_parts();
    let mut chunks = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = futures_util::StreamExt::next(&mut chunks).await {
        match chunk {
            Ok(chunk) if bytes.len() + chunk.len() <= limit => bytes.extend_from_slice(&chunk),
            Ok(_) => return closing(ApiError::payload_too_large().into_response()),
            Err(_) => {
                let unreadable =
                    ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_REQUEST", "the body could not be read");
                return closing(unreadable.into_response());
            }
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// Asks hyper to close the connection after this response (its request may be half read).
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The matched route template, carried out on the response for the metrics labels.
#[derive(Clone)]
struct RouteLabel(String);

async fn remember_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let mut response = next.run(req).await;
    if let Some(route) = route {
        response.extensions_mut().insert(RouteLabel(route));
    }
    response
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

/// Liveness: the process answers; no database involved.
async fn liveness() -> Api<Health> {
    Api::ok(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    status: &'static str,
    database: &'static str,
    migrations: &'static str,
}

/// Readiness: the database answers and every migration is applied.
#[utoipa::path(get, path = "/api/v1/health/readiness", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, description = "database unreachable or migrations missing")))]
pub(crate) async fn readiness(State(state): State<AppState>) -> ApiResult<Api<Readiness>> {
    if !state.db.ping().await {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "NOT_READY", "the database is unreachable"));
    }
    if !state.db.migrations_applied().await? {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "NOT_READY", "migrations are not applied"));
    }
    Ok(Api::ok(Readiness { status: "ready", database: "ok", migrations: "applied" }))
}

async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(openapi::spec())
}

/// The process-wide Prometheus recorder (several apps in one test process share it).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed already; then metrics go there.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

async fn metrics_text() -> Response {
    let handle = metrics_handle();
    handle.run_upkeep();
    ([("content-type", "text/plain; version=0.0.4")], handle.render()).into_response()
}
