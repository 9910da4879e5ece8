//! HTTP for webhook subscriptions.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Webhook;
use crate::auth::Caller;
use crate::auth::keys::PlainSecret;
use crate::error::ApiResult;
use crate::http::envelope::Api;
use crate::http::extract::JsonObject;
use crate::ledger::routes::principal_of;
use crate::state::AppState;
use crate::text::Line;

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct WebhookRequest {
    pub callback_url: Option<Line>,
    /// Alias of `callback_url`.
    pub url: Option<Line>,
    /// Defaults to the six `task.*` lifecycle events.
    #[schema(schema_with = crate::openapi::choice::events)]
    pub event_types: Option<Vec<Line>>,
    /// Alias of `event_types`.
    #[schema(schema_with = crate::openapi::choice::events)]
    pub events: Option<Vec<Line>>,
    /// Your own signing secret (16–256 characters); one is generated otherwise.
    #[schema(min_length = 16, max_length = 256)]
    pub secret: Option<Line>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    webhook: Webhook,
    /// The signing secret (HMAC-SHA256 key). Shown once.
    secret_key: PlainSecret,
}

/// Subscribe a URL to events of the acting principal's tasks, payments and agents.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = WebhookRequest,
    responses((status = 201, body = WebhookCreated), (status = 401), (status = 403), (status = 422)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> ApiResult<Api<WebhookCreated>> {
    let req: WebhookRequest = body.parse(Some("webhook"))?;
    let new = super::validate(
        req.callback_url.or(req.url).map(String::from),
        req.event_types.or(req.events).map(|list| list.into_iter().map(String::from).collect()),
        req.secret.map(String::from),
        state.config.allow_private_network,
    )?;
    let owner = principal_of(&caller)?.key();
    let (webhook, secret_key) = super::subscribe(&state.db, &state.secrets, &owner, new, state.now()).await?;
    Ok(Api::created(WebhookCreated { webhook, secret_key }))
}

/// The acting principal's subscriptions (never the secrets).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", responses((status = 200, body = Vec<Webhook>), (status = 401)))]
pub(crate) async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Api<Vec<Webhook>>> {
    Ok(Api::ok(super::list(&state.db, &principal_of(&caller)?.key()).await?))
}

/// Unsubscribe (200 with the removed subscription; never 204).
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = Webhook), (status = 404)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<Webhook>> {
    Ok(Api::ok(super::unsubscribe(&state.db, &principal_of(&caller)?.key(), &id, state.now()).await?))
}
