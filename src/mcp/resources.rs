//! The resources of both surfaces, and subscriptions to them:
//!
//! - `hirings://active` (hirer): the caller's unfinished hirings;
//! - `hiring://{id}/status` (both): one hiring, as `get_hiring_status` shows it;
//! - `hiring://pending` (agent): the hirings waiting for the calling agent.
//!
//! Each read passes the guard of the REST endpoint it mirrors and calls its function, like the
//! tools. `resources/subscribe` needs a session; the subscription is stored with its session
//! (`mcp_subscriptions`) and the change `target` it listens for, so whichever server holds the
//! session's stream hears of the changes made on any server (`hub`).

use axum::http::request::Parts;
use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Value, json};

use super::mirror::{Rest, caller_of};
use super::sessions::{self, Surface};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::ledger::routes::principal_of;
use crate::state::AppState;
use crate::tasks::changes::{client_target, hiring_target, provider_target};
use crate::tasks::hiring_routes::{self as hirings, ListQuery};
use crate::tasks::hirings::Hiring;
use crate::tasks::model::HiringStatus;

pub const ACTIVE: &str = "hirings://active";
pub const PENDING: &str = "hiring://pending";
pub const STATUS_TEMPLATE: &str = "hiring://{id}/status";

const LIST_HIRINGS: Rest = Rest::get("/api/v1/hirings");
const SHOW_HIRING: Rest = Rest::get("/api/v1/hirings/{id}");
const PENDING_HIRINGS: Rest = Rest::get("/api/v1/hirings/pending");

/// Every endpoint a resource mirrors (a test checks each is in the route table).
pub const MIRRORED: [Rest; 3] = [LIST_HIRINGS, SHOW_HIRING, PENDING_HIRINGS];

/// The header carrying the session (the SSE transport sets it on the messages it relays too).
pub const SESSION_HEADER: &str = "mcp-session-id";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Uri {
    Active,
    Pending,
    Status(String),
}

fn parse(uri: &str, surface: Surface) -> Option<Uri> {
    let parsed = match uri {
        ACTIVE => Uri::Active,
        PENDING => Uri::Pending,
        _ => {
            let id = uri.strip_prefix("hiring://")?.strip_suffix("/status")?;
            if id.is_empty() || id.contains('/') {
                return None;
            }
            Uri::Status(id.to_string())
        }
    };
    let served = matches!(
        (surface, &parsed),
        (Surface::Hirer, Uri::Active) | (Surface::Agent, Uri::Pending) | (_, Uri::Status(_))
    );
    served.then_some(parsed)
}

pub fn status_uri(hiring_id: &str) -> String {
    format!("hiring://{hiring_id}/status")
}

/// A refusal as a protocol error (resources have no tool-error form).
fn protocol_error(err: ApiError) -> ErrorData {
    let text = super::refusal_text(&err);
    match err.code() {
        "NOT_FOUND" => ErrorData::resource_not_found(text, None),
        "INTERNAL_ERROR" => ErrorData::internal_error(text, None),
        _ => ErrorData::invalid_request(text, None),
    }
}

fn unknown(uri: &str) -> ErrorData {
    ErrorData::resource_not_found(format!("no resource {uri} here; resources/list shows what there is"), None)
}

/// The caller's unfinished hirings (`GET /hirings` with each unfinished status).
async fn active(state: &AppState, caller: &Caller) -> ApiResult<Vec<Hiring>> {
    let mut out = Vec::new();
    for status in [HiringStatus::PendingPayment, HiringStatus::Queued, HiringStatus::InProgress] {
        let query =
            ListQuery { status: Some(status.as_str().into()), limit: Some("100".into()), page: None, cursor: None };
        out.extend(hirings::list_page(state, caller, &query).await?.hirings);
    }
    Ok(out)
}

/// The resource's content, and the change target a subscription to it listens for.
async fn resolve(state: &AppState, caller: &Caller, uri: &Uri) -> ApiResult<(Value, String)> {
    fn json(value: impl serde::Serialize) -> ApiResult<Value> {
        serde_json::to_value(value).map_err(|e| ApiError::Internal(e.into()))
    }
    match uri {
        Uri::Active => {
            LIST_HIRINGS.check(caller)?;
            let target = client_target(&principal_of(caller)?.key());
            Ok((json!({"hirings": json(active(state, caller).await?)?}), target))
        }
        Uri::Status(id) => {
            SHOW_HIRING.check(caller)?;
            let hiring = hirings::show_one(state, caller, id).await?;
            let target = hiring_target(&hiring.id);
            Ok((json(hiring)?, target))
        }
        Uri::Pending => {
            PENDING_HIRINGS.check(caller)?;
            let pending = hirings::pending_for(state, caller).await?;
            let agent = caller.agent.as_ref().ok_or_else(|| ApiError::forbidden("use an agent key"))?;
            Ok((json!({"hirings": json(pending)?}), provider_target(&agent.id)))
        }
    }
}

pub async fn list(state: &AppState, parts: &Parts, surface: Surface) -> Result<ListResourcesResult, ErrorData> {
    let caller = caller_of(parts).map_err(protocol_error)?;
    let (head, hirings) = match surface {
        Surface::Hirer => {
            let head = Resource::new(ACTIVE, "Active hirings")
                .with_description("Your unfinished hirings; subscribe to hear when one changes.");
            LIST_HIRINGS.check(&caller).map_err(protocol_error)?;
            (head, active(state, &caller).await.map_err(protocol_error)?)
        }
        Surface::Agent => {
            let head = Resource::new(PENDING, "Pending hirings")
                .with_description("The hirings waiting for you; subscribe to hear when one arrives.");
            PENDING_HIRINGS.check(&caller).map_err(protocol_error)?;
            (head, hirings::pending_for(state, &caller).await.map_err(protocol_error)?)
        }
    };
    let mut resources = vec![head.with_mime_type("application/json")];
    resources.extend(hirings.iter().map(|h| {
        Resource::new(status_uri(&h.id), format!("Hiring {}", h.id))
            .with_description(format!("{} for {} ({})", h.capability_requested, h.agent_did, h.status))
            .with_mime_type("application/json")
    }));
    Ok(ListResourcesResult::with_all_items(resources))
}

pub fn templates() -> ListResourceTemplatesResult {
    ListResourceTemplatesResult::with_all_items(vec![
        ResourceTemplate::new(STATUS_TEMPLATE, "Hiring status")
            .with_description("One hiring: status, messages and open questions, the stream, the result, artifacts.")
            .with_mime_type("application/json"),
    ])
}

pub async fn read(
    state: &AppState,
    parts: &Parts,
    surface: Surface,
    uri: &str,
) -> Result<ReadResourceResult, ErrorData> {
    let parsed = parse(uri, surface).ok_or_else(|| unknown(uri))?;
    let caller = caller_of(parts).map_err(protocol_error)?;
    let (content, _) = resolve(state, &caller, &parsed).await.map_err(protocol_error)?;
    let text = serde_json::to_string_pretty(&content).map_err(|e| protocol_error(ApiError::Internal(e.into())))?;
    Ok(ReadResourceResult::new(vec![ResourceContents::text(text, uri).with_mime_type("application/json")]))
}

/// The session of the request, checked against the caller and the surface.
async fn session_of(state: &AppState, parts: &Parts, caller: &Caller, surface: Surface) -> Result<String, ErrorData> {
    let id = parts.headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()).ok_or_else(|| {
        ErrorData::invalid_request(
            "subscriptions need a session: keep the Mcp-Session-Id the server gave at initialize (or use the SSE transport)",
            None,
        )
    })?;
    match sessions::find(&state.db, id).await.map_err(|e| protocol_error(e.into()))? {
        Some(session) if session.serves(surface, caller) => Ok(session.id),
        _ => Err(ErrorData::invalid_request("unknown session: initialize again", None)),
    }
}

pub async fn subscribe(state: &AppState, parts: &Parts, surface: Surface, uri: &str) -> Result<(), ErrorData> {
    let parsed = parse(uri, surface).ok_or_else(|| unknown(uri))?;
    let caller = caller_of(parts).map_err(protocol_error)?;
    let session = session_of(state, parts, &caller, surface).await?;
    // The same guard and visibility as reading it.
    let (_, target) = resolve(state, &caller, &parsed).await.map_err(protocol_error)?;
    sqlx::query(
        "INSERT INTO mcp_subscriptions (session_id, uri, target, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (session_id, uri) DO NOTHING",
    )
    .bind(&session)
    .bind(uri)
    .bind(&target)
    .bind(state.now())
    .execute(state.db.writer())
    .await
    .map_err(|e| protocol_error(e.into()))?;
    Ok(())
}

pub async fn unsubscribe(state: &AppState, parts: &Parts, surface: Surface, uri: &str) -> Result<(), ErrorData> {
    let caller = caller_of(parts).map_err(protocol_error)?;
    let session = session_of(state, parts, &caller, surface).await?;
    sqlx::query("DELETE FROM mcp_subscriptions WHERE session_id = $1 AND uri = $2")
        .bind(&session)
        .bind(uri)
        .execute(state.db.writer())
        .await
        .map_err(|e| protocol_error(e.into()))?;
    Ok(())
}

/// The HTTP request a protocol request came in (the transports put it in the extensions).
pub fn parts_of(context: &RequestContext<RoleServer>) -> Result<&Parts, ErrorData> {
    context.extensions.get::<Parts>().ok_or_else(|| ErrorData::internal_error("no HTTP request", None))
}

/// The resource methods of a surface's `ServerHandler` (its `state` field and `Surface`).
macro_rules! resource_methods {
    ($surface:expr) => {
        async fn list_resources(
            &self,
            _request: Option<rmcp::model::PaginatedRequestParams>,
            context: rmcp::service::RequestContext<rmcp::RoleServer>,
        ) -> Result<rmcp::model::ListResourcesResult, rmcp::ErrorData> {
            let parts = $crate::mcp::resources::parts_of(&context)?;
            $crate::mcp::resources::list(&self.state, parts, $surface).await
        }

        async fn list_resource_templates(
            &self,
            _request: Option<rmcp::model::PaginatedRequestParams>,
            _context: rmcp::service::RequestContext<rmcp::RoleServer>,
        ) -> Result<rmcp::model::ListResourceTemplatesResult, rmcp::ErrorData> {
            Ok($crate::mcp::resources::templates())
        }

        async fn read_resource(
            &self,
            request: rmcp::model::ReadResourceRequestParams,
            context: rmcp::service::RequestContext<rmcp::RoleServer>,
        ) -> Result<rmcp::model::ReadResourceResponse, rmcp::ErrorData> {
            let parts = $crate::mcp::resources::parts_of(&context)?;
            Ok($crate::mcp::resources::read(&self.state, parts, $surface, &request.uri).await?.into())
        }

        async fn subscribe(
            &self,
            request: rmcp::model::SubscribeRequestParams,
            context: rmcp::service::RequestContext<rmcp::RoleServer>,
        ) -> Result<(), rmcp::ErrorData> {
            let parts = $crate::mcp::resources::parts_of(&context)?;
            $crate::mcp::resources::subscribe(&self.state, parts, $surface, &request.uri).await
        }

        async fn unsubscribe(
            &self,
            request: rmcp::model::UnsubscribeRequestParams,
            context: rmcp::service::RequestContext<rmcp::RoleServer>,
        ) -> Result<(), rmcp::ErrorData> {
            let parts = $crate::mcp::resources::parts_of(&context)?;
            $crate::mcp::resources::unsubscribe(&self.state, parts, $surface, &request.uri).await
        }
    };
}
pub(crate) use resource_methods;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_parsed_per_surface() {
        assert_eq!(parse(ACTIVE, Surface::Hirer), Some(Uri::Active));
        assert_eq!(parse(ACTIVE, Surface::Agent), None);
        assert_eq!(parse(PENDING, Surface::Agent), Some(Uri::Pending));
        assert_eq!(parse(PENDING, Surface::Hirer), None);
        assert_eq!(parse("hiring://abc/status", Surface::Hirer), Some(Uri::Status("abc".into())));
        assert_eq!(parse(&status_uri("abc"), Surface::Agent), Some(Uri::Status("abc".into())));
        for bad in ["hiring:///status", "hiring://a/b/status", "hiring://abc", "file:///etc/passwd", ""] {
            assert_eq!(parse(bad, Surface::Hirer), None, "{bad}");
        }
    }
}
