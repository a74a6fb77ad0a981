//! `promo demo`: a small data set in the default workspace and the grpcurl commands to explore it.

use credits_ledger::SystemAccount;
use credits_ledger::accounts::ensure_system_account;
use credits_ledger::service::purchase_transfer;
use kernel::clock::to_micros;
use kernel::workspace::{self, DEFAULT_WORKSPACE};
use kernel::{Role, money::CREDITS};
use uuid::Uuid;

use crate::server::App;

/// The demo factory's principal id: fixed, so running the demo twice changes nothing.
const DEMO_FACTORY: Uuid = Uuid::from_u128(0x0d3e_0000_0000_4000_8000_0000_0000_f001);

pub async fn load(app: App) -> anyhow::Result<()> {
    let db = &app.context.db;
    let default = workspace::find_by_name(db.connection(), DEFAULT_WORKSPACE)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the default workspace is missing"))?;
    let now = to_micros(app.context.clock.now());
    let txn = db.begin_write().await?;
    ensure_system_account(&*txn, default.id, &SystemAccount::External, CREDITS, now).await?;
    ensure_system_account(
        &*txn,
        default.id,
        &SystemAccount::Wallet(DEMO_FACTORY),
        CREDITS,
        now,
    )
    .await?;
    let purchase = purchase_transfer(default.id, DEMO_FACTORY, 1_000, "demo-payment-1");
    let results = credits_ledger::Ledger::apply_in(&*txn, default.id, &[purchase], now).await?;
    txn.commit().await?;
    println!("demo workspace: {} ({})", default.name, default.id);
    println!(
        "demo factory {DEMO_FACTORY}: bought 1000 credits ({:?})",
        results.first()
    );
    println!();
    let admin = app
        .issuer
        .issue(Uuid::new_v4(), default.id, &[Role::Admin], 3600)
        .map_err(anyhow::Error::msg)?;
    let factory = app
        .issuer
        .issue(DEMO_FACTORY, default.id, &[Role::Factory], 3600)
        .map_err(anyhow::Error::msg)?;
    let listen = &app.config.listen;
    println!("export ADMIN_TOKEN={admin}");
    println!("export FACTORY_TOKEN={factory}");
    println!("grpcurl -plaintext {listen} list");
    println!(
        "grpcurl -plaintext -H \"authorization: Bearer $ADMIN_TOKEN\" {listen} promo.admin.v1.WorkspaceService/GetSettings"
    );
    println!(
        "grpcurl -plaintext -H \"authorization: Bearer $FACTORY_TOKEN\" -d '{{\"asset\":\"CREDITS\"}}' {listen} promo.ledger.v1.LedgerService/ListAccounts"
    );
    println!(
        "grpcurl -plaintext -H \"authorization: Bearer $ADMIN_TOKEN\" -d '{{\"reference\":\"demo-payment-1\"}}' {listen} promo.ledger.v1.LedgerService/ListTransfers"
    );
    Ok(())
}
