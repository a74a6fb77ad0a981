//! `promo demo`: a small knowledge base, a factory with credits and two promotions in the default
//! workspace, a shop (demo_shop.rs), and the grpcurl commands that show a promoted pick and price a
//! cart. Running it twice changes nothing.

use credits_ledger::SystemAccount;
use credits_ledger::accounts::ensure_system_account;
use credits_ledger::service::purchase_transfer;
use kernel::clock::to_micros;
use kernel::workspace::{self, DEFAULT_WORKSPACE};
use kernel::{Principal, Role, money::CREDITS};
use promotion_core::lifecycle::NewPromotion;
use promotion_core::store::{self, material};
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::server::App;

/// The demo factory's principal id: fixed, so the demo is the same every time.
const DEMO_FACTORY: Uuid = Uuid::from_u128(0x0d3e_0000_0000_4000_8000_0000_0000_f001);

const CATALOGUE: &[(&str, &[&str])] = &[
    (
        "wood",
        &[
            "Oak plank",
            "Walnut veneer",
            "Maple butcher block",
            "Pine board",
            "Teak decking",
            "Birch plywood",
            "Bamboo panel",
            "Cherry hardwood",
        ],
    ),
    (
        "metal",
        &[
            "Brushed steel",
            "Polished chrome",
            "Aged brass",
            "Copper sheet",
            "Cast iron",
            "Anodized aluminium",
            "Blackened steel",
        ],
    ),
    (
        "glass",
        &[
            "Float glass",
            "Frosted glass",
            "Smoked glass",
            "Tempered glass",
            "Ribbed glass",
        ],
    ),
    (
        "fabric",
        &[
            "Linen weave",
            "Cotton canvas",
            "Wool felt",
            "Velvet",
            "Boucle",
            "Denim twill",
        ],
    ),
    (
        "stone",
        &[
            "Carrara marble",
            "Black granite",
            "Slate tile",
            "Travertine",
            "Terrazzo",
        ],
    ),
    ("leather", &["Full-grain leather", "Suede", "Nubuck"]),
];

pub async fn load(app: App) -> anyhow::Result<()> {
    let db = &app.context.db;
    let default = workspace::find_by_name(db.connection(), DEFAULT_WORKSPACE)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the default workspace is missing"))?;
    let now = to_micros(app.context.clock.now());
    let factory = Principal {
        subject: DEMO_FACTORY,
        workspace_id: default.id,
        roles: vec![Role::Factory],
    };
    let existing = store::list_materials(
        db.connection(),
        default.id,
        None,
        Some(DEMO_FACTORY),
        None,
        None,
        1,
    )
    .await?;
    if existing.is_empty() {
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
        credits_ledger::Ledger::apply_in(&*txn, default.id, &[purchase], now).await?;
        let mut promoted = Vec::new();
        for (material_type, names) in CATALOGUE {
            for (index, name) in names.iter().enumerate() {
                // The factory owns the first wood and the first metal; the rest belong to the platform.
                let owner = (index == 0 && (*material_type == "wood" || *material_type == "metal"))
                    .then_some(DEMO_FACTORY);
                let row = material::Model {
                    id: Uuid::now_v7(),
                    workspace_id: default.id,
                    name: (*name).to_owned(),
                    material_type: (*material_type).to_owned(),
                    tags: store::json_list(&["demo".to_owned()]),
                    owner_id: owner,
                    properties: "{}".to_owned(),
                    created_at: now,
                };
                material::Entity::insert(material::ActiveModel::from(row.clone()))
                    .exec_without_returning(&*txn)
                    .await?;
                if owner.is_some() {
                    promoted.push(row.id);
                }
            }
        }
        store::bump_version(&*txn, default.id).await?;
        for (material_id, credits) in promoted.into_iter().zip([300, 100]) {
            let request = NewPromotion {
                material_id,
                credits,
                start_time: None,
                end_time: None,
                project_types: vec![],
            };
            app.promotions
                .create_promotion(&txn, &factory, &request)
                .await?;
        }
        txn.commit().await?;
        println!(
            "loaded {} materials, a factory with 1000 credits and two promotions (300 and 100 credits)",
            CATALOGUE.iter().map(|(_, n)| n.len()).sum::<usize>()
        );
    } else {
        println!("the demo data set is already loaded");
    }
    let code = crate::demo_shop::load(&app, default.id, now).await?;
    let demo_growth = crate::demo_growth::load(&app, default.id, now).await?;
    let period = payouts::demo::this_month(&app.payouts, default.id).await?;
    let demo_payouts = payouts::demo::load(&app.payouts, default.id, &period)
        .await
        .map_err(|status| anyhow::anyhow!("payouts demo: {}", status.message()))?;
    println!("demo workspace: {} ({})", default.name, default.id);
    println!("demo factory: {DEMO_FACTORY}");
    println!();
    let issue = |subject, roles: &[Role]| {
        app.issuer
            .issue(subject, default.id, roles, 3600)
            .map_err(anyhow::Error::msg)
    };
    let listen = &app.config.listen;
    // Each selection needs a request id of its own; this binary prints one (`promo uuid`).
    let promo = std::env::current_exe()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| "promo".to_owned());
    println!(
        "export GENERATOR_TOKEN={}",
        issue(Uuid::new_v4(), &[Role::Generator])?
    );
    println!(
        "export FACTORY_TOKEN={}",
        issue(DEMO_FACTORY, &[Role::Factory])?
    );
    println!(
        "export SHOP_TOKEN={}",
        issue(Uuid::new_v4(), &[Role::Storefront])?
    );
    println!("demo coupon: {code}");
    println!();
    println!("# about one call in three returns \"promoted\": true for wood or metal");
    println!(
        "grpcurl -plaintext -H \"authorization: Bearer $GENERATOR_TOKEN\" -d \"{{\\\"requestId\\\":\\\"$({promo} uuid)\\\",\\\"prompt\\\":\\\"a walnut desk with brushed steel legs and a glass top\\\"}}\" {listen} promo.promotion.v1.SelectionService/SelectMaterials"
    );
    println!(
        "grpcurl -plaintext -H \"authorization: Bearer $FACTORY_TOKEN\" -d '{{}}' {listen} promo.promotion.v1.PromotionService/ListPromotions"
    );
    println!(
        "grpcurl -plaintext -H \"authorization: Bearer $FACTORY_TOKEN\" -d '{{\"asset\":\"CREDITS\"}}' {listen} promo.ledger.v1.LedgerService/ListAccounts"
    );
    println!();
    for line in crate::demo_shop::commands(&promo, listen, &code) {
        println!("{line}");
    }
    println!();
    for line in crate::demo_growth::commands(&app, listen, &demo_growth) {
        println!("{line}");
    }
    println!();
    let run = &demo_payouts.run;
    println!(
        "# payouts: the demo advertiser's visibility campaign {} paid two promoters for views; the {} run paid {} ({} minor units) and carried {} forward",
        demo_payouts.campaign_id,
        run.period,
        run.payouts,
        run.total.as_ref().map_or(0, |total| total.amount),
        run.skipped_below_minimum
    );
    for (name, promoter) in [
        ("ABOVE", payouts::demo::DEMO_PROMOTER_ABOVE),
        ("BELOW", payouts::demo::DEMO_PROMOTER_BELOW),
    ] {
        println!(
            "export PROMOTER_{name}_TOKEN={}",
            issue(promoter, &[Role::Promoter])?
        );
    }
    println!(
        "export ADVERTISER_TOKEN={}",
        issue(payouts::demo::DEMO_ADVERTISER, &[Role::Advertiser])?
    );
    println!(
        "export BILLING_TOKEN={}",
        issue(Uuid::new_v4(), &[Role::Billing])?
    );
    println!("# 60.00 USD paid, nothing left; then 15.00 USD available and carried forward");
    for name in ["ABOVE", "BELOW"] {
        println!(
            "grpcurl -plaintext -H \"authorization: Bearer $PROMOTER_{name}_TOKEN\" -d '{{\"currency\":\"USD\"}}' {listen} promo.payouts.v1.PayoutService/GetWallet"
        );
    }
    println!(
        "grpcurl -plaintext -H \"authorization: Bearer $BILLING_TOKEN\" -d '{{\"period\":\"{}\"}}' {listen} promo.payouts.v1.PayoutService/ListPayouts",
        run.period
    );
    println!(
        "grpcurl -plaintext -H \"authorization: Bearer $ADVERTISER_TOKEN\" -d '{{\"id\":\"{}\"}}' {listen} promo.payouts.v1.CampaignService/GetCampaign",
        demo_payouts.campaign_id
    );
    Ok(())
}
