//! The growth part of `promo demo`: a referral program (100 credits for the referrer, 50 for the
//! referee, on a first order of at least 10.00 USD), an approved affiliate, and a link on the
//! shop's autumn campaign through the affiliate's social channel; and the commands that follow the
//! link over HTTP and show the click counted once. Running it twice changes nothing.

use growth::entity::{affiliate, channel, link, program};
use growth::rewards::RewardDef;
use proto::growth::v1 as pb;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::server::App;

/// The demo affiliate's principal (a customer token with this subject reads its dashboard).
pub const DEMO_AFFILIATE: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_00de_0000_af01);

/// A browser's user agent for the printed curl commands.
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0";

/// What the printed commands use.
pub struct DemoGrowth {
    pub program_id: Uuid,
    pub short_code: String,
}

/// Loads the growth demo (once) and returns its program and link.
pub async fn load(app: &App, workspace_id: Uuid, now: i64) -> anyhow::Result<DemoGrowth> {
    let connection = app.context.db.connection();
    let existing = channel::Entity::find()
        .filter(channel::Column::WorkspaceId.eq(workspace_id))
        .filter(channel::Column::Code.eq("demo-social"))
        .one(connection)
        .await?;
    if existing.is_none() {
        let autumn = marketing::store::campaign_by_code(connection, workspace_id, "DEMO-AUTUMN")
            .await?
            .ok_or_else(|| anyhow::anyhow!("the demo shop's autumn campaign is missing"))?;
        let reward = |credits| RewardDef {
            kind: pb::RewardKind::Credits as i32,
            credits,
            ..RewardDef::default()
        };
        let txn = app.context.db.begin_write().await?;
        kernel::db::insert(
            &*txn,
            program::ActiveModel::from(program::Model {
                workspace_id,
                id: Uuid::now_v7(),
                name: "Invite a friend".to_owned(),
                referrer_reward: serde_json::to_string(&reward(100))?,
                referee_reward: serde_json::to_string(&reward(50))?,
                min_currency: "USD".to_owned(),
                min_amount: 1000,
                max_referrals: 0,
                link_ttl_days: 0,
                created_at: now,
                updated_at: now,
            }),
        )
        .await?;
        let channel_row = channel::Model {
            workspace_id,
            id: Uuid::now_v7(),
            code: "demo-social".to_owned(),
            name: "Social".to_owned(),
            channel_type: pb::ChannelType::Social as i32,
            created_at: now,
            updated_at: now,
        };
        kernel::db::insert(&*txn, channel::ActiveModel::from(channel_row.clone())).await?;
        let partner = affiliate::Model {
            workspace_id,
            id: Uuid::now_v7(),
            customer_id: DEMO_AFFILIATE,
            code: growth::codes::person_code("AFF"),
            status: pb::AffiliateStatus::Active as i32,
            company_name: "Demo Partners".to_owned(),
            website: "https://partners.example/".to_owned(),
            commission_bps: growth::affiliates::DEFAULT_COMMISSION_BPS,
            commission_months: growth::affiliates::DEFAULT_COMMISSION_MONTHS,
            created_at: now,
            updated_at: now,
        };
        kernel::db::insert(&*txn, affiliate::ActiveModel::from(partner.clone())).await?;
        let prepared = growth::links::prepare_link(Some(&pb::Link {
            campaign_id: autumn.id.to_string(),
            channel_id: channel_row.id.to_string(),
            affiliate_id: partner.id.to_string(),
            name: "Autumn on social".to_owned(),
            destination_url: "https://shop.example/autumn".to_owned(),
            utm: Some(pb::Utm {
                source: "social".to_owned(),
                medium: "affiliate".to_owned(),
                campaign: "autumn".to_owned(),
                ..pb::Utm::default()
            }),
            ..pb::Link::default()
        }))?;
        growth::links::insert_link(&app.growth, &txn, workspace_id, &prepared, now).await?;
        txn.commit().await?;
        println!(
            "loaded growth: a referral program (100 + 50 credits), an approved affiliate ({}) and its link on the autumn campaign",
            partner.code
        );
    }
    let program_id = program::Entity::find()
        .filter(program::Column::WorkspaceId.eq(workspace_id))
        .filter(program::Column::Name.eq("Invite a friend"))
        .one(connection)
        .await?
        .map(|row| row.id)
        .ok_or_else(|| anyhow::anyhow!("the demo referral program is missing"))?;
    let short_code = link::Entity::find()
        .filter(link::Column::WorkspaceId.eq(workspace_id))
        .filter(link::Column::Name.eq("Autumn on social"))
        .one(connection)
        .await?
        .map(|row| row.short_code)
        .ok_or_else(|| anyhow::anyhow!("the demo link is missing"))?;
    Ok(DemoGrowth {
        program_id,
        short_code,
    })
}

/// The commands that get a referral code, follow the demo link twice over HTTP and read its count.
pub fn commands(app: &App, listen: &str, demo: &DemoGrowth) -> Vec<String> {
    let mut lines = vec![format!(
        "grpcurl -plaintext -H \"authorization: Bearer $SHOP_TOKEN\" -d '{{\"programId\":\"{}\",\"customerId\":\"{}\"}}' {listen} promo.growth.v1.ReferralService/GetReferralCode",
        demo.program_id,
        Uuid::new_v4()
    )];
    match (!app.config.http_listen.is_empty()).then_some(&app.config.http_listen) {
        Some(address) => {
            lines.push(
                "# follow the affiliate's link twice as one browser: two 302s, one click counted"
                    .to_owned(),
            );
            for _ in 0..2 {
                lines.push(format!(
                    "curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}\\n' -A '{BROWSER}' http://{address}/l/{}",
                    demo.short_code
                ));
            }
            lines.push(format!(
                "grpcurl -plaintext -H \"authorization: Bearer $SHOP_TOKEN\" -d '{{\"shortCode\":\"{}\"}}' {listen} promo.growth.v1.LinkService/GetLink",
                demo.short_code
            ));
        }
        None => lines.push(format!(
            "# start the server with PROMO_HTTP_LISTEN=127.0.0.1:8080 and follow http://127.0.0.1:8080/l/{} in a browser",
            demo.short_code
        )),
    }
    lines
}
