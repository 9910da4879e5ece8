//! Money over time, read from the postings (the ledger's truth) and the statement: a wallet's
//! balance, an agent's earnings per day, the platform's fee income and settled volume per day.
//! Sums are exact (`db::exact_sum`); times are bucketed by integer division of Unix ms, which
//! both engines do alike.

use super::{Account, FEE_SHARDS, Principal, Purpose};
use crate::db::{Arg, Db, SqlBuilder, exact_sum, exact_total};

pub const DAY_MS: i64 = 86_400_000;

/// A wallet's balance at one time: available, and total (available + escrow + pending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalancePoint {
    pub at: i64,
    pub available: i64,
    pub total: i64,
}

fn units(high: i64, low: i64) -> i64 {
    i64::try_from(exact_total(high, low)).unwrap_or(i64::MAX)
}

/// Per-bucket sums of `amount` on `accounts` from `since`: `(account, bucket, units)`.
async fn bucketed(db: &Db, accounts: &[String], since: i64, bucket_ms: i64) -> sqlx::Result<Vec<(String, i64, i64)>> {
    let mut q = SqlBuilder::default();
    q.push(
        &format!(
            "SELECT account_id, created_at / ? AS b, {} FROM postings WHERE created_at >= ? AND account_id IN (",
            exact_sum("amount")
        ),
        [Arg::Int(bucket_ms), Arg::Int(since)],
    );
    in_list(&mut q, accounts.iter().map(|a| Arg::Text(a.clone())).collect());
    q.push(") GROUP BY account_id, b ORDER BY b", []);
    let rows: Vec<(String, i64, i64, i64)> = q.query_as().fetch_all(db.pool()).await?;
    Ok(rows.into_iter().map(|(a, b, high, low)| (a, b, units(high, low))).collect())
}

/// When money first moved on `accounts` (`None` if it never did).
async fn first_movement(db: &Db, accounts: &[String]) -> sqlx::Result<Option<i64>> {
    let mut q = SqlBuilder::default();
    q.push("SELECT MIN(created_at) FROM postings WHERE account_id IN (", []);
    in_list(&mut q, accounts.iter().map(|a| Arg::Text(a.clone())).collect());
    q.push(")", []);
    let (first,): (Option<i64>,) = q.query_as().fetch_one(db.pool()).await?;
    Ok(first)
}

/// The wallet's balance from `since` (or from its first money, if later) to `now` in at most
/// `buckets` steps: the balance at the start, after each step in which it changed, and now.
pub async fn balance_series(
    db: &Db,
    principal: &Principal,
    since: i64,
    now: i64,
    buckets: i64,
) -> sqlx::Result<Vec<BalancePoint>> {
    let id = |p: Purpose| Account::Wallet(principal.clone(), p).id();
    let available = id(Purpose::Available);
    let accounts = [available.clone(), id(Purpose::Escrow), id(Purpose::Pending)];
    // Just before the first money, so a new wallet's chart starts at zero.
    let since = match first_movement(db, &accounts).await? {
        Some(first) if first - 1 > since => (first - 1).min(now),
        _ => since,
    };
    let bucket_ms = ((now - since) / buckets.max(1)).max(1);
    let rows = bucketed(db, &accounts, since, bucket_ms).await?;
    let current = super::balances(db, principal).await?;
    let (mut avail, mut total) = (current.available.units(), current.total().units());
    // Walk back from now: the balance at the end of each bucket, then before the first.
    let mut steps: Vec<(i64, i64, i64)> = Vec::new(); // (bucket, Δavailable, Δtotal)
    for (account, b, delta) in rows {
        let avail_delta = if account == available { delta } else { 0 };
        match steps.last_mut() {
            Some(last) if last.0 == b => {
                last.1 += avail_delta;
                last.2 += delta;
            }
            _ => steps.push((b, avail_delta, delta)),
        }
    }
    let mut points = vec![BalancePoint { at: now, available: avail, total }];
    for (b, d_avail, d_total) in steps.iter().rev() {
        points.push(BalancePoint { at: ((b + 1) * bucket_ms).min(now), available: avail, total });
        avail -= d_avail;
        total -= d_total;
        points.push(BalancePoint { at: (b * bucket_ms).max(since), available: avail, total });
    }
    points.push(BalancePoint { at: since, available: avail, total });
    points.reverse();
    points.dedup();
    Ok(points)
}

/// `(day start, units)` for each of the `days` days up to today (UTC), zero when nothing.
fn per_day(rows: Vec<(i64, i64, i64)>, now: i64, days: i64) -> Vec<(i64, i64)> {
    let today = now.div_euclid(DAY_MS);
    (today - days + 1..=today)
        .map(|d| {
            let sum = rows.iter().filter(|r| r.0 == d).map(|r| units(r.1, r.2)).sum();
            (d * DAY_MS, sum)
        })
        .collect()
}

fn window_start(now: i64, days: i64) -> i64 {
    (now.div_euclid(DAY_MS) - days + 1) * DAY_MS
}

/// What an agent earned each day (its `earning` statement lines) over the last `days` days.
pub async fn earnings_per_day(db: &Db, agent_id: &str, now: i64, days: i64) -> sqlx::Result<Vec<(i64, i64)>> {
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT created_at / $1 AS d, {} FROM wallet_transactions \
         WHERE principal = $2 AND type = 'earning' AND created_at >= $3 GROUP BY d",
        exact_sum("amount")
    )))
    .bind(DAY_MS)
    .bind(Principal::Agent(agent_id.to_string()).key())
    .bind(window_start(now, days))
    .fetch_all(db.pool())
    .await?;
    Ok(per_day(rows, now, days))
}

/// The platform's fee accounts: every shard, and the single account of older databases.
fn fee_accounts() -> Vec<Arg> {
    let mut ids: Vec<Arg> = (0..FEE_SHARDS).map(|s| Arg::Text(Account::Fees(s).id())).collect();
    ids.push(Arg::Text("platform:fees".into()));
    ids
}

fn in_list(q: &mut SqlBuilder, args: Vec<Arg>) {
    for (i, a) in args.into_iter().enumerate() {
        q.push(if i == 0 { "?" } else { ", ?" }, [a]);
    }
}

/// Per day over the last `days` days: the fees booked, and the volume settled with a fee (what
/// clients paid for released or split work: every credit of a settlement that paid a fee).
pub async fn fees_and_volume_per_day(db: &Db, now: i64, days: i64) -> sqlx::Result<(Vec<(i64, i64)>, Vec<(i64, i64)>)> {
    let since = window_start(now, days);
    let mut fees = SqlBuilder::default();
    fees.push(
        &format!(
            "SELECT created_at / ? AS d, {} FROM postings WHERE created_at >= ? AND account_id IN (",
            exact_sum("amount")
        ),
        [Arg::Int(DAY_MS), Arg::Int(since)],
    );
    in_list(&mut fees, fee_accounts());
    fees.push(") GROUP BY d", []);
    let mut volume = SqlBuilder::default();
    volume.push(
        &format!(
            "SELECT f.created_at / ? AS d, {} FROM postings f JOIN postings q ON q.entry_id = f.entry_id AND q.amount > 0 \
             WHERE f.created_at >= ? AND f.amount > 0 AND f.account_id IN (",
            exact_sum("q.amount")
        ),
        [Arg::Int(DAY_MS), Arg::Int(since)],
    );
    in_list(&mut volume, fee_accounts());
    volume.push(") GROUP BY d", []);
    let fee_rows: Vec<(i64, i64, i64)> = fees.query_as().fetch_all(db.pool()).await?;
    let volume_rows: Vec<(i64, i64, i64)> = volume.query_as().fetch_all(db.pool()).await?;
    Ok((per_day(fee_rows, now, days), per_day(volume_rows, now, days)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_without_rows_are_zero_and_the_window_ends_today() {
        let now = 10 * DAY_MS + 5;
        let rows = vec![(10, 0, 7), (8, 1, 0)];
        let days = per_day(rows, now, 3);
        assert_eq!(days, vec![(8 * DAY_MS, 100_000_000), (9 * DAY_MS, 0), (10 * DAY_MS, 7)]);
        assert_eq!(window_start(now, 3), 8 * DAY_MS);
    }
}
