//! UpdateCampaign: masked changes that pricing sees at once, and refusals that change nothing.

use kernel::Role;
use proto::marketing::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{authed, reason, request_id, spawn_app};
use crate::marketing_support::{Shop, cart, line, percentage, usd};

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|path| (*path).to_owned()).collect(),
    })
}

async fn update(
    shop: &mut Shop,
    campaign: pb::Campaign,
    paths: &[&str],
) -> Result<pb::Campaign, tonic::Status> {
    let request = pb::UpdateCampaignRequest {
        request_id: request_id(),
        campaign: Some(campaign),
        update_mask: mask(paths),
    };
    let admin = shop.admin.clone();
    shop.campaigns
        .update_campaign(authed(request, &admin))
        .await
        .map(tonic::Response::into_inner)
}

async fn get(shop: &mut Shop, id: &str) -> pb::Campaign {
    let admin = shop.admin.clone();
    shop.campaigns
        .get_campaign(authed(pb::GetCampaignRequest { id: id.to_owned() }, &admin))
        .await
        .expect("get")
        .into_inner()
}

#[tokio::test]
async fn an_updated_campaign_prices_with_its_new_rules_and_keeps_what_it_has_used() {
    let app = spawn_app().await;
    let mut shop = Shop::new(&app);
    let ten = shop.rule(percentage("Ten", 1000)).await.expect("rule");
    let twenty = shop.rule(percentage("Twenty", 2000)).await.expect("rule");
    let created = shop
        .campaign(pb::Campaign {
            title: "Autumn".to_owned(),
            discount_rule_ids: vec![ten.id.clone()],
            trigger_type: pb::TriggerType::Automatic as i32,
            auto_apply: true,
            budget: usd(1000),
            ..pb::Campaign::default()
        })
        .await
        .expect("campaign");
    let campaign = shop.launch(&created.id).await.expect("launch");
    let basket = || cart("", vec![line("a", "tea", 1, 1500)]);
    assert_eq!(shop.evaluate(basket(), &[]).await.total_discount, 150);

    let updated = update(
        &mut shop,
        pb::Campaign {
            id: campaign.id.clone(),
            title: "Autumn, deeper".to_owned(),
            discount_rule_ids: vec![twenty.id.clone()],
            ..pb::Campaign::default()
        },
        &["title", "discountRuleIds"],
    )
    .await
    .expect("update");
    assert_eq!(updated.title, "Autumn, deeper");
    assert_eq!(updated.budget, usd(1000), "fields outside the mask stay");
    assert_eq!(
        shop.evaluate(basket(), &[]).await.total_discount,
        300,
        "pricing sees the new rule as soon as the update answers"
    );

    let held = shop.reserve("order-1", basket(), &[]).await;
    assert_eq!(held.total_discount, 300);
    let below = update(
        &mut shop,
        pb::Campaign {
            id: campaign.id.clone(),
            budget: usd(200),
            ..pb::Campaign::default()
        },
        &["budget"],
    )
    .await
    .expect_err("a budget below the 300 held");
    assert_eq!(
        (below.code(), reason(&below).as_str()),
        (Code::FailedPrecondition, "BUDGET_BELOW_USED")
    );
    let raised = update(
        &mut shop,
        pb::Campaign {
            id: campaign.id.clone(),
            budget: usd(5000),
            usage_limit_per_customer: 2,
            ..pb::Campaign::default()
        },
        &["budget", "usage_limit_per_customer"],
    )
    .await
    .expect("raise the budget");
    assert_eq!(raised.budget, usd(5000));
    assert_eq!(
        raised.budget_reserved,
        usd(300),
        "the reservation still holds"
    );

    let refusals: [(&str, pb::Campaign, &[&str], Code, &str); 5] = [
        (
            "the kind is fixed",
            pb::Campaign {
                kind: pb::CampaignKind::PromoCode as i32,
                ..pb::Campaign::default()
            },
            &["kind"],
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        ),
        (
            "a started campaign keeps its start",
            pb::Campaign {
                start_time: Some(prost_types::Timestamp {
                    seconds: 4_000_000_000,
                    nanos: 0,
                }),
                ..pb::Campaign::default()
            },
            &["start_time"],
            Code::FailedPrecondition,
            "CAMPAIGN_STARTED",
        ),
        (
            "a launched unlimited campaign cannot gain a total limit",
            pb::Campaign {
                usage_limit_total: 5,
                ..pb::Campaign::default()
            },
            &["usage_limit_total"],
            Code::FailedPrecondition,
            "LIMIT_ADDED_AFTER_LAUNCH",
        ),
        (
            "a launched campaign keeps a rule",
            pb::Campaign::default(),
            &["discount_rule_ids"],
            Code::FailedPrecondition,
            "CAMPAIGN_HAS_NO_RULES",
        ),
        (
            "an empty title",
            pb::Campaign::default(),
            &["title"],
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        ),
    ];
    for (case, change, paths, code, expected) in refusals {
        let error = update(
            &mut shop,
            pb::Campaign {
                id: campaign.id.clone(),
                ..change
            },
            paths,
        )
        .await
        .expect_err(case);
        assert_eq!(
            (error.code(), reason(&error).as_str()),
            (code, expected),
            "{case}"
        );
    }
    let unchanged = get(&mut shop, &campaign.id).await;
    assert_eq!(
        (unchanged.title.as_str(), unchanged.usage_limit_total),
        ("Autumn, deeper", 0),
        "the refusals changed nothing"
    );
    assert_eq!(
        unchanged.discount_rule_ids,
        std::slice::from_ref(&twenty.id)
    );

    let other = app.other_workspace("elsewhere").await;
    let mut foreign = Shop::with_tokens(
        &app,
        app.token_for(Uuid::new_v4(), other, &[Role::Admin]),
        app.token_for(Uuid::new_v4(), other, &[Role::Storefront]),
    );
    for id in [campaign.id.clone(), Uuid::new_v4().to_string()] {
        let error = update(
            &mut foreign,
            pb::Campaign {
                id,
                title: "Mine now".to_owned(),
                ..pb::Campaign::default()
            },
            &["title"],
        )
        .await
        .expect_err("foreign or unknown");
        assert_eq!(
            (error.code(), reason(&error).as_str()),
            (Code::NotFound, "CAMPAIGN_NOT_FOUND")
        );
    }
}

#[tokio::test]
async fn a_draft_changes_freely_and_a_completed_campaign_not_at_all() {
    let app = spawn_app().await;
    let mut shop = Shop::new(&app);
    let rule = shop.rule(percentage("Ten", 1000)).await.expect("rule");
    let draft = shop
        .campaign(pb::Campaign {
            title: "Draft".to_owned(),
            discount_rule_ids: vec![rule.id.clone()],
            ..pb::Campaign::default()
        })
        .await
        .expect("draft");
    let later = prost_types::Timestamp {
        seconds: 4_000_000_000,
        nanos: 0,
    };
    let changed = update(
        &mut shop,
        pb::Campaign {
            id: draft.id.clone(),
            code: "spring-sale".to_owned(),
            budget: usd(700),
            usage_limit_total: 3,
            start_time: Some(later),
            ..pb::Campaign::default()
        },
        &["code", "budget", "usage_limit_total", "start_time"],
    )
    .await
    .expect("a draft gains a code, budget, limit and start");
    assert_eq!(
        (changed.code.as_str(), changed.usage_limit_total),
        ("SPRING-SALE", 3)
    );
    let backwards = update(
        &mut shop,
        pb::Campaign {
            id: draft.id.clone(),
            end_time: Some(prost_types::Timestamp {
                seconds: 3_999_999_999,
                nanos: 0,
            }),
            ..pb::Campaign::default()
        },
        &["end_time"],
    )
    .await
    .expect_err("an end before the start");
    assert_eq!(backwards.code(), Code::InvalidArgument);
    let launched = shop.launch(&draft.id).await.expect("launch");
    assert_eq!(launched.status, pb::CampaignStatus::Scheduled as i32);
    // Not started yet, so no reservation holds anything of it: a scheduled campaign may still
    // gain a budget.
    let budgeted = update(
        &mut shop,
        pb::Campaign {
            id: draft.id.clone(),
            budget: None,
            ..pb::Campaign::default()
        },
        &["budget"],
    )
    .await
    .and(
        update(
            &mut shop,
            pb::Campaign {
                id: draft.id.clone(),
                budget: usd(900),
                ..pb::Campaign::default()
            },
            &["budget"],
        )
        .await,
    )
    .expect("a scheduled campaign drops and regains a budget");
    assert_eq!(budgeted.budget, usd(900));

    let admin = shop.admin.clone();
    shop.campaigns
        .complete_campaign(authed(
            pb::CampaignActionRequest {
                request_id: request_id(),
                id: draft.id.clone(),
            },
            &admin,
        ))
        .await
        .expect("complete");
    let error = update(
        &mut shop,
        pb::Campaign {
            id: draft.id.clone(),
            title: "Again".to_owned(),
            ..pb::Campaign::default()
        },
        &["title"],
    )
    .await
    .expect_err("completed");
    assert_eq!(reason(&error), "CAMPAIGN_COMPLETED");
    assert_eq!(get(&mut shop, &draft.id).await.title, "Draft");
}
