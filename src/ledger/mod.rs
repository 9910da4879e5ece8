//! The double-entry ledger. Every change of a balance is a journal entry whose postings sum to
//! zero, booked in the caller's transaction together with the state change that causes it.
//! Balances are columns updated conditionally (`… WHERE balance >= $1`), never read-then-written.

pub mod audit;
pub mod deposits;
pub mod routes;
pub mod statement;
pub mod withdrawals;

use std::fmt;

use crate::db::{Arg, SqlBuilder, Tx};
use crate::error::ApiError;
use crate::money::Amount;

/// The most any ledger account may hold, and the least the `world` account may (2^61 units,
/// about 23 billion USD: also the most money the whole deployment can hold). With every single
/// amount within `Amount::CEILING`, `balance ± amount` and the sum of a wallet's balances
/// always fit an `i64`; the bound is checked in the same statement that moves the money.
pub const MAX_BALANCE: i64 = 1 << 61;

/// Who owns a wallet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    User(String),
    Agent(String),
}

impl Principal {
    /// `user:<id>` / `agent:<id>`: the key used in the ledger's own tables.
    pub fn key(&self) -> String {
        self.to_string()
    }

    pub fn parse_key(key: &str) -> Option<Principal> {
        match key.split_once(':')? {
            ("user", id) => Some(Principal::User(id.to_string())),
            ("agent", id) => Some(Principal::Agent(id.to_string())),
            _ => None,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(id) => write!(f, "user:{id}"),
            Principal::Agent(id) => write!(f, "agent:{id}"),
        }
    }
}

/// The purpose of a wallet account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Spendable.
    Available,
    /// Held for tasks this principal pays for.
    Escrow,
    /// Earned by this principal's completed tasks, awaiting release.
    Pending,
    /// On its way out in a withdrawal.
    Withdrawing,
}

impl Purpose {
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Available => "available",
            Purpose::Escrow => "escrow",
            Purpose::Pending => "pending",
            Purpose::Withdrawing => "withdrawing",
        }
    }
}

/// A ledger account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    Wallet(Principal, Purpose),
    /// The platform's fee income.
    Fees,
    /// Everything outside the system: deposits come from it, withdrawals go to it. Its balance is
    /// minus the money inside.
    World,
}

impl Account {
    pub fn id(&self) -> String {
        match self {
            Account::Wallet(p, purpose) => format!("{p}:{}", purpose.name()),
            Account::Fees => "platform:fees".into(),
            Account::World => "world".into(),
        }
    }

    fn owner(&self) -> (String, String, &'static str) {
        match self {
            Account::Wallet(Principal::User(id), purpose) => ("user".into(), id.clone(), purpose.name()),
            Account::Wallet(Principal::Agent(id), purpose) => ("agent".into(), id.clone(), purpose.name()),
            Account::Fees => ("platform".into(), String::new(), "fees"),
            Account::World => ("world".into(), String::new(), "world"),
        }
    }

    fn may_go_negative(&self) -> bool {
        matches!(self, Account::World)
    }
}

/// One business event to book.
#[derive(Debug)]
pub struct Entry {
    pub kind: &'static str,
    /// Unique per event (`task:<id>:settle`): a second booking of the same event fails.
    pub reference: String,
    pub task_id: Option<String>,
    pub memo: Option<String>,
    pub postings: Vec<(Account, i64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("insufficient balance in {0}")]
    Insufficient(String),
    #[error("event {0} is already booked")]
    AlreadyBooked(String),
    #[error("unbalanced entry")]
    Unbalanced,
    #[error("{0} would go beyond the most an account can hold")]
    BalanceLimit(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> ApiError {
        match e {
            LedgerError::Insufficient(_) => ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "INSUFFICIENT_BALANCE",
                "the available balance is below the amount",
            ),
            LedgerError::AlreadyBooked(r) => ApiError::conflict(format!("{r} was already processed")),
            LedgerError::Unbalanced => ApiError::Internal(anyhow::anyhow!("unbalanced journal entry")),
            LedgerError::BalanceLimit(_) => ApiError::invalid_amount(
                "amount",
                "would take a balance beyond the most an account can hold (23058430092.13693952)",
            ),
            LedgerError::Db(e) => e.into(),
        }
    }
}

/// Books `entry` inside `tx`. Debits that would take a wallet below zero fail the whole entry
/// with `Insufficient`; the caller's transaction must then be rolled back (dropping it does).
pub async fn post(tx: &mut Tx, entry: Entry, now: i64) -> Result<String, LedgerError> {
    if entry.postings.iter().map(|(_, a)| *a as i128).sum::<i128>() != 0 {
        return Err(LedgerError::Unbalanced);
    }
    let entry_id = uuid::Uuid::now_v7().to_string();
    let inserted = sqlx::query(
        "INSERT INTO journal_entries (id, kind, reference, task_id, memo, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (reference) DO NOTHING",
    )
    .bind(&entry_id)
    .bind(entry.kind)
    .bind(&entry.reference)
    .bind(&entry.task_id)
    .bind(&entry.memo)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(LedgerError::AlreadyBooked(entry.reference));
    }
    // A fixed order of row updates keeps concurrent PostgreSQL transactions from deadlocking.
    let mut postings: Vec<(String, Account, i64)> =
        entry.postings.into_iter().filter(|(_, a)| *a != 0).map(|(acc, a)| (acc.id(), acc, a)).collect();
    postings.sort_by(|a, b| a.0.cmp(&b.0));
    let mut insert = SqlBuilder::new("INSERT INTO postings (id, entry_id, account_id, amount, created_at) VALUES ");
    for (i, (id, account, amount)) in postings.iter().enumerate() {
        apply(tx, id, account, *amount, now).await?;
        let row = [
            Arg::Text(uuid::Uuid::now_v7().to_string()),
            Arg::Text(entry_id.clone()),
            Arg::Text(id.clone()),
            Arg::Int(*amount),
            Arg::Int(now),
        ];
        insert.push(if i == 0 { "(?, ?, ?, ?, ?)" } else { ", (?, ?, ?, ?, ?)" }, row);
    }
    if !postings.is_empty() {
        insert.query().execute(&mut **tx).await?;
    }
    Ok(entry_id)
}

async fn apply(tx: &mut Tx, id: &str, account: &Account, amount: i64, now: i64) -> Result<(), LedgerError> {
    if amount < 0 && !account.may_go_negative() {
        let done = sqlx::query("UPDATE ledger_accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1")
            .bind(-amount)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(LedgerError::Insufficient(id.to_string()));
        }
        return Ok(());
    }
    let (kind, owner, purpose) = account.owner();
    // `balance + amount` cannot overflow: |balance| ≤ MAX_BALANCE and |amount| ≤ CEILING.
    let done = sqlx::query(
        "INSERT INTO ledger_accounts (id, owner_kind, owner_id, purpose, balance, allow_negative, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (id) DO UPDATE SET balance = ledger_accounts.balance + excluded.balance \
         WHERE ledger_accounts.balance + excluded.balance BETWEEN $8 AND $9",
    )
    .bind(id)
    .bind(kind)
    .bind(owner)
    .bind(purpose)
    .bind(amount)
    .bind(account.may_go_negative() as i64)
    .bind(now)
    .bind(-MAX_BALANCE)
    .bind(MAX_BALANCE)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 || amount.abs() > MAX_BALANCE {
        return Err(LedgerError::BalanceLimit(id.to_string()));
    }
    Ok(())
}

/// A wallet's balances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balances {
    pub available: Amount,
    pub escrow: Amount,
    pub pending: Amount,
    pub withdrawing: Amount,
}

impl Balances {
    /// Each balance is within `MAX_BALANCE`, so their sum fits an `i64`.
    pub fn total(&self) -> Amount {
        Amount::from_units(self.available.units() + self.escrow.units() + self.pending.units()).unwrap_or(Amount::MAX)
    }
}

pub async fn balances(db: &crate::db::Db, principal: &Principal) -> sqlx::Result<Balances> {
    let id = |p: Purpose| Account::Wallet(principal.clone(), p).id();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT purpose, balance FROM ledger_accounts WHERE id IN ($1, $2, $3, $4)")
            .bind(id(Purpose::Available))
            .bind(id(Purpose::Escrow))
            .bind(id(Purpose::Pending))
            .bind(id(Purpose::Withdrawing))
            .fetch_all(db.pool())
            .await?;
    let mut b = Balances::default();
    for (purpose, balance) in rows {
        let amount = Amount::from_units(balance).unwrap_or_default();
        match purpose.as_str() {
            "available" => b.available = amount,
            "escrow" => b.escrow = amount,
            "pending" => b.pending = amount,
            "withdrawing" => b.withdrawing = amount,
            _ => {}
        }
    }
    Ok(b)
}

/// The platform's fee income so far.
pub async fn fees_collected(db: &crate::db::Db) -> sqlx::Result<Amount> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT balance FROM ledger_accounts WHERE id = 'platform:fees'")
        .fetch_optional(db.pool())
        .await?;
    Ok(row.and_then(|(b,)| Amount::from_units(b)).unwrap_or_default())
}
