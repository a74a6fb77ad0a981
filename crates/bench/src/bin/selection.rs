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

use std::sync::Arc;
use std::time::Instant;

use bench::process::{
    CHILD_SECRET, authed, child_role, cpu_per_call, measure, measure_noop, resident_mib,
    start_gateway, wait_for_port,
};
use gateway::token::TokenIssuer;
use kernel::Role;
use proto::ledger::v1 as ledger;
use proto::promotion::v1 as pb;
use tonic::transport::Channel;
use uuid::Uuid;

const CLIENTS: usize = 32;
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(result) = child_role().await {
        return result;
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
    let issuer = TokenIssuer::new(CHILD_SECRET.as_bytes());
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
    let gateway_result =
        measure(gateway_pid, CLIENTS, args.seconds, args.fixed_rate, select).await?;
    let resident = resident_mib(gateway_pid)?;
    drop(gateway);

    let noop_result = measure_noop(CLIENTS, args.seconds, args.fixed_rate).await?;
    let ratio = cpu_per_call(&gateway_result) / cpu_per_call(&noop_result).max(0.1);
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
