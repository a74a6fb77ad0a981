//! How a promotion is charged. A use (ReportUsage) and an impression (the impression writer, or
//! ReportUsage when it arrives first) each move credits from the promotion's budget to platform
//! revenue through the ledger. The transfer id is derived from the decision, and the impression or
//! use row is keyed by it, so each is recorded and charged at most once whatever is retried. A
//! charge that leaves a budget unable to pay another ([`domain::is_exhausted`]) completes the
//! promotion and refunds the rest.

use std::collections::HashSet;

use crate::settings::PromotionSettings;
use credits_ledger::{Ledger, SystemAccount, TransferResult};
use kernel::money::CREDITS;
use kernel::{ServiceError, WriteTxn};
use sea_orm::ActiveValue::Set;
use uuid::Uuid;

use crate::domain::{self, Decision, Status};
use crate::impressions::ImpressionEvent;
use crate::lifecycle::{budget_account, transfer};
use crate::state::{Item, PromotionCore};
use crate::store::{self, impression, promotion, usage};

pub const PROMOTION_USE: &str = "PROMOTION_USE";
pub const PROMOTION_IMPRESSION: &str = "PROMOTION_IMPRESSION";

/// Why ReportUsage did not accept a decision; numbered as `promo.promotion.v1.UsageRejection`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Rejection {
    /// Not a decision id this platform issued to this workspace (malformed, forged, foreign).
    UnknownDecision = 1,
    /// Its selection is older than `promotion.usage_window_seconds`.
    Expired = 2,
    /// Its use was reported before.
    AlreadyUsed = 3,
    /// The pick was not promoted: uses of regular picks are not charged or counted.
    NotPromoted = 4,
}

/// What ReportUsage did with a request's decisions.
#[derive(Clone, Debug, Default)]
pub struct UsageReport {
    pub accepted: usize,
    /// Each rejected decision id as given, with why.
    pub rejected: Vec<(String, Rejection)>,
    /// Promotions whose budget ran out (now completed).
    pub exhausted: Vec<Uuid>,
}

/// Whether a promotion in this state is being served and charged.
fn running(row: &promotion::Model, now: i64) -> bool {
    let stored = Status::from_i32(row.status).unwrap_or(Status::Completed);
    domain::effective_status(stored, row.start_time, row.end_time, now) == Status::Active
}

/// Completes the promotion if it runs and what it holds after this charge (`row` as locked before
/// it, minus `charged`) cannot pay another; only then is the row read again, to refund exactly
/// what is left.
async fn complete_if_exhausted(
    core: &PromotionCore,
    txn: &WriteTxn,
    row: &promotion::Model,
    charged: i64,
    settings: &PromotionSettings,
    now: i64,
) -> Result<bool, ServiceError> {
    if !running(row, now) || !domain::is_exhausted(row.credits_remaining() - charged, settings) {
        return Ok(false);
    }
    let Some(current) = store::lock_promotion(&**txn, row.workspace_id, row.id).await? else {
        return Ok(false);
    };
    core.complete(txn, &current, None, "BUDGET_EXHAUSTED", now)
        .await?;
    Ok(true)
}

/// Records one promotion's impressions that are not recorded yet and charges them (when
/// impressions cost credits) as far as the budget reaches. Returns whether the promotion is now
/// exhausted and completed.
pub(crate) async fn record_impressions(
    core: &PromotionCore,
    txn: &WriteTxn,
    item: Item,
    events: &[ImpressionEvent],
    settings: &PromotionSettings,
    now: i64,
) -> Result<bool, ServiceError> {
    let Item(workspace_id, promotion_id) = item;
    let Some(row) = store::lock_promotion(&**txn, workspace_id, promotion_id).await? else {
        return Ok(false);
    };
    let mut seen = HashSet::new();
    let unique: Vec<&ImpressionEvent> = events
        .iter()
        .filter(|event| seen.insert(event.decision_id))
        .collect();
    let ids: Vec<Uuid> = unique.iter().map(|event| event.decision_id).collect();
    let recorded = store::recorded_impressions(&**txn, workspace_id, &ids).await?;
    let fresh: Vec<&ImpressionEvent> = unique
        .into_iter()
        .filter(|event| !recorded.contains(&event.decision_id))
        .collect();
    if fresh.is_empty() {
        return Ok(false);
    }
    let cost = settings.cost_per_impression;
    let chargeable = if cost > 0 && row.status != Status::Completed as i32 {
        (row.credits_remaining().max(0) / cost).min(fresh.len() as i64) as usize
    } else {
        0
    };
    let mut charges = vec![0i64; fresh.len()];
    if chargeable > 0 {
        let (_, budget) = budget_account(workspace_id, promotion_id);
        let revenue = revenue_account(txn, workspace_id, now).await?;
        let transfers: Vec<_> = fresh[..chargeable]
            .iter()
            .map(|event| {
                transfer(
                    kernel::ids::derived(
                        &workspace_id,
                        &format!("impression:{}", event.decision_id),
                    ),
                    budget,
                    revenue,
                    cost,
                    PROMOTION_IMPRESSION,
                    promotion_id,
                    0,
                )
            })
            .collect();
        let results = Ledger::apply_in(&**txn, workspace_id, &transfers, now).await?;
        for (index, result) in results.into_iter().enumerate() {
            match result {
                TransferResult::Created => charges[index] = cost,
                // Charged by an earlier transaction: it is not charged again.
                TransferResult::Exists => {}
                other => {
                    return Err(ServiceError::internal(format!(
                        "impression charge of promotion {promotion_id} failed: {other:?}"
                    )));
                }
            }
        }
    }
    let rows: Vec<impression::ActiveModel> = fresh
        .iter()
        .zip(&charges)
        .map(|(event, charge)| impression::ActiveModel {
            workspace_id: Set(workspace_id),
            decision_id: Set(event.decision_id),
            promotion_id: Set(promotion_id),
            charge: Set(*charge),
            created_at: Set(event.at),
        })
        .collect();
    store::insert_all(&**txn, rows).await?;
    let spent: i64 = charges.iter().sum();
    store::add_to_counters(
        &**txn,
        workspace_id,
        promotion_id,
        fresh.len() as i64,
        0,
        spent,
        now,
    )
    .await?;
    complete_if_exhausted(core, txn, &row, spent, settings, now).await
}

async fn revenue_account(
    txn: &WriteTxn,
    workspace_id: Uuid,
    now: i64,
) -> Result<Uuid, ServiceError> {
    credits_ledger::accounts::ensure_system_account(
        &**txn,
        workspace_id,
        &SystemAccount::PlatformRevenue,
        CREDITS,
        now,
    )
    .await
}

impl PromotionCore {
    /// Records that the final model used these decisions' materials: each promoted decision once,
    /// within the usage window (counted from its impression), charging `cost_per_use`. Everything
    /// happens in the caller's transaction.
    pub(crate) async fn report_usage(
        &self,
        txn: &WriteTxn,
        workspace_id: Uuid,
        decision_ids: &[String],
        settings: &PromotionSettings,
    ) -> Result<UsageReport, ServiceError> {
        let now = self.now();
        let window = settings.usage_window_seconds.saturating_mul(1_000_000);
        let mut report = UsageReport::default();
        for text in decision_ids {
            let Some(decision) = self
                .signer
                .decode(text)
                .filter(|decision| decision.workspace_id == workspace_id)
            else {
                report
                    .rejected
                    .push((text.clone(), Rejection::UnknownDecision));
                continue;
            };
            if decision.promotion_id.is_nil() {
                report.rejected.push((text.clone(), Rejection::NotPromoted));
                continue;
            }
            if store::get_usage(&**txn, workspace_id, decision.id)
                .await?
                .is_some()
            {
                report.rejected.push((text.clone(), Rejection::AlreadyUsed));
                continue;
            }
            let item = Item(workspace_id, decision.promotion_id);
            match store::get_impression(&**txn, workspace_id, decision.id).await? {
                Some(impression) if now > impression.created_at.saturating_add(window) => {
                    report.rejected.push((text.clone(), Rejection::Expired));
                    continue;
                }
                Some(_) => {}
                // The use arrived before the impression writer wrote the pick: record it now; the
                // writer will find it recorded.
                None => {
                    let event = ImpressionEvent {
                        workspace_id,
                        promotion_id: decision.promotion_id,
                        decision_id: decision.id,
                        at: now,
                    };
                    if record_impressions(self, txn, item, &[event], settings, now).await? {
                        report.exhausted.push(decision.promotion_id);
                    }
                }
            }
            if self.charge_use(txn, &decision, settings, now).await? {
                report.exhausted.push(decision.promotion_id);
            }
            report.accepted += 1;
        }
        Ok(report)
    }

    /// Records one use and charges it while the promotion runs and can pay; returns whether the
    /// promotion is now exhausted and completed.
    async fn charge_use(
        &self,
        txn: &WriteTxn,
        decision: &Decision,
        settings: &PromotionSettings,
        now: i64,
    ) -> Result<bool, ServiceError> {
        let workspace_id = decision.workspace_id;
        let promotion_id = decision.promotion_id;
        let Some(row) = store::lock_promotion(&**txn, workspace_id, promotion_id).await? else {
            return Err(ServiceError::internal(format!(
                "promotion {promotion_id} of a signed decision is missing"
            )));
        };
        let cost = settings.cost_per_use;
        let mut charge = 0;
        if cost > 0 && row.status != Status::Completed as i32 && row.credits_remaining() >= cost {
            let (_, budget) = budget_account(workspace_id, promotion_id);
            let revenue = revenue_account(txn, workspace_id, now).await?;
            let id = kernel::ids::derived(&workspace_id, &format!("use:{}", decision.id));
            let spend = transfer(id, budget, revenue, cost, PROMOTION_USE, promotion_id, 0);
            match Ledger::apply_in(&**txn, workspace_id, &[spend], now)
                .await?
                .first()
            {
                Some(TransferResult::Created) => charge = cost,
                other => {
                    return Err(ServiceError::internal(format!(
                        "usage charge of promotion {promotion_id} failed: {other:?}"
                    )));
                }
            }
        }
        let used = usage::ActiveModel {
            workspace_id: Set(workspace_id),
            decision_id: Set(decision.id),
            promotion_id: Set(Some(promotion_id)),
            material_id: Set(decision.material_id),
            charge: Set(charge),
            created_at: Set(now),
        };
        store::insert_all(&**txn, vec![used]).await?;
        store::add_to_counters(&**txn, workspace_id, promotion_id, 0, 1, charge, now).await?;
        complete_if_exhausted(self, txn, &row, charge, settings, now).await
    }
}
