//! The shop part of `promo demo`: an automatic 10 % campaign, a buy-one-get-one on socks, and a
//! welcome campaign with a batch of 100 single-use 5.00 coupons, in the default workspace; and the
//! grpcurl commands that price and redeem a cart. Running it twice changes nothing.

use marketing::coupons::Terms;
use marketing::model::{CampaignStatus, KIND_STANDARD, TRIGGER_AUTOMATIC, TRIGGER_MANUAL_CODE};
use marketing::pricing::{Conditions, Kind, Rule, Scope};
use marketing::store::{self, CouponFilter, batch, campaign, rule};
use uuid::Uuid;

use crate::server::App;

/// The code of the demo's first campaign: present means the shop is loaded.
const AUTUMN: &str = "DEMO-AUTUMN";
const BATCH_SIZE: i64 = 100;

/// The cart the printed commands price: two pairs of socks and a shirt, in USD.
pub const DEMO_CART: &str = r#"{"currency":"USD","lines":[{"lineId":"socks","productId":"sock","quantity":"2","unitPrice":"800"},{"lineId":"shirt","productId":"shirt","quantity":"1","unitPrice":"1999"}]}"#;

fn rule_row(
    workspace_id: Uuid,
    name: &str,
    currency: &str,
    rule: &Rule,
    kind: i32,
    now: i64,
) -> anyhow::Result<rule::Model> {
    Ok(rule::Model {
        workspace_id,
        id: Uuid::now_v7(),
        name: name.to_owned(),
        kind,
        currency: currency.to_owned(),
        definition: serde_json::to_string(rule)?,
        created_at: now,
        updated_at: now,
    })
}

fn plain(kind: Kind) -> Rule {
    Rule {
        kind,
        scope: Scope::default(),
        min_subtotal: 0,
        max_discount: None,
        conditions: Conditions::default(),
        exclusive: false,
        priority: 0,
    }
}

#[allow(clippy::too_many_arguments)]
fn campaign_row(
    workspace_id: Uuid,
    title: &str,
    code: &str,
    trigger_type: i32,
    rule_id: Uuid,
    budget: Option<(&str, i64)>,
    now: i64,
) -> anyhow::Result<campaign::Model> {
    Ok(campaign::Model {
        workspace_id,
        id: Uuid::now_v7(),
        title: title.to_owned(),
        code: Some(code.to_owned()),
        description: String::new(),
        group_id: None,
        trigger_type,
        auto_apply: trigger_type == TRIGGER_AUTOMATIC,
        kind: KIND_STANDARD,
        status: CampaignStatus::Active as i32,
        rule_ids: serde_json::to_string(&[rule_id])?,
        start_time: Some(now),
        end_time: None,
        currency: budget
            .map(|(currency, _)| currency.to_owned())
            .unwrap_or_default(),
        budget: budget.map(|(_, amount)| amount),
        budget_used: 0,
        discount_given: 0,
        usage_limit_total: 0,
        usage_limit_per_customer: 0,
        uses_held: 0,
        redemption_count: 0,
        is_public: true,
        utm: "{}".to_owned(),
        promo_credits: 0,
        trial_days: 0,
        created_at: now,
        updated_at: now,
    })
}

/// Loads the shop (once) and returns one of its coupon codes.
pub async fn load(app: &App, workspace_id: Uuid, now: i64) -> anyhow::Result<String> {
    let connection = app.context.db.connection();
    if store::campaign_by_code(connection, workspace_id, AUTUMN)
        .await?
        .is_none()
    {
        let ten_percent = plain(Kind::Percentage {
            bps: 1000,
            max_quantity: None,
        });
        let mut bogo = plain(Kind::BuyXGetY {
            buy: 1,
            get: 1,
            get_scope: Scope::default(),
        });
        bogo.scope.product_ids = vec!["sock".to_owned()];
        bogo.priority = 10;
        let five_off = plain(Kind::FixedAmount { amount: 500 });
        let rules = [
            rule_row(workspace_id, "Ten percent", "", &ten_percent, 1, now)?,
            rule_row(workspace_id, "Second pair of socks free", "", &bogo, 5, now)?,
            rule_row(workspace_id, "Five dollars off", "USD", &five_off, 2, now)?,
        ];
        let campaigns = [
            campaign_row(
                workspace_id,
                "Autumn sale",
                AUTUMN,
                TRIGGER_AUTOMATIC,
                rules[0].id,
                None,
                now,
            )?,
            campaign_row(
                workspace_id,
                "Socks BOGO",
                "DEMO-SOCKS",
                TRIGGER_AUTOMATIC,
                rules[1].id,
                None,
                now,
            )?,
            campaign_row(
                workspace_id,
                "Welcome",
                "DEMO-WELCOME",
                TRIGGER_MANUAL_CODE,
                rules[2].id,
                Some(("USD", 100_000)),
                now,
            )?,
        ];
        let terms = Terms {
            rule_id: rules[2].id,
            campaign_id: Some(campaigns[2].id),
            customer_id: None,
            valid_from: None,
            valid_until: None,
            usage_limit: 1,
            usage_limit_per_customer: 0,
        };
        let batch_row = batch::Model {
            workspace_id,
            id: Uuid::now_v7(),
            status: marketing::batches::BATCH_RUNNING,
            requested: BATCH_SIZE,
            generated: 0,
            pattern: "####-??".to_owned(),
            prefix: "WELCOME-".to_owned(),
            allow_ambiguous: false,
            template: serde_json::to_string(&terms)?,
            error: String::new(),
            created_at: now,
            updated_at: now,
        };
        let txn = app.context.db.begin_write().await?;
        for row in rules {
            store::insert(&*txn, rule::ActiveModel::from(row)).await?;
        }
        for row in campaigns {
            store::insert(&*txn, campaign::ActiveModel::from(row)).await?;
        }
        store::insert(&*txn, batch::ActiveModel::from(batch_row.clone())).await?;
        store::bump_version(&*txn, workspace_id).await?;
        txn.commit().await?;
        marketing::batches::run_batch(&app.marketing, workspace_id, batch_row.id).await?;
        println!(
            "loaded a shop: an automatic 10 % campaign, a second pair of socks free, and {BATCH_SIZE} single-use 5.00 USD welcome coupons"
        );
    }
    let welcome = store::campaign_by_code(connection, workspace_id, "DEMO-WELCOME")
        .await?
        .ok_or_else(|| anyhow::anyhow!("the demo's welcome campaign is missing"))?;
    let filter = CouponFilter {
        campaign_id: Some(welcome.id),
        ..CouponFilter::default()
    };
    let coupons = store::list_coupons(connection, workspace_id, filter, None, 1).await?;
    let code = coupons
        .first()
        .map(|coupon| coupon.code.clone())
        .ok_or_else(|| anyhow::anyhow!("the demo's welcome coupons are missing"))?;
    Ok(code)
}

/// The commands that price and redeem the demo cart with `code`.
pub fn commands(promo: &str, listen: &str, code: &str) -> Vec<String> {
    let cart = DEMO_CART.replace('"', "\\\"");
    vec![
        "# 2 socks at 8.00 and a shirt at 19.99: the second pair free (8.00), 10 % of the rest (0.80 + 2.00),".to_owned(),
        "# the coupon's 5.00 spread over what is left (1.43 + 3.57): 15.80 off, 20.19 to pay".to_owned(),
        format!(
            "grpcurl -plaintext -H \"authorization: Bearer $SHOP_TOKEN\" -d \"{{\\\"cart\\\":{cart},\\\"couponCodes\\\":[\\\"{code}\\\"]}}\" {listen} promo.marketing.v1.PricingService/EvaluateCart"
        ),
        format!(
            "grpcurl -plaintext -H \"authorization: Bearer $SHOP_TOKEN\" -d \"{{\\\"requestId\\\":\\\"$({promo} uuid)\\\",\\\"orderId\\\":\\\"demo-order-1\\\",\\\"cart\\\":{cart},\\\"couponCodes\\\":[\\\"{code}\\\"]}}\" {listen} promo.marketing.v1.PricingService/CreateRedemption"
        ),
    ]
}
