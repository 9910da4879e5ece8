//! `Idempotency-Key` / `X-Idempotency-Key` on POST, PUT and PATCH: the first response is saved
//! per credential for 24 h and replayed for the same key and request; the same key with another
//! request is 422 `IDEMPOTENCY_MISMATCH`, and while the first is still running 409
//! `IDEMPOTENCY_PENDING`. Server errors are not saved, so the request can be retried.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::db::Db;
use crate::error::ApiError;
use crate::http::extract::client_ip;
use crate::state::AppState;

const RETENTION_MS: i64 = 24 * 3600 * 1000;
/// A request still "running" after this long is taken to have died with its server.
const ABANDONED_MS: i64 = 5 * 60 * 1000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
        return next.run(req).await;
    }
    let key = req.headers().get("x-idempotency-key").or_else(|| req.headers().get("idempotency-key")).cloned();
    let Some(key) = key else { return next.run(req).await };
    let key = match key.to_str().map(str::trim) {
        Ok(k) if !k.is_empty() && k.len() <= 255 => k.to_string(),
        _ => return ApiError::field("Idempotency-Key", "must be 1–255 visible characters").into_response(),
    };
    let (parts, body) = req.into_parts();
    let scope = match parts.extensions.get::<Caller>() {
        Some(caller) => format!("key:{}", caller.key_id()),
        None => format!("ip:{}", client_ip(&parts, state.config.trust_forwarded_for)),
    };
    let bytes = match axum::body::to_bytes(body, state.config.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return ApiError::payload_too_large().into_response(),
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(parts.uri.path().as_bytes());
    hasher.update(b"?");
    hasher.update(parts.uri.query().unwrap_or("").as_bytes());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let fingerprint = hex(&hasher.finalize());
    let key_hash = hex(&Sha256::digest(key.as_bytes()));

    match claim(&state.db, &scope, &key_hash, &fingerprint, state.now()).await {
        Ok(Claim::Ours) => {}
        Ok(Claim::Replay(status, body)) => return replay(status, body),
        Ok(Claim::Refused(err)) => return err.into_response(),
        Err(e) => return ApiError::Internal(e.into()).into_response(),
    }
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let (res_parts, res_body) = response.into_parts();
    let res_bytes = axum::body::to_bytes(res_body, usize::MAX).await.unwrap_or_default();
    let saved = if res_parts.status.is_server_error() {
        forget(&state.db, &scope, &key_hash).await
    } else {
        save(&state.db, &scope, &key_hash, res_parts.status.as_u16(), &res_bytes).await
    };
    if let Err(e) = saved {
        tracing::warn!(error = %e, "could not save an idempotent response");
    }
    Response::from_parts(res_parts, Body::from(res_bytes))
}

enum Claim {
    Ours,
    Replay(u16, String),
    Refused(ApiError),
}

async fn claim(db: &Db, scope: &str, key: &str, fingerprint: &str, now: i64) -> sqlx::Result<Claim> {
    for _ in 0..2 {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, state, created_at) VALUES ($1, $2, $3, 'pending', $4) \
             ON CONFLICT (scope, idem_key) DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(fingerprint)
        .bind(now)
        .execute(db.pool())
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Ours);
        }
        let row: Option<(String, String, Option<i64>, Option<String>, i64)> = sqlx::query_as(
            "SELECT fingerprint, state, status_code, response_body, created_at FROM idempotency_keys WHERE scope = $1 AND idem_key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(db.pool())
        .await?;
        let Some((stored_fingerprint, state, status, body, created_at)) = row else { continue };
        let expired = now - created_at >= RETENTION_MS || (state == "pending" && now - created_at >= ABANDONED_MS);
        if expired {
            sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND created_at = $3")
                .bind(scope)
                .bind(key)
                .bind(created_at)
                .execute(db.pool())
                .await?;
            continue;
        }
        if stored_fingerprint != fingerprint {
            return Ok(Claim::Refused(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "IDEMPOTENCY_MISMATCH",
                "this idempotency key was used with a different request",
            )));
        }
        return Ok(match (state.as_str(), status, body) {
            ("completed", Some(status), Some(body)) => Claim::Replay(status as u16, body),
            _ => Claim::Refused(ApiError::new(
                StatusCode::CONFLICT,
                "IDEMPOTENCY_PENDING",
                "a request with this idempotency key is still being processed",
            )),
        });
    }
    Ok(Claim::Refused(ApiError::new(StatusCode::CONFLICT, "IDEMPOTENCY_PENDING", "retry shortly")))
}

async fn save(db: &Db, scope: &str, key: &str, status: u16, body: &Bytes) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'completed', status_code = $1, response_body = $2 WHERE scope = $3 AND idem_key = $4",
    )
    .bind(status as i64)
    .bind(String::from_utf8_lossy(body).into_owned())
    .bind(scope)
    .bind(key)
    .execute(db.pool())
    .await?;
    Ok(())
}

async fn forget(db: &Db, scope: &str, key: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2")
        .bind(scope)
        .bind(key)
        .execute(db.pool())
        .await?;
    Ok(())
}

fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// Deletes saved responses older than the retention period.
pub async fn purge_expired(db: &Db, now: i64) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(now - RETENTION_MS)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}
