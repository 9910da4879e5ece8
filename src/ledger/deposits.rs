//! Money in: deposits by method (`sandbox` instant when enabled, `manual` pending until an
//! administrator confirms; provider methods through `crate::payments`) and operator credits.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::statement::{self, Line};
use super::{Account, Entry, Principal, Purpose, post};
use crate::clock::rfc3339;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::money::Amount;
use crate::text;

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DepositRequest {
    /// Decimal string, > 0.
    #[schema(required = true, schema_with = crate::openapi::choice::amount)]
    pub amount: Option<text::Line>,
    /// `USD`.
    #[schema(schema_with = crate::openapi::choice::usd)]
    pub currency: Option<text::Line>,
    /// `sandbox`, `manual`, `crypto` (alias `nowpayments`) or `card` (alias `stripe`).
    #[schema(schema_with = crate::openapi::choice::deposit_method)]
    pub payment_method: Option<text::Line>,
    /// Alias of `payment_method` (`/payments/create-intent`).
    #[schema(schema_with = crate::openapi::choice::deposit_method)]
    pub payment_type: Option<text::Line>,
    /// `crypto` only: the coin to pay in (`btc`, `usdttrc20`…). The answer then names the
    /// address and the exact amount to send instead of a payment page.
    pub pay_currency: Option<text::Line>,
}

/// Where a deposit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepositStatus {
    Pending,
    Completed,
    /// The provider's payment expired or failed before any money was credited.
    Failed,
}

impl DepositStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DepositStatus::Pending => "pending",
            DepositStatus::Completed => "completed",
            DepositStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DepositStatus> {
        match s {
            "pending" => Some(DepositStatus::Pending),
            "completed" => Some(DepositStatus::Completed),
            "failed" => Some(DepositStatus::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Deposit {
    pub id: String,
    pub principal: String,
    pub amount: Amount,
    pub method: String,
    /// `pending`, `completed` or `failed`.
    pub status: String,
    pub created_at: String,
    pub completed_at: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    principal: String,
    amount: i64,
    method: String,
    status: String,
    created_at: i64,
    completed_at: Option<i64>,
}

impl From<Row> for Deposit {
    fn from(r: Row) -> Deposit {
        Deposit {
            id: r.id,
            principal: r.principal,
            amount: Amount::from_units(r.amount).unwrap_or_default(),
            method: r.method,
            status: r.status,
            created_at: rfc3339(r.created_at),
            completed_at: r.completed_at.map(rfc3339),
        }
    }
}

/// Parses a positive amount for `field`, at most `max` (the configured maximum), as
/// `INVALID_AMOUNT` when it is not one.
pub fn positive_amount(field: &str, value: Option<&str>, max: Amount) -> ApiResult<Amount> {
    let text = value.ok_or_else(|| ApiError::invalid_amount(field, "is required"))?;
    let amount = Amount::parse_at_most(text.trim(), max).map_err(|e| ApiError::invalid_amount(field, e.to_string()))?;
    if amount.is_zero() {
        return Err(ApiError::invalid_amount(field, "must be greater than zero"));
    }
    Ok(amount)
}

pub fn require_usd(currency: Option<&str>) -> ApiResult<()> {
    match currency.map(|c| c.trim().to_ascii_uppercase()) {
        None => Ok(()),
        Some(c) if c == "USD" => Ok(()),
        Some(_) => Err(ApiError::field("currency", "only USD is supported")),
    }
}

/// Every deposit method (and alias) accepted.
pub const METHODS: [&str; 6] = ["sandbox", "manual", "crypto", "nowpayments", "card", "stripe"];

pub struct DepositSpec {
    pub amount: Amount,
    pub method: String,
    /// Lowercase coin code, `crypto` only.
    pub pay_currency: Option<String>,
}

impl DepositRequest {
    pub fn validate(self, max_amount: Amount) -> ApiResult<DepositSpec> {
        require_usd(self.currency.as_deref())?;
        let method = self.payment_method.or(self.payment_type).unwrap_or_default().trim().to_ascii_lowercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(ApiError::field(
                "payment_method",
                "must be sandbox, manual, crypto, nowpayments, card or stripe",
            ));
        }
        let amount = positive_amount("amount", self.amount.as_deref(), max_amount)?;
        let pay_currency = match self.pay_currency.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(c) if c.len() <= 20 && c.bytes().all(|b| b.is_ascii_alphanumeric()) => Some(c.to_ascii_lowercase()),
            Some(_) => return Err(ApiError::field("pay_currency", "must be a coin code such as btc or usdttrc20")),
        };
        Ok(DepositSpec { amount, method, pay_currency })
    }
}

pub async fn create(
    db: &Db,
    principal: &Principal,
    spec: DepositSpec,
    sandbox_enabled: bool,
    now: i64,
) -> ApiResult<Deposit> {
    let status = match spec.method.as_str() {
        "sandbox" if sandbox_enabled => "completed",
        "sandbox" => return Err(ApiError::payment_failed("sandbox deposits are disabled on this server")),
        "manual" => "pending",
        // Provider methods start in `payments::start_deposit`; reaching here means not configured.
        other => {
            let provider = crate::payments::Provider::for_method(other).ok_or_else(|| anyhow::anyhow!("bad method"))?;
            return Err(provider.not_configured());
        }
    };
    let id = uuid::Uuid::now_v7().to_string();
    let mut tx = db.begin().await?;
    let row: Row = sqlx::query_as(
        "INSERT INTO deposits (id, principal, amount, method, status, created_at, completed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, principal, amount, method, status, created_at, completed_at",
    )
    .bind(&id)
    .bind(principal.key())
    .bind(spec.amount.units())
    .bind(&spec.method)
    .bind(status)
    .bind(now)
    .bind((status == "completed").then_some(now))
    .fetch_one(&mut *tx)
    .await?;
    if status == "completed" {
        book(&mut tx, principal, &id, spec.amount, now).await?;
    }
    statement::record(
        &mut tx,
        Line {
            id: Some(id.clone()),
            principal,
            kind: "deposit",
            amount: spec.amount,
            status,
            task_id: None,
            reference: Some(&id),
            description: format!("{} deposit", spec.method),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    metrics::counter!("agentmarket_deposits_total", "method" => spec.method.clone(), "status" => status).increment(1);
    Ok(row.into())
}

/// Credits a deposit: `world` → the wallet, booked once per deposit (`deposit:<id>`), and
/// `payment.deposited` through the outbox.
pub(crate) async fn book(
    tx: &mut crate::db::Tx,
    principal: &Principal,
    id: &str,
    amount: Amount,
    now: i64,
) -> ApiResult<()> {
    post(
        tx,
        Entry {
            kind: "deposit",
            reference: format!("deposit:{id}"),
            task_id: None,
            memo: None,
            postings: vec![
                (Account::World, -amount.units()),
                (Account::Wallet(principal.clone(), Purpose::Available), amount.units()),
            ],
        },
        now,
    )
    .await?;
    let payload = serde_json::json!({"event": "payment.deposited", "deposit_id": id, "amount": amount, "currency": "USD",
        "status": "completed", "principal": principal.key(), "created_at": crate::clock::rfc3339(now)});
    crate::webhooks::emit(tx, &[principal.key()], "payment.deposited", None, payload, now).await?;
    Ok(())
}

/// Confirms a pending deposit exactly once.
pub async fn confirm(db: &Db, id: &str, now: i64) -> ApiResult<Deposit> {
    let mut tx = db.begin().await?;
    let current: Row = sqlx::query_as(
        "SELECT id, principal, amount, method, status, created_at, completed_at FROM deposits WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("deposit"))?;
    let done =
        sqlx::query("UPDATE deposits SET status = 'completed', completed_at = $1 WHERE id = $2 AND status = 'pending'")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::invalid_state("only a pending deposit can be confirmed", &current.status));
    }
    let principal = Principal::parse_key(&current.principal).ok_or_else(|| anyhow::anyhow!("bad principal key"))?;
    let amount = Amount::from_units(current.amount).unwrap_or_default();
    book(&mut tx, &principal, id, amount, now).await?;
    statement::set_status(&mut tx, id, "completed", now).await?;
    tx.commit().await?;
    Ok(Deposit { status: "completed".into(), completed_at: Some(rfc3339(now)), ..current.into() })
}

pub async fn list_pending(db: &Db, limit: i64) -> sqlx::Result<Vec<Deposit>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, principal, amount, method, status, created_at, completed_at FROM deposits \
         WHERE status = 'pending' ORDER BY created_at, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(Deposit::from).collect())
}

/// An operator's credit (`admin credit`, `POST /admin/credit`): money from outside, booked as
/// an adjustment.
pub async fn credit(db: &Db, principal: &Principal, amount: Amount, reason: &str, now: i64) -> ApiResult<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let mut tx = db.begin().await?;
    let entry_id = post(
        &mut tx,
        Entry {
            kind: "adjustment",
            reference: format!("credit:{id}"),
            task_id: None,
            memo: Some(reason.to_string()),
            postings: vec![
                (Account::World, -amount.units()),
                (Account::Wallet(principal.clone(), Purpose::Available), amount.units()),
            ],
        },
        now,
    )
    .await?;
    statement::record(
        &mut tx,
        Line {
            id: Some(id.clone()),
            principal,
            kind: "adjustment",
            amount,
            status: "completed",
            task_id: None,
            reference: Some(&entry_id),
            description: reason.to_string(),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}
