//! Registrations committed together on SQLite. There every write queues on one connection, so a
//! registration's cost is its statements plus a transaction of its own and a hand-over of the
//! connection; registrations that arrive together are written in one transaction instead, each
//! inside its own savepoint — a refusal (a taken DID, the plan limit, a taken idempotency key)
//! rolls back only itself — and committed once. On PostgreSQL each registration keeps its own
//! transaction: they run side by side, and the counters they share are sharded.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::Registered;
use super::model::AgentFields;
use crate::db::{Db, Engine, Tx};
use crate::error::{ApiError, ApiResult};
use crate::http::idempotency::{self, Claim};

/// Registrations written in one transaction at most.
const MAX_BATCH: usize = 64;

/// What a registration needs once its caller is known.
pub struct Registration {
    pub owner_id: Option<String>,
    pub fields: AgentFields,
    pub max_agents_per_user: Option<i64>,
    pub now: i64,
}

struct Job {
    registration: Registration,
    /// The request's idempotency key, recorded in the registration's savepoint.
    claim: Option<Arc<Claim>>,
    reply: oneshot::Sender<ApiResult<Registered>>,
}

/// A handle to the registrations' writer (cheap to clone; in `AppState`).
#[derive(Clone)]
pub struct Registrar {
    db: Db,
    /// SQLite only: the batch loop's queue.
    queue: Option<mpsc::Sender<Job>>,
}

impl Registrar {
    pub fn start(db: Db) -> Registrar {
        if db.engine() != Engine::Sqlite {
            return Registrar { db, queue: None };
        }
        let (queue, mut jobs) = mpsc::channel::<Job>(1024);
        let writer = db.clone();
        tokio::spawn(async move {
            while let Some(first) = jobs.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                run(&writer, batch).await;
            }
        });
        Registrar { db, queue: Some(queue) }
    }

    pub async fn register(&self, registration: Registration) -> ApiResult<Registered> {
        let Some(queue) = &self.queue else {
            let mut tx = self.db.begin().await?;
            let registered = super::register_in(&self.db, &mut tx, registration).await?;
            tx.commit().await?;
            return Ok(registered);
        };
        let (reply, answer) = oneshot::channel();
        let job = Job { registration, claim: idempotency::current_claim(), reply };
        let stopped = || ApiError::Internal(anyhow::anyhow!("the registrations' writer stopped"));
        queue.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Writes a batch in one transaction and answers each job with its own result.
async fn run(db: &Db, jobs: Vec<Job>) {
    let mut tx = match db.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            let message = e.to_string();
            for job in jobs {
                let _ = job.reply.send(Err(ApiError::Internal(anyhow::anyhow!("{message}"))));
            }
            return;
        }
    };
    let mut written = Vec::with_capacity(jobs.len());
    for Job { registration, claim, reply } in jobs {
        let result = in_savepoint(db, &mut tx, registration, claim.as_ref()).await;
        written.push((claim, reply, result));
    }
    let committed = tx.commit().await;
    for (claim, reply, result) in written {
        let answer = match (&committed, result) {
            (Ok(()), Ok(registered)) => {
                if let Some(claim) = claim {
                    claim.committed();
                }
                Ok(registered)
            }
            (Ok(()), Err(refused)) => Err(refused),
            (Err(e), _) => Err(ApiError::Internal(anyhow::anyhow!("the registrations' commit failed: {e}"))),
        };
        let _ = reply.send(answer);
    }
}

/// One registration, its idempotency key first, undone alone when it fails.
async fn in_savepoint(
    db: &Db,
    tx: &mut Tx,
    registration: Registration,
    claim: Option<&Arc<Claim>>,
) -> ApiResult<Registered> {
    sqlx::query("SAVEPOINT registration").execute(&mut **tx).await?;
    let result = async {
        if let Some(claim) = claim
            && !idempotency::record_claims(tx, std::slice::from_ref(claim)).await?[0]
        {
            claim.lost();
            return Err(idempotency::pending());
        }
        super::register_in(db, tx, registration).await
    }
    .await;
    if result.is_err() {
        sqlx::query("ROLLBACK TO registration").execute(&mut **tx).await?;
    }
    sqlx::query("RELEASE registration").execute(&mut **tx).await?;
    result
}
