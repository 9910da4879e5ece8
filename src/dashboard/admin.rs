//! The administrators' page: the ledger audit, open disputes with both sides' evidence and the
//! three rulings, pending manual deposits and withdrawals, users.

use std::collections::HashMap;

use super::Form;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::pages::message_of;
use super::view::filters;
use super::{Browser, Nav, internal, render, require_browser};
use crate::accounts::users::{self, User};
use crate::error::ApiError;
use crate::ledger::audit;
use crate::ledger::deposits::{self, Deposit};
use crate::ledger::withdrawals::{self, Withdrawal};
use crate::state::AppState;
use crate::tasks::disputes::{self, Dispute, ResolveRequest};
use crate::tasks::model::Actor;

type Fields = HashMap<String, String>;

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    nav: Option<Nav>,
    now: i64,
    fees_chart: super::charts::Chart,
    volume_chart: super::charts::Chart,
    pager: super::Pager,
    csrf: String,
    /// The last stored audit (the page never runs one by itself: it reads every posting).
    audit: Option<audit::LastAudit>,
    disputes: Vec<Dispute>,
    deposits: Vec<Deposit>,
    withdrawals: Vec<Withdrawal>,
    users: Vec<User>,
    error: Option<String>,
}

async fn admin_browser(state: &AppState, headers: &HeaderMap) -> Result<Browser, Response> {
    let b = require_browser(state, headers).await?;
    if b.user.is_admin { Ok(b) } else { Err((StatusCode::NOT_FOUND, Html("<h1>Not found</h1>")).into_response()) }
}

async fn render_page(state: &AppState, b: &Browser, error: Option<&ApiError>) -> Response {
    render_page_at(state, b, super::Pager::from_query(&Fields::new(), "/dashboard/admin?".into()), error).await
}

/// The page, with the users list at `pager`'s page.
async fn render_page_at(state: &AppState, b: &Browser, mut pager: super::Pager, error: Option<&ApiError>) -> Response {
    let db = &state.db;
    let users_page = pager.spec(&users::order());
    let loaded = async {
        let report = audit::last(db).await?;
        let first = crate::http::keyset::Page { limit: 100, after: None, offset: 0 };
        let (open, _) = disputes::list(db, &mut Actor::Admin, Some("open"), &first)
            .await
            .map_err(|e| anyhow::anyhow!(message_of(&e)))?;
        anyhow::Ok((
            report,
            open,
            deposits::list_pending(db, 100).await?,
            withdrawals::list_pending(db, 100).await?,
            users::list(db, &users_page).await?,
            super::charts::platform(state).await?,
        ))
    }
    .await;
    let (report, open, pending_deposits, pending_withdrawals, all_users, (fees_chart, volume_chart)) = match loaded {
        Ok(x) => x,
        Err(e) => return internal(e),
    };
    let (all_users, next) = all_users;
    pager.next = next;
    let page = AdminPage {
        now: state.now(),
        fees_chart,
        volume_chart,
        pager,
        nav: b.nav("admin"),
        csrf: b.session.csrf_token.clone(),
        audit: report.map(|mut r| {
            r.invariants.iter_mut().for_each(|i| i.0 = i.0.replace('_', " "));
            r
        }),
        disputes: open,
        deposits: pending_deposits,
        withdrawals: pending_withdrawals,
        users: all_users,
        error: error.map(message_of),
    };
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    (status, render(page)).into_response()
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Fields>) -> Response {
    match admin_browser(&state, &headers).await {
        Ok(b) => render_page_at(&state, &b, super::Pager::from_query(&q, "/dashboard/admin?".into()), None).await,
        Err(r) => r,
    }
}

/// `disputes/:id/resolve`, `deposits/:id/confirm`, `withdrawals/:id/complete|fail`.
pub async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((kind, id, action)): Path<(String, String, String)>,
    Form(form): Form<Fields>,
) -> Response {
    let b = match admin_browser(&state, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = b.check_csrf(&form) {
        return r;
    }
    let now = state.now();
    let db = &state.db;
    let text = |k: &str| form.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let outcome: Result<(), ApiError> = match (kind.as_str(), action.as_str()) {
        ("disputes", "resolve") => {
            let share = match text("client_share_bps").map(|s| s.parse::<i64>()) {
                Some(Ok(v)) => Some(v),
                Some(Err(_)) => {
                    return render_page(
                        &state,
                        &b,
                        Some(&ApiError::field("client_share_bps", "must be a whole number")),
                    )
                    .await;
                }
                None => None,
            };
            let (outcome, note) = match (super::pages::line(&form, "outcome"), super::pages::text(&form, "note")) {
                (Ok(outcome), Ok(note)) => (outcome, note.filter(|n| !n.is_empty())),
                (Err(e), _) | (_, Err(e)) => return render_page(&state, &b, Some(&e)).await,
            };
            let share = if outcome.as_deref() == Some("split") { share } else { None };
            disputes::resolve(db, &state.engine, &id, ResolveRequest { outcome, client_share_bps: share, note })
                .await
                .map(drop)
        }
        ("ledger", "audit") if id == "run" => match audit::run_and_record(db, now).await {
            Ok(_) => Ok(()),
            Err(e) => return internal(e),
        },
        ("deposits", "confirm") => deposits::confirm(db, &id, now).await.map(drop),
        ("withdrawals", "complete") => {
            match text("tx_hash").map(|t| withdrawals::PayoutReference::parse("tx_hash", &t)) {
                Some(Err(e)) => Err(e),
                payout => withdrawals::finish(db, &id, true, None, payout.and_then(Result::ok), now).await.map(drop),
            }
        }
        ("withdrawals", "fail") => withdrawals::finish(db, &id, false, text("reason"), None, now).await.map(drop),
        _ => return (StatusCode::NOT_FOUND, Html("<h1>Not found</h1>")).into_response(),
    };
    match outcome {
        Ok(()) => Redirect::to("/dashboard/admin").into_response(),
        Err(e) => render_page(&state, &b, Some(&e)).await,
    }
}
