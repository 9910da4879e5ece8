//! Leases on the shared rate-limit counters, so a request does not cost a database write.
//!
//! A server takes a small share of a bucket's allowance at once (one twentieth of the limit,
//! 1 to 100 requests) by adding it to the shared counter, then spends it locally until it is
//! gone or the window ends. The counter never grants more than the limit in all, so several
//! servers together still allow at most the limit per window; a share left unspent on one
//! server can make another refuse up to `share − 1` requests early. Limits of 20 or less keep
//! counting every request in the database, exactly as before.

use std::collections::HashMap;
use std::sync::Mutex;

use super::rate_limit::{Decision, Rule, secs_until};
use crate::db::{Arg, Db, SqlBuilder};

/// Leases beyond this are not kept (a flood of distinct subjects must not grow memory).
const MAX_LEASES: usize = 100_000;

/// How many requests one database write takes for a bucket of `limit`.
fn share(limit: u32) -> u32 {
    (limit / 20).clamp(1, 100)
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    /// Requests this server may still allow without asking the database.
    left: u32,
    /// The shared count when the lease was taken, plus what this server spent since.
    used: u32,
    limit: u32,
    window_end: i64,
}

#[derive(Default)]
pub struct RateLeases {
    leases: Mutex<HashMap<String, Lease>>,
}

impl RateLeases {
    /// Counts one request against every rule and returns the tightest answer (as
    /// `rate_limit::hit` does), asking the database only for buckets without a live lease.
    pub async fn hit(&self, db: &Db, rules: &[Rule], now: i64) -> sqlx::Result<Decision> {
        let mut decisions = Vec::with_capacity(rules.len());
        let mut missing = Vec::new();
        {
            let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
            // Spend from leases only if every bucket has one, so a refusal spends nothing.
            let all_leased = rules
                .iter()
                .all(|r| leases.get(&r.bucket).is_some_and(|l| l.left > 0 && l.window_end > now && l.limit == r.limit));
            if all_leased {
                for rule in rules {
                    let lease = leases.get_mut(&rule.bucket).expect("checked above");
                    lease.left -= 1;
                    lease.used += 1;
                    decisions.push(decision(lease.used, lease.limit, lease.window_end, now));
                }
            } else {
                missing.extend(rules.iter().cloned());
            }
        }
        if !missing.is_empty() {
            decisions = self.take(db, &missing, now).await?;
        }
        Ok(tightest(decisions))
    }

    /// Takes a share of each bucket from the shared counters in one statement.
    async fn take(&self, db: &Db, rules: &[Rule], now: i64) -> sqlx::Result<Vec<Decision>> {
        let mut q = SqlBuilder::new("INSERT INTO rate_limit_counters (bucket, window_start, window_ms, hits) VALUES ");
        for (i, rule) in rules.iter().enumerate() {
            let row = [
                Arg::Text(rule.bucket.clone()),
                Arg::Int(now),
                Arg::Int(rule.window_ms),
                Arg::Int(share(rule.limit).into()),
            ];
            q.push(if i == 0 { "(?, ?, ?, ?)" } else { ", (?, ?, ?, ?)" }, row);
        }
        // The counter may pass the limit (refused shares count too); what is granted never does.
        // An expired window restarts with this share. SET expressions read the row as it was.
        q.push(
            " ON CONFLICT (bucket) DO UPDATE SET \
             hits = CASE WHEN rate_limit_counters.window_start + rate_limit_counters.window_ms <= excluded.window_start \
                    THEN excluded.hits ELSE rate_limit_counters.hits + excluded.hits END, \
             window_start = CASE WHEN rate_limit_counters.window_start + rate_limit_counters.window_ms <= excluded.window_start \
                    THEN excluded.window_start ELSE rate_limit_counters.window_start END, \
             window_ms = excluded.window_ms \
             RETURNING bucket, window_start, hits",
            [],
        );
        let rows: Vec<(String, i64, i64)> = q.query_as().fetch_all(db.writer()).await?;
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if leases.len() >= MAX_LEASES {
            leases.retain(|_, l| l.window_end > now && l.left > 0);
        }
        let mut decisions = Vec::with_capacity(rows.len());
        for (bucket, window_start, hits) in rows {
            let Some(rule) = rules.iter().find(|r| r.bucket == bucket) else { continue };
            let asked = i64::from(share(rule.limit));
            let before = (hits - asked).max(0);
            let granted = (i64::from(rule.limit) - before).clamp(0, asked) as u32;
            let window_end = window_start + rule.window_ms;
            let used = before.clamp(0, i64::from(u32::MAX)) as u32;
            if granted == 0 {
                decisions.push(Decision {
                    allowed: false,
                    limit: rule.limit,
                    remaining: 0,
                    reset_secs: secs_until(window_end, now),
                });
                leases.remove(&bucket);
                continue;
            }
            // This request spends one of the granted units; the rest are this server's lease.
            let lease = Lease { left: granted - 1, used: used + 1, limit: rule.limit, window_end };
            decisions.push(decision(lease.used, lease.limit, window_end, now));
            leases.insert(bucket, lease);
        }
        Ok(decisions)
    }
}

fn decision(used: u32, limit: u32, window_end: i64, now: i64) -> Decision {
    Decision {
        allowed: used <= limit,
        limit,
        remaining: limit.saturating_sub(used),
        reset_secs: secs_until(window_end, now),
    }
}

/// A refusing bucket if any (the one that frees last), else the one with the fewest left.
pub fn tightest(decisions: Vec<Decision>) -> Decision {
    let mut best: Option<Decision> = None;
    for d in decisions {
        best = Some(match best {
            None => d,
            Some(b) if !b.allowed && !d.allowed => {
                if d.reset_secs > b.reset_secs {
                    d
                } else {
                    b
                }
            }
            Some(b) if !b.allowed => b,
            Some(_) if !d.allowed => d,
            Some(b) => {
                if (d.remaining, d.limit) < (b.remaining, b.limit) {
                    d
                } else {
                    b
                }
            }
        });
    }
    best.unwrap_or(Decision { allowed: true, limit: 0, remaining: 0, reset_secs: 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_limits_count_every_request_and_large_ones_lease_a_twentieth() {
        assert_eq!(share(6), 1);
        assert_eq!(share(20), 1);
        assert_eq!(share(100), 5);
        assert_eq!(share(1_000_000), 100);
    }
}
