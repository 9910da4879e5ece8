//! The one write path of the ledger. A `Book` locks the accounts some entries touch (in a
//! fixed order), checks each entry in memory against the locked balances — balanced, no wallet
//! below zero, every balance within `MAX_BALANCE` — and writes all accepted entries with a
//! handful of statements: the journal rows (whose unique references make a second booking of
//! the same event fail), the postings, new accounts and one update for every balance.
//! A refused entry leaves the book as it was, so its neighbours in a batch are unaffected.

use std::collections::BTreeMap;

use super::{Account, Entry, LedgerError, MAX_BALANCE};
use crate::db::{Arg, SqlBuilder, Tx};

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
        let mut q = SqlBuilder::new("SELECT id, balance FROM ledger_accounts WHERE id IN (");
        for (i, id) in book.accounts.keys().enumerate() {
            q.push(if i == 0 { "?" } else { ", ?" }, [Arg::Text(id.clone())]);
        }
        q.push(&format!(") ORDER BY id{}", crate::db::for_update_in(tx)), []);
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
        if self.entries.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = self.entries.iter().map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let mut journal = SqlBuilder::new(
            "INSERT INTO journal_entries (id, kind, reference, task_id, memo, created_at) VALUES ",
        );
        let mut postings =
            SqlBuilder::new("INSERT INTO postings (id, entry_id, account_id, amount, created_at) VALUES ");
        let mut first_posting = true;
        for (i, (entry, id)) in self.entries.iter().zip(&ids).enumerate() {
            let text = |v: &Option<String>| v.clone().map(Arg::Text).unwrap_or(Arg::NullText);
            let row = [
                Arg::Text(id.clone()),
                Arg::Text(entry.kind.to_string()),
                Arg::Text(entry.reference.clone()),
                text(&entry.task_id),
                text(&entry.memo),
                Arg::Int(now),
            ];
            journal.push(if i == 0 { "(?, ?, ?, ?, ?, ?)" } else { ", (?, ?, ?, ?, ?, ?)" }, row);
            for (account, amount) in entry.postings.iter().filter(|(_, a)| *a != 0) {
                let row = [
                    Arg::Text(uuid::Uuid::now_v7().to_string()),
                    Arg::Text(id.clone()),
                    Arg::Text(account.id()),
                    Arg::Int(*amount),
                    Arg::Int(now),
                ];
                postings.push(if first_posting { "(?, ?, ?, ?, ?)" } else { ", (?, ?, ?, ?, ?)" }, row);
                first_posting = false;
            }
        }
        journal.push(" ON CONFLICT (reference) DO NOTHING RETURNING reference", []);
        let booked: Vec<(String,)> = journal.query_as().fetch_all(&mut **tx).await?;
        if booked.len() != self.entries.len() {
            let missing = self.entries.iter().find(|e| !booked.iter().any(|(r,)| *r == e.reference));
            return Err(LedgerError::AlreadyBooked(missing.map(|e| e.reference.clone()).unwrap_or_default()));
        }
        // New accounts are created with their change (added to, should another transaction
        // have created one meanwhile); existing ones change in one statement.
        let mut created = SqlBuilder::new(
            "INSERT INTO ledger_accounts (id, owner_kind, owner_id, purpose, balance, allow_negative, created_at) VALUES ",
        );
        let mut update_case = SqlBuilder::new("UPDATE ledger_accounts SET balance = balance + CASE id");
        let mut update_ids: Vec<String> = Vec::new();
        let mut any_created = false;
        for (id, held) in &self.accounts {
            if held.delta == 0 && held.exists {
                continue;
            }
            if held.exists {
                update_case.push(" WHEN ? THEN ?", [Arg::Text(id.clone()), Arg::Int(held.delta)]);
                update_ids.push(id.clone());
            } else if held.touched {
                let (kind, owner, purpose) = held.account.owner();
                let row = [
                    Arg::Text(id.clone()),
                    Arg::Text(kind),
                    Arg::Text(owner),
                    Arg::Text(purpose.to_string()),
                    Arg::Int(held.delta),
                    Arg::Int(held.account.may_go_negative() as i64),
                    Arg::Int(now),
                ];
                created.push(if any_created { ", (?, ?, ?, ?, ?, ?, ?)" } else { "(?, ?, ?, ?, ?, ?, ?)" }, row);
                any_created = true;
            }
        }
        if any_created {
            created.push(
                " ON CONFLICT (id) DO UPDATE SET balance = ledger_accounts.balance + excluded.balance",
                [],
            );
            created.query().execute(&mut **tx).await?;
        }
        if !update_ids.is_empty() {
            update_case.push(" ELSE 0 END WHERE id IN (", []);
            for (i, id) in update_ids.iter().enumerate() {
                update_case.push(if i == 0 { "?" } else { ", ?" }, [Arg::Text(id.clone())]);
            }
            update_case.push(")", []);
            update_case.query().execute(&mut **tx).await?;
        }
        // The postings last: they refer to the journal rows and to the accounts.
        if !first_posting {
            postings.query().execute(&mut **tx).await?;
        }
        Ok(ids)
    }
}
