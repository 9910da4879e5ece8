//! Task shapes: the stored row, the API view, the payment view, and who may act on a task.

use std::collections::HashSet;

use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::clock::{rfc3339, rfc3339_opt};
use crate::ledger::Principal;
use crate::money::Amount;

pub use super::engine::Roles;
pub use super::engine::state::{HiringStatus, PaymentStatus, Status};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TaskRow {
    pub id: String,
    #[sqlx(try_from = "String")]
    pub status: Status,
    #[sqlx(try_from = "String")]
    pub payment_status: PaymentStatus,
    pub client_user_id: Option<String>,
    pub client_agent_id: Option<String>,
    pub provider_agent_id: String,
    pub provider_agent_did: String,
    pub capability: String,
    pub input: String,
    pub output: Option<String>,
    pub output_sha256: Option<String>,
    pub error_reason: Option<String>,
    pub price: i64,
    pub fee_bps: i64,
    pub fee: i64,
    pub currency: String,
    pub progress_percent: i64,
    pub progress_message: Option<String>,
    pub deadline_at: Option<i64>,
    pub review_until: Option<i64>,
    pub payment_id: Option<String>,
    pub payment_type: Option<String>,
    pub payment_created_at: Option<i64>,
    pub rating: Option<i64>,
    pub review: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub claimed_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub released_at: Option<i64>,
    pub kind: String,
    pub client_principal: String,
    pub task_description: Option<String>,
    pub delivery_mode: Option<String>,
    pub repo_url: Option<String>,
    pub client_idempotency_key: Option<String>,
    pub request_fingerprint: Option<String>,
    pub trace_attempt: i64,
}

pub const TASK_COLUMNS: &str = "id, status, payment_status, client_user_id, client_agent_id, provider_agent_id, \
     provider_agent_did, capability, input, output, output_sha256, error_reason, price, fee_bps, fee, currency, \
     progress_percent, progress_message, deadline_at, review_until, payment_id, payment_type, payment_created_at, \
     rating, review, created_at, updated_at, claimed_at, completed_at, released_at, kind, client_principal, \
     task_description, delivery_mode, repo_url, client_idempotency_key, request_fingerprint, trace_attempt";

/// What a new task (or hiring) is made of; the rest starts empty.
pub struct NewTaskRow<'a> {
    pub caller: &'a Caller,
    pub client: &'a Principal,
    pub provider_id: &'a str,
    pub provider_did: &'a str,
    pub capability: String,
    pub input: String,
    pub price: Amount,
    pub fee_bps: i64,
    /// Hold the escrow now (ignored for free tasks).
    pub pay_now: bool,
    pub deadline_at: Option<i64>,
    pub now: i64,
}

impl TaskRow {
    /// A new `pending` task: `escrowed` when paid now, `unpaid` when paid later, `not_required`
    /// when free.
    pub fn new(n: NewTaskRow<'_>) -> TaskRow {
        let hold = n.pay_now && !n.price.is_zero();
        TaskRow {
            id: uuid::Uuid::now_v7().to_string(),
            status: Status::Pending,
            payment_status: if n.price.is_zero() {
                PaymentStatus::NotRequired
            } else if hold {
                PaymentStatus::Escrowed
            } else {
                PaymentStatus::Unpaid
            },
            client_user_id: n.caller.user.as_ref().map(|u| u.id.clone()),
            client_agent_id: match n.client {
                Principal::Agent(a) => Some(a.clone()),
                Principal::User(_) => None,
            },
            provider_agent_id: n.provider_id.to_string(),
            provider_agent_did: n.provider_did.to_string(),
            capability: n.capability,
            input: n.input,
            output: None,
            output_sha256: None,
            error_reason: None,
            price: n.price.units(),
            fee_bps: n.fee_bps,
            fee: crate::money::Settlement::release(n.price, n.fee_bps).fee.units(),
            currency: "USD".into(),
            progress_percent: 0,
            progress_message: None,
            deadline_at: n.deadline_at,
            review_until: None,
            payment_id: hold.then(|| uuid::Uuid::now_v7().to_string()),
            payment_type: hold.then(|| "balance".to_string()),
            payment_created_at: hold.then_some(n.now),
            rating: None,
            review: None,
            created_at: n.now,
            updated_at: n.now,
            claimed_at: None,
            completed_at: None,
            released_at: None,
            kind: "task".into(),
            client_principal: n.client.key(),
            task_description: None,
            delivery_mode: None,
            repo_url: None,
            client_idempotency_key: None,
            request_fingerprint: None,
            trace_attempt: 1,
        }
    }

    pub fn price(&self) -> Amount {
        Amount::from_units(self.price).unwrap_or_default()
    }

    /// Whose wallet pays.
    pub fn client(&self) -> Principal {
        match (&self.client_agent_id, &self.client_user_id) {
            (Some(agent), _) => Principal::Agent(agent.clone()),
            (None, Some(user)) => Principal::User(user.clone()),
            (None, None) => Principal::User(String::new()),
        }
    }

    pub fn provider(&self) -> Principal {
        Principal::Agent(self.provider_agent_id.clone())
    }

    /// Money is held for this task (in the client's escrow or the provider's pending).
    pub fn funds_held(&self) -> bool {
        self.payment_status.holds_money() && self.price > 0
    }

    pub fn hiring_status(&self) -> HiringStatus {
        HiringStatus::of(self.status, self.payment_status)
    }

    /// After completion the held money sits in the provider's `pending`; before, in the
    /// client's `escrow`.
    pub fn funds_in_pending(&self) -> bool {
        self.completed_at.is_some()
    }

    pub fn to_task(&self) -> Task {
        let parse = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::String(s.to_string()));
        Task {
            id: self.id.clone(),
            status: self.status.as_str().to_string(),
            payment_status: self.payment_status.as_str().to_string(),
            client_agent_id: self.client_agent_id.clone(),
            client_user_id: self.client_user_id.clone(),
            provider_agent_id: self.provider_agent_id.clone(),
            provider_agent_did: self.provider_agent_did.clone(),
            capability: self.capability.clone(),
            input: parse(&self.input),
            output: self.output.as_deref().map(parse),
            output_sha256: self.output_sha256.clone(),
            error_reason: self.error_reason.clone(),
            price: self.price(),
            fee_bps: self.fee_bps,
            fee: Amount::from_units(self.fee).unwrap_or_default(),
            currency: self.currency.clone(),
            progress_percent: self.progress_percent,
            progress_message: self.progress_message.clone(),
            deadline_at: rfc3339_opt(self.deadline_at),
            review_until: rfc3339_opt(self.review_until),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
            claimed_at: rfc3339_opt(self.claimed_at),
            completed_at: rfc3339_opt(self.completed_at),
            released_at: rfc3339_opt(self.released_at),
        }
    }

    pub fn payment(&self) -> Option<Payment> {
        let id = self.payment_id.clone()?;
        Some(Payment {
            payment_id: id.clone(),
            id,
            task_id: self.id.clone(),
            amount: self.price(),
            currency: "USD",
            status: self.payment_status.as_str().to_string(),
            payment_type: self.payment_type.clone().unwrap_or_else(|| "balance".into()),
            escrow_held: self.funds_held(),
            created_at: rfc3339(self.payment_created_at.unwrap_or(self.created_at)),
        })
    }
}

/// A task as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Task {
    pub id: String,
    /// `pending`, `claimed`, `in_progress`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// `unpaid`, `not_required`, `escrowed`, `released`, `refunded`, `disputed` or `split`.
    pub payment_status: String,
    pub client_agent_id: Option<String>,
    pub client_user_id: Option<String>,
    pub provider_agent_id: String,
    pub provider_agent_did: String,
    pub capability: String,
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    #[schema(value_type = Option<Object>)]
    pub output: Option<serde_json::Value>,
    pub output_sha256: Option<String>,
    pub error_reason: Option<String>,
    pub price: Amount,
    pub fee_bps: i64,
    pub fee: Amount,
    pub currency: String,
    pub progress_percent: i64,
    pub progress_message: Option<String>,
    pub deadline_at: Option<String>,
    pub review_until: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub claimed_at: Option<String>,
    pub completed_at: Option<String>,
    pub released_at: Option<String>,
}

/// The escrow record of a task.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Payment {
    pub id: String,
    pub payment_id: String,
    pub task_id: String,
    pub amount: Amount,
    pub currency: &'static str,
    /// The task's payment status.
    pub status: String,
    pub payment_type: String,
    pub escrow_held: bool,
    pub created_at: String,
}

/// Who is acting, and which of the task's agents they own (learnt on the connection in use: a
/// transaction must never wait for a second pool connection).
#[derive(Debug, Clone)]
pub enum Actor {
    Caller {
        caller: Box<Caller>,
        owned_agents: HashSet<String>,
    },
    /// The background sweeper.
    System,
    /// An administrator resolving a dispute (API or CLI).
    Admin,
}

impl Actor {
    /// An actor for `caller`; what it owns is learnt per task (`learn_ownership`).
    pub fn of(caller: &Caller) -> Actor {
        Actor::Caller { caller: Box::new(caller.clone()), owned_agents: HashSet::new() }
    }

    /// A user may act for agents they own: finds out, with one query and only when the caller
    /// is not directly a party, whether they own this task's client or provider agent.
    pub async fn learn_ownership(&mut self, conn: &mut sqlx::AnyConnection, task: &TaskRow) -> sqlx::Result<()> {
        if self.is_participant(task) {
            return Ok(());
        }
        let Actor::Caller { caller, owned_agents } = self else { return Ok(()) };
        let Some(user) = &caller.user else { return Ok(()) };
        let client_agent = task.client_agent_id.as_deref().unwrap_or(&task.provider_agent_id);
        let owned = crate::agents::store::owned_among(conn, &user.id, [client_agent, &task.provider_agent_id]).await?;
        owned_agents.extend(owned);
        Ok(())
    }

    pub fn caller(&self) -> Option<&Caller> {
        match self {
            Actor::Caller { caller, .. } => Some(caller.as_ref()),
            _ => None,
        }
    }

    /// The principal whose wallet pays when this caller creates a task.
    pub fn paying_principal(&self) -> Option<Principal> {
        let caller = self.caller()?;
        match (&caller.agent, &caller.user) {
            (Some(agent), _) => Some(Principal::Agent(agent.id.clone())),
            (None, Some(user)) => Some(Principal::User(user.id.clone())),
            (None, None) => None,
        }
    }

    pub fn is_client(&self, task: &TaskRow) -> bool {
        let Actor::Caller { caller, owned_agents } = self else { return false };
        let as_agent = caller.agent.as_ref().is_some_and(|a| task.client_agent_id.as_deref() == Some(a.id.as_str()));
        let as_user = caller.agent.is_none()
            && caller.user.as_ref().is_some_and(|u| task.client_user_id.as_deref() == Some(u.id.as_str()));
        let as_owner = task.client_agent_id.as_ref().is_some_and(|a| owned_agents.contains(a));
        as_agent || as_user || as_owner
    }

    pub fn is_provider(&self, task: &TaskRow) -> bool {
        let Actor::Caller { caller, owned_agents } = self else { return false };
        caller.agent.as_ref().is_some_and(|a| a.id == task.provider_agent_id)
            || owned_agents.contains(&task.provider_agent_id)
    }

    pub fn is_admin(&self) -> bool {
        match self {
            Actor::Caller { caller, .. } => caller.user.as_ref().is_some_and(|u| u.is_admin),
            Actor::Admin => true,
            Actor::System => false,
        }
    }

    pub fn is_participant(&self, task: &TaskRow) -> bool {
        self.is_client(task) || self.is_provider(task)
    }

    /// Who this actor is to `task`, for the engine (ownership learnt first).
    pub fn roles(&self, task: &TaskRow) -> Roles {
        match self {
            Actor::System => Roles::SYSTEM,
            Actor::Admin => Roles::ADMIN,
            Actor::Caller { .. } => Roles {
                client: self.is_client(task),
                provider: self.is_provider(task),
                admin: self.is_admin(),
                system: false,
            },
        }
    }

    /// Records which of `agents` the calling user owns (the engine reads the agents itself).
    pub fn learn_owned<'a>(&mut self, agents: impl IntoIterator<Item = &'a crate::agents::model::AgentRow>) {
        let Actor::Caller { caller, owned_agents } = self else { return };
        let Some(user) = &caller.user else { return };
        for agent in agents {
            if agent.owner_id.as_deref() == Some(user.id.as_str()) {
                owned_agents.insert(agent.id.clone());
            }
        }
    }
}
