//! Selection cost: the real gateway (`promo serve`, SQLite) against a bare tonic no-op server, both
//! as child processes, driven by 32 concurrent clients over gRPC from this process.
//!
//! cargo run --release -p bench --bin selection -- [--seconds 8] [--materials 2000] [--promotions 200]
//!
//! The two servers are this same program re-executed in a child role (`--child-gateway`, which
//! serves exactly as `promo serve` does, and `--child-noop`), so one command builds and runs it all.
//!
//! Prints JSON: for each server, closed-loop calls/s with p50/p99 and server CPU-µs per call, then
//! p50/p99 at a fixed 5,000 calls/s; for the gateway, its resident memory after loading.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::{histogram, summary};
use gateway::token::TokenIssuer;
use kernel::Role;
use proto::ledger::v1 as ledger;
use proto::promotion::v1 as pb;
use tonic::transport::Channel;
use uuid::Uuid;

const CLIENTS: usize = 32;
const SECRET: &str = "selection-bench-secret-selection-bench";
const TYPES: [&str; 5] = ["wood", "metal", "glass", "fabric", "stone"];

struct Args {
    seconds: u64,
    materials: usize,
    promotions: usize,
    fixed_rate: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        seconds: 8,
        materials: 2_000,
        promotions: 200,
        fixed_rate: 5_000,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        let mut value = || {
            iter.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--seconds" => args.seconds = value()?.parse()?,
            "--materials" => args.materials = value()?.parse()?,
            "--promotions" => args.promotions = value()?.parse()?,
            "--rate" => args.fixed_rate = value()?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    anyhow::ensure!(
        args.promotions <= args.materials,
        "--promotions must not exceed --materials"
    );
    Ok(args)
}

/// The child roles this program can be re-executed in.
const CHILD_GATEWAY: &str = "--child-gateway";
const CHILD_NOOP: &str = "--child-noop";

/// Serves the gateway exactly as `promo serve` does, configured from the environment.
async fn child_gateway(listen: String) -> anyhow::Result<()> {
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
async fn child_noop() -> anyhow::Result<()> {
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
fn cpu_micros(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or(&stat);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let per_second = 100; // USER_HZ on Linux
    Ok(ticks * 1_000_000 / per_second)
}

fn resident_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
    Ok((kib / 1024.0 * 10.0).round() / 10.0)
}

struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for_port(address: &str) -> anyhow::Result<Channel> {
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

async fn start_gateway(data_dir: &std::path::Path) -> anyhow::Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let address = format!("127.0.0.1:{port}");
    let child = Command::new(std::env::current_exe()?)
        .args([CHILD_GATEWAY, &address])
        .env("PROMO_DATA_DIR", data_dir)
        .env("PROMO_JWT_SECRET", SECRET)
        .env("PROMO_LIMITS__RATE_LIMIT_PER_SECOND", "10000000")
        .env("PROMO_LIMITS__RATE_LIMIT_BURST", "100000000")
        .env("PROMO_LIMITS__MAX_CONCURRENT_REQUESTS", "100000")
        .env("PROMO_LIMITS__MAX_MESSAGE_BYTES", "67108864")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Server { child, address })
}

fn start_noop() -> anyhow::Result<Server> {
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

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// Materials of five types (platform-owned except the promoted ones), a factory with credits, and
/// `promotions` active promotions.
async fn load(
    channel: Channel,
    issuer: &TokenIssuer,
    workspace_id: Uuid,
    args: &Args,
) -> anyhow::Result<()> {
    let admin = issuer
        .issue(Uuid::new_v4(), workspace_id, &[Role::Admin], 7200)
        .map_err(anyhow::Error::msg)?;
    let factory = Uuid::new_v4();
    let factory_token = issuer
        .issue(factory, workspace_id, &[Role::Factory], 7200)
        .map_err(anyhow::Error::msg)?;
    let mut materials_client =
        pb::material_service_client::MaterialServiceClient::new(channel.clone())
            .max_encoding_message_size(64 << 20)
            .max_decoding_message_size(64 << 20);
    let mut promoted = Vec::new();
    let mut created = 0;
    while created < args.materials {
        let batch = (args.materials - created).min(10_000);
        let materials = (0..batch)
            .map(|offset| {
                let index = created + offset;
                pb::Material {
                    name: format!("material {index}"),
                    material_type: TYPES[index % TYPES.len()].to_owned(),
                    owner_id: if index < args.promotions {
                        factory.to_string()
                    } else {
                        String::new()
                    },
                    ..Default::default()
                }
            })
            .collect();
        let response = materials_client
            .import_materials(authed(
                pb::ImportMaterialsRequest {
                    request_id: Uuid::new_v4().to_string(),
                    materials,
                },
                &admin,
            ))
            .await?
            .into_inner();
        promoted.extend(
            response
                .materials
                .into_iter()
                .filter(|m| !m.owner_id.is_empty())
                .map(|m| m.id),
        );
        created += batch;
    }
    let billing = issuer
        .issue(Uuid::new_v4(), workspace_id, &[Role::Billing], 7200)
        .map_err(anyhow::Error::msg)?;
    ledger::ledger_service_client::LedgerServiceClient::new(channel.clone())
        .purchase_credits(authed(
            ledger::PurchaseCreditsRequest {
                request_id: Uuid::new_v4().to_string(),
                owner_id: factory.to_string(),
                amount: 1_000_000_000,
                payment_reference: "bench".to_owned(),
            },
            &billing,
        ))
        .await?;
    let mut tasks = Vec::new();
    for chunk in promoted.chunks(promoted.len().div_ceil(16).max(1)) {
        let (chunk, channel, token) = (chunk.to_vec(), channel.clone(), factory_token.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = pb::promotion_service_client::PromotionServiceClient::new(channel);
            for (index, material_id) in chunk.into_iter().enumerate() {
                let request = pb::CreatePromotionRequest {
                    request_id: Uuid::new_v4().to_string(),
                    material_id,
                    credits: 100 + (index as i64 % 10) * 100,
                    ..Default::default()
                };
                client.create_promotion(authed(request, &token)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// `CLIENTS` tasks calling `call` in a closed loop for `seconds`, or at `rate` calls/s in total.
async fn drive<F, Fut>(
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
    for client in 0..CLIENTS {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = histogram()?;
            let mut calls = 0u64;
            // Open loop at a fixed total rate, each client's ticks offset so calls spread evenly.
            let mut ticker = rate.map(|rate| {
                let period = Duration::from_secs_f64(CLIENTS as f64 / rate as f64);
                let offset = period.mul_f64(client as f64 / CLIENTS as f64);
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

async fn measure<F, Fut>(pid: u32, args: &Args, call: F) -> anyhow::Result<serde_json::Value>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    drive(1, None, call.clone()).await?;
    let cpu_before = cpu_micros(pid)?;
    let (calls, elapsed, latencies) = drive(args.seconds, None, call.clone()).await?;
    let cpu = cpu_micros(pid)? - cpu_before;
    let mut closed = summary(calls, elapsed, &latencies);
    closed["server_cpu_us_per_call"] = ((cpu as f64 / calls as f64 * 10.0).round() / 10.0).into();
    let (calls, elapsed, latencies) = drive(args.seconds, Some(args.fixed_rate), call).await?;
    let fixed = summary(calls, elapsed, &latencies);
    Ok(serde_json::json!({ "closed_loop": closed, "fixed_rate": fixed }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut raw = std::env::args().skip(1);
    match raw.next().as_deref() {
        Some(CHILD_GATEWAY) => return child_gateway(raw.next().unwrap_or_default()).await,
        Some(CHILD_NOOP) => return child_noop().await,
        _ => {}
    }
    let args = parse_args()?;
    let data_dir = tempfile::tempdir()?;
    let gateway = start_gateway(data_dir.path()).await?;
    let channel = wait_for_port(&gateway.address).await?;
    let database = sea_orm::Database::connect(format!(
        "sqlite://{}",
        data_dir.path().join("promo.db").display()
    ))
    .await?;
    let workspace_id = kernel::workspace::find_by_name(&database, "default")
        .await?
        .ok_or_else(|| anyhow::anyhow!("no default"))?
        .id;
    let issuer = TokenIssuer::new(SECRET.as_bytes());
    let loading = Instant::now();
    eprintln!(
        "loading {} materials and {} promotions",
        args.materials, args.promotions
    );
    load(channel.clone(), &issuer, workspace_id, &args).await?;
    let load_seconds = loading.elapsed().as_secs_f64();
    let generator = issuer
        .issue(Uuid::new_v4(), workspace_id, &[Role::Generator], 7200)
        .map_err(anyhow::Error::msg)?;
    let generator = Arc::new(generator);
    let select = {
        let channel = channel.clone();
        move || {
            let (mut client, token) = (
                pb::selection_service_client::SelectionServiceClient::new(channel.clone()),
                generator.clone(),
            );
            async move {
                let request = pb::SelectMaterialsRequest {
                    request_id: Uuid::new_v4().to_string(),
                    material_types: vec!["wood".to_owned()],
                    ..Default::default()
                };
                client.select_materials(authed(request, &token)).await?;
                anyhow::Ok(())
            }
        }
    };
    let gateway_pid = gateway.child.id();
    eprintln!("gateway: SelectMaterials");
    let gateway_result = measure(gateway_pid, &args, select).await?;
    let resident = resident_mib(gateway_pid)?;
    drop(gateway);

    let noop = start_noop()?;
    let pid = noop.child.id();
    let noop_channel = wait_for_port(&noop.address).await?;
    let check = move || {
        let mut client = tonic_health::pb::health_client::HealthClient::new(noop_channel.clone());
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
    let noop_result = measure(pid, &args, check).await?;
    drop(noop);
    let ratio = gateway_result["closed_loop"]["server_cpu_us_per_call"]
        .as_f64()
        .unwrap_or(0.0)
        / noop_result["closed_loop"]["server_cpu_us_per_call"]
            .as_f64()
            .unwrap_or(1.0)
            .max(0.1);
    let report = serde_json::json!({
        "benchmark": "selection",
        "clients": CLIENTS,
        "seconds_per_phase": args.seconds,
        "materials": args.materials,
        "active_promotions": args.promotions,
        "load_seconds": (load_seconds * 10.0).round() / 10.0,
        "gateway_select_materials": gateway_result,
        "gateway_resident_mib": resident,
        "noop_tonic_unary": noop_result,
        "cpu_per_call_ratio": (ratio * 100.0).round() / 100.0,
        "targets": { "cpu_per_call_ratio": "<= 1.5", "p99_ms_at_5000_per_s": "<= 2", "resident_mib_at_1m_materials": "<= 1024" },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
