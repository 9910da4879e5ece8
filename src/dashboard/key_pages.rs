//! The API keys page: list, create (the secret shown once, with the MCP set-up for it), revoke,
//! roll. Scopes are chosen as checkboxes grouped by area or as presets, all derived from the
//! `Scope` type and, for "AI assistant hiring", from the MCP hirer tools' own guards.

use std::collections::BTreeSet;

use super::Form;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::pages::{Fields, NewSecret, as_caller, errors_of, field, line, message_of};
use super::view::filters;
use super::{Browser, Nav, internal, render, require_browser};
use crate::accounts::api_keys::{self, NewKeyRequest};
use crate::auth::scope::Scope;
use crate::error::ApiError;
use crate::state::AppState;
use crate::text::Line;

const DAY_MS: i64 = 86_400_000;

/// The scope presets: `(id, label, scopes)`; full access is every scope (`*`).
fn presets() -> Vec<(&'static str, &'static str, Option<BTreeSet<Scope>>)> {
    vec![
        ("full", "Full access", None),
        ("read", "Read only", Some(Scope::ALL.into_iter().filter(|s| s.is_read_only()).collect())),
        ("assistant", "AI assistant hiring (MCP)", Some(crate::mcp::scopes::hirer_scopes())),
        ("custom", "Choose below", Some(BTreeSet::new())),
    ]
}

pub struct PresetChoice {
    id: &'static str,
    label: &'static str,
    /// The scopes it ticks, space-separated (for the page's script).
    scopes: String,
    checked: bool,
}

pub struct ScopeBox {
    name: &'static str,
    checked: bool,
}

pub struct ScopeGroup {
    area: &'static str,
    scopes: Vec<ScopeBox>,
}

/// The set-up lines for an AI assistant using the new key over MCP.
pub struct McpSnippets {
    claude: String,
    codex: String,
    env: String,
}

fn mcp_snippets(state: &AppState, secret: &str) -> McpSnippets {
    let url = format!("{}{}", state.config.public_url.trim_end_matches('/'), crate::mcp::HIRER_PATH);
    let codex = serde_json::json!({"mcpServers": {"agentmarket": {
        "type": "http",
        "url": url,
        "bearer_token_env_var": CODEX_KEY_VARIABLE,
        "default_tools_approval_mode": "writes",
    }}});
    McpSnippets {
        claude: format!(
            "claude mcp add --transport http agentmarket {url} --header \"Authorization: Bearer {secret}\""
        ),
        codex: serde_json::to_string_pretty(&codex).unwrap_or_default(),
        env: format!("export {CODEX_KEY_VARIABLE}={secret}"),
    }
}

/// The variable Agrenting's Codex plugin reads its key from, so the plugin works unchanged.
const CODEX_KEY_VARIABLE: &str = "AGRENTING_API_KEY";

/// The preset the form chose (`full` when none).
fn preset_of(form: &Fields) -> String {
    let p = field(form, "preset");
    if presets().iter().any(|(id, ..)| *id == p) { p } else { "full".into() }
}

/// The scope names the form asks for: a preset's, or the ticked boxes (`None` = full access).
fn chosen_scopes(form: &Fields) -> Option<Vec<String>> {
    let preset = preset_of(form);
    if preset == "custom" {
        let mut names: Vec<String> = form.keys().filter_map(|k| k.strip_prefix("scope.")).map(String::from).collect();
        names.sort();
        return Some(names);
    }
    let (_, _, scopes) = presets().into_iter().find(|(id, ..)| *id == preset)?;
    scopes.map(|set| set.into_iter().map(|s| s.as_str().to_string()).collect())
}

fn scope_choices(form: &Fields, keep: bool, is_admin: bool) -> (Vec<PresetChoice>, Vec<ScopeGroup>) {
    let preset = if keep { preset_of(form) } else { "full".into() };
    let ticked: BTreeSet<String> =
        if keep { chosen_scopes(form).unwrap_or_default().into_iter().collect() } else { BTreeSet::new() };
    let choices = presets()
        .into_iter()
        .map(|(id, label, scopes)| PresetChoice {
            id,
            label,
            scopes: match scopes {
                None => Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
                Some(set) => set.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
            },
            checked: id == preset,
        })
        .collect();
    let mut groups: Vec<ScopeGroup> = Vec::new();
    for scope in Scope::ALL.into_iter().filter(|s| is_admin || *s != Scope::Admin) {
        let b = ScopeBox { name: scope.as_str(), checked: ticked.contains(scope.as_str()) };
        match groups.iter_mut().find(|g| g.area == scope.area()) {
            Some(g) => g.scopes.push(b),
            None => groups.push(ScopeGroup { area: scope.area(), scopes: vec![b] }),
        }
    }
    (choices, groups)
}

/// The form's expiry: a preset (30 or 90 days, never) or the date given, as RFC 3339.
fn expiry(form: &Fields, now: i64) -> Result<Option<Line>, ApiError> {
    let days = |n: i64| Line::field("expires_at", crate::clock::rfc3339(now + n * DAY_MS)).map(Some);
    match field(form, "expiry").as_str() {
        "never" => Ok(None),
        "30" => days(30),
        "90" => days(90),
        _ => super::hire_pages::utc_datetime(form, "expires_at"),
    }
}

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
    now: i64,
    pager: super::Pager,
    csrf: String,
    keys: Vec<KeyRow>,
    new_key: Option<NewSecret>,
    mcp: Option<McpSnippets>,
    error: Option<String>,
    form_name: String,
    presets: Vec<PresetChoice>,
    scope_groups: Vec<ScopeGroup>,
    form_expiry: String,
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
    let spec = pager.spec(&api_keys::order());
    let keys = match api_keys::list_page(&state.db, &b.user.id, &spec).await {
        Ok((k, meta)) => {
            pager.next = meta.cursor;
            k
        }
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
                scopes: if k.scopes == ["*"] { "full access".into() } else { k.scopes.join(", ") },
                created_at: k.created_at,
                last_used_at: k.last_used_at.unwrap_or_else(|| "never".into()),
                expires_at: k.expires_at.unwrap_or_else(|| "never".into()),
            }
        })
        .collect();
    let banner = error.filter(|_| errors.is_empty()).map(message_of);
    let keep = error.is_some();
    let (presets, scope_groups) = scope_choices(form, keep, b.user.is_admin);
    let page = KeysPage {
        pager,
        nav: b.nav("api-keys"),
        now,
        csrf: b.session.csrf_token.clone(),
        keys: rows,
        mcp: new_key.as_ref().map(|k| mcp_snippets(state, &k.secret)),
        new_key,
        error: banner,
        form_name: if keep { field(form, "name") } else { String::new() },
        presets,
        scope_groups,
        form_expiry: if keep { field(form, "expiry") } else { "never".into() },
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
    let now = state.now();
    let request = || -> Result<NewKeyRequest, ApiError> {
        Ok(NewKeyRequest {
            name: line(&form, "name")?,
            scopes: match chosen_scopes(&form) {
                None => None,
                Some(names) => Some(names.into_iter().map(|n| Line::field("scopes", n)).collect::<Result<_, _>>()?),
            },
            expires_at: expiry(&form, now)?,
            max_price_per_hire: line(&form, "max_price_per_hire")?.filter(|s| !s.is_empty()),
        })
    };
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
