//! Ledger throughput: the real gateway over gRPC, on SQLite and PostgreSQL, next to pgbench.
//!
//! cargo run --release -p bench --bin ledger -- [--seconds 8] [--postgres URL] [--sqlite-only]
//!
//! Prints one JSON document: for each database, (a) 64 concurrent clients sending one transfer per
//! call across 10,000 accounts, (b) the same with every transfer debiting one hot account, (c) calls
//! of 1,000 transfers; then pgbench tpcb-like (8 clients, scale 10 and scale 1) on the same server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench::{Backend, Gateway, histogram, pgbench, summary};
use proto::ledger::v1 as pb;
use proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;
use uuid::Uuid;

const ACCOUNTS: usize = 10_000;
const CLIENTS: usize = 64;
const BATCH: usize = 1_000;
const BATCH_CLIENTS: usize = 4;
const FUNDING: i64 = 1_000_000_000_000;

struct Args {
    seconds: u64,
    postgres: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        seconds: 8,
        postgres: Some("postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--seconds" => {
                args.seconds = iter
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--seconds N"))?
                    .parse()?
            }
            "--postgres" => {
                args.postgres = Some(
                    iter.next()
                        .ok_or_else(|| anyhow::anyhow!("--postgres URL"))?,
                )
            }
            "--sqlite-only" => args.postgres = None,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

fn transfer(debit: Uuid, credit: Uuid, amount: i64) -> pb::Transfer {
    pb::Transfer {
        id: Uuid::new_v4().to_string(),
        debit_account_id: debit.to_string(),
        credit_account_id: credit.to_string(),
        amount,
        code: "BENCH".to_owned(),
        ..Default::default()
    }
}

/// Accounts: a source that may go negative, a hot account, and ACCOUNTS ordinary ones; every
/// account but the source refuses overdrafts and is funded generously.
async fn set_up(gateway: &Gateway, channel: Channel) -> anyhow::Result<(Uuid, Vec<Uuid>)> {
    let mut client = LedgerServiceClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let source = Uuid::new_v4();
    let hot = Uuid::new_v4();
    let accounts: Vec<Uuid> = (0..ACCOUNTS).map(|_| Uuid::new_v4()).collect();
    let mut all = vec![source, hot];
    all.extend(&accounts);
    for chunk in all.chunks(8000) {
        let request = pb::CreateAccountsRequest {
            accounts: chunk
                .iter()
                .map(|id| pb::Account {
                    id: id.to_string(),
                    asset: "CREDITS".to_owned(),
                    code: "BENCH".to_owned(),
                    flags: Some(pb::AccountFlags {
                        debits_must_not_exceed_credits: *id != source,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
        };
        client.create_accounts(gateway.authed(request)).await?;
    }
    for chunk in all[1..].chunks(8000) {
        let transfers = chunk
            .iter()
            .map(|id| transfer(source, *id, FUNDING))
            .collect();
        let response = client
            .create_transfers(gateway.authed(pb::CreateTransfersRequest { transfers }))
            .await?;
        anyhow::ensure!(
            response
                .get_ref()
                .results
                .iter()
                .all(|r| r.result() == pb::TransferResult::Created),
            "funding failed"
        );
    }
    let _ = hot;
    Ok((hot, accounts))
}

/// `clients` tasks, each sending `batch` transfers per call until `seconds` pass.
async fn drive(
    gateway: &Gateway,
    channels: &[Channel],
    clients: usize,
    batch: usize,
    seconds: u64,
    hot: Option<Uuid>,
    accounts: Arc<Vec<Uuid>>,
) -> anyhow::Result<serde_json::Value> {
    let failures = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for index in 0..clients {
        let mut client = LedgerServiceClient::new(channels[index % channels.len()].clone())
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let accounts = accounts.clone();
        let failures = failures.clone();
        let token = format!("Bearer {}", gateway.token);
        tasks.push(tokio::spawn(async move {
            let mut latencies = histogram()?;
            let mut transfers_sent = 0u64;
            let mut rng = StdRng::seed_from_u64(index as u64);
            while Instant::now() < deadline {
                let transfers: Vec<pb::Transfer> = (0..batch)
                    .map(|_| {
                        let debit =
                            hot.unwrap_or_else(|| accounts[rng.random_range(0..accounts.len())]);
                        let mut credit = accounts[rng.random_range(0..accounts.len())];
                        if credit == debit {
                            credit = accounts
                                [(rng.random_range(0..accounts.len() - 1) + 1) % accounts.len()];
                        }
                        transfer(debit, credit, rng.random_range(1..=100))
                    })
                    .collect();
                let mut request = tonic::Request::new(pb::CreateTransfersRequest { transfers });
                request
                    .metadata_mut()
                    .insert("authorization", token.parse()?);
                let call = Instant::now();
                let response = client.create_transfers(request).await?;
                latencies.record(call.elapsed().as_micros().max(1) as u64)?;
                let failed = response
                    .get_ref()
                    .results
                    .iter()
                    .filter(|r| r.result() != pb::TransferResult::Created)
                    .count();
                failures.fetch_add(failed as u64, Ordering::Relaxed);
                transfers_sent += batch as u64;
            }
            anyhow::Ok((transfers_sent, latencies))
        }));
    }
    let mut latencies = histogram()?;
    let mut transfers = 0;
    for task in tasks {
        let (sent, histogram) = task.await??;
        transfers += sent;
        latencies.add(histogram)?;
    }
    let mut result = summary(transfers, started.elapsed(), &latencies);
    result["failed_transfers"] = failures.load(Ordering::Relaxed).into();
    result["clients"] = clients.into();
    result["transfers_per_call"] = batch.into();
    Ok(result)
}

async fn run_backend(backend: &Backend, seconds: u64) -> anyhow::Result<serde_json::Value> {
    let gateway = Gateway::start(backend).await?;
    let channels = gateway.channels(8).await?;
    let (hot, accounts) = set_up(&gateway, channels[0].clone()).await?;
    let accounts = Arc::new(accounts);
    eprintln!(
        "{}: (a) {CLIENTS} clients, one transfer per call",
        backend.name()
    );
    let single = drive(
        &gateway,
        &channels,
        CLIENTS,
        1,
        seconds,
        None,
        accounts.clone(),
    )
    .await?;
    eprintln!("{}: (b) hot account", backend.name());
    let hot_account = drive(
        &gateway,
        &channels,
        CLIENTS,
        1,
        seconds,
        Some(hot),
        accounts.clone(),
    )
    .await?;
    eprintln!("{}: (c) {BATCH} transfers per call", backend.name());
    let batched = drive(
        &gateway,
        &channels,
        BATCH_CLIENTS,
        BATCH,
        seconds,
        None,
        accounts,
    )
    .await?;
    gateway.stop().await?;
    Ok(
        serde_json::json!({ "a_single_transfer_calls": single, "b_hot_account": hot_account, "c_batches_of_1000": batched }),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut report = serde_json::json!({ "benchmark": "ledger", "seconds_per_phase": args.seconds, "accounts": ACCOUNTS });
    report["sqlite"] = run_backend(&Backend::Sqlite, args.seconds).await?;
    if let Some(url) = &args.postgres {
        report["postgresql"] = run_backend(&Backend::Postgres(url.clone()), args.seconds).await?;
        eprintln!("pgbench tpcb-like, 8 clients, scale 10 and scale 1");
        let scale_10 = pgbench(url, 10, 8, args.seconds as u32).await?;
        let scale_1 = pgbench(url, 1, 8, args.seconds as u32).await?;
        report["pgbench"] = serde_json::json!({ "tps_scale_10": scale_10, "tps_scale_1": scale_1 });
        let rate = |backend: &str, phase: &str| {
            report[backend][phase]["per_second"].as_f64().unwrap_or(0.0)
        };
        let mut ratios = serde_json::Map::new();
        for backend in ["sqlite", "postgresql"] {
            ratios.insert(
                backend.to_owned(),
                serde_json::json!({
                    "a_vs_pgbench_scale_10": (rate(backend, "a_single_transfer_calls") / scale_10 * 100.0).round() / 100.0,
                    "b_vs_pgbench_scale_1": (rate(backend, "b_hot_account") / scale_1 * 100.0).round() / 100.0,
                    "c_transfers_per_second": rate(backend, "c_batches_of_1000"),
                }),
            );
        }
        report["ratios"] = serde_json::Value::Object(ratios);
        report["targets"] = serde_json::json!({ "a": ">= 10x pgbench scale 10", "b": ">= 5x pgbench scale 1", "c": ">= 100000 transfers/s" });
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
