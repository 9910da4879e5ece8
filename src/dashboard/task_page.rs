//! A task's or hiring's live page: status, the provider's questions with an answer box, the
//! result and its artifacts (rendered so they can do nothing), the client's actions, messages
//! and the timeline. While the work is open the page refreshes its live part from
//! `/dashboard/tasks/:id/live` (`static/live.js`); without JavaScript, reloading shows the same.
//! Every action goes through the task engine or the REST handlers' own functions.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::json;

use super::Form;
use super::artifact_view::{self, ArtifactView};
use super::pages::{as_caller, message_of};
use super::view::{filters, usd, usd_units};
use super::{Browser, Nav, internal, render, require_browser};
use crate::error::ApiError;
use crate::state::AppState;
use crate::tasks::engine::{Command, can};
use crate::tasks::model::{Actor, TaskRow};
use crate::tasks::{self, hiring_routes, hirings, store};

type Fields = HashMap<String, String>;

pub(super) fn short(id: &str) -> String {
    id.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect()
}

pub struct TaskView {
    id: String,
    short_id: String,
    kind: &'static str,
    status: String,
    payment_status: String,
    price: String,
    fee: String,
    capability: String,
    provider: String,
    description: String,
    /// The result as safe HTML (a text result is markdown), or empty.
    output_html: String,
    payable: bool,
    cancellable: bool,
    acceptable: bool,
    disputable: bool,
}

pub struct MessageLine {
    from: String,
    content: String,
    at: String,
    kind: String,
}

pub struct QuestionLine {
    id: String,
    content: String,
    at: String,
}

/// One piece of the agent's streamed output (shown as text, escaped).
pub struct ChunkLine {
    seq: i64,
    kind: String,
    content: String,
}

/// Everything the live part of the page shows.
pub struct LiveView {
    csrf: String,
    now: i64,
    /// The work may still change by itself (the page keeps refreshing).
    open: bool,
    t: TaskView,
    is_client: bool,
    questions: Vec<QuestionLine>,
    /// The agent's streamed partial output, oldest first (the latest `tasks::stream::IN_VIEW`).
    chunks: Vec<ChunkLine>,
    artifacts: Vec<ArtifactView>,
    events: Vec<(String, String)>,
    messages: Vec<MessageLine>,
    dispute: Option<tasks::disputes::Dispute>,
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    nav: Option<Nav>,
    error: Option<String>,
    v: LiveView,
}

#[derive(Template)]
#[template(path = "task_live.html")]
struct TaskLive {
    v: LiveView,
}

fn not_found(message: &str) -> Response {
    (StatusCode::NOT_FOUND, Html(format!("<h1>Not found</h1><p>{}</p>", super::view::escape(message)))).into_response()
}

/// The task's output as safe HTML: a text is markdown; anything else is shown as JSON code.
fn output_html(output: Option<&str>) -> String {
    let Some(output) = output else { return String::new() };
    let value: serde_json::Value = serde_json::from_str(output).unwrap_or(serde_json::Value::String(output.into()));
    let text = match &value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => ["content", "result", "output", "text", "summary"]
            .iter()
            .find_map(|k| o.get(*k).and_then(|v| v.as_str()).map(String::from))
            .filter(|_| o.len() == 1),
        _ => None,
    };
    match text {
        Some(t) => super::markdown::to_safe_html(&t),
        None => format!(
            "<pre><code>{}</code></pre>",
            super::view::escape(&serde_json::to_string_pretty(&value).unwrap_or_default())
        ),
    }
}

async fn live_view(state: &AppState, b: &Browser, id: &str) -> Result<LiveView, Response> {
    let caller = as_caller(b);
    let mut actor = Actor::of(&caller);
    let task: TaskRow = tasks::visible(&state.db, &mut actor, id).await.map_err(|e| not_found(&message_of(&e)))?;
    let now = state.now();
    let events = store::timeline(&state.db, &task.id)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|e| (e.timestamp, e.event_type.replace('_', " ")))
        .collect();
    let (messages, questions, chunks) = if task.kind == "hiring" {
        let h = hirings::view(&state.db, &task).await.map_err(|e| internal(message_of(&e)))?;
        let chunks = h.stream.into_iter().map(|c| ChunkLine { seq: c.seq, kind: c.kind, content: c.content }).collect();
        let questions = h
            .open_questions
            .into_iter()
            .map(|q| QuestionLine { id: q.question_id, content: q.content, at: q.asked_at })
            .collect();
        let messages = h
            .messages
            .into_iter()
            .map(|m| MessageLine {
                from: m
                    .sender_name
                    .unwrap_or_else(|| if m.sender_type == "agent" { "the agent" } else { "you" }.into()),
                content: m.content,
                at: m.created_at,
                kind: m.kind,
            })
            .collect();
        (messages, questions, chunks)
    } else {
        let messages = store::messages(&state.db, &task.id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|m| MessageLine {
                from: m.sender_name.unwrap_or_else(|| "someone".into()),
                content: m.content,
                at: m.created_at,
                kind: m.message_type,
            })
            .collect();
        (messages, Vec::new(), Vec::new())
    };
    let artifacts = artifact_view::of_task(state, &caller, &task.id).await?;
    let dispute = tasks::disputes::get(&state.db, &mut actor, &task.id).await.ok();
    // The buttons ask the engine's own rules whether the command would be accepted now.
    let roles = actor.roles(&task);
    let may = |command: Command| can(&task, roles, &command, now);
    let open_dispute =
        Command::OpenDispute { dispute_id: String::new(), reason: String::new(), existing: dispute.is_some() };
    let t = TaskView {
        id: task.id.clone(),
        short_id: short(&task.id),
        kind: if task.kind == "hiring" { "Hiring" } else { "Task" },
        status: task.status.to_string(),
        payment_status: task.payment_status.to_string(),
        price: usd(task.price()),
        fee: usd_units(task.fee),
        capability: task.capability.clone(),
        provider: task.provider_agent_did.clone(),
        description: task.task_description.clone().unwrap_or_default(),
        output_html: output_html(task.output.as_deref()),
        payable: may(Command::pay()),
        cancellable: may(Command::Cancel),
        acceptable: may(Command::Accept { rating: None, review: None }),
        disputable: may(open_dispute),
    };
    Ok(LiveView {
        csrf: b.session.csrf_token.clone(),
        now,
        open: task.status.is_active(),
        is_client: actor.is_client(&task),
        t,
        questions,
        chunks,
        artifacts,
        events,
        messages,
        dispute,
    })
}

async fn task_page(state: &AppState, b: &Browser, id: &str, error: Option<&ApiError>) -> Response {
    let v = match live_view(state, b, id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let page = TaskPage { nav: b.nav("tasks"), error: error.map(message_of), v };
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    (status, render(page)).into_response()
}

pub async fn task(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match require_browser(&state, &headers).await {
        Ok(b) => task_page(&state, &b, &id, None).await,
        Err(r) => r,
    }
}

/// The live part of the page alone, for the page's refresh.
pub async fn live(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let b = match require_browser(&state, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match live_view(&state, &b, &id).await {
        Ok(v) => render(TaskLive { v }),
        Err(r) => r,
    }
}

/// `pay`, `cancel`, `accept` (rating, review), `dispute` (reason), `evidence`, `message`, or
/// `answer` (a hiring's open question) — as the task's client.
pub async fn task_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<Fields>,
) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut actor = Actor::of(&as_caller(&b));
    let now = state.now();
    let (db, engine) = (&state.db, &state.engine);
    let field = |k: &str| form.get(k).map(|v| v.to_string());
    let outcome: Result<(), ApiError> = match action.as_str() {
        "pay" => tasks::pay(engine, &actor, &id, None).await.map(drop),
        "cancel" => engine.act(&actor, &id, Command::Cancel).await.map(drop),
        "accept" => {
            // An empty rating or review is "none"; anything else is checked as the API checks it.
            let rating = match form.get("rating").map(|r| r.trim()).filter(|r| !r.is_empty()) {
                None => Ok(None),
                Some(r) => r.parse::<i64>().map(Some).map_err(|_| ApiError::field("rating", "must be from 1 to 5")),
            };
            let review = form.get("review").map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
            match rating.and_then(|rating| Command::accept(rating, review)) {
                Ok(command) => engine.act(&actor, &id, command).await.map(drop),
                Err(e) => Err(e),
            }
        }
        "answer" => {
            let body = json!({"content": field("content"), "kind": "answer", "reply_to_id": field("question_id")});
            match super::hire_pages::json_body(body) {
                Ok(body) => hiring_routes::post_message_with(&state, &as_caller(&b), &id, body).await.map(drop),
                Err(e) => Err(e),
            }
        }
        "message" => tasks::post_message(db, &mut actor, &id, field("content"), None, now).await.map(drop),
        "evidence" => tasks::disputes::add_evidence(db, &mut actor, &id, field("content"), now).await.map(drop),
        "dispute" => tasks::disputes::open(db, engine, &actor, &id, field("reason")).await.map(drop),
        _ => return not_found("no such action"),
    };
    match outcome {
        Ok(()) => Redirect::to(&format!("/dashboard/tasks/{id}")).into_response(),
        Err(e) if e.code() == "NOT_FOUND" => not_found(&message_of(&e)),
        Err(e) => task_page(&state, &b, &id, Some(&e)).await,
    }
}
