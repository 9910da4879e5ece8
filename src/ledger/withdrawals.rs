//! Money out: saved payout addresses and withdrawals. A withdrawal holds the amount at once
//! (available → withdrawing); an administrator (or a payout provider) then completes it (the
//! money leaves to `world`) or fails it (the money comes back), each exactly once.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::deposits::{positive_amount, require_usd};
use super::statement::{self, Line};
use super::{Account, Entry, Principal, Purpose, post};
use crate::clock::rfc3339;
use crate::db::{Db, Tx};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::money::Amount;
use crate::text;

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AddressRequest {
    /// e.g. `USDT`, `USDC`, `USD`.
    #[schema(required = true, min_length = 1)]
    pub currency: Option<text::Line>,
    /// e.g. `TRC20`.
    pub network: Option<text::Line>,
    #[schema(required = true, min_length = 1)]
    pub address: Option<text::Line>,
    pub label: Option<text::Line>,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct AddressRow {
    id: String,
    currency: String,
    network: Option<String>,
    address: String,
    label: Option<String>,
    #[serde(skip)]
    principal: String,
    #[serde(skip)]
    created_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WithdrawalAddress {
    pub id: String,
    pub currency: String,
    pub network: Option<String>,
    pub address: String,
    pub label: Option<String>,
    pub created_at: String,
}

impl From<AddressRow> for WithdrawalAddress {
    fn from(r: AddressRow) -> Self {
        WithdrawalAddress {
            id: r.id,
            currency: r.currency,
            network: r.network,
            address: r.address,
            label: r.label,
            created_at: rfc3339(r.created_at),
        }
    }
}

const ADDRESS_COLUMNS: &str = "id, currency, network, address, label, principal, created_at";

impl AddressRequest {
    fn validate(self) -> ApiResult<(String, Option<String>, String, Option<String>)> {
        let mut errors = Vec::new();
        let currency = self.currency.unwrap_or_default().trim().to_ascii_uppercase();
        if currency.is_empty() || currency.len() > 10 || !currency.bytes().all(|b| b.is_ascii_alphanumeric()) {
            errors.push(FieldError::new("currency", "must be a currency code such as USDT"));
        }
        let network = self.network.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        if network.as_ref().is_some_and(|n| n.len() > 32) {
            errors.push(FieldError::new("network", "must be at most 32 characters"));
        }
        let address = self.address.unwrap_or_default().trim().to_string();
        if address.is_empty() || address.len() > 256 || address.chars().any(char::is_whitespace) {
            errors.push(FieldError::new("address", "is required: 1–256 characters without spaces"));
        }
        let label = self.label.map(|l| l.trim().to_string()).filter(|l| !l.is_empty());
        if label.as_ref().is_some_and(|l| l.chars().count() > 64) {
            errors.push(FieldError::new("label", "must be at most 64 characters"));
        }
        if errors.is_empty() { Ok((currency, network, address, label)) } else { Err(ApiError::validation(errors)) }
    }
}

pub async fn add_address(
    db: &Db,
    principal: &Principal,
    req: AddressRequest,
    now: i64,
) -> ApiResult<WithdrawalAddress> {
    let (currency, network, address, label) = req.validate()?;
    let mut tx = db.begin().await?;
    let row: AddressRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO withdrawal_addresses (id, principal, currency, network, address, label, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ADDRESS_COLUMNS}"
    )))
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(principal.key())
    .bind(currency)
    .bind(network)
    .bind(address)
    .bind(label)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn list_addresses(db: &Db, principal: &Principal) -> sqlx::Result<Vec<WithdrawalAddress>> {
    let rows: Vec<AddressRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ADDRESS_COLUMNS} FROM withdrawal_addresses WHERE principal = $1 AND deleted_at IS NULL ORDER BY created_at DESC, id DESC"
    )))
    .bind(principal.key())
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(WithdrawalAddress::from).collect())
}

async fn own_address(db: &Db, principal: &Principal, id: &str) -> ApiResult<AddressRow> {
    let row: Option<AddressRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ADDRESS_COLUMNS} FROM withdrawal_addresses WHERE id = $1 AND deleted_at IS NULL"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.filter(|r| r.principal == principal.key()).ok_or_else(|| ApiError::not_found("withdrawal address"))
}

pub async fn delete_address(db: &Db, principal: &Principal, id: &str, now: i64) -> ApiResult<WithdrawalAddress> {
    let row = own_address(db, principal, id).await?;
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE withdrawal_addresses SET deleted_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(row.into())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct WithdrawRequest {
    #[schema(required = true, schema_with = crate::openapi::choice::amount)]
    pub amount: Option<text::Line>,
    #[schema(schema_with = crate::openapi::choice::usd)]
    pub currency: Option<text::Line>,
    #[schema(required = true)]
    pub withdrawal_address_id: Option<text::Line>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Withdrawal {
    pub id: String,
    pub transaction_id: String,
    pub principal: String,
    pub amount: Amount,
    /// The payout fee, booked to the platform when the withdrawal completes.
    pub fee: Amount,
    /// What is sent: `amount - fee`.
    pub payout_amount: Amount,
    pub currency: String,
    pub withdrawal_address_id: String,
    /// `pending`, `completed` or `failed`.
    pub status: String,
    pub reason: Option<String>,
    /// The payout's transaction hash (or other reference) the operator recorded on completion.
    pub payout_tx_hash: Option<String>,
    pub created_at: String,
    pub processed_at: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    principal: String,
    amount: i64,
    fee: i64,
    currency: String,
    address_id: String,
    status: String,
    reason: Option<String>,
    payout_tx_hash: Option<String>,
    created_at: i64,
    processed_at: Option<i64>,
}

const COLUMNS: &str =
    "id, principal, amount, fee, currency, address_id, status, reason, payout_tx_hash, created_at, processed_at";

impl From<Row> for Withdrawal {
    fn from(r: Row) -> Self {
        Withdrawal {
            transaction_id: r.id.clone(),
            id: r.id,
            principal: r.principal,
            amount: Amount::from_units(r.amount).unwrap_or_default(),
            fee: Amount::from_units(r.fee).unwrap_or_default(),
            payout_amount: Amount::from_units(r.amount - r.fee).unwrap_or_default(),
            currency: r.currency,
            withdrawal_address_id: r.address_id,
            status: r.status,
            reason: r.reason,
            payout_tx_hash: r.payout_tx_hash,
            created_at: rfc3339(r.created_at),
            processed_at: r.processed_at.map(rfc3339),
        }
    }
}

/// The smallest and largest withdrawal, and the payout fee in basis points.
#[derive(Debug, Clone, Copy)]
pub struct WithdrawalPolicy {
    pub minimum: Amount,
    pub maximum: Amount,
    pub fee_bps: i64,
}

/// Holds the amount at once; `INSUFFICIENT_BALANCE` if it is not available.
pub async fn request(
    db: &Db,
    principal: &Principal,
    req: WithdrawRequest,
    WithdrawalPolicy { minimum, maximum, fee_bps }: WithdrawalPolicy,
    now: i64,
) -> ApiResult<Withdrawal> {
    require_usd(req.currency.as_deref())?;
    let amount = positive_amount("amount", req.amount.as_deref(), maximum)?;
    if amount < minimum {
        return Err(ApiError::invalid_amount("amount", format!("must be at least {minimum}")));
    }
    let address_id =
        req.withdrawal_address_id.ok_or_else(|| ApiError::field("withdrawal_address_id", "is required"))?;
    own_address(db, principal, &address_id).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let fee = crate::money::apply_bps(amount, fee_bps);
    let mut tx = db.begin().await?;
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO withdrawals (id, principal, amount, fee, currency, address_id, status, created_at) \
         VALUES ($1, $2, $3, $6, 'USD', $4, 'pending', $5) RETURNING {COLUMNS}"
    )))
    .bind(&id)
    .bind(principal.key())
    .bind(amount.units())
    .bind(address_id.as_str())
    .bind(now)
    .bind(fee.units())
    .fetch_one(&mut *tx)
    .await?;
    post(
        &mut tx,
        Entry {
            kind: "withdrawal_hold",
            reference: format!("withdrawal:{id}:hold"),
            task_id: None,
            memo: None,
            postings: vec![
                (Account::Wallet(principal.clone(), Purpose::Available), -amount.units()),
                (Account::Wallet(principal.clone(), Purpose::Withdrawing), amount.units()),
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
            kind: "withdrawal",
            amount,
            status: "pending",
            task_id: None,
            reference: Some(&id),
            description: "withdrawal".into(),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(row.into())
}

/// A payout's transaction hash or reference: 1–128 letters, digits and `. _ : -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutReference(String);

impl PayoutReference {
    pub fn parse(field: &str, text: &str) -> ApiResult<PayoutReference> {
        let text = text.trim();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
        if text.is_empty() || text.len() > 128 || !text.chars().all(allowed) {
            return Err(ApiError::field(field, "must be 1–128 letters, digits or . _ : -"));
        }
        Ok(PayoutReference(text.to_string()))
    }
}

/// Completes (`succeeded`, with the payout's reference if known) or fails a pending withdrawal,
/// exactly once.
pub async fn finish(
    db: &Db,
    id: &str,
    succeeded: bool,
    reason: Option<String>,
    payout: Option<PayoutReference>,
    now: i64,
) -> ApiResult<Withdrawal> {
    if payout.is_some() && !succeeded {
        return Err(ApiError::field("tx_hash", "only a completed payout has a transaction"));
    }
    let mut tx = db.begin().await?;
    let current = load(&mut tx, id).await?;
    let status = if succeeded { "completed" } else { "failed" };
    let done = sqlx::query(
        "UPDATE withdrawals SET status = $1, reason = $2, payout_tx_hash = $3, processed_at = $4 \
         WHERE id = $5 AND status = 'pending'",
    )
    .bind(status)
    .bind(&reason)
    .bind(payout.map(|p| p.0))
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::invalid_state("only a pending withdrawal can be completed or failed", &current.status));
    }
    let principal = Principal::parse_key(&current.principal).ok_or_else(|| anyhow::anyhow!("bad principal key"))?;
    let amount = current.amount;
    // Completed: the payout leaves to `world` and the fee goes to the platform, in one entry.
    // Failed: everything comes back, fee included.
    let mut postings = vec![(Account::Wallet(principal.clone(), Purpose::Withdrawing), -amount)];
    if succeeded {
        postings.push((Account::World, amount - current.fee));
        if current.fee > 0 {
            postings.push((Account::fees_for(id), current.fee));
        }
    } else {
        postings.push((Account::Wallet(principal.clone(), Purpose::Available), amount));
    }
    post(
        &mut tx,
        Entry {
            kind: if succeeded { "withdrawal_complete" } else { "withdrawal_fail" },
            reference: format!("withdrawal:{id}:final"),
            task_id: None,
            memo: reason.clone(),
            postings,
        },
        now,
    )
    .await?;
    statement::set_status(&mut tx, id, status, now).await?;
    let payload = serde_json::json!({"event": "withdrawal.processed", "withdrawal_id": id, "status": status,
        "amount": Amount::from_units(amount).unwrap_or_default(), "currency": "USD", "reason": reason, "processed_at": rfc3339(now)});
    crate::webhooks::emit(&mut tx, &[principal.key()], "withdrawal.processed", None, payload, now).await?;
    if !succeeded {
        statement::record(
            &mut tx,
            Line {
                id: None,
                principal: &principal,
                kind: "withdrawal_refund",
                amount: Amount::from_units(amount).unwrap_or_default(),
                status: "completed",
                task_id: None,
                reference: Some(id),
                description: reason.clone().unwrap_or_else(|| "withdrawal failed".into()),
            },
            now,
        )
        .await?;
    }
    let row = load(&mut tx, id).await?;
    tx.commit().await?;
    Ok(row.into())
}

async fn load(tx: &mut Tx, id: &str) -> ApiResult<Row> {
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM withdrawals WHERE id = $1")))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| ApiError::not_found("withdrawal"))
}

pub async fn list_pending(db: &Db, limit: i64) -> sqlx::Result<Vec<Withdrawal>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM withdrawals WHERE status = 'pending' ORDER BY created_at, id LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(Withdrawal::from).collect())
}
