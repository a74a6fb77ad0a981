//! Marketing's two-phase redemption under concurrency and time: 1,000 concurrent reservations
//! against 10 uses (rollbacks interleaved), a campaign budget under load, expiry and its setting.

use std::sync::Arc;

use kernel::ManualClock;
use proto::marketing::v1 as pb;
use tonic::Code;

use crate::helpers::{authed, request_id, spawn_app, spawn_app_with_clock};
use crate::marketing_support::*;

/// 1,000 concurrent CreateRedemption calls for a coupon with 10 uses reserve exactly 10; with
/// rollbacks interleaved, released uses come back and never more; a campaign budget binds the
/// same way.
#[tokio::test]
async fn concurrent_redemptions_never_take_more_than_the_limit() {
    let app = spawn_app().await;
    let mut shop = Shop::new(&app);
    let rule = shop.rule(fixed("One off", 100)).await.expect("rule");
    shop.coupon(pb::Coupon {
        code: "race10".to_owned(),
        discount_rule_id: rule.id.clone(),
        usage_limit: 10,
        ..pb::Coupon::default()
    })
    .await
    .expect("coupon");
    let (admin, storefront) = (shop.admin.clone(), shop.storefront.clone());
    let reserve_all = |count: usize, prefix: &'static str| {
        let handles: Vec<_> = (0..count)
            .map(|index| {
                let mut shop = Shop::with_tokens(&app, admin.clone(), storefront.clone());
                tokio::spawn(async move {
                    let order = format!("{prefix}-{index}");
                    shop.reserve(
                        &order,
                        cart("", vec![line("a", "tea", 1, 1000)]),
                        &["RACE10"],
                    )
                    .await
                })
            })
            .collect();
        async move {
            let mut winners = Vec::new();
            for handle in handles {
                let redemption = handle.await.expect("task");
                if codes_of(&redemption) == ["RACE10"] {
                    winners.push(redemption.id);
                } else {
                    assert_eq!(
                        redemption.rejected_coupons[0].reason,
                        "COUPON_USAGE_LIMIT_REACHED"
                    );
                }
            }
            winners
        }
    };
    let winners = reserve_all(1000, "first").await;
    assert_eq!(winners.len(), 10);
    assert_eq!(shop.get_coupon("RACE10").await.times_reserved, 10);

    // Four winners roll back while 200 more try.
    let rollbacks: Vec<_> = winners[..4]
        .iter()
        .map(|id| {
            let mut shop = Shop::with_tokens(&app, shop.admin.clone(), shop.storefront.clone());
            let id = id.clone();
            tokio::spawn(async move { shop.rollback(&id).await.expect("rollback") })
        })
        .collect();
    let late = reserve_all(200, "second").await;
    for rollback in rollbacks {
        rollback.await.expect("task");
    }
    let held = shop.get_coupon("RACE10").await.times_reserved;
    assert!(
        late.len() <= 4,
        "{} late winners for 4 released uses",
        late.len()
    );
    assert_eq!(held, 6 + late.len() as i64);
    // What is still free is taken by exactly that many more, and then nothing.
    let rest = reserve_all(20, "third").await;
    assert_eq!(rest.len() as i64, 10 - held);
    assert_eq!(shop.get_coupon("RACE10").await.times_reserved, 10);

    // An automatic campaign with a budget of 7 × 1.00 discounts exactly seven of 100 carts.
    let budget_rule = shop.rule(fixed("Budgeted", 100)).await.expect("rule");
    let campaign = shop
        .campaign(pb::Campaign {
            title: "Seven".to_owned(),
            discount_rule_ids: vec![budget_rule.id.clone()],
            trigger_type: pb::TriggerType::Automatic as i32,
            auto_apply: true,
            budget: usd(700),
            ..pb::Campaign::default()
        })
        .await
        .expect("campaign");
    shop.launch(&campaign.id).await.expect("launch");
    let handles: Vec<_> = (0..100)
        .map(|index| {
            let mut shop = Shop::with_tokens(&app, shop.admin.clone(), shop.storefront.clone());
            tokio::spawn(async move {
                shop.reserve(
                    &format!("budget-{index}"),
                    cart("", vec![line("a", "tea", 1, 1000)]),
                    &[],
                )
                .await
            })
        })
        .collect();
    let mut discounted = 0;
    for handle in handles {
        let redemption = handle.await.expect("task");
        discounted += usize::from(
            redemption
                .effects
                .iter()
                .any(|effect| effect.campaign_id == campaign.id),
        );
    }
    assert_eq!(discounted, 7);
    let spent = shop
        .campaigns
        .get_campaign(authed(
            pb::GetCampaignRequest {
                id: campaign.id.clone(),
            },
            &shop.admin,
        ))
        .await
        .expect("campaign")
        .into_inner();
    assert_eq!(spent.budget_reserved, usd(700));
}

#[tokio::test]
async fn an_unconfirmed_reservation_expires_and_releases_its_use() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(|_| {}, clock.clone()).await;
    let mut shop = Shop::new(&app);
    let rule = shop.rule(percentage("Half", 5000)).await.expect("rule");
    shop.coupon(pb::Coupon {
        code: "ONCE".to_owned(),
        discount_rule_id: rule.id.clone(),
        usage_limit: 1,
        ..pb::Coupon::default()
    })
    .await
    .expect("coupon");
    let reserved = shop
        .reserve("o-1", cart("", vec![line("a", "tea", 3, 333)]), &["ONCE"])
        .await;
    // Half of 999 rounds half-up to 500.
    assert_eq!(reserved.total_discount, 500);
    let blocked = shop
        .reserve("o-2", cart("", vec![line("a", "tea", 1, 100)]), &["ONCE"])
        .await;
    assert_eq!(
        blocked.rejected_coupons[0].reason,
        "COUPON_USAGE_LIMIT_REACHED"
    );

    assert_eq!(app.marketing.sweep().await, 0, "nothing is due yet");
    clock.advance(chrono::Duration::seconds(901));
    // Both reservations expire (the second one holds nothing, and releases nothing).
    assert_eq!(app.marketing.sweep().await, 2);
    let expired = shop
        .pricing
        .get_redemption(authed(
            pb::GetRedemptionRequest {
                id: reserved.id.clone(),
            },
            &shop.storefront,
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(expired.status, pb::RedemptionStatus::Expired as i32);
    assert_eq!(shop.get_coupon("ONCE").await.times_reserved, 0);
    let late = shop.confirm(&reserved.id).await.expect_err("expired");
    assert_eq!(late.code(), Code::FailedPrecondition);
    let again = shop
        .reserve("o-3", cart("", vec![line("a", "tea", 1, 100)]), &["ONCE"])
        .await;
    assert_eq!(codes_of(&again), ["ONCE"]);
    let held_for = |redemption: &pb::Redemption| {
        let seconds = |t: &Option<prost_types::Timestamp>| t.as_ref().map_or(0, |t| t.seconds);
        seconds(&redemption.expire_time) - seconds(&redemption.create_time)
    };
    assert_eq!(held_for(&again), 900);

    // The workspace shortens the hold; the next reservation follows at once.
    let mut admin = proto::admin::v1::workspace_service_client::WorkspaceServiceClient::new(
        app.channel.clone(),
    );
    let update = proto::admin::v1::UpdateSettingsRequest {
        request_id: request_id(),
        workspace_id: String::new(),
        settings: Some(proto::admin::v1::Settings {
            marketing: Some(pb::MarketingSettings {
                reservation_ttl_seconds: 120,
            }),
            ..proto::admin::v1::Settings::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["marketing.reservation_ttl_seconds".to_owned()],
        }),
    };
    admin
        .update_settings(authed(update.clone(), &shop.admin))
        .await
        .expect("settings");
    let shorter = shop
        .reserve("o-4", cart("", vec![line("a", "tea", 1, 100)]), &[])
        .await;
    assert_eq!(held_for(&shorter), 120);
    let mut too_short = update;
    too_short.request_id = request_id();
    if let Some(settings) = too_short.settings.as_mut() {
        settings.marketing = Some(pb::MarketingSettings {
            reservation_ttl_seconds: 5,
        });
    }
    let error = admin
        .update_settings(authed(too_short, &shop.admin))
        .await
        .expect_err("too short");
    assert_eq!(error.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn confirmed_orders_and_impressions_show_in_the_days_analytics_and_its_exports() {
    let app = spawn_app().await;
    let mut shop = Shop::new(&app);
    let rule = shop.rule(fixed("Two off", 200)).await.expect("rule");
    let campaign = shop.live_campaign("Counted", &[&rule.id], true).await;
    for impressions in [3, 4] {
        let request = pb::ReportImpressionsRequest {
            request_id: request_id(),
            campaign_id: campaign.id.clone(),
            impressions,
        };
        shop.campaigns
            .report_impressions(authed(request, &shop.storefront))
            .await
            .expect("impressions");
    }
    let paid = shop
        .reserve("paid", cart("", vec![line("a", "tea", 2, 1500)]), &[])
        .await;
    shop.confirm(&paid.id).await.expect("confirm");
    let dropped = shop
        .reserve("dropped", cart("", vec![line("a", "tea", 1, 900)]), &[])
        .await;
    shop.rollback(&dropped.id).await.expect("rollback");

    let analytics = shop
        .campaigns
        .get_campaign_analytics(authed(
            pb::GetCampaignAnalyticsRequest {
                campaign_id: campaign.id.clone(),
                start_date: String::new(),
                end_date: String::new(),
            },
            &shop.admin,
        ))
        .await
        .expect("analytics")
        .into_inner();
    assert_eq!(
        analytics.days.len(),
        30,
        "the last 30 days, every one present"
    );
    let totals = analytics.totals.expect("totals");
    assert_eq!((totals.impressions, totals.coupons_redeemed), (7, 0));
    assert_eq!(totals.revenue, [usd(3000).expect("money")]);
    assert_eq!(totals.discount_given, [usd(200).expect("money")]);
    let today = analytics.days.last().expect("today");
    assert_eq!(today.impressions, 7);

    let export = |format: pb::ExportFormat| pb::ExportCampaignAnalyticsRequest {
        campaign_id: campaign.id.clone(),
        start_date: String::new(),
        end_date: String::new(),
        format: format as i32,
    };
    let mut text = String::new();
    for format in [pb::ExportFormat::Csv, pb::ExportFormat::Json] {
        let mut stream = shop
            .campaigns
            .export_campaign_analytics(authed(export(format), &shop.admin))
            .await
            .expect("export")
            .into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.message().await.expect("chunk") {
            bytes.extend(chunk.chunk);
        }
        text = String::from_utf8(bytes).expect("utf-8");
        if format == pb::ExportFormat::Csv {
            let rows: Vec<&str> = text.lines().collect();
            assert_eq!(rows.len(), 3, "{text}");
            assert!(rows[0].starts_with("date,currency,impressions"));
            assert!(
                rows.iter()
                    .any(|row| row.ends_with(",USD,0,0,0,3000,0,0,200")),
                "{text}"
            );
            assert!(
                rows.iter().any(|row| row.ends_with(",,7,0,0,0,0,0,0")),
                "{text}"
            );
        }
    }
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json["totals"]["impressions"], "7");
    let mut stream = shop
        .campaigns
        .export_campaign_analytics(authed(export(pb::ExportFormat::Xlsx), &shop.admin))
        .await
        .expect("xlsx export")
        .into_inner();
    let mut xlsx = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        xlsx.extend(chunk.chunk);
    }
    let (sheet, strings) = xlsx_parts(&xlsx);
    for value in ["<v>3000</v>", "<v>200</v>", "<v>7</v>"] {
        assert!(sheet.contains(value), "{value} in {sheet}");
    }
    for value in ["discount_given", "USD", "Campaign analytics"] {
        assert!(strings.contains(value), "{value} in the workbook's strings");
    }
    assert_eq!(json["totals"]["revenue"][0]["amount"], "3000");
    assert_eq!(json["days"].as_array().map(Vec::len), Some(30));

    let backwards = pb::GetCampaignAnalyticsRequest {
        campaign_id: campaign.id.clone(),
        start_date: "2026-02-01".to_owned(),
        end_date: "2026-01-01".to_owned(),
    };
    let error = shop
        .campaigns
        .get_campaign_analytics(authed(backwards, &shop.admin))
        .await
        .expect_err("backwards");
    assert_eq!(error.code(), Code::InvalidArgument);
}

/// Two gateways on one database, as two replicas: their in-memory queues do not see each other,
/// so the database's row locks alone keep the limit.
#[tokio::test]
async fn two_gateways_on_one_database_reserve_exactly_the_limit() {
    let first = spawn_app().await;
    let url = first.database_url.clone();
    let second = crate::helpers::spawn_app_with(move |config| config.database_url = url).await;
    let mut shop = Shop::new(&first);
    let rule = shop.rule(fixed("Shared", 100)).await.expect("rule");
    shop.coupon(pb::Coupon {
        code: "SHARED10".to_owned(),
        discount_rule_id: rule.id.clone(),
        usage_limit: 10,
        ..pb::Coupon::default()
    })
    .await
    .expect("coupon");
    let handles: Vec<_> = (0..200)
        .map(|index| {
            let app = if index % 2 == 0 { &first } else { &second };
            let mut shop = Shop::with_tokens(app, shop.admin.clone(), shop.storefront.clone());
            tokio::spawn(async move {
                let lines = vec![line("a", "tea", 1, 1000)];
                shop.reserve(&format!("replica-{index}"), cart("", lines), &["SHARED10"])
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for handle in handles {
        let redemption = handle.await.expect("task");
        winners += usize::from(codes_of(&redemption) == ["SHARED10"]);
    }
    assert_eq!(winners, 10);
    assert_eq!(shop.get_coupon("SHARED10").await.times_reserved, 10);
}

#[tokio::test]
async fn validate_coupon_checks_the_database_per_customer_and_prices_a_cart() {
    let app = spawn_app().await;
    let mut shop = Shop::new(&app);
    let rule = shop.rule(percentage("Quarter", 2500)).await.expect("rule");
    let campaign = shop
        .campaign(pb::Campaign {
            title: "Budgeted".to_owned(),
            discount_rule_ids: vec![rule.id.clone()],
            budget: usd(10_000),
            ..pb::Campaign::default()
        })
        .await
        .expect("campaign");
    shop.launch(&campaign.id).await.expect("launch");
    shop.coupon(pb::Coupon {
        code: "ONEEACH".to_owned(),
        discount_rule_id: rule.id.clone(),
        campaign_id: campaign.id.clone(),
        usage_limit_per_customer: 1,
        ..pb::Coupon::default()
    })
    .await
    .expect("coupon");
    let customer = uuid::Uuid::new_v4();
    let token = app.token_for(customer, app.default_workspace, &[kernel::Role::Customer]);
    let validate = |cart: Option<pb::Cart>, customer_id: &str| pb::ValidateCouponRequest {
        code: "oneeach".to_owned(),
        cart,
        customer_id: customer_id.to_owned(),
    };
    let answer = shop
        .coupons
        .validate_coupon(authed(validate(None, ""), &token))
        .await
        .expect("validate")
        .into_inner();
    assert!(answer.valid, "{answer:?}");
    let priced = shop
        .coupons
        .validate_coupon(authed(
            validate(
                Some(cart(&customer.to_string(), vec![line("a", "tea", 1, 999)])),
                "",
            ),
            &token,
        ))
        .await
        .expect("validate")
        .into_inner();
    assert_eq!((priced.valid, priced.discount), (true, usd(250)));
    // Someone else's validation from this customer's token is refused.
    let other = shop
        .coupons
        .validate_coupon(authed(
            validate(None, &uuid::Uuid::new_v4().to_string()),
            &token,
        ))
        .await
        .expect_err("someone else");
    assert_eq!(other.code(), Code::PermissionDenied);
    // Used once: the database says so per customer, and only for this customer.
    let order = shop
        .reserve(
            "once",
            cart(&customer.to_string(), vec![line("a", "tea", 1, 999)]),
            &["ONEEACH"],
        )
        .await;
    shop.confirm(&order.id).await.expect("confirm");
    let used = shop
        .coupons
        .validate_coupon(authed(validate(None, ""), &token))
        .await
        .expect("validate")
        .into_inner();
    assert_eq!(
        (used.valid, used.reason.as_str()),
        (false, "CUSTOMER_USAGE_LIMIT_REACHED")
    );
    let fresh = shop
        .coupons
        .validate_coupon(authed(
            validate(None, &uuid::Uuid::new_v4().to_string()),
            &shop.admin,
        ))
        .await
        .expect("validate")
        .into_inner();
    assert!(fresh.valid);
}

/// The first worksheet's XML and the workbook's shared strings and sheet names, read from the
/// XLSX (a zip archive) as a spreadsheet program would.
fn xlsx_parts(bytes: &[u8]) -> (String, String) {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("an xlsx is a zip");
    let mut read = |name: &str| {
        let mut text = String::new();
        archive
            .by_name(name)
            .unwrap_or_else(|error| panic!("{name}: {error}"))
            .read_to_string(&mut text)
            .expect("utf-8 xml");
        text
    };
    let sheet = read("xl/worksheets/sheet1.xml");
    let strings = read("xl/sharedStrings.xml") + &read("xl/workbook.xml");
    (sheet, strings)
}
