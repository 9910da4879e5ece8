//! Provider deposits in the database: created pending, moved on by verified callbacks. Every
//! change here runs in the callback's transaction, so a credit, its deposit's change and its
//! statement line commit together or not at all.

use serde::Serialize;
use utoipa::ToSchema;

use super::{Checkout, Provider};
use crate::clock::rfc3339;
use crate::db::{Db, Tx};
use crate::error::{ApiError, ApiResult};
use crate::ledger::deposits::{self, Deposit, DepositSpec};
use crate::ledger::statement::{self, Line};
use crate::ledger::{Principal, deposits::DepositStatus};
use crate::money::Amount;

/// A provider deposit as its callbacks see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub id: String,
    pub principal: String,
    pub amount: i64,
    pub method: String,
    pub status: String,
    pub provider: Option<String>,
    pub provider_ref: Option<String>,
    pub provider_payment_id: Option<String>,
    pub provider_status: Option<String>,
    pub paid_amount: Option<i64>,
    pub payment_url: Option<String>,
    pub pay_address: Option<String>,
    pub pay_amount: Option<String>,
    pub pay_currency: Option<String>,
    pub parent_id: Option<String>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

const COLUMNS: &str = "id, principal, amount, method, status, provider, provider_ref, provider_payment_id, \
    provider_status, paid_amount, payment_url, pay_address, pay_amount, pay_currency, parent_id, created_at, completed_at";

impl Row {
    pub fn status(&self) -> DepositStatus {
        DepositStatus::parse(&self.status).unwrap_or(DepositStatus::Pending)
    }

    pub fn amount(&self) -> Amount {
        Amount::from_units(self.amount).unwrap_or_default()
    }

    fn principal(&self) -> ApiResult<Principal> {
        Principal::parse_key(&self.principal).ok_or_else(|| anyhow::anyhow!("bad principal key").into())
    }
}

/// A provider deposit as its owner sees it: what was asked, what arrived, the provider's status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DepositView {
    pub id: String,
    /// What the deposit asked for.
    pub amount: Amount,
    /// What actually arrived so far, as the provider last reported it (credited once completed).
    pub paid_amount: Option<Amount>,
    pub currency: &'static str,
    pub payment_method: String,
    /// `pending`, `completed` or `failed`.
    pub status: String,
    /// The provider's own status (`waiting`, `partially_paid`, `finished`, `paid`, `expired`…).
    pub provider_status: Option<String>,
    pub payment_url: Option<String>,
    pub deposit_address: Option<String>,
    pub pay_amount: Option<String>,
    pub pay_currency: Option<String>,
    /// For a re-deposit to the same address: the deposit it followed.
    pub parent_id: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
}

impl From<Row> for DepositView {
    fn from(r: Row) -> DepositView {
        DepositView {
            amount: r.amount(),
            paid_amount: r.paid_amount.and_then(Amount::from_units),
            currency: "USD",
            payment_method: r.method,
            status: r.status,
            provider_status: r.provider_status,
            payment_url: r.payment_url,
            deposit_address: r.pay_address,
            pay_amount: r.pay_amount,
            pay_currency: r.pay_currency,
            parent_id: r.parent_id,
            created_at: rfc3339(r.created_at),
            completed_at: r.completed_at.map(rfc3339),
            id: r.id,
        }
    }
}

/// Records a pending provider deposit with its checkout, and its pending statement line.
pub async fn insert_pending(
    db: &Db,
    id: &str,
    principal: &Principal,
    spec: &DepositSpec,
    provider: Provider,
    checkout: &Checkout,
    now: i64,
) -> ApiResult<Deposit> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO deposits (id, principal, amount, method, status, created_at, provider, provider_ref, \
           payment_url, pay_address, pay_amount, pay_currency, updated_at) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10, $11, $5)",
    )
    .bind(id)
    .bind(principal.key())
    .bind(spec.amount.units())
    .bind(&spec.method)
    .bind(now)
    .bind(provider.name())
    .bind(&checkout.provider_ref)
    .bind(checkout.payment_url.as_deref())
    .bind(checkout.pay_address.as_deref())
    .bind(checkout.pay_amount.as_deref())
    .bind(checkout.pay_currency.as_deref())
    .execute(&mut *tx)
    .await?;
    let line = Line {
        id: Some(id.to_string()),
        principal,
        kind: "deposit",
        amount: spec.amount,
        status: "pending",
        task_id: None,
        reference: Some(id),
        description: format!("{} deposit via {}", spec.method, provider.name()),
    };
    statement::record(&mut tx, line, now).await?;
    tx.commit().await?;
    Ok(Deposit {
        id: id.to_string(),
        principal: principal.key(),
        amount: spec.amount,
        method: spec.method.clone(),
        status: "pending".into(),
        created_at: rfc3339(now),
        completed_at: None,
    })
}

/// The deposit `id` made through `provider`, locked for this transaction (PostgreSQL).
pub async fn find(tx: &mut Tx, provider: Provider, id: &str) -> ApiResult<Option<Row>> {
    let sql = format!("SELECT {COLUMNS} FROM deposits WHERE id = $1 AND provider = $2{}", crate::db::for_update_in(tx));
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(provider.name()).fetch_optional(&mut **tx).await?)
}

/// Pending provider deposits, oldest first.
pub async fn pending_with_provider(db: &Db, limit: i64) -> sqlx::Result<Vec<Row>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM deposits WHERE status = 'pending' AND provider IS NOT NULL ORDER BY created_at, id LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// Whether provider payment `payment_id` has already credited a deposit.
pub async fn payment_applied(tx: &mut Tx, provider: Provider, payment_id: &str) -> ApiResult<bool> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT id FROM deposits WHERE provider = $1 AND provider_payment_id = $2")
            .bind(provider.name())
            .bind(payment_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(found.is_some())
}

/// A deposit's owner's view of it.
pub async fn view(db: &Db, principal: &Principal, id: &str) -> ApiResult<DepositView> {
    let row: Option<Row> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM deposits WHERE id = $1 AND principal = $2")))
            .bind(id)
            .bind(principal.key())
            .fetch_optional(db.pool())
            .await?;
    row.map(DepositView::from).ok_or_else(|| ApiError::not_found("deposit"))
}

/// Records the provider's latest status (and what has arrived so far) on a deposit still
/// pending; a later, out-of-order callback for a finished deposit changes nothing.
pub async fn note_progress(
    tx: &mut Tx,
    deposit: &Row,
    provider_status: &str,
    paid: Option<Amount>,
    now: i64,
) -> ApiResult<bool> {
    let done = sqlx::query(
        "UPDATE deposits SET provider_status = $1, paid_amount = COALESCE($2, paid_amount), updated_at = $3 \
         WHERE id = $4 AND status = 'pending'",
    )
    .bind(provider_status)
    .bind(paid.map(Amount::units))
    .bind(now)
    .bind(&deposit.id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Credits `deposit` with what actually arrived, once: the deposit moves to `completed` (from
/// `pending`, or from `failed` when money arrives after all), the ledger books `world` →
/// wallet, the statement line shows the amount credited, and `payment.deposited` goes out.
/// `false` when the deposit was already completed.
pub async fn credit(
    tx: &mut Tx,
    deposit: &Row,
    payment_id: &str,
    paid: Amount,
    provider_status: &str,
    now: i64,
) -> ApiResult<bool> {
    let done = sqlx::query(
        "UPDATE deposits SET status = 'completed', completed_at = $1, updated_at = $1, paid_amount = $2, \
           provider_payment_id = $3, provider_status = $4 \
         WHERE id = $5 AND status <> 'completed'",
    )
    .bind(now)
    .bind(paid.units())
    .bind(payment_id)
    .bind(provider_status)
    .bind(&deposit.id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    deposits::book(tx, &deposit.principal()?, &deposit.id, paid, now).await?;
    settle_line(tx, &deposit.id, DepositStatus::Completed, Some(paid), now).await?;
    Ok(true)
}

/// A further payment to a deposit's address (a re-deposit, or a second payment of an invoice
/// already credited): a completed deposit of its own, linked to `parent`, credited at once.
pub async fn credit_follow_up(
    tx: &mut Tx,
    parent: &Row,
    provider: Provider,
    payment_id: &str,
    paid: Amount,
    provider_status: &str,
    now: i64,
) -> ApiResult<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let principal = parent.principal()?;
    sqlx::query(
        "INSERT INTO deposits (id, principal, amount, method, status, created_at, completed_at, provider, \
           provider_ref, provider_payment_id, provider_status, paid_amount, parent_id, updated_at) \
         VALUES ($1, $2, $3, $4, 'completed', $5, $5, $6, $7, $8, $9, $3, $10, $5)",
    )
    .bind(&id)
    .bind(&parent.principal)
    .bind(paid.units())
    .bind(&parent.method)
    .bind(now)
    .bind(provider.name())
    .bind(payment_id)
    .bind(payment_id)
    .bind(provider_status)
    .bind(&parent.id)
    .execute(&mut **tx)
    .await?;
    let line = Line {
        id: Some(id.clone()),
        principal: &principal,
        kind: "deposit",
        amount: paid,
        status: "completed",
        task_id: None,
        reference: Some(&id),
        description: format!("{} re-deposit via {} (after {})", parent.method, provider.name(), parent.id),
    };
    statement::record(tx, line, now).await?;
    deposits::book(tx, &principal, &id, paid, now).await?;
    Ok(id)
}

/// Fails a deposit that is still pending (expired, failed or refunded before it finished).
pub async fn fail(tx: &mut Tx, deposit: &Row, provider_status: &str, now: i64) -> ApiResult<bool> {
    let done = sqlx::query(
        "UPDATE deposits SET status = 'failed', provider_status = $1, updated_at = $2 WHERE id = $3 AND status = 'pending'",
    )
    .bind(provider_status)
    .bind(now)
    .bind(&deposit.id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    settle_line(tx, &deposit.id, DepositStatus::Failed, None, now).await?;
    Ok(true)
}

/// The statement line of a deposit: its final status, and the amount credited when it differs
/// from what was asked (a partial payment).
async fn settle_line(tx: &mut Tx, id: &str, status: DepositStatus, paid: Option<Amount>, now: i64) -> ApiResult<()> {
    statement::set_status(tx, id, status.as_str(), now).await?;
    if let Some(paid) = paid {
        sqlx::query("UPDATE wallet_transactions SET amount = $1 WHERE id = $2")
            .bind(paid.units())
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Records provider event `event_id` as applied; `false` when it already was (a replay).
pub async fn first_delivery(tx: &mut Tx, provider: Provider, event_id: &str, now: i64) -> ApiResult<bool> {
    let done = sqlx::query(
        "INSERT INTO provider_events (provider, event_id, received_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(provider.name())
    .bind(event_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}
