use kernel::Role;
use proto::admin::v1::workspace_service_client::WorkspaceServiceClient;
use proto::ledger::v1 as pb;
use proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::{TestApp, authed, reason, request_id, spawn_app};

fn client(app: &TestApp) -> LedgerServiceClient<tonic::transport::Channel> {
    LedgerServiceClient::new(app.channel.clone())
}

fn account(id: Uuid, flags: Option<pb::AccountFlags>) -> pb::Account {
    pb::Account {
        id: id.to_string(),
        asset: "CREDITS".to_owned(),
        code: "TEST".to_owned(),
        flags,
        ..Default::default()
    }
}

fn no_overdraft() -> Option<pb::AccountFlags> {
    Some(pb::AccountFlags {
        debits_must_not_exceed_credits: true,
        ..Default::default()
    })
}

fn transfer(debit: Uuid, credit: Uuid, amount: i64) -> pb::Transfer {
    pb::Transfer {
        id: Uuid::new_v4().to_string(),
        debit_account_id: debit.to_string(),
        credit_account_id: credit.to_string(),
        amount,
        code: "TEST".to_owned(),
        reference: "order-1".to_owned(),
        ..Default::default()
    }
}

fn results(response: pb::CreateTransfersResponse) -> Vec<pb::TransferResult> {
    response
        .results
        .into_iter()
        .map(|result| result.result())
        .collect()
}

async fn purchase(
    app: &TestApp,
    owner: Uuid,
    amount: i64,
    payment_reference: &str,
) -> Result<pb::Transfer, tonic::Status> {
    let request = pb::PurchaseCreditsRequest {
        request_id: request_id(),
        owner_id: owner.to_string(),
        amount,
        payment_reference: payment_reference.to_owned(),
    };
    client(app)
        .purchase_credits(authed(request, &app.token(&[Role::Billing])))
        .await
        .map(|r| r.into_inner())
}

async fn wallet(app: &TestApp, owner: Uuid) -> pb::Account {
    let token = app.token_for(owner, app.default_workspace, &[Role::Factory]);
    let mut accounts = client(app)
        .list_accounts(authed(
            pb::ListAccountsRequest {
                asset: "CREDITS".to_owned(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("list")
        .into_inner()
        .accounts;
    assert_eq!(accounts.len(), 1, "one CREDITS wallet per owner");
    accounts.remove(0)
}

#[tokio::test]
async fn purchased_credits_land_once_in_the_owners_wallet() {
    let app = spawn_app().await;
    let factory = Uuid::new_v4();
    let first = purchase(&app, factory, 100, "pay_1")
        .await
        .expect("purchase");
    assert_eq!(
        (first.amount, first.code.as_str(), first.reference.as_str()),
        (100, "CREDIT_PURCHASE", "pay_1")
    );
    let again = purchase(&app, factory, 100, "pay_1")
        .await
        .expect("same payment, new request id");
    assert_eq!(again.id, first.id);
    let wallet_account = wallet(&app, factory).await;
    assert_eq!(
        (wallet_account.balance, wallet_account.owner_id.clone()),
        (100, factory.to_string())
    );
    assert!(
        wallet_account
            .flags
            .expect("flags")
            .debits_must_not_exceed_credits
    );

    let status = purchase(&app, factory, 999, "pay_1")
        .await
        .expect_err("reused reference");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "PAYMENT_REFERENCE_ALREADY_USED");
    purchase(&app, factory, 50, "pay_2")
        .await
        .expect("second payment");
    assert_eq!(wallet(&app, factory).await.balance, 150);

    let request = pb::PurchaseCreditsRequest {
        request_id: request_id(),
        owner_id: factory.to_string(),
        amount: 5,
        payment_reference: "pay_3".to_owned(),
    };
    let token = app.token(&[Role::Billing]);
    let first = client(&app)
        .purchase_credits(authed(request.clone(), &token))
        .await
        .expect("first")
        .into_inner();
    let replay = client(&app)
        .purchase_credits(authed(request.clone(), &token))
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(first, replay);
    let changed = pb::PurchaseCreditsRequest {
        amount: 6,
        ..request
    };
    let status = client(&app)
        .purchase_credits(authed(changed, &token))
        .await
        .expect_err("reused request id");
    assert_eq!(reason(&status), "REQUEST_ID_REUSED");
    assert_eq!(wallet(&app, factory).await.balance, 155);
}

#[tokio::test]
async fn purchases_refuse_bad_input_and_callers_without_the_role() {
    let app = spawn_app().await;
    let factory = Uuid::new_v4();
    for (amount, reference, field) in [
        (0, "p", "amount"),
        (-5, "p", "amount"),
        (5, "", "payment_reference"),
    ] {
        let status = purchase(&app, factory, amount, reference)
            .await
            .expect_err(field);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status
                .get_details_bad_request()
                .expect("violations")
                .field_violations[0]
                .field,
            field
        );
    }
    let request = pb::PurchaseCreditsRequest {
        request_id: request_id(),
        owner_id: factory.to_string(),
        amount: 5,
        payment_reference: "p".to_owned(),
    };
    let status = client(&app)
        .purchase_credits(authed(
            request,
            &app.token_for(factory, app.default_workspace, &[Role::Factory]),
        ))
        .await
        .expect_err("a factory cannot mint credits");
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn an_owner_sees_only_its_own_accounts() {
    let app = spawn_app().await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    purchase(&app, alice, 10, "a").await.expect("alice");
    purchase(&app, bob, 10, "b").await.expect("bob");
    let alice_wallet = wallet(&app, alice).await;
    let bob_token = app.token_for(bob, app.default_workspace, &[Role::Factory]);
    let status = client(&app)
        .get_account(authed(
            pb::GetAccountRequest {
                id: alice_wallet.id.clone(),
            },
            &bob_token,
        ))
        .await
        .expect_err("not bob's");
    assert_eq!(status.code(), Code::NotFound);
    let listed = client(&app)
        .list_accounts(authed(
            pb::ListAccountsRequest {
                owner_id: alice.to_string(),
                ..Default::default()
            },
            &bob_token,
        ))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.accounts.is_empty());
    let status = client(&app)
        .list_transfers(authed(
            pb::ListTransfersRequest {
                account_id: alice_wallet.id.clone(),
                ..Default::default()
            },
            &bob_token,
        ))
        .await
        .expect_err("not bob's");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn transfers_over_grpc_two_phase_history_and_pagination() {
    let clock = std::sync::Arc::new(kernel::ManualClock::new(chrono::Utc::now()));
    let app = crate::helpers::spawn_app_with_clock(|_| {}, clock.clone()).await;
    let token = app.token(&[Role::Admin]);
    let (source, wallet_id, escrow) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let created = client(&app)
        .create_accounts(authed(
            pb::CreateAccountsRequest {
                accounts: vec![
                    account(source, None),
                    account(wallet_id, no_overdraft()),
                    account(escrow, no_overdraft()),
                ],
            },
            &token,
        ))
        .await
        .expect("accounts")
        .into_inner();
    assert!(
        created
            .results
            .iter()
            .all(|r| r.result() == pb::CreateAccountResult::Created)
    );

    let funding = transfer(source, wallet_id, 100);
    let response = client(&app)
        .create_transfers(authed(
            pb::CreateTransfersRequest {
                transfers: vec![funding.clone(), funding.clone()],
            },
            &token,
        ))
        .await
        .expect("transfers")
        .into_inner();
    assert_eq!(
        results(response),
        [pb::TransferResult::Created, pb::TransferResult::Exists]
    );
    let after_funding = kernel::Clock::now(clock.as_ref());
    clock.advance(chrono::Duration::seconds(1));

    let pending = pb::Transfer {
        flags: Some(pb::TransferFlags {
            pending: true,
            ..Default::default()
        }),
        timeout_seconds: 3600,
        ..transfer(wallet_id, escrow, 60)
    };
    let overdraft = transfer(wallet_id, escrow, 50);
    let post = pb::Transfer {
        id: Uuid::new_v4().to_string(),
        debit_account_id: String::new(),
        credit_account_id: String::new(),
        amount: 0,
        pending_id: pending.id.clone(),
        flags: Some(pb::TransferFlags {
            post_pending_transfer: true,
            ..Default::default()
        }),
        code: "TEST".to_owned(),
        ..Default::default()
    };
    let response = client(&app)
        .create_transfers(authed(
            pb::CreateTransfersRequest {
                transfers: vec![pending, overdraft, post],
            },
            &token,
        ))
        .await
        .expect("two phase")
        .into_inner();
    assert_eq!(
        results(response),
        [
            pb::TransferResult::Created,
            pb::TransferResult::ExceedsCredits,
            pb::TransferResult::Created
        ]
    );

    let balance = |as_of: Option<chrono::DateTime<chrono::Utc>>| {
        let token = token.clone();
        let mut client = client(&app);
        async move {
            client
                .get_account_balance(authed(
                    pb::GetAccountBalanceRequest {
                        account_id: wallet_id.to_string(),
                        as_of_time: as_of.map(|t| prost_types::Timestamp {
                            seconds: t.timestamp(),
                            nanos: t.timestamp_subsec_nanos() as i32,
                        }),
                    },
                    &token,
                ))
                .await
                .expect("balance")
                .into_inner()
        }
    };
    let now = balance(None).await;
    assert_eq!(
        (now.balance, now.debits_posted, now.debits_pending),
        (40, 60, 0)
    );
    let then = balance(Some(after_funding)).await;
    assert_eq!((then.balance, then.debits_posted), (100, 0));

    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client(&app)
            .list_transfers(authed(
                pb::ListTransfersRequest {
                    account_id: wallet_id.to_string(),
                    page_size: 1,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.transfers.into_iter().map(|t| t.amount));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(
        seen,
        [100, 60, 60],
        "funding, the pending reservation, its post"
    );
    let status = client(&app)
        .list_transfers(authed(
            pb::ListTransfersRequest {
                account_id: escrow.to_string(),
                page_token: "bm9wZQ".to_owned(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect_err("foreign token");
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn malformed_or_oversized_batches_are_refused_whole() {
    let app = spawn_app().await;
    let token = app.token(&[Role::Admin]);
    let (source, target) = (Uuid::new_v4(), Uuid::new_v4());
    client(&app)
        .create_accounts(authed(
            pb::CreateAccountsRequest {
                accounts: vec![account(source, None), account(target, None)],
            },
            &token,
        ))
        .await
        .expect("accounts");
    let good = transfer(source, target, 5);
    let bad = pb::Transfer {
        debit_account_id: "nope".to_owned(),
        ..transfer(source, target, 5)
    };
    let status = client(&app)
        .create_transfers(authed(
            pb::CreateTransfersRequest {
                transfers: vec![good.clone(), bad],
            },
            &token,
        ))
        .await
        .expect_err("malformed");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status
            .get_details_bad_request()
            .expect("violations")
            .field_violations[0]
            .field,
        "transfers[1].debit_account_id"
    );
    let too_many: Vec<pb::Transfer> = (0..8001).map(|_| transfer(source, target, 1)).collect();
    let status = client(&app)
        .create_transfers(authed(
            pb::CreateTransfersRequest {
                transfers: too_many,
            },
            &token,
        ))
        .await
        .expect_err("too many");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client(&app)
        .create_transfers(authed(
            pb::CreateTransfersRequest { transfers: vec![] },
            &token,
        ))
        .await
        .expect_err("empty");
    assert_eq!(status.code(), Code::InvalidArgument);
    let balance = client(&app)
        .get_account_balance(authed(
            pb::GetAccountBalanceRequest {
                account_id: target.to_string(),
                as_of_time: None,
            },
            &token,
        ))
        .await
        .expect("balance")
        .into_inner();
    assert_eq!(balance.credits_posted, 0, "nothing changed");
    let preset = pb::Account {
        balance: 1_000_000,
        ..account(Uuid::new_v4(), None)
    };
    let status = client(&app)
        .create_accounts(authed(
            pb::CreateAccountsRequest {
                accounts: vec![preset],
            },
            &token,
        ))
        .await
        .expect_err("balances are not client-settable");
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn another_workspaces_accounts_cannot_be_moved() {
    let app = spawn_app().await;
    let platform = app.token(&[Role::PlatformAdmin]);
    let other = WorkspaceServiceClient::new(app.channel.clone())
        .create_workspace(authed(
            proto::admin::v1::CreateWorkspaceRequest {
                request_id: request_id(),
                name: "other".to_owned(),
                ..Default::default()
            },
            &platform,
        ))
        .await
        .expect("workspace")
        .into_inner();
    let other_id: Uuid = other.id.parse().expect("uuid");
    let other_token = app.token_for(Uuid::new_v4(), other_id, &[Role::Admin]);
    let (theirs, mine) = (Uuid::new_v4(), Uuid::new_v4());
    client(&app)
        .create_accounts(authed(
            pb::CreateAccountsRequest {
                accounts: vec![account(theirs, None)],
            },
            &other_token,
        ))
        .await
        .expect("their account");
    let token = app.token(&[Role::Admin]);
    client(&app)
        .create_accounts(authed(
            pb::CreateAccountsRequest {
                accounts: vec![account(mine, None)],
            },
            &token,
        ))
        .await
        .expect("mine");
    let response = client(&app)
        .create_transfers(authed(
            pb::CreateTransfersRequest {
                transfers: vec![transfer(theirs, mine, 5)],
            },
            &token,
        ))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(
        results(response),
        [pb::TransferResult::DebitAccountNotFound]
    );
    let status = client(&app)
        .get_account(authed(
            pb::GetAccountRequest {
                id: theirs.to_string(),
            },
            &token,
        ))
        .await
        .expect_err("hidden");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn a_disabled_ledger_module_answers_module_disabled() {
    let app = spawn_app().await;
    WorkspaceServiceClient::new(app.channel.clone())
        .set_modules(authed(
            proto::admin::v1::SetModulesRequest {
                request_id: request_id(),
                workspace_id: app.default_workspace.to_string(),
                modules: vec!["marketing".to_owned()],
            },
            &app.token(&[Role::PlatformAdmin]),
        ))
        .await
        .expect("set modules");
    let status = client(&app)
        .list_accounts(authed(
            pb::ListAccountsRequest::default(),
            &app.token(&[Role::Admin]),
        ))
        .await
        .expect_err("disabled");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "MODULE_DISABLED");
}
