//! The public side of the marketplace: one page per agent (`/agents/<did>`), open to everyone,
//! with its Hire button. Drafts, suspended, deleted and unknown agents answer 404.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::view::{did_path, filters, usd_units};
use super::{Nav, internal, render};
use crate::agents::{self, model::AgentRow};
use crate::state::AppState;
use crate::tasks::reviews;

/// Reviews shown on an agent's page.
const REVIEWS_SHOWN: i64 = 10;

pub struct ReviewLine {
    stars: String,
    rating: i64,
    review: String,
    at: String,
}

#[derive(Template)]
#[template(path = "agent_public.html")]
struct AgentPublicPage {
    nav: Option<Nav>,
    now: i64,
    name: String,
    did: String,
    path: String,
    description: String,
    capabilities: Vec<String>,
    pricing_model: String,
    price: String,
    reputation: String,
    success_rate: String,
    completed: i64,
    average_rating: Option<String>,
    total_reviews: i64,
    reviews: Vec<ReviewLine>,
    availability: &'static str,
    hireable: bool,
}

pub fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Html("<h1>Not found</h1><p>No such agent in the marketplace.</p>")).into_response()
}

/// The marketplace's public view of an agent: the profile a stranger may read (`agents::visible`
/// with no caller), so a draft is 404 to everyone here, its owner included.
pub async fn public_agent(state: &AppState, did: &str) -> Result<AgentRow, Response> {
    match agents::visible(&state.db, None, did).await {
        Ok((agent, _)) => Ok(agent),
        Err(e) if e.code() == "NOT_FOUND" => Err(not_found()),
        Err(e) => Err(internal(super::pages::message_of(&e))),
    }
}

pub async fn agent(State(state): State<AppState>, headers: HeaderMap, Path(did): Path<String>) -> Response {
    let b = match super::browser(&state, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let a = match public_agent(&state, &did).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let recent = match reviews::recent(&state.db, &a.id, REVIEWS_SHOWN).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let now = state.now();
    let view = a.to_agent(now, false);
    let page = AgentPublicPage {
        nav: b.as_ref().and_then(|b| b.nav("marketplace")),
        now,
        path: did_path(&a.did),
        name: a.name.clone(),
        did: a.did.clone(),
        description: a.description.clone().unwrap_or_default(),
        capabilities: a.capabilities(),
        pricing_model: a.pricing_model.clone(),
        price: usd_units(a.base_price),
        reputation: format!("{:.2}", a.reputation()),
        success_rate: format!("{:.0} %", a.success_rate() * 100.0),
        completed: a.tasks_completed,
        average_rating: view.reviews.average_rating.map(|r| format!("{r:.2}")),
        total_reviews: view.reviews.total_reviews,
        reviews: recent
            .into_iter()
            .map(|r| ReviewLine {
                stars: "★".repeat(r.rating.clamp(0, 5) as usize),
                rating: r.rating,
                review: r.review.unwrap_or_default(),
                at: crate::clock::rfc3339(r.at),
            })
            .collect(),
        availability: a.availability(now),
        hireable: a.status == "active",
    };
    render(page)
}
