//! Marketing over real gRPC: a shop's whole narrative with exact pricing, bulk codes,
//! and what bad input and other tenants get (concurrency and expiry: marketing_redemption; displays
//! and customer events: marketing_storefront).

use kernel::Role;
use proto::marketing::v1 as pb;
use proto::marketing::v1::participation_service_client::ParticipationServiceClient;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{authed, reason, request_id, spawn_app};
use crate::marketing_support::*;

#[tokio::test]
async fn a_shop_runs_a_campaign_from_rule_to_confirmed_redemption() {
    let app = spawn_app().await;
    let mut shop = Shop::new(&app);
    let ten_percent = shop
        .rule(percentage("Ten percent", 1000))
        .await
        .expect("rule");
    let five_off = shop.rule(fixed("Five off", 500)).await.expect("rule");
    assert_eq!(five_off.currency, "USD");
    let automatic = shop.live_campaign("Autumn", &[&ten_percent.id], true).await;
    assert_eq!(automatic.status, pb::CampaignStatus::Active as i32);
    let boost = shop
        .campaign(pb::Campaign {
            title: "Join and save".to_owned(),
            discount_rule_ids: vec![five_off.id.clone()],
            budget: usd(100_000),
            usage_limit_per_customer: 1,
            ..pb::Campaign::default()
        })
        .await
        .expect("campaign");
    shop.launch(&boost.id).await.expect("launch");

    // A customer joins and is issued a coupon bound to it, once.
    let customer = Uuid::new_v4();
    let customer_token = app.token_for(customer, app.default_workspace, &[Role::Customer]);
    let mut participation = ParticipationServiceClient::new(app.channel.clone());
    let join = || pb::JoinCampaignRequest {
        request_id: request_id(),
        campaign_id: boost.id.clone(),
        customer_id: String::new(),
    };
    let joined = participation
        .join_campaign(authed(join(), &customer_token))
        .await
        .expect("join")
        .into_inner();
    assert_eq!(joined.status, pb::ParticipationStatus::CouponIssued as i32);
    assert_eq!(joined.customer_id, customer.to_string());
    let again = participation
        .join_campaign(authed(join(), &customer_token))
        .await
        .expect("join again")
        .into_inner();
    assert_eq!(
        (again.id.as_str(), again.coupon_code.as_str()),
        (joined.id.as_str(), joined.coupon_code.as_str())
    );
    let code = joined.coupon_code.clone();

    // 2 × 19.99 + 12.50: 10 % half-up per line (400 + 125), then 5.00 spread over what is left
    // (3598 : 1125 → 380.9 and 119.1, the cent to the larger remainder: 381 + 119).
    let lines = || vec![line("a", "shirt", 2, 1999), line("b", "mug", 1, 1250)];
    let priced = shop
        .evaluate(
            cart(&customer.to_string(), lines()),
            &[&code.to_lowercase()],
        )
        .await;
    assert_eq!(priced.subtotal, 5248);
    assert_eq!(priced.rejected_coupons, Vec::new());
    let per_line: Vec<(String, i64)> = priced
        .line_discounts
        .iter()
        .map(|l| (l.line_id.clone(), l.amount))
        .collect();
    assert_eq!(per_line, [("a".to_owned(), 781), ("b".to_owned(), 244)]);
    assert_eq!((priced.total_discount, priced.total), (1025, 4223));
    let amounts: Vec<(String, i64)> = priced
        .effects
        .iter()
        .map(|effect| (effect.campaign_id.clone(), effect.amount))
        .collect();
    assert_eq!(
        amounts,
        [(automatic.id.clone(), 525), (boost.id.clone(), 500)]
    );

    // Someone else's cart: the bound coupon does not exist for it.
    let stranger = shop
        .evaluate(cart(&Uuid::new_v4().to_string(), lines()), &[&code])
        .await;
    assert_eq!(stranger.rejected_coupons[0].reason, "COUPON_NOT_FOUND");
    assert_eq!(stranger.total_discount, 525);

    // Reserve exactly what was priced, then confirm.
    let reserved = shop
        .reserve("order-1", cart(&customer.to_string(), lines()), &[&code])
        .await;
    assert_eq!(reserved.status, pb::RedemptionStatus::Reserved as i32);
    assert_eq!(reserved.total_discount, 1025);
    assert_eq!(codes_of(&reserved), std::slice::from_ref(&code));
    let held = shop.get_coupon(&code).await;
    assert_eq!((held.times_reserved, held.times_redeemed), (1, 0));
    let confirmed = shop.confirm(&reserved.id).await.expect("confirm");
    assert_eq!(confirmed.status, pb::RedemptionStatus::Confirmed as i32);
    let used = shop.get_coupon(&code).await;
    assert_eq!((used.times_reserved, used.times_redeemed), (0, 1));
    let boost_now = shop
        .campaigns
        .get_campaign(authed(
            pb::GetCampaignRequest {
                id: boost.id.clone(),
            },
            &shop.admin,
        ))
        .await
        .expect("campaign")
        .into_inner();
    assert_eq!(boost_now.redemption_count, 1);
    assert_eq!(boost_now.discount_given, usd(500));
    assert_eq!(boost_now.budget_reserved, usd(0));
    // The automatic campaign has no budget or limit: it held nothing, and counts the confirmation.
    let automatic_now = shop
        .campaigns
        .get_campaign(authed(
            pb::GetCampaignRequest {
                id: automatic.id.clone(),
            },
            &shop.admin,
        ))
        .await
        .expect("campaign")
        .into_inner();
    assert_eq!(
        (
            automatic_now.redemption_count,
            automatic_now.budget_reserved
        ),
        (1, None)
    );
    let mine = participation
        .list_participations(authed(
            pb::ListParticipationsRequest::default(),
            &customer_token,
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(mine.participations.len(), 1);
    assert_eq!(
        mine.participations[0].status,
        pb::ParticipationStatus::Redeemed as i32
    );

    // The coupon is used up: pricing says so at once, and a second confirm changes nothing.
    let after = shop
        .evaluate(cart(&customer.to_string(), lines()), &[&code])
        .await;
    assert_eq!(
        after.rejected_coupons[0].reason,
        "COUPON_USAGE_LIMIT_REACHED"
    );
    let twice = shop.confirm(&reserved.id).await.expect("confirm again");
    assert_eq!(twice.status, pb::RedemptionStatus::Confirmed as i32);
    assert_eq!(shop.get_coupon(&code).await.times_redeemed, 1);

    // A second order is reserved and rolled back: it releases its budget, and a confirmed order
    // cannot be rolled back.
    let second = shop.reserve("order-2", cart("", lines()), &[]).await;
    assert_eq!(second.total_discount, 525);
    let rolled = shop.rollback(&second.id).await.expect("rollback");
    assert_eq!(rolled.status, pb::RedemptionStatus::RolledBack as i32);
    assert_eq!(
        shop.confirm(&second.id)
            .await
            .map(|_| ())
            .map_err(|e| reason(&e)),
        Err("REDEMPTION_NOT_RESERVED".to_owned())
    );
    let refused = shop.rollback(&reserved.id).await.expect_err("confirmed");
    assert_eq!(reason(&refused), "REDEMPTION_ALREADY_CONFIRMED");
}

#[tokio::test]
async fn a_coupon_batch_makes_unique_codes_from_its_pattern_and_exports_them() {
    let app = spawn_app().await;
    let mut shop = Shop::new(&app);
    let rule = shop.rule(percentage("Batch", 1500)).await.expect("rule");
    let template = pb::Coupon {
        discount_rule_id: rule.id.clone(),
        usage_limit: 1,
        ..pb::Coupon::default()
    };
    let request = pb::GenerateCouponsRequest {
        request_id: request_id(),
        template: Some(template.clone()),
        count: 5000,
        pattern: "####-??".to_owned(),
        prefix: "fall-".to_owned(),
        allow_ambiguous: false,
    };
    let batch = shop
        .coupons
        .generate_coupons(authed(request, &shop.admin))
        .await
        .expect("generate")
        .into_inner();
    let id = Uuid::parse_str(&batch.id).expect("id");
    // Drive the batch to its end here too: the progress check lets one worker add each chunk.
    marketing::batches::run_batch(&app.marketing, app.default_workspace, id)
        .await
        .expect("run");
    let done = shop
        .coupons
        .get_coupon_batch(authed(
            pb::GetCouponBatchRequest {
                id: batch.id.clone(),
            },
            &shop.admin,
        ))
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(
        (done.status, done.generated),
        (pb::BatchStatus::Succeeded as i32, 5000)
    );

    let export = pb::ExportCouponsRequest {
        campaign_id: String::new(),
        batch_id: batch.id.clone(),
        format: pb::ExportFormat::Csv as i32,
    };
    let mut stream = shop
        .coupons
        .export_coupons(authed(export, &shop.admin))
        .await
        .expect("export")
        .into_inner();
    let mut csv = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        csv.extend(chunk.chunk);
    }
    let text = String::from_utf8(csv).expect("utf-8");
    let codes: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|row| row.split(',').next().unwrap_or(""))
        .collect();
    assert_eq!(codes.len(), 5000);
    let unique: std::collections::BTreeSet<&str> = codes.iter().copied().collect();
    assert_eq!(unique.len(), 5000);
    for code in &codes {
        let bytes = code.as_bytes();
        assert!(code.starts_with("FALL-") && code.len() == 12, "{code}");
        assert!(
            bytes[5..9].iter().all(|b| b"23456789".contains(b)),
            "{code}"
        );
        assert!(
            bytes[10..]
                .iter()
                .all(|b| b.is_ascii_uppercase() && !b"ILO".contains(b)),
            "{code}"
        );
    }
    // A generated code prices like any other.
    let priced = shop
        .evaluate(cart("", vec![line("a", "tea", 1, 1000)]), &[codes[0]])
        .await;
    assert_eq!(priced.total_discount, 150);

    // Too many for the pattern, or no random position: refused, nothing made.
    for (pattern, count) in [("##", 100), ("FIXED", 1)] {
        let request = pb::GenerateCouponsRequest {
            request_id: request_id(),
            template: Some(template.clone()),
            count,
            pattern: pattern.to_owned(),
            prefix: String::new(),
            allow_ambiguous: false,
        };
        let error = shop
            .coupons
            .generate_coupons(authed(request, &shop.admin))
            .await
            .expect_err(pattern);
        assert_eq!(error.code(), Code::InvalidArgument, "{pattern}");
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_changes_nothing() {
    let app = spawn_app().await;
    let mut shop = Shop::new(&app);
    let cases = [
        (percentage("Too much", 10_001), "rule.percent_bps"),
        (
            pb::DiscountRule {
                tiers: vec![
                    pb::Tier {
                        min_subtotal: usd(5000),
                        percent_bps: 1000,
                        ..pb::Tier::default()
                    },
                    pb::Tier {
                        min_subtotal: usd(1000),
                        percent_bps: 500,
                        ..pb::Tier::default()
                    },
                ],
                kind: pb::DiscountKind::TieredPercentage as i32,
                ..percentage("Tiers out of order", 0)
            },
            "rule.tiers[1]",
        ),
        (
            pb::DiscountRule {
                product_ids: vec!["has space".to_owned()],
                ..percentage("Bad product", 1000)
            },
            "rule.product_ids[0]",
        ),
    ];
    for (rule, field) in cases {
        let error = shop.rule(rule).await.expect_err(field);
        assert_eq!(error.code(), Code::InvalidArgument, "{field}");
        use tonic_types::StatusExt;
        let fields: Vec<String> = error
            .get_details_bad_request()
            .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default();
        assert!(
            fields.contains(&field.to_owned()),
            "{field} not in {fields:?}"
        );
    }
    let mixed = pb::DiscountRule {
        max_discount: Some(pb::Money {
            currency: "EUR".to_owned(),
            amount: 100,
        }),
        ..fixed("Mixed", 500)
    };
    assert_eq!(
        reason(&shop.rule(mixed).await.expect_err("mixed")),
        "CURRENCY_MISMATCH"
    );

    let rule = shop.rule(percentage("Fine", 1000)).await.expect("rule");
    let now = chrono::Utc::now().timestamp();
    let ends_first = pb::Campaign {
        title: "Backwards".to_owned(),
        discount_rule_ids: vec![rule.id.clone()],
        start_time: Some(prost_types::Timestamp {
            seconds: now + 7200,
            nanos: 0,
        }),
        end_time: Some(prost_types::Timestamp {
            seconds: now + 3600,
            nanos: 0,
        }),
        ..pb::Campaign::default()
    };
    assert_eq!(
        shop.campaign(ends_first)
            .await
            .expect_err("end first")
            .code(),
        Code::InvalidArgument
    );

    // Carts: zero quantity, negative price, too many lines; nothing is reserved.
    let bad_carts = [
        cart("", vec![line("a", "tea", 0, 100)]),
        cart("", vec![line("a", "tea", 1, -5)]),
        cart(
            "",
            (0..10_001)
                .map(|i| line(&format!("l{i}"), "tea", 1, 1))
                .collect(),
        ),
    ];
    for bad in bad_carts {
        let request = pb::EvaluateCartRequest {
            cart: Some(bad),
            coupon_codes: vec![],
        };
        let error = shop
            .pricing
            .evaluate_cart(authed(request, &shop.storefront))
            .await
            .expect_err("cart");
        assert_eq!(error.code(), Code::InvalidArgument);
    }

    // A coupon for a rule of another workspace: that rule does not exist here.
    let other = app.other_workspace("elsewhere").await;
    let mut foreign = Shop::with_tokens(
        &app,
        app.token_for(Uuid::new_v4(), other, &[Role::Admin]),
        app.token_for(Uuid::new_v4(), other, &[Role::Storefront]),
    );
    let theirs = foreign
        .rule(percentage("Theirs", 2000))
        .await
        .expect("their rule");
    let error = shop
        .coupon(pb::Coupon {
            code: "STEAL".to_owned(),
            discount_rule_id: theirs.id.clone(),
            ..pb::Coupon::default()
        })
        .await
        .expect_err("foreign rule");
    assert_eq!(
        (error.code(), reason(&error).as_str()),
        (Code::NotFound, "DISCOUNT_RULE_NOT_FOUND")
    );
    // And a code of this workspace is unknown to the other one.
    shop.coupon(pb::Coupon {
        code: "MINE".to_owned(),
        discount_rule_id: rule.id.clone(),
        ..pb::Coupon::default()
    })
    .await
    .expect("coupon");
    let there = foreign
        .evaluate(cart("", vec![line("a", "tea", 1, 100)]), &["MINE"])
        .await;
    assert_eq!(there.rejected_coupons[0].reason, "COUPON_NOT_FOUND");
    let lookup = foreign
        .campaigns
        .get_campaign(authed(
            pb::GetCampaignRequest {
                id: rule.id.clone(),
            },
            &foreign.admin,
        ))
        .await
        .expect_err("unknown");
    assert_eq!(lookup.code(), Code::NotFound);
    // A customer token may not price carts.
    let customer = app.token(&[Role::Customer]);
    let request = pb::EvaluateCartRequest {
        cart: Some(cart("", vec![line("a", "tea", 1, 100)])),
        coupon_codes: vec![],
    };
    let denied = shop
        .pricing
        .evaluate_cart(authed(request, &customer))
        .await
        .expect_err("customer");
    assert_eq!(denied.code(), Code::PermissionDenied);
}
