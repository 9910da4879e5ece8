//! The one write path of the ledger. A `Book` locks the accounts some entries touch (in a
//! fixed order), checks each entry in memory against the locked balances — balanced, no wallet
//! below zero, every balance within `MAX_BALANCE` — and writes all accepted entries with a
//! handful of statements: the journal rows (whose unique references make a second booking of
//! the same event fail), the postings, new accounts and one update for every balance.
//! A refused entry leaves the book as it was, so its neighbours in a batch are unaffected.

use std::collections::BTreeMap;

use super::{Account, Entry, LedgerError, MAX_BALANCE};
use crate::db::{Arg, Col, Engine, Rows, SqlBuilder, Tx};

#[derive(Debug, Clone)]
struct Held {
    account: Account,
    /// The balance with every posted entry applied.
    balance: i64,
    /// The change this book will write.
    delta: i64,
    /// Known to the database (else it is created on write).
    exists: bool,
    /// A posted entry moves money in or out of it (it must exist for its postings, even when
    /// the moves cancel out).
    touched: bool,
}

#[derive(Debug, Default)]
pub struct Book {
    accounts: BTreeMap<String, Held>,
    entries: Vec<Entry>,
}

impl Book {
    /// Locks and reads `accounts` (ordered by id, so concurrent books never deadlock).
    pub async fn load<'a>(tx: &mut Tx, accounts: impl IntoIterator<Item = &'a Account>) -> Result<Book, LedgerError> {
        let mut book = Book::default();
        for account in accounts {
            book.accounts.entry(account.id()).or_insert_with(|| Held {
                account: account.clone(),
                balance: 0,
                delta: 0,
                exists: false,
                touched: false,
            });
        }
        if book.accounts.is_empty() {
            return Ok(book);
        }
        let ids: Vec<String> = book.accounts.keys().cloned().collect();
        let q = Book::lock_statement(crate::db::engine_of(tx), &ids);
        let rows: Vec<(String, i64)> = q.query_as().fetch_all(&mut **tx).await?;
        for (id, balance) in rows {
            if let Some(held) = book.accounts.get_mut(&id) {
                held.balance = balance;
                held.exists = true;
            }
        }
        Ok(book)
    }

    /// The accounts `entries` touch, for `load`.
    /// The statement that reads and locks the accounts `ids` in id order (not run). `ids` must
    /// not be empty.
    pub fn lock_statement(engine: crate::db::Engine, ids: &[String]) -> SqlBuilder {
        let mut q = SqlBuilder::new("SELECT id, balance FROM ledger_accounts WHERE ");
        q.push_in(engine, "id", ids);
        q.push(&format!(" ORDER BY id{}", crate::db::for_update_on(engine)), []);
        q
    }

    pub fn accounts_of(entries: &[Entry]) -> Vec<Account> {
        entries.iter().flat_map(|e| e.postings.iter().map(|(a, _)| a.clone())).collect()
    }

    /// Checks `entry` against the balances and applies it in memory.
    pub fn post(&mut self, entry: Entry) -> Result<(), LedgerError> {
        self.post_all(vec![entry])
    }

    /// Checks and applies `entries` together: all of them, or (on an error) none.
    pub fn post_all(&mut self, entries: Vec<Entry>) -> Result<(), LedgerError> {
        let mut changes: BTreeMap<String, i64> = BTreeMap::new();
        for entry in &entries {
            if entry.postings.iter().map(|(_, a)| i128::from(*a)).sum::<i128>() != 0 {
                return Err(LedgerError::Unbalanced);
            }
            for (account, amount) in entry.postings.iter().filter(|(_, a)| *a != 0) {
                let id = account.id();
                let held = self.accounts.get(&id).ok_or_else(|| {
                    LedgerError::Db(sqlx::Error::Protocol(format!("account {id} was not loaded into the book")))
                })?;
                if amount.abs() > MAX_BALANCE {
                    return Err(LedgerError::BalanceLimit(id));
                }
                let change = changes.entry(id.clone()).or_insert(0);
                let after = held.balance + *change + amount;
                if after < 0 && !account.may_go_negative() {
                    return Err(LedgerError::Insufficient(id));
                }
                if !(-MAX_BALANCE..=MAX_BALANCE).contains(&after) {
                    return Err(LedgerError::BalanceLimit(id));
                }
                *change += amount;
            }
        }
        for (id, change) in changes {
            let held = self.accounts.get_mut(&id).expect("checked above");
            held.balance += change;
            held.delta += change;
            held.touched = true;
        }
        self.entries.extend(entries);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes every posted entry; returns their journal ids in order.
    pub async fn write(self, tx: &mut Tx, now: i64) -> Result<Vec<String>, LedgerError> {
        let Some(writes) = self.writes(crate::db::engine_of(tx), now) else {
            return Ok(Vec::new());
        };
        let mut journal = writes.journal;
        journal.push(" RETURNING reference", []);
        let booked: Vec<(String,)> = journal.query_as().fetch_all(&mut **tx).await?;
        if booked.len() != self.entries.len() {
            let missing = self.entries.iter().find(|e| !booked.iter().any(|(r,)| *r == e.reference));
            return Err(LedgerError::AlreadyBooked(missing.map(|e| e.reference.clone()).unwrap_or_default()));
        }
        crate::db::execute_all(tx, writes.rest).await?;
        Ok(writes.ids)
    }

    /// The statements that write every posted entry (`None` if there is none), for
    /// `db::execute_all` with the rest of a batch's writes.
    pub fn writes(&self, engine: Engine, now: i64) -> Option<Writes> {
        if self.entries.is_empty() {
            return None;
        }
        let ids: Vec<String> = self.entries.iter().map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let mut journal = Rows::new(JOURNAL);
        let mut postings = Rows::new(POSTING);
        for (entry, id) in self.entries.iter().zip(&ids) {
            let text = |v: &Option<String>| v.clone().map(Arg::Text).unwrap_or(Arg::NullText);
            journal.push([
                Arg::Text(id.clone()),
                Arg::Text(entry.kind.to_string()),
                Arg::Text(entry.reference.clone()),
                text(&entry.task_id),
                text(&entry.memo),
                Arg::Int(now),
            ]);
            for (account, amount) in entry.postings.iter().filter(|(_, a)| *a != 0) {
                postings.push([
                    Arg::Text(uuid::Uuid::now_v7().to_string()),
                    Arg::Text(id.clone()),
                    Arg::Text(account.id()),
                    Arg::Int(*amount),
                    Arg::Int(now),
                ]);
            }
        }
        // New accounts are created with their change (added to, should another transaction
        // have created one meanwhile); existing ones change in one statement.
        let mut created = Rows::new(NEW_ACCOUNT);
        let mut changed = Rows::new(BALANCE_CHANGE);
        for (id, held) in &self.accounts {
            if held.exists && held.delta != 0 {
                changed.push([Arg::Text(id.clone()), Arg::Int(held.delta)]);
            } else if !held.exists && held.touched {
                let (kind, owner, purpose) = held.account.owner();
                created.push([
                    Arg::Text(id.clone()),
                    Arg::Text(kind),
                    Arg::Text(owner),
                    Arg::Text(purpose.to_string()),
                    Arg::Int(held.delta),
                    Arg::Int(held.account.may_go_negative() as i64),
                    Arg::Int(now),
                ]);
            }
        }
        let mut rest = Vec::new();
        if !created.is_empty() {
            let mut q = SqlBuilder::insert_rows(engine, "ledger_accounts", &created);
            q.push(" ON CONFLICT (id) DO UPDATE SET balance = ledger_accounts.balance + excluded.balance", []);
            rest.push(q);
        }
        if !changed.is_empty() {
            let mut q = SqlBuilder::new("UPDATE ledger_accounts SET balance = ledger_accounts.balance + c.delta FROM ");
            q.push_rows(engine, &changed, "c");
            q.push(" WHERE ledger_accounts.id = c.id", []);
            rest.push(q);
        }
        // The postings last: they refer to the journal rows and to the accounts.
        if !postings.is_empty() {
            rest.push(SqlBuilder::insert_rows(engine, "postings", &postings));
        }
        Some(Writes { journal: SqlBuilder::insert_rows(engine, "journal_entries", &journal), rest, ids })
    }
}

/// What writes a book's entries (`Book::writes`).
pub struct Writes {
    /// The journal rows, one per entry. Its unique references make a second booking of the
    /// same event write fewer rows than there are entries (and the postings then fail their
    /// foreign key): the caller checks the count and gives the transaction up.
    pub journal: SqlBuilder,
    /// New accounts, balance changes and postings, in that order.
    pub rest: Vec<SqlBuilder>,
    /// The entries' journal ids, in order.
    pub ids: Vec<String>,
}

const JOURNAL: &[(&str, Col)] = &[
    ("id", Col::Text),
    ("kind", Col::Text),
    ("reference", Col::Text),
    ("task_id", Col::Text),
    ("memo", Col::Text),
    ("created_at", Col::Int),
];

const POSTING: &[(&str, Col)] = &[
    ("id", Col::Text),
    ("entry_id", Col::Text),
    ("account_id", Col::Text),
    ("amount", Col::Int),
    ("created_at", Col::Int),
];

const NEW_ACCOUNT: &[(&str, Col)] = &[
    ("id", Col::Text),
    ("owner_kind", Col::Text),
    ("owner_id", Col::Text),
    ("purpose", Col::Text),
    ("balance", Col::Int),
    ("allow_negative", Col::Int),
    ("created_at", Col::Int),
];

const BALANCE_CHANGE: &[(&str, Col)] = &[("id", Col::Text), ("delta", Col::Int)];
