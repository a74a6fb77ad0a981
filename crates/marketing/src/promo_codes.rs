//! RedeemPromoCode: the API business's promo codes. A promo-code campaign's code grants a
//! discount rule (returned for the caller to apply), a number of credits, a free trial, or any of
//! them. One redemption is one transaction: a use of the campaign and its budget through the
//! conditional update every campaign limit goes through, a use of the customer's allowance,
//! the credits moved through the ledger from the workspace's promotional account into the
//! customer's CREDITS wallet, the row, the day's analytics and the event. It is final at once.

use credits_ledger::{Ledger, SystemAccount, TransferResult};
use kernel::clock::micros_to_timestamp;
use kernel::money::CREDITS;
use kernel::{IdempotencyKey, Principal, ServiceError};
use proto::marketing::v1 as pb;
use serde_json::json;
use uuid::Uuid;

use crate::model::{CampaignStatus, KIND_PROMO_CODE};
use crate::redemptions::local_day;
use crate::state::Marketing;
use crate::store::{self, DayCounts, promo_redemption};
use crate::{DOMAIN, events};

/// The ledger code of a promo code's credit grant.
pub const PROMO_CODE_CREDITS: &str = "PROMO_CODE_CREDITS";

fn promo_code_not_found() -> ServiceError {
    ServiceError::not_found(DOMAIN, "PROMO_CODE_NOT_FOUND", "promo code")
}

/// Why a promo code cannot be redeemed now: the reasons of the contract's list.
fn refused(reason: &'static str, code: &str, description: String) -> ServiceError {
    ServiceError::failed_precondition(DOMAIN, reason, format!("promo-codes/{code}"), description)
}

/// Redeems `body.code` for the acting customer (see the module's doc).
pub async fn redeem(
    core: &Marketing,
    principal: &Principal,
    body: &pb::RedeemPromoCodeRequest,
) -> Result<pb::RedeemPromoCodeResponse, ServiceError> {
    let key = IdempotencyKey::new(DOMAIN, principal, &body.request_id, "RedeemPromoCode", body)?;
    let customer_id = crate::coupons::acting_customer(principal, "customer_id", &body.customer_id)?
        .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "customer_id", "is required"))?;
    let code = crate::codes::normalize(&body.code).ok_or_else(|| {
        ServiceError::invalid_field(
            DOMAIN,
            "code",
            "must be 3 to 64 letters, digits, '-' or '_'",
        )
    })?;
    let workspace_id = principal.workspace_id;
    let now = core.now();
    // Redemptions of one code wait their turn in memory, not on the pool's connections.
    let _queued = core.queue_for([(workspace_id, code.clone())]).await;
    let code = &code;
    core.context
        .idempotent(&key, |txn| async move {
            let campaign = store::campaign_by_code(&*txn, workspace_id, code)
                .await?
                .filter(|campaign| campaign.kind == KIND_PROMO_CODE)
                .ok_or_else(promo_code_not_found)?;
            let status = CampaignStatus::from_i32(campaign.status)
                .unwrap_or(CampaignStatus::Completed)
                .effective(campaign.start_time, campaign.end_time, now);
            if status != CampaignStatus::Active {
                return Err(refused(
                    "CAMPAIGN_NOT_ACTIVE",
                    code,
                    format!(
                        "this promo code's campaign is {}",
                        pb::CampaignStatus::try_from(status as i32)
                            .map(|status| status.as_str_name())
                            .unwrap_or("not active")
                    ),
                ));
            }
            let credits = campaign.promo_credits;
            if !store::take_campaign_use(&*txn, workspace_id, campaign.id, credits, now).await? {
                // The update saw the committed row; read it again to say which limit held.
                let current = store::get_campaign(&*txn, workspace_id, campaign.id)
                    .await?
                    .unwrap_or_else(|| campaign.clone());
                return Err(
                    if current.usage_limit_total > 0
                        && current.uses_held >= current.usage_limit_total
                    {
                        refused(
                            "COUPON_USAGE_LIMIT_REACHED",
                            code,
                            format!(
                                "this promo code has been redeemed its {} times",
                                campaign.usage_limit_total
                            ),
                        )
                    } else {
                        refused(
                            "CAMPAIGN_BUDGET_EXHAUSTED",
                            code,
                            "this promo code's campaign has no budget left for its credits"
                                .to_owned(),
                        )
                    },
                );
            }
            if campaign.usage_limit_per_customer > 0
                && !store::take_customer_use(
                    &*txn,
                    workspace_id,
                    campaign.id,
                    customer_id,
                    campaign.usage_limit_per_customer,
                )
                .await?
            {
                return Err(refused(
                    "CUSTOMER_USAGE_LIMIT_REACHED",
                    code,
                    format!(
                        "this customer has redeemed this promo code its {} times",
                        campaign.usage_limit_per_customer
                    ),
                ));
            }
            store::move_campaign(&*txn, workspace_id, campaign.id, (0, 0), (1, credits), now)
                .await?;
            let id = Uuid::now_v7();
            let transfer_id = if credits > 0 {
                Some(grant_credits(&txn, workspace_id, customer_id, id, credits, now).await?)
            } else {
                None
            };
            let rule_ids: Vec<Uuid> = kernel::db::json_column(
                "mkt_campaign",
                campaign.id,
                "rule_ids",
                &campaign.rule_ids,
            )?;
            let row = promo_redemption::Model {
                workspace_id,
                id,
                campaign_id: campaign.id,
                customer_id,
                code: code.clone(),
                credits,
                trial_days: campaign.trial_days,
                discount_rule_id: rule_ids.first().copied(),
                transfer_id,
                created_at: now,
            };
            store::insert(&*txn, promo_redemption::ActiveModel::from(row.clone())).await?;
            let currency = if credits > 0 || campaign.currency.is_empty() {
                CREDITS
            } else {
                campaign.currency.as_str()
            };
            let day = local_day(&*txn, workspace_id, now).await?;
            let counts = DayCounts {
                coupons_redeemed: 1,
                discount_given: credits,
                ..DayCounts::default()
            };
            store::add_to_day(&*txn, workspace_id, campaign.id, &day, currency, counts).await?;
            events::emit(
                &txn,
                workspace_id,
                events::PROMO_CODE_REDEEMED,
                format!("campaigns/{}", campaign.id),
                json!({
                    "redemption_id": id.to_string(),
                    "campaign_id": campaign.id.to_string(),
                    "customer_id": customer_id.to_string(),
                    "code": code,
                    "credits": credits,
                    "trial_days": campaign.trial_days,
                    "discount_rule_id": row.discount_rule_id.map(|id| id.to_string()),
                }),
                now,
            )
            .await?;
            let response = pb::RedeemPromoCodeResponse {
                offer: Some(pb::PromoCodeOffer {
                    campaign_id: campaign.id.to_string(),
                    code: code.clone(),
                    title: campaign.title.clone(),
                    description: campaign.description.clone(),
                }),
                credits_granted: credits,
                trial_days: campaign.trial_days,
                discount_rule_id: row
                    .discount_rule_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                redemption_id: id.to_string(),
                transfer_id: transfer_id.map(|id| id.to_string()).unwrap_or_default(),
                create_time: Some(micros_to_timestamp(now)),
            };
            Ok((txn, response))
        })
        .await
}

/// Moves `credits` from the workspace's promotional account into the customer's CREDITS wallet,
/// in the open transaction; returns the transfer's id.
async fn grant_credits(
    txn: &kernel::WriteTxn,
    workspace_id: Uuid,
    customer_id: Uuid,
    redemption_id: Uuid,
    credits: i64,
    now: i64,
) -> Result<Uuid, ServiceError> {
    match Ledger::move_in(
        &**txn,
        workspace_id,
        &SystemAccount::Promotional,
        &SystemAccount::Wallet(customer_id),
        CREDITS,
        credits,
        PROMO_CODE_CREDITS,
        redemption_id.to_string(),
        now,
    )
    .await?
    {
        Ok(id) => Ok(id),
        Err(TransferResult::Overflows) => Err(ServiceError::failed_precondition(
            DOMAIN,
            "AMOUNT_OVERFLOW",
            format!("customers/{customer_id}"),
            "these credits would take the customer's wallet past the ledger's limit",
        )),
        Err(other) => Err(ServiceError::internal(format!(
            "promo code credit transfer failed: {other:?}"
        ))),
    }
}
