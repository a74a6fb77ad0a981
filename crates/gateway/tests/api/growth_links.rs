//! Channels and links over gRPC and over the HTTP listener: one click per visitor per hour, bots
//! never counted, conversions attributed to the last counted click and fed to the campaign's
//! analytics.

use std::sync::Arc;

use kernel::{ManualClock, Role};
use proto::growth::v1 as pb;
use proto::marketing::v1 as mkt;
use tonic::Code;
use uuid::Uuid;

use crate::growth_support::{Growth, http_get, usd};
use crate::helpers::{authed, reason, request_id, spawn_app_with_clock};
use crate::marketing_support::Shop;

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";
const OTHER_BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15";
const CRAWLER: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

async fn link_on_campaign(app: &crate::helpers::TestApp, growth: &mut Growth) -> pb::Link {
    let mut shop = Shop::new(app);
    let campaign = shop
        .campaign(mkt::Campaign {
            title: "Winter".to_owned(),
            ..mkt::Campaign::default()
        })
        .await
        .expect("campaign");
    let channel = growth
        .links
        .create_channel(authed(
            pb::CreateChannelRequest {
                request_id: request_id(),
                channel: Some(pb::Channel {
                    code: "social".to_owned(),
                    name: "Social".to_owned(),
                    channel_type: pb::ChannelType::Social as i32,
                    ..pb::Channel::default()
                }),
            },
            &growth.admin,
        ))
        .await
        .expect("channel")
        .into_inner();
    growth
        .links
        .create_link(authed(
            pb::CreateLinkRequest {
                request_id: request_id(),
                link: Some(pb::Link {
                    campaign_id: campaign.id,
                    channel_id: channel.id,
                    name: "Winter post".to_owned(),
                    destination_url: "https://shop.example/winter?ref=home".to_owned(),
                    utm: Some(pb::Utm {
                        source: "social".to_owned(),
                        medium: "post".to_owned(),
                        campaign: "winter sale & more".to_owned(),
                        ..pb::Utm::default()
                    }),
                    ..pb::Link::default()
                }),
            },
            &growth.admin,
        ))
        .await
        .expect("link")
        .into_inner()
}

async fn link_now(growth: &mut Growth, short_code: &str) -> pb::Link {
    growth
        .links
        .get_link(authed(
            pb::GetLinkRequest {
                id: String::new(),
                short_code: short_code.to_owned(),
            },
            &growth.storefront,
        ))
        .await
        .expect("link")
        .into_inner()
}

#[tokio::test]
async fn a_link_followed_twice_in_an_hour_by_one_browser_counts_once_and_a_bot_never() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(|_| {}, clock.clone()).await;
    let mut growth = Growth::new(&app);
    let link = link_on_campaign(&app, &mut growth).await;
    assert_eq!(link.short_code.len(), 8);
    assert_eq!(
        link.tracking_url,
        "https://shop.example/winter?ref=home&utm_source=social&utm_medium=post&utm_campaign=winter+sale+%26+more"
    );
    assert_eq!(
        link.short_url,
        format!("http://{}/l/{}", app.http_address, link.short_code)
    );

    // Over HTTP, as a browser follows it: a 302 to the tracking URL, counted once.
    let path = format!("/l/{}", link.short_code);
    let first = http_get(&app, &path, BROWSER).await;
    assert_eq!(first.status, 302);
    assert_eq!(first.location.as_deref(), Some(link.tracking_url.as_str()));
    let second = http_get(&app, &path, BROWSER).await;
    assert_eq!(second.status, 302);
    assert_eq!(link_now(&mut growth, &link.short_code).await.click_count, 1);
    // A crawler is redirected too, never counted.
    let crawler = http_get(&app, &path, CRAWLER).await;
    assert_eq!(crawler.status, 302);
    // Another browser on the same address is another visitor.
    http_get(&app, &path, OTHER_BROWSER).await;
    assert_eq!(link_now(&mut growth, &link.short_code).await.click_count, 2);
    assert_eq!(http_get(&app, "/l/nosuchcode", BROWSER).await.status, 404);

    // Over gRPC: the same rule, per visitor address and user agent.
    let counted = growth.click(&link.short_code, "203.0.113.7", BROWSER).await;
    assert!(counted.counted);
    assert_eq!(counted.redirect_url, link.tracking_url);
    let duplicate = growth.click(&link.short_code, "203.0.113.7", BROWSER).await;
    assert_eq!(
        (duplicate.counted, duplicate.reason.as_str()),
        (false, "CLICK_NOT_COUNTED_DUPLICATE")
    );
    let bot = growth.click(&link.short_code, "203.0.113.8", CRAWLER).await;
    assert_eq!(
        (bot.counted, bot.reason.as_str()),
        (false, "CLICK_NOT_COUNTED_BOT")
    );
    let no_agent = growth.click(&link.short_code, "203.0.113.9", "").await;
    assert_eq!(no_agent.reason, "CLICK_NOT_COUNTED_BOT");
    clock.advance(chrono::Duration::minutes(59));
    assert!(
        !growth
            .click(&link.short_code, "203.0.113.7", BROWSER)
            .await
            .counted
    );
    clock.advance(chrono::Duration::minutes(1));
    assert!(
        growth
            .click(&link.short_code, "203.0.113.7", BROWSER)
            .await
            .counted
    );
    assert_eq!(link_now(&mut growth, &link.short_code).await.click_count, 4);

    // The order of that visitor is attributed to its last counted click.
    let convert = |order: &str, ip: &str| pb::RecordLinkConversionRequest {
        request_id: request_id(),
        short_code: link.short_code.clone(),
        visitor_ip: ip.to_owned(),
        user_agent: BROWSER.to_owned(),
        order_id: order.to_owned(),
        amount: usd(4200),
    };
    let attributed = growth
        .links
        .record_link_conversion(authed(
            convert("order-1", "203.0.113.7"),
            &growth.storefront,
        ))
        .await
        .expect("conversion")
        .into_inner();
    assert!(attributed.attributed);
    assert_eq!(attributed.link.expect("link").conversion_count, 1);
    let stranger = growth
        .links
        .record_link_conversion(authed(
            convert("order-2", "198.51.100.1"),
            &growth.storefront,
        ))
        .await
        .expect("conversion")
        .into_inner();
    assert_eq!(
        (stranger.attributed, stranger.reason.as_str()),
        (false, "NO_CLICK_IN_WINDOW")
    );
    let again = growth
        .links
        .record_link_conversion(authed(
            convert("order-1", "203.0.113.7"),
            &growth.storefront,
        ))
        .await
        .expect("conversion")
        .into_inner();
    assert_eq!(again.reason, "ORDER_ALREADY_ATTRIBUTED");

    // The campaign's analytics count the link's clicks and conversions.
    let mut shop = Shop::new(&app);
    let campaign_id = link_now(&mut growth, &link.short_code).await.campaign_id;
    let analytics = shop
        .campaigns
        .get_campaign_analytics(authed(
            mkt::GetCampaignAnalyticsRequest {
                campaign_id,
                ..Default::default()
            },
            &shop.admin,
        ))
        .await
        .expect("analytics")
        .into_inner();
    let totals = analytics.totals.expect("totals");
    assert_eq!((totals.clicks, totals.conversions), (4, 1));
    assert_eq!(
        totals.revenue,
        [mkt::Money {
            currency: "USD".to_owned(),
            amount: 4200
        }]
    );
}

#[tokio::test]
async fn bad_links_are_refused_and_foreign_codes_look_unknown() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(|_| {}, clock).await;
    let mut growth = Growth::new(&app);
    let link = link_on_campaign(&app, &mut growth).await;
    let channel_id = link.channel_id.clone();
    let attempt = |destination: &str, term: &str| pb::CreateLinkRequest {
        request_id: request_id(),
        link: Some(pb::Link {
            campaign_id: link.campaign_id.clone(),
            channel_id: channel_id.clone(),
            name: "Bad".to_owned(),
            destination_url: destination.to_owned(),
            utm: Some(pb::Utm {
                term: term.to_owned(),
                ..pb::Utm::default()
            }),
            ..pb::Link::default()
        }),
    };
    for (destination, term) in [
        ("javascript:alert(1)", ""),
        ("ftp://files.example/", ""),
        ("https://shop.example/", "line\nbreak"),
    ] {
        let refused = growth
            .links
            .create_link(authed(attempt(destination, term), &growth.admin))
            .await
            .expect_err("bad link");
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{destination} {term:?}"
        );
    }
    let mut unknown_campaign = attempt("https://shop.example/", "");
    if let Some(link) = unknown_campaign.link.as_mut() {
        link.campaign_id = Uuid::new_v4().to_string();
    }
    let refused = growth
        .links
        .create_link(authed(unknown_campaign, &growth.admin))
        .await
        .expect_err("unknown campaign");
    assert_eq!(reason(&refused), "CAMPAIGN_NOT_FOUND");

    let other = app.other_workspace("elsewhere").await;
    let foreign = growth
        .links
        .record_click(authed(
            pb::RecordClickRequest {
                short_code: link.short_code.clone(),
                ip: "203.0.113.7".to_owned(),
                user_agent: BROWSER.to_owned(),
                ..Default::default()
            },
            &app.token_for(Uuid::new_v4(), other, &[Role::Storefront]),
        ))
        .await
        .expect_err("another workspace's link");
    assert_eq!(reason(&foreign), "LINK_NOT_FOUND");
    // A customer may not record clicks.
    let denied = growth
        .links
        .record_click(authed(
            pb::RecordClickRequest {
                short_code: link.short_code.clone(),
                ..Default::default()
            },
            &app.token(&[Role::Customer]),
        ))
        .await
        .expect_err("customer");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(link_now(&mut growth, &link.short_code).await.click_count, 0);
}

#[tokio::test]
async fn concurrent_clicks_count_each_visitor_once() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(|_| {}, clock).await;
    let mut growth = Growth::new(&app);
    let link = link_on_campaign(&app, &mut growth).await;
    // 40 clicks of one visitor and one click each of 40 others, all at once.
    let calls = (0..80).map(|n| {
        let mut growth = Growth::new(&app);
        let code = link.short_code.clone();
        async move {
            let ip = if n % 2 == 0 {
                "203.0.113.1".to_owned()
            } else {
                format!("198.51.100.{n}")
            };
            growth.click(&code, &ip, BROWSER).await.counted
        }
    });
    let counted = futures::future::join_all(calls)
        .await
        .into_iter()
        .filter(|counted| *counted)
        .count();
    assert_eq!(counted, 41);
    assert_eq!(
        link_now(&mut growth, &link.short_code).await.click_count,
        41
    );
}

#[tokio::test]
async fn a_workspace_without_growth_has_no_short_links() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(|_| {}, clock).await;
    let mut growth = Growth::new(&app);
    let link = link_on_campaign(&app, &mut growth).await;
    let path = format!("/l/{}", link.short_code);
    assert_eq!(http_get(&app, &path, BROWSER).await.status, 302);
    proto::admin::v1::workspace_service_client::WorkspaceServiceClient::new(app.channel.clone())
        .set_modules(authed(
            proto::admin::v1::SetModulesRequest {
                request_id: request_id(),
                workspace_id: app.default_workspace.to_string(),
                modules: vec!["marketing".to_owned()],
            },
            &app.token(&[Role::PlatformAdmin]),
        ))
        .await
        .expect("growth off");
    assert_eq!(http_get(&app, &path, OTHER_BROWSER).await.status, 404);
    let refused = growth
        .links
        .record_click(authed(
            pb::RecordClickRequest {
                short_code: link.short_code.clone(),
                ip: "203.0.113.7".to_owned(),
                user_agent: OTHER_BROWSER.to_owned(),
                ..Default::default()
            },
            &growth.storefront,
        ))
        .await
        .expect_err("module off");
    assert_eq!(reason(&refused), "MODULE_DISABLED");
}

#[tokio::test]
async fn one_address_is_held_to_the_http_rate_limit() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(
        |config| {
            config.limits.http_rate_limit_per_second = 1;
            config.limits.http_rate_limit_burst = 2;
        },
        clock,
    )
    .await;
    let mut growth = Growth::new(&app);
    let link = link_on_campaign(&app, &mut growth).await;
    let path = format!("/l/{}", link.short_code);
    let mut statuses = Vec::new();
    for n in 0..5 {
        let agent = format!("{BROWSER} tab/{n}");
        statuses.push(http_get(&app, &path, &agent).await.status);
    }
    assert_eq!(statuses[0], 302);
    assert!(statuses.contains(&429), "{statuses:?}");
    // A refused request counted nothing: only the redirected ones did.
    let redirected = statuses.iter().filter(|status| **status == 302).count() as i64;
    assert_eq!(
        link_now(&mut growth, &link.short_code).await.click_count,
        redirected
    );
}
