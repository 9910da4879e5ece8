//! The double-entry ledger. Every change of a balance is a journal entry whose postings sum to
//! zero, booked in the caller's transaction together with the state change that causes it.
//! Balances are columns updated conditionally (`… WHERE balance >= $1`), never read-then-written.

pub mod audit;
pub mod book;
pub mod deposits;
pub mod history;
pub mod routes;
pub mod statement;
pub mod withdrawals;

use std::fmt;

pub use book::Book;

use crate::db::Tx;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// Shards of the platform's fee income: settlements book their fee to one of these (chosen by
/// the task), so concurrent settlements do not all wait on one row.
pub const FEE_SHARDS: u8 = 16;

/// A ledger account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Account {
    Wallet(Principal, Purpose),
    /// One shard of the platform's fee income.
    Fees(u8),
    /// Everything outside the system: deposits come from it, withdrawals go to it. Its balance is
    /// minus the money inside.
    World,
}

impl Account {
    pub fn id(&self) -> String {
        match self {
            Account::Wallet(p, purpose) => format!("{p}:{}", purpose.name()),
            Account::Fees(shard) => format!("platform:fees:{shard:02}"),
            Account::World => "world".into(),
        }
    }

    fn owner(&self) -> (String, String, &'static str) {
        match self {
            Account::Wallet(Principal::User(id), purpose) => ("user".into(), id.clone(), purpose.name()),
            Account::Wallet(Principal::Agent(id), purpose) => ("agent".into(), id.clone(), purpose.name()),
            Account::Fees(_) => ("platform".into(), String::new(), "fees"),
            Account::World => ("world".into(), String::new(), "world"),
        }
    }

    fn may_go_negative(&self) -> bool {
        matches!(self, Account::World)
    }

    /// The fee shard a task's settlement books to.
    pub fn fees_for(task_id: &str) -> Account {
        let hash = task_id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        Account::Fees((hash % u32::from(FEE_SHARDS)) as u8)
    }
}

/// One business event to book.
#[derive(Debug, Clone, PartialEq)]
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

/// Books `entry` inside `tx`: a book of one entry (the same write path as a batch of task
/// settlements). Debits that would take a wallet below zero fail the whole entry with
/// `Insufficient`; the caller's transaction must then be rolled back (dropping it does).
pub async fn post(tx: &mut Tx, entry: Entry, now: i64) -> Result<String, LedgerError> {
    let mut book = Book::load(tx, entry.postings.iter().map(|(a, _)| a)).await?;
    book.post(entry)?;
    Ok(book.write(tx, now).await?.pop().unwrap_or_default())
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

/// The platform's fee income so far (every shard, and the single account of older databases).
pub async fn fees_collected(db: &crate::db::Db) -> sqlx::Result<Amount> {
    let (high, low): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM ledger_accounts WHERE owner_kind = 'platform' AND purpose = 'fees'",
        crate::db::exact_sum("balance")
    )))
    .fetch_one(db.pool())
    .await?;
    let total = crate::db::exact_total(high, low);
    Ok(i64::try_from(total).ok().and_then(Amount::from_units).unwrap_or(Amount::MAX))
}
