//! Marketing's three targets in one run, yardsticks alongside:
//!
//! cargo run --release -p bench --bin marketing -- [--seconds 8] [--codes 1000000] [--postgres URL]
//!     [--sqlite-only] [--parts evaluate,redeem,generate]
//!
//! 1. EvaluateCart, a 100-line cart against 50 active automatic rules, on the real gateway (a child
//!    process, SQLite) — its server CPU per call next to a bare tonic no-op server's (Health/Check),
//!    32 clients each.
//! 2. CreateRedemption, every call for one hot coupon, 64 clients, on each database — next to
//!    pgbench tpcb-like at scale 1 (8 clients) on the same PostgreSQL; afterwards the coupon's held
//!    uses must equal the reservations that succeeded.
//! 3. GenerateCoupons of `--codes` codes, each database: from the call to the batch reading
//!    SUCCEEDED (polled every 50 ms), and the stored count checked.
//!
//! Prints one JSON document.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench::process::{
    CHILD_SECRET, authed, child_role, cpu_per_call, measure, measure_noop, start_gateway,
    wait_for_port,
};
use bench::{Backend, Gateway, histogram, pgbench, summary};
use gateway::token::TokenIssuer;
use kernel::Role;
use proto::marketing::v1 as pb;
use proto::marketing::v1::campaign_service_client::CampaignServiceClient;
use proto::marketing::v1::coupon_service_client::CouponServiceClient;
use proto::marketing::v1::discount_rule_service_client::DiscountRuleServiceClient;
use proto::marketing::v1::pricing_service_client::PricingServiceClient;
use tonic::transport::Channel;
use uuid::Uuid;

const EVALUATE_CLIENTS: usize = 32;
const REDEEM_CLIENTS: usize = 64;
const LINES: usize = 100;
const RULES: usize = 50;
const RULES_PER_CAMPAIGN: usize = 10;
const CATEGORIES: usize = 10;

struct Args {
    seconds: u64,
    codes: i64,
    postgres: Option<String>,
    /// Which of `evaluate`, `redeem`, `generate` to run (all by default).
    parts: Vec<String>,
}

impl Args {
    fn runs(&self, part: &str) -> bool {
        self.parts.iter().any(|wanted| wanted == part)
    }
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        seconds: 8,
        codes: 1_000_000,
        postgres: Some("postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        parts: ["evaluate", "redeem", "generate"]
            .map(str::to_owned)
            .to_vec(),
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        let mut value = || {
            iter.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--seconds" => args.seconds = value()?.parse()?,
            "--codes" => args.codes = value()?.parse()?,
            "--postgres" => args.postgres = Some(value()?),
            "--sqlite-only" => args.postgres = None,
            "--parts" => args.parts = value()?.split(',').map(str::to_owned).collect(),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

fn usd(amount: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency: "USD".to_owned(),
        amount,
    })
}

/// Rule `index` of the 50: five kinds in turn, each on one category of ten.
fn rule(index: usize) -> pb::DiscountRule {
    let category = vec![format!("c{}", index % CATEGORIES)];
    let base = pb::DiscountRule {
        name: format!("rule {index}"),
        category_ids: category.clone(),
        priority: i32::try_from(index).unwrap_or(0),
        ..Default::default()
    };
    match index % 5 {
        0 => pb::DiscountRule {
            kind: pb::DiscountKind::Percentage as i32,
            percent_bps: 500,
            ..base
        },
        1 => pb::DiscountRule {
            kind: pb::DiscountKind::FixedAmount as i32,
            amount: usd(150),
            ..base
        },
        2 => pb::DiscountRule {
            kind: pb::DiscountKind::FixedPerUnit as i32,
            amount: usd(25),
            max_quantity: 2,
            ..base
        },
        3 => pb::DiscountRule {
            kind: pb::DiscountKind::BuyXGetY as i32,
            buy_quantity: 2,
            get_quantity: 1,
            ..base
        },
        _ => pb::DiscountRule {
            kind: pb::DiscountKind::TieredPercentage as i32,
            tiers: vec![
                pb::Tier {
                    min_subtotal: usd(1_000),
                    percent_bps: 200,
                    ..Default::default()
                },
                pb::Tier {
                    min_subtotal: usd(5_000),
                    percent_bps: 400,
                    ..Default::default()
                },
            ],
            ..base
        },
    }
}

fn cart() -> pb::Cart {
    pb::Cart {
        currency: "USD".to_owned(),
        lines: (0..LINES)
            .map(|index| pb::CartLine {
                line_id: format!("line-{index}"),
                product_id: format!("p{index}"),
                category_ids: vec![format!("c{}", index % CATEGORIES)],
                quantity: 1 + (index as i64 % 3),
                unit_price: 1_000 + index as i64 * 37,
                on_sale: false,
            })
            .collect(),
        ..Default::default()
    }
}

/// 50 rules in five automatic campaigns of ten, launched.
async fn load_rules(channel: &Channel, admin: &str) -> anyhow::Result<()> {
    let mut rules = DiscountRuleServiceClient::new(channel.clone());
    let mut campaigns = CampaignServiceClient::new(channel.clone());
    let mut ids = Vec::new();
    for index in 0..RULES {
        let request = pb::CreateDiscountRuleRequest {
            request_id: Uuid::new_v4().to_string(),
            rule: Some(rule(index)),
        };
        ids.push(
            rules
                .create_discount_rule(authed(request, admin))
                .await?
                .into_inner()
                .id,
        );
    }
    for (number, chunk) in ids.chunks(RULES_PER_CAMPAIGN).enumerate() {
        let campaign = pb::Campaign {
            title: format!("automatic {number}"),
            trigger_type: pb::TriggerType::Automatic as i32,
            auto_apply: true,
            discount_rule_ids: chunk.to_vec(),
            ..Default::default()
        };
        let created = campaigns
            .create_campaign(authed(
                pb::CreateCampaignRequest {
                    request_id: Uuid::new_v4().to_string(),
                    campaign: Some(campaign),
                },
                admin,
            ))
            .await?
            .into_inner();
        campaigns
            .launch_campaign(authed(
                pb::CampaignActionRequest {
                    request_id: Uuid::new_v4().to_string(),
                    id: created.id,
                },
                admin,
            ))
            .await?;
    }
    Ok(())
}

/// Part 1: EvaluateCart's server CPU per call against a bare tonic call's.
async fn evaluate_cart(args: &Args) -> anyhow::Result<serde_json::Value> {
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
        .ok_or_else(|| anyhow::anyhow!("no default workspace"))?
        .id;
    let issuer = TokenIssuer::new(CHILD_SECRET.as_bytes());
    let admin = issuer
        .issue(Uuid::new_v4(), workspace_id, &[Role::Admin], 7200)
        .map_err(anyhow::Error::msg)?;
    let storefront = issuer
        .issue(Uuid::new_v4(), workspace_id, &[Role::Storefront], 7200)
        .map_err(anyhow::Error::msg)?;
    load_rules(&channel, &admin).await?;
    let request = pb::EvaluateCartRequest {
        cart: Some(cart()),
        coupon_codes: vec![],
    };
    let sample = PricingServiceClient::new(channel.clone())
        .evaluate_cart(authed(request.clone(), &storefront))
        .await?
        .into_inner();
    anyhow::ensure!(
        sample.total_discount > 0 && sample.effects.len() >= RULES / 2,
        "the rules should price the cart: {} effects, {} off",
        sample.effects.len(),
        sample.total_discount
    );
    let (request, storefront) = (Arc::new(request), Arc::new(storefront));
    let evaluate = move || {
        let mut client = PricingServiceClient::new(channel.clone());
        let (request, token) = (request.clone(), storefront.clone());
        async move {
            client
                .evaluate_cart(authed((*request).clone(), &token))
                .await?;
            anyhow::Ok(())
        }
    };
    eprintln!("gateway: EvaluateCart, {LINES} lines, {RULES} rules");
    let pid = gateway.child.id();
    let gateway_result = measure(pid, EVALUATE_CLIENTS, args.seconds, 2_000, evaluate).await?;
    drop(gateway);

    let noop_result = measure_noop(EVALUATE_CLIENTS, args.seconds, 2_000).await?;
    let ratio = cpu_per_call(&gateway_result) / cpu_per_call(&noop_result).max(0.1);
    Ok(serde_json::json!({
        "lines": LINES,
        "active_rules": RULES,
        "effects_per_cart": sample.effects.len(),
        "gateway_evaluate_cart": gateway_result,
        "noop_tonic_unary": noop_result,
        "cpu_per_call_ratio": (ratio * 100.0).round() / 100.0,
    }))
}

/// Part 2 on one database: 64 clients reserving one hot coupon.
async fn hot_coupon(gateway: &Gateway, seconds: u64) -> anyhow::Result<serde_json::Value> {
    let channels = gateway.channels(8).await?;
    let mut rules = DiscountRuleServiceClient::new(channels[0].clone());
    let rule = rules
        .create_discount_rule(gateway.authed(pb::CreateDiscountRuleRequest {
            request_id: Uuid::new_v4().to_string(),
            rule: Some(pb::DiscountRule {
                name: "hot".to_owned(),
                kind: pb::DiscountKind::Percentage as i32,
                percent_bps: 1_000,
                ..Default::default()
            }),
        }))
        .await?
        .into_inner();
    let mut coupons = CouponServiceClient::new(channels[0].clone());
    coupons
        .create_coupon(gateway.authed(pb::CreateCouponRequest {
            request_id: Uuid::new_v4().to_string(),
            coupon: Some(pb::Coupon {
                code: "HOT-COUPON".to_owned(),
                discount_rule_id: rule.id,
                usage_limit: 1_000_000_000,
                ..Default::default()
            }),
        }))
        .await?;
    let reserved = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for client in 0..REDEEM_CLIENTS {
        let mut pricing = PricingServiceClient::new(channels[client % channels.len()].clone());
        let token = gateway.token.clone();
        let reserved = reserved.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = histogram()?;
            let mut order = 0u64;
            while Instant::now() < deadline {
                order += 1;
                let mut request = tonic::Request::new(pb::CreateRedemptionRequest {
                    request_id: Uuid::new_v4().to_string(),
                    order_id: format!("order-{client}-{order}"),
                    cart: Some(pb::Cart {
                        currency: "USD".to_owned(),
                        lines: vec![pb::CartLine {
                            line_id: "a".to_owned(),
                            product_id: "tea".to_owned(),
                            quantity: 1,
                            unit_price: 1_000,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    coupon_codes: vec!["HOT-COUPON".to_owned()],
                });
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse()?);
                let begun = Instant::now();
                let redemption = pricing.create_redemption(request).await?.into_inner();
                latencies.record(begun.elapsed().as_micros().max(1) as u64)?;
                if redemption.total_discount == 100 {
                    reserved.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = histogram()?;
    for task in tasks {
        latencies.add(task.await??)?;
    }
    let elapsed = started.elapsed();
    let coupon = coupons
        .get_coupon(gateway.authed(pb::GetCouponRequest {
            code: "HOT-COUPON".to_owned(),
            ..Default::default()
        }))
        .await?
        .into_inner();
    let held = coupon.times_reserved + coupon.times_redeemed;
    let reserved = reserved.load(Ordering::Relaxed);
    anyhow::ensure!(
        u64::try_from(held)? == reserved,
        "the coupon holds {held} uses but {reserved} reservations succeeded"
    );
    let mut result = summary(reserved, elapsed, &latencies);
    result["coupon_uses_held"] = held.into();
    Ok(result)
}

/// Part 3 on one database: one GenerateCoupons job of `count` codes, timed to SUCCEEDED.
async fn generate(gateway: &Gateway, count: i64) -> anyhow::Result<serde_json::Value> {
    let channel = gateway.channels(1).await?.remove(0);
    let rule = DiscountRuleServiceClient::new(channel.clone())
        .create_discount_rule(gateway.authed(pb::CreateDiscountRuleRequest {
            request_id: Uuid::new_v4().to_string(),
            rule: Some(pb::DiscountRule {
                name: "batch".to_owned(),
                kind: pb::DiscountKind::Percentage as i32,
                percent_bps: 500,
                ..Default::default()
            }),
        }))
        .await?
        .into_inner();
    let mut coupons = CouponServiceClient::new(channel);
    let started = Instant::now();
    let batch = coupons
        .generate_coupons(gateway.authed(pb::GenerateCouponsRequest {
            request_id: Uuid::new_v4().to_string(),
            template: Some(pb::Coupon {
                discount_rule_id: rule.id,
                usage_limit: 1,
                ..Default::default()
            }),
            count,
            pattern: "##########".to_owned(),
            prefix: "B-".to_owned(),
            allow_ambiguous: false,
        }))
        .await?
        .into_inner();
    let finished = loop {
        let current = coupons
            .get_coupon_batch(gateway.authed(pb::GetCouponBatchRequest {
                id: batch.id.clone(),
            }))
            .await?
            .into_inner();
        if current.status != pb::BatchStatus::Running as i32 {
            break current;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        finished.status == pb::BatchStatus::Succeeded as i32 && finished.generated == count,
        "the batch ended {:?} with {} of {count}: {}",
        finished.status,
        finished.generated,
        finished.error
    );
    Ok(serde_json::json!({
        "codes": count,
        "seconds": (seconds * 100.0).round() / 100.0,
        "codes_per_second": (count as f64 / seconds).round(),
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(result) = child_role().await {
        return result;
    }
    let args = parse_args()?;
    let evaluate = if args.runs("evaluate") {
        evaluate_cart(&args).await?
    } else {
        serde_json::Value::Null
    };
    let mut backends = vec![Backend::Sqlite];
    if let Some(url) = &args.postgres {
        backends.push(Backend::Postgres(url.clone()));
    }
    let mut databases = serde_json::Map::new();
    for backend in &backends {
        let mut hot = serde_json::Value::Null;
        if args.runs("redeem") {
            eprintln!("{}: CreateRedemption on one hot coupon", backend.name());
            let gateway = Gateway::start(backend).await?;
            hot = hot_coupon(&gateway, args.seconds).await?;
            gateway.stop().await?;
        }
        let mut generated = serde_json::Value::Null;
        if args.runs("generate") {
            eprintln!("{}: GenerateCoupons of {}", backend.name(), args.codes);
            let gateway = Gateway::start(backend).await?;
            generated = generate(&gateway, args.codes).await?;
            gateway.stop().await?;
        }
        databases.insert(
            backend.name().to_owned(),
            serde_json::json!({ "create_redemption_hot_coupon": hot, "generate_coupons": generated }),
        );
    }
    let mut yardstick = serde_json::Value::Null;
    if let Some(url) = args.postgres.as_ref().filter(|_| args.runs("redeem")) {
        eprintln!("pgbench tpcb-like, scale 1, 8 clients");
        let tps = pgbench(url, 1, 8, u32::try_from(args.seconds)?).await?;
        yardstick = serde_json::json!({ "pgbench_tpcb_like_scale_1_8_clients_tps": tps.round() });
        if let Some(postgres) = databases.get_mut("postgresql") {
            let per_second = postgres["create_redemption_hot_coupon"]["per_second"]
                .as_f64()
                .unwrap_or(0.0);
            postgres["hot_coupon_ratio_to_pgbench"] =
                ((per_second / tps.max(1.0) * 100.0).round() / 100.0).into();
        }
    }
    let report = serde_json::json!({
        "benchmark": "marketing",
        "seconds_per_phase": args.seconds,
        "evaluate_cart": evaluate,
        "databases": databases,
        "yardstick": yardstick,
        "targets": {
            "evaluate_cart_cpu_per_call_ratio": "<= 4",
            "hot_coupon_ratio_to_pgbench": ">= 5",
            "generate_1000000_codes_seconds": "<= 10 on each database",
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
