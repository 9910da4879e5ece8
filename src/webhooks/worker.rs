//! The delivery worker. Any number of server processes may run it: each due delivery is claimed
//! with a lease by one conditional UPDATE, so exactly one worker sends it. Failures are retried
//! with exponential backoff and jitter; a run of consecutive failures disables the subscription.

use std::time::Duration;

use rand::Rng;

use super::signer;
use crate::state::AppState;

/// How long a claimed delivery is reserved for the worker that claimed it.
const LEASE_MS: i64 = 60_000;
const BATCH: i64 = 50;
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: usize,
    pub failed: usize,
    pub dead: usize,
}

#[derive(sqlx::FromRow)]
struct Due {
    id: String,
    subscription_id: String,
    event: String,
    task_id: Option<String>,
    payload: String,
    attempts: i64,
}

/// Delay before retry `n` (1-based): 1 min × 4ⁿ⁻¹, capped at 8 h, ±20 % jitter. Eight attempts
/// span about a day.
pub fn backoff_ms(n: i64) -> i64 {
    let base = 60_000i64.saturating_mul(4i64.saturating_pow((n - 1).clamp(0, 10) as u32)).min(8 * 3600 * 1000);
    let jitter = rand::rng().random_range(-0.2..=0.2);
    base + (base as f64 * jitter) as i64
}

/// Claims and sends every due delivery once, at the state's clock time.
pub async fn run_once(state: &AppState) -> anyhow::Result<DeliveryReport> {
    let now = state.now();
    let due: Vec<Due> = sqlx::query_as(
        "UPDATE webhook_deliveries SET locked_until = $1 \
         WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $2 \
                      AND (locked_until IS NULL OR locked_until <= $2) ORDER BY next_attempt_at LIMIT $3) \
           AND status = 'pending' AND (locked_until IS NULL OR locked_until <= $2) \
         RETURNING id, subscription_id, event, task_id, payload, attempts",
    )
    .bind(now + LEASE_MS)
    .bind(now)
    .bind(BATCH)
    .fetch_all(state.db.writer())
    .await?;
    let mut report = DeliveryReport::default();
    let sends = due.into_iter().map(|d| deliver(state, d, now));
    for outcome in futures_util::future::join_all(sends).await {
        match outcome? {
            Outcome::Delivered => report.delivered += 1,
            Outcome::Retry => report.failed += 1,
            Outcome::Dead => report.dead += 1,
        }
    }
    Ok(report)
}

enum Outcome {
    Delivered,
    Retry,
    Dead,
}

async fn deliver(state: &AppState, d: Due, now: i64) -> anyhow::Result<Outcome> {
    let sub: Option<(String, String, String)> =
        sqlx::query_as("SELECT callback_url, secret, status FROM webhook_subscriptions WHERE id = $1")
            .bind(&d.subscription_id)
            .fetch_optional(state.db.pool())
            .await?;
    let Some((url, secret, status)) = sub.filter(|s| s.2 == "active") else {
        sqlx::query("UPDATE webhook_deliveries SET status = 'cancelled', locked_until = NULL WHERE id = $1")
            .bind(&d.id)
            .execute(state.db.writer())
            .await?;
        return Ok(Outcome::Dead);
    };
    let _ = status;
    let result = match super::open_secret(&state.secrets, &d.subscription_id, &secret) {
        Ok(secret) => send(state, &url, &secret, &d, now).await,
        Err(e) => Err((None, format!("the signing secret cannot be opened: {e}"))),
    };
    let attempts = d.attempts + 1;
    match result {
        Ok(code) => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'delivered', attempts = $1, last_status = $2, delivered_at = $3, \
                 locked_until = NULL, last_error = NULL WHERE id = $4",
            )
            .bind(attempts)
            .bind(code as i64)
            .bind(now)
            .bind(&d.id)
            .execute(state.db.writer())
            .await?;
            sqlx::query(
                "UPDATE webhook_subscriptions SET last_delivery_at = $1, consecutive_failures = 0 WHERE id = $2",
            )
            .bind(now)
            .bind(&d.subscription_id)
            .execute(state.db.writer())
            .await?;
            metrics::counter!("agentmarket_webhook_deliveries_total", "result" => "delivered").increment(1);
            Ok(Outcome::Delivered)
        }
        Err((code, error)) => {
            let dead = attempts >= state.config.webhook_max_attempts as i64;
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $1, attempts = $2, last_status = $3, last_error = $4, \
                 next_attempt_at = $5, locked_until = NULL WHERE id = $6",
            )
            .bind(if dead { "dead" } else { "pending" })
            .bind(attempts)
            .bind(code.map(|c| c as i64))
            .bind(&error)
            .bind(now + backoff_ms(attempts))
            .bind(&d.id)
            .execute(state.db.writer())
            .await?;
            sqlx::query(
                "UPDATE webhook_subscriptions SET failure_count = failure_count + 1, consecutive_failures = consecutive_failures + 1, \
                 last_delivery_at = $1, status = CASE WHEN consecutive_failures + 1 >= $2 THEN 'disabled' ELSE status END \
                 WHERE id = $3 AND status = 'active'",
            )
            .bind(now)
            .bind(state.config.webhook_disable_after as i64)
            .bind(&d.subscription_id)
            .execute(state.db.writer())
            .await?;
            tracing::info!(delivery = %d.id, attempts, error = %error, "webhook delivery failed");
            metrics::counter!("agentmarket_webhook_deliveries_total", "result" => "failed").increment(1);
            Ok(if dead { Outcome::Dead } else { Outcome::Retry })
        }
    }
}

/// POSTs the exact stored body with its signatures; `Ok(status)` for a 2xx.
async fn send(state: &AppState, url: &str, secret: &str, d: &Due, now: i64) -> Result<u16, (Option<u16>, String)> {
    // Stored URLs are checked again (the policy may have tightened since); names are checked by
    // the client's resolver, against the addresses it connects to.
    let parsed = crate::http::outbound::check_url(url, state.config.allow_private_network).map_err(|e| (None, e))?;
    let body = d.payload.as_bytes().to_vec();
    let t = now / 1000;
    let mut req = state
        .http
        .post(parsed)
        .timeout(TIMEOUT)
        .header("content-type", "application/json")
        .header("user-agent", "agentmarket-webhooks/1")
        .header("x-webhook-event", &d.event)
        .header("x-webhook-id", &d.id)
        .header("x-webhook-timestamp", t.to_string())
        .header("x-webhook-signature", signer::signature(secret, &body))
        .header("x-webhook-signature-v2", signer::signature_v2(secret, t, &body));
    if let Some(task) = &d.task_id {
        req = req.header("x-webhook-task-id", task);
    }
    match req.body(body).send().await {
        Ok(res) if res.status().is_success() => Ok(res.status().as_u16()),
        Ok(res) => Err((Some(res.status().as_u16()), format!("answered {}", res.status()))),
        Err(e) => Err((None, if e.is_timeout() { "timed out".into() } else { e.to_string() })),
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_grows_to_about_a_day_over_eight_attempts() {
        let total: i64 = (1..8).map(backoff_ms).sum();
        assert!((15 * 3600 * 1000..30 * 3600 * 1000).contains(&total), "{total}");
        assert!(backoff_ms(1) >= 48_000 && backoff_ms(1) <= 72_000);
        assert!(backoff_ms(20) <= 8 * 3600 * 1000 * 12 / 10);
    }
}
