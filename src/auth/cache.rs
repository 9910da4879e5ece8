//! What makes an authenticated request as cheap as an anonymous one: credentials verified in
//! the last moment are kept in memory, and key use (`last_used_at`, an agent's `last_seen_at`)
//! is written in batches instead of by the request.
//!
//! Revocation: a change committed by this process clears the cache at once (the database's
//! `credentials_epoch`); another server's change reaches this one when the entry expires, so
//! within `ttl` (2 s by default, `--key-cache-ttl-ms`). Expiry by time is checked on every
//! hit against the request's clock, so an expired key is refused at its instant.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Caller;
use crate::db::Db;

/// Entries beyond this are not kept: a flood of distinct keys must not grow memory.
const MAX_ENTRIES: usize = 100_000;

/// `last_used_at` is written at most this often per key and server.
const USE_INTERVAL_MS: i64 = 60_000;

struct Verified {
    caller: Caller,
    /// The earliest expiry of the key (and the session) behind it, in clock milliseconds.
    usable_until: Option<i64>,
    fetched: Instant,
    epoch: u64,
}

/// Verified credentials by the SHA-256 of the presented token.
pub struct VerifiedKeys {
    ttl: Duration,
    entries: Mutex<HashMap<String, Verified>>,
}

impl VerifiedKeys {
    pub fn new(ttl: Duration) -> VerifiedKeys {
        VerifiedKeys { ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// The caller verified for `token_hash`, if still fresh, still unexpired at `now` and not
    /// older than the last credential change (`epoch`) this process made.
    pub fn get(&self, token_hash: &str, now: i64, epoch: u64) -> Option<Caller> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let hit = entries.get(token_hash)?;
        let fresh = hit.epoch == epoch && hit.fetched.elapsed() < self.ttl;
        (fresh && hit.usable_until.is_none_or(|t| t > now)).then(|| hit.caller.clone())
    }

    /// Keeps a caller just verified; `epoch` must be read before the lookup that verified it,
    /// so a change committed during the lookup makes the entry stale at once.
    pub fn put(&self, token_hash: &str, caller: &Caller, usable_until: Option<i64>, epoch: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, v| v.epoch == epoch && v.fetched.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        let verified = Verified { caller: caller.clone(), usable_until, fetched: Instant::now(), epoch };
        entries.insert(token_hash.to_string(), verified);
    }
}

/// Which table a used key lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsedKey {
    User { key_id: String },
    Agent { key_id: String, agent_id: String },
}

#[derive(Default)]
struct Uses {
    /// Uses not yet written, with the time of the use.
    pending: Vec<(UsedKey, i64)>,
    /// When each key's use was last queued, to write at most once a minute.
    queued_at: HashMap<String, i64>,
}

/// Key use waiting to be written.
#[derive(Default)]
pub struct KeyUses {
    uses: Mutex<Uses>,
}

impl KeyUses {
    /// Notes a use at `now`; queued only when the key's last queued use is a minute old.
    pub fn record(&self, key: UsedKey, now: i64) {
        let id = match &key {
            UsedKey::User { key_id } | UsedKey::Agent { key_id, .. } => key_id,
        };
        let mut uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
        if uses.queued_at.get(id).is_some_and(|&t| now - t < USE_INTERVAL_MS) {
            return;
        }
        uses.queued_at.insert(id.clone(), now);
        uses.pending.push((key, now));
    }

    /// Writes every pending use: one statement per table. Run every second and before a page
    /// or list shows `last_used_at`.
    pub async fn flush(&self, db: &Db, now: i64) -> sqlx::Result<()> {
        let pending = {
            let mut uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
            // Entries a minute old no longer hold anything back.
            uses.queued_at.retain(|_, t| now - *t < USE_INTERVAL_MS);
            std::mem::take(&mut uses.pending)
        };
        if pending.is_empty() {
            return Ok(());
        }
        let (mut users, mut agent_keys, mut agents) = (Vec::new(), Vec::new(), Vec::new());
        for (key, at) in pending {
            match key {
                UsedKey::User { key_id } => users.push((key_id, at)),
                UsedKey::Agent { key_id, agent_id } => {
                    agent_keys.push((key_id, at));
                    agents.push((agent_id, at));
                }
            }
        }
        let result = async {
            set_latest(db, "user_api_keys", "id", "last_used_at", users).await?;
            set_latest(db, "agent_credentials", "id", "last_used_at", agent_keys).await?;
            // The discovery listing keeps a copy per capability, for sort_by=availability.
            set_latest(db, "agent_capabilities", "agent_id", "last_seen_at", agents.clone()).await?;
            set_latest(db, "agents", "id", "last_seen_at", agents).await
        }
        .await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "could not record key use");
        }
        result
    }
}

/// `UPDATE table SET column = CASE key WHEN … END WHERE key IN (…)`, never moving a time back.
async fn set_latest(db: &Db, table: &str, key: &str, column: &str, mut rows: Vec<(String, i64)>) -> sqlx::Result<()> {
    // One row per id (the latest use), in id order so concurrent flushes lock alike.
    rows.sort();
    rows.reverse();
    rows.dedup_by(|a, b| a.0 == b.0);
    rows.reverse();
    for chunk in rows.chunks(400) {
        let mut sql = format!("UPDATE {table} SET {column} = CASE {key}");
        for i in 0..chunk.len() {
            sql.push_str(&format!(" WHEN ${} THEN ${}", 2 * i + 1, 2 * i + 2));
        }
        sql.push_str(&format!(" END WHERE ({column} IS NULL OR {column} < CASE {key}"));
        for i in 0..chunk.len() {
            sql.push_str(&format!(" WHEN ${} THEN ${}", 2 * i + 1, 2 * i + 2));
        }
        sql.push_str(&format!(" END) AND {key} IN ("));
        let ids: Vec<String> = (0..chunk.len()).map(|i| format!("${}", 2 * i + 1)).collect();
        sql.push_str(&ids.join(", "));
        sql.push(')');
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, at) in chunk {
            query = query.bind(id.clone()).bind(*at);
        }
        query.execute(db.writer()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::caller::Credential;
    use crate::auth::scope::Scopes;

    fn caller() -> Caller {
        Caller {
            credential: Credential::UserKey { key_id: "k".into() },
            user: None,
            agent: None,
            scopes: Scopes::all(),
            max_price_per_hire: None,
        }
    }

    #[test]
    fn an_entry_lives_for_the_ttl_until_its_key_expires_or_the_epoch_moves() {
        let cache = VerifiedKeys::new(Duration::from_millis(200));
        cache.put("h", &caller(), Some(1_000), 7);
        assert!(cache.get("h", 999, 7).is_some());
        assert!(cache.get("h", 1_000, 7).is_none(), "the key expired at 1,000");
        assert!(cache.get("h", 10, 8).is_none(), "a credential changed since");
        assert!(cache.get("other", 10, 7).is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(cache.get("h", 10, 7).is_none(), "older than the ttl");
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = VerifiedKeys::new(Duration::ZERO);
        cache.put("h", &caller(), None, 0);
        assert!(cache.get("h", 0, 0).is_none());
    }

    #[test]
    fn a_key_is_queued_at_most_once_a_minute() {
        let uses = KeyUses::default();
        let key = || UsedKey::User { key_id: "k".into() };
        uses.record(key(), 0);
        uses.record(key(), 59_999);
        uses.record(key(), 60_000);
        let pending: Vec<i64> = uses.uses.lock().unwrap().pending.iter().map(|(_, t)| *t).collect();
        assert_eq!(pending, [0, 60_000]);
    }
}
