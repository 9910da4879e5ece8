//! This server's end of every open server-to-client MCP stream (the Streamable HTTP `GET`
//! stream, the 2024-11-05 SSE stream), and the listener that feeds them from the database:
//!
//! - a stream is registered here and in `mcp_streams` (with this server's id), so any server
//!   knows a session has a live stream and where;
//! - every `TICK` the listener writes this server's announced hiring changes that someone
//!   subscribes to (`tasks::changes`), reads the changes every server wrote lately, and sends
//!   `notifications/resources/updated` to the local streams whose sessions subscribe to them;
//!   it also sends the availability pings addressed to its streams (`presence`).
//!
//! One code path for both engines: on SQLite the table is read by the one process that writes
//! it, on PostgreSQL by every server. A change reaches a subscriber within about two ticks.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use rmcp::model::{
    ResourceUpdatedNotification, ResourceUpdatedNotificationParam, ServerJsonRpcMessage, ServerNotification,
};
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use tokio::sync::mpsc;

use super::sessions;
use crate::db::{Db, IN_CHUNK, SqlBuilder};
use crate::state::AppState;
use crate::tasks::changes::{self, Change};

/// How often the listener looks.
const TICK: Duration = Duration::from_millis(200);
/// How far back each look reads, so a change committed a little after it was stamped (or on a
/// server whose clock is a little behind) is still read; changes are told apart by id.
const LOOKBACK_MS: i64 = 3_000;
/// Streams say they are alive this often (in ticks), and count as gone after `STREAM_TTL_MS`.
const HEARTBEAT_TICKS: u64 = 25;
pub const STREAM_TTL_MS: i64 = 30_000;
/// Old changes, dead streams and idle sessions are purged this often (in ticks).
const PURGE_TICKS: u64 = 300;
const CHANGES_KEPT_MS: i64 = 60_000;
/// Messages waiting for a slow client, per stream.
const STREAM_BUFFER: usize = 64;

type Sender = mpsc::Sender<ServerJsonRpcMessage>;

/// The open streams of this server, by session.
pub struct Hub {
    server_id: String,
    /// Set at shutdown: every stream ends and none opens.
    closed: AtomicBool,
    next_stream: AtomicU64,
    streams: Mutex<HashMap<String, Vec<(u64, Sender)>>>,
    /// Changes already delivered (by id), with when they were first read.
    seen: Mutex<HashMap<String, i64>>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub {
            server_id: uuid::Uuid::new_v4().to_string(),
            closed: AtomicBool::new(false),
            next_stream: AtomicU64::new(1),
            streams: Mutex::default(),
            seen: Mutex::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("the server is shutting down")]
    Closing,
}

/// A registered stream; dropping it (the client went away) unregisters it here and in the
/// database.
pub struct StreamGuard {
    hub: Arc<Hub>,
    db: Db,
    session: String,
    local_id: u64,
    row_id: String,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        {
            let mut streams = self.hub.streams.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(list) = streams.get_mut(&self.session) {
                list.retain(|(id, _)| *id != self.local_id);
                if list.is_empty() {
                    streams.remove(&self.session);
                }
            }
        }
        let (db, row_id) = (self.db.clone(), self.row_id.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = sqlx::query("DELETE FROM mcp_streams WHERE id = $1").bind(row_id).execute(db.writer()).await;
            });
        }
    }
}

/// An SDK stream with this server's messages for the session merged in.
pub struct WithPushed {
    inner: Pin<Box<dyn Stream<Item = ServerSseMessage> + Send + Sync>>,
    pushed: mpsc::Receiver<ServerJsonRpcMessage>,
    _guard: StreamGuard,
}

impl Stream for WithPushed {
    type Item = ServerSseMessage;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ServerSseMessage>> {
        let this = self.get_mut();
        if let Poll::Ready(item) = this.inner.as_mut().poll_next(cx) {
            return Poll::Ready(item);
        }
        match this.pushed.poll_recv(cx) {
            Poll::Ready(Some(message)) => Poll::Ready(Some(ServerSseMessage::from_message(message))),
            // The hub let go of the stream: the server is shutting down.
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

pub fn resource_updated(uri: &str) -> ServerJsonRpcMessage {
    ServerJsonRpcMessage::notification(ServerNotification::ResourceUpdatedNotification(
        ResourceUpdatedNotification::new(ResourceUpdatedNotificationParam::new(uri)),
    ))
}

impl Hub {
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// Registers a stream of `session` on this server: what `push` sends it arrives on the
    /// receiver while the guard lives; the receiver ends when the server shuts down.
    pub async fn open(
        self: &Arc<Self>,
        db: &Db,
        session: &str,
        now: i64,
    ) -> Result<(mpsc::Receiver<ServerJsonRpcMessage>, StreamGuard), OpenError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(OpenError::Closing);
        }
        let row_id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO mcp_streams (id, session_id, server_id, opened_at, seen_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&row_id)
        .bind(session)
        .bind(&self.server_id)
        .bind(now)
        .execute(db.writer())
        .await?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let local_id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(session.to_string())
            .or_default()
            .push((local_id, tx));
        let guard = StreamGuard { hub: self.clone(), db: db.clone(), session: session.to_string(), local_id, row_id };
        Ok((rx, guard))
    }

    /// `open`, for a Streamable HTTP stream the SDK produces: this server's messages are
    /// merged into it.
    pub async fn open_sse(
        self: &Arc<Self>,
        db: &Db,
        session: &str,
        inner: Pin<Box<dyn Stream<Item = ServerSseMessage> + Send + Sync>>,
        now: i64,
    ) -> Result<WithPushed, OpenError> {
        let (pushed, guard) = self.open(db, session, now).await?;
        Ok(WithPushed { inner, pushed, _guard: guard })
    }

    /// Ends every stream of this server and refuses new ones (shutdown: the server then waits
    /// for no event stream's client).
    pub fn close_all(&self) {
        self.closed.store(true, Ordering::Release);
        self.streams.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Sends `message` to every stream of `session` open on this server; `false` when none
    /// took it (none open, or each too far behind).
    pub fn push(&self, session: &str, message: ServerJsonRpcMessage) -> bool {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let mut taken = false;
        for (_, tx) in streams.get(session).into_iter().flatten() {
            taken |= tx.try_send(message.clone()).is_ok();
        }
        taken
    }

    /// The sessions with a stream open on this server.
    pub fn local_sessions(&self) -> Vec<String> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    /// Reads the changes written lately and notifies the local subscribers of the new ones.
    async fn deliver(&self, db: &Db, sessions: &[String], now: i64) -> sqlx::Result<()> {
        let fresh: Vec<Change> = {
            let changes = changes::since(db, now - LOOKBACK_MS).await?;
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.retain(|_, at| *at >= now - 4 * LOOKBACK_MS);
            changes.into_iter().filter(|c| seen.insert(c.id.clone(), now).is_none()).collect()
        };
        if fresh.is_empty() {
            return Ok(());
        }
        let targets: BTreeSet<String> = fresh.iter().flat_map(Change::targets).collect();
        let targets: Vec<String> = targets.into_iter().collect();
        let local: HashSet<&String> = sessions.iter().collect();
        let mut notified = HashSet::new();
        for chunk in targets.chunks(IN_CHUNK) {
            let mut q = SqlBuilder::new("SELECT session_id, uri FROM mcp_subscriptions WHERE ");
            q.push_in(db.engine(), "target", chunk);
            let subscribed: Vec<(String, String)> = q.query_as().fetch_all(db.pool()).await?;
            for (session, uri) in subscribed {
                if local.contains(&session) && notified.insert((session.clone(), uri.clone())) {
                    self.push(&session, resource_updated(&uri));
                }
            }
        }
        Ok(())
    }

    /// Says this server's streams (and their sessions) are alive.
    async fn heartbeat(&self, db: &Db, sessions: &[String], now: i64) -> sqlx::Result<()> {
        sqlx::query("UPDATE mcp_streams SET seen_at = $1 WHERE server_id = $2")
            .bind(now)
            .bind(&self.server_id)
            .execute(db.writer())
            .await?;
        sessions::touch(db, sessions, now).await
    }
}

/// Drops what nobody needs any more: old changes, streams of servers that stopped, idle sessions.
async fn purge(db: &Db, now: i64) -> sqlx::Result<()> {
    changes::purge(db, now - CHANGES_KEPT_MS).await?;
    sqlx::query("DELETE FROM mcp_streams WHERE seen_at < $1").bind(now - STREAM_TTL_MS).execute(db.writer()).await?;
    super::presence::purge(db, now).await?;
    sessions::purge(db, now).await
}

/// The listener: runs until aborted (`App::serve` starts it).
pub async fn listen(state: AppState) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let hub = state.mcp.clone();
    for tick in 1u64.. {
        ticker.tick().await;
        let now = state.now();
        if let Err(e) = state.engine.changes().flush(&state.db, now).await {
            tracing::warn!(error = %e, "could not write hiring changes");
        }
        let local = hub.local_sessions();
        if !local.is_empty() {
            if let Err(e) = hub.deliver(&state.db, &local, now).await {
                tracing::warn!(error = %e, "could not deliver MCP notifications");
            }
            if let Err(e) = super::presence::send_due(&state, now).await {
                tracing::warn!(error = %e, "could not send MCP pings");
            }
            if tick % HEARTBEAT_TICKS == 0
                && let Err(e) = hub.heartbeat(&state.db, &local, now).await
            {
                tracing::warn!(error = %e, "could not mark MCP streams alive");
            }
        }
        if tick % PURGE_TICKS == 0
            && let Err(e) = purge(&state.db, now).await
        {
            tracing::warn!(error = %e, "could not purge MCP leftovers");
        }
    }
}
