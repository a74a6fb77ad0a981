//! Hostile and careless input: undecodable bodies, amounts at and past every bound, timestamps
//! past year 9999, huge strings, and the texts that tell a caller how to fix a request.

use bytes::{Buf, BufMut};
use kernel::Role;
use proto::admin::v1 as admin;
use proto::admin::v1::workspace_service_client::WorkspaceServiceClient;
use proto::ledger::v1 as ledger;
use proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use proto::promotion::v1 as pb;
use proto::promotion::v1::promotion_service_client::PromotionServiceClient;
use rand::{Rng, SeedableRng};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::{TestApp, authed, reason, request_id, spawn_app};

/// Sends and receives raw bytes, so a test can put any body on the wire.
#[derive(Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let bytes = buf.copy_to_bytes(buf.remaining()).to_vec();
        Ok(Some(bytes))
    }
}

async fn send_raw(app: &TestApp, path: &'static str, body: Vec<u8>, token: &str) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static(path);
    match grpc.unary(authed(body, token), path, RawCodec).await {
        Ok(_) => tonic::Status::ok(""),
        Err(status) => status,
    }
}

/// Field 1 (a string) wrapped in `depth` groups that nothing in the schema knows.
fn nested_groups(depth: usize) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(std::iter::repeat_n(0x7b_u8, depth)); // field 15, start group
    body.extend(std::iter::repeat_n(0x7c_u8, depth)); // field 15, end group
    body
}

#[tokio::test]
async fn undecodable_bodies_are_invalid_argument_with_error_info_and_no_decoder_text() {
    let app = spawn_app().await;
    let token = app.token(&[Role::Admin]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated varint", vec![0x08, 0xff]),
        (
            "length prefix past the body",
            vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        ),
        ("invalid UTF-8 in a string", vec![0x0a, 0x02, 0xff, 0xfe]),
        ("nesting past the recursion limit", nested_groups(200)),
        ("a wire type that does not exist", vec![0x0f]),
    ];
    for (what, body) in cases {
        let status = send_raw(
            &app,
            "/promo.admin.v1.WorkspaceService/GetWorkspace",
            body,
            &token,
        )
        .await;
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert_eq!(reason(&status), "MALFORMED_REQUEST", "{what}");
        let message = status.message().to_ascii_lowercase();
        for word in [
            "buffer",
            "varint",
            "utf-8",
            "recursion",
            "wire type",
            "decode error",
        ] {
            assert!(!message.contains(word), "{what}: {message}");
        }
    }
    // Fuzzed bodies: whatever comes back is never INTERNAL and always carries an ErrorInfo.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..300 {
        let length = rng.random_range(0..64);
        let body: Vec<u8> = (0..length).map(|_| rng.random()).collect();
        let status = send_raw(
            &app,
            "/promo.ledger.v1.LedgerService/CreateTransfers",
            body,
            &token,
        )
        .await;
        if status.code() == Code::Ok {
            continue;
        }
        assert_ne!(status.code(), Code::Internal, "round {round}: {status:?}");
        assert!(
            status.get_details_error_info().is_some(),
            "round {round}: {status:?}"
        );
    }
}

#[tokio::test]
async fn amounts_past_their_bounds_are_refused_and_an_overflow_changes_nothing() {
    let app = spawn_app().await;
    let billing = app.token(&[Role::Billing]);
    let owner = Uuid::new_v4();
    let buy = |amount: i64, reference: &'static str| {
        let (app, billing) = (&app, billing.clone());
        async move {
            LedgerServiceClient::new(app.channel.clone())
                .purchase_credits(authed(
                    ledger::PurchaseCreditsRequest {
                        request_id: request_id(),
                        owner_id: owner.to_string(),
                        amount,
                        payment_reference: reference.to_owned(),
                    },
                    &billing,
                ))
                .await
        }
    };
    let huge = buy(i64::MAX, "pay-huge").await.expect_err("unbounded");
    assert_eq!(huge.code(), Code::InvalidArgument);
    assert_eq!(
        huge.get_details_bad_request()
            .expect("violations")
            .field_violations[0]
            .field,
        "amount"
    );
    let largest = credits_ledger::service::MAX_PURCHASE_CREDITS;
    buy(largest, "pay-largest")
        .await
        .expect("the largest purchase");

    // Bring the workspace's external source to the edge of i64, as ~9 million largest purchases
    // would: the next purchase overflows, answers why, and changes nothing, however often retried.
    let external = credits_ledger::SystemAccount::External.id(app.default_workspace, "CREDITS");
    app.execute(
        "UPDATE ledger_account SET debits_posted = ? WHERE workspace_id = ? AND id = ?",
        vec![
            (i64::MAX - 10).into(),
            app.default_workspace.into(),
            external.into(),
        ],
    )
    .await;
    for _ in 0..2 {
        let overflow = buy(11, "pay-overflow").await.expect_err("overflow");
        assert_eq!(overflow.code(), Code::FailedPrecondition);
        assert_eq!(
            reason(&overflow),
            "AMOUNT_OVERFLOW",
            "{}",
            overflow.message()
        );
    }
    let wallet = LedgerServiceClient::new(app.channel.clone())
        .list_accounts(authed(
            ledger::ListAccountsRequest {
                owner_id: owner.to_string(),
                asset: "CREDITS".to_owned(),
                ..Default::default()
            },
            &billing,
        ))
        .await
        .expect("accounts")
        .into_inner()
        .accounts;
    assert_eq!(wallet[0].balance, largest, "nothing was bought");
    buy(10, "pay-overflow")
        .await
        .expect("the same reference still works within the limit");

    let admin = app.token(&[Role::Admin]);
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut ledger_client = LedgerServiceClient::new(app.channel.clone());
    ledger_client
        .create_accounts(authed(
            ledger::CreateAccountsRequest {
                accounts: [a, b]
                    .iter()
                    .map(|id| ledger::Account {
                        id: id.to_string(),
                        asset: "USD".to_owned(),
                        code: "TEST".to_owned(),
                        ..Default::default()
                    })
                    .collect(),
            },
            &admin,
        ))
        .await
        .expect("accounts");
    let too_big = ledger_client
        .create_transfers(authed(
            ledger::CreateTransfersRequest {
                transfers: vec![ledger::Transfer {
                    id: Uuid::new_v4().to_string(),
                    debit_account_id: a.to_string(),
                    credit_account_id: b.to_string(),
                    amount: kernel::money::MAX_AMOUNT + 1,
                    code: "TEST".to_owned(),
                    ..Default::default()
                }],
            },
            &admin,
        ))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(
        too_big.results[0].result(),
        ledger::TransferResult::InvalidAmount
    );
}

#[tokio::test]
async fn timestamps_past_year_9999_and_huge_strings_are_refused_briefly() {
    let app = spawn_app().await;
    let admin = app.token(&[Role::Admin]);
    let far = prost_types::Timestamp {
        seconds: 9_000_000_000_000,
        nanos: 0,
    };
    let refused = PromotionServiceClient::new(app.channel.clone())
        .create_promotion(authed(
            pb::CreatePromotionRequest {
                request_id: request_id(),
                material_id: Uuid::new_v4().to_string(),
                credits: 1,
                end_time: Some(far),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect_err("year 287,000");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        refused
            .get_details_bad_request()
            .expect("violations")
            .field_violations[0]
            .field,
        "end_time"
    );
    let history = LedgerServiceClient::new(app.channel.clone())
        .list_transfers(authed(
            ledger::ListTransfersRequest {
                start_time: Some(prost_types::Timestamp {
                    seconds: -70_000_000_000,
                    nanos: 0,
                }),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect_err("before year 1");
    assert_eq!(history.code(), Code::InvalidArgument);

    let huge = "Z".repeat(100_000);
    let settings = WorkspaceServiceClient::new(app.channel.clone())
        .update_settings(authed(
            admin::UpdateSettingsRequest {
                request_id: request_id(),
                workspace_id: String::new(),
                settings: Some(admin::Settings {
                    time_zone: huge.clone(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["time_zone".to_owned(), huge.clone()],
                }),
            },
            &admin,
        ))
        .await
        .expect_err("nonsense");
    assert_eq!(settings.code(), Code::InvalidArgument);
    assert!(
        settings.message().len() < 600,
        "{}",
        settings.message().len()
    );
    let violation = &settings
        .get_details_bad_request()
        .expect("violations")
        .field_violations[0];
    assert!(violation.field.len() + violation.description.len() < 600);
    assert!(
        violation.description.contains("the paths are time_zone"),
        "{}",
        violation.description
    );
}

#[tokio::test]
async fn errors_name_what_would_fix_them() {
    let app = spawn_app().await;
    let factory = Uuid::new_v4();
    let factory_token = app.token_for(factory, app.default_workspace, &[Role::Factory]);
    let denied = LedgerServiceClient::new(app.channel.clone())
        .purchase_credits(authed(
            ledger::PurchaseCreditsRequest {
                request_id: request_id(),
                owner_id: factory.to_string(),
                amount: 5,
                payment_reference: "pay-self".to_owned(),
            },
            &factory_token,
        ))
        .await
        .expect_err("a factory cannot mint credits");
    assert_eq!(reason(&denied), "ROLE_NOT_ADMITTED");
    assert!(
        denied.message().contains("admits the roles admin, billing")
            || denied.message().contains("admits the roles billing, admin"),
        "{}",
        denied.message()
    );
    assert!(denied.message().contains("the token has factory"));

    let material = proto::promotion::v1::material_service_client::MaterialServiceClient::new(
        app.channel.clone(),
    )
    .create_material(authed(
        pb::CreateMaterialRequest {
            request_id: request_id(),
            material: Some(pb::Material {
                name: "Oak".to_owned(),
                material_type: "wood".to_owned(),
                ..Default::default()
            }),
        },
        &factory_token,
    ))
    .await
    .expect("material")
    .into_inner();
    let short = PromotionServiceClient::new(app.channel.clone())
        .create_promotion(authed(
            pb::CreatePromotionRequest {
                request_id: request_id(),
                material_id: material.id,
                credits: 25,
                ..Default::default()
            },
            &factory_token,
        ))
        .await
        .expect_err("no credits yet");
    assert_eq!(reason(&short), "INSUFFICIENT_CREDITS");
    let info = short.get_details_error_info().expect("error info");
    assert_eq!(
        (
            info.metadata.get("available").map(String::as_str),
            info.metadata.get("needed").map(String::as_str)
        ),
        (Some("0"), Some("25"))
    );
    assert!(
        short.message().contains("PurchaseCredits"),
        "{}",
        short.message()
    );
}

/// A JSON column damaged outside the service (a bad manual repair, a bug in an old version) is an
/// error that names nothing internal to the caller, never a silently empty value, and does not
/// spill into other rows or other workspaces' settings.
#[tokio::test]
async fn corrupt_json_columns_are_errors_not_empty_values() {
    let app = spawn_app().await;
    let token = app.token(&[Role::Admin]);
    let material = crate::helpers::create_material(&app, &token, "Oak", "wood").await;
    let healthy = crate::helpers::create_material(&app, &token, "Ash", "wood").await;
    let id = Uuid::parse_str(&material.id).expect("id");
    assert_eq!(
        app.execute(
            "UPDATE promo_material SET tags = ? WHERE id = ?",
            vec!["[\"half".into(), id.into()],
        )
        .await,
        1
    );
    let materials = proto::promotion::v1::material_service_client::MaterialServiceClient::new(
        app.channel.clone(),
    );
    let broken = materials
        .clone()
        .get_material(authed(
            pb::GetMaterialRequest {
                id: material.id.clone(),
            },
            &token,
        ))
        .await
        .expect_err("corrupt row");
    assert_eq!(broken.code(), Code::Internal);
    assert_eq!(reason(&broken), "INTERNAL");
    assert!(
        !broken.message().contains("promo_material"),
        "{}",
        broken.message()
    );
    let fine = materials
        .clone()
        .get_material(authed(pb::GetMaterialRequest { id: healthy.id }, &token))
        .await
        .expect("the other row reads");
    assert_eq!(fine.into_inner().name, "Ash");

    let other = app.other_workspace("intact").await;
    assert_eq!(
        app.execute(
            "UPDATE kernel_workspace SET settings = ? WHERE id = ?",
            vec!["{\"time_zone\": 7}".into(), app.default_workspace.into()],
        )
        .await,
        1
    );
    let settings = WorkspaceServiceClient::new(app.channel.clone());
    let broken = settings
        .clone()
        .get_settings(authed(admin::GetSettingsRequest::default(), &token))
        .await
        .expect_err("corrupt settings");
    assert_eq!(broken.code(), Code::Internal);
    let platform = app.token(&[Role::PlatformAdmin]);
    let intact = settings
        .clone()
        .get_settings(authed(
            admin::GetSettingsRequest {
                workspace_id: other.to_string(),
            },
            &platform,
        ))
        .await
        .expect("another workspace's settings read")
        .into_inner();
    assert_eq!(intact.time_zone, "UTC");
    assert_eq!(intact.promotion.map(|p| p.cost_per_use), Some(1));
}
