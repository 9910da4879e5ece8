//! User API keys (`ap_…`): create, list, revoke, roll, and the lookup the caller resolver uses.

use serde::Deserialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::auth::keys::{self, KeyInfo, KeyKind, PlainSecret};
use crate::auth::scope::{Rights, Scopes};
use crate::clock::{parse_rfc3339, rfc3339, rfc3339_opt};
use crate::db::{Db, Tx};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::money::Amount;
use crate::text::Line;

/// Longest grace period for the old key when rolling: one week.
pub const MAX_ROLL_GRACE_SECS: i64 = 604_800;

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct NewKeyRequest {
    /// 1–64 characters.
    #[schema(required = true, min_length = 1, max_length = 64)]
    pub name: Option<Line>,
    /// Defaults to `["*"]` (full access); `[]` makes a key that can only identify itself.
    #[schema(schema_with = crate::openapi::choice::scopes)]
    pub scopes: Option<Vec<Line>>,
    /// RFC 3339, in the future.
    #[schema(format = DateTime)]
    pub expires_at: Option<Line>,
    /// Hard cap on the price of any single task or hire this key pays for.
    #[schema(schema_with = crate::openapi::choice::amount)]
    pub max_price_per_hire: Option<Line>,
}

/// A validated key specification.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub name: String,
    pub scopes: Scopes,
    pub expires_at: Option<i64>,
    pub max_price_per_hire: Option<Amount>,
}

impl NewKeyRequest {
    pub fn validate(self, now: i64, max_amount: Amount) -> ApiResult<KeySpec> {
        let mut errors = Vec::new();
        let name = self.name.as_deref().map(str::trim).unwrap_or("").to_string();
        if name.is_empty() || name.chars().count() > 64 {
            errors.push(FieldError::new("name", "is required, 1–64 characters"));
        }
        let scopes = match self.scopes {
            None => Scopes::all(),
            Some(list) => Scopes::parse_list(&list).unwrap_or_else(|unknown| {
                errors.push(FieldError::new("scopes", format!("unknown scope `{unknown}`")));
                Scopes::none()
            }),
        };
        let expires_at = match self.expires_at.as_deref() {
            None => None,
            Some(s) => match parse_rfc3339(s) {
                Some(t) if t > now => Some(t),
                Some(_) => {
                    errors.push(FieldError::new("expires_at", "must be in the future"));
                    None
                }
                None => {
                    errors.push(FieldError::new("expires_at", "must be an RFC 3339 time"));
                    None
                }
            },
        };
        let max_price_per_hire = match self.max_price_per_hire.as_deref() {
            None => None,
            Some(s) => match Amount::parse_at_most(s, max_amount) {
                Ok(a) => Some(a),
                Err(e) => {
                    errors.push(FieldError::new("max_price_per_hire", e.to_string()));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        Ok(KeySpec { name, scopes, expires_at, max_price_per_hire })
    }
}

impl KeySpec {
    pub fn rights(&self) -> Rights {
        Rights { scopes: self.scopes.clone(), max_price_per_hire: self.max_price_per_hire }
    }
}

#[derive(Debug, FromRow)]
struct KeyRow {
    id: String,
    user_id: String,
    name: String,
    prefix: String,
    last4: String,
    scopes: String,
    max_price_per_hire: Option<i64>,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

const KEY_COLUMNS: &str =
    "id, user_id, name, prefix, last4, scopes, max_price_per_hire, created_at, last_used_at, expires_at, revoked_at";

impl KeyRow {
    fn rights(&self) -> Rights {
        Rights {
            scopes: Scopes::from_stored(&self.scopes),
            max_price_per_hire: self.max_price_per_hire.and_then(Amount::from_units),
        }
    }

    fn info(self) -> KeyInfo {
        KeyInfo {
            scopes: Scopes::from_stored(&self.scopes).names(),
            max_price_per_hire: self.max_price_per_hire.and_then(Amount::from_units),
            created_at: rfc3339(self.created_at),
            last_used_at: rfc3339_opt(self.last_used_at),
            expires_at: rfc3339_opt(self.expires_at),
            revoked_at: rfc3339_opt(self.revoked_at),
            id: self.id,
            name: self.name,
            prefix: self.prefix,
            last4: self.last4,
        }
    }
}

/// A key as the caller resolver sees it.
#[derive(Debug)]
pub struct UserKeyAuth {
    pub id: String,
    pub user_id: String,
    pub is_admin: bool,
    pub scopes: Scopes,
    pub max_price_per_hire: Option<Amount>,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl UserKeyAuth {
    pub fn is_usable(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now)
    }
}

#[derive(Debug, FromRow)]
struct AuthRow {
    id: String,
    user_id: String,
    is_admin: i64,
    scopes: String,
    max_price_per_hire: Option<i64>,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

const AUTH_SELECT: &str = "SELECT k.id, k.user_id, u.is_admin, k.scopes, k.max_price_per_hire, k.last_used_at, \
     k.expires_at, k.revoked_at FROM user_api_keys k JOIN users u ON u.id = k.user_id";

fn auth_from(row: AuthRow) -> UserKeyAuth {
    UserKeyAuth {
        scopes: Scopes::from_stored(&row.scopes),
        max_price_per_hire: row.max_price_per_hire.and_then(Amount::from_units),
        is_admin: row.is_admin != 0,
        id: row.id,
        user_id: row.user_id,
        last_used_at: row.last_used_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
    }
}

pub async fn find_by_hash(db: &Db, key_hash: &str) -> sqlx::Result<Option<UserKeyAuth>> {
    let row: Option<AuthRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{AUTH_SELECT} WHERE k.key_hash = $1")))
        .bind(key_hash)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(auth_from))
}

pub async fn find_by_id(db: &Db, id: &str) -> sqlx::Result<Option<UserKeyAuth>> {
    let row: Option<AuthRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{AUTH_SELECT} WHERE k.id = $1")))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(auth_from))
}

/// Inserts a new key inside `tx` and returns its info and the plaintext (show once).
pub async fn insert(tx: &mut Tx, user_id: &str, spec: &KeySpec, now: i64) -> sqlx::Result<(KeyInfo, PlainSecret)> {
    let key = keys::generate(KeyKind::User);
    let id = uuid::Uuid::now_v7().to_string();
    let row: KeyRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO user_api_keys (id, user_id, name, key_hash, prefix, last4, scopes, max_price_per_hire, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {KEY_COLUMNS}"
    )))
    .bind(&id)
    .bind(user_id)
    .bind(&spec.name)
    .bind(&key.hash)
    .bind(&key.display_prefix)
    .bind(&key.last4)
    .bind(spec.scopes.to_stored())
    .bind(spec.max_price_per_hire.map(Amount::units))
    .bind(now)
    .bind(spec.expires_at)
    .fetch_one(&mut **tx)
    .await?;
    Ok((row.info(), key.plaintext))
}

/// Creates a key for the caller's account; the caller can only mint a key no stronger than itself.
pub async fn create(db: &Db, by: &Caller, spec: &KeySpec, now: i64) -> ApiResult<(KeyInfo, PlainSecret)> {
    let user = by.require_user()?;
    by.may_mint(&spec.rights())?;
    let mut tx = db.begin().await?;
    let created = insert(&mut tx, &user.id, spec, now).await?;
    tx.commit().await?;
    Ok(created)
}

/// The order of a user's keys: newest first.
pub fn order() -> crate::http::keyset::Ordering {
    crate::http::keyset::Ordering::newest_first("keys", "created_at", "id")
}

/// One page of a user's keys, newest first (`GET /api-keys` and the dashboard's list).
pub async fn list_page(
    db: &Db,
    user_id: &str,
    page: &crate::http::keyset::Page,
) -> sqlx::Result<(Vec<KeyInfo>, crate::http::envelope::Pagination)> {
    let mut q = crate::db::SqlBuilder::default();
    q.push(" FROM user_api_keys WHERE user_id = ?", [crate::db::Arg::Text(user_id.to_string())]);
    let (rows, pagination) = order()
        .fetch(db, KEY_COLUMNS, q, page, |k: &KeyRow| crate::http::keyset::newest_key(k.created_at, &k.id))
        .await?;
    Ok((rows.into_iter().map(KeyRow::info).collect(), pagination))
}

async fn owned_row(tx: &mut Tx, user_id: &str, key_id: &str) -> ApiResult<KeyRow> {
    let row: Option<KeyRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {KEY_COLUMNS} FROM user_api_keys WHERE id = $1")))
            .bind(key_id)
            .fetch_optional(&mut **tx)
            .await?;
    row.filter(|r| r.user_id == user_id).ok_or_else(|| ApiError::not_found("API key"))
}

/// Revokes at once (only keys no stronger than the caller). Revoking an already revoked key
/// returns it unchanged.
pub async fn revoke(db: &Db, by: &Caller, key_id: &str, now: i64) -> ApiResult<KeyInfo> {
    let user_id = by.require_user()?.id.as_str();
    let mut tx = db.begin().await?;
    let row = owned_row(&mut tx, user_id, key_id).await?;
    by.may_manage(&row.rights())?;
    sqlx::query("UPDATE user_api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
    let row = owned_row(&mut tx, user_id, key_id).await?;
    tx.commit().await?;
    db.credentials_changed();
    Ok(row.info())
}

/// Issues a replacement with the same name, scopes and cap. The old key keeps working for
/// `grace_secs` (0 = revoked now). Rolling mints a secret, so the caller must be no weaker than
/// the key it rolls and must not be a session.
pub async fn roll(db: &Db, by: &Caller, key_id: &str, grace_secs: i64, now: i64) -> ApiResult<(KeyInfo, PlainSecret)> {
    let user_id = by.require_user()?.id.as_str();
    let mut tx = db.begin().await?;
    let old = owned_row(&mut tx, user_id, key_id).await?;
    by.may_mint(&old.rights())?;
    if old.revoked_at.is_some() || old.expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::invalid_state("a revoked or expired key cannot be rolled", "revoked"));
    }
    let rights = old.rights();
    let spec = KeySpec {
        name: old.name.clone(),
        scopes: rights.scopes,
        expires_at: old.expires_at,
        max_price_per_hire: rights.max_price_per_hire,
    };
    if grace_secs == 0 {
        sqlx::query("UPDATE user_api_keys SET revoked_at = $1 WHERE id = $2")
            .bind(now)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
    } else {
        let until = now + grace_secs * 1000;
        sqlx::query(
            "UPDATE user_api_keys SET expires_at = $1 WHERE id = $2 AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(until)
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
    }
    let created = insert(&mut tx, user_id, &spec, now).await?;
    tx.commit().await?;
    db.credentials_changed();
    Ok(created)
}
