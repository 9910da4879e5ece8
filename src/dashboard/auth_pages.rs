//! Sign-up, log-in and log-out pages. Forms shown before a session exists use a double-submit
//! CSRF cookie; logins are throttled per IP and per account and fail with one generic message.

use std::collections::HashMap;

use super::Form;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::pages::{Fields, errors_of, field, line};
use super::{Nav, internal, render};
use super::{PRE_CSRF_COOKIE, SESSION_COOKIE, check_token, cookie, set_cookie};
use crate::accounts::users::{self, SignUpRequest};
use crate::http::extract::ClientIp;
use crate::http::rate_limit;
use crate::state::AppState;
use crate::text::Text;

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage {
    nav: Option<Nav>,
    csrf: String,
    next: String,
    name: String,
    email: String,
    error: Option<String>,
    name_error: Option<String>,
    email_error: Option<String>,
    password_error: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Option<Nav>,
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
}

fn fresh_token() -> String {
    crate::auth::keys::generate(crate::auth::keys::KeyKind::Session).plaintext.into_inner()[4..].to_string()
}

/// A page with a pre-session form: sets the double-submit CSRF cookie it carries.
fn with_pre_csrf(state: &AppState, headers: &HeaderMap, csrf: &str, page: Response) -> Response {
    let mut page = page;
    set_cookie(&mut page, headers, state, PRE_CSRF_COOKIE, csrf, 3600);
    page
}

/// Where to go once signed in: a local path from the form or the query, else the dashboard.
fn next_of(form: &Fields) -> String {
    super::view::local_path(form.get("next").map(String::as_str)).unwrap_or_default()
}

pub async fn register_form(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Fields>) -> Response {
    let csrf = fresh_token();
    let page = RegisterPage {
        nav: None,
        csrf: csrf.clone(),
        next: next_of(&q),
        name: String::new(),
        email: String::new(),
        error: None,
        name_error: None,
        email_error: None,
        password_error: None,
    };
    with_pre_csrf(&state, &headers, &csrf, render(page))
}

pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    if let Err(r) =
        check_token(&cookie(&headers, PRE_CSRF_COOKIE).unwrap_or_default(), form.get("csrf").map(String::as_str))
    {
        return r;
    }
    let (name, email) = (field(&form, "name"), field(&form, "email"));
    let next = next_of(&form);
    let csrf = fresh_token();
    let page = |error: Option<String>, errors: HashMap<String, String>| RegisterPage {
        nav: None,
        csrf: csrf.clone(),
        next: next.clone(),
        name: name.clone(),
        email: email.clone(),
        error,
        name_error: errors.get("name").cloned(),
        email_error: errors.get("email").cloned(),
        password_error: errors.get("password").cloned(),
    };
    let allowed =
        match rate_limit::hit(&state.db, &[rate_limit::signup_rule(&state, &ip.to_string())], state.now()).await {
            Ok(decision) => decision.allowed,
            Err(e) => return internal(e),
        };
    if !allowed {
        return with_pre_csrf(
            &state,
            &headers,
            &csrf,
            (
                StatusCode::TOO_MANY_REQUESTS,
                render(page(Some("Too many sign-ups from here; try again later.".into()), HashMap::new())),
            )
                .into_response(),
        );
    }
    let request = || -> Result<SignUpRequest, crate::error::ApiError> {
        Ok(SignUpRequest {
            email: line(&form, "email")?,
            password: form.get("password").map(|p| Text::field("password", p.as_str())).transpose()?,
            name: line(&form, "name")?,
        })
    };
    let outcome = match request().and_then(SignUpRequest::validate) {
        Ok(signup) => users::register(&state.db, signup, false, state.now()).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok((user, _, _)) => super::start_session(&state, &headers, &user.id, &next).await.unwrap_or_else(|r| r),
        Err(e) => {
            let mut errors = errors_of(&e);
            if e.code() == "CONFLICT" {
                errors.insert("email".into(), "is already registered".into());
            }
            let page = render(page(None, errors));
            with_pre_csrf(&state, &headers, &csrf, (StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

pub async fn login_form(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Fields>) -> Response {
    let csrf = fresh_token();
    let page = LoginPage { nav: None, csrf: csrf.clone(), next: next_of(&q), email: String::new(), error: None };
    with_pre_csrf(&state, &headers, &csrf, render(page))
}

pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    if let Err(r) =
        check_token(&cookie(&headers, PRE_CSRF_COOKIE).unwrap_or_default(), form.get("csrf").map(String::as_str))
    {
        return r;
    }
    let email = field(&form, "email").to_lowercase();
    let next = next_of(&form);
    let now = state.now();
    // Failures count per client IP and per account at that IP — never per account alone, so
    // nobody can lock a person out of their account from elsewhere.
    let subjects = [format!("login:ip:{ip}"), format!("login:account-ip:{email}|{ip}")];
    let csrf = fresh_token();
    let refuse = |status: StatusCode, error: &str| {
        let page = render(LoginPage {
            nav: None,
            csrf: csrf.clone(),
            next: next.clone(),
            email: email.clone(),
            error: Some(error.into()),
        });
        with_pre_csrf(&state, &headers, &csrf, (status, page).into_response())
    };
    match rate_limit::locked_out(&state.db, &subjects, now).await {
        Ok(Some(_)) => return refuse(StatusCode::TOO_MANY_REQUESTS, "Too many attempts. Try again in a few minutes."),
        Ok(None) => {}
        Err(e) => return internal(e),
    }
    let password = form.get("password").cloned().unwrap_or_default();
    match users::verify_password(&state.db, &email, &password).await {
        Ok(Some(user)) => super::start_session(&state, &headers, &user.id, &next).await.unwrap_or_else(|r| r),
        Ok(None) => {
            for subject in &subjects {
                if let Err(e) = rate_limit::record_failure(&state.db, subject, state.lockout_policy(), now).await {
                    return internal(e);
                }
            }
            // The same answer for an unknown email and a wrong password.
            refuse(StatusCode::UNAUTHORIZED, "Wrong email or password.")
        }
        Err(e) => internal(e),
    }
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<Fields>) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(e) = crate::accounts::browser_sessions::end(&state.db, &b.session.id, state.now()).await {
        return internal(e);
    }
    let mut response = Redirect::to("/").into_response();
    set_cookie(&mut response, &headers, &state, SESSION_COOKIE, "", 0);
    response
}
