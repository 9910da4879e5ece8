//! The state machine against a table: every (status, payment status) × who × command, with
//! the answer each must get, the money it must move, and `can` agreeing with `decide`.
//!
//! The table is the specification, written as rules where the first one that matches decides;
//! the walk visits all 6 × 7 × 6 × 22 combinations, the unreachable ones included (they must be
//! refused or harmless, never panic or move money that is not there).

use std::collections::HashMap;

use super::command::{Command, Ruling};
use super::decide::{Reply, Roles, can, decide};
use super::state::{PaymentStatus as P, Status as S};
use crate::agents::model::AgentRow;
use crate::ledger::{Account, Purpose};
use crate::money::{Amount, Settlement};
use crate::tasks::model::TaskRow;

const NOW: i64 = 1_000_000;
const PRICE: i64 = 10_00000000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Client,
    Provider,
    /// A user owning the agents on both sides.
    Both,
    Admin,
    System,
    Stranger,
}

const EVERYONE: &[Who] = &[Who::Client, Who::Provider, Who::Both, Who::Admin, Who::System, Who::Stranger];
const CLIENTS: &[Who] = &[Who::Client, Who::Both];
const PROVIDERS: &[Who] = &[Who::Provider, Who::Both];
const NOT_CLIENTS: &[Who] = &[Who::Provider, Who::Admin, Who::System];
const NOT_PROVIDERS: &[Who] = &[Who::Client, Who::Admin, Who::System];
const PARTIES: &[Who] = &[Who::Client, Who::Provider, Who::Both];
const STAFF: &[Who] = &[Who::Admin, Who::System];
const NOT_SYSTEM: &[Who] = &[Who::Client, Who::Provider, Who::Both, Who::Admin];

fn roles(who: Who) -> Roles {
    match who {
        Who::Client => Roles::CLIENT,
        Who::Provider => Roles::PROVIDER,
        Who::Both => Roles { client: true, provider: true, admin: false, system: false },
        Who::Admin => Roles::ADMIN,
        Who::System => Roles::SYSTEM,
        Who::Stranger => Roles::default(),
    }
}

const ANY: &[S] = S::ALL;
const ACTIVE: &[S] = &[S::Pending, S::Claimed, S::InProgress];
const ANY_PAY: &[P] = P::ALL;
const FUNDED: &[P] = &[P::Escrowed, P::NotRequired];

/// What the money does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Money {
    Keep,
    /// The payment status becomes this (a hold).
    Set(P),
    /// Money still held is paid out as this; a task holding none keeps its payment status.
    Settle(P),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// Accepted: the status (None: unchanged) and the money.
    To(Option<S>, Money),
    /// Accepted with nothing to do.
    Same,
    /// Allowed, and the task itself does not change (a stream chunk is stored beside it).
    Allow,
    /// Refused with this code.
    No(&'static str),
}

use Money::*;
use Want::*;

struct Rule {
    commands: &'static [&'static str],
    who: &'static [Who],
    status: &'static [S],
    payment: &'static [P],
    want: Want,
}

const fn rule(
    commands: &'static [&'static str],
    who: &'static [Who],
    status: &'static [S],
    payment: &'static [P],
    want: Want,
) -> Rule {
    Rule { commands, who, status, payment, want }
}

const ALL_COMMANDS: &[&str] = &[
    "pay",
    "claim",
    "progress",
    "complete",
    "complete_now",
    "fail",
    "cancel",
    "accept",
    "release_due",
    "expire_due",
    "reassign",
    "reassign_missing",
    "probe_yes",
    "probe_no",
    "retry",
    "dispute",
    "dispute_again",
    "rule_refund",
    "rule_release",
    "rule_split",
    "rule_closed",
    "emit_chunk",
];
const COMPLETES: &[&str] = &["complete", "complete_now"];
const SERVER_ONLY: &[&str] = &["release_due", "expire_due", "probe_yes", "probe_no"];
const DISPUTES: &[&str] = &["dispute", "dispute_again"];
const RULINGS: &[&str] = &["rule_refund", "rule_release", "rule_split", "rule_closed"];
const REASSIGNS: &[&str] = &["reassign", "reassign_missing"];

/// The specification. The first rule that matches decides.
const TABLE: &[Rule] = &[
    rule(ALL_COMMANDS, &[Who::Stranger], ANY, ANY_PAY, No("NOT_FOUND")),
    // The client pays once; a paid or free task answers with its payment unchanged.
    rule(&["pay"], NOT_CLIENTS, ANY, ANY_PAY, No("FORBIDDEN")),
    rule(&["pay"], CLIENTS, ANY, &[P::NotRequired, P::Escrowed, P::Released, P::Refunded, P::Disputed, P::Split], Same),
    rule(&["pay"], CLIENTS, ACTIVE, &[P::Unpaid], To(None, Set(P::Escrowed))),
    rule(&["pay"], CLIENTS, ANY, ANY_PAY, No("CONFLICT")),
    // The provider claims funded pending work.
    rule(&["claim"], NOT_PROVIDERS, ANY, ANY_PAY, No("FORBIDDEN")),
    rule(&["claim"], PROVIDERS, ANY, &[P::Disputed], No("ESCROW_LOCKED")),
    rule(&["claim"], PROVIDERS, &[S::Pending], FUNDED, To(Some(S::Claimed), Keep)),
    rule(&["claim"], PROVIDERS, ANY, ANY_PAY, No("CONFLICT")),
    rule(&["progress"], NOT_PROVIDERS, ANY, ANY_PAY, No("FORBIDDEN")),
    rule(&["progress"], PROVIDERS, &[S::Claimed, S::InProgress], ANY_PAY, To(Some(S::InProgress), Keep)),
    rule(&["progress"], PROVIDERS, ANY, ANY_PAY, No("CONFLICT")),
    // Delivery: the review window starts, or (no window) the money is released at once.
    rule(COMPLETES, NOT_PROVIDERS, ANY, ANY_PAY, No("FORBIDDEN")),
    rule(COMPLETES, PROVIDERS, ANY, &[P::Disputed], No("ESCROW_LOCKED")),
    rule(&["complete"], PROVIDERS, ACTIVE, FUNDED, To(Some(S::Completed), Keep)),
    rule(&["complete_now"], PROVIDERS, ACTIVE, FUNDED, To(Some(S::Completed), Settle(P::Released))),
    rule(COMPLETES, PROVIDERS, ANY, ANY_PAY, No("CONFLICT")),
    // Giving up: the provider or the server (deadline, probe); the escrow comes back.
    rule(&["fail"], &[Who::Client, Who::Admin], ANY, ANY_PAY, No("FORBIDDEN")),
    rule(&["fail"], &[Who::Provider, Who::Both, Who::System], ANY, &[P::Disputed], No("ESCROW_LOCKED")),
    rule(
        &["fail"],
        &[Who::Provider, Who::Both, Who::System],
        ACTIVE,
        ANY_PAY,
        To(Some(S::Failed), Settle(P::Refunded)),
    ),
    rule(&["fail"], &[Who::Provider, Who::Both, Who::System], ANY, ANY_PAY, No("CONFLICT")),
    // Streaming partial output: the provider, while the work can still be delivered.
    rule(&["emit_chunk"], NOT_PROVIDERS, ANY, ANY_PAY, No("FORBIDDEN")),
    rule(&["emit_chunk"], PROVIDERS, ANY, &[P::Disputed], No("ESCROW_LOCKED")),
    rule(&["emit_chunk"], PROVIDERS, ACTIVE, FUNDED, Allow),
    rule(&["emit_chunk"], PROVIDERS, ANY, ANY_PAY, No("CONFLICT")),
    rule(&["cancel"], NOT_CLIENTS, ANY, ANY_PAY, No("FORBIDDEN")),
    rule(&["cancel"], CLIENTS, ANY, &[P::Disputed], No("ESCROW_LOCKED")),
    rule(&["cancel"], CLIENTS, ACTIVE, ANY_PAY, To(Some(S::Cancelled), Settle(P::Refunded))),
    rule(&["cancel"], CLIENTS, ANY, ANY_PAY, No("CONFLICT")),
    rule(&["accept"], NOT_CLIENTS, ANY, ANY_PAY, No("FORBIDDEN")),
    rule(&["accept"], CLIENTS, ANY, &[P::Disputed], No("ESCROW_LOCKED")),
    rule(&["accept"], CLIENTS, &[S::Completed], FUNDED, To(None, Settle(P::Released))),
    rule(&["accept"], CLIENTS, ANY, ANY_PAY, No("CONFLICT")),
    // The server's own commands: nothing to do is not an error.
    rule(SERVER_ONLY, NOT_SYSTEM, ANY, ANY_PAY, No("FORBIDDEN")),
    rule(&["release_due"], &[Who::System], &[S::Completed], FUNDED, To(None, Settle(P::Released))),
    rule(
        &["expire_due"],
        &[Who::System],
        ACTIVE,
        &[P::Unpaid, P::NotRequired, P::Escrowed, P::Released, P::Refunded, P::Split],
        To(Some(S::Failed), Settle(P::Refunded)),
    ),
    rule(&["probe_yes"], &[Who::System], &[S::Pending], FUNDED, To(Some(S::InProgress), Keep)),
    rule(&["probe_no"], &[Who::System], &[S::Pending], FUNDED, To(Some(S::Failed), Settle(P::Refunded))),
    rule(SERVER_ONLY, &[Who::System], ANY, ANY_PAY, Same),
    // Moving unfinished work to another provider.
    rule(
        &["reassign_missing"],
        &[Who::Client, Who::Provider, Who::Both, Who::Admin, Who::System],
        ANY,
        ANY_PAY,
        No("NOT_FOUND"),
    ),
    rule(REASSIGNS, NOT_CLIENTS, ANY, ANY_PAY, No("FORBIDDEN")),
    rule(&["reassign"], CLIENTS, ANY, &[P::Disputed], No("ESCROW_LOCKED")),
    rule(&["reassign"], CLIENTS, ACTIVE, ANY_PAY, To(Some(S::Pending), Keep)),
    rule(&["reassign"], CLIENTS, ANY, ANY_PAY, No("CONFLICT")),
    rule(&["retry"], NOT_CLIENTS, ANY, ANY_PAY, No("FORBIDDEN")),
    rule(&["retry"], CLIENTS, ACTIVE, FUNDED, To(Some(S::Pending), Keep)),
    rule(&["retry"], CLIENTS, ANY, ANY_PAY, No("CONFLICT")),
    // Disputes: the client, while the money is held.
    rule(DISPUTES, STAFF, ANY, ANY_PAY, No("NOT_FOUND")),
    rule(DISPUTES, &[Who::Provider], ANY, ANY_PAY, No("FORBIDDEN")),
    rule(&["dispute_again"], CLIENTS, ANY, ANY_PAY, No("DISPUTE_OPEN")),
    rule(&["dispute"], CLIENTS, ANY, &[P::Disputed], No("DISPUTE_OPEN")),
    rule(&["dispute"], CLIENTS, &[S::Claimed, S::InProgress, S::Completed], &[P::Escrowed], To(None, Set(P::Disputed))),
    rule(&["dispute"], CLIENTS, &[S::Claimed, S::InProgress, S::Completed], &[P::NotRequired], To(None, Keep)),
    rule(&["dispute"], CLIENTS, ANY, ANY_PAY, No("CONFLICT")),
    // Rulings: administrators (and the server's tier 1), on money under dispute.
    rule(RULINGS, PARTIES, ANY, ANY_PAY, No("FORBIDDEN")),
    rule(&["rule_closed"], STAFF, ANY, ANY_PAY, No("CONFLICT")),
    rule(RULINGS, STAFF, ANY, &[P::Unpaid, P::Escrowed, P::Released, P::Refunded, P::Split], No("CONFLICT")),
    rule(RULINGS, STAFF, &[S::Completed, S::Failed, S::Cancelled], ANY_PAY, To(None, Settle(P::Refunded))),
    rule(&["rule_refund"], STAFF, ANY, ANY_PAY, To(Some(S::Cancelled), Settle(P::Refunded))),
    rule(&["rule_release"], STAFF, ANY, ANY_PAY, To(Some(S::Completed), Settle(P::Released))),
    rule(&["rule_split"], STAFF, ANY, ANY_PAY, To(Some(S::Completed), Settle(P::Split))),
];

/// The table's answer. A ruling on finished work keeps its status but settles as ruled.
fn expected(command: &str, who: Who, status: S, payment: P) -> Want {
    let found = TABLE
        .iter()
        .find(|r| {
            r.commands.contains(&command)
                && r.who.contains(&who)
                && r.status.contains(&status)
                && r.payment.contains(&payment)
        })
        .unwrap_or_else(|| panic!("the table has no rule for {command} by {who:?} on {status}/{payment}"));
    match (found.want, command) {
        (To(None, Settle(_)), "rule_release") => To(None, Settle(P::Released)),
        (To(None, Settle(_)), "rule_split") => To(None, Settle(P::Split)),
        (want, _) => want,
    }
}

pub(super) fn agent(id: &str, capability: &str, status: &str) -> AgentRow {
    AgentRow {
        id: id.into(),
        did: format!("did:t:{id}"),
        name: id.into(),
        description: None,
        owner_id: None,
        capabilities: serde_json::json!([capability]).to_string(),
        pricing_model: "fixed".into(),
        base_price: 0,
        category: None,
        metadata: "{}".into(),
        status: status.into(),
        reputation_centi: 300,
        tasks_completed: 0,
        tasks_failed: 0,
        rating_sum: 0,
        rating_count: 0,
        has_callback: 0,
        last_seen_at: None,
        created_at: 0,
        updated_at: 0,
    }
}

fn command(name: &str) -> Command {
    match name {
        "pay" => Command::Pay { payment_id: "pay-1".into() },
        "claim" => Command::Claim,
        "progress" => Command::Progress { percent: 50, message: None },
        "complete" => {
            Command::Complete { output: "\"done\"".into(), output_sha256: "x".into(), review_window_ms: 3_600_000 }
        }
        "complete_now" => {
            Command::Complete { output: "\"done\"".into(), output_sha256: "x".into(), review_window_ms: 0 }
        }
        "fail" => Command::Fail { reason: "no".into() },
        "cancel" => Command::Cancel,
        "accept" => Command::Accept { rating: Some(5), review: None },
        "release_due" => Command::ReleaseDue,
        "expire_due" => Command::ExpireDue,
        "reassign" => {
            Command::Reassign { to_ref: "other".into(), to: Some(Box::new(agent("other", "code", "active"))) }
        }
        "reassign_missing" => Command::Reassign { to_ref: "gone".into(), to: None },
        "probe_yes" => Command::Probe { available: true },
        "probe_no" => Command::Probe { available: false },
        "retry" => Command::Retry { reason: None },
        "dispute" => Command::OpenDispute { dispute_id: "d-1".into(), reason: "bad".into(), existing: false },
        "dispute_again" => Command::OpenDispute { dispute_id: "d-2".into(), reason: "bad".into(), existing: true },
        "rule_refund" => rule_command(Ruling::Refund, true),
        "rule_release" => rule_command(Ruling::Release, true),
        "rule_split" => rule_command(Ruling::Split, true),
        "rule_closed" => rule_command(Ruling::Refund, false),
        "emit_chunk" => Command::EmitChunk,
        other => panic!("unknown command {other}"),
    }
}

fn rule_command(outcome: Ruling, open: bool) -> Command {
    let share = (outcome == Ruling::Split).then_some(3000);
    Command::Rule { dispute_id: "d-1".into(), open, outcome, client_share_bps: share, note: None }
}

/// A task in `status`/`payment` with the fields a real one in that state has: a paid price
/// unless free, a payment id once paid, delivered output and a passed review window once
/// completed, a release time once settled, a passed deadline.
pub(super) fn task_in(status: S, payment: P) -> TaskRow {
    let free = payment == P::NotRequired;
    let paid = !matches!(payment, P::Unpaid | P::NotRequired);
    let completed = status == S::Completed;
    TaskRow {
        id: "task-1".into(),
        status,
        payment_status: payment,
        client_user_id: Some("client-user".into()),
        client_agent_id: Some("client".into()),
        provider_agent_id: "provider".into(),
        provider_agent_did: "did:t:provider".into(),
        capability: "code".into(),
        input: "{}".into(),
        output: completed.then(|| "\"done\"".into()),
        output_sha256: None,
        error_reason: None,
        price: if free { 0 } else { PRICE },
        fee_bps: 500,
        fee: if free { 0 } else { PRICE / 20 },
        currency: "USD".into(),
        progress_percent: 0,
        progress_message: None,
        deadline_at: Some(NOW - 1),
        review_until: completed.then_some(NOW - 1),
        payment_id: paid.then(|| "pay-0".into()),
        payment_type: paid.then(|| "balance".into()),
        payment_created_at: paid.then_some(1),
        rating: None,
        review: None,
        created_at: 1,
        updated_at: 1,
        claimed_at: matches!(status, S::Claimed | S::InProgress | S::Completed).then_some(2),
        completed_at: completed.then_some(3),
        released_at: matches!(payment, P::Released | P::Refunded | P::Split).then_some(4),
        kind: "hiring".into(),
        client_principal: "agent:client".into(),
        task_description: None,
        delivery_mode: None,
        repo_url: None,
        client_idempotency_key: None,
        request_fingerprint: None,
        trace_attempt: 0,
    }
}

/// Every entry sums to zero, and applied to balances holding the task's money where it sits,
/// leaves no wallet negative; returns the balances after.
fn apply_money(task: &TaskRow, entries: &[crate::ledger::Entry]) -> HashMap<String, i64> {
    let mut balances: HashMap<String, i64> = HashMap::new();
    let (client, provider) = (task.client(), task.provider());
    balances.insert(Account::Wallet(client.clone(), Purpose::Available).id(), task.price);
    if task.funds_held() {
        let at = if task.funds_in_pending() {
            Account::Wallet(provider, Purpose::Pending)
        } else {
            Account::Wallet(client, Purpose::Escrow)
        };
        balances.insert(at.id(), task.price);
    }
    for entry in entries {
        assert_eq!(entry.postings.iter().map(|(_, a)| *a).sum::<i64>(), 0, "{} is balanced", entry.reference);
        for (account, amount) in &entry.postings {
            *balances.entry(account.id()).or_default() += amount;
        }
    }
    for (id, balance) in &balances {
        assert!(*balance >= 0, "{id} went negative: {balance}");
    }
    balances
}

#[test]
fn every_state_role_and_command_answers_as_the_table_says() {
    let mut accepted = 0;
    for &status in S::ALL {
        for &payment in P::ALL {
            let task = task_in(status, payment);
            for &who in EVERYONE {
                for &name in ALL_COMMANDS {
                    let want = expected(name, who, status, payment);
                    let case = format!("{name} by {who:?} on {status}/{payment}");
                    let result = decide(&task, roles(who), &command(name), NOW);
                    let allowed = matches!(want, To(..) | Allow);
                    assert_eq!(can(&task, roles(who), &command(name), NOW), allowed, "can() for {case}");
                    match (want, result) {
                        (No(code), Err(e)) => assert_eq!(e.code(), code, "{case}: {e}"),
                        (No(code), Ok(d)) => {
                            panic!("{case}: accepted ({:?}) where the table refuses with {code}", d.reply)
                        }
                        (_, Err(e)) => panic!("{case}: refused with {} ({e}) where the table accepts", e.code()),
                        (Allow, Ok(d)) => {
                            assert_eq!(d.reply, Reply::Changed, "{case}");
                            assert_eq!(d.task, task, "{case}: the task does not change");
                            assert!(d.effects.entries.is_empty() && d.effects.events.is_empty(), "{case}: no effects");
                        }
                        (Same, Ok(d)) => {
                            assert_eq!(d.reply, Reply::Unchanged, "{case}");
                            assert_eq!(d.task, task, "{case}: nothing changes");
                            assert!(d.effects.entries.is_empty() && d.effects.events.is_empty(), "{case}: no effects");
                        }
                        (To(to_status, money), Ok(d)) => {
                            accepted += 1;
                            assert_ne!(d.reply, Reply::Unchanged, "{case}");
                            assert_eq!(d.task.status, to_status.unwrap_or(status), "{case}: status");
                            check_money(&case, &task, &d.task, money, &d.effects.entries);
                            assert!(
                                !d.effects.events.is_empty(),
                                "{case}: an accepted command leaves a timeline event"
                            );
                            assert_eq!(d.task.updated_at, NOW, "{case}: updated_at");
                        }
                    }
                }
            }
        }
    }
    assert!(accepted > 150, "the walk accepted {accepted} commands");
}

fn check_money(case: &str, before: &TaskRow, after: &TaskRow, money: Money, entries: &[crate::ledger::Entry]) {
    let held = before.funds_held();
    let (want_payment, settles) = match money {
        Keep => (before.payment_status, false),
        Set(p) => (p, false),
        Settle(p) if held => (p, true),
        Settle(_) => (before.payment_status, false),
    };
    assert_eq!(after.payment_status, want_payment, "{case}: payment status");
    let balances = apply_money(before, entries);
    let settle: Vec<_> = entries.iter().filter(|e| e.reference.ends_with(":settle")).collect();
    assert_eq!(settle.len(), usize::from(settles), "{case}: settled once or not at all");
    let get = |a: Account| balances.get(&a.id()).copied().unwrap_or(0);
    let (client, provider) = (before.client(), before.provider());
    if settles {
        assert!(after.released_at.is_some(), "{case}: released_at");
        assert_eq!(get(Account::Wallet(client.clone(), Purpose::Escrow)), 0, "{case}: the escrow is empty");
        assert_eq!(get(Account::Wallet(provider.clone(), Purpose::Pending)), 0, "{case}: pending is empty");
        let price = Amount::from_units(before.price).unwrap();
        let expected = match after.payment_status {
            P::Released => Settlement::release(price, before.fee_bps),
            P::Refunded => Settlement::refund(price),
            P::Split => Settlement::split(price, before.fee_bps, 3000),
            other => panic!("{case}: settled as {other}"),
        };
        assert_eq!(
            get(Account::Wallet(provider, Purpose::Available)),
            expected.to_provider.units(),
            "{case}: provider"
        );
        assert_eq!(get(Account::fees_for(&before.id)), expected.fee.units(), "{case}: fee");
        assert_eq!(
            get(Account::Wallet(client, Purpose::Available)),
            before.price + expected.to_client.units(),
            "{case}"
        );
    } else if want_payment == P::Escrowed && before.payment_status == P::Unpaid {
        assert_eq!(get(Account::Wallet(client.clone(), Purpose::Escrow)), before.price, "{case}: held");
        assert_eq!(get(Account::Wallet(client, Purpose::Available)), 0, "{case}: paid from available");
    } else if held && after.status == S::Completed && before.status != S::Completed {
        assert_eq!(get(Account::Wallet(provider, Purpose::Pending)), before.price, "{case}: delivered money waits");
    } else {
        assert!(entries.is_empty(), "{case}: no money moves ({entries:?})");
    }
}

#[test]
fn a_refund_ruling_tells_both_sides_the_deal_is_cancelled() {
    for status in [S::Claimed, S::Completed] {
        let task = task_in(status, P::Disputed);
        let d = decide(&task, Roles::ADMIN, &rule_command(Ruling::Refund, true), NOW).unwrap();
        let events: Vec<_> = d.effects.webhooks.iter().map(|w| w.event).collect();
        assert!(events.contains(&"task.cancelled") && events.contains(&"hiring.cancelled"), "{status}: {events:?}");
        let release = decide(&task, Roles::ADMIN, &rule_command(Ruling::Release, true), NOW).unwrap();
        let events: Vec<_> = release.effects.webhooks.iter().map(|w| w.event).collect();
        assert!(!events.contains(&"task.cancelled"), "{events:?}");
    }
}

#[test]
fn tier_one_refunds_a_completed_task_without_output_at_opening() {
    let mut task = task_in(S::Completed, P::Escrowed);
    task.output = Some("\"  \"".into());
    let d = decide(&task, Roles::CLIENT, &command("dispute"), NOW).unwrap();
    assert_eq!((d.task.status, d.task.payment_status), (S::Completed, P::Refunded));
    assert!(matches!(
        d.effects.dispute,
        Some(super::effects::DisputeChange::OpenResolved { outcome: Ruling::Refund, .. })
    ));
    let balances = apply_money(&task, &d.effects.entries);
    assert_eq!(balances[&Account::Wallet(task.client(), Purpose::Available).id()], 2 * PRICE, "all of it back");
}

#[test]
fn time_based_commands_wait_for_their_time() {
    let mut task = task_in(S::Completed, P::Escrowed);
    task.review_until = Some(NOW + 1);
    assert_eq!(decide(&task, Roles::SYSTEM, &Command::ReleaseDue, NOW).unwrap().reply, Reply::Unchanged);
    let mut task = task_in(S::InProgress, P::Escrowed);
    task.deadline_at = Some(NOW + 1);
    assert_eq!(decide(&task, Roles::SYSTEM, &Command::ExpireDue, NOW).unwrap().reply, Reply::Unchanged);
    task.deadline_at = None;
    assert_eq!(decide(&task, Roles::SYSTEM, &Command::ExpireDue, NOW).unwrap().reply, Reply::Unchanged);
}

#[test]
fn reassignment_checks_the_new_provider() {
    let task = task_in(S::Claimed, P::Escrowed);
    let to = |a: AgentRow| Command::Reassign { to_ref: a.id.clone(), to: Some(Box::new(a)) };
    let refused = |c: Command| decide(&task, Roles::CLIENT, &c, NOW).unwrap_err().code();
    assert_eq!(refused(to(agent("other", "code", "suspended"))), "AGENT_UNAVAILABLE");
    assert_eq!(refused(to(agent("other", "design", "active"))), "VALIDATION_ERROR");
    assert_eq!(refused(to(agent("client", "code", "active"))), "VALIDATION_ERROR", "the client agent cannot take it");
    let d = decide(&task, Roles::CLIENT, &to(agent("other", "code", "active")), NOW).unwrap();
    assert_eq!((d.task.provider_agent_id.as_str(), d.task.claimed_at), ("other", None));
    assert_eq!(d.reply, Reply::Reassigned { previous_did: "did:t:provider".into() });
}

#[test]
fn claiming_unfunded_work_says_what_is_missing() {
    let e = decide(&task_in(S::Pending, P::Unpaid), Roles::PROVIDER, &Command::Claim, NOW).unwrap_err();
    assert_eq!(e.code(), "CONFLICT");
    assert!(format!("{e:?}").contains("payment_status"), "{e:?}");
}
