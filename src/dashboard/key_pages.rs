//! The API keys page: list, create (the secret shown once), revoke, roll.

use super::Form;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::pages::{Fields, NewSecret, as_caller, errors_of, field, line, message_of};
use super::{Browser, Nav, internal, render, require_browser};
use crate::accounts::api_keys::{self, NewKeyRequest};
use crate::error::ApiError;
use crate::state::AppState;
use crate::text::Line;

pub struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    last4: String,
    scopes: String,
    created_at: String,
    last_used_at: String,
    expires_at: String,
    active: bool,
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct KeysPage {
    nav: Option<Nav>,
    pager: super::Pager,
    csrf: String,
    keys: Vec<KeyRow>,
    new_key: Option<NewSecret>,
    error: Option<String>,
    form_name: String,
    form_scopes: String,
    form_cap: String,
    form_expires: String,
    expires_error: Option<String>,
    name_error: Option<String>,
    scopes_error: Option<String>,
    cap_error: Option<String>,
}

async fn keys_page(
    state: &AppState,
    b: &Browser,
    new_key: Option<NewSecret>,
    form: &Fields,
    error: Option<&ApiError>,
) -> Response {
    keys_page_at(state, b, super::Pager::from_query(form, "/dashboard/api-keys?".into()), new_key, form, error).await
}

async fn keys_page_at(
    state: &AppState,
    b: &Browser,
    mut pager: super::Pager,
    new_key: Option<NewSecret>,
    form: &Fields,
    error: Option<&ApiError>,
) -> Response {
    let _ = state.flush_key_uses().await; // a failed write shows an older time, no more
    let keys = match api_keys::list(&state.db, &b.user.id).await {
        Ok(k) => pager.slice(k),
        Err(e) => return internal(e),
    };
    let now = state.now();
    let errors = error.map(errors_of).unwrap_or_default();
    let rows = keys
        .into_iter()
        .map(|k| {
            let expired = k.expires_at.as_deref().and_then(crate::clock::parse_rfc3339).is_some_and(|t| t <= now);
            KeyRow {
                active: k.revoked_at.is_none() && !expired,
                id: k.id,
                name: k.name,
                prefix: k.prefix,
                last4: k.last4,
                scopes: k.scopes.join(", "),
                created_at: k.created_at,
                last_used_at: k.last_used_at.unwrap_or_else(|| "never".into()),
                expires_at: k.expires_at.unwrap_or_else(|| "never".into()),
            }
        })
        .collect();
    let banner = error.filter(|_| errors.is_empty()).map(message_of);
    let page = KeysPage {
        pager,
        nav: b.nav("api-keys"),
        csrf: b.session.csrf_token.clone(),
        keys: rows,
        new_key,
        error: banner,
        form_name: if error.is_some() { field(form, "name") } else { String::new() },
        form_scopes: if error.is_some() { field(form, "scopes") } else { String::new() },
        form_cap: if error.is_some() { field(form, "max_price_per_hire") } else { String::new() },
        form_expires: if error.is_some() { field(form, "expires_at") } else { String::new() },
        expires_error: errors.get("expires_at").cloned(),
        name_error: errors.get("name").cloned(),
        scopes_error: errors.get("scopes").cloned(),
        cap_error: errors.get("max_price_per_hire").cloned(),
    };
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    (status, render(page)).into_response()
}

pub async fn api_keys(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Fields>) -> Response {
    match require_browser(&state, &headers).await {
        Ok(b) => {
            keys_page_at(
                &state,
                &b,
                super::Pager::from_query(&q, "/dashboard/api-keys?".into()),
                None,
                &Fields::new(),
                None,
            )
            .await
        }
        Err(r) => r,
    }
}

pub async fn create_key(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<Fields>) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let scopes = field(&form, "scopes");
    let request = || -> Result<NewKeyRequest, ApiError> {
        Ok(NewKeyRequest {
            name: line(&form, "name")?,
            scopes: if scopes.is_empty() { None } else { Some(super::pages::lines(&form, "scopes")?) },
            // A datetime-local field: "2026-12-01T10:00", read as UTC.
            expires_at: match line(&form, "expires_at")?.filter(|e| !e.is_empty()) {
                Some(e) if e.len() == 16 => Some(Line::field("expires_at", format!("{e}:00Z"))?),
                other => other,
            },
            max_price_per_hire: line(&form, "max_price_per_hire")?.filter(|s| !s.is_empty()),
        })
    };
    let now = state.now();
    let created = match request().and_then(|r| r.validate(now, state.config.max_amount)) {
        Ok(spec) => api_keys::create(&state.db, &as_caller(&b), &spec, now).await,
        Err(e) => Err(e),
    };
    match created {
        Ok((key, secret)) => {
            keys_page(&state, &b, Some(NewSecret { name: key.name, secret: secret.into_inner() }), &form, None).await
        }
        Err(e) => keys_page(&state, &b, None, &form, Some(&e)).await,
    }
}

pub async fn revoke_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Fields>,
) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match api_keys::revoke(&state.db, &as_caller(&b), &id, state.now()).await {
        Ok(_) => Redirect::to("/dashboard/api-keys").into_response(),
        Err(e) => keys_page(&state, &b, None, &Fields::new(), Some(&e)).await,
    }
}

pub async fn roll_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Fields>,
) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match api_keys::roll(&state.db, &as_caller(&b), &id, 0, state.now()).await {
        Ok((key, secret)) => {
            keys_page(&state, &b, Some(NewSecret { name: key.name, secret: secret.into_inner() }), &Fields::new(), None)
                .await
        }
        Err(e) => keys_page(&state, &b, None, &Fields::new(), Some(&e)).await,
    }
}
