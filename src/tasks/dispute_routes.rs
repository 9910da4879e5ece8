//! HTTP for disputes: open (client), read, evidence (both parties), resolve (administrators).

use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::disputes::{self, Dispute, ResolveRequest};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::http::envelope::Api;
use crate::http::extract::{ApiQuery, JsonObject};
use crate::state::AppState;
use crate::text::Text;

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct OpenRequest {
    #[schema(required = true, min_length = 1, max_length = 5000)]
    pub reason: Option<Text>,
}

/// Client: dispute a task whose money is still held. Empty or missing output is refunded at once.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/dispute", tag = "disputes", params(("id" = String, Path)), request_body = OpenRequest,
    responses((status = 201, body = Dispute), (status = 403), (status = 404), (status = 409, description = "DISPUTE_OPEN or CONFLICT")))]
pub(crate) async fn open(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Dispute>> {
    let reason = body.parse::<OpenRequest>(None)?.reason.map(String::from);
    Ok(Api::created(disputes::open(&state.db, &state.engine, &super::actor(&caller), &id, reason).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// `open` or `resolved`.
    pub status: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub cursor: Option<String>,
}

/// Disputes on the caller's tasks (all of them for administrators).
#[utoipa::path(get, path = "/api/v1/disputes", tag = "disputes", params(ListQuery), responses((status = 200, body = Vec<Dispute>)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Api<Vec<Dispute>>> {
    let mut actor = super::actor(&caller);
    let page = disputes::order().page(q.limit.as_deref(), q.cursor.as_deref(), q.offset.as_deref())?;
    let (items, meta) = disputes::list(&state.db, &mut actor, q.status.as_deref(), &page).await?;
    Ok(Api::page(items, meta))
}

/// One dispute with its evidence (by dispute id or task id).
#[utoipa::path(get, path = "/api/v1/disputes/{id}", tag = "disputes", params(("id" = String, Path)), responses((status = 200, body = Dispute), (status = 404)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<Dispute>> {
    let mut actor = super::actor(&caller);
    Ok(Api::ok(disputes::get(&state.db, &mut actor, &id).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct EvidenceRequest {
    #[schema(required = true, min_length = 1, max_length = 10000)]
    pub content: Option<Text>,
}

/// Either party (or an administrator) adds evidence while the dispute is open.
#[utoipa::path(post, path = "/api/v1/disputes/{id}/evidence", tag = "disputes", params(("id" = String, Path)), request_body = EvidenceRequest,
    responses((status = 201, body = Dispute), (status = 404), (status = 409), (status = 422)))]
pub(crate) async fn evidence(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Dispute>> {
    let mut actor = super::actor(&caller);
    let content = body.parse::<EvidenceRequest>(None)?.content.map(String::from);
    Ok(Api::created(disputes::add_evidence(&state.db, &mut actor, &id, content, state.now()).await?))
}

/// Administrators: rule on a dispute.
#[utoipa::path(post, path = "/api/v1/admin/disputes/{id}/resolve", tag = "admin", params(("id" = String, Path)), request_body = ResolveRequest,
    responses((status = 200, body = Dispute), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub(crate) async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Dispute>> {
    let req: ResolveRequest = body.parse(None)?;
    Ok(Api::ok(disputes::resolve(&state.db, &state.engine, &id, req).await?))
}
