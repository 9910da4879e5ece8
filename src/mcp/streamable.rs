//! Streamable HTTP for one surface, through the official SDK's service, in two modes side by
//! side on one path:
//!
//! - **sessions** (`DbSessions`): an `initialize` opens a session (`Mcp-Session-Id`); the
//!   session's requests, its `GET` stream (notifications, availability pings) and `DELETE` go
//!   here, on whichever server they land (the session is in the database);
//! - **stateless**: any other request without a session id is answered on its own, as before,
//!   for clients that ignore the session (one-shot scripts, 2025-03-26 batches).
//!
//! A request naming a session is served only when the session exists for this surface and was
//! opened by the same credential; otherwise 404, as for an unknown session.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::Factory;
use super::resources::SESSION_HEADER;
use super::sessions::{self, DbSessionStore, DbSessions, Surface};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// A session's `seen_at` is refreshed by its requests at most this often.
const TOUCH_EVERY_MS: i64 = 10 * 60 * 1000;

pub struct Streamable<S> {
    stateless: StreamableHttpService<S, NeverSessionManager>,
    sessions: StreamableHttpService<S, DbSessions>,
    manager: Arc<DbSessions>,
    state: AppState,
    surface: Surface,
}

impl<S> Clone for Streamable<S> {
    fn clone(&self) -> Self {
        Streamable {
            stateless: self.stateless.clone(),
            sessions: self.sessions.clone(),
            manager: self.manager.clone(),
            state: self.state.clone(),
            surface: self.surface,
        }
    }
}

fn base_config(state: &AppState) -> StreamableHttpServerConfig {
    StreamableHttpServerConfig::default()
        .with_max_request_body_bytes(state.config.max_body_bytes)
        .with_allowed_hosts(super::allowed_hosts(&state.config.public_url))
}

fn session_not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response()
}

impl<S: ServerHandler + Send + 'static> Streamable<S> {
    pub fn new(state: &AppState, surface: Surface, handler: Factory<S>) -> Streamable<S> {
        let stateless_config =
            base_config(state).with_legacy_session_mode(false).with_json_response(true).with_sse_keep_alive(None);
        let first = handler.clone();
        let stateless =
            StreamableHttpService::new(move || first(), Arc::new(NeverSessionManager::default()), stateless_config);
        let mut session_config = base_config(state);
        session_config.session_store = Some(Arc::new(DbSessionStore { db: state.db.clone() }));
        let manager = Arc::new(DbSessions::new(state.clone(), surface));
        let sessions = StreamableHttpService::new(move || handler(), manager.clone(), session_config);
        Streamable { stateless, sessions, manager, state: state.clone(), surface }
    }

    /// Serves one HTTP request of the surface.
    pub async fn serve(&self, req: Request) -> Response {
        if let Some(id) = req.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string) {
            let caller = req.extensions().get::<Caller>().cloned();
            if let Some(refusal) = self.gate(caller, &id).await {
                return refusal;
            }
            return self.sessions.handle(req).await.map(Body::new);
        }
        if req.method() != Method::POST {
            return self.sessions.handle(req).await.map(Body::new);
        }
        let (parts, body) = req.into_parts();
        // The body was read whole already (`http::read_whole_body`); this only takes it back.
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let opens_session = serde_json::from_slice::<serde_json::Value>(&bytes)
            .is_ok_and(|message| message.get("method").and_then(|m| m.as_str()) == Some("initialize"));
        let req = Request::from_parts(parts, Body::from(bytes));
        let service = if opens_session { self.sessions.handle(req).await } else { self.stateless.handle(req).await };
        service.map(Body::new)
    }

    /// `None` when the request may use session `id`, else the answer.
    async fn gate(&self, caller: Option<Caller>, id: &str) -> Option<Response> {
        let caller = caller?;
        let session = match sessions::find(&self.state.db, id).await {
            Ok(session) => session,
            Err(e) => return Some(ApiError::from(e).into_response()),
        };
        match session {
            Some(s) if s.serves(self.surface, &caller) && s.transport == "streamable" => {
                let now = self.state.now();
                if s.seen_at < now - TOUCH_EVERY_MS {
                    let _ = sessions::touch(&self.state.db, std::slice::from_ref(&s.id), now).await;
                }
                None
            }
            Some(_) => Some(session_not_found()),
            None => {
                // Ended on another server: this server's worker for it goes too.
                self.manager.forget(id).await;
                Some(session_not_found())
            }
        }
    }
}
