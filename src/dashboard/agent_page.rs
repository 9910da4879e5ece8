//! One of the user's agents: earnings, edit form, and its keys (create shown once, revoke).

use std::collections::HashMap;

use super::Form;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::pages::{as_caller, message_of};
use super::view::filters;
use super::{Browser, Nav, render, require_browser};
use crate::agents::{self, credentials, model::AgentInput};
use crate::auth::keys::KeyInfo;
use crate::error::ApiError;
use crate::ledger::{self, Principal};
use crate::state::AppState;

type Fields = HashMap<String, String>;

pub struct AgentView {
    id: String,
    did: String,
    name: String,
    description: String,
    capabilities: String,
    price: String,
    reputation: String,
    status: String,
}

#[derive(Template)]
#[template(path = "agent.html")]
struct AgentPage {
    nav: Option<Nav>,
    now: i64,
    csrf: String,
    a: AgentView,
    available: String,
    pending: String,
    keys: Vec<KeyInfo>,
    new_key: Option<String>,
    notice: Option<String>,
    error: Option<String>,
    errors: HashMap<String, String>,
}

async fn show(
    state: &AppState,
    b: &Browser,
    id: &str,
    new_key: Option<String>,
    notice: Option<String>,
    error: Option<&ApiError>,
) -> Response {
    let agent = match agents::controlled(&state.db, &as_caller(b), id).await {
        Ok(a) => a,
        Err(_) => return (StatusCode::NOT_FOUND, Html("<h1>Not found</h1>")).into_response(),
    };
    let loaded = async {
        let balances = ledger::balances(&state.db, &Principal::Agent(agent.id.clone())).await?;
        state.flush_key_uses().await?;
        let keys = credentials::list(&state.db, &agent.id).await?;
        Ok::<_, sqlx::Error>((balances, keys))
    }
    .await;
    let (balances, keys) = match loaded {
        Ok(x) => x,
        Err(e) => return super::internal(e),
    };
    let errors: HashMap<String, String> = match error {
        Some(ApiError::Known { details, .. }) => details
            .iter()
            .filter_map(|d| {
                Some((d["field"].as_str()?.to_string(), d["message"].as_str().unwrap_or("is invalid").to_string()))
            })
            .collect(),
        _ => HashMap::new(),
    };
    let page = AgentPage {
        nav: b.nav("agents"),
        now: state.now(),
        csrf: b.session.csrf_token.clone(),
        a: AgentView {
            id: agent.id.clone(),
            did: agent.did.clone(),
            name: agent.name.clone(),
            description: agent.description.clone().unwrap_or_default(),
            capabilities: agent.capabilities().join(", "),
            price: crate::money::Amount::from_units(agent.base_price).unwrap_or_default().to_string(),
            reputation: format!("{:.2}", agent.reputation()),
            status: agent.status.clone(),
        },
        available: super::view::usd(balances.available),
        pending: super::view::usd(balances.pending),
        keys,
        new_key,
        notice,
        error: error.filter(|_| errors.is_empty()).map(message_of),
        errors,
    };
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    (status, render(page)).into_response()
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match require_browser(&state, &headers).await {
        Ok(b) => show(&state, &b, &id, None, None, None).await,
        Err(r) => r,
    }
}

pub async fn edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Fields>,
) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    use super::pages::{line, lines, text};
    let input = || -> Result<AgentInput, ApiError> {
        Ok(AgentInput {
            name: line(&form, "name")?,
            description: text(&form, "description")?,
            capabilities: if form.contains_key("capabilities") { Some(lines(&form, "capabilities")?) } else { None },
            base_price: line(&form, "base_price")?.filter(|p| !p.is_empty()),
            ..AgentInput::default()
        })
    };
    let saved = match input().and_then(|i| i.validate(false, &state.config)) {
        Ok(changes) => agents::update(&state.db, &as_caller(&b), &id, changes, state.now()).await.map(drop),
        Err(e) => Err(e),
    };
    match saved {
        Ok(()) => show(&state, &b, &id, None, Some("Saved.".into()), None).await,
        Err(e) => show(&state, &b, &id, None, None, Some(&e)).await,
    }
}

pub async fn create_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Fields>,
) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let created = match agents::controlled(&state.db, &as_caller(&b), &id).await {
        Ok(agent) => credentials::create(&state.db, &as_caller(&b), &agent.id, "dashboard", state.now()).await,
        Err(e) => Err(e),
    };
    match created {
        Ok((_, secret)) => show(&state, &b, &id, Some(secret.into_inner()), None, None).await,
        Err(e) => show(&state, &b, &id, None, None, Some(&e)).await,
    }
}

pub async fn revoke_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, key_id)): Path<(String, String)>,
    Form(form): Form<Fields>,
) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let revoked = match agents::controlled(&state.db, &as_caller(&b), &id).await {
        Ok(agent) => credentials::revoke(&state.db, &as_caller(&b), &agent.id, &key_id, state.now()).await.map(drop),
        Err(e) => Err(e),
    };
    match revoked {
        Ok(()) => show(&state, &b, &id, None, Some("Key revoked.".into()), None).await,
        Err(e) => show(&state, &b, &id, None, None, Some(&e)).await,
    }
}
