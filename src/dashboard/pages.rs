//! Dashboard pages. Each handler: find the browser, check the CSRF token on posts, call the
//! slice, render. Forms re-show the input with the errors beside their fields.

use std::collections::HashMap;

use super::Form;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::{Browser, Nav, internal, render, require_browser};
use crate::agents::{self, model::AgentInput};
use crate::auth::Caller;
use crate::auth::caller::{Credential, UserCtx};
use crate::auth::scope::Scopes;
use crate::error::ApiError;
use crate::ledger::{self, Principal};
use crate::state::AppState;
use crate::text::{Line, Text};

pub(super) type Fields = HashMap<String, String>;

/// A form field as one line of text, trimmed (`None` when absent); a newline or other control
/// character is an error on that field, as in the API.
pub(super) fn line(form: &Fields, name: &str) -> Result<Option<Line>, ApiError> {
    form.get(name).map(|v| Line::field(name, v.trim())).transpose()
}

/// A form field as free text (newlines kept), trimmed (`None` when absent).
pub(super) fn text(form: &Fields, name: &str) -> Result<Option<Text>, ApiError> {
    form.get(name).map(|v| Text::field(name, v.trim())).transpose()
}

/// A comma-separated form field as lines (empty when absent).
pub(super) fn lines(form: &Fields, name: &str) -> Result<Vec<Line>, ApiError> {
    comma_list(form, name).into_iter().map(|v| Line::field(name, v)).collect()
}

pub(super) fn field(form: &Fields, name: &str) -> String {
    form.get(name).map(|v| v.trim().to_string()).unwrap_or_default()
}

/// Field errors of a validation failure, by field name.
/// A comma-separated form field as a list, blanks dropped (empty when the field is absent).
pub(super) fn comma_list(form: &Fields, name: &str) -> Vec<String> {
    form.get(name)
        .map(|v| v.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
        .unwrap_or_default()
}

pub(super) fn errors_of(err: &ApiError) -> HashMap<String, String> {
    match err {
        ApiError::Known { details, .. } => details
            .iter()
            .filter_map(|d| {
                Some((d["field"].as_str()?.to_string(), d["message"].as_str().unwrap_or("is invalid").to_string()))
            })
            .collect(),
        _ => HashMap::new(),
    }
}

pub(super) fn message_of(err: &ApiError) -> String {
    match err {
        ApiError::Known { message, .. } => message.clone(),
        ApiError::Internal(_) => "Something went wrong; please try again.".into(),
    }
}

/// The dashboard acts as the signed-in user with full access over their own things.
pub(super) fn as_caller(b: &Browser) -> Caller {
    Caller {
        credential: Credential::Browser { session_id: format!("dashboard:{}", b.session.id) },
        user: Some(UserCtx { id: b.user.id.clone(), is_admin: b.user.is_admin }),
        agent: None,
        scopes: Scopes::all(),
        max_price_per_hire: None,
    }
}

pub struct AgentCard {
    name: String,
    did: String,
    path: String,
    capabilities: Vec<String>,
    base_price: String,
    reputation_score: String,
}

#[derive(Template)]
#[template(path = "marketplace.html")]
struct Marketplace {
    nav: Option<Nav>,
    capability: String,
    agents: Vec<AgentCard>,
}

pub async fn marketplace(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Fields>) -> Response {
    let b = match super::browser(&state, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let capability = field(&q, "capability").to_ascii_lowercase();
    let query = agents::discovery::ListQuery {
        capability: (!capability.is_empty()).then(|| capability.clone()),
        q: None,
        limit: Some("60".into()),
        cursor: None,
        offset: None,
    };
    let rows = match agents::discovery::list(&state.db, &query).await {
        Ok(page) => page.rows,
        Err(e) => return internal(message_of(&e)),
    };
    let agents = rows
        .iter()
        .map(|a| AgentCard {
            name: a.name.clone(),
            did: a.did.clone(),
            path: super::view::did_path(&a.did),
            capabilities: a.capabilities(),
            base_price: super::view::usd_units(a.base_price),
            reputation_score: format!("{:.2}", a.reputation()),
        })
        .collect();
    render(Marketplace { nav: b.as_ref().and_then(|b| b.nav("marketplace")), capability, agents })
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    nav: Option<Nav>,
    display_name: String,
    available: String,
    escrow: String,
    pending: String,
    agent_count: i64,
}

pub async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let b = match require_browser(&state, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let balances = match ledger::balances(&state.db, &Principal::User(b.user.id.clone())).await {
        Ok(x) => x,
        Err(e) => return internal(e),
    };
    let agent_count = agents::count_owned(&state.db, &b.user.id).await.unwrap_or(0);
    render(Overview {
        nav: b.nav("overview"),
        display_name: b.user.name.clone().unwrap_or_default(),
        available: balances.available.to_string(),
        escrow: balances.escrow.to_string(),
        pending: balances.pending.to_string(),
        agent_count,
    })
}

pub struct NewSecret {
    pub(super) name: String,
    pub(super) secret: String,
}

pub struct AgentLine {
    id: String,
    name: String,
    did: String,
    capabilities: String,
    price: String,
    reputation: String,
    status: String,
}

pub struct AgentForm {
    name: String,
    did: String,
    capabilities: String,
    base_price: String,
    errors: HashMap<String, String>,
}

#[derive(Template)]
#[template(path = "agents.html")]
struct AgentsPage {
    nav: Option<Nav>,
    pager: super::Pager,
    csrf: String,
    agents: Vec<AgentLine>,
    new_key: Option<NewSecret>,
    error: Option<String>,
    notice: Option<String>,
    form: AgentForm,
}

async fn agents_page(
    state: &AppState,
    b: &Browser,
    new_key: Option<NewSecret>,
    form: &Fields,
    error: Option<&ApiError>,
) -> Response {
    agents_page_with(state, b, new_key, form, error, None).await
}

async fn agents_page_with(
    state: &AppState,
    b: &Browser,
    new_key: Option<NewSecret>,
    form: &Fields,
    error: Option<&ApiError>,
    notice: Option<String>,
) -> Response {
    let mut pager = super::Pager::from_query(form, "/dashboard/agents?".into());
    // One page and one row more (is there a next page?), not the whole list.
    let spec = pager.spec(&agents::store::owned_order());
    let rows = match agents::store::list_owned_page(&state.db, &b.user.id, &spec).await {
        Ok((r, meta)) => {
            pager.next = meta.cursor;
            r
        }
        Err(e) => return internal(e),
    };
    let errors = error.map(errors_of).unwrap_or_default();
    let keep = error.is_some();
    let page = AgentsPage {
        pager,
        nav: b.nav("agents"),
        csrf: b.session.csrf_token.clone(),
        agents: rows
            .iter()
            .map(|a| AgentLine {
                id: a.id.clone(),
                name: a.name.clone(),
                did: a.did.clone(),
                capabilities: a.capabilities().join(", "),
                price: super::view::usd_units(a.base_price),
                reputation: format!("{:.2}", a.reputation()),
                status: a.status.clone(),
            })
            .collect(),
        new_key,
        error: error.filter(|_| errors.is_empty()).map(message_of),
        notice,
        form: AgentForm {
            name: if keep { field(form, "name") } else { String::new() },
            did: if keep { field(form, "did") } else { String::new() },
            capabilities: if keep { field(form, "capabilities") } else { String::new() },
            base_price: if keep { field(form, "base_price") } else { String::new() },
            errors,
        },
    };
    let status = if keep { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    (status, render(page)).into_response()
}

pub async fn agents(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Fields>) -> Response {
    match require_browser(&state, &headers).await {
        Ok(b) => agents_page(&state, &b, None, &q, None).await,
        Err(r) => r,
    }
}

pub async fn register_agent(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<Fields>) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let input = || -> Result<AgentInput, ApiError> {
        Ok(AgentInput {
            name: Some(line(&form, "name")?.unwrap_or_default()),
            did: Some(line(&form, "did")?.unwrap_or_default()),
            capabilities: Some(lines(&form, "capabilities")?),
            pricing_model: Some(line(&form, "pricing_model")?.unwrap_or_else(|| "fixed".into())),
            base_price: line(&form, "base_price")?.filter(|p| !p.is_empty()),
            ..AgentInput::default()
        })
    };
    let registered = match input().and_then(|i| i.validate(true, &state.config)) {
        Ok(fields) => {
            agents::register(
                &state.registrar,
                Some(&as_caller(&b)),
                fields,
                state.config.max_agents_per_user,
                state.now(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    match registered {
        Ok(r) => {
            agents_page(
                &state,
                &b,
                Some(NewSecret { name: r.agent.name.clone(), secret: r.secret.into_inner() }),
                &form,
                None,
            )
            .await
        }
        Err(e) => {
            let e = if e.code() == "CONFLICT" { ApiError::field("did", "is already registered") } else { e };
            agents_page(&state, &b, None, &form, Some(&e)).await
        }
    }
}

pub async fn toggle_agent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Fields>,
) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let caller = as_caller(&b);
    let current = match agents::controlled(&state.db, &caller, &id).await {
        Ok(a) => a,
        Err(e) => return agents_page(&state, &b, None, &Fields::new(), Some(&e)).await,
    };
    let next = if current.status == "active" { "draft" } else { "active" };
    let changes = agents::model::AgentFields { status: Some(next.into()), ..Default::default() };
    match agents::update(&state.db, &caller, &id, changes, state.now()).await {
        Ok(_) => Redirect::to("/dashboard/agents").into_response(),
        Err(e) => agents_page(&state, &b, None, &Fields::new(), Some(&e)).await,
    }
}

/// Claims an autonomous agent into the account with one of its keys (the assign flow).
pub async fn claim_agent(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<Fields>) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let item = agents::AssignItem { agent: field(&form, "agent"), api_key: field(&form, "api_key") };
    if item.agent.is_empty() || item.api_key.is_empty() {
        return agents_page(
            &state,
            &b,
            None,
            &Fields::new(),
            Some(&ApiError::field("agent", "give the agent's id or DID and one of its keys")),
        )
        .await;
    }
    let summary =
        agents::assign(&state.db, &b.user.id, vec![item], state.config.max_agents_per_user, state.now()).await;
    match summary.map(|s| s.results.into_iter().next()) {
        Ok(Some(r)) if r.status != "failed" => {
            agents_page_with(&state, &b, None, &Fields::new(), None, Some("The agent is now yours.".into())).await
        }
        Ok(Some(r)) => {
            let message = r.error.map(|e| e.message).unwrap_or_else(|| "the agent could not be claimed".into());
            agents_page(&state, &b, None, &Fields::new(), Some(&ApiError::conflict(message))).await
        }
        Ok(None) => internal("no assign result"),
        Err(e) => agents_page(&state, &b, None, &Fields::new(), Some(&e)).await,
    }
}
