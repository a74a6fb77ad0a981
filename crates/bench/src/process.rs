//! Servers as child processes, so their CPU time can be read apart from the load generator's:
//! the real gateway (`promo serve`'s code path, configured from the environment) and a bare tonic
//! no-op server, both this same program re-executed in a child role. A benchmark's `main` calls
//! [`child_role`] first.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use crate::{histogram, summary};

/// The JWT secret child gateways are started with (tokens for them are signed with it).
pub const CHILD_SECRET: &str = "selection-bench-secret-selection-bench";

/// Runs this process as a child server when its arguments say so; `None` otherwise.
pub async fn child_role() -> Option<anyhow::Result<()>> {
    let mut raw = std::env::args().skip(1);
    match raw.next().as_deref() {
        Some(CHILD_GATEWAY) => Some(child_gateway(raw.next().unwrap_or_default()).await),
        Some(CHILD_NOOP) => Some(child_noop().await),
        _ => None,
    }
}

/// The child roles this program can be re-executed in.
pub const CHILD_GATEWAY: &str = "--child-gateway";
pub const CHILD_NOOP: &str = "--child-noop";

/// Serves the gateway exactly as `promo serve` does, configured from the environment.
pub async fn child_gateway(listen: String) -> anyhow::Result<()> {
    let flags = gateway::config::FlagOverrides {
        listen: Some(listen),
        ..Default::default()
    };
    let config = gateway::Config::load(None, &flags).map_err(anyhow::Error::msg)?;
    let address = config.listen_addr().map_err(anyhow::Error::msg)?;
    let app = gateway::build(config, Arc::new(kernel::SystemClock)).await?;
    let listener = tokio::net::TcpListener::bind(address).await?;
    app.run(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// A bare tonic server with one unary RPC that does nothing (grpc.health.v1.Health/Check) and no
/// gateway layers; prints its address.
pub async fn child_noop() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    tonic::transport::Server::builder()
        .add_service(health)
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await?;
    Ok(())
}

/// (user + system) CPU time of a process, in microseconds, from /proc.
pub fn cpu_micros(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or(&stat);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let per_second = 100; // USER_HZ on Linux
    Ok(ticks * 1_000_000 / per_second)
}

pub fn resident_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
    Ok((kib / 1024.0 * 10.0).round() / 10.0)
}

pub struct Server {
    pub child: Child,
    pub address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn wait_for_port(address: &str) -> anyhow::Result<Channel> {
    for _ in 0..200 {
        if let Ok(channel) = Channel::from_shared(format!("http://{address}"))?
            .connect()
            .await
        {
            return Ok(channel);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{address} did not come up")
}

pub async fn start_gateway(data_dir: &std::path::Path) -> anyhow::Result<Server> {
    start_gateway_with(data_dir, &[]).await
}

/// [`start_gateway`] with more `PROMO_*` environment (a database URL, an HTTP listener).
pub async fn start_gateway_with(
    data_dir: &std::path::Path,
    environment: &[(&str, String)],
) -> anyhow::Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let address = format!("127.0.0.1:{port}");
    let child = Command::new(std::env::current_exe()?)
        .args([CHILD_GATEWAY, &address])
        .env("PROMO_DATA_DIR", data_dir)
        .env("PROMO_JWT_SECRET", CHILD_SECRET)
        .env("PROMO_LIMITS__RATE_LIMIT_PER_SECOND", "10000000")
        .env("PROMO_LIMITS__RATE_LIMIT_BURST", "100000000")
        .env("PROMO_LIMITS__MAX_CONCURRENT_REQUESTS", "100000")
        .env("PROMO_LIMITS__HTTP_RATE_LIMIT_PER_SECOND", "10000000")
        .env("PROMO_LIMITS__HTTP_RATE_LIMIT_BURST", "100000000")
        .env("PROMO_LIMITS__MAX_MESSAGE_BYTES", "67108864")
        .env("RUST_LOG", "warn")
        .envs(
            environment
                .iter()
                .map(|(name, value)| (*name, value.as_str())),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Server { child, address })
}

pub fn start_noop() -> anyhow::Result<Server> {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe()?)
        .arg(CHILD_NOOP)
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut address = String::new();
    std::io::BufReader::new(stdout).read_line(&mut address)?;
    Ok(Server {
        child,
        address: address.trim().to_owned(),
    })
}

pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// `clients` tasks calling `call` in a closed loop for `seconds`, or at `rate` calls/s in total.
pub async fn drive<F, Fut>(
    clients: usize,
    seconds: u64,
    rate: Option<u64>,
    call: F,
) -> anyhow::Result<(u64, Duration, hdrhistogram::Histogram<u64>)>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = histogram()?;
            let mut calls = 0u64;
            // Open loop at a fixed total rate, each client's ticks offset so calls spread evenly.
            let mut ticker = rate.map(|rate| {
                let period = Duration::from_secs_f64(clients as f64 / rate as f64);
                let offset = period.mul_f64(client as f64 / clients as f64);
                let mut interval =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                interval
            });
            while Instant::now() < deadline {
                if let Some(ticker) = ticker.as_mut() {
                    ticker.tick().await;
                }
                let begun = Instant::now();
                call().await?;
                latencies.record(begun.elapsed().as_micros().max(1) as u64)?;
                calls += 1;
            }
            anyhow::Ok((calls, latencies))
        }));
    }
    let mut latencies = histogram()?;
    let mut calls = 0;
    for task in tasks {
        let (count, histogram) = task.await??;
        calls += count;
        latencies.add(histogram)?;
    }
    Ok((calls, started.elapsed(), latencies))
}

pub async fn measure<F, Fut>(
    pid: u32,
    clients: usize,
    seconds: u64,
    fixed_rate: u64,
    call: F,
) -> anyhow::Result<serde_json::Value>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    drive(clients, 1, None, call.clone()).await?;
    let cpu_before = cpu_micros(pid)?;
    let (calls, elapsed, latencies) = drive(clients, seconds, None, call.clone()).await?;
    let cpu = cpu_micros(pid)? - cpu_before;
    let mut closed = summary(calls, elapsed, &latencies);
    closed["server_cpu_us_per_call"] = ((cpu as f64 / calls as f64 * 10.0).round() / 10.0).into();
    let (calls, elapsed, latencies) = drive(clients, seconds, Some(fixed_rate), call).await?;
    let fixed = summary(calls, elapsed, &latencies);
    Ok(serde_json::json!({ "closed_loop": closed, "fixed_rate": fixed }))
}

/// The yardstick: a bare tonic server in its own process, measured as [`measure`] measures the
/// gateway (Health/Check, the same clients, seconds and fixed rate).
pub async fn measure_noop(
    clients: usize,
    seconds: u64,
    fixed_rate: u64,
) -> anyhow::Result<serde_json::Value> {
    let noop = start_noop()?;
    let pid = noop.child.id();
    let channel = wait_for_port(&noop.address).await?;
    let check = move || {
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        async move {
            client
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await?;
            anyhow::Ok(())
        }
    };
    eprintln!("no-op tonic server: Health/Check");
    let result = measure(pid, clients, seconds, fixed_rate, check).await?;
    drop(noop);
    Ok(result)
}

/// Server CPU-µs per call of a [`measure`] result's closed loop.
pub fn cpu_per_call(result: &serde_json::Value) -> f64 {
    result["closed_loop"]["server_cpu_us_per_call"]
        .as_f64()
        .unwrap_or(0.0)
}
