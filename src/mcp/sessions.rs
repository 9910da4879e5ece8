//! MCP sessions kept in the database, so a session's consecutive requests may land on any
//! server of a deployment:
//!
//! - each session is a row (`mcp_sessions`): its surface, the credential that opened it (only
//!   that credential may use it), the acting principal and agent, and the client's `initialize`
//!   parameters, from which the official SDK re-creates the session on a server that has not
//!   seen it yet (`DbSessionStore`, the SDK's `SessionStore`);
//! - `DbSessions` is the SDK's in-memory session manager with the database beside it: it records
//!   the session at `initialize`, opens every server-to-client stream through the `Hub` (so
//!   notifications and availability pings from any server reach it), and takes the client's
//!   answers to those pings wherever they arrive.

use std::sync::Arc;
use std::time::Duration;

use axum::http::request::Parts;
use futures_util::Stream;
use rmcp::model::{ClientJsonRpcMessage, GetExtensions, ServerJsonRpcMessage};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker,
};
use rmcp::transport::streamable_http_server::session::{
    RestoreOutcome, ServerSseMessage, SessionId, SessionManager, SessionRestoreMarker, SessionState, SessionStore,
    SessionStoreError,
};

use super::hub::Hub;
use crate::auth::Caller;
use crate::db::{Arg, Db, IN_CHUNK, SqlBuilder};
use crate::ledger::routes::principal_of;
use crate::state::AppState;

/// Which surface a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Hirer,
    Agent,
}

impl Surface {
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Hirer => "hirer",
            Surface::Agent => "agent",
        }
    }
}

/// How the session's client talks to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Streamable HTTP (2025-03-26 and later): any server answers any request.
    Streamable,
    /// HTTP+SSE (2024-11-05): the server holding the stream takes the session's messages.
    Sse,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Streamable => "streamable",
            Transport::Sse => "sse",
        }
    }
}

/// How long a session lives after it was last seen.
pub const IDLE_LIFETIME_MS: i64 = 24 * 3600 * 1000;
/// An SDK session worker with no request for this long stops (a later request restores it).
const WORKER_IDLE: Duration = Duration::from_secs(3600);

/// Who may use a session: the credential that opened it, acting as the same principal.
pub fn owner_of(caller: &Caller) -> String {
    let acting = principal_of(caller).map(|p| p.key()).unwrap_or_default();
    format!("{}|{acting}", caller.key_id())
}

/// A session as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: String,
    pub surface: String,
    pub transport: String,
    pub owner: String,
    pub principal: String,
    pub agent_id: Option<String>,
    pub seen_at: i64,
}

impl SessionRow {
    /// The session exists for this surface and this caller may use it.
    pub fn serves(&self, surface: Surface, caller: &Caller) -> bool {
        self.surface == surface.as_str() && self.owner == owner_of(caller)
    }
}

/// Records a new session opened by `caller` (a repeated id changes nothing).
pub async fn create(
    db: &Db,
    id: &str,
    surface: Surface,
    transport: Transport,
    caller: &Caller,
    now: i64,
) -> sqlx::Result<()> {
    let principal = principal_of(caller).map(|p| p.key()).unwrap_or_default();
    sqlx::query(
        "INSERT INTO mcp_sessions (id, surface, transport, owner, principal, agent_id, created_at, seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(surface.as_str())
    .bind(transport.as_str())
    .bind(owner_of(caller))
    .bind(principal)
    .bind(caller.agent.as_ref().map(|a| a.id.clone()))
    .bind(now)
    .execute(db.writer())
    .await?;
    Ok(())
}

pub async fn find(db: &Db, id: &str) -> sqlx::Result<Option<SessionRow>> {
    sqlx::query_as("SELECT id, surface, transport, owner, principal, agent_id, seen_at FROM mcp_sessions WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await
}

/// Ends a session: its row and subscriptions go.
pub async fn delete(db: &Db, id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM mcp_subscriptions WHERE session_id = $1").bind(id).execute(db.writer()).await?;
    sqlx::query("DELETE FROM mcp_sessions WHERE id = $1").bind(id).execute(db.writer()).await?;
    Ok(())
}

/// Keeps the sessions alive (their streams are open, or they were used).
pub async fn touch(db: &Db, ids: &[String], now: i64) -> sqlx::Result<()> {
    for chunk in ids.chunks(IN_CHUNK) {
        let mut q = SqlBuilder::new("");
        q.push("UPDATE mcp_sessions SET seen_at = ? WHERE ", [Arg::Int(now)]);
        q.push_in(db.engine(), "id", chunk);
        q.query().execute(db.writer()).await?;
    }
    Ok(())
}

/// Drops the sessions not seen for `IDLE_LIFETIME_MS`.
pub async fn purge(db: &Db, now: i64) -> sqlx::Result<()> {
    let before = now - IDLE_LIFETIME_MS;
    sqlx::query("DELETE FROM mcp_subscriptions WHERE session_id IN (SELECT id FROM mcp_sessions WHERE seen_at < $1)")
        .bind(before)
        .execute(db.writer())
        .await?;
    sqlx::query("DELETE FROM mcp_sessions WHERE seen_at < $1").bind(before).execute(db.writer()).await?;
    Ok(())
}

/// The SDK's session store on `mcp_sessions.init_params`.
pub struct DbSessionStore {
    pub db: Db,
}

#[async_trait::async_trait]
impl SessionStore for DbSessionStore {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let row: Option<(Option<String>,)> = sqlx::query_as("SELECT init_params FROM mcp_sessions WHERE id = $1")
            .bind(session_id)
            .fetch_optional(self.db.pool())
            .await?;
        match row.and_then(|(p,)| p) {
            Some(json) => Ok(Some(serde_json::from_str(&json)?)),
            None => Ok(None),
        }
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        sqlx::query("UPDATE mcp_sessions SET init_params = $2 WHERE id = $1")
            .bind(session_id)
            .bind(serde_json::to_string(state)?)
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        delete(&self.db, session_id).await?;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Open(#[from] super::hub::OpenError),
    #[error("the session was opened without a credential")]
    NoCaller,
}

/// The SDK's in-memory session manager, with the sessions recorded in the database and their
/// streams opened through the `Hub`.
pub struct DbSessions {
    local: LocalSessionManager,
    state: AppState,
    surface: Surface,
}

impl DbSessions {
    pub fn new(state: AppState, surface: Surface) -> DbSessions {
        let mut local = LocalSessionManager::default();
        local.session_config.keep_alive = Some(WORKER_IDLE);
        DbSessions { local, state, surface }
    }

    fn hub(&self) -> &Arc<Hub> {
        &self.state.mcp
    }

    /// Closes this server's worker of a session that no longer exists (deleted on another server).
    pub async fn forget(&self, id: &str) {
        let _ = self.local.close_session(&SessionId::from(id)).await;
    }
}

/// The caller of the HTTP request a message came in.
fn caller_in(message: &ClientJsonRpcMessage) -> Option<Caller> {
    let extensions = match message {
        ClientJsonRpcMessage::Request(r) => r.request.extensions(),
        ClientJsonRpcMessage::Notification(n) => n.notification.extensions(),
        _ => return None,
    };
    extensions.get::<Parts>().and_then(|p| p.extensions.get::<Caller>()).cloned()
}

fn is_restore(message: &ClientJsonRpcMessage) -> bool {
    matches!(message, ClientJsonRpcMessage::Request(r) if r.request.extensions().get::<SessionRestoreMarker>().is_some())
}

impl SessionManager for DbSessions {
    type Error = SessionsError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        Ok(self.local.create_session().await?)
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        if !is_restore(&message) {
            let caller = caller_in(&message).ok_or(SessionsError::NoCaller)?;
            create(&self.state.db, id, self.surface, Transport::Streamable, &caller, self.state.now()).await?;
        }
        Ok(self.local.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.local.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        Ok(self.local.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.create_stream(id, message).await?)
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        // An answer to an availability ping, which the SDK's session did not send: recorded for
        // the server that waits for it.
        if super::presence::take_answer(&self.state.db, id, &message, self.state.now()).await? {
            return Ok(());
        }
        Ok(self.local.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = self.local.create_standalone_stream(id).await?;
        Ok(self.hub().open_sse(&self.state.db, id, Box::pin(stream), self.state.now()).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        // An event id without a request part belongs to the session's own stream (the GET one):
        // resuming it reopens that stream here.
        let own_stream = !last_event_id.contains('/');
        let stream = Box::pin(self.local.resume(id, last_event_id).await?);
        if own_stream {
            Ok(futures_util::future::Either::Left(
                self.hub().open_sse(&self.state.db, id, stream, self.state.now()).await?,
            ))
        } else {
            Ok(futures_util::future::Either::Right(stream))
        }
    }

    async fn restore_session(&self, id: SessionId) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        Ok(self.local.restore_session(id).await?)
    }
}
