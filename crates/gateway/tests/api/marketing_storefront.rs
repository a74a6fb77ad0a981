//! What the storefront sees and reports: display blocks of active public campaigns, and customer
//! events that issue their campaigns' coupons.

use proto::marketing::v1 as pb;
use proto::marketing::v1::display_service_client::DisplayServiceClient;
use proto::marketing::v1::participation_service_client::ParticipationServiceClient;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{authed, request_id, spawn_app};
use crate::marketing_support::*;

#[tokio::test]
async fn displays_show_only_active_public_campaigns_in_their_window_by_position() {
    let app = spawn_app().await;
    let mut shop = Shop::new(&app);
    let rule = shop.rule(percentage("Shown", 500)).await.expect("rule");
    let live = shop.live_campaign("Live", &[&rule.id], false).await;
    let draft = shop
        .campaign(pb::Campaign {
            title: "Draft".to_owned(),
            discount_rule_ids: vec![rule.id.clone()],
            is_public: true,
            ..pb::Campaign::default()
        })
        .await
        .expect("draft");
    let mut displays = DisplayServiceClient::new(app.channel.clone());
    let now = chrono::Utc::now().timestamp();
    for (campaign, title, position, ends) in [
        (&live.id, "second", 2, None),
        (&live.id, "first", 1, None),
        (&draft.id, "hidden draft", 0, None),
        (&live.id, "ended", 0, Some(now - 10)),
    ] {
        let request = pb::CreateDisplayRequest {
            request_id: request_id(),
            display: Some(pb::Display {
                campaign_id: campaign.clone(),
                display_type: pb::DisplayType::Slide as i32,
                title: title.to_owned(),
                image_url: "https://shop.example/slide.png".to_owned(),
                position,
                start_time: ends.map(|end| prost_types::Timestamp {
                    seconds: end - 3600,
                    nanos: 0,
                }),
                end_time: ends.map(|end| prost_types::Timestamp {
                    seconds: end,
                    nanos: 0,
                }),
                ..pb::Display::default()
            }),
        };
        displays
            .create_display(authed(request, &shop.admin))
            .await
            .expect("display");
    }
    let shown = displays
        .list_displays(authed(pb::ListDisplaysRequest::default(), &shop.storefront))
        .await
        .expect("list")
        .into_inner();
    let titles: Vec<&str> = shown
        .displays
        .iter()
        .map(|display| display.title.as_str())
        .collect();
    assert_eq!(titles, ["first", "second"]);
}

#[tokio::test]
async fn a_customer_event_issues_its_campaigns_coupon_once() {
    let app = spawn_app().await;
    let mut shop = Shop::new(&app);
    let rule = shop.rule(fixed("Welcome", 300)).await.expect("rule");
    let welcome = shop
        .campaign(pb::Campaign {
            title: "Welcome".to_owned(),
            trigger_type: pb::TriggerType::OnRegistration as i32,
            discount_rule_ids: vec![rule.id.clone()],
            ..pb::Campaign::default()
        })
        .await
        .expect("campaign");
    shop.launch(&welcome.id).await.expect("launch");
    let mut participation = ParticipationServiceClient::new(app.channel.clone());
    let customer = Uuid::new_v4().to_string();
    let report = |event: pb::CustomerEvent| pb::ReportCustomerEventRequest {
        request_id: request_id(),
        customer_id: customer.clone(),
        event: event as i32,
    };
    let first = participation
        .report_customer_event(authed(
            report(pb::CustomerEvent::Registered),
            &shop.storefront,
        ))
        .await
        .expect("report")
        .into_inner();
    assert_eq!(first.participations.len(), 1);
    let code = first.participations[0].coupon_code.clone();
    assert!(!code.is_empty());
    // Reported again (another request): the same participation and coupon, nothing new.
    let again = participation
        .report_customer_event(authed(
            report(pb::CustomerEvent::Registered),
            &shop.storefront,
        ))
        .await
        .expect("report again")
        .into_inner();
    assert_eq!(again.participations, first.participations);
    // Another event triggers other campaigns only.
    let other = participation
        .report_customer_event(authed(
            report(pb::CustomerEvent::FirstOrder),
            &shop.storefront,
        ))
        .await
        .expect("first order")
        .into_inner();
    assert_eq!(other.participations, Vec::new());
    let context = app.marketing.context();
    kernel::events::sequence(context, 1000)
        .await
        .expect("sequence");
    let issued: Vec<_> = kernel::events::read_after(context.db.connection(), 0, 1000)
        .await
        .expect("events")
        .into_iter()
        .filter(|event| event.event_type == "marketing.coupon.issued")
        .collect();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].payload["code"], code.as_str());
    assert_eq!(issued[0].payload["customer_id"], customer.as_str());
    // The coupon is the customer's, priced from the snapshot at once.
    let priced = shop
        .evaluate(cart(&customer, vec![line("a", "tea", 1, 1000)]), &[&code])
        .await;
    assert_eq!(priced.total_discount, 300);
    let bad = participation
        .report_customer_event(authed(
            report(pb::CustomerEvent::Unspecified),
            &shop.storefront,
        ))
        .await
        .expect_err("no event");
    assert_eq!(bad.code(), Code::InvalidArgument);
}
