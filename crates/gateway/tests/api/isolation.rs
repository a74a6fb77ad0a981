//! Tenant isolation, attacked: an admin of one workspace trying to squat on, probe or collide with
//! another workspace's ids, and one principal replaying another's request id.

use credits_ledger::SystemAccount;
use kernel::Role;
use proto::ledger::v1 as ledger;
use proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use proto::promotion::v1 as pb;
use proto::promotion::v1::promotion_service_client::PromotionServiceClient;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{TestApp, authed, create_material, purchase, reason, request_id, spawn_app};

fn account(id: Uuid) -> ledger::Account {
    ledger::Account {
        id: id.to_string(),
        asset: "CREDITS".to_owned(),
        code: "TEST".to_owned(),
        ..Default::default()
    }
}

fn transfer(id: Uuid, debit: Uuid, credit: Uuid, amount: i64) -> ledger::Transfer {
    ledger::Transfer {
        id: id.to_string(),
        debit_account_id: debit.to_string(),
        credit_account_id: credit.to_string(),
        amount,
        code: "TEST".to_owned(),
        ..Default::default()
    }
}

async fn create_accounts(
    app: &TestApp,
    token: &str,
    ids: &[Uuid],
) -> Vec<ledger::CreateAccountResult> {
    LedgerServiceClient::new(app.channel.clone())
        .create_accounts(authed(
            ledger::CreateAccountsRequest {
                accounts: ids.iter().map(|id| account(*id)).collect(),
            },
            token,
        ))
        .await
        .expect("create accounts")
        .into_inner()
        .results
        .iter()
        .map(|result| result.result())
        .collect()
}

async fn create_transfers(
    app: &TestApp,
    token: &str,
    transfers: Vec<ledger::Transfer>,
) -> Vec<ledger::TransferResult> {
    LedgerServiceClient::new(app.channel.clone())
        .create_transfers(authed(ledger::CreateTransfersRequest { transfers }, token))
        .await
        .expect("create transfers")
        .into_inner()
        .results
        .iter()
        .map(|result| result.result())
        .collect()
}

/// Puts rows into workspace `squatter` under ids the platform derives for `victim`, the way the
/// global id space of earlier versions let an attacker do: accounts, and failed-transfer records
/// that used to make the victim's purchases and refunds fail forever.
async fn squat(app: &TestApp, squatter: Uuid, account_ids: &[Uuid], transfer_ids: &[Uuid]) {
    for id in account_ids {
        app.execute(
            "INSERT INTO ledger_account (workspace_id, id, owner_id, asset, code, flags, debits_posted, \
             credits_posted, debits_pending, credits_pending, metadata, created_at) \
             VALUES (?, ?, NULL, 'USD', 'SQUAT', 0, 0, 0, 0, 0, '{}', 0)",
            vec![squatter.into(), (*id).into()],
        )
        .await;
    }
    for id in transfer_ids {
        app.execute(
            "INSERT INTO ledger_failed_transfer (workspace_id, id, result, created_at) VALUES (?, ?, 9, 0)",
            vec![squatter.into(), (*id).into()],
        )
        .await;
    }
}

#[tokio::test]
async fn another_workspaces_derived_ids_can_neither_be_created_nor_squatted() {
    let app = spawn_app().await;
    let attacker = app.default_workspace;
    let victim = app.other_workspace("victim").await;
    let admin = app.token(&[Role::Admin]);
    let factory = Uuid::new_v4();
    let reference = "pay-victim-1";
    let external = SystemAccount::External.id(victim, "CREDITS");
    let revenue = SystemAccount::PlatformRevenue.id(victim, "CREDITS");
    let wallet = SystemAccount::Wallet(factory).id(victim, "CREDITS");
    let purchase_id = credits_ledger::service::purchase_transfer(victim, factory, 1, reference).id;

    // Through the API: every derived id is in a namespace no client may write, in any workspace.
    assert_eq!(
        create_accounts(&app, &admin, &[external, revenue, wallet]).await,
        [ledger::CreateAccountResult::IdReserved; 3]
    );
    let (source, sink) = (Uuid::new_v4(), Uuid::new_v4());
    create_accounts(&app, &admin, &[source, sink]).await;
    assert_eq!(
        create_transfers(&app, &admin, vec![transfer(purchase_id, source, sink, 1)]).await,
        [ledger::TransferResult::IdReserved]
    );

    // Even rows under those ids in the attacker's workspace (as the global ids of earlier versions
    // allowed) touch nothing of the victim's: keys are (workspace, id).
    squat(&app, attacker, &[external, revenue, wallet], &[purchase_id]).await;
    let bought = purchase(&app, victim, factory, 100, reference)
        .await
        .expect("the victim's purchase works");
    assert_eq!(bought.id, purchase_id.to_string());
    assert_eq!(bought.amount, 100);

    // The victim factory promotes, its promoted use is charged, and completion refunds.
    let factory_token = app.token_for(factory, victim, &[Role::Factory]);
    let material = create_material(&app, &factory_token, "Oak", "wood").await;
    let promotion = PromotionServiceClient::new(app.channel.clone())
        .create_promotion(authed(
            pb::CreatePromotionRequest {
                request_id: request_id(),
                material_id: material.id.clone(),
                credits: 10,
                ..Default::default()
            },
            &factory_token,
        ))
        .await
        .expect("the victim can promote")
        .into_inner();
    let promotion_id = Uuid::parse_str(&promotion.id).expect("id");
    let refund_id = kernel::ids::derived(&victim, &format!("refund:{promotion_id}"));
    squat(&app, attacker, &[], &[refund_id]).await;
    let completed = PromotionServiceClient::new(app.channel.clone())
        .update_promotion_status(authed(
            pb::UpdatePromotionStatusRequest {
                request_id: request_id(),
                promotion_id: promotion.id.clone(),
                status: pb::PromotionStatus::Completed as i32,
            },
            &factory_token,
        ))
        .await
        .expect("completion refunds")
        .into_inner();
    assert_eq!(completed.credits_remaining, 0);
    let report = credits_ledger::verify::verify(
        &sea_orm::Database::connect(app.database_url.as_str())
            .await
            .expect("connect"),
    )
    .await
    .expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test]
async fn an_id_used_in_another_workspace_looks_exactly_like_an_unused_one() {
    let app = spawn_app().await;
    let other = app.other_workspace("neighbour").await;
    let here = app.token(&[Role::Admin]);
    let there = app.token_for(Uuid::new_v4(), other, &[Role::Admin]);
    let (a, b, transfer_id) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(
        create_accounts(&app, &here, &[a, b]).await,
        [ledger::CreateAccountResult::Created; 2]
    );
    assert_eq!(
        create_transfers(&app, &here, vec![transfer(transfer_id, a, b, 5)]).await,
        [ledger::TransferResult::Created]
    );
    // The neighbour learns nothing: the same ids are simply free there.
    assert_eq!(
        create_accounts(&app, &there, &[a, b]).await,
        [ledger::CreateAccountResult::Created; 2]
    );
    assert_eq!(
        create_transfers(&app, &there, vec![transfer(transfer_id, a, b, 7)]).await,
        [ledger::TransferResult::Created]
    );
    let balance = |token: String| {
        let app = &app;
        async move {
            LedgerServiceClient::new(app.channel.clone())
                .get_account_balance(authed(
                    ledger::GetAccountBalanceRequest {
                        account_id: b.to_string(),
                        as_of_time: None,
                    },
                    &token,
                ))
                .await
                .expect("balance")
                .into_inner()
                .balance
        }
    };
    assert_eq!(balance(here.clone()).await, 5);
    assert_eq!(balance(there.clone()).await, 7);
}

#[tokio::test]
async fn accounts_a_domain_manages_cannot_be_moved_by_a_generic_transfer() {
    let app = spawn_app().await;
    let workspace = app.default_workspace;
    let admin = app.token(&[Role::Admin]);
    let factory = Uuid::new_v4();
    purchase(&app, workspace, factory, 100, "pay-managed")
        .await
        .expect("purchase");
    let wallet = SystemAccount::Wallet(factory).id(workspace, "CREDITS");
    let external = SystemAccount::External.id(workspace, "CREDITS");
    let mine = Uuid::new_v4();
    create_accounts(&app, &admin, &[mine]).await;
    let pending = ledger::Transfer {
        flags: Some(ledger::TransferFlags {
            pending: true,
            ..Default::default()
        }),
        ..transfer(Uuid::new_v4(), wallet, mine, 1)
    };
    let results = create_transfers(
        &app,
        &admin,
        vec![
            transfer(Uuid::new_v4(), wallet, mine, 100),
            transfer(Uuid::new_v4(), external, mine, 1_000_000),
            transfer(Uuid::new_v4(), mine, wallet, 1),
            pending,
        ],
    )
    .await;
    assert_eq!(
        results,
        [ledger::TransferResult::AccountManagedByDomain; 4],
        "wallets and external sources move only through their domain"
    );
    let wallet_balance = LedgerServiceClient::new(app.channel.clone())
        .get_account(authed(
            ledger::GetAccountRequest {
                id: wallet.to_string(),
            },
            &admin,
        ))
        .await
        .expect("wallet")
        .into_inner();
    assert_eq!(wallet_balance.balance, 100, "nothing moved");
    assert!(
        wallet_balance
            .flags
            .is_some_and(|flags| flags.managed_by_domain)
    );
    let claimed = LedgerServiceClient::new(app.channel.clone())
        .create_accounts(authed(
            ledger::CreateAccountsRequest {
                accounts: vec![ledger::Account {
                    flags: Some(ledger::AccountFlags {
                        managed_by_domain: true,
                        ..Default::default()
                    }),
                    ..account(Uuid::new_v4())
                }],
            },
            &admin,
        ))
        .await
        .expect_err("a client cannot make a managed account");
    assert_eq!(claimed.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_request_id_belongs_to_the_principal_that_sent_it() {
    let app = spawn_app().await;
    let workspace = app.default_workspace;
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    purchase(&app, workspace, first, 100, "pay-first")
        .await
        .expect("purchase");
    purchase(&app, workspace, second, 100, "pay-second")
        .await
        .expect("purchase");
    let first_token = app.token_for(first, workspace, &[Role::Factory]);
    let second_token = app.token_for(second, workspace, &[Role::Factory]);
    let first_oak = create_material(&app, &first_token, "Oak", "wood").await;
    let second_oak = create_material(&app, &second_token, "Oak", "wood").await;
    let shared_request_id = request_id();
    let create = |token: String, material_id: String| {
        let (app, shared_request_id) = (&app, shared_request_id.clone());
        async move {
            PromotionServiceClient::new(app.channel.clone())
                .create_promotion(authed(
                    pb::CreatePromotionRequest {
                        request_id: shared_request_id,
                        material_id,
                        credits: 10,
                        ..Default::default()
                    },
                    &token,
                ))
                .await
        }
    };
    let original = create(first_token, first_oak.id.clone())
        .await
        .expect("first factory's promotion")
        .into_inner();
    // The same request id and the same body from another principal is that principal's own
    // request: it is not the first factory's material, so it is refused, and nothing leaks.
    let replayed = create(second_token.clone(), first_oak.id.clone())
        .await
        .expect_err("not the second factory's material");
    assert_eq!(replayed.code(), Code::PermissionDenied);
    assert_eq!(reason(&replayed), "NOT_MATERIAL_OWNER");
    assert!(!replayed.message().contains(&original.id));
    let own = create(second_token, second_oak.id.clone())
        .await
        .expect("the second factory's own request")
        .into_inner();
    assert_ne!(own.id, original.id);
    assert_eq!(own.factory_id, second.to_string());
}
