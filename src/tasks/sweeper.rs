//! Time-based transitions: releasing tasks whose review window passed and failing (with a
//! refund) tasks past their deadline, as engine commands (`ReleaseDue`, `ExpireDue`) decided on
//! the locked task, so any number of server processes may sweep at once and each task changes
//! exactly once; also drops idempotency records past their 24 hours.

use super::engine::{Command, Reply};
use super::model::Actor;
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
    // Submitted together, the commands share the engine's batches.
    let due = release.into_iter().map(|id| (id, Command::ReleaseDue)).chain(expire.into_iter().map(|id| (id, Command::ExpireDue)));
    let answers = futures_util::future::join_all(due.map(|(id, command)| async move {
        let expiring = matches!(command, Command::ExpireDue);
        (id.clone(), expiring, state.engine.act(&Actor::System, &id, command).await)
    }))
    .await;
    for (id, expiring, answer) in answers {
        match answer {
            Ok(done) if done.reply == Reply::Changed && expiring => report.expired.push(id),
            Ok(done) if done.reply == Reply::Changed => report.released.push(id),
            Ok(_) => {}
            Err(e) => tracing::warn!(task_id = %id, error = %e, "the sweeper could not settle a due task"),
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
