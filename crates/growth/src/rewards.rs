//! Rewards growth hands out: credits moved through the ledger from the workspace's promotional
//! account into the receiver's wallet, or a single-use coupon issued through marketing. Always
//! inside the caller's transaction, so a reward exists exactly when what earned it committed.

use std::sync::Mutex;

use credits_ledger::{Ledger, SystemAccount, TransferResult};
use kernel::money::CREDITS;
use kernel::{ServiceError, Violations, WriteTxn};
use marketing::api::IssuedCoupon;
use proto::growth::v1 as pb;
use proto::marketing::v1 as mkt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DOMAIN;
use crate::state::Growth;

/// A reward as a program stores it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardDef {
    /// `pb::RewardKind` as a number.
    pub kind: i32,
    #[serde(default)]
    pub credits: i64,
    #[serde(default)]
    pub rule_id: Option<Uuid>,
    #[serde(default)]
    pub percent_bps: u32,
}

/// What a receiver got.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    pub kind: i32,
    #[serde(default)]
    pub credits: i64,
    #[serde(default)]
    pub transfer_id: Option<Uuid>,
    #[serde(default)]
    pub coupon_code: String,
}

impl Issued {
    pub fn to_proto(&self) -> pb::IssuedReward {
        pb::IssuedReward {
            kind: self.kind,
            credits: self.credits,
            transfer_id: self
                .transfer_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            coupon_code: self.coupon_code.clone(),
        }
    }
}

impl RewardDef {
    pub fn to_proto(&self) -> pb::Reward {
        pb::Reward {
            kind: self.kind,
            credits: self.credits,
            discount_rule_id: self.rule_id.map(|id| id.to_string()).unwrap_or_default(),
            percent_bps: self.percent_bps,
        }
    }

    /// Reads one side's reward; the rule of a coupon reward is checked in the transaction.
    pub fn read(violations: &mut Violations, field: &str, input: Option<&pb::Reward>) -> RewardDef {
        let input = input.cloned().unwrap_or_default();
        let kind = pb::RewardKind::try_from(input.kind).unwrap_or(pb::RewardKind::Unspecified);
        let mut reward = RewardDef {
            kind: input.kind,
            ..RewardDef::default()
        };
        match kind {
            pb::RewardKind::None => {}
            pb::RewardKind::Credits => {
                violations.check(
                    (1..=kernel::money::MAX_AMOUNT).contains(&input.credits),
                    &format!("{field}.credits"),
                    "must be a positive number of credits",
                );
                reward.credits = input.credits;
            }
            pb::RewardKind::Coupon => {
                reward.rule_id = violations.uuid(
                    &format!("{field}.discount_rule_id"),
                    &input.discount_rule_id,
                );
            }
            pb::RewardKind::PercentageCoupon => {
                violations.check(
                    (1..=kernel::money::BPS_WHOLE).contains(&input.percent_bps),
                    &format!("{field}.percent_bps"),
                    "must be between 1 and 10000 basis points",
                );
                reward.percent_bps = input.percent_bps;
            }
            pb::RewardKind::Unspecified => violations.add(
                &format!("{field}.kind"),
                "must be REWARD_KIND_NONE, _CREDITS, _COUPON or _PERCENTAGE_COUPON",
            ),
        }
        reward
    }

    pub fn is_none(&self) -> bool {
        self.kind == pb::RewardKind::None as i32
    }

    /// Makes the reward ready to store, in the program's transaction: a coupon reward's rule must
    /// exist in the workspace; a percentage coupon gets its rule created.
    pub async fn prepare(
        &mut self,
        core: &Growth,
        txn: &WriteTxn,
        workspace_id: Uuid,
        field: &str,
        program_name: &str,
        now: i64,
    ) -> Result<(), ServiceError> {
        if let Some(rule_id) = self.rule_id
            && !core
                .marketing
                .rule_exists(&**txn, workspace_id, rule_id)
                .await?
        {
            return Err(ServiceError::not_found(
                DOMAIN,
                "DISCOUNT_RULE_NOT_FOUND",
                &format!("discount rule ({field}.discount_rule_id)"),
            ));
        }
        if self.kind == pb::RewardKind::PercentageCoupon as i32 {
            let rule = mkt::DiscountRule {
                name: format!(
                    "{program_name}: {}% referral reward",
                    f64::from(self.percent_bps) / 100.0
                ),
                kind: mkt::DiscountKind::Percentage as i32,
                percent_bps: self.percent_bps as i32,
                ..mkt::DiscountRule::default()
            };
            self.rule_id = Some(
                core.marketing
                    .create_rule_in(txn, workspace_id, &rule, now)
                    .await?,
            );
        }
        Ok(())
    }
}

/// Coupons issued in a transaction, handed to marketing once it commits.
#[derive(Default)]
pub struct IssuedCoupons(Mutex<Vec<IssuedCoupon>>);

impl IssuedCoupons {
    fn push(&self, coupon: IssuedCoupon) {
        if let Ok(mut coupons) = self.0.lock() {
            coupons.push(coupon);
        }
    }

    /// Forgets what an attempt that rolled back issued.
    pub fn clear(&self) {
        if let Ok(mut coupons) = self.0.lock() {
            coupons.clear();
        }
    }

    pub async fn committed(&self, core: &Growth, workspace_id: Uuid) {
        let coupons = self
            .0
            .lock()
            .map(|mut coupons| std::mem::take(&mut *coupons))
            .unwrap_or_default();
        if !coupons.is_empty() {
            core.marketing
                .coupons_committed(workspace_id, coupons)
                .await;
        }
    }
}

/// Credits `amount` of `asset` from the workspace's promotional account into `receiver`'s wallet
/// (ledger code `code`, reference `reference`); returns the transfer's id.
#[allow(clippy::too_many_arguments)]
pub async fn credit_wallet(
    txn: &WriteTxn,
    workspace_id: Uuid,
    receiver: Uuid,
    asset: &str,
    amount: i64,
    code: &str,
    reference: String,
    now: i64,
) -> Result<Uuid, ServiceError> {
    match Ledger::move_in(
        &**txn,
        workspace_id,
        &SystemAccount::Promotional,
        &SystemAccount::Wallet(receiver),
        asset,
        amount,
        code,
        reference,
        now,
    )
    .await?
    {
        Ok(id) => Ok(id),
        Err(TransferResult::Overflows) => Err(ServiceError::failed_precondition(
            DOMAIN,
            "AMOUNT_OVERFLOW",
            format!("wallets/{receiver}"),
            "this would take the wallet past the ledger's limit",
        )),
        Err(other) => Err(ServiceError::internal(format!(
            "growth wallet credit failed: {other:?}"
        ))),
    }
}

/// Who receives a reward, and the ledger reference of a credit reward.
pub struct Receiver {
    pub workspace_id: Uuid,
    pub customer_id: Uuid,
    pub reference: String,
}

/// Hands `reward` to the receiver in the open transaction.
pub async fn issue(
    core: &Growth,
    txn: &WriteTxn,
    reward: &RewardDef,
    receiver: Receiver,
    coupons: &IssuedCoupons,
    now: i64,
) -> Result<Issued, ServiceError> {
    let Receiver {
        workspace_id,
        customer_id: receiver,
        reference,
    } = receiver;
    let mut issued = Issued {
        kind: reward.kind,
        ..Issued::default()
    };
    if reward.credits > 0 {
        issued.credits = reward.credits;
        issued.transfer_id = Some(
            credit_wallet(
                txn,
                workspace_id,
                receiver,
                CREDITS,
                reward.credits,
                "REFERRAL_REWARD",
                reference,
                now,
            )
            .await?,
        );
    } else if let Some(rule_id) = reward.rule_id {
        let coupon = core
            .marketing
            .issue_customer_coupon(txn, workspace_id, rule_id, receiver, now)
            .await?;
        issued.coupon_code = coupon.code.clone();
        coupons.push(coupon);
    }
    Ok(issued)
}
