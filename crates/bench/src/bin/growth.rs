//! Growth benchmark: RecordClick over gRPC and `GET /l/{code}` over HTTP with deduplication on
//! (every click a new visitor, so every one is counted and written), server CPU per click against
//! a bare tonic call in the same run; and a leaderboard page of 100 over 1,000,000 subjects.
//! Prints JSON.
//!
//! `cargo run --release -p bench --bin growth -- --seconds 8 [--subjects 1000000]
//!  [--postgres postgres://postgres@127.0.0.1:5432/postgres] [--parts clicks,leaderboard]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench::process::{
    CHILD_SECRET, Server, authed, child_role, cpu_micros, cpu_per_call, measure, measure_noop,
    start_gateway_with, wait_for_port,
};
use bench::{histogram, summary};
use gateway::token::TokenIssuer;
use kernel::Role;
use proto::growth::v1 as pb;
use proto::growth::v1::gamification_service_client::GamificationServiceClient;
use proto::growth::v1::link_service_client::LinkServiceClient;
use sea_orm::EntityTrait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;
use uuid::Uuid;

const CLICK_CLIENTS: usize = 256;
const BOARD_CLIENTS: usize = 8;
/// The fixed rate at which leaderboard latency is read (calls/s over all clients).
const BOARD_RATE: u64 = 500;
const METRIC: &str = "bench_score";

struct Args {
    seconds: u64,
    subjects: u64,
    postgres: Option<String>,
    parts: Vec<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        seconds: 8,
        subjects: 1_000_000,
        postgres: None,
        parts: vec!["clicks".to_owned(), "leaderboard".to_owned()],
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let mut value = || {
            raw.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--seconds" => args.seconds = value()?.parse()?,
            "--subjects" => args.subjects = value()?.parse()?,
            "--postgres" => args.postgres = Some(value()?),
            "--parts" => args.parts = value()?.split(',').map(str::to_owned).collect(),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

/// A gateway child process with an HTTP listener, its database and tokens.
struct Child {
    server: Server,
    channel: Channel,
    http: String,
    database_url: String,
    workspace_id: Uuid,
    admin: String,
    storefront: String,
    _data_dir: tempfile::TempDir,
}

async fn start(postgres: Option<&str>) -> anyhow::Result<Child> {
    let data_dir = tempfile::tempdir()?;
    let database_url = match postgres {
        Some(admin) => bench::fresh_postgres_database(admin, "promo_bench_growth").await?,
        None => format!(
            "sqlite://{}?mode=rwc",
            data_dir.path().join("promo.db").display()
        ),
    };
    let http = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    );
    let server = start_gateway_with(
        data_dir.path(),
        &[
            ("PROMO_DATABASE_URL", database_url.clone()),
            ("PROMO_HTTP_LISTEN", http.clone()),
        ],
    )
    .await?;
    let channel = wait_for_port(&server.address).await?;
    let database = sea_orm::Database::connect(&database_url).await?;
    let workspace_id = kernel::workspace::find_by_name(&database, "default")
        .await?
        .ok_or_else(|| anyhow::anyhow!("no default workspace"))?
        .id;
    let issuer = TokenIssuer::new(CHILD_SECRET.as_bytes());
    let token = |role| {
        issuer
            .issue(Uuid::new_v4(), workspace_id, &[role], 7200)
            .map_err(anyhow::Error::msg)
    };
    Ok(Child {
        admin: token(Role::Admin)?,
        storefront: token(Role::Storefront)?,
        server,
        channel,
        http,
        database_url,
        workspace_id,
        _data_dir: data_dir,
    })
}

/// A campaign, a channel and a link on them; returns the link's short code.
async fn make_link(child: &Child) -> anyhow::Result<String> {
    use proto::marketing::v1 as mkt;
    let campaign = mkt::campaign_service_client::CampaignServiceClient::new(child.channel.clone())
        .create_campaign(authed(
            mkt::CreateCampaignRequest {
                request_id: Uuid::new_v4().to_string(),
                campaign: Some(mkt::Campaign {
                    title: "Bench".to_owned(),
                    ..mkt::Campaign::default()
                }),
            },
            &child.admin,
        ))
        .await?
        .into_inner();
    let mut links = LinkServiceClient::new(child.channel.clone());
    let channel = links
        .create_channel(authed(
            pb::CreateChannelRequest {
                request_id: Uuid::new_v4().to_string(),
                channel: Some(pb::Channel {
                    code: "bench".to_owned(),
                    name: "Bench".to_owned(),
                    channel_type: pb::ChannelType::Social as i32,
                    ..pb::Channel::default()
                }),
            },
            &child.admin,
        ))
        .await?
        .into_inner();
    let link = links
        .create_link(authed(
            pb::CreateLinkRequest {
                request_id: Uuid::new_v4().to_string(),
                link: Some(pb::Link {
                    campaign_id: campaign.id,
                    channel_id: channel.id,
                    name: "Bench".to_owned(),
                    destination_url: "https://shop.example/bench".to_owned(),
                    ..pb::Link::default()
                }),
            },
            &child.admin,
        ))
        .await?
        .into_inner();
    Ok(link.short_code)
}

/// `clients` keep-alive HTTP/1.1 connections following `/l/{code}` for `seconds`, each request
/// with a user agent of its own (a new visitor).
async fn follow_links(
    address: &str,
    code: &str,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<(u64, Duration, hdrhistogram::Histogram<u64>)> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let visitor = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (address, code, visitor) = (address.to_owned(), code.to_owned(), visitor.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(&address).await?;
            stream.set_nodelay(true)?;
            let mut latencies = histogram()?;
            let mut calls = 0u64;
            let mut buffer = vec![0u8; 4096];
            while Instant::now() < deadline {
                let n = visitor.fetch_add(1, Ordering::Relaxed);
                let request = format!(
                    "GET /l/{code} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0 visitor/{n}\r\n\r\n"
                );
                let begun = Instant::now();
                stream.write_all(request.as_bytes()).await?;
                let mut read = 0;
                loop {
                    let got = stream.read(&mut buffer[read..]).await?;
                    anyhow::ensure!(got > 0, "the HTTP listener closed the connection");
                    read += got;
                    if buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                anyhow::ensure!(buffer.starts_with(b"HTTP/1.1 302"), "not a redirect");
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

async fn clicks(args: &Args, postgres: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let child = start(postgres).await?;
    let code = make_link(&child).await?;
    let pid = child.server.child.id();
    let visitor = Arc::new(AtomicU64::new(0));
    let (channel, storefront) = (child.channel.clone(), Arc::new(child.storefront.clone()));
    let code_for_grpc = code.clone();
    let click = move || {
        let mut client = LinkServiceClient::new(channel.clone());
        let n = visitor.fetch_add(1, Ordering::Relaxed);
        let request = pb::RecordClickRequest {
            short_code: code_for_grpc.clone(),
            ip: format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255),
            user_agent: format!("Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0 visitor/{n}"),
            referrer: String::new(),
            country: "DE".to_owned(),
        };
        let token = storefront.clone();
        async move {
            let answer = client
                .record_click(authed(request, &token))
                .await?
                .into_inner();
            anyhow::ensure!(
                answer.counted,
                "a new visitor's click must count: {answer:?}"
            );
            anyhow::Ok(())
        }
    };
    eprintln!("gateway: RecordClick, a new visitor per click");
    let grpc = measure(pid, CLICK_CLIENTS, args.seconds, 2_000, click).await?;

    eprintln!("gateway: GET /l/{{code}}, a new visitor per request");
    follow_links(&child.http, &code, CLICK_CLIENTS, 1).await?;
    let cpu_before = cpu_micros(pid)?;
    let (calls, elapsed, latencies) =
        follow_links(&child.http, &code, CLICK_CLIENTS, args.seconds).await?;
    let cpu = cpu_micros(pid)? - cpu_before;
    let mut http = summary(calls, elapsed, &latencies);
    http["server_cpu_us_per_call"] = ((cpu as f64 / calls as f64 * 10.0).round() / 10.0).into();
    drop(child);
    Ok(serde_json::json!({ "record_click_grpc": grpc, "follow_link_http": http }))
}

/// Seeds `subjects` all-time totals of one metric (values with many ties), then reads pages of
/// 100: the first, and one 100 pages in (through the cursor).
async fn leaderboard(args: &Args, postgres: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let child = start(postgres).await?;
    let database = sea_orm::Database::connect(&child.database_url).await?;
    let seeding = Instant::now();
    let mut rows = Vec::with_capacity(1000);
    for index in 0..args.subjects {
        rows.push(growth::gamification::seed_row(
            child.workspace_id,
            METRIC,
            "all",
            Uuid::now_v7(),
            (index.wrapping_mul(2_654_435_761) % 100_000) as i64,
        ));
        if rows.len() == 1000 || index + 1 == args.subjects {
            growth::entity::metric::Entity::insert_many(std::mem::take(&mut rows))
                .exec_without_returning(&database)
                .await?;
        }
    }
    let seeded_seconds = seeding.elapsed().as_secs_f64();
    eprintln!(
        "seeded {} leaderboard rows in {seeded_seconds:.1} s",
        args.subjects
    );
    let reader = Arc::new(child.storefront.clone());
    let request = |page_token: String| pb::GetLeaderboardRequest {
        metric: METRIC.to_owned(),
        period: pb::LeaderboardPeriod::AllTime as i32,
        date: String::new(),
        page_size: 100,
        page_token,
    };
    let mut client = GamificationServiceClient::new(child.channel.clone());
    let mut token = String::new();
    for _ in 0..100 {
        token = client
            .get_leaderboard(authed(request(token), &reader))
            .await?
            .into_inner()
            .next_page_token;
    }
    let mut results = serde_json::Map::new();
    for (name, page_token) in [("first_page", String::new()), ("page_101", token)] {
        let (channel, reader, message) =
            (child.channel.clone(), reader.clone(), request(page_token));
        let read = move || {
            let mut client = GamificationServiceClient::new(channel.clone());
            let (reader, message) = (reader.clone(), message.clone());
            async move {
                let page = client
                    .get_leaderboard(authed(message, &reader))
                    .await?
                    .into_inner();
                anyhow::ensure!(page.entries.len() == 100, "a full page");
                anyhow::Ok(())
            }
        };
        eprintln!("gateway: GetLeaderboard {name}");
        let (calls, elapsed, latencies) =
            bench::process::drive(BOARD_CLIENTS, args.seconds, None, read.clone()).await?;
        let closed = summary(calls, elapsed, &latencies);
        let (calls, elapsed, latencies) =
            bench::process::drive(BOARD_CLIENTS, args.seconds, Some(BOARD_RATE), read).await?;
        let fixed = summary(calls, elapsed, &latencies);
        results.insert(
            name.to_owned(),
            serde_json::json!({ "closed_loop": closed, "fixed_rate": fixed }),
        );
    }
    drop(child);
    Ok(serde_json::json!({
        "subjects": args.subjects,
        "seed_seconds": (seeded_seconds * 10.0).round() / 10.0,
        "pages": results,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(result) = child_role().await {
        return result;
    }
    let args = parse_args()?;
    let mut backends: Vec<(&str, Option<&str>)> = vec![("sqlite", None)];
    if let Some(url) = args.postgres.as_deref() {
        backends.push(("postgresql", Some(url)));
    }
    let mut databases = serde_json::Map::new();
    for (name, postgres) in backends {
        let mut result = serde_json::Map::new();
        if args.parts.iter().any(|part| part == "clicks") {
            eprintln!("{name}: clicks");
            result.insert("clicks".to_owned(), clicks(&args, postgres).await?);
        }
        if args.parts.iter().any(|part| part == "leaderboard") {
            eprintln!("{name}: leaderboard");
            result.insert(
                "leaderboard".to_owned(),
                leaderboard(&args, postgres).await?,
            );
        }
        databases.insert(name.to_owned(), result.into());
    }
    let noop = if args.parts.iter().any(|part| part == "clicks") {
        measure_noop(CLICK_CLIENTS, args.seconds, 2_000).await?
    } else {
        serde_json::Value::Null
    };
    for result in databases.values_mut() {
        if let Some(clicks) = result.get_mut("clicks") {
            let noop_cpu = cpu_per_call(&noop).max(0.1);
            let grpc = cpu_per_call(&clicks["record_click_grpc"]);
            let http = clicks["follow_link_http"]["server_cpu_us_per_call"]
                .as_f64()
                .unwrap_or(0.0);
            clicks["record_click_cpu_ratio"] = ((grpc / noop_cpu * 100.0).round() / 100.0).into();
            clicks["follow_link_cpu_ratio"] = ((http / noop_cpu * 100.0).round() / 100.0).into();
        }
    }
    let report = serde_json::json!({
        "benchmark": "growth",
        "seconds_per_phase": args.seconds,
        "databases": databases,
        "noop_tonic_unary": noop,
        "targets": {
            "clicks_per_second": ">= 20000 (RecordClick and GET /l/{code}, dedup on)",
            "click_cpu_ratio": "<= 3 (server CPU per click / bare tonic call)",
            "leaderboard_page_of_100_over_1000000_p99_ms": "<= 5 (at the fixed rate)",
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
