//! Shared pieces of the benchmark programs: starting the real gateway, fresh databases, latency
//! histograms and pgbench as the yardstick.
#![forbid(unsafe_code)]

pub mod process;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use gateway::Config;
use hdrhistogram::Histogram;
use kernel::{Role, SystemClock};
use tokio::sync::oneshot;
use tonic::transport::Channel;
use uuid::Uuid;

/// The gateway running in this process, and what a client needs to call it.
pub struct Gateway {
    pub address: std::net::SocketAddr,
    pub token: String,
    pub workspace_id: Uuid,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _data_dir: tempfile::TempDir,
}

/// Which database a run uses.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// An admin URL of a PostgreSQL server on which a fresh database is created.
    Postgres(String),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgresql",
        }
    }
}

/// Creates `name` afresh on the server behind `admin_url` and returns its URL.
pub async fn fresh_postgres_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    Ok(kernel::db::create_postgres_database(admin_url, name).await?)
}

impl Gateway {
    /// Starts the real gateway on 127.0.0.1:0 with limits opened up for load generation.
    pub async fn start(backend: &Backend) -> anyhow::Result<Gateway> {
        let data_dir = tempfile::tempdir()?;
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", data_dir.path().join("bench.db").display()),
            Backend::Postgres(admin_url) => {
                fresh_postgres_database(admin_url, "promo_bench").await?
            }
        };
        let mut config = Config {
            listen: "127.0.0.1:0".to_owned(),
            database_url,
            data_dir: data_dir.path().to_path_buf(),
            jwt_secret: "bench-secret-bench-secret-bench-secret".to_owned(),
            ..Config::default()
        };
        config.limits.rate_limit_per_second = 10_000_000;
        config.limits.rate_limit_burst = 10_000_000;
        config.limits.max_concurrent_requests = 100_000;
        config.limits.max_message_bytes = 64 * 1024 * 1024;
        config.database.max_connections = 32;
        let app = gateway::build(config, Arc::new(SystemClock)).await?;
        let workspace_id = kernel::workspace::find_by_name(app.context.db.connection(), "default")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no default workspace"))?
            .id;
        let token = app
            .issuer
            .issue(Uuid::new_v4(), workspace_id, &[Role::Admin], 3600)
            .map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (shutdown, signal) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run(listener, async {
            let _ = signal.await;
        }));
        Ok(Gateway {
            address,
            token,
            workspace_id,
            shutdown: Some(shutdown),
            server,
            _data_dir: data_dir,
        })
    }

    /// `count` HTTP/2 connections to the gateway (calls are spread over them).
    pub async fn channels(&self, count: usize) -> anyhow::Result<Vec<Channel>> {
        let mut channels = Vec::with_capacity(count);
        for _ in 0..count {
            channels.push(
                Channel::from_shared(format!("http://{}", self.address))?
                    .connect()
                    .await?,
            );
        }
        Ok(channels)
    }

    pub fn authed<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(value) = format!("Bearer {}", self.token).parse() {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.server.await??;
        Ok(())
    }
}

/// A latency histogram in microseconds.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// `{calls_per_s, p50_ms, p99_ms}` style summary of one measured phase.
pub fn summary(
    operations: u64,
    elapsed: Duration,
    latencies: &Histogram<u64>,
) -> serde_json::Value {
    let seconds = elapsed.as_secs_f64();
    serde_json::json!({
        "operations": operations,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "per_second": (operations as f64 / seconds).round(),
        "p50_ms": latencies.value_at_quantile(0.50) as f64 / 1000.0,
        "p99_ms": latencies.value_at_quantile(0.99) as f64 / 1000.0,
        "calls": latencies.len(),
    })
}

/// Runs PostgreSQL's pgbench tpcb-like workload (default durability) against a fresh database
/// on the server of `admin_url` and returns its tps (excluding connection time).
pub async fn pgbench(
    admin_url: &str,
    scale: u32,
    clients: u32,
    seconds: u32,
) -> anyhow::Result<f64> {
    let url = fresh_postgres_database(admin_url, "promo_pgbench").await?;
    let init = Command::new("pgbench")
        .args(["-i", "-q", "-s", &scale.to_string(), &url])
        .output()?;
    anyhow::ensure!(
        init.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let run = Command::new("pgbench")
        .args([
            "-b",
            "tpcb-like",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            &url,
        ])
        .output()?;
    anyhow::ensure!(
        run.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    stdout
        .lines()
        .find(|line| line.starts_with("tps = "))
        .and_then(|line| line.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|tps| tps.parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output: {stdout}"))
}
