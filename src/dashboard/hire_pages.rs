//! Hiring from the browser: the Hire form of an agent (`/agents/<did>/hire`) and the "new task"
//! form of the Tasks page. The quote is the engine's price rule (`resolve_price`) and the
//! settlement's own split (`Settlement::release`); submitting calls the REST endpoints' functions
//! (`hiring_routes::hire_with`, `tasks::create`), so every check is theirs and a refusal holds
//! nothing.

use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::Form;
use super::market_pages::public_agent;
use super::pages::{Fields, as_caller, errors_of, field, message_of};
use super::view::{did_path, usd};
use super::{Browser, Nav, internal, render};
use crate::agents::model::AgentRow;
use crate::error::ApiError;
use crate::http::extract::JsonObject;
use crate::ledger::{self, Principal};
use crate::money::{Amount, Settlement};
use crate::state::AppState;
use crate::tasks::engine::Pricing;
use crate::tasks::engine::create::resolve_price;
use crate::tasks::{self, NewTaskRequest, Settings};
use crate::text::Line;

/// What hiring an agent would cost and who gets what, and whether the wallet covers it.
pub struct Quote {
    price: String,
    fee: String,
    fee_rate: String,
    provider_gets: String,
    available: String,
    enough: bool,
    /// Why there is no price yet (e.g. an auction agent needs your maximum).
    note: Option<String>,
}

/// The form's maximum price: empty is none; otherwise an amount as the API reads one.
fn max_price(state: &AppState, form: &Fields) -> Result<Option<Amount>, ApiError> {
    let raw = field(form, "max_price");
    if raw.is_empty() {
        return Ok(None);
    }
    Amount::parse_at_most(&raw, state.config.max_amount)
        .map(Some)
        .map_err(|e| ApiError::invalid_amount("max_price", e.to_string()))
}

/// The price the engine would charge for `agent` within the form's maximum.
fn price_for(state: &AppState, agent: &AgentRow, form: &Fields) -> Result<Amount, ApiError> {
    resolve_price(agent, &Pricing::Model { max_price: max_price(state, form)? }, None)
}

async fn quote(state: &AppState, b: &Browser, agent: Option<&AgentRow>, form: &Fields) -> Result<Quote, Response> {
    let balances = ledger::balances(&state.db, &Principal::User(b.user.id.clone())).await.map_err(internal)?;
    let fee_bps = Settings::from_config(&state.config).fee_bps;
    let priced = match agent {
        Some(agent) => price_for(state, agent, form),
        None => Err(ApiError::field("agent", "choose an agent to see its price")),
    };
    let (price, note) = match priced {
        Ok(price) => (Some(price), None),
        Err(e) => (None, Some(message_of(&e))),
    };
    let split = Settlement::release(price.unwrap_or_default(), fee_bps);
    Ok(Quote {
        price: price.map(usd).unwrap_or_else(|| "—".into()),
        fee: usd(split.fee),
        fee_rate: format!("{} %", fee_bps as f64 / 100.0),
        provider_gets: usd(split.to_provider),
        available: usd(balances.available),
        enough: price.is_none_or(|p| p <= balances.available),
        note,
    })
}

/// A form's field errors, named as the form names its fields.
fn form_errors(err: &ApiError) -> HashMap<String, String> {
    errors_of(err)
        .into_iter()
        .map(|(k, v)| {
            let k = match k.as_str() {
                "capability_requested" => "capability".to_string(),
                "price" => "max_price".to_string(),
                "provider_agent_id" => "agent".to_string(),
                "task_description" | "input" => "description".to_string(),
                _ => k,
            };
            (k, v)
        })
        .collect()
}

/// A refusal's banner, unless it belongs beside a field.
fn banner(err: &ApiError, errors: &HashMap<String, String>) -> Option<String> {
    if !errors.is_empty() {
        return None;
    }
    Some(if err.code() == "INSUFFICIENT_BALANCE" {
        "Not enough balance for this price: add funds to your wallet first. Nothing was held.".into()
    } else {
        message_of(err)
    })
}

/// The form's values, kept as typed.
pub struct HireForm {
    description: String,
    capability: String,
    max_price: String,
    deadline: String,
    /// The form's own idempotency key: submitting it twice hires once.
    key: String,
}

impl HireForm {
    fn of(form: &Fields) -> HireForm {
        let key = field(form, "key");
        HireForm {
            description: field(form, "description"),
            capability: field(form, "capability"),
            max_price: field(form, "max_price"),
            deadline: field(form, "deadline"),
            key: if key.is_empty() { uuid::Uuid::new_v4().to_string() } else { key },
        }
    }
}

/// What both forms show: the quote, the form as typed, the refusal.
pub struct FormView {
    csrf: String,
    capabilities: Vec<String>,
    form: HireForm,
    quote: Quote,
    error: Option<String>,
    errors: HashMap<String, String>,
}

async fn form_view(
    state: &AppState,
    b: &Browser,
    agent: Option<&AgentRow>,
    form: &Fields,
    error: Option<&ApiError>,
) -> Result<FormView, Response> {
    let quote = quote(state, b, agent, form).await?;
    let errors = error.map(form_errors).unwrap_or_default();
    Ok(FormView {
        csrf: b.session.csrf_token.clone(),
        capabilities: agent.map(|a| a.capabilities()).unwrap_or_default(),
        form: HireForm::of(form),
        quote,
        error: error.and_then(|e| banner(e, &errors)),
        errors,
    })
}

/// A form page, 422 when it shows a refusal.
fn form_response(page: impl Template, error: Option<&ApiError>) -> Response {
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    (status, render(page)).into_response()
}

#[derive(Template)]
#[template(path = "hire.html")]
struct HirePage {
    nav: Option<Nav>,
    name: String,
    did: String,
    path: String,
    v: FormView,
}

async fn hire_page(
    state: &AppState,
    b: &Browser,
    agent: &AgentRow,
    form: &Fields,
    error: Option<&ApiError>,
) -> Response {
    let v = match form_view(state, b, Some(agent), form, error).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let page = HirePage {
        nav: b.nav("tasks"),
        name: agent.name.clone(),
        did: agent.did.clone(),
        path: did_path(&agent.did),
        v,
    };
    form_response(page, error)
}

fn hire_path(did: &str) -> String {
    format!("/agents/{}/hire", did_path(did))
}

pub async fn hire_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(did): Path<String>,
    Query(q): Query<Fields>,
) -> Response {
    let b = match super::require_browser_for(&state, &headers, &hire_path(&did)).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match public_agent(&state, &did).await {
        Ok(agent) => hire_page(&state, &b, &agent, &q, None).await,
        Err(r) => r,
    }
}

/// A datetime-local field ("2026-12-01T10:00"), read as UTC, as RFC 3339 (`None` when empty).
pub(super) fn utc_datetime(form: &Fields, name: &str) -> Result<Option<Line>, ApiError> {
    match super::pages::line(form, name)?.filter(|e| !e.is_empty()) {
        Some(e) if e.len() == 16 => Ok(Some(Line::field(name, format!("{e}:00Z"))?)),
        other => Ok(other),
    }
}

pub(super) fn json_body(value: serde_json::Value) -> Result<JsonObject, ApiError> {
    let bytes = serde_json::to_vec(&value).map_err(|e| ApiError::Internal(e.into()))?;
    JsonObject::from_bytes(&Bytes::from(bytes))
}

/// "Check the price" shows the quote for the form as typed; "Hire" holds the escrow and goes to
/// the hiring's page.
pub async fn hire(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(did): Path<String>,
    Form(form): Form<Fields>,
) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let agent = match public_agent(&state, &did).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if field(&form, "step") == "quote" {
        return hire_page(&state, &b, &agent, &form, None).await;
    }
    let hired = async {
        let price = price_for(&state, &agent, &form)?;
        let body = json!({
            "task_description": field(&form, "description"),
            "capability_requested": field(&form, "capability"),
            "price": price,
            "client_idempotency_key": field(&form, "key"),
            "deadline_at": utc_datetime(&form, "deadline")?,
        });
        tasks::hiring_routes::hire_with(&state, &as_caller(&b), &agent.did, json_body(body)?).await
    }
    .await;
    match hired {
        Ok((hired, _)) => Redirect::to(&format!("/dashboard/tasks/{}", hired.hiring.id)).into_response(),
        Err(e) => hire_page(&state, &b, &agent, &form, Some(&e)).await,
    }
}

#[derive(Template)]
#[template(path = "new_task.html")]
struct NewTaskPage {
    nav: Option<Nav>,
    agent: String,
    v: FormView,
}

async fn new_task_page(state: &AppState, b: &Browser, form: &Fields, error: Option<&ApiError>) -> Response {
    let reference = field(form, "agent");
    let agent = if reference.is_empty() { None } else { public_agent(state, &reference).await.ok() };
    let v = match form_view(state, b, agent.as_ref(), form, error).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    form_response(NewTaskPage { nav: b.nav("tasks"), agent: reference, v }, error)
}

pub async fn new_task_form(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Fields>) -> Response {
    match super::require_browser_for(&state, &headers, "/dashboard/tasks/new").await {
        Ok(b) => new_task_page(&state, &b, &q, None).await,
        Err(r) => r,
    }
}

/// A task for an agent, paid from the balance at once (`POST /tasks` with `payment_type: balance`).
pub async fn new_task(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<Fields>) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if field(&form, "step") == "quote" {
        return new_task_page(&state, &b, &form, None).await;
    }
    let line = |name: &str| super::pages::line(&form, name).map(|v| v.filter(|v| !v.is_empty()));
    let created = async {
        let request = NewTaskRequest {
            provider_agent_id: line("agent")?,
            provider_agent_did: None,
            capability: line("capability")?,
            input: super::pages::text(&form, "description")?
                .filter(|d| !d.is_empty())
                .map(|d| serde_json::Value::String(d.into_string())),
            max_price: line("max_price")?,
            payment_type: Some("balance".into()),
            deadline_at: utc_datetime(&form, "deadline")?,
        };
        let task = request.validate(state.now(), state.config.max_amount)?;
        tasks::create(&state.engine, &as_caller(&b), task, Settings::from_config(&state.config)).await
    }
    .await;
    match created {
        Ok(task) => Redirect::to(&format!("/dashboard/tasks/{}", task.id)).into_response(),
        Err(e) => new_task_page(&state, &b, &form, Some(&e)).await,
    }
}
