//! The user's webhook subscriptions: list with delivery health, add (secret shown once), remove.

use std::collections::HashMap;

use super::Form;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::pages::message_of;
use super::view::filters;
use super::{Browser, Nav, internal, render, require_browser};
use crate::error::ApiError;
use crate::ledger::Principal;
use crate::state::AppState;
use crate::webhooks::{self, Webhook};

type Fields = HashMap<String, String>;

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    nav: Option<Nav>,
    now: i64,
    csrf: String,
    hooks: Vec<Webhook>,
    new_secret: Option<String>,
    error: Option<String>,
    form_url: String,
    form_events: String,
    url_error: Option<String>,
    events_error: Option<String>,
}

fn owner(b: &Browser) -> String {
    Principal::User(b.user.id.clone()).key()
}

async fn show(
    state: &AppState,
    b: &Browser,
    new_secret: Option<String>,
    form: &Fields,
    error: Option<&ApiError>,
) -> Response {
    let hooks = match webhooks::list(&state.db, &owner(b)).await {
        Ok(h) => h,
        Err(e) => return internal(e),
    };
    let mut fields: HashMap<String, String> = HashMap::new();
    if let Some(ApiError::Known { details, .. }) = error {
        for d in details {
            if let (Some(f), Some(m)) = (d["field"].as_str(), d["message"].as_str()) {
                fields.entry(f.to_string()).or_insert_with(|| m.to_string());
            }
        }
    }
    let keep = |k: &str| if error.is_some() { form.get(k).cloned().unwrap_or_default() } else { String::new() };
    let page = WebhooksPage {
        nav: b.nav("webhooks"),
        now: state.now(),
        csrf: b.session.csrf_token.clone(),
        hooks,
        new_secret,
        error: error.filter(|_| fields.is_empty()).map(message_of),
        form_url: keep("callback_url"),
        form_events: keep("events"),
        url_error: fields.get("callback_url").cloned(),
        events_error: fields.get("event_types").cloned(),
    };
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    (status, render(page)).into_response()
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match require_browser(&state, &headers).await {
        Ok(b) => show(&state, &b, None, &Fields::new(), None).await,
        Err(r) => r,
    }
}

pub async fn create(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<Fields>) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let events = super::pages::comma_list(&form, "events");
    let events = (!events.is_empty()).then_some(events);
    let created =
        match webhooks::validate(form.get("callback_url").cloned(), events, None, state.config.allow_private_network) {
            Ok(new) => webhooks::subscribe(&state.db, &state.secrets, &owner(&b), new, state.now()).await,
            Err(e) => Err(e),
        };
    match created {
        Ok((_, secret)) => show(&state, &b, Some(secret.into_inner()), &Fields::new(), None).await,
        Err(e) => show(&state, &b, None, &form, Some(&e)).await,
    }
}

pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Fields>,
) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match webhooks::unsubscribe(&state.db, &owner(&b), &id, state.now()).await {
        Ok(_) => Redirect::to("/dashboard/webhooks").into_response(),
        Err(e) => show(&state, &b, None, &Fields::new(), Some(&e)).await,
    }
}
