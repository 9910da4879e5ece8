//! Time-based transitions: releasing tasks whose review window passed and failing (with a
//! refund) tasks past their deadline; also drops idempotency records past their 24 hours. It uses the same conditional transitions as the API, so
//! any number of server processes may sweep at once: each task changes exactly once.

use super::lifecycle;
use super::store;
use crate::state::AppState;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub released: Vec<String>,
    pub expired: Vec<String>,
    pub purged_idempotency_keys: u64,
}

const BATCH: i64 = 200;

/// One pass at the state's clock time.
pub async fn run_once(state: &AppState) -> anyhow::Result<SweepReport> {
    let now = state.now();
    let (release, expire) = store::due(&state.db, now, BATCH).await?;
    let mut report = SweepReport::default();
    for id in release {
        match lifecycle::release_due(&state.db, &id, now).await {
            Ok(Some(_)) => report.released.push(id),
            Ok(None) => {}
            Err(e) => tracing::warn!(task_id = %id, error = %e, "could not release a reviewed task"),
        }
    }
    for id in expire {
        match lifecycle::expire_due(&state.db, &id, now).await {
            Ok(Some(_)) => report.expired.push(id),
            Ok(None) => {}
            Err(e) => tracing::warn!(task_id = %id, error = %e, "could not expire an overdue task"),
        }
    }
    match crate::http::idempotency::purge_expired(&state.db, now).await {
        Ok(n) => report.purged_idempotency_keys = n,
        Err(e) => tracing::warn!(error = %e, "could not purge expired idempotency keys"),
    }
    if !report.released.is_empty() || !report.expired.is_empty() {
        tracing::info!(released = report.released.len(), expired = report.expired.len(), "sweeper pass");
    }
    Ok(report)
}
