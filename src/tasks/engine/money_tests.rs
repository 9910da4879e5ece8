//! Random sequences of commands (creations included) by random actors on a few tasks, decided
//! by the machine and booked on an in-memory ledger with the database's rules (balanced
//! entries, no wallet below zero, each reference booked once). After every step the money
//! invariants of DESIGN.md hold — no database involved.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::command::{Command, Ruling};
use super::create::{Create, Pricing, decide_create};
use super::decide::{Decision, Roles, decide};
use super::state::{PaymentStatus as P, Status as S};
use super::table_tests::agent;
use crate::auth::Caller;
use crate::auth::caller::{AgentCtx, Credential};
use crate::auth::scope::Scopes;
use crate::ledger::{Account, Entry, Principal, Purpose};
use crate::money::{Amount, Settlement};
use crate::tasks::model::TaskRow;

const CLIENTS: [&str; 2] = ["c1", "c2"];
const PROVIDERS: [&str; 2] = ["p1", "p2"];
const DEPOSIT: i64 = 100_00000000;

#[derive(Debug, Clone)]
enum Step {
    Create { client: usize, provider: usize, cents: i64, pay_now: bool },
    Act { task: usize, who: usize, command: usize, value: i64 },
    /// Time passes (review windows, deadlines).
    Wait(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0..2usize, 0..2usize, prop_oneof![1 => Just(0i64), 6 => 1..4000i64], any::<bool>())
            .prop_map(|(client, provider, cents, pay_now)| Step::Create { client, provider, cents, pay_now }),
        12 => (0..4usize, 0..6usize, 0..17usize, 0..10_001i64)
            .prop_map(|(task, who, command, value)| Step::Act { task, who, command, value }),
        1 => (1..7_200_000i64).prop_map(Step::Wait),
    ]
}

fn caller_for(agent_id: &str) -> Caller {
    Caller {
        credential: Credential::AgentKey { key_id: format!("key-{agent_id}") },
        user: None,
        agent: Some(AgentCtx { id: agent_id.into(), did: format!("did:t:{agent_id}"), owner_id: None, reputation_centi: 300 }),
        scopes: Scopes::all(),
        max_price_per_hire: None,
    }
}

/// The commands a step may send (parameters from the step's value).
fn command(n: usize, value: i64, open_dispute: Option<bool>) -> Command {
    match n {
        0 => Command::Pay { payment_id: format!("pay-{value}") },
        1 => Command::Claim,
        2 => Command::Progress { percent: value % 101, message: None },
        3 => Command::Complete { output: "\"ok\"".into(), output_sha256: "x".into(), review_window_ms: value * 100 },
        4 => Command::Complete { output: "\"\"".into(), output_sha256: "x".into(), review_window_ms: 3_600_000 },
        5 => Command::Fail { reason: "no".into() },
        6 => Command::Cancel,
        7 => Command::Accept { rating: Some(1 + value % 5), review: None },
        8 => Command::ReleaseDue,
        9 => Command::ExpireDue,
        10 => Command::Reassign { to_ref: "p2".into(), to: Some(agent("p2", "code", "active")) },
        11 => Command::Probe { available: value % 2 == 0 },
        12 => Command::Retry { reason: None },
        13 => Command::OpenDispute { dispute_id: format!("d-{value}"), reason: "bad".into(), existing: open_dispute.is_some() },
        14 => rule(Ruling::Refund, value, open_dispute),
        15 => rule(Ruling::Release, value, open_dispute),
        _ => rule(Ruling::Split, value, open_dispute),
    }
}

fn rule(outcome: Ruling, value: i64, open: Option<bool>) -> Command {
    let share = (outcome == Ruling::Split).then_some(value);
    Command::Rule { dispute_id: "d".into(), open: open == Some(true), outcome, client_share_bps: share, note: None }
}

/// The ledger as the database keeps it.
#[derive(Default)]
struct Ledger {
    balances: HashMap<String, i64>,
    references: HashSet<String>,
}

impl Ledger {
    /// Books `entries` all or nothing, as `Book::post_all` does.
    fn post(&mut self, entries: &[Entry]) -> bool {
        let mut after = self.balances.clone();
        for e in entries {
            assert_eq!(e.postings.iter().map(|(_, a)| *a).sum::<i64>(), 0, "{} is balanced", e.reference);
            if self.references.contains(&e.reference) {
                return false;
            }
            for (account, amount) in &e.postings {
                let b = after.entry(account.id()).or_default();
                *b += amount;
                if *b < 0 && *account != Account::World {
                    return false;
                }
            }
        }
        self.balances = after;
        self.references.extend(entries.iter().map(|e| e.reference.clone()));
        true
    }

    fn get(&self, account: &Account) -> i64 {
        self.balances.get(&account.id()).copied().unwrap_or(0)
    }
}

struct World {
    now: i64,
    tasks: Vec<TaskRow>,
    /// Disputes by task: open or resolved.
    disputes: HashMap<String, bool>,
    ledger: Ledger,
}

impl World {
    fn new() -> World {
        let mut ledger = Ledger::default();
        for c in CLIENTS {
            let deposit = Entry {
                kind: "deposit",
                reference: format!("deposit:{c}"),
                task_id: None,
                memo: None,
                postings: vec![(Account::World, -DEPOSIT), (wallet(c, Purpose::Available), DEPOSIT)],
            };
            assert!(ledger.post(&[deposit]));
        }
        World { now: 1_000_000, tasks: Vec::new(), disputes: HashMap::new(), ledger }
    }

    fn run(&mut self, step: &Step) {
        match step {
            Step::Wait(ms) => self.now += ms,
            Step::Create { client, provider, cents, pay_now } => {
                let mut provider_row = agent(PROVIDERS[*provider], "code", "active");
                provider_row.pricing_model = "auction".into();
                let create = Create {
                    caller: caller_for(CLIENTS[*client]),
                    client: Principal::Agent(CLIENTS[*client].into()),
                    provider_ref: provider_row.id.clone(),
                    capability: "code".into(),
                    input: "{}".into(),
                    pricing: Pricing::Model { max_price: Some(Amount::from_units(cents * 1_000_000).unwrap()) },
                    pay_now: *pay_now,
                    unsupported_payment: false,
                    deadline_at: Some(self.now + 3_600_000),
                    fee_bps: 500,
                    hire: None,
                };
                let id = format!("t{:03}", self.tasks.len());
                if let Ok(d) = decide_create(&create, Some(&provider_row), None, &id, self.now) {
                    self.accept(None, d);
                }
            }
            Step::Act { task, who, command: n, value } => {
                // One of the four newest tasks, so most tasks live long enough to settle.
                let len = self.tasks.len();
                let Some(t) = len.checked_sub(1 + task % len.clamp(1, 4)).and_then(|i| self.tasks.get(i)).cloned() else {
                    return;
                };
                // Mostly the party the command is for, sometimes anyone (who must be refused).
                let natural = match n {
                    0 | 6 | 7 | 10 | 12 | 13 => Roles::CLIENT,
                    1..=5 => Roles::PROVIDER,
                    14..=16 => Roles::ADMIN,
                    _ => Roles::SYSTEM,
                };
                let roles = match who {
                    0 => Roles::CLIENT,
                    1 => Roles::PROVIDER,
                    2 => Roles::ADMIN,
                    3 => Roles::default(),
                    _ => natural,
                };
                let c = command(*n, *value, self.disputes.get(&t.id).copied());
                if matches!(c, Command::Rule { .. }) && !self.disputes.contains_key(&t.id) {
                    return; // the batch answers 404 before deciding
                }
                if let Ok(d) = decide(&t, roles, &c, self.now) {
                    let index = self.tasks.iter().position(|x| x.id == t.id);
                    self.accept(index, d);
                }
            }
        }
    }

    fn accept(&mut self, index: Option<usize>, d: Decision) {
        if !self.ledger.post(&d.effects.entries) {
            return; // refused by the ledger: nothing changes
        }
        if let Some(change) = &d.effects.dispute {
            let open = matches!(change, super::effects::DisputeChange::Open { .. });
            self.disputes.insert(d.task.id.clone(), open);
        }
        match index {
            Some(i) => self.tasks[i] = d.task,
            None => self.tasks.push(d.task),
        }
    }

    /// DESIGN.md's money invariants, from the tasks' states alone.
    fn check(&self) {
        // 1. Everything sums to zero; no wallet below zero.
        assert_eq!(self.ledger.balances.values().sum::<i64>(), 0, "the balances sum to zero");
        for (id, b) in &self.ledger.balances {
            assert!(*b >= 0 || id == "world", "{id} is negative: {b}");
        }
        // 3. Each task's money is where its state says: held in the client's escrow before
        // delivery, in the provider's pending after, paid out exactly once when settled.
        let mut escrow: HashMap<String, i64> = HashMap::new();
        let mut pending: HashMap<String, i64> = HashMap::new();
        let (mut fees, mut paid_out, mut refunded) = (0i64, HashMap::<String, i64>::new(), HashMap::<String, i64>::new());
        for t in &self.tasks {
            let price = Amount::from_units(t.price).unwrap();
            if t.funds_held() {
                let at = if t.funds_in_pending() { &mut pending } else { &mut escrow };
                *at.entry(if t.funds_in_pending() { t.provider_agent_id.clone() } else { t.client_principal.clone() })
                    .or_default() += t.price;
                assert!(t.released_at.is_none(), "{}: held money is not released", t.id);
            }
            let settled = match t.payment_status {
                P::Released => Some(Settlement::release(price, t.fee_bps)),
                P::Refunded => Some(Settlement::refund(price)),
                P::Split => None,
                _ => {
                    assert!(!self.ledger.references.contains(&format!("task:{}:settle", t.id)), "{} unsettled", t.id);
                    continue;
                }
            };
            assert!(self.ledger.references.contains(&format!("task:{}:settle", t.id)) || t.price == 0, "{} settled", t.id);
            if let Some(s) = settled {
                assert_eq!(s.to_provider.units() + s.fee.units() + s.to_client.units(), t.price, "{}", t.id);
                fees += s.fee.units();
                *paid_out.entry(t.provider_agent_id.clone()).or_default() += s.to_provider.units();
                *refunded.entry(t.client_principal.clone()).or_default() += s.to_client.units();
            }
        }
        for c in CLIENTS {
            let key = Principal::Agent(c.into()).key();
            assert_eq!(self.ledger.get(&wallet(c, Purpose::Escrow)), escrow.get(&key).copied().unwrap_or(0), "{c} escrow");
        }
        for p in PROVIDERS {
            assert_eq!(self.ledger.get(&wallet(p, Purpose::Pending)), pending.get(p).copied().unwrap_or(0), "{p} pending");
        }
        // Without splits (whose shares vary per ruling) the payouts are exact per principal.
        if !self.tasks.iter().any(|t| t.payment_status == P::Split) {
            let ledger_fees: i64 = (0..crate::ledger::FEE_SHARDS).map(|s| self.ledger.get(&Account::Fees(s))).sum();
            assert_eq!(ledger_fees, fees, "fee income");
            for p in PROVIDERS {
                assert_eq!(self.ledger.get(&wallet(p, Purpose::Available)), paid_out.get(p).copied().unwrap_or(0), "{p}");
            }
            for c in CLIENTS {
                let key = Principal::Agent(c.into()).key();
                let spent: i64 = self
                    .tasks
                    .iter()
                    .filter(|t| t.client_principal == key && t.payment_id.is_some())
                    .map(|t| t.price)
                    .sum();
                let back = refunded.get(&key).copied().unwrap_or(0);
                assert_eq!(self.ledger.get(&wallet(c, Purpose::Available)), DEPOSIT - spent + back, "{c} available");
            }
        }
    }
}

fn wallet(agent: &str, purpose: Purpose) -> Account {
    Account::Wallet(Principal::Agent(agent.into()), purpose)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 800, ..ProptestConfig::default() })]

    #[test]
    fn every_accepted_sequence_keeps_the_money_invariants(steps in proptest::collection::vec(step(), 1..80)) {
        let mut world = World::new();
        world.check();
        for step in &steps {
            world.run(step);
            world.check();
        }
        // A settled task never moves money again, whatever is sent to it.
        for t in world.tasks.iter().filter(|t| matches!(t.payment_status, P::Released | P::Refunded | P::Split)) {
            for n in 0..17 {
                for roles in [Roles::CLIENT, Roles::PROVIDER, Roles::ADMIN, Roles::SYSTEM] {
                    if let Ok(d) = decide(t, roles, &command(n, 5000, world.disputes.get(&t.id).copied()), world.now) {
                        prop_assert!(d.effects.entries.is_empty(), "{} moved money after settling: {:?}", t.id, d.effects.entries);
                    }
                }
            }
        }
        prop_assert!(world.tasks.iter().all(|t| t.status != S::Pending || t.released_at.is_none()));
    }
}
