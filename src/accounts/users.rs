//! People's accounts: sign-up (with the first API key), passwords (Argon2id, see `passwords`),
//! profile.

use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;

use super::api_keys::{self, KeySpec};
use super::passwords;
use crate::auth::keys::{KeyInfo, PlainSecret};
use crate::auth::scope::Scopes;
use crate::clock::rfc3339;
use crate::db::Db;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::text::{Line, Text};

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SignUpRequest {
    #[schema(required = true, format = Email)]
    pub email: Option<Line>,
    /// At least 10 characters.
    #[schema(required = true, min_length = 10, max_length = 1024)]
    pub password: Option<Text>,
    #[schema(max_length = 100)]
    pub name: Option<Line>,
}

#[derive(Debug, Clone)]
pub struct SignUp {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
}

impl SignUpRequest {
    pub fn validate(self) -> ApiResult<SignUp> {
        let mut errors = Vec::new();
        let email = self.email.unwrap_or_default().trim().to_lowercase();
        if !looks_like_email(&email) {
            errors.push(FieldError::new("email", "must be an email address"));
        }
        let password = self.password.map(String::from).unwrap_or_default();
        let len = password.chars().count();
        if !(10..=1024).contains(&len) {
            errors.push(FieldError::new("password", "must be 10–1024 characters"));
        }
        let name = self.name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        if name.as_ref().is_some_and(|n| n.chars().count() > 100) {
            errors.push(FieldError::new("name", "must be at most 100 characters"));
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        Ok(SignUp { email, password, name })
    }
}

fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && s.len() <= 254
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub is_admin: bool,
    pub created_at: String,
}

#[derive(Debug, FromRow)]
struct UserRow {
    id: String,
    email: String,
    name: Option<String>,
    is_admin: i64,
    created_at: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> User {
        User { id: r.id, email: r.email, name: r.name, is_admin: r.is_admin != 0, created_at: rfc3339(r.created_at) }
    }
}

/// Argon2id, bounded and on the blocking pool (see `passwords`).
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    passwords::hash(password).await
}

/// Creates the account and its first key (full access) in one transaction.
pub async fn register(db: &Db, signup: SignUp, is_admin: bool, now: i64) -> ApiResult<(User, KeyInfo, PlainSecret)> {
    let password_hash = hash_password(signup.password).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let mut tx = db.begin().await?;
    let inserted = sqlx::query_as::<_, UserRow>(
        "INSERT INTO users (id, email, name, password_hash, is_admin, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (email) DO NOTHING \
         RETURNING id, email, name, is_admin, created_at",
    )
    .bind(&id)
    .bind(&signup.email)
    .bind(&signup.name)
    .bind(&password_hash)
    .bind(is_admin as i64)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(user) = inserted else {
        return Err(ApiError::conflict("an account with this email already exists")
            .with_details([serde_json::json!({"field": "email", "message": "is already registered"})]));
    };
    let spec = KeySpec { name: "default".into(), scopes: Scopes::all(), expires_at: None, max_price_per_hire: None };
    let (key, secret) = api_keys::insert(&mut tx, &id, &spec, now).await?;
    tx.commit().await?;
    Ok((user.into(), key, secret))
}

pub async fn find(db: &Db, id: &str) -> sqlx::Result<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as("SELECT id, email, name, is_admin, created_at FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(User::from))
}

pub async fn find_by_email(db: &Db, email: &str) -> sqlx::Result<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as("SELECT id, email, name, is_admin, created_at FROM users WHERE email = $1")
            .bind(email.trim().to_lowercase())
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(User::from))
}

/// Checks a password; `None` for a wrong email or password alike, after the same Argon2 work
/// either way (an unknown email is checked against a dummy hash).
pub async fn verify_password(db: &Db, email: &str, password: &str) -> anyhow::Result<Option<User>> {
    let row: Option<(String, String)> = sqlx::query_as("SELECT id, password_hash FROM users WHERE email = $1")
        .bind(email.trim().to_lowercase())
        .fetch_optional(db.pool())
        .await?;
    let (id, stored) = row.unzip();
    let ok = passwords::verify(password.to_string(), stored).await?;
    match id {
        Some(id) if ok => Ok(find(db, &id).await?),
        _ => Ok(None),
    }
}

/// Serialises concurrent changes that count a user's things (plan limits): locks the user row
/// on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already serialises writers.
pub async fn lock_for_update(db: &Db, tx: &mut crate::db::Tx, id: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT id FROM users WHERE id = $1{}", db.for_update())))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.is_some())
}

/// The order of the accounts list: newest first.
pub fn order() -> crate::http::keyset::Ordering {
    crate::http::keyset::Ordering::newest_first("users", "created_at", "id")
}

/// One page of accounts, newest first (the administrators' page), and the next page's cursor.
pub async fn list(db: &Db, page: &crate::http::keyset::Page) -> sqlx::Result<(Vec<User>, Option<String>)> {
    let mut q = crate::db::SqlBuilder::new("SELECT id, email, name, is_admin, created_at FROM users WHERE 1 = 1");
    let order = order();
    order.finish(&mut q, page);
    let mut rows: Vec<UserRow> = q.query_as().fetch_all(db.pool()).await?;
    let next = order.next_cursor(page, &mut rows, |u| crate::http::keyset::newest_key(u.created_at, &u.id));
    Ok((rows.into_iter().map(User::from).collect(), next))
}
