//! Money in and out of a campaign's escrow: FundCampaign (External → escrow, once per payment
//! reference, activating the campaign once its required funding is in) and CloseCampaign (what
//! escrow holds beyond held earnings back to the advertiser).

use credits_ledger::SystemAccount;
use kernel::ids::{check_text, parse_uuid};
use kernel::{ErrorCode, IdempotencyKey, Principal, ServiceError};
use proto::payouts::v1 as pb;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use crate::campaigns::{escrow_available, managed, to_proto};
use crate::convert;
use crate::entity::{campaign, funding};
use crate::escrow::{self, escrow};
use crate::state::Payouts;
use crate::{DOMAIN, events};

/// Returns what escrow holds beyond its reservations to the advertiser (closing, or money that
/// came back to a closed campaign's escrow) and stores the campaign's refunded total.
pub(crate) async fn refund_unused<C: ConnectionTrait>(
    txn: &C,
    row: &mut campaign::Model,
    now: i64,
) -> Result<i64, ServiceError> {
    let unused = escrow_available(txn, row).await?;
    if unused <= 0 {
        return Ok(0);
    }
    escrow::transfer(
        txn,
        row.workspace_id,
        &escrow(row.id),
        &SystemAccount::External,
        &row.currency,
        unused,
        (escrow::CODE_REFUND, row.id.to_string()),
        ("REFUND_REFUSED", "the ledger refused the refund"),
        now,
    )
    .await?;
    row.refunded += unused;
    kernel::db::update(
        txn,
        campaign::ActiveModel {
            workspace_id: Set(row.workspace_id),
            id: Set(row.id),
            refunded: Set(row.refunded),
            updated_at: Set(now),
            ..Default::default()
        },
    )
    .await?;
    Ok(unused)
}

/// What FundCampaign does with a payment reference already used.
fn replayed_funding(
    existing: &funding::Model,
    campaign_id: Uuid,
    amount: i64,
) -> Result<(), ServiceError> {
    if existing.campaign_id == campaign_id && existing.amount == amount {
        Ok(())
    } else {
        Err(ServiceError::new(
            ErrorCode::AlreadyExists,
            DOMAIN,
            "PAYMENT_REFERENCE_USED",
            "this payment reference already funded another campaign or amount",
        ))
    }
}

/// FundCampaign: the payment into escrow, once per payment reference, within the funding limit.
pub(crate) async fn fund(
    core: &Payouts,
    principal: &Principal,
    body: &pb::FundCampaignRequest,
) -> Result<pb::Campaign, ServiceError> {
    let key = IdempotencyKey::new(DOMAIN, principal, &body.request_id, "FundCampaign", body)?;
    let campaign_id = parse_uuid(DOMAIN, "campaign_id", &body.campaign_id)?;
    let reference = body.payment_reference.trim().to_owned();
    check_text(DOMAIN, "payment_reference", &reference, 255, false)?;
    let workspace_id = principal.workspace_id;
    let now = core.now();
    let reference = &reference;
    core
        .context
        .idempotent(&key, |txn| async move {
            let mut row = managed(&*txn, principal, campaign_id, true).await?;
            let amount =
                convert::money_in("amount", body.amount.as_ref(), &row.currency, false)?;
            let existing = funding::Entity::find()
                .filter(funding::Column::WorkspaceId.eq(workspace_id))
                .filter(funding::Column::PaymentReference.eq(reference.as_str()))
                .one(&*txn)
                .await?;
            if let Some(existing) = existing {
                replayed_funding(&existing, campaign_id, amount)?;
                let campaign = to_proto(&*txn, &row).await?;
                return Ok((txn, campaign));
            }
            if row.status == pb::CampaignStatus::Closed as i32 {
                return Err(ServiceError::failed_precondition(
                    DOMAIN,
                    "CAMPAIGN_CLOSED",
                    format!("campaigns/{campaign_id}"),
                    "a closed campaign takes no more funding",
                ));
            }
            let processing_fee = match body.processing_fee.as_ref() {
                None => 0,
                Some(_) => convert::money_in(
                    "processing_fee",
                    body.processing_fee.as_ref(),
                    &row.currency,
                    true,
                )?,
            };
            if processing_fee > amount {
                return Err(ServiceError::invalid_field(
                    DOMAIN,
                    "processing_fee.amount",
                    "must be at most the amount paid",
                ));
            }
            let room = row.funding_limit - row.funded;
            if amount > room {
                return Err(ServiceError::failed_precondition(
                    DOMAIN,
                    "FUNDING_EXCEEDS_LIMIT",
                    format!("campaigns/{campaign_id}"),
                    format!(
                        "the campaign takes at most {room} more minor units (its budget plus the fee on it)"
                    ),
                ));
            }
            let transfer_id = escrow::transfer(
                &*txn,
                workspace_id,
                &SystemAccount::External,
                &escrow(campaign_id),
                &row.currency,
                amount,
                (escrow::CODE_FUNDING, campaign_id.to_string()),
                ("FUNDING_REFUSED", "the ledger refused the funding"),
                now,
            )
            .await?;
            kernel::db::insert(
                &*txn,
                funding::ActiveModel::from(funding::Model {
                    workspace_id,
                    id: Uuid::now_v7(),
                    campaign_id,
                    advertiser_id: row.advertiser_id,
                    payment_reference: reference.clone(),
                    currency: row.currency.clone(),
                    amount,
                    processing_fee,
                    period: crate::state::local_month(&*txn, workspace_id, now).await?,
                    transfer_id,
                    created_at: now,
                }),
            )
            .await?;
            row.funded += amount;
            if row.status == pb::CampaignStatus::Draft as i32
                && row.funded >= row.required_funding
            {
                row.status = pb::CampaignStatus::Active as i32;
            }
            row.updated_at = now;
            kernel::db::update(
                &*txn,
                campaign::ActiveModel {
                    workspace_id: Set(workspace_id),
                    id: Set(campaign_id),
                    funded: Set(row.funded),
                    status: Set(row.status),
                    updated_at: Set(now),
                    ..Default::default()
                },
            )
            .await?;
            events::emit(
                &txn,
                workspace_id,
                events::CAMPAIGN_FUNDED,
                format!("campaigns/{campaign_id}"),
                json!({
                    "campaign_id": campaign_id.to_string(),
                    "advertiser_id": row.advertiser_id.to_string(),
                    "currency": row.currency,
                    "amount": amount,
                    "funded": row.funded,
                    "payment_reference": reference,
                    "status": pb::CampaignStatus::try_from(row.status)
                        .map(|status| status.as_str_name())
                        .unwrap_or_default(),
                }),
                now,
            )
            .await?;
            let campaign = to_proto(&*txn, &row).await?;
            Ok((txn, campaign))
        })
        .await
}

/// CloseCampaign: no more earnings; the unused escrow back to the advertiser.
pub(crate) async fn close(
    core: &Payouts,
    principal: &Principal,
    body: &pb::CloseCampaignRequest,
) -> Result<pb::Campaign, ServiceError> {
    let key = IdempotencyKey::new(DOMAIN, principal, &body.request_id, "CloseCampaign", body)?;
    let id = parse_uuid(DOMAIN, "id", &body.id)?;
    let workspace_id = principal.workspace_id;
    let now = core.now();
    core.context
        .idempotent(&key, |txn| async move {
            let mut row = managed(&*txn, principal, id, true).await?;
            if row.status == pb::CampaignStatus::Closed as i32 {
                return Err(ServiceError::failed_precondition(
                    DOMAIN,
                    "CAMPAIGN_CLOSED",
                    format!("campaigns/{id}"),
                    "the campaign is closed already",
                ));
            }
            // Held earnings keep their reservation: they are the promoters' already.
            refund_unused(&*txn, &mut row, now).await?;
            row.status = pb::CampaignStatus::Closed as i32;
            row.updated_at = now;
            kernel::db::update(
                &*txn,
                campaign::ActiveModel {
                    workspace_id: Set(workspace_id),
                    id: Set(id),
                    status: Set(row.status),
                    updated_at: Set(now),
                    ..Default::default()
                },
            )
            .await?;
            let campaign = to_proto(&*txn, &row).await?;
            Ok((txn, campaign))
        })
        .await
}
