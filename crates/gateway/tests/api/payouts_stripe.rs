//! The Stripe Connect adapter against a local HTTP receiver that plays Stripe's API (the request
//! format is pinned here), and provider events posted to `POST /webhooks/payouts` signed the way
//! Stripe signs them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use credits_ledger::SystemAccount;
use proto::payouts::v1 as pb;
use serde_json::json;

use crate::helpers::{TestApp, authed, spawn_app_with_clock, system_balance, verify_ledger};
use crate::payouts_support::{Market, Promoter, amount, this_month, viewers};

const SECRETS: &str = "whsec_test_secret, whsec_next_secret";

/// One request the receiver got: its path, headers and form fields.
#[derive(Clone, Debug)]
struct Captured {
    path: String,
    headers: BTreeMap<String, String>,
    form: BTreeMap<String, String>,
}

/// How the receiver answers `POST /v1/transfers`.
#[derive(Clone, Copy)]
enum Transfers {
    Accept,
    Refuse,
    Unavailable,
}

#[derive(Clone)]
struct Receiver {
    requests: Arc<Mutex<Vec<Captured>>>,
    transfers: Transfers,
}

async fn receive(
    State(receiver): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let captured = Captured {
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        form: url::form_urlencoded::parse(&body).into_owned().collect(),
    };
    let count = {
        let mut requests = receiver.requests.lock().expect("lock");
        requests.push(captured.clone());
        requests.len()
    };
    match (captured.path.as_str(), receiver.transfers) {
        ("/v1/transfers", Transfers::Refuse) => (
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "account_invalid", "message": "No such destination"}})
                .to_string(),
        ),
        ("/v1/transfers", Transfers::Unavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": {"message": "try later"}}).to_string(),
        ),
        ("/v1/transfers", Transfers::Accept) => (
            StatusCode::OK,
            json!({"id": format!("tr_{count}")}).to_string(),
        ),
        (_, _) => (
            StatusCode::OK,
            json!({"id": format!("po_{count}")}).to_string(),
        ),
    }
}

/// The gateway with the Stripe provider pointed at a fresh receiver.
async fn stripe_app(transfers: Transfers) -> (TestApp, Arc<Mutex<Vec<Captured>>>) {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let router = axum::Router::new().fallback(receive).with_state(Receiver {
        requests: requests.clone(),
        transfers,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let clock = Arc::new(kernel::ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(
        |config| {
            config.payouts.provider = "stripe".to_owned();
            config.payouts.stripe_api_base = format!("http://{address}");
            config.payouts.stripe_api_key = "sk_test_platform".to_owned();
            config.payouts.webhook_secret = SECRETS.to_owned();
        },
        clock,
    )
    .await;
    (app, requests)
}

/// Posts a provider event signed with `secret` at `timestamp`; answers the HTTP status.
async fn post_event(app: &TestApp, body: &str, secret: &str, timestamp: i64) -> u16 {
    let signature = payouts::signature::sign(secret, timestamp, body.as_bytes());
    reqwest::Client::new()
        .post(format!("http://{}/webhooks/payouts", app.http_address))
        .header("Stripe-Signature", format!("t={timestamp},v1={signature}"))
        .body(body.to_owned())
        .send()
        .await
        .expect("webhook delivery")
        .status()
        .as_u16()
}

fn now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A promoter with 3,000 cents earned from views and a connected Stripe account.
async fn earner(app: &TestApp, market: &mut Market) -> Promoter {
    let campaign = market.visibility(1000, 300).await;
    market.fund_fully(&campaign).await;
    let promoter = market.promoter(app);
    market.join(&campaign.id, &promoter).await;
    market
        .views(&campaign.id, promoter.id, viewers("s", 0, 300))
        .await
        .expect("views");
    let account = market.connect(&promoter).await;
    assert_eq!(account.provider, "stripe");
    assert!(!account.payouts_enabled, "Stripe has not said so yet");
    promoter
}

async fn payouts_of(market: &mut Market, promoter: &Promoter) -> Vec<pb::Payout> {
    market
        .payouts
        .list_payouts(authed(pb::ListPayoutsRequest::default(), &promoter.token))
        .await
        .expect("payouts")
        .into_inner()
        .payouts
}

#[tokio::test]
async fn stripe_payouts_carry_idempotency_keys_and_settle_once_by_signed_events() {
    let (app, requests) = stripe_app(Transfers::Accept).await;
    let mut market = Market::new(&app);
    let promoter = earner(&app, &mut market).await;
    let account_id = format!("acct_{}", promoter.id.simple());
    let enabled = json!({"id": "evt_account", "type": "account.updated", "created": now_seconds(),
        "data": {"object": {"id": account_id, "object": "account", "payouts_enabled": true}}})
    .to_string();
    assert_eq!(
        post_event(&app, &enabled, "whsec_test_secret", now_seconds()).await,
        200
    );

    let run = market.run(&this_month()).await.expect("run");
    assert_eq!((run.payouts, run.held), (1, 0));
    let payout = payouts_of(&mut market, &promoter).await.remove(0);
    assert_eq!(payout.status, pb::PayoutStatus::Processing as i32);
    let captured = requests.lock().expect("lock").clone();
    assert_eq!(captured.len(), 2);
    let (transfer, bank) = (&captured[0], &captured[1]);
    assert_eq!(transfer.path, "/v1/transfers");
    assert_eq!(transfer.headers["authorization"], "Bearer sk_test_platform");
    assert_eq!(
        transfer.headers["idempotency-key"],
        format!("{}-transfer", payout.id)
    );
    let expected: BTreeMap<String, String> = [
        ("amount", "3000".to_owned()),
        ("currency", "usd".to_owned()),
        ("destination", account_id.clone()),
        ("transfer_group", payout.id.clone()),
        ("metadata[payout_id]", payout.id.clone()),
        ("metadata[workspace_id]", app.default_workspace.to_string()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    assert_eq!(transfer.form, expected);
    assert_eq!(bank.path, "/v1/payouts");
    assert_eq!(bank.headers["stripe-account"], account_id);
    assert_eq!(
        bank.headers["idempotency-key"],
        format!("{}-payout", payout.id)
    );
    assert_eq!(bank.form["amount"], "3000");
    assert_eq!(payout.provider_reference, "po_2");
    let wallet = market.wallet(&promoter).await;
    assert_eq!(
        (amount(&wallet.available), amount(&wallet.in_flight)),
        (0, 3000)
    );

    let paid_at = now_seconds();
    let paid = json!({"id": "evt_paid", "type": "payout.paid", "created": paid_at,
        "data": {"object": {"id": "po_2", "object": "payout",
            "metadata": {"payout_id": payout.id, "workspace_id": app.default_workspace.to_string()}}}})
    .to_string();
    // Signed with the next secret of a rotation; delivered twice.
    assert_eq!(
        post_event(&app, &paid, "whsec_next_secret", now_seconds()).await,
        200
    );
    assert_eq!(
        post_event(&app, &paid, "whsec_next_secret", now_seconds()).await,
        200
    );
    let wallet = market.wallet(&promoter).await;
    assert_eq!((amount(&wallet.paid), amount(&wallet.in_flight)), (3000, 0));
    assert_eq!(
        system_balance(&app, SystemAccount::PayoutsInFlight, "USD").await,
        0
    );

    // An older failure arriving late is stale; bad and replayed signatures change nothing.
    let late = json!({"id": "evt_late", "type": "payout.failed", "created": paid_at - 60,
        "data": {"object": {"id": "po_2", "failure_message": "account closed"}}})
    .to_string();
    assert_eq!(
        post_event(&app, &late, "whsec_test_secret", now_seconds()).await,
        200
    );
    assert_eq!(
        post_event(&app, &late, "whsec_wrong", now_seconds()).await,
        400
    );
    assert_eq!(
        post_event(&app, &late, "whsec_test_secret", now_seconds() - 600).await,
        400
    );
    let unknown = json!({"id": "evt_other", "type": "charge.refunded", "created": paid_at,
        "data": {"object": {}}})
    .to_string();
    assert_eq!(
        post_event(&app, &unknown, "whsec_test_secret", now_seconds()).await,
        200
    );
    let settled = payouts_of(&mut market, &promoter).await.remove(0);
    assert_eq!(settled.status, pb::PayoutStatus::Paid as i32);
    assert_eq!(amount(&market.wallet(&promoter).await.paid), 3000);
    verify_ledger(&app).await;
}

#[tokio::test]
async fn a_refused_transfer_fails_the_payout_and_returns_the_money_to_the_wallet() {
    let (app, requests) = stripe_app(Transfers::Refuse).await;
    let mut market = Market::new(&app);
    let promoter = earner(&app, &mut market).await;
    let enabled = json!({"id": "evt_enable", "type": "account.updated", "created": now_seconds(),
        "data": {"object": {"id": format!("acct_{}", promoter.id.simple()), "payouts_enabled": true}}})
    .to_string();
    assert_eq!(
        post_event(&app, &enabled, "whsec_test_secret", now_seconds()).await,
        200
    );
    let run = market.run(&this_month()).await.expect("run");
    assert_eq!(run.payouts, 1);
    let payout = payouts_of(&mut market, &promoter).await.remove(0);
    assert_eq!(payout.status, pb::PayoutStatus::Failed as i32);
    assert!(
        payout.failure_reason.contains("No such destination"),
        "{}",
        payout.failure_reason
    );
    assert_eq!(
        requests.lock().expect("lock").len(),
        1,
        "no bank payout after a refused transfer"
    );
    let wallet = market.wallet(&promoter).await;
    assert_eq!(
        (amount(&wallet.available), amount(&wallet.in_flight)),
        (3000, 0)
    );
    verify_ledger(&app).await;
}

#[tokio::test]
async fn an_unreachable_provider_leaves_the_payout_approved_for_the_sweeper() {
    let (app, _requests) = stripe_app(Transfers::Unavailable).await;
    let mut market = Market::new(&app);
    let promoter = earner(&app, &mut market).await;
    let enabled = json!({"id": "evt_on", "type": "account.updated", "created": now_seconds(),
        "data": {"object": {"id": format!("acct_{}", promoter.id.simple()), "payouts_enabled": true}}})
    .to_string();
    assert_eq!(
        post_event(&app, &enabled, "whsec_test_secret", now_seconds()).await,
        200
    );
    market.run(&this_month()).await.expect("run");
    let payout = payouts_of(&mut market, &promoter).await.remove(0);
    assert_eq!(payout.status, pb::PayoutStatus::Approved as i32);
    assert!(
        payout.failure_reason.contains("try later"),
        "{}",
        payout.failure_reason
    );
    let wallet = market.wallet(&promoter).await;
    assert_eq!(
        (amount(&wallet.available), amount(&wallet.in_flight)),
        (0, 3000)
    );
    verify_ledger(&app).await;
}
