//! agentmarket: an open, self-hostable agent marketplace implementing the Agrenting API.
//!
//! `App::build` connects the database, runs migrations and wires the router; `App::serve`
//! runs it on a listener (port 0 in tests).

pub mod accounts;
pub mod agents;
pub mod alloc;
pub mod auth;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod error;
pub mod hex;
pub mod http;
pub mod ledger;
pub mod mcp;
pub mod money;
pub mod openapi;
pub mod payments;
pub mod routes;
pub mod secrets;
pub mod state;
pub mod tasks;
pub mod text;
pub mod webhooks;

use std::sync::Arc;

use tokio::net::TcpListener;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use config::Config;
use state::AppState;

/// Brings the schema up to date: the migrations, then the constraints built from the code's
/// own types (the task states) and the engine's own full-text index.
pub async fn migrate(db: &db::Db) -> anyhow::Result<()> {
    db.migrate().await?;
    agents::search::ensure(db).await?;
    tasks::store::ensure_states(db).await
}

pub struct App {
    state: AppState,
}

impl App {
    /// Connects, migrates and prepares the application with the system clock.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As `build`, with an injected clock (tests move time forward without sleeping).
    pub async fn build_with_clock(config: Config, clock: SharedClock) -> anyhow::Result<App> {
        let secrets = secrets::load(config.secrets_key.as_ref().map(|k| k.0.as_str()), &config.secrets_key_file)?;
        let db = db::Db::connect(&config.database_url, config.db_max_connections).await?;
        migrate(&db).await?;
        secrets::check_against(&db, &secrets).await?;
        webhooks::seal_plaintext_secrets(&db, &secrets).await?;
        http::metrics_handle();
        let http = http::outbound::client(config.allow_private_network)?;
        let secrets = Arc::new(secrets);
        // SQLite has one writer, so one committer; on PostgreSQL more overlap one batch's
        // round trips with the next one's.
        let committers = if db.engine() == db::Engine::Sqlite { 1 } else { config.engine_committers as usize };
        let engine = tasks::engine::Engine::start(db.clone(), clock.clone(), committers);
        let registrar = agents::Registrar::start(db.clone());
        let ttl = std::time::Duration::from_millis(config.key_cache_ttl_ms);
        let verified_keys = Arc::new(auth::cache::VerifiedKeys::new(ttl));
        let key_uses = Arc::default();
        let config = Arc::new(config);
        let rate_leases = Arc::default();
        let state = AppState::new(state::Parts {
            db,
            config,
            clock,
            http,
            secrets,
            engine,
            registrar,
            verified_keys,
            key_uses,
            rate_leases,
            mcp: Arc::default(),
        });
        Ok(App { state })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish (see `http::server`).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let config = &self.state.config;
        let sweeper = (config.sweep_interval_secs > 0).then(|| {
            let every = std::time::Duration::from_secs(config.sweep_interval_secs);
            tokio::spawn(repeat(self.state.clone(), every, "sweeper", |s| async move {
                tasks::sweeper::run_once(&s).await.map(drop)
            }))
        });
        let deliveries = (config.webhook_interval_ms > 0).then(|| {
            let every = std::time::Duration::from_millis(config.webhook_interval_ms);
            tokio::spawn(repeat(self.state.clone(), every, "webhook delivery", |s| async move {
                webhooks::worker::run_once(&s).await.map(drop)
            }))
        });
        let key_uses =
            tokio::spawn(repeat(self.state.clone(), std::time::Duration::from_secs(1), "key use", |s| async move {
                Ok(s.flush_key_uses().await?)
            }));
        let checkpoints = (self.state.db.engine() == db::Engine::Sqlite).then(|| {
            tokio::spawn(repeat(self.state.clone(), db::CHECKPOINT_EVERY, "WAL checkpoint", |s| async move {
                Ok(s.db.checkpoint().await?)
            }))
        });
        let mcp_listener = tokio::spawn(mcp::hub::listen(self.state.clone()));
        let limits = http::server::ConnectionLimits::from_config(config);
        tracing::info!(
            max_connections = limits.max_connections,
            header_read_timeout = ?limits.header_read_timeout,
            idle_timeout = ?limits.idle_timeout,
            request_timeout = ?config.request_timeout,
            "connection limits"
        );
        // Open MCP event streams never end by themselves: shutting down ends them, so the
        // server does not wait for their clients.
        let hub = self.state.mcp.clone();
        let shutdown = async move {
            shutdown.await;
            hub.close_all();
        };
        http::server::serve(listener, self.router(), limits, shutdown).await;
        for worker in [sweeper, deliveries, checkpoints, Some(key_uses), Some(mcp_listener)].into_iter().flatten() {
            worker.abort();
        }
        let _ = self.state.flush_key_uses().await;
        self.state.db.close().await;
        Ok(())
    }
}

/// Runs `pass` every `every` until the task is aborted; a failed pass is logged and retried on
/// the next tick. Each pass is safe to run in several server processes at once.
async fn repeat<F, Fut>(state: AppState, every: std::time::Duration, what: &'static str, pass: F)
where
    F: Fn(AppState) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = pass(state.clone()).await {
            tracing::warn!(error = %e, "{what} pass failed");
        }
    }
}
