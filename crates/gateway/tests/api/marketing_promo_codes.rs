//! Promo codes (RedeemPromoCode): credits through the ledger within the campaign's budget, trial
//! days and a rule, per-customer and total limits under concurrency, idempotency, bad input.

use kernel::Role;
use proto::ledger::v1 as ledger;
use proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use proto::marketing::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{TestApp, authed, reason, request_id, spawn_app};
use crate::marketing_support::{Shop, percentage};

fn credits(amount: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency: "CREDITS".to_owned(),
        amount,
    })
}

/// A launched promo-code campaign.
async fn promo(shop: &mut Shop, campaign: pb::Campaign) -> pb::Campaign {
    let created = shop
        .campaign(pb::Campaign {
            title: format!("Promo {}", campaign.code),
            kind: pb::CampaignKind::PromoCode as i32,
            ..campaign
        })
        .await
        .expect("promo campaign");
    shop.launch(&created.id).await.expect("launch")
}

fn redeem_request(code: &str, customer: Option<Uuid>) -> pb::RedeemPromoCodeRequest {
    pb::RedeemPromoCodeRequest {
        request_id: request_id(),
        code: code.to_owned(),
        customer_id: customer.map(|id| id.to_string()).unwrap_or_default(),
    }
}

async fn redeem(
    shop: &mut Shop,
    token: &str,
    request: pb::RedeemPromoCodeRequest,
) -> Result<pb::RedeemPromoCodeResponse, tonic::Status> {
    shop.pricing
        .redeem_promo_code(authed(request, token))
        .await
        .map(tonic::Response::into_inner)
}

/// The customer's CREDITS balance as the ledger reports it (0 without a wallet).
async fn balance(app: &TestApp, customer: Uuid) -> i64 {
    LedgerServiceClient::new(app.channel.clone())
        .list_accounts(authed(
            ledger::ListAccountsRequest {
                owner_id: customer.to_string(),
                asset: "CREDITS".to_owned(),
                ..Default::default()
            },
            &app.token(&[Role::Admin]),
        ))
        .await
        .expect("list accounts")
        .into_inner()
        .accounts
        .iter()
        .map(|account| account.balance)
        .sum()
}

#[tokio::test]
async fn a_promo_code_grants_credits_a_trial_and_a_rule_once_per_customer_within_its_budget() {
    let app = spawn_app().await;
    let mut shop = Shop::new(&app);
    let rule = shop
        .rule(percentage("Promo 10%", 1000))
        .await
        .expect("rule");
    let campaign = promo(
        &mut shop,
        pb::Campaign {
            code: "WELCOME50".to_owned(),
            discount_rule_ids: vec![rule.id.clone()],
            promo_credits: 50,
            trial_days: 14,
            budget: credits(120),
            usage_limit_per_customer: 1,
            ..pb::Campaign::default()
        },
    )
    .await;
    assert_eq!(campaign.status, pb::CampaignStatus::Active as i32);

    let (alice, bob, carol) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let alice_token = app.token_for(alice, app.default_workspace, &[Role::Customer]);
    let first = redeem_request("welcome50", None);
    let granted = redeem(&mut shop, &alice_token, first.clone())
        .await
        .expect("alice redeems");
    assert_eq!(
        (
            granted.credits_granted,
            granted.trial_days,
            granted.discount_rule_id.as_str()
        ),
        (50, 14, rule.id.as_str())
    );
    let offer = granted.offer.clone().expect("offer");
    assert_eq!(
        (offer.code.as_str(), offer.campaign_id.as_str()),
        ("WELCOME50", campaign.id.as_str())
    );
    assert!(
        !granted.transfer_id.is_empty(),
        "the credits moved through the ledger"
    );
    assert_eq!(balance(&app, alice).await, 50);

    let again = redeem(&mut shop, &alice_token, first)
        .await
        .expect("the same request again");
    assert_eq!(again.redemption_id, granted.redemption_id, "idempotent");
    assert_eq!(balance(&app, alice).await, 50, "granted once");

    let twice = redeem(&mut shop, &alice_token, redeem_request("WELCOME50", None))
        .await
        .expect_err("a second redemption by alice");
    assert_eq!(twice.code(), Code::FailedPrecondition);
    assert_eq!(reason(&twice), "CUSTOMER_USAGE_LIMIT_REACHED");
    assert_eq!(balance(&app, alice).await, 50);

    let for_someone_else = redeem(
        &mut shop,
        &alice_token,
        redeem_request("WELCOME50", Some(bob)),
    )
    .await
    .expect_err("a customer redeems for another");
    assert_eq!(for_someone_else.code(), Code::PermissionDenied);

    let storefront = shop.storefront.clone();
    redeem(
        &mut shop,
        &storefront,
        redeem_request("WELCOME50", Some(bob)),
    )
    .await
    .expect("bob through the storefront");
    assert_eq!(balance(&app, bob).await, 50);
    let over = redeem(
        &mut shop,
        &storefront,
        redeem_request("WELCOME50", Some(carol)),
    )
    .await
    .expect_err("100 + 50 credits would pass the budget of 120");
    assert_eq!(reason(&over), "CAMPAIGN_BUDGET_EXHAUSTED");
    assert_eq!(balance(&app, carol).await, 0, "nothing moved");

    let admin = shop.admin.clone();
    let after = shop
        .campaigns
        .get_campaign(authed(
            pb::GetCampaignRequest {
                id: campaign.id.clone(),
            },
            &admin,
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(after.redemption_count, 2);
    assert_eq!(after.discount_given, credits(100));
    let analytics = shop
        .campaigns
        .get_campaign_analytics(authed(
            pb::GetCampaignAnalyticsRequest {
                campaign_id: campaign.id.clone(),
                start_date: String::new(),
                end_date: String::new(),
            },
            &admin,
        ))
        .await
        .expect("analytics")
        .into_inner();
    let totals = analytics.totals.expect("totals");
    assert_eq!(totals.coupons_redeemed, 2);
    assert_eq!(totals.discount_given, [credits(100).expect("money")]);
}

#[tokio::test]
async fn concurrent_redemptions_of_a_promo_code_take_exactly_its_limit() {
    let app = spawn_app().await;
    let mut shop = Shop::new(&app);
    let campaign = promo(
        &mut shop,
        pb::Campaign {
            code: "LAUNCH-DAY".to_owned(),
            promo_credits: 7,
            usage_limit_total: 10,
            ..pb::Campaign::default()
        },
    )
    .await;
    let customers: Vec<Uuid> = (0..60).map(|_| Uuid::new_v4()).collect();
    let calls = customers.iter().map(|customer| {
        let mut shop = Shop::new(&app);
        let request = redeem_request("launch-day", Some(*customer));
        async move {
            let token = shop.storefront.clone();
            redeem(&mut shop, &token, request).await
        }
    });
    let results = futures::future::join_all(calls).await;
    let granted = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(granted, 10, "exactly the limit");
    for error in results.iter().filter_map(|result| result.as_ref().err()) {
        assert_eq!(reason(error), "COUPON_USAGE_LIMIT_REACHED", "{error:?}");
    }
    let mut total = 0;
    for customer in &customers {
        total += balance(&app, *customer).await;
    }
    assert_eq!(total, 70, "ten grants of 7 credits, no more");
    let admin = shop.admin.clone();
    let campaign = shop
        .campaigns
        .get_campaign(authed(
            pb::GetCampaignRequest {
                id: campaign.id.clone(),
            },
            &admin,
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        (campaign.redemption_count, campaign.discount_given),
        (10, credits(70)),
        "counted in CREDITS without a budget"
    );
}

#[tokio::test]
async fn promo_codes_refuse_unknown_inactive_foreign_and_malformed_input() {
    let app = spawn_app().await;
    let mut shop = Shop::new(&app);
    let storefront = shop.storefront.clone();
    let customer = Some(Uuid::new_v4());

    let unknown = redeem(&mut shop, &storefront, redeem_request("NOPE-123", customer))
        .await
        .expect_err("unknown");
    assert_eq!(
        (unknown.code(), reason(&unknown).as_str()),
        (Code::NotFound, "PROMO_CODE_NOT_FOUND")
    );

    // A standard campaign's code is not a promo code.
    let rule = shop.rule(percentage("Ten", 1000)).await.expect("rule");
    let second = shop.rule(percentage("Twenty", 2000)).await.expect("rule");
    let standard = shop
        .campaign(pb::Campaign {
            title: "Standard".to_owned(),
            code: "STANDARD-1".to_owned(),
            discount_rule_ids: vec![rule.id.clone()],
            ..pb::Campaign::default()
        })
        .await
        .expect("standard");
    shop.launch(&standard.id).await.expect("launch");
    let not_promo = redeem(
        &mut shop,
        &storefront,
        redeem_request("STANDARD-1", customer),
    )
    .await
    .expect_err("standard code");
    assert_eq!(reason(&not_promo), "PROMO_CODE_NOT_FOUND");

    // A draft promo code is not active yet; another workspace cannot see it at all.
    shop.campaign(pb::Campaign {
        title: "Draft".to_owned(),
        code: "LATER".to_owned(),
        kind: pb::CampaignKind::PromoCode as i32,
        trial_days: 30,
        ..pb::Campaign::default()
    })
    .await
    .expect("draft promo");
    let draft = redeem(&mut shop, &storefront, redeem_request("LATER", customer))
        .await
        .expect_err("draft");
    assert_eq!(
        (draft.code(), reason(&draft).as_str()),
        (Code::FailedPrecondition, "CAMPAIGN_NOT_ACTIVE")
    );
    let other = app.other_workspace("elsewhere").await;
    let foreign = app.token_for(Uuid::new_v4(), other, &[Role::Storefront]);
    let hidden = redeem(&mut shop, &foreign, redeem_request("LATER", customer))
        .await
        .expect_err("foreign");
    assert_eq!(reason(&hidden), "PROMO_CODE_NOT_FOUND");

    for (request, field) in [
        (redeem_request("!!", customer), "code"),
        (redeem_request("LATER", None), "customer_id"),
        (
            pb::RedeemPromoCodeRequest {
                customer_id: "not-a-uuid".to_owned(),
                ..redeem_request("LATER", None)
            },
            "customer_id",
        ),
    ] {
        let error = redeem(&mut shop, &storefront, request)
            .await
            .expect_err(field);
        assert_eq!(error.code(), Code::InvalidArgument, "{field}: {error:?}");
        assert!(error.message().contains(field) || format!("{error:?}").contains(field));
    }

    let bad_campaigns = [
        (
            "credits on a standard campaign",
            pb::Campaign {
                promo_credits: 5,
                ..pb::Campaign::default()
            },
        ),
        (
            "credits against a USD budget",
            pb::Campaign {
                kind: pb::CampaignKind::PromoCode as i32,
                promo_credits: 5,
                budget: crate::marketing_support::usd(100),
                ..pb::Campaign::default()
            },
        ),
        (
            "ten years and a day of trial",
            pb::Campaign {
                kind: pb::CampaignKind::PromoCode as i32,
                trial_days: 3651,
                ..pb::Campaign::default()
            },
        ),
        (
            "two rules",
            pb::Campaign {
                kind: pb::CampaignKind::PromoCode as i32,
                discount_rule_ids: vec![rule.id.clone(), second.id.clone()],
                ..pb::Campaign::default()
            },
        ),
        (
            "negative credits",
            pb::Campaign {
                kind: pb::CampaignKind::PromoCode as i32,
                promo_credits: -1,
                ..pb::Campaign::default()
            },
        ),
    ];
    for (case, campaign) in bad_campaigns {
        let error = shop
            .campaign(pb::Campaign {
                title: "Bad".to_owned(),
                code: "BAD-CODE".to_owned(),
                ..campaign
            })
            .await
            .expect_err(case);
        assert_eq!(error.code(), Code::InvalidArgument, "{case}: {error:?}");
    }
    // Nothing of the refused campaigns was stored: the code is still free.
    shop.campaign(pb::Campaign {
        title: "Good".to_owned(),
        code: "BAD-CODE".to_owned(),
        kind: pb::CampaignKind::PromoCode as i32,
        promo_credits: 5,
        budget: credits(50),
        ..pb::Campaign::default()
    })
    .await
    .expect("the code was never taken");
}
