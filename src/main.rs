//! The `agentmarket` binary: `serve` (the default), `migrate`, and `admin` tasks.

use agentmarket::text::{Line, Text};
use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use agentmarket::accounts::users::{self, SignUpRequest};
use agentmarket::config::{Config, LogFormat};
use agentmarket::{App, Clock, SystemClock, db, ledger, tasks};

#[global_allocator]
static ALLOCATOR: agentmarket::alloc::Allocator = agentmarket::alloc::Allocator;

#[derive(Parser)]
#[command(name = "agentmarket", version, about = "Open, self-hostable agent marketplace")]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Operator tasks.
    #[command(subcommand)]
    Admin(Admin),
}

#[derive(Subcommand)]
enum Admin {
    /// Create a user and print its first API key (shown once).
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long, env = "AGENTMARKET_ADMIN_PASSWORD")]
        password: String,
        #[arg(long)]
        name: Option<String>,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Credit a wallet: a user's email, or an agent's id or DID.
    Credit {
        #[arg(long)]
        principal: String,
        /// USD, e.g. 100.00.
        #[arg(long)]
        amount: String,
        #[arg(long, default_value = "operator credit")]
        reason: String,
    },
    /// Confirm a pending manual deposit.
    ConfirmDeposit { id: String },
    /// Complete (the payout happened) or fail (the money returns) a pending withdrawal.
    Withdrawal {
        id: String,
        #[arg(long, conflicts_with = "fail")]
        complete: bool,
        #[arg(long)]
        fail: bool,
        #[arg(long)]
        reason: Option<String>,
        /// With --complete: the payout's transaction hash or reference.
        #[arg(long, requires = "complete")]
        tx_hash: Option<String>,
    },
    /// Rule on a dispute (by dispute id or task id).
    Resolve {
        id: String,
        /// refund, release or split.
        #[arg(long)]
        outcome: String,
        /// For split: the client's share in basis points (default 5000).
        #[arg(long)]
        client_share_bps: Option<i64>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Check every ledger invariant; exits non-zero when one fails.
    Audit,
    /// Ask the payment providers about every pending provider deposit and apply what their
    /// callbacks missed (the same code as a callback: nothing is credited twice).
    ReconcileDeposits {
        /// Most deposits to look at in this run (oldest first).
        #[arg(long, default_value_t = 1000)]
        limit: i64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config).await,
        Command::Migrate => {
            let db = db::Db::connect(&cli.config.database_url, 1).await?;
            agentmarket::migrate(&db).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin(task) => admin(&cli.config, task).await,
    }
}

async fn admin(config: &Config, task: Admin) -> anyhow::Result<()> {
    let db = db::Db::connect(&config.database_url, 2).await?;
    agentmarket::migrate(&db).await?;
    let now = SystemClock.now_ms();
    let api = |e: agentmarket::error::ApiError| anyhow::anyhow!("{}: {e}", e.code());
    match task {
        Admin::CreateUser { email, password, name, admin } => {
            let signup = SignUpRequest {
                email: Some(Line::field("email", email).map_err(api)?),
                password: Some(Text::field("password", password).map_err(api)?),
                name: name.map(|n| Line::field("name", n)).transpose().map_err(api)?,
            }
            .validate()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let (user, _key, secret) =
                users::register(&db, signup, admin, SystemClock.now_ms()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created user {} ({}){}", user.email, user.id, if admin { " as administrator" } else { "" });
            println!("API key (shown once): {}", secret.expose());
        }
        Admin::Credit { principal, amount, reason } => {
            let amount = agentmarket::money::Amount::parse_at_most(&amount, config.max_amount)
                .map_err(|e| anyhow::anyhow!("amount {e}"))?;
            let wallet = ledger::routes::find_principal(&db, &principal).await.map_err(api)?;
            let id = ledger::deposits::credit(&db, &wallet, amount, &reason, now).await.map_err(api)?;
            println!("credited {amount} USD to {wallet} (transaction {id})");
        }
        Admin::ConfirmDeposit { id } => {
            let d = ledger::deposits::confirm(&db, &id, now).await.map_err(api)?;
            println!("deposit {} of {} USD confirmed for {}", d.id, d.amount, d.principal);
        }
        Admin::Withdrawal { id, complete, fail, reason, tx_hash } => {
            anyhow::ensure!(complete ^ fail, "say --complete or --fail");
            let payout = tx_hash
                .map(|t| ledger::withdrawals::PayoutReference::parse("--tx-hash", &t))
                .transpose()
                .map_err(api)?;
            let w = ledger::withdrawals::finish(&db, &id, complete, reason, payout, now).await.map_err(api)?;
            println!("withdrawal {} is {}", w.id, w.status);
        }
        Admin::Resolve { id, outcome, client_share_bps, note } => {
            let req = tasks::disputes::ResolveRequest {
                outcome: Some(Line::field("outcome", outcome).map_err(api)?),
                client_share_bps,
                note: note.map(|n| Text::field("note", n)).transpose().map_err(api)?,
            };
            let engine = tasks::engine::Engine::start(db.clone(), std::sync::Arc::new(SystemClock), 1);
            let d = tasks::disputes::resolve(&db, &engine, &id, req).await.map_err(api)?;
            println!("dispute {} on task {} resolved: {}", d.id, d.task_id, d.outcome.unwrap_or_default());
        }
        Admin::ReconcileDeposits { limit } => {
            db.close().await;
            let app = App::build(config.clone()).await?;
            let report = agentmarket::payments::reconcile::run(app.state(), limit).await?;
            println!(
                "reconciled deposits: {} checked, {} changed, {} could not be checked",
                report.checked, report.changed, report.errors
            );
            app.state().db.close().await;
            anyhow::ensure!(report.errors == 0, "some deposits could not be reconciled (see the log)");
            return Ok(());
        }
        Admin::Audit => {
            let started = std::time::Instant::now();
            let report = ledger::audit::run_and_record(&db, now).await?;
            for inv in &report.invariants {
                println!("{} {}", if inv.ok { "ok  " } else { "FAIL" }, inv.name);
                for v in &inv.violations {
                    println!("     {v}");
                }
            }
            db.close().await;
            anyhow::ensure!(report.ok, "the ledger audit found violations");
            println!("ledger audit: every invariant holds ({} ms)", started.elapsed().as_millis());
            return Ok(());
        }
    }
    db.close().await;
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let bind = config.bind;
    let app = App::build(config).await?;
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("cannot listen on {bind}"))?;
    tracing::info!(address = %listener.local_addr()?, "agentmarket listening");
    app.serve(listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("AGENTMARKET_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}
