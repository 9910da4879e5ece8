//! The web dashboard: server-rendered pages (askama), cookie sessions and CSRF tokens. Handlers
//! call the same slice functions as the API; nothing here touches a table directly.

mod admin;
mod agent_page;
mod artifact_view;
mod auth_pages;
mod charts;
mod hire_pages;
mod key_pages;
mod markdown;
mod market_pages;
mod money_pages;
mod pages;
mod task_page;
mod view;
mod webhook_pages;

use std::collections::HashMap;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use subtle::ConstantTimeEq;

use crate::accounts::browser_sessions::{self, BrowserSession};
use crate::accounts::users::{self, User};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "am_session";
/// The double-submit token of the forms shown before a session exists (log in, sign up).
pub const PRE_CSRF_COOKIE: &str = "am_csrf";
const SESSION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(pages::marketplace))
        .route("/agents/{did}", get(market_pages::agent))
        .route("/agents/{did}/hire", get(hire_pages::hire_form).post(hire_pages::hire))
        .route("/register", get(auth_pages::register_form).post(auth_pages::register))
        .route("/login", get(auth_pages::login_form).post(auth_pages::login))
        .route("/logout", post(auth_pages::logout))
        .route("/dashboard", get(pages::overview))
        .route("/dashboard/api-keys", get(key_pages::api_keys).post(key_pages::create_key))
        .route("/dashboard/api-keys/{id}/revoke", post(key_pages::revoke_key))
        .route("/dashboard/api-keys/{id}/roll", post(key_pages::roll_key))
        .route("/dashboard/agents", get(pages::agents).post(pages::register_agent))
        .route("/dashboard/agents/{id}/toggle", post(pages::toggle_agent))
        .route("/dashboard/agents/claim", post(pages::claim_agent))
        .route("/dashboard/agents/{id}", get(agent_page::page))
        .route("/dashboard/agents/{id}/edit", post(agent_page::edit))
        .route("/dashboard/agents/{id}/keys", post(agent_page::create_key))
        .route("/dashboard/agents/{id}/keys/{key_id}/revoke", post(agent_page::revoke_key))
        .route("/dashboard/tasks", get(money_pages::tasks))
        .route("/dashboard/tasks/new", get(hire_pages::new_task_form).post(hire_pages::new_task))
        .route("/dashboard/tasks/{id}", get(task_page::task))
        .route("/dashboard/tasks/{id}/live", get(task_page::live))
        .route("/dashboard/tasks/{id}/{action}", post(task_page::task_action))
        .route("/dashboard/artifacts/{id}/download", get(artifact_view::download))
        .route("/dashboard/wallet", get(money_pages::wallet))
        .route("/dashboard/wallet/deposit", post(money_pages::deposit))
        .route("/dashboard/wallet/{action}", post(money_pages::wallet_action))
        .route("/dashboard/webhooks", get(webhook_pages::page).post(webhook_pages::create))
        .route("/dashboard/webhooks/{id}/delete", post(webhook_pages::delete))
        .route("/dashboard/admin", get(admin::page))
        .route("/dashboard/admin/{kind}/{id}/{action}", post(admin::act))
        .route("/static/app.css", get(stylesheet))
        .route("/static/app.js", get(script))
        .route("/static/live.js", get(live_script))
        .layer(axum::middleware::from_fn_with_state(state, security_headers))
}

/// Our pages load nothing from elsewhere and run no inline code, so the policy can be strict;
/// no page may be framed (clickjacking); signed-in pages, which can show a secret once, are
/// never cached; HSTS when the browser came over https through the trusted proxy.
async fn security_headers(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let https = is_https(req.headers(), &state);
    let public = matches!(req.uri().path(), "/" | "/static/app.css" | "/static/app.js" | "/static/live.js");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "same-origin");
    set(headers, "cross-origin-opener-policy", "same-origin");
    if !public {
        set(headers, "cache-control", "no-store");
    }
    if https {
        set(headers, "strict-transport-security", "max-age=31536000; includeSubDomains");
    }
    response
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")],
        include_str!("../../static/app.js"),
    )
        .into_response()
}

async fn live_script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")],
        include_str!("../../static/live.js"),
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")],
        include_str!("../../static/app.css"),
    )
        .into_response()
}

/// Page links under a list, 20 rows a page. Pages follow keyset cursors (`?after=…`), so a deep
/// page costs what the first does and rows added meanwhile neither repeat nor vanish; `page=N`
/// alone (an old link) still works through a bounded offset.
pub struct Pager {
    /// The page's number, for display.
    pub page: i64,
    /// The cursor this page starts after; None on the first page.
    pub after: Option<String>,
    /// The next page's cursor, once the page is read.
    pub next: Option<String>,
    /// The list's URL up to and including `?` or `&`, ready for `after=`.
    pub base: String,
}

pub const PER_PAGE: i64 = 20;

impl Pager {
    /// Reads `after` and `page` (1-based) from the query.
    pub fn from_query(q: &std::collections::HashMap<String, String>, base: String) -> Pager {
        // Out of range (or not a number): the first page.
        let page =
            crate::http::pagination::page_offset(q.get("page").map(String::as_str), PER_PAGE).map_or(1, |(p, _)| p);
        let after = q.get("after").filter(|a| !a.is_empty()).cloned();
        Pager { page, after, next: None, base }
    }

    /// The page to read in `order`; a cursor that does not decode (an edited link) reads the
    /// first page.
    pub fn spec(&mut self, order: &crate::http::keyset::Ordering) -> crate::http::keyset::Page {
        let offset = if self.after.is_some() { None } else { Some(((self.page - 1) * PER_PAGE).to_string()) };
        let limit = PER_PAGE.to_string();
        order.page(Some(&limit), self.after.as_deref(), offset.as_deref()).unwrap_or_else(|_| {
            self.after = None;
            self.page = 1;
            crate::http::keyset::Page { limit: PER_PAGE, after: None, offset: 0 }
        })
    }

    pub fn has_prev(&self) -> bool {
        self.page > 1 || self.after.is_some()
    }
}

/// What the layout needs about the signed-in user.
pub struct Nav {
    pub email: String,
    pub is_admin: bool,
    pub csrf: String,
    pub section: &'static str,
}

/// A signed-in browser.
pub struct Browser {
    pub session: BrowserSession,
    pub user: User,
}

impl Browser {
    pub fn nav(&self, section: &'static str) -> Option<Nav> {
        Some(Nav {
            email: self.user.email.clone(),
            is_admin: self.user.is_admin,
            csrf: self.session.csrf_token.clone(),
            section,
        })
    }

    /// Forms of a session carry its CSRF token; anything else is refused.
    #[allow(clippy::result_large_err)] // the refusal is the page a handler returns as is
    pub fn check_csrf(&self, form: &HashMap<String, String>) -> Result<(), Response> {
        check_token(&self.session.csrf_token, form.get("csrf").map(String::as_str))
    }
}

#[allow(clippy::result_large_err)] // the refusal is the page a handler returns as is
pub fn check_token(expected: &str, got: Option<&str>) -> Result<(), Response> {
    match got {
        Some(g) if !expected.is_empty() && bool::from(g.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
        _ => Err((
            StatusCode::FORBIDDEN,
            Html("<h1>Forbidden</h1><p>The form expired; go back, reload and try again.</p>"),
        )
            .into_response()),
    }
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Whether the browser talks https (through the trusted proxy).
fn is_https(headers: &HeaderMap, state: &AppState) -> bool {
    state.config.trust_forwarded_for && headers.get("x-forwarded-proto").is_some_and(|v| v == "https")
}

/// `Secure` only when the browser talks https.
fn secure(headers: &HeaderMap, state: &AppState) -> &'static str {
    if is_https(headers, state) { "; Secure" } else { "" }
}

pub fn set_cookie(
    response: &mut Response,
    headers: &HeaderMap,
    state: &AppState,
    name: &str,
    value: &str,
    max_age_secs: i64,
) {
    let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{}", secure(headers, state));
    if let Ok(v) = HeaderValue::from_str(&v) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The signed-in browser, or `None`.
pub async fn browser(state: &AppState, headers: &HeaderMap) -> Result<Option<Browser>, Response> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    let session = browser_sessions::find(&state.db, &token, state.now()).await.map_err(internal)?;
    let Some(session) = session else { return Ok(None) };
    let user = users::find(&state.db, &session.user_id).await.map_err(internal)?;
    Ok(user.map(|user| Browser { session, user }))
}

/// The signed-in browser posting a form that carries its CSRF token.
pub async fn posting_browser(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Browser, Response> {
    let b = require_browser(state, headers).await?;
    b.check_csrf(form)?;
    Ok(b)
}

/// The signed-in browser, or a redirect to the login page.
pub async fn require_browser(state: &AppState, headers: &HeaderMap) -> Result<Browser, Response> {
    browser(state, headers).await?.ok_or_else(|| Redirect::to("/login").into_response())
}

/// The signed-in browser, or a redirect to the login page that comes back to `path` after.
pub async fn require_browser_for(state: &AppState, headers: &HeaderMap, path: &str) -> Result<Browser, Response> {
    let back = percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC).to_string();
    browser(state, headers).await?.ok_or_else(|| Redirect::to(&format!("/login?next={back}")).into_response())
}

/// Signs the browser in and sends it on to `next` (a local path checked by `view::local_path`),
/// or to the dashboard when `next` is empty.
pub async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    user_id: &str,
    next: &str,
) -> Result<Response, Response> {
    let (token, _) =
        browser_sessions::start(&state.db, user_id, state.now(), SESSION_TTL_MS).await.map_err(internal)?;
    let to = view::local_path(Some(next)).unwrap_or_else(|| "/dashboard".into());
    let mut response = Redirect::to(&to).into_response();
    set_cookie(&mut response, headers, state, SESSION_COOKIE, &token, SESSION_TTL_MS / 1000);
    Ok(response)
}

/// A posted form, every value checked at the edge: a control character other than a newline or
/// tab (which a person cannot type) is refused before any handler reads the form.
pub struct Form<T>(pub T);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Form<pages::Fields> {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let axum::Form(fields) = axum::Form::<pages::Fields>::from_request(req, state).await.map_err(|e| {
            (StatusCode::BAD_REQUEST, Html(format!("<h1>Bad request</h1><p>{}</p>", view::escape(&e.body_text()))))
                .into_response()
        })?;
        if let Some(name) = fields
            .iter()
            .find(|(k, v)| crate::text::check_text(k).and(crate::text::check_text(v)).is_err())
            .map(|(k, _)| k)
        {
            let message = format!(
                "<h1>Unprocessable form</h1><p>The field {} holds control characters; remove them and try again.</p>",
                view::escape(name)
            );
            return Err((StatusCode::UNPROCESSABLE_ENTITY, Html(message)).into_response());
        }
        Ok(Form(fields))
    }
}

pub fn internal(err: impl std::fmt::Display) -> Response {
    tracing::error!(error = %err, "dashboard error");
    (StatusCode::INTERNAL_SERVER_ERROR, Html("<h1>Something went wrong</h1><p>Please try again.</p>")).into_response()
}

pub fn render(t: impl askama::Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => internal(e),
    }
}
