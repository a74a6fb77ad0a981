//! Payouts benchmark: view ingestion (RecordViews in batches of 1,000 viewer ids, a tenth of each
//! batch seen before, many campaigns and promoters at once) and one RunPayouts over N promoters'
//! wallets (default 1,000,000: most above the $20 minimum, the rest carried forward), paid
//! through the built-in provider. Prints JSON.
//!
//! `cargo run --release -p bench --bin payouts -- [--seconds 8] [--promoters 1000000]
//!  [--postgres postgres://postgres@127.0.0.1:5432/postgres] [--parts views,run]`
//!
//! The run's wallets are seeded straight into the ledger's account table (balances without the
//! transfers that made them, balanced by the external account so conservation holds): seeding a
//! million wallets through the API would take longer than the run it sets up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench::process::{CHILD_SECRET, Server, authed, child_role, start_gateway_with, wait_for_port};
use bench::{histogram, summary};
use credits_ledger::SystemAccount;
use gateway::token::TokenIssuer;
use kernel::Role;
use proto::payouts::v1 as pb;
use proto::payouts::v1::campaign_service_client::CampaignServiceClient;
use proto::payouts::v1::participation_service_client::ParticipationServiceClient;
use proto::payouts::v1::payout_service_client::PayoutServiceClient;
use proto::payouts::v1::performance_service_client::PerformanceServiceClient;
use sea_orm::EntityTrait;
use tonic::transport::Channel;
use uuid::Uuid;

const CAMPAIGNS: usize = 16;
const PROMOTERS_PER_CAMPAIGN: usize = 4;
const VIEWS_PER_CALL: usize = 1000;
const SEED_BATCH: usize = 2000;

struct Args {
    seconds: u64,
    promoters: u64,
    postgres: Option<String>,
    parts: Vec<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        seconds: 8,
        promoters: 1_000_000,
        postgres: None,
        parts: vec!["views".to_owned(), "run".to_owned()],
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let mut value = || {
            raw.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--seconds" => args.seconds = value()?.parse()?,
            "--promoters" => args.promoters = value()?.parse()?,
            "--postgres" => args.postgres = Some(value()?),
            "--parts" => args.parts = value()?.split(',').map(str::to_owned).collect(),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

/// A gateway child process, its database and tokens.
struct Child {
    _server: Server,
    channel: Channel,
    database_url: String,
    workspace_id: Uuid,
    issuer: TokenIssuer,
    billing: String,
    _data_dir: tempfile::TempDir,
}

impl Child {
    fn token(&self, subject: Uuid, role: Role) -> anyhow::Result<String> {
        self.issuer
            .issue(subject, self.workspace_id, &[role], 7200)
            .map_err(anyhow::Error::msg)
    }
}

async fn start(postgres: Option<&str>) -> anyhow::Result<Child> {
    let data_dir = tempfile::tempdir()?;
    let database_url = match postgres {
        Some(admin) => bench::fresh_postgres_database(admin, "promo_bench_payouts").await?,
        None => format!(
            "sqlite://{}?mode=rwc",
            data_dir.path().join("promo.db").display()
        ),
    };
    let server = start_gateway_with(
        data_dir.path(),
        &[
            ("PROMO_DATABASE_URL", database_url.clone()),
            // A run over a million wallets is one call.
            ("PROMO_LIMITS__REQUEST_TIMEOUT_MS", "900000".to_owned()),
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
    let billing = issuer
        .issue(Uuid::new_v4(), workspace_id, &[Role::Billing], 7200)
        .map_err(anyhow::Error::msg)?;
    Ok(Child {
        _server: server,
        channel,
        database_url,
        workspace_id,
        issuer,
        billing,
        _data_dir: data_dir,
    })
}

fn usd(amount: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency: "USD".to_owned(),
        amount,
    })
}

/// A funded visibility campaign with joined promoters; returns (campaign id, promoter ids).
async fn campaign_with_promoters(child: &Child) -> anyhow::Result<(String, Vec<Uuid>)> {
    let advertiser = child.token(Uuid::new_v4(), Role::Advertiser)?;
    let mut campaigns = CampaignServiceClient::new(child.channel.clone());
    let campaign = campaigns
        .create_campaign(authed(
            pb::CreateCampaignRequest {
                request_id: Uuid::new_v4().to_string(),
                campaign: Some(pb::Campaign {
                    title: "Bench".to_owned(),
                    r#type: pb::CampaignType::Visibility as i32,
                    currency: "USD".to_owned(),
                    rate_per_100_views: usd(100),
                    max_views: 1_000_000_000,
                    ..Default::default()
                }),
            },
            &advertiser,
        ))
        .await?
        .into_inner();
    let needed = campaign.required_funding.map_or(0, |money| money.amount);
    campaigns
        .fund_campaign(authed(
            pb::FundCampaignRequest {
                request_id: Uuid::new_v4().to_string(),
                campaign_id: campaign.id.clone(),
                amount: usd(needed),
                payment_reference: format!("pi_{}", Uuid::new_v4()),
                processing_fee: None,
            },
            &child.billing,
        ))
        .await?;
    let mut promoters = Vec::new();
    for _ in 0..PROMOTERS_PER_CAMPAIGN {
        let promoter = Uuid::new_v4();
        ParticipationServiceClient::new(child.channel.clone())
            .join_campaign(authed(
                pb::JoinCampaignRequest {
                    request_id: Uuid::new_v4().to_string(),
                    campaign_id: campaign.id.clone(),
                },
                &child.token(promoter, Role::Promoter)?,
            ))
            .await?;
        promoters.push(promoter);
    }
    Ok((campaign.id, promoters))
}

/// One client per promoter sends batches of 1,000 viewer ids for `seconds`; each batch repeats
/// the last 100 ids of the one before (they do not count again).
async fn views(args: &Args, postgres: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let child = start(postgres).await?;
    let mut work = Vec::new();
    for _ in 0..CAMPAIGNS {
        let (campaign, promoters) = campaign_with_promoters(&child).await?;
        for promoter in promoters {
            work.push((campaign.clone(), promoter));
        }
    }
    let counted_total = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for (campaign, promoter) in work {
        let (channel, billing, counted_total) = (
            child.channel.clone(),
            child.billing.clone(),
            counted_total.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut client = PerformanceServiceClient::new(channel);
            let mut latencies = histogram()?;
            let (mut calls, mut next) = (0u64, 0usize);
            while Instant::now() < deadline {
                let from = next.saturating_sub(VIEWS_PER_CALL / 10);
                let viewer_ids = (from..from + VIEWS_PER_CALL)
                    .map(|index| format!("viewer-{index}"))
                    .collect();
                next = from + VIEWS_PER_CALL;
                let begun = Instant::now();
                let answer = client
                    .record_views(authed(
                        pb::RecordViewsRequest {
                            request_id: Uuid::new_v4().to_string(),
                            campaign_id: campaign.clone(),
                            promoter_id: promoter.to_string(),
                            viewer_ids,
                        },
                        &billing,
                    ))
                    .await?
                    .into_inner();
                latencies.record(begun.elapsed().as_micros() as u64)?;
                counted_total.fetch_add(answer.counted as u64, Ordering::Relaxed);
                calls += 1;
            }
            anyhow::Ok((calls, latencies))
        }));
    }
    let mut latencies = histogram()?;
    let mut calls = 0;
    for task in tasks {
        let (done, histogram) = task.await??;
        calls += done;
        latencies.add(histogram)?;
    }
    let elapsed = started.elapsed();
    let submitted = calls * VIEWS_PER_CALL as u64;
    let counted = counted_total.load(Ordering::Relaxed);
    let mut result = summary(calls, elapsed, &latencies);
    result["views_submitted_per_second"] =
        ((submitted as f64 / elapsed.as_secs_f64()).round()).into();
    result["views_counted_per_second"] = ((counted as f64 / elapsed.as_secs_f64()).round()).into();
    result["views_counted"] = counted.into();
    result["duplicates_refused"] = (submitted - counted).into();
    result["concurrent_clients"] = (CAMPAIGNS * PROMOTERS_PER_CAMPAIGN).into();
    Ok(result)
}

/// Seeds `promoters` wallets (balances 10.00 to 59.99 USD; a fifth below the minimum) with
/// enabled payout accounts, then runs one payout run over them.
async fn run(args: &Args, postgres: Option<&str>) -> anyhow::Result<serde_json::Value> {
    use credits_ledger::accounts::system_account;
    use credits_ledger::store::{account, account_to_row};
    let child = start(postgres).await?;
    let database = sea_orm::Database::connect(&child.database_url).await?;
    let now = kernel::clock::to_micros(chrono::Utc::now());
    let seeding = Instant::now();
    let (mut wallets, mut accounts) = (Vec::new(), Vec::new());
    let mut total = 0i64;
    let mut below = 0u64;
    for index in 0..args.promoters {
        let promoter = Uuid::now_v7();
        let mut wallet = system_account(
            child.workspace_id,
            &SystemAccount::Wallet(promoter),
            "USD",
            now,
        );
        wallet.credits_posted = if index % 5 == 0 {
            below += 1;
            1000 + (index % 997) as i64
        } else {
            2000 + (index.wrapping_mul(7919) % 4000) as i64
        };
        total += wallet.credits_posted;
        wallets.push(account::ActiveModel::from(account_to_row(&wallet)));
        accounts.push(payouts::entity::account::ActiveModel::from(
            payouts::entity::account::Model {
                workspace_id: child.workspace_id,
                promoter_id: promoter,
                provider: "builtin".to_owned(),
                provider_account_id: format!("acct_{index}"),
                payouts_enabled: true,
                created_at: now,
                updated_at: now,
            },
        ));
        if wallets.len() == SEED_BATCH || index + 1 == args.promoters {
            account::Entity::insert_many(std::mem::take(&mut wallets))
                .exec_without_returning(&database)
                .await?;
            payouts::entity::account::Entity::insert_many(std::mem::take(&mut accounts))
                .exec_without_returning(&database)
                .await?;
        }
    }
    let mut external = system_account(child.workspace_id, &SystemAccount::External, "USD", now);
    external.debits_posted = total;
    account::Entity::insert(account::ActiveModel::from(account_to_row(&external)))
        .exec_without_returning(&database)
        .await?;
    let seeded_seconds = seeding.elapsed().as_secs_f64();
    eprintln!("seeded {} wallets in {seeded_seconds:.1} s", args.promoters);
    let period = chrono::Utc::now().format("%Y-%m").to_string();
    let started = Instant::now();
    let run = PayoutServiceClient::new(child.channel.clone())
        .run_payouts(authed(
            pb::RunPayoutsRequest {
                request_id: Uuid::new_v4().to_string(),
                period: period.clone(),
                currency: "USD".to_owned(),
            },
            &child.billing,
        ))
        .await?
        .into_inner();
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        run.payouts as u64 + run.skipped_below_minimum as u64 == args.promoters,
        "the run did not account for every wallet: {run:?}"
    );
    anyhow::ensure!(run.skipped_below_minimum as u64 == below);
    let paid_total = run.total.map_or(0, |money| money.amount);
    Ok(serde_json::json!({
        "promoters": args.promoters,
        "seconds": (seconds * 100.0).round() / 100.0,
        "payouts": run.payouts,
        "payouts_per_second": (run.payouts as f64 / seconds).round(),
        "carried_forward": run.skipped_below_minimum,
        "paid_total_minor_units": paid_total,
        "seeding_seconds": (seeded_seconds * 10.0).round() / 10.0,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(child) = child_role().await {
        return child;
    }
    let args = parse_args()?;
    let mut backends = vec![("sqlite", None)];
    if let Some(url) = args.postgres.as_deref() {
        backends.push(("postgresql", Some(url)));
    }
    let mut databases = serde_json::Map::new();
    for (name, postgres) in backends {
        let mut result = serde_json::Map::new();
        if args.parts.iter().any(|part| part == "views") {
            result.insert("record_views".to_owned(), views(&args, postgres).await?);
        }
        if args.parts.iter().any(|part| part == "run") {
            result.insert("run_payouts".to_owned(), run(&args, postgres).await?);
        }
        databases.insert(name.to_owned(), result.into());
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({ "databases": databases }))?
    );
    Ok(())
}
