//! `Idempotency-Key` / `X-Idempotency-Key` on POST, PUT and PATCH (API.md §0), kept 24 h per
//! credential.
//!
//! The key is recorded in the same transaction as the work it guards (as zero-to-production's
//! idempotency does): the first write transaction a guarded request opens (`Db::begin`) inserts
//! the key before anything else. If the work rolls back, or the server dies before committing,
//! the key goes with it and a retry runs at once; if the work commits, so does the key, and a
//! duplicate can never run it again. The response is then saved on the key and replayed for the
//! same key and request:
//!
//! - same key, same request → the saved status and body (`idempotent-replayed: true`), with every
//!   secret the response showed replaced by a marker: a secret is shown once, never replayed;
//! - same key, another request → 422 `IDEMPOTENCY_MISMATCH`;
//! - same key while the first is still running → 409 `IDEMPOTENCY_PENDING` with `retry-after`;
//! - a 4xx without effect is saved and replayed too; a 5xx is not saved, so the request can be
//!   retried — unless its work had committed (then the key answers 409
//!   `IDEMPOTENCY_OUTCOME_UNKNOWN`: look the result up rather than repeat it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::envelope::RecordedBody;
use crate::auth::Caller;
use crate::auth::keys::{KeyKind, SHOWN_ONCE};
use crate::db::{Db, Tx};
use crate::error::ApiError;
use crate::hex::encode as hex;
use crate::http::extract::client_ip;
use crate::state::AppState;

const RETENTION_MS: i64 = 24 * 3600 * 1000;

tokio::task_local! {
    static CLAIM: Arc<Claim>;
}

/// The key of the request being served, waiting to be recorded by its first write transaction.
pub(crate) struct Claim {
    scope: String,
    key: String,
    fingerprint: String,
    started_at: i64,
    /// The first write transaction inserted the key (it commits or rolls back with the work).
    recorded: AtomicBool,
    /// Another request with the same key got there first.
    taken: AtomicBool,
}

/// The error `Db::begin` returns when a concurrent request with the same key recorded it first.
pub const KEY_TAKEN: &str = "idempotency key taken by a concurrent request";

pub fn pending() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "IDEMPOTENCY_PENDING",
        "a request with this idempotency key is still being processed",
    )
    .with_retry_after(1)
}

/// Called by `Db::begin` as the first statement of every write transaction: inside a guarded
/// request, the first one records the key. A key already recorded by a concurrent request
/// fails the transaction with `KEY_TAKEN` (on PostgreSQL after that request commits or rolls
/// back: the unique index makes it wait).
pub async fn record_in(tx: &mut Tx) -> sqlx::Result<()> {
    let Ok(claim) = CLAIM.try_with(Arc::clone) else { return Ok(()) };
    if claim.recorded.load(Ordering::SeqCst) {
        return Ok(());
    }
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, state, created_at) VALUES ($1, $2, $3, 'committing', $4) \
         ON CONFLICT (scope, idem_key) DO NOTHING",
    )
    .bind(&claim.scope)
    .bind(&claim.key)
    .bind(&claim.fingerprint)
    .bind(claim.started_at)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        claim.taken.store(true, Ordering::SeqCst);
        return Err(sqlx::Error::Protocol(KEY_TAKEN.into()));
    }
    claim.recorded.store(true, Ordering::SeqCst);
    Ok(())
}

/// The idempotency key of the request this task serves, if any (the task engine records it in
/// the batch transaction that carries the request's command).
pub(crate) fn current_claim() -> Option<Arc<Claim>> {
    CLAIM.try_with(Arc::clone).ok().filter(|c| !c.recorded.load(Ordering::SeqCst))
}

/// Records several requests' keys in `tx` with one statement; returns, per claim, whether it
/// was recorded (`false`: a concurrent request with the same key got there first).
pub(crate) async fn record_claims(tx: &mut Tx, claims: &[Arc<Claim>]) -> sqlx::Result<Vec<bool>> {
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = crate::db::SqlBuilder::new(
        "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, state, created_at) VALUES ",
    );
    for (i, c) in claims.iter().enumerate() {
        let row = [
            crate::db::Arg::Text(c.scope.clone()),
            crate::db::Arg::Text(c.key.clone()),
            crate::db::Arg::Text(c.fingerprint.clone()),
            crate::db::Arg::Int(c.started_at),
        ];
        q.push(if i == 0 { "(?, ?, ?, 'committing', ?)" } else { ", (?, ?, ?, 'committing', ?)" }, row);
    }
    q.push(" ON CONFLICT (scope, idem_key) DO NOTHING RETURNING scope, idem_key", []);
    let mut inserted: Vec<(String, String)> = q.query_as().fetch_all(&mut **tx).await?;
    // Two requests with one key in one batch: the row is inserted once, and only the first
    // of them has recorded it; the other lost the race like a request on another server.
    Ok(claims
        .iter()
        .map(|c| match inserted.iter().position(|(s, k)| *s == c.scope && *k == c.key) {
            Some(i) => {
                inserted.swap_remove(i);
                true
            }
            None => false,
        })
        .collect())
}

impl Claim {
    pub(crate) fn new(scope: String, key: String, fingerprint: String, started_at: i64) -> Arc<Claim> {
        Arc::new(Claim {
            scope,
            key,
            fingerprint,
            started_at,
            recorded: AtomicBool::new(false),
            taken: AtomicBool::new(false),
        })
    }

    /// The batch that recorded this key committed.
    pub(crate) fn committed(&self) {
        self.recorded.store(true, Ordering::SeqCst);
    }

    /// A concurrent request with this key recorded it first.
    pub(crate) fn lost(&self) {
        self.taken.store(true, Ordering::SeqCst);
    }
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
    let key = hex(&Sha256::digest(key.as_bytes()));
    let now = state.now();

    // A request still running can hold a recorded key for at most the request timeout.
    let in_flight_ms = state.config.request_timeout.as_millis() as i64 + 5_000;
    match lookup(&state.db, &scope, &key, &fingerprint, now, in_flight_ms).await {
        Ok(None) => {}
        Ok(Some(answer)) => return answer,
        Err(e) => return ApiError::from(e).into_response(),
    }
    let claim = Claim::new(scope, key, fingerprint, now);
    let response = CLAIM.scope(claim.clone(), next.run(Request::from_parts(parts, Body::from(bytes)))).await;
    let (res_parts, res_body) = response.into_parts();
    let sent = axum::body::to_bytes(res_body, usize::MAX).await.unwrap_or_default();
    let status = res_parts.status;
    let recorded = claim.recorded.load(Ordering::SeqCst);
    // A duplicate that lost the race answers 409 and records nothing; a server error is kept
    // retryable unless its work committed (the key then stays, answering that the outcome is
    // unknown).
    if !claim.taken.load(Ordering::SeqCst) && !status.is_server_error() {
        let body = res_parts.extensions.get::<RecordedBody>().map(|r| r.0.clone()).unwrap_or_else(|| sent.clone());
        if let Err(e) = save(&state.db, &claim, recorded, status.as_u16(), &without_secrets(&body)).await {
            tracing::warn!(error = %e, "could not save an idempotent response");
        }
    }
    Response::from_parts(res_parts, Body::from(sent))
}

/// A recorded key: fingerprint, state, saved status and body, and when it was first used.
type StoredKey = (String, String, Option<i64>, Option<String>, i64);

/// What an earlier request with this key says: nothing (run it), or the answer to give.
async fn lookup(
    db: &Db,
    scope: &str,
    key: &str,
    fingerprint: &str,
    now: i64,
    in_flight_ms: i64,
) -> sqlx::Result<Option<Response>> {
    let row: Option<StoredKey> = sqlx::query_as(
        "SELECT fingerprint, state, status_code, response_body, created_at FROM idempotency_keys WHERE scope = $1 AND idem_key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(db.pool())
    .await?;
    let Some((stored_fingerprint, state, status, body, created_at)) = row else { return Ok(None) };
    if now - created_at >= RETENTION_MS {
        sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND created_at = $3")
            .bind(scope)
            .bind(key)
            .bind(created_at)
            .execute(db.writer())
            .await?;
        return Ok(None);
    }
    if stored_fingerprint != fingerprint {
        let err = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "IDEMPOTENCY_MISMATCH",
            "this idempotency key was used with a different request",
        );
        return Ok(Some(err.into_response()));
    }
    Ok(Some(match (state.as_str(), status, body) {
        ("completed", Some(status), Some(body)) => replay(status as u16, body),
        _ if now - created_at < in_flight_ms => pending().into_response(),
        _ => ApiError::new(
            StatusCode::CONFLICT,
            "IDEMPOTENCY_OUTCOME_UNKNOWN",
            "the request with this idempotency key was carried out but its response was not recorded; \
             look the result up instead of repeating the request",
        )
        .into_response(),
    }))
}

/// Saves the answer on the key: on the row the work committed, or (when nothing was recorded, or
/// the work rolled back) on a new row.
async fn save(db: &Db, claim: &Claim, recorded: bool, status: u16, body: &Bytes) -> sqlx::Result<()> {
    let text = String::from_utf8_lossy(body).into_owned();
    if recorded {
        let done = sqlx::query(
            "UPDATE idempotency_keys SET state = 'completed', status_code = $1, response_body = $2 \
             WHERE scope = $3 AND idem_key = $4 AND state = 'committing'",
        )
        .bind(status as i64)
        .bind(&text)
        .bind(&claim.scope)
        .bind(&claim.key)
        .execute(db.writer())
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
    }
    sqlx::query(
        "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, state, status_code, response_body, created_at) \
         VALUES ($1, $2, $3, 'completed', $4, $5, $6) ON CONFLICT (scope, idem_key) DO NOTHING",
    )
    .bind(&claim.scope)
    .bind(&claim.key)
    .bind(&claim.fingerprint)
    .bind(status as i64)
    .bind(&text)
    .bind(claim.started_at)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// A safety net under the typed redaction: any string in the body that is one of our
/// credentials or signing secrets is replaced by the marker before the body is stored.
fn without_secrets(body: &Bytes) -> Bytes {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) else { return body.clone() };
    if redact(&mut value) {
        serde_json::to_vec(&value).map(Bytes::from).unwrap_or_else(|_| body.clone())
    } else {
        body.clone()
    }
}

fn redact(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) if KeyKind::of(s).is_some() || s.starts_with("whsec_") => {
            *s = SHOWN_ONCE.to_string();
            true
        }
        serde_json::Value::Array(items) => items.iter_mut().fold(false, |acc, v| redact(v) | acc),
        serde_json::Value::Object(map) => map.values_mut().fold(false, |acc, v| redact(v) | acc),
        _ => false,
    }
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
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_bodies_never_hold_a_credential() {
        let key = crate::auth::keys::generate(KeyKind::Agent).plaintext.into_inner();
        let body = serde_json::json!({"data": {"api_key": key, "nested": [{"t": "whsec_abc"}], "name": "ok"}});
        let stored = without_secrets(&Bytes::from(serde_json::to_vec(&body).unwrap()));
        let text = String::from_utf8(stored.to_vec()).unwrap();
        assert!(!text.contains(&key) && !text.contains("whsec_abc"), "{text}");
        assert!(text.contains(SHOWN_ONCE) && text.contains("\"name\":\"ok\""));
    }
}
