//! A user's GitHub token, for hired agents that push to the user's repositories
//! (`delivery_mode: push`). Stored sealed with the server's key (`crate::secrets`, bound to the
//! user id), never returned and never logged; its status shows whether one is set, its last 4
//! characters and when it was set.

use serde::Serialize;

use crate::clock::rfc3339;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::secrets::SecretsKey;

/// Where a user's token stands.
#[derive(Debug, Serialize)]
pub struct TokenStatus {
    pub set: bool,
    pub last4: Option<String>,
    pub set_at: Option<String>,
}

/// A plausible token: 8 to 255 visible ASCII characters, no spaces.
fn validate(token: &str) -> ApiResult<&str> {
    let token = token.trim();
    let visible = token.bytes().all(|b| b.is_ascii_graphic());
    if !(8..=255).contains(&token.len()) || !visible {
        return Err(ApiError::field("token", "must be a GitHub token: 8 to 255 visible characters, no spaces"));
    }
    Ok(token)
}

/// Stores (or replaces) the user's token, sealed.
pub async fn set(db: &Db, key: &SecretsKey, user_id: &str, token: &str, now: i64) -> ApiResult<TokenStatus> {
    let token = validate(token)?;
    let last4 = token[token.len() - 4..].to_string();
    sqlx::query(
        "INSERT INTO github_tokens (user_id, sealed_token, last4, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id) DO UPDATE SET sealed_token = excluded.sealed_token, last4 = excluded.last4, \
         updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(key.seal(token, user_id))
    .bind(&last4)
    .bind(now)
    .execute(db.writer())
    .await?;
    Ok(TokenStatus { set: true, last4: Some(last4), set_at: Some(rfc3339(now)) })
}

pub async fn status(db: &Db, user_id: &str) -> ApiResult<TokenStatus> {
    let row: Option<(String, i64)> = sqlx::query_as("SELECT last4, updated_at FROM github_tokens WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(match row {
        Some((last4, at)) => TokenStatus { set: true, last4: Some(last4), set_at: Some(rfc3339(at)) },
        None => TokenStatus { set: false, last4: None, set_at: None },
    })
}

/// Deletes the user's token (nothing to delete is not an error).
pub async fn clear(db: &Db, user_id: &str) -> ApiResult<TokenStatus> {
    sqlx::query("DELETE FROM github_tokens WHERE user_id = $1").bind(user_id).execute(db.writer()).await?;
    Ok(TokenStatus { set: false, last4: None, set_at: None })
}

/// The token in clear, for the code that pushes on the user's behalf.
pub async fn reveal(db: &Db, key: &SecretsKey, user_id: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT sealed_token FROM github_tokens WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(db.pool())
        .await?;
    row.map(|(sealed,)| key.open(&sealed, user_id).map_err(ApiError::Internal)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked() {
        assert!(validate("ghp_0123456789abcdef").is_ok());
        assert!(validate("short").is_err());
        assert!(validate("ghp_with space inside").is_err());
    }
}
