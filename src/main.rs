//! The `agentmarket` binary: `serve` (the default), `migrate`, and `admin` tasks.

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use agentmarket::accounts::users::{self, SignUpRequest};
use agentmarket::config::{Config, LogFormat};
use agentmarket::{App, Clock, SystemClock, db};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config).await,
        Command::Migrate => {
            let db = db::Db::connect(&cli.config.database_url, 1).await?;
            db.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin(Admin::CreateUser { email, password, name, admin }) => {
            let db = db::Db::connect(&cli.config.database_url, 1).await?;
            db.migrate().await?;
            let signup = SignUpRequest { email: Some(email), password: Some(password), name }
                .validate()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let (user, _key, secret) =
                users::register(&db, signup, admin, SystemClock.now_ms()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created user {} ({}){}", user.email, user.id, if admin { " as administrator" } else { "" });
            println!("API key (shown once): {}", secret.expose());
            Ok(())
        }
    }
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
