//! Dashboard sessions: a random cookie value (stored as SHA-256 only) per logged-in browser,
//! with the CSRF token its forms must carry.

use crate::auth::keys::{self, KeyKind};
use crate::db::Db;

pub struct BrowserSession {
    pub id: String,
    pub user_id: String,
    pub csrf_token: String,
}

/// The CSRF token of the session behind `cookie`: derived from the cookie (which only the
/// browser and, for a moment, the server see), so it is never stored.
fn csrf_for(cookie: &str) -> String {
    keys::hash(&format!("csrf:{cookie}"))[..40].to_string()
}

/// Starts a session; returns the cookie value (shown to the browser only) and the session.
pub async fn start(db: &Db, user_id: &str, now: i64, ttl_ms: i64) -> sqlx::Result<(String, BrowserSession)> {
    let token = keys::generate(KeyKind::Session);
    let id = uuid::Uuid::now_v7().to_string();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO dashboard_sessions (id, token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(&token.hash)
    .bind(user_id)
    .bind(now)
    .bind(now + ttl_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let cookie = token.plaintext.into_inner();
    let session = BrowserSession { id, user_id: user_id.to_string(), csrf_token: csrf_for(&cookie) };
    Ok((cookie, session))
}

pub async fn find(db: &Db, cookie: &str, now: i64) -> sqlx::Result<Option<BrowserSession>> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT id, user_id FROM dashboard_sessions WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(keys::hash(cookie))
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(id, user_id)| BrowserSession { id, user_id, csrf_token: csrf_for(cookie) }))
}

pub async fn end(db: &Db, id: &str, now: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE dashboard_sessions SET revoked_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}
