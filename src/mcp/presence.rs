//! Is an agent connected over MCP? An agent with a live session stream counts as available for
//! a hiring's availability probe when it answers an MCP `ping` sent over that stream within
//! `ANSWER_WITHIN`, so an MCP-only agent needs no `callback_url`.
//!
//! The probe may run on any server, the stream may be open on another, and the client's answer
//! (a POST) may land on a third: the ping is a row of `mcp_pings` addressed to the stream's
//! server, which sends it (`hub`), and whichever server receives the answer records it there.

use std::time::Duration;

use rmcp::model::{ClientJsonRpcMessage, PingRequest, RequestId, ServerJsonRpcMessage, ServerRequest};

use super::hub::STREAM_TTL_MS;
use crate::db::{Arg, Db, IN_CHUNK, SqlBuilder};
use crate::state::AppState;

/// How long the agent has to answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// How often the probing server looks for the answer.
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// The most streams of one agent pinged at once (the newest).
const MAX_STREAMS: i64 = 5;
/// The JSON-RPC id of a ping is this prefix and the ping's row id.
const PING_PREFIX: &str = "agentmarket-ping:";
pub const PINGS_KEPT_MS: i64 = 60_000;

/// The `ping` request with the id of row `ping_id`.
pub fn ping_request(ping_id: &str) -> ServerJsonRpcMessage {
    let id = RequestId::String(format!("{PING_PREFIX}{ping_id}").into());
    ServerJsonRpcMessage::request(ServerRequest::PingRequest(PingRequest::default()), id)
}

/// Pings `agent_id` over its live MCP streams and waits for an answer: `None` when it has no
/// live stream (the probe decides another way), else whether it answered within
/// `ANSWER_WITHIN`.
pub async fn ping_agent(state: &AppState, agent_id: &str) -> sqlx::Result<Option<bool>> {
    let now = state.now();
    let streams: Vec<(String, String)> = sqlx::query_as(
        "SELECT st.session_id, st.server_id FROM mcp_streams st JOIN mcp_sessions s ON s.id = st.session_id \
         WHERE s.agent_id = $1 AND st.seen_at >= $2 ORDER BY st.opened_at DESC LIMIT $3",
    )
    .bind(agent_id)
    .bind(now - STREAM_TTL_MS)
    .bind(MAX_STREAMS)
    .fetch_all(state.db.pool())
    .await?;
    if streams.is_empty() {
        return Ok(None);
    }
    let mut pings = Vec::new();
    for (session, server) in &streams {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query("INSERT INTO mcp_pings (id, session_id, server_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(session)
            .bind(server)
            .bind(now)
            .execute(state.db.writer())
            .await?;
        // A stream of this server is pinged at once; the others at their server's next look.
        if server == state.mcp.server_id() && state.mcp.push(session, ping_request(&id)) {
            mark_sent(&state.db, std::slice::from_ref(&id), now).await?;
        }
        pings.push(id);
    }
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    loop {
        if answered(&state.db, &pings).await? {
            return Ok(Some(true));
        }
        if tokio::time::Instant::now() + LOOK_EVERY > deadline {
            return Ok(Some(false));
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

async fn answered(db: &Db, pings: &[String]) -> sqlx::Result<bool> {
    let mut q = SqlBuilder::new("SELECT id FROM mcp_pings WHERE answered_at IS NOT NULL AND ");
    q.push_in(db.engine(), "id", pings);
    let rows: Vec<(String,)> = q.query_as().fetch_all(db.pool()).await?;
    Ok(!rows.is_empty())
}

async fn mark_sent(db: &Db, pings: &[String], now: i64) -> sqlx::Result<()> {
    for chunk in pings.chunks(IN_CHUNK) {
        let mut q = SqlBuilder::new("");
        q.push("UPDATE mcp_pings SET sent_at = ? WHERE ", [Arg::Int(now)]);
        q.push_in(db.engine(), "id", chunk);
        q.query().execute(db.writer()).await?;
    }
    Ok(())
}

/// Sends the pings addressed to this server's streams (the listener calls it every tick).
pub async fn send_due(state: &AppState, now: i64) -> sqlx::Result<()> {
    let due: Vec<(String, String)> =
        sqlx::query_as("SELECT id, session_id FROM mcp_pings WHERE server_id = $1 AND sent_at IS NULL")
            .bind(state.mcp.server_id())
            .fetch_all(state.db.pool())
            .await?;
    if due.is_empty() {
        return Ok(());
    }
    for (id, session) in &due {
        state.mcp.push(session, ping_request(id));
    }
    let ids: Vec<String> = due.into_iter().map(|(id, _)| id).collect();
    mark_sent(&state.db, &ids, now).await
}

/// If `message` answers one of our pings (a result or an error: either way the client is
/// there), records it and returns `true`; the message then goes no further.
pub async fn take_answer(db: &Db, session: &str, message: &ClientJsonRpcMessage, now: i64) -> sqlx::Result<bool> {
    let id = match message {
        ClientJsonRpcMessage::Response(r) => Some(&r.id),
        ClientJsonRpcMessage::Error(e) => e.id.as_ref(),
        _ => None,
    };
    let Some(ping) = id.and_then(|id| match id {
        RequestId::String(s) => s.strip_prefix(PING_PREFIX).map(str::to_string),
        RequestId::Number(_) => None,
    }) else {
        return Ok(false);
    };
    sqlx::query("UPDATE mcp_pings SET answered_at = $3 WHERE id = $1 AND session_id = $2 AND answered_at IS NULL")
        .bind(&ping)
        .bind(session)
        .bind(now)
        .execute(db.writer())
        .await?;
    Ok(true)
}

/// Drops the pings older than `PINGS_KEPT_MS`.
pub async fn purge(db: &Db, now: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM mcp_pings WHERE created_at < $1").bind(now - PINGS_KEPT_MS).execute(db.writer()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_answer_is_recognised_by_its_id() {
        let request = serde_json::to_value(ping_request("p-1")).unwrap();
        assert_eq!(request["method"], "ping");
        assert_eq!(request["id"], "agentmarket-ping:p-1");
        let answer: ClientJsonRpcMessage =
            serde_json::from_value(serde_json::json!({"jsonrpc": "2.0", "id": "agentmarket-ping:p-1", "result": {}}))
                .unwrap();
        assert!(
            matches!(&answer, ClientJsonRpcMessage::Response(r) if r.id == RequestId::String("agentmarket-ping:p-1".into()))
        );
    }
}
