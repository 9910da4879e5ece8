//! The task state machine after creation: claim, progress, complete, fail, cancel, accept,
//! reassign, and the settlements they cause. Every transition locks the task row, checks the
//! actor and the state, changes the row conditionally, books the money and appends the event
//! in one transaction.

use serde_json::json;

use super::model::{ACTIVE, Actor, TaskRow};
use super::{Settings, escrow_locked, output_digest, store};
use crate::agents;
use crate::agents::store::Outcome;
use crate::db::{Arg, Db, Tx};
use crate::error::{ApiError, ApiResult};
use crate::ledger::statement::{self, Line};
use crate::ledger::{self, Account, Entry, Purpose};
use crate::money::{Amount, Settlement};

/// Opens the transaction and locks the task, checking the actor may see it.
async fn begin(db: &Db, actor: &mut Actor, id: &str) -> ApiResult<(Tx, TaskRow)> {
    let mut tx = db.begin().await?;
    let task = store::lock(db, &mut tx, id).await?.ok_or_else(|| ApiError::not_found("task"))?;
    actor.learn_ownership(&mut tx, &task).await?;
    let allowed = matches!(actor, Actor::System | Actor::Admin) || actor.is_participant(&task) || actor.is_admin();
    if !allowed {
        return Err(ApiError::not_found("task"));
    }
    Ok((tx, task))
}

fn require_provider(actor: &Actor, task: &TaskRow) -> ApiResult<()> {
    if actor.is_provider(task) { Ok(()) } else { Err(ApiError::forbidden("only the provider agent may do this")) }
}

fn require_client(actor: &Actor, task: &TaskRow) -> ApiResult<()> {
    if actor.is_client(task) { Ok(()) } else { Err(ApiError::forbidden("only the client may do this")) }
}

fn not_locked(task: &TaskRow) -> ApiResult<()> {
    if task.payment_status == "disputed" { Err(escrow_locked()) } else { Ok(()) }
}

fn wrong_state(action: &str, task: &TaskRow) -> ApiError {
    ApiError::invalid_state(format!("a {} task cannot be {action}", task.status.replace('_', " ")), &task.status)
}

/// Applies a conditional update or reports the state that prevented it.
async fn apply(
    tx: &mut Tx,
    task: &TaskRow,
    from: &[&str],
    payment: &[&str],
    set: &str,
    args: Vec<Arg>,
    action: &str,
) -> ApiResult<TaskRow> {
    store::update_if(tx, &task.id, from, payment, set, args).await?.ok_or_else(|| wrong_state(action, task))
}

pub async fn claim(db: &Db, actor: &mut Actor, id: &str, now: i64) -> ApiResult<TaskRow> {
    let (mut tx, task) = begin(db, actor, id).await?;
    require_provider(actor, &task)?;
    not_locked(&task)?;
    if task.status == "pending" && task.payment_status == "unpaid" {
        return Err(ApiError::conflict("the task is not funded yet")
            .with_details([json!({"field": "payment_status", "current": "unpaid"})]));
    }
    let set = "status = 'claimed', claimed_at = ?, updated_at = ?";
    let updated = apply(
        &mut tx,
        &task,
        &["pending"],
        &["escrowed", "not_required"],
        set,
        vec![Arg::Int(now), Arg::Int(now)],
        "claimed",
    )
    .await?;
    store::event(&mut tx, id, "task_claimed", None, json!({"provider_agent_id": task.provider_agent_id}), now).await?;
    super::notify(&mut tx, &updated, "task.claimed", now).await?;
    let task = updated;
    tx.commit().await?;
    Ok(task)
}

pub async fn progress(
    db: &Db,
    actor: &mut Actor,
    id: &str,
    percent: i64,
    message: Option<String>,
    now: i64,
) -> ApiResult<TaskRow> {
    let (mut tx, task) = begin(db, actor, id).await?;
    require_provider(actor, &task)?;
    let set = "status = 'in_progress', progress_percent = ?, progress_message = ?, updated_at = ?";
    let msg = message.clone().map(Arg::Text).unwrap_or(Arg::NullText);
    let updated = apply(
        &mut tx,
        &task,
        &["claimed", "in_progress"],
        &[],
        set,
        vec![Arg::Int(percent), msg, Arg::Int(now)],
        "updated",
    )
    .await?;
    store::event(&mut tx, id, "task_progress", Some((percent, message.as_deref())), json!({}), now).await?;
    super::notify(&mut tx, &updated, "task.in_progress", now).await?;
    let task = updated;
    tx.commit().await?;
    Ok(task)
}

/// Stores the output and starts the review window; the held money moves to the provider's
/// `pending`. With a zero window the task is released at once.
pub async fn complete(
    db: &Db,
    actor: &mut Actor,
    id: &str,
    output: serde_json::Value,
    settings: Settings,
    now: i64,
) -> ApiResult<TaskRow> {
    let (mut tx, task) = begin(db, actor, id).await?;
    require_provider(actor, &task)?;
    not_locked(&task)?;
    let text = output.to_string();
    let digest = output_digest(&text);
    let review_until = now + settings.review_window_ms;
    let set = "status = 'completed', output = ?, output_sha256 = ?, progress_percent = 100, completed_at = ?, \
               review_until = ?, claimed_at = COALESCE(claimed_at, ?), updated_at = ?";
    let args = vec![
        Arg::Text(text),
        Arg::Text(digest.clone()),
        Arg::Int(now),
        Arg::Int(review_until),
        Arg::Int(now),
        Arg::Int(now),
    ];
    let updated = apply(
        &mut tx,
        &task,
        &["pending", "claimed", "in_progress"],
        &["escrowed", "not_required"],
        set,
        args,
        "completed",
    )
    .await?;
    if task.funds_held() {
        ledger::post(
            &mut tx,
            Entry {
                kind: "escrow_to_pending",
                reference: format!("task:{}:complete", task.id),
                task_id: Some(task.id.clone()),
                memo: None,
                postings: vec![
                    (Account::Wallet(task.client(), Purpose::Escrow), -task.price),
                    (Account::Wallet(task.provider(), Purpose::Pending), task.price),
                ],
            },
            now,
        )
        .await?;
    }
    store::event(&mut tx, id, "task_completed", None, json!({"output_sha256": digest}), now).await?;
    let mut task = updated;
    if settings.review_window_ms == 0 {
        task = release(&mut tx, task, None, "released at completion (no review window)", now).await?;
    }
    super::notify(&mut tx, &task, "task.completed", now).await?;
    tx.commit().await?;
    Ok(task)
}

pub async fn fail(db: &Db, actor: &mut Actor, id: &str, reason: String, now: i64) -> ApiResult<TaskRow> {
    let (mut tx, task) = begin(db, actor, id).await?;
    if !matches!(actor, Actor::System) {
        require_provider(actor, &task)?;
    }
    not_locked(&task)?;
    let set = "status = 'failed', error_reason = ?, updated_at = ?";
    let updated =
        apply(&mut tx, &task, ACTIVE, &[], set, vec![Arg::Text(reason.clone()), Arg::Int(now)], "failed").await?;
    store::event(&mut tx, id, "task_failed", None, json!({"error_reason": reason}), now).await?;
    agents::store::record_outcome(&mut tx, &task.provider_agent_id, Outcome { failed: 1, ..Outcome::default() }, now)
        .await?;
    let mut task = updated;
    if task.funds_held() {
        let refund = Settlement::refund(task.price());
        task = settle(&mut tx, task, refund, "refunded", now).await?;
    }
    super::notify(&mut tx, &task, "task.failed", now).await?;
    tx.commit().await?;
    Ok(task)
}

pub async fn cancel(db: &Db, actor: &mut Actor, id: &str, now: i64) -> ApiResult<TaskRow> {
    let (mut tx, task) = begin(db, actor, id).await?;
    require_client(actor, &task)?;
    not_locked(&task)?;
    let updated =
        apply(&mut tx, &task, ACTIVE, &[], "status = 'cancelled', updated_at = ?", vec![Arg::Int(now)], "cancelled")
            .await?;
    store::event(&mut tx, id, "task_cancelled", None, json!({}), now).await?;
    let mut task = updated;
    if task.funds_held() {
        let refund = Settlement::refund(task.price());
        task = settle(&mut tx, task, refund, "refunded", now).await?;
    }
    super::notify(&mut tx, &task, "task.cancelled", now).await?;
    tx.commit().await?;
    Ok(task)
}

/// The client accepts the result: releases now, with an optional rating (1–5) and review.
pub async fn accept(
    db: &Db,
    actor: &mut Actor,
    id: &str,
    rating: Option<i64>,
    review: Option<String>,
    now: i64,
) -> ApiResult<TaskRow> {
    let (mut tx, task) = begin(db, actor, id).await?;
    require_client(actor, &task)?;
    not_locked(&task)?;
    if task.status != "completed"
        || !matches!(task.payment_status.as_str(), "escrowed" | "not_required")
        || task.released_at.is_some()
    {
        return Err(wrong_state("accepted", &task));
    }
    let set = "rating = ?, review = ?, updated_at = ?";
    let args = vec![
        rating.map(Arg::Int).unwrap_or(Arg::NullInt),
        review.clone().map(Arg::Text).unwrap_or(Arg::NullText),
        Arg::Int(now),
    ];
    let updated = apply(&mut tx, &task, &["completed"], &["escrowed", "not_required"], set, args, "accepted").await?;
    store::event(&mut tx, id, "task_accepted", None, json!({"rating": rating, "review": review}), now).await?;
    let task = updated;
    let task = release(&mut tx, task, rating, "accepted by the client", now).await?;
    tx.commit().await?;
    Ok(task)
}

/// Releases a completed task whose review window has passed (the sweeper). `Ok(None)` when it
/// is no longer due (another process got there first, or a dispute opened).
pub async fn release_due(db: &Db, id: &str, now: i64) -> ApiResult<Option<TaskRow>> {
    let mut tx = db.begin().await?;
    let Some(task) = store::lock(db, &mut tx, id).await? else { return Ok(None) };
    let due = task.status == "completed"
        && matches!(task.payment_status.as_str(), "escrowed" | "not_required")
        && task.released_at.is_none()
        && task.review_until.is_some_and(|t| t <= now);
    if !due {
        return Ok(None);
    }
    store::event(&mut tx, id, "review_window_elapsed", None, json!({}), now).await?;
    let task = release(&mut tx, task, None, "review window elapsed", now).await?;
    tx.commit().await?;
    Ok(Some(task))
}

/// Fails and refunds a task past its deadline (the sweeper); `Ok(None)` when no longer due.
pub async fn expire_due(db: &Db, id: &str, now: i64) -> ApiResult<Option<TaskRow>> {
    let Some(task) = store::find(db, id).await? else { return Ok(None) };
    if !ACTIVE.contains(&task.status.as_str())
        || task.payment_status == "disputed"
        || task.deadline_at.is_none_or(|d| d > now)
    {
        return Ok(None);
    }
    match fail(db, &mut Actor::System, id, "the deadline passed".into(), now).await {
        Ok(task) => Ok(Some(task)),
        Err(e) if e.code() == "CONFLICT" || e.code() == "ESCROW_LOCKED" => Ok(None),
        Err(e) => Err(e),
    }
}

/// Pays a completed task out: the provider gets price − fee, the platform the fee.
async fn release(tx: &mut Tx, task: TaskRow, rating: Option<i64>, why: &str, now: i64) -> ApiResult<TaskRow> {
    let outcome = Outcome { completed: 1, rating, ..Outcome::default() };
    agents::store::record_outcome(tx, &task.provider_agent_id, outcome, now).await?;
    if task.payment_status == "not_required" {
        let set = "released_at = ?, updated_at = ?";
        let updated =
            apply(tx, &task, &["completed"], &["not_required"], set, vec![Arg::Int(now), Arg::Int(now)], "released")
                .await?;
        store::event(tx, &task.id, "task_released", None, json!({"reason": why}), now).await?;
        return Ok(updated);
    }
    let price = Amount::from_units(task.price).unwrap_or_default();
    let fee_bps = task.fee_bps;
    // `payment_released` on the timeline records it; the preceding event says why.
    settle(tx, task, Settlement::release(price, fee_bps), "released", now).await
}

/// Moves the held money to where `settlement` says, once (`task:<id>:settle` is unique), and
/// marks the task with `payment_status`.
pub(crate) async fn settle(
    tx: &mut Tx,
    task: TaskRow,
    settlement: Settlement,
    payment_status: &str,
    now: i64,
) -> ApiResult<TaskRow> {
    let source = if task.funds_in_pending() {
        Account::Wallet(task.provider(), Purpose::Pending)
    } else {
        Account::Wallet(task.client(), Purpose::Escrow)
    };
    let set = "payment_status = ?, released_at = ?, updated_at = ?";
    let args = vec![Arg::Text(payment_status.to_string()), Arg::Int(now), Arg::Int(now)];
    let updated = apply(tx, &task, &[], &["escrowed", "disputed"], set, args, "settled").await?;
    ledger::post(
        tx,
        Entry {
            kind: match payment_status {
                "released" => "escrow_release",
                "refunded" => "escrow_refund",
                _ => "escrow_split",
            },
            reference: format!("task:{}:settle", task.id),
            task_id: Some(task.id.clone()),
            memo: None,
            postings: vec![
                (source, -settlement.held.units()),
                (Account::Wallet(task.provider(), Purpose::Available), settlement.to_provider.units()),
                (Account::Fees, settlement.fee.units()),
                (Account::Wallet(task.client(), Purpose::Available), settlement.to_client.units()),
            ],
        },
        now,
    )
    .await?;
    let (client, provider) = (task.client(), task.provider());
    let mut lines: Vec<Line> = Vec::new();
    let line = |principal, kind, amount: Amount, description: String| Line {
        id: None,
        principal,
        kind,
        amount,
        status: "completed",
        task_id: Some(&task.id),
        reference: None,
        description,
    };
    if !settlement.to_client.is_zero() {
        lines.push(line(&client, "escrow_refund", settlement.to_client, format!("refund for task {}", task.id)));
    }
    let paid_out = settlement.held.units() - settlement.to_client.units();
    if paid_out > 0 {
        let amount = Amount::from_units(paid_out).unwrap_or_default();
        lines.push(line(&client, "escrow_release", amount, format!("paid for task {}", task.id)));
        lines.push(line(&provider, "earning", settlement.to_provider, format!("earning for task {}", task.id)));
        if !settlement.fee.is_zero() {
            lines.push(line(
                &provider,
                "platform_fee",
                settlement.fee,
                format!("{} bps platform fee on task {}", task.fee_bps, task.id),
            ));
        }
    }
    statement::record_all(tx, lines, now).await?;
    let event = if payment_status == "refunded" { "payment_refunded" } else { "payment_released" };
    let details =
        json!({"to_provider": settlement.to_provider, "fee": settlement.fee, "to_client": settlement.to_client});
    store::event(tx, &task.id, event, None, details, now).await?;
    if payment_status != "refunded" {
        super::notify(tx, &updated, "payment.confirmed", now).await?;
    }
    metrics::counter!("agentmarket_settlements_total", "kind" => payment_status.to_string()).increment(1);
    Ok(updated)
}

/// Moves an unfinished task to another provider; the escrow stays.
pub async fn reassign(
    db: &Db,
    actor: &mut Actor,
    id: &str,
    new_provider: &str,
    now: i64,
) -> ApiResult<(TaskRow, String)> {
    let provider = agents::store::find(db, new_provider)
        .await?
        .filter(|a| a.status != "deleted")
        .ok_or_else(|| ApiError::not_found("provider agent"))?;
    let (mut tx, task) = begin(db, actor, id).await?;
    require_client(actor, &task)?;
    not_locked(&task)?;
    if provider.status != "active" {
        return Err(super::agent_unavailable("the new provider agent is not active"));
    }
    if task.client_agent_id.as_deref() == Some(provider.id.as_str()) {
        return Err(ApiError::field("provider_agent_id", "an agent cannot hire itself"));
    }
    if !provider.capabilities().contains(&task.capability) {
        return Err(ApiError::field("provider_agent_id", "the new provider does not offer this task's capability"));
    }
    let set = "provider_agent_id = ?, provider_agent_did = ?, status = 'pending', claimed_at = NULL, progress_percent = 0, \
               progress_message = NULL, updated_at = ?";
    let args = vec![Arg::Text(provider.id.clone()), Arg::Text(provider.did.clone()), Arg::Int(now)];
    let updated = apply(&mut tx, &task, ACTIVE, &[], set, args, "reassigned").await?;
    let details = json!({"previous_agent_id": task.provider_agent_id, "previous_agent_did": task.provider_agent_did, "new_agent_id": provider.id});
    store::event(&mut tx, id, "task_reassigned", None, details, now).await?;
    tx.commit().await?;
    Ok((updated, task.provider_agent_did))
}
