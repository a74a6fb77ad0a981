//! A promotion's life: created and funded from the factory's wallet, topped up, paused and
//! resumed, and completed (by its factory, at its end time, or when its budget is exhausted) with
//! what is left refunded. Each step is one database transaction with its ledger transfers.

use std::collections::BTreeMap;

use credits_ledger::domain::BALANCING_DEBIT;
use credits_ledger::{Ledger, NewTransfer, SystemAccount, TransferResult};
use kernel::money::CREDITS;
use kernel::{Principal, Role, ServiceError, WriteTxn};
use sea_orm::ActiveValue::Set;
use uuid::Uuid;

use crate::DOMAIN;
use crate::domain::{self, Status};
use crate::state::PromotionCore;
use crate::store::{self, promotion};

pub const PROMOTION_ALLOCATION: &str = "PROMOTION_ALLOCATION";
pub const PROMOTION_REFUND: &str = "PROMOTION_REFUND";

/// The ledger account holding a promotion's unspent budget.
pub fn budget_account(workspace_id: Uuid, promotion_id: Uuid) -> (SystemAccount, Uuid) {
    let kind = SystemAccount::Escrow(format!("promotion:{promotion_id}"));
    let id = kind.id(workspace_id, CREDITS);
    (kind, id)
}

/// A transfer of credits a promotion moves; `reference` is the promotion.
pub(crate) fn transfer(
    id: Uuid,
    debit: Uuid,
    credit: Uuid,
    amount: i64,
    code: &str,
    reference: Uuid,
    flags: u32,
) -> NewTransfer {
    NewTransfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        code: code.to_owned(),
        reference: reference.to_string(),
        pending_id: None,
        timeout_seconds: 0,
        flags,
        metadata: BTreeMap::new(),
    }
}

pub(crate) fn promotion_not_found() -> ServiceError {
    ServiceError::not_found(DOMAIN, "PROMOTION_NOT_FOUND", "promotion")
}

/// What a caller may do with a promotion: its factory, or an admin/ops of the workspace.
pub fn may_manage(principal: &Principal, row: &promotion::Model) -> bool {
    row.factory_id == principal.subject || principal.has_any_role(&[Role::Admin, Role::Ops])
}

/// The promotion, locked, if the caller may manage it; otherwise exactly like a missing one.
async fn lock_managed(
    txn: &WriteTxn,
    principal: &Principal,
    promotion_id: Uuid,
) -> Result<promotion::Model, ServiceError> {
    store::lock_promotion(&**txn, principal.workspace_id, promotion_id)
        .await?
        .filter(|row| may_manage(principal, row))
        .ok_or_else(promotion_not_found)
}

/// Inputs of a new promotion, validated by the service.
pub struct NewPromotion {
    pub material_id: Uuid,
    pub credits: i64,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub project_types: Vec<String>,
}

impl PromotionCore {
    /// Creates a promotion and moves its credits from the factory's wallet into its budget, in one
    /// transaction; INSUFFICIENT_CREDITS leaves nothing behind.
    pub async fn create_promotion(
        &self,
        txn: &WriteTxn,
        principal: &Principal,
        request: &NewPromotion,
    ) -> Result<promotion::Model, ServiceError> {
        let workspace_id = principal.workspace_id;
        let now = self.now();
        let material = store::get_material(&**txn, workspace_id, request.material_id)
            .await?
            .ok_or_else(|| ServiceError::not_found(DOMAIN, "MATERIAL_NOT_FOUND", "material"))?;
        let Some(factory_id) = material.owner_id else {
            return Err(ServiceError::failed_precondition(
                DOMAIN,
                "MATERIAL_HAS_NO_OWNER",
                format!("material:{}", material.id),
                "platform materials cannot be promoted",
            ));
        };
        let is_admin = principal.has_any_role(&[Role::Admin, Role::Ops]);
        if factory_id != principal.subject && !is_admin {
            return Err(ServiceError::permission_denied(
                DOMAIN,
                "NOT_MATERIAL_OWNER",
                "only the factory that owns a material may promote it",
            ));
        }
        let id = Uuid::now_v7();
        let status = if request.start_time.is_some_and(|start| start > now) {
            Status::Pending
        } else {
            Status::Active
        };
        let row = promotion::Model {
            id,
            workspace_id,
            material_id: material.id,
            factory_id,
            material_type: material.material_type.clone(),
            status: status as i32,
            credits_allocated: request.credits,
            credits_spent: 0,
            credits_refunded: 0,
            impression_count: 0,
            usage_count: 0,
            project_types: store::json_list(&request.project_types),
            start_time: request.start_time,
            end_time: request.end_time,
            created_at: now,
            updated_at: now,
        };
        store::insert_promotion(&**txn, &row).await?;
        self.fund(txn, workspace_id, factory_id, id, request.credits, now)
            .await?;
        store::append_audit(
            &**txn,
            workspace_id,
            id,
            Some(principal.subject),
            "CREATED",
            format!("credits={} status={status:?}", request.credits),
            now,
        )
        .await?;
        store::bump_version(&**txn, workspace_id).await?;
        Ok(row)
    }

    /// Moves `credits` from the factory's wallet to the promotion's budget.
    async fn fund(
        &self,
        txn: &WriteTxn,
        workspace_id: Uuid,
        factory_id: Uuid,
        promotion_id: Uuid,
        credits: i64,
        now: i64,
    ) -> Result<(), ServiceError> {
        let (budget_kind, budget) = budget_account(workspace_id, promotion_id);
        credits_ledger::accounts::ensure_system_account(
            &**txn,
            workspace_id,
            &budget_kind,
            CREDITS,
            now,
        )
        .await?;
        let wallet = SystemAccount::Wallet(factory_id).id(workspace_id, CREDITS);
        let allocation = transfer(
            Uuid::new_v4(),
            wallet,
            budget,
            credits,
            PROMOTION_ALLOCATION,
            promotion_id,
            0,
        );
        match Ledger::apply_in(&**txn, workspace_id, &[allocation], now)
            .await?
            .first()
        {
            Some(TransferResult::Created) => Ok(()),
            Some(TransferResult::ExceedsCredits | TransferResult::DebitAccountNotFound) => {
                let available =
                    match credits_ledger::queries::get_account(&**txn, workspace_id, wallet).await?
                    {
                        Some(wallet) => {
                            wallet.credits_posted - wallet.debits_posted - wallet.debits_pending
                        }
                        None => 0,
                    };
                Err(ServiceError::failed_precondition(
                    DOMAIN,
                    "INSUFFICIENT_CREDITS",
                    format!("factory:{factory_id}"),
                    format!(
                        "the factory's wallet has {available} credits available and this needs {credits}; buy at least {} more (LedgerService.PurchaseCredits) or allocate less",
                        credits.saturating_sub(available)
                    ),
                )
                .with_metadata("available", available.to_string())
                .with_metadata("needed", credits.to_string()))
            }
            Some(TransferResult::Overflows) => Err(ServiceError::failed_precondition(
                DOMAIN,
                "AMOUNT_OVERFLOW",
                format!("promotion:{promotion_id}"),
                "this allocation would take the promotion's budget past the ledger's limit",
            )),
            other => Err(ServiceError::internal(format!(
                "allocation transfer failed: {other:?}"
            ))),
        }
    }

    /// Adds credits to a promotion that has not completed.
    pub async fn allocate(
        &self,
        txn: &WriteTxn,
        principal: &Principal,
        promotion_id: Uuid,
        credits: i64,
    ) -> Result<promotion::Model, ServiceError> {
        let workspace_id = principal.workspace_id;
        let now = self.now();
        let row = lock_managed(txn, principal, promotion_id).await?;
        let stored = Status::from_i32(row.status).unwrap_or(Status::Completed);
        if domain::effective_status(stored, row.start_time, row.end_time, now) == Status::Completed
        {
            return Err(ServiceError::failed_precondition(
                DOMAIN,
                "PROMOTION_COMPLETED",
                format!("promotion:{promotion_id}"),
                "a completed promotion cannot receive credits",
            ));
        }
        let allocated = row.credits_allocated.checked_add(credits).ok_or_else(|| {
            ServiceError::failed_precondition(
                DOMAIN,
                "AMOUNT_OVERFLOW",
                format!("promotion:{promotion_id}"),
                "this allocation would take the promotion's total past the ledger's limit",
            )
        })?;
        self.fund(
            txn,
            workspace_id,
            row.factory_id,
            promotion_id,
            credits,
            now,
        )
        .await?;
        let updated = store::update_promotion(
            &**txn,
            workspace_id,
            promotion_id,
            promotion::ActiveModel {
                credits_allocated: Set(allocated),
                updated_at: Set(now),
                ..Default::default()
            },
        )
        .await?;
        store::append_audit(
            &**txn,
            workspace_id,
            promotion_id,
            Some(principal.subject),
            "ALLOCATED",
            format!("credits={credits}"),
            now,
        )
        .await?;
        store::bump_version(&**txn, workspace_id).await?;
        Ok(updated)
    }

    /// Pauses (INACTIVE), resumes (ACTIVE) or completes (COMPLETED, refunding what is left).
    pub async fn set_status(
        &self,
        txn: &WriteTxn,
        principal: &Principal,
        promotion_id: Uuid,
        wanted: Status,
    ) -> Result<promotion::Model, ServiceError> {
        let workspace_id = principal.workspace_id;
        let now = self.now();
        let row = lock_managed(txn, principal, promotion_id).await?;
        let stored = Status::from_i32(row.status).unwrap_or(Status::Completed);
        if stored == Status::Completed {
            return Err(ServiceError::failed_precondition(
                DOMAIN,
                "PROMOTION_COMPLETED",
                format!("promotion:{promotion_id}"),
                "a completed promotion cannot change status",
            ));
        }
        let updated = match wanted {
            Status::Completed => {
                self.complete(txn, &row, Some(principal.subject), "COMPLETED", now)
                    .await?
            }
            Status::Inactive | Status::Active => {
                let next = if wanted == Status::Active
                    && row.start_time.is_some_and(|start| start > now)
                {
                    Status::Pending
                } else {
                    wanted
                };
                let updated = store::update_promotion(
                    &**txn,
                    workspace_id,
                    promotion_id,
                    promotion::ActiveModel {
                        status: Set(next as i32),
                        updated_at: Set(now),
                        ..Default::default()
                    },
                )
                .await?;
                let action = if wanted == Status::Active {
                    "RESUMED"
                } else {
                    "PAUSED"
                };
                store::append_audit(
                    &**txn,
                    workspace_id,
                    promotion_id,
                    Some(principal.subject),
                    action,
                    String::new(),
                    now,
                )
                .await?;
                updated
            }
            Status::Pending => {
                return Err(ServiceError::invalid_field(
                    DOMAIN,
                    "status",
                    "must be ACTIVE, INACTIVE or COMPLETED",
                ));
            }
        };
        store::bump_version(&**txn, workspace_id).await?;
        Ok(updated)
    }

    /// Completes a promotion and refunds its remaining budget to the factory. The refund's id is
    /// derived from the promotion, so a promotion is refunded at most once.
    pub(crate) async fn complete(
        &self,
        txn: &WriteTxn,
        row: &promotion::Model,
        actor: Option<Uuid>,
        action: &str,
        now: i64,
    ) -> Result<promotion::Model, ServiceError> {
        let remaining = row.credits_remaining().max(0);
        if remaining > 0 {
            let (_, budget) = budget_account(row.workspace_id, row.id);
            let wallet = SystemAccount::Wallet(row.factory_id).id(row.workspace_id, CREDITS);
            let refund_id = kernel::ids::derived(&row.workspace_id, &format!("refund:{}", row.id));
            let refund = transfer(
                refund_id,
                budget,
                wallet,
                remaining,
                PROMOTION_REFUND,
                row.id,
                BALANCING_DEBIT,
            );
            match Ledger::apply_in(&**txn, row.workspace_id, &[refund], now)
                .await?
                .first()
            {
                Some(TransferResult::Created) => {}
                other => {
                    return Err(ServiceError::internal(format!(
                        "refund transfer failed: {other:?}"
                    )));
                }
            }
        }
        let updated = store::update_promotion(
            &**txn,
            row.workspace_id,
            row.id,
            promotion::ActiveModel {
                status: Set(Status::Completed as i32),
                credits_refunded: Set(row.credits_refunded + remaining),
                updated_at: Set(now),
                ..Default::default()
            },
        )
        .await?;
        store::append_audit(
            &**txn,
            row.workspace_id,
            row.id,
            actor,
            action,
            format!("refunded={remaining}"),
            now,
        )
        .await?;
        store::bump_version(&**txn, row.workspace_id).await?;
        crate::events::completed(txn, &updated, action, remaining, now).await?;
        tracing::info!(promotion_id = %row.id, refunded = remaining, action, "promotion completed");
        Ok(updated)
    }

    /// Completes one promotion if it is due: past its end time, or running with a budget that
    /// cannot pay another charge. Returns whether it completed.
    pub(crate) async fn complete_due(
        &self,
        workspace_id: Uuid,
        promotion_id: Uuid,
    ) -> Result<bool, ServiceError> {
        let completed = self
            .context
            .write(|txn| async move {
                let now = self.now();
                let Some(row) = store::lock_promotion(&*txn, workspace_id, promotion_id).await?
                else {
                    return Ok((txn, false));
                };
                let stored = Status::from_i32(row.status).unwrap_or(Status::Completed);
                if stored == Status::Completed {
                    return Ok((txn, false));
                }
                let effective = domain::effective_status(stored, row.start_time, row.end_time, now);
                let action = if effective == Status::Completed {
                    "ENDED"
                } else {
                    let settings = store::promotion_settings(&*txn, workspace_id).await?;
                    if effective != Status::Active
                        || !domain::is_exhausted(row.credits_remaining(), &settings)
                    {
                        return Ok((txn, false));
                    }
                    "BUDGET_EXHAUSTED"
                };
                self.complete(&txn, &row, None, action, now).await?;
                Ok((txn, true))
            })
            .await?;
        if completed {
            self.snapshots.exclude(promotion_id);
            self.snapshots.invalidate(workspace_id);
        }
        Ok(completed)
    }
}
