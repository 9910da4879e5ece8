//! The commands the engine decides, built by one constructor each that validates the caller's
//! input (the API, the dashboard and MCP share them, so a rule cannot differ between them).

use crate::agents::model::AgentRow;
use crate::error::{ApiError, ApiResult, FieldError};

/// A dispute ruling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ruling {
    Refund,
    Release,
    Split,
}

impl Ruling {
    pub fn as_str(self) -> &'static str {
        match self {
            Ruling::Refund => "refund",
            Ruling::Release => "release",
            Ruling::Split => "split",
        }
    }

    pub fn parse(s: &str) -> Option<Ruling> {
        match s.trim().to_ascii_lowercase().as_str() {
            "refund" => Some(Ruling::Refund),
            "release" => Some(Ruling::Release),
            "split" => Some(Ruling::Split),
            _ => None,
        }
    }
}

/// A change to an existing task. Fields marked "filled by the batch" are looked up by the
/// engine, in the transaction that decides the command.
#[derive(Debug, Clone)]
pub enum Command {
    /// Client: hold the escrow of an unpaid task.
    Pay {
        payment_id: String,
    },
    /// Provider: take a funded (or free) pending task.
    Claim,
    Progress {
        percent: i64,
        message: Option<String>,
    },
    /// Provider: deliver; the money moves to the provider's pending and the review window starts
    /// (a zero window releases at once).
    Complete {
        output: String,
        output_sha256: String,
        review_window_ms: i64,
    },
    /// Provider (or the server): give up; the escrow is refunded.
    Fail {
        reason: String,
    },
    /// Client: stop an unfinished task; the escrow is refunded.
    Cancel,
    /// Provider: stream partial output while the work runs (the chunk is stored beside the
    /// task; the task itself does not change).
    EmitChunk,
    /// Client: release now, with an optional rating and review.
    Accept {
        rating: Option<i64>,
        review: Option<String>,
    },
    /// The sweeper: release a completed task whose review window has passed.
    ReleaseDue,
    /// The sweeper: fail (and refund) an unfinished task past its deadline.
    ExpireDue,
    /// Client: move an unfinished task to another provider (`to` filled by the batch from
    /// `to_ref`; `None` when no such agent).
    Reassign {
        to_ref: String,
        to: Option<Box<AgentRow>>,
    },
    /// The server: a queued hiring's availability probe answered (or did not).
    Probe {
        available: bool,
    },
    /// Client: re-dispatch an unfinished hiring.
    Retry {
        reason: Option<String>,
    },
    /// Client: open a dispute (`existing` filled by the batch).
    OpenDispute {
        dispute_id: String,
        reason: String,
        existing: bool,
    },
    /// Administrator: rule on the task's dispute (`dispute_id` and `open` filled by the batch).
    Rule {
        dispute_id: String,
        open: bool,
        outcome: Ruling,
        client_share_bps: Option<i64>,
        note: Option<String>,
    },
}

fn required_text(field: &str, value: Option<String>, max: usize) -> Result<String, FieldError> {
    let v = value.map(|v| v.trim().to_string()).unwrap_or_default();
    if v.is_empty() || v.chars().count() > max {
        return Err(FieldError::new(field, format!("is required, at most {max} characters")));
    }
    Ok(v)
}

fn validated(errors: Vec<FieldError>, command: Command) -> ApiResult<Command> {
    if errors.is_empty() { Ok(command) } else { Err(ApiError::validation(errors)) }
}

impl Command {
    pub fn pay() -> Command {
        Command::Pay { payment_id: uuid::Uuid::now_v7().to_string() }
    }

    pub fn progress(percent: Option<i64>, message: Option<String>) -> ApiResult<Command> {
        let mut errors = Vec::new();
        let percent = percent.unwrap_or(-1);
        if !(0..=100).contains(&percent) {
            errors.push(FieldError::new("progress_percent", "is required, an integer from 0 to 100"));
        }
        if message.as_ref().is_some_and(|m| m.chars().count() > 1000) {
            errors.push(FieldError::new("progress_message", "must be at most 1000 characters"));
        }
        validated(errors, Command::Progress { percent, message })
    }

    /// `output` is any JSON value but null; it is stored as its JSON text with its SHA-256.
    pub fn complete(output: Option<serde_json::Value>, review_window_ms: i64) -> ApiResult<Command> {
        let output = output.filter(|o| !o.is_null()).ok_or_else(|| ApiError::field("output", "is required"))?;
        let text = output.to_string();
        Ok(Command::Complete { output_sha256: crate::tasks::output_digest(&text), output: text, review_window_ms })
    }

    pub fn fail(reason: Option<String>) -> ApiResult<Command> {
        let reason = reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
        let reason = reason.ok_or_else(|| ApiError::field("error_reason", "is required"))?;
        if reason.chars().count() > 2000 {
            return Err(ApiError::field("error_reason", "must be at most 2000 characters"));
        }
        Ok(Command::Fail { reason })
    }

    pub fn accept(rating: Option<i64>, review: Option<String>) -> ApiResult<Command> {
        let mut errors = Vec::new();
        if rating.is_some_and(|r| !(1..=5).contains(&r)) {
            errors.push(FieldError::new("rating", "must be from 1 to 5"));
        }
        if review.as_ref().is_some_and(|r| r.chars().count() > 2000) {
            errors.push(FieldError::new("review", "must be at most 2000 characters"));
        }
        validated(errors, Command::Accept { rating, review })
    }

    pub fn reassign(to_ref: String) -> Command {
        Command::Reassign { to_ref, to: None }
    }

    pub fn open_dispute(reason: Option<String>) -> ApiResult<Command> {
        let reason = required_text("reason", reason, 5000).map_err(|e| ApiError::validation(vec![e]))?;
        Ok(Command::OpenDispute { dispute_id: uuid::Uuid::now_v7().to_string(), reason, existing: false })
    }

    pub fn rule(outcome: Option<&str>, client_share_bps: Option<i64>, note: Option<String>) -> ApiResult<Command> {
        let outcome = outcome
            .and_then(Ruling::parse)
            .ok_or_else(|| ApiError::field("outcome", "must be refund, release or split"))?;
        let share = match (outcome, client_share_bps) {
            (Ruling::Split, None) => Some(5000),
            (Ruling::Split, Some(bps)) if (0..=10_000).contains(&bps) => Some(bps),
            (Ruling::Split, Some(_)) => return Err(ApiError::field("client_share_bps", "must be from 0 to 10000")),
            _ => None,
        };
        let note = note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        Ok(Command::Rule { dispute_id: String::new(), open: false, outcome, client_share_bps: share, note })
    }

    /// The verb for messages about this command.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Pay { .. } => "pay",
            Command::Claim => "claim",
            Command::Progress { .. } => "progress",
            Command::Complete { .. } => "complete",
            Command::Fail { .. } => "fail",
            Command::Cancel => "cancel",
            Command::EmitChunk => "stream",
            Command::Accept { .. } => "accept",
            Command::ReleaseDue => "release",
            Command::ExpireDue => "expire",
            Command::Reassign { .. } => "reassign",
            Command::Probe { .. } => "probe",
            Command::Retry { .. } => "retry",
            Command::OpenDispute { .. } => "dispute",
            Command::Rule { .. } => "rule",
        }
    }
}
