//! `promo`: the gateway binary and the ops CLI.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use gateway::config::{Config, FlagOverrides};
use kernel::workspace;
use kernel::{Role, SystemClock};
use migrations::{Migrator, MigratorTrait};
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "promo",
    version,
    about = "Promotion & monetization platform gateway"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args)]
struct GlobalArgs {
    /// TOML configuration file (default: ./promo.toml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// gRPC listen address (PROMO_LISTEN).
    #[arg(long, global = true)]
    listen: Option<String>,
    /// sqlite://… or postgres://… (PROMO_DATABASE_URL).
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Directory of the embedded database and generated secret (PROMO_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Prometheus /metrics listen address (PROMO_METRICS_LISTEN).
    #[arg(long, global = true)]
    metrics_listen: Option<String>,
    /// HTTP listen address for short links, `GET /l/{code}` (PROMO_HTTP_LISTEN).
    #[arg(long, global = true)]
    http_listen: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Apply pending migrations, or roll back with --down.
    Migrate {
        /// Roll back this many migrations instead of applying.
        #[arg(long)]
        down: Option<u32>,
    },
    /// Print a signed JWT (signed with the secret of this data directory or PROMO_JWT_SECRET).
    Token {
        /// Workspace name or id.
        #[arg(long, default_value = "default")]
        workspace: String,
        /// Principal UUID (the `sub` claim): who the token acts as, e.g. a factory whose wallet
        /// and materials it uses. A new principal when omitted (printed on stderr).
        #[arg(long, value_parser = parse_subject)]
        subject: Option<Uuid>,
        /// Role to grant; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Lifetime such as 15m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Manage workspaces.
    Workspace {
        #[command(subcommand)]
        command: WorkspaceCommand,
    },
    /// Ledger operations.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Show the domain-event outbox: the last position, events waiting for one, and where each
    /// consumer is.
    Events,
    /// List every workspace setting (UpdateSettings update_mask paths) with its documentation
    /// and default.
    Settings,
    /// Load a small demo data set into `default`.
    Demo,
    /// Print a new random UUID (for request ids: no uuidgen needed).
    Uuid,
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Recompute every hash chain, the conservation invariant and every account's balances.
    Verify,
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace (every module unless --module is given).
    Create {
        name: String,
        #[arg(long, default_value = "")]
        display_name: String,
        #[arg(long = "module")]
        modules: Vec<String>,
    },
    /// List workspaces.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Version) => {
            println!("promo {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(Command::Uuid) => {
            println!("{}", Uuid::new_v4());
            return ExitCode::SUCCESS;
        }
        Some(Command::Settings) => {
            print_settings();
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let flags = FlagOverrides {
        listen: cli.global.listen.clone(),
        database_url: cli.global.database_url.clone(),
        data_dir: cli.global.data_dir.clone(),
        metrics_listen: cli.global.metrics_listen.clone(),
        http_listen: cli.global.http_listen.clone(),
    };
    let config = match Config::load(cli.global.config.as_deref(), &flags) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("promo: {message}");
            return ExitCode::from(2);
        }
    };
    let serving = matches!(cli.command, None | Some(Command::Serve));
    if !serving {
        // The server logs these once its log is set up.
        for warning in &config.warnings {
            eprintln!("promo: warning: {warning}");
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("promo: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, cli.command.unwrap_or(Command::Serve))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("promo: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate { down } => migrate(config, down).await,
        Command::Token {
            workspace,
            subject,
            roles,
            ttl,
        } => token(config, &workspace, subject, &roles, &ttl).await,
        Command::Workspace { command } => workspace_command(config, command).await,
        Command::Ledger {
            command: LedgerCommand::Verify,
        } => ledger_verify(config).await,
        Command::Demo => {
            gateway::demo::load(gateway::build(config, Arc::new(SystemClock)).await?).await
        }
        Command::Events => events_status(config).await,
        Command::Version | Command::Uuid | Command::Settings => Ok(()),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let _telemetry = gateway::telemetry::init_tracing(&config)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    if !config.metrics_listen.is_empty() {
        gateway::telemetry::init_metrics(config.metrics_listen.parse()?)?;
    }
    let listen = config.listen_addr().map_err(anyhow::Error::msg)?;
    let app = gateway::build(config, Arc::new(SystemClock)).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    app.run(listener, shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

async fn migrate(config: Config, down: Option<u32>) -> anyhow::Result<()> {
    if config.is_sqlite() {
        std::fs::create_dir_all(&config.data_dir)?;
    }
    let db = kernel::Db::connect(&config.database_url(), &config.db_options()).await?;
    match down {
        Some(steps) => {
            let before = Migrator::get_applied_migrations(db.connection())
                .await?
                .len();
            Migrator::down(db.connection(), Some(steps)).await?;
            let after = Migrator::get_applied_migrations(db.connection())
                .await?
                .len();
            println!(
                "rolled back {} migration(s); {after} remain applied",
                before - after
            );
        }
        None => {
            Migrator::up(db.connection(), None).await?;
            println!("migrations applied");
        }
    }
    Ok(())
}

fn print_settings() {
    let registry = gateway::server::settings_sections();
    let defaults = registry.defaults();
    for path in registry.paths() {
        let who = if path.platform_admin_only {
            " [platform-admin]"
        } else {
            ""
        };
        match defaults.get(path.path.as_str()) {
            Some(default) => println!(
                "{}{who}\n    {}\n    default {default}",
                path.path, path.doc
            ),
            None => println!("{}{who}\n    {}", path.path, path.doc),
        }
    }
    println!("*\n    every path above at once");
}

async fn events_status(config: Config) -> anyhow::Result<()> {
    let app = gateway::build(config, Arc::new(SystemClock)).await?;
    let status = kernel::events::status(&app.context).await?;
    println!("last position {}", status.last_position);
    println!("waiting for a position {}", status.unsequenced);
    if status.consumers.is_empty() {
        println!("no consumers yet");
    }
    for (name, position, owner) in &status.consumers {
        let lag = status.last_position.saturating_sub(*position);
        match owner {
            Some(owner) => {
                println!("consumer {name} at {position} (behind by {lag}), leased by {owner}")
            }
            None => println!("consumer {name} at {position} (behind by {lag}), not leased"),
        }
    }
    Ok(())
}

async fn ledger_verify(config: Config) -> anyhow::Result<()> {
    let app = gateway::build(config, Arc::new(SystemClock)).await?;
    let report = credits_ledger::verify::verify(app.context.db.connection()).await?;
    println!(
        "verified {} workspace chain(s), {} transfer(s), {} account(s)",
        report.workspaces, report.transfers, report.accounts
    );
    for problem in &report.problems {
        println!("PROBLEM {problem}");
    }
    anyhow::ensure!(
        report.problems.is_empty(),
        "{} problem(s) found",
        report.problems.len()
    );
    println!("ledger intact");
    Ok(())
}

/// Parses `15m`, `1h`, `7d` and other humantime durations into seconds, at most `max_seconds`.
/// `--subject`: a canonical, non-nil UUID, parsed as every request field is.
fn parse_subject(value: &str) -> Result<Uuid, String> {
    kernel::ids::parse_uuid_text(value).ok_or_else(|| {
        "must be a UUID in its canonical form (8-4-4-4-12 hex digits), not the nil UUID".to_owned()
    })
}

fn parse_ttl(ttl: &str, max_seconds: u64) -> anyhow::Result<i64> {
    let duration = humantime::parse_duration(ttl)
        .with_context(|| format!("--ttl {ttl:?} is not a duration like 1h"))?;
    let seconds = i64::try_from(duration.as_secs()).context("--ttl is too long")?;
    anyhow::ensure!(
        seconds >= 1 && seconds as u64 <= max_seconds,
        "--ttl must be between 1s and the {max_seconds}s maximum (jwt_max_lifetime_seconds)"
    );
    Ok(seconds)
}

async fn token(
    config: Config,
    workspace: &str,
    subject: Option<Uuid>,
    roles: &[String],
    ttl: &str,
) -> anyhow::Result<()> {
    let roles = roles
        .iter()
        .map(|role| role.parse::<Role>().map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>, _>>()?;
    let ttl_seconds = parse_ttl(ttl, config.jwt_max_lifetime_seconds)?;
    let database = config
        .is_sqlite()
        .then(|| std::path::absolute(config.data_dir.join("promo.db")))
        .transpose()?;
    let new_database = database.as_ref().is_some_and(|path| !path.exists());
    let app = gateway::build(config, Arc::new(SystemClock)).await?;
    // Said on stderr, so `TOKEN=$(promo token …)` still captures only the token.
    if let gateway::token::SecretSource::Created(path) = &app.secret_source {
        eprintln!(
            "promo: no JWT secret was configured or found, so a new one was created at {}.\n\
             promo: only a server reading that file accepts this token: run `promo token` where the server runs \
             (same directory or PROMO_DATA_DIR), or give both the same PROMO_JWT_SECRET.",
            path.display()
        );
    }
    if let (true, Some(path)) = (new_database, &database) {
        eprintln!(
            "promo: there was no database at {}, so a new one (with a new `default` workspace) was created.",
            path.display()
        );
    }
    let connection = app.context.db.connection();
    let row = match kernel::ids::parse_uuid_text(workspace) {
        Some(id) => workspace::get(connection, id).await?,
        None => workspace::find_by_name(connection, workspace).await?,
    }
    .with_context(|| format!("no workspace {workspace:?}"))?;
    let subject = match subject {
        Some(subject) => subject,
        None => {
            let subject = Uuid::new_v4();
            eprintln!(
                "promo: the token acts as a new principal {subject}; pass --subject {subject} to mint another token for it"
            );
            subject
        }
    };
    let token = app
        .issuer
        .issue(subject, row.id, &roles, ttl_seconds)
        .map_err(anyhow::Error::msg)?;
    println!("{token}");
    Ok(())
}

async fn workspace_command(config: Config, command: WorkspaceCommand) -> anyhow::Result<()> {
    let app = gateway::build(config, Arc::new(SystemClock)).await?;
    let db = &app.context.db;
    match command {
        WorkspaceCommand::Create {
            name,
            display_name,
            modules,
        } => {
            workspace::validate_name(&name)?;
            let modules = workspace::parse_modules("module", &modules, true)?;
            let txn = db.begin_write().await?;
            let row = workspace::create(&*txn, &name, &display_name, &modules, chrono::Utc::now())
                .await?;
            txn.commit().await?;
            println!("{}\t{}\t{}", row.id, row.name, row.modules);
        }
        WorkspaceCommand::List => {
            let mut after: Option<String> = None;
            loop {
                let rows = workspace::list(db.connection(), after.as_deref(), 500).await?;
                for row in &rows {
                    println!("{}\t{}\t{}", row.id, row.name, row.modules);
                }
                match rows.last() {
                    Some(last) if rows.len() == 500 => after = Some(last.name.clone()),
                    _ => break,
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_parses_human_durations_within_bounds() {
        let max = 30 * 86_400;
        assert_eq!(parse_ttl("1h", max).ok(), Some(3600));
        assert_eq!(parse_ttl("15m", max).ok(), Some(900));
        assert!(parse_ttl("0s", max).is_err());
        assert!(parse_ttl("soon", max).is_err());
        assert!(parse_ttl("31d", max).is_err());
    }
}
