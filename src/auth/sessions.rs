//! Session tokens (`ast_…`) minted by `/auth/authenticate`. Only their SHA-256 is stored; each
//! points at the key it was made from, so revoking the key ends its sessions too.

use sqlx::FromRow;

use super::keys::{self, KeyKind, PlainSecret};
use crate::db::Db;

#[derive(Debug, FromRow)]
struct SessionRow {
    id: String,
    key_kind: String,
    key_id: String,
    expires_at: i64,
}

#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub key_kind: KeyKind,
    pub key_id: String,
    pub expires_at: i64,
}

fn kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::User => "user",
        KeyKind::Agent => "agent",
        KeyKind::Session => "session",
    }
}

pub async fn create(
    db: &Db,
    key_kind: KeyKind,
    key_id: &str,
    now: i64,
    ttl_ms: i64,
) -> sqlx::Result<(PlainSecret, i64)> {
    let token = keys::generate(KeyKind::Session);
    let expires_at = now + ttl_ms;
    // In a transaction, so an idempotency key commits with the session it guards.
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO auth_sessions (id, token_hash, key_kind, key_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&token.hash)
    .bind(kind_name(key_kind))
    .bind(key_id)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((token.plaintext, expires_at))
}

pub async fn find_active(db: &Db, token_hash: &str, now: i64) -> sqlx::Result<Option<Session>> {
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT id, key_kind, key_id, expires_at FROM auth_sessions WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.and_then(|r| {
        let key_kind = match r.key_kind.as_str() {
            "user" => KeyKind::User,
            "agent" => KeyKind::Agent,
            _ => return None,
        };
        Some(Session { id: r.id, key_kind, key_id: r.key_id, expires_at: r.expires_at })
    }))
}

pub async fn revoke(db: &Db, session_id: &str, now: i64) -> sqlx::Result<u64> {
    let done = sqlx::query("UPDATE auth_sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(session_id)
        .execute(db.writer())
        .await?;
    db.credentials_changed();
    Ok(done.rows_affected())
}

pub async fn revoke_for_key(db: &Db, key_id: &str, now: i64) -> sqlx::Result<u64> {
    let done = sqlx::query("UPDATE auth_sessions SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(key_id)
        .execute(db.writer())
        .await?;
    db.credentials_changed();
    Ok(done.rows_affected())
}
