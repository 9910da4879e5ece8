//! The task engine: one state machine for tasks and hirings, whoever acts — the API, the
//! dashboard, MCP, the sweeper, the hiring probe, the administrators.
//!
//! 1. `decide` (pure): `(task, roles, command, now) → effects | refusal`; `can` answers the UI
//!    from the same rules.
//! 2. The applier (`batch`) writes effects with the fewest statements: a conditional update per
//!    task, multi-row inserts for journal entries, postings, statement lines, events and outbox
//!    rows, one update for every balance an entry changes.
//! 3. Group commit: commands that arrive together are decided in arrival order against rows
//!    locked in a fixed order, written together and committed once; each caller gets its own
//!    answer, and one command's refusal never affects another's.
//!
//! Every caller goes through `Engine::submit`: nothing else writes task rows or moves a task's
//! money.

pub mod batch;
pub mod command;
pub mod create;
pub mod decide;
mod draft;
pub mod effects;
#[cfg(test)]
mod money_tests;
pub mod state;
#[cfg(test)]
mod table_tests;

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

pub use command::{Command, Ruling};
pub use create::{Create, HireParts, Pricing};
pub use decide::{Reply, Roles, can, decide};

use crate::clock::SharedClock;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::http::idempotency::{self, Claim};
use crate::tasks::changes::HiringChanges;
use crate::tasks::model::{Actor, TaskRow};

/// Commands waiting at most this many in one batch.
const MAX_BATCH: usize = 64;

/// What a caller asks of the engine.
pub enum Order {
    Create(Box<Create>),
    Act { task_id: String, actor: Actor, command: Command },
}

/// The engine's answer: the task after the command, and what happened.
#[derive(Debug)]
pub struct Done {
    pub task: TaskRow,
    pub reply: Reply,
}

pub(crate) struct Job {
    order: Order,
    /// The id a created task gets.
    new_id: String,
    /// The request's idempotency key, recorded with the command's effects.
    claim: Option<Arc<Claim>>,
    reply: oneshot::Sender<ApiResult<Done>>,
}

/// A handle to the committers (cheap to clone; in `AppState`).
#[derive(Clone)]
pub struct Engine {
    queue: mpsc::Sender<Job>,
    /// Every hiring a command changed is announced here (`tasks::changes`).
    changes: Arc<HiringChanges>,
}

impl Engine {
    /// Starts `committers` batch loops on `db` (one on SQLite, where one writer owns all
    /// writes; more on PostgreSQL, where row locks order concurrent batches).
    pub fn start(db: Db, clock: SharedClock, committers: usize) -> Engine {
        let (queue, jobs) = mpsc::channel::<Job>(4096);
        let jobs = Arc::new(Mutex::new(jobs));
        for _ in 0..committers.max(1) {
            let (db, clock, jobs) = (db.clone(), clock.clone(), jobs.clone());
            tokio::spawn(async move {
                let mut committer = batch::Committer::new(db);
                loop {
                    let batch = {
                        let mut jobs = committer.wait_for(jobs.lock()).await;
                        let first = committer.wait_for(jobs.recv()).await;
                        let Some(first) = first else { return };
                        let mut batch = vec![first];
                        while batch.len() < MAX_BATCH {
                            match jobs.try_recv() {
                                Ok(job) => batch.push(job),
                                Err(_) => break,
                            }
                        }
                        batch
                    };
                    batch::run(&mut committer, clock.now_ms(), batch).await;
                }
            });
        }
        Engine { queue, changes: Arc::default() }
    }

    /// The hirings changed lately, for the servers' listeners.
    pub fn changes(&self) -> &Arc<HiringChanges> {
        &self.changes
    }

    /// Sends `order` to the next batch and waits for its own answer.
    pub async fn submit(&self, order: Order) -> ApiResult<Done> {
        let (reply, answer) = oneshot::channel();
        let job = Job { order, new_id: uuid::Uuid::now_v7().to_string(), claim: idempotency::current_claim(), reply };
        self.queue.send(job).await.map_err(|_| ApiError::Internal(anyhow::anyhow!("the task engine stopped")))?;
        let done =
            answer.await.map_err(|_| ApiError::Internal(anyhow::anyhow!("the task engine dropped a command")))??;
        if done.reply != Reply::Unchanged {
            self.changes.announce(&done.task);
        }
        Ok(done)
    }

    pub async fn create(&self, create: Create) -> ApiResult<Done> {
        self.submit(Order::Create(Box::new(create))).await
    }

    pub async fn act(&self, actor: &Actor, task_id: &str, command: Command) -> ApiResult<Done> {
        self.submit(Order::Act { task_id: task_id.to_string(), actor: actor.clone(), command }).await
    }
}
