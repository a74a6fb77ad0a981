//! Promotion operations that move credits: create (allocate), top up, pause/resume/complete (refund),
//! usage and impression charges. Each is one database transaction with its ledger transfers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use credits_ledger::domain::BALANCING_DEBIT;
use credits_ledger::{Ledger, NewTransfer, SystemAccount, TransferResult};
use kernel::money::CREDITS;
use kernel::{Context, ErrorCode, ServiceError, WriteTxn};
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, QueryFilter};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::DOMAIN;
use crate::domain::{self, Decision, DecisionSigner, Status};
use crate::snapshot::SnapshotCache;
use crate::store::{self, impression, promotion, usage};

pub const PROMOTION_ALLOCATION: &str = "PROMOTION_ALLOCATION";
pub const PROMOTION_USE: &str = "PROMOTION_USE";
pub const PROMOTION_IMPRESSION: &str = "PROMOTION_IMPRESSION";
pub const PROMOTION_REFUND: &str = "PROMOTION_REFUND";

/// How far ahead of this replica's clock another replica's may run when it issued a decision.
const MAX_CLOCK_SKEW_MICROS: i64 = 60 * 1_000_000;

/// The ledger account holding a promotion's unspent budget.
pub fn budget_account(workspace_id: Uuid, promotion_id: Uuid) -> (SystemAccount, Uuid) {
    let kind = SystemAccount::Escrow(format!("promotion:{promotion_id}"));
    let id = kind.id(workspace_id, CREDITS);
    (kind, id)
}

/// A promoted pick, on its way to the impression writer.
#[derive(Clone, Debug)]
pub struct ImpressionEvent {
    pub workspace_id: Uuid,
    pub promotion_id: Uuid,
    pub decision_id: Uuid,
    pub at: i64,
}

/// Shared state of the material promotion module.
pub struct PromotionCore {
    pub(crate) context: Context,
    pub(crate) snapshots: Arc<SnapshotCache>,
    pub(crate) signer: DecisionSigner,
    impressions: mpsc::Sender<ImpressionEvent>,
    /// A seeded generator when a seed was configured (tests fix it); otherwise selection draws from
    /// the thread-local CSPRNG.
    seeded_rng: Option<std::sync::Mutex<rand::rngs::StdRng>>,
}

fn transfer(
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

fn insufficient_credits(factory_id: Uuid) -> ServiceError {
    ServiceError::failed_precondition(
        DOMAIN,
        "INSUFFICIENT_CREDITS",
        format!("factory:{factory_id}"),
        "the factory's credits do not cover this allocation",
    )
}

fn promotion_not_found() -> ServiceError {
    ServiceError::not_found(DOMAIN, "PROMOTION_NOT_FOUND", "promotion")
}

/// What a caller may do with a promotion: its factory, or an admin/ops of the workspace.
pub fn may_manage(principal: &kernel::Principal, row: &promotion::Model) -> bool {
    row.factory_id == principal.subject
        || principal.has_any_role(&[kernel::Role::Admin, kernel::Role::Ops])
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
    /// Starts the impression writer; call inside a tokio runtime.
    pub fn start(
        context: Context,
        decision_secret: &[u8],
        selection_seed: Option<u64>,
    ) -> Arc<PromotionCore> {
        let (sender, receiver) = mpsc::channel(65_536);
        let core = Arc::new(PromotionCore {
            snapshots: Arc::new(SnapshotCache::new(context.clone())),
            signer: DecisionSigner::new(decision_secret),
            context,
            impressions: sender,
            seeded_rng: selection_seed.map(|seed| {
                std::sync::Mutex::new(<rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(
                    seed,
                ))
            }),
        });
        tokio::spawn(write_impressions(Arc::downgrade(&core), receiver));
        core
    }

    /// Runs `draw` with the selection random number generator.
    pub fn with_rng<T>(&self, draw: impl FnOnce(&mut dyn rand::RngCore) -> T) -> T {
        match &self.seeded_rng {
            Some(seeded) => {
                let mut rng = seeded
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                draw(&mut *rng)
            }
            None => draw(&mut rand::rng()),
        }
    }

    pub fn snapshots(&self) -> &Arc<SnapshotCache> {
        &self.snapshots
    }

    pub fn signer(&self) -> &DecisionSigner {
        &self.signer
    }

    fn now(&self) -> i64 {
        kernel::clock::to_micros(self.context.clock.now())
    }

    /// Snapshot refresher and the sweeper that completes promotions past their end time.
    pub async fn run_background(self: Arc<Self>) {
        let refresher = tokio::spawn(
            self.snapshots
                .clone()
                .run_refresher(Duration::from_millis(500)),
        );
        let mut interval = tokio::time::interval(Duration::from_secs(2));
        loop {
            interval.tick().await;
            if let Err(error) = self.complete_ended().await {
                tracing::warn!(%error, "completing ended promotions failed");
            }
            if refresher.is_finished() {
                return;
            }
        }
    }

    /// Creates a promotion and moves its credits from the factory's wallet into its budget, in one
    /// transaction; INSUFFICIENT_CREDITS leaves nothing behind.
    pub async fn create_promotion(
        &self,
        txn: &WriteTxn,
        principal: &kernel::Principal,
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
        let is_admin = principal.has_any_role(&[kernel::Role::Admin, kernel::Role::Ops]);
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
        promotion::Entity::insert(promotion::ActiveModel::from(row.clone()))
            .exec_without_returning(&**txn)
            .await?;
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
                Err(insufficient_credits(factory_id))
            }
            other => Err(ServiceError::internal(format!(
                "allocation transfer failed: {other:?}"
            ))),
        }
    }

    /// Adds credits to a promotion that has not completed.
    pub async fn allocate(
        &self,
        txn: &WriteTxn,
        principal: &kernel::Principal,
        promotion_id: Uuid,
        credits: i64,
    ) -> Result<promotion::Model, ServiceError> {
        let workspace_id = principal.workspace_id;
        let now = self.now();
        let row = store::lock_promotion(&**txn, workspace_id, promotion_id)
            .await?
            .filter(|row| may_manage(principal, row))
            .ok_or_else(promotion_not_found)?;
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
        self.fund(
            txn,
            workspace_id,
            row.factory_id,
            promotion_id,
            credits,
            now,
        )
        .await?;
        let updated = promotion::Entity::update(promotion::ActiveModel {
            id: Set(promotion_id),
            credits_allocated: Set(row.credits_allocated.checked_add(credits).ok_or_else(
                || {
                    ServiceError::invalid_field(
                        DOMAIN,
                        "credits",
                        "would overflow the promotion's allocation",
                    )
                },
            )?),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&**txn)
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
        principal: &kernel::Principal,
        promotion_id: Uuid,
        wanted: Status,
    ) -> Result<promotion::Model, ServiceError> {
        let workspace_id = principal.workspace_id;
        let now = self.now();
        let row = store::lock_promotion(&**txn, workspace_id, promotion_id)
            .await?
            .filter(|row| may_manage(principal, row))
            .ok_or_else(promotion_not_found)?;
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
                let updated = promotion::Entity::update(promotion::ActiveModel {
                    id: Set(promotion_id),
                    status: Set(next as i32),
                    updated_at: Set(now),
                    ..Default::default()
                })
                .exec(&**txn)
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

    /// Completes a promotion and refunds its remaining budget to the factory.
    async fn complete(
        &self,
        txn: &WriteTxn,
        row: &promotion::Model,
        actor: Option<Uuid>,
        action: &str,
        now: i64,
    ) -> Result<promotion::Model, ServiceError> {
        let remaining = row.credits_remaining();
        if remaining > 0 {
            let (_, budget) = budget_account(row.workspace_id, row.id);
            let wallet = SystemAccount::Wallet(row.factory_id).id(row.workspace_id, CREDITS);
            let refund_id = Uuid::new_v5(&row.id, b"refund");
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
        let updated = promotion::Entity::update(promotion::ActiveModel {
            id: Set(row.id),
            status: Set(Status::Completed as i32),
            credits_refunded: Set(row.credits_refunded + Ord::max(remaining, 0)),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&**txn)
        .await?;
        store::append_audit(
            &**txn,
            row.workspace_id,
            row.id,
            actor,
            action,
            format!("refunded={}", Ord::max(remaining, 0)),
            now,
        )
        .await?;
        tracing::info!(promotion_id = %row.id, refunded = remaining, action, "promotion completed");
        Ok(updated)
    }

    /// Completes every promotion whose end time has passed.
    pub async fn complete_ended(&self) -> Result<usize, ServiceError> {
        let now = self.now();
        let due = promotion::Entity::find()
            .filter(promotion::Column::Status.is_in([
                Status::Pending as i32,
                Status::Active as i32,
                Status::Inactive as i32,
            ]))
            .filter(promotion::Column::EndTime.lte(now))
            .all(self.context.db.connection())
            .await?;
        let db = &self.context.db;
        for candidate in &due {
            db.with_retry(|| async {
                let txn = db.begin_write().await?;
                let Some(row) =
                    store::lock_promotion(&*txn, candidate.workspace_id, candidate.id).await?
                else {
                    return Ok(());
                };
                if row.status == Status::Completed as i32 {
                    return Ok(());
                }
                self.complete(&txn, &row, None, "ENDED", now).await?;
                store::bump_version(&*txn, row.workspace_id).await?;
                txn.commit().await
            })
            .await?;
            self.snapshots.exclude(candidate.id);
        }
        Ok(due.len())
    }

    /// Queues an impression; if the writer is saturated the impression is dropped (it can only
    /// cost the platform an impression charge, never charge a factory wrongly).
    pub fn record_impression(&self, event: ImpressionEvent) {
        if self.impressions.try_send(event).is_err() {
            tracing::warn!("impression queue full; impression dropped");
        }
    }

    /// Records that the final model used these decisions' materials, once per decision within the
    /// usage window, charging promoted ones. Returns the rejected decision ids and the promotions
    /// whose budget ran out (now completed).
    pub async fn report_usage(
        &self,
        txn: &WriteTxn,
        workspace_id: Uuid,
        decision_ids: &[String],
        cost_per_use: i64,
        window_seconds: i64,
    ) -> Result<(Vec<String>, Vec<Uuid>), ServiceError> {
        let now = self.now();
        let mut rejected = Vec::new();
        let mut exhausted = Vec::new();
        for text in decision_ids {
            let Some(decision) = self
                .signer
                .decode(text)
                .filter(|d| d.workspace_id == workspace_id)
            else {
                rejected.push(text.clone());
                continue;
            };
            if now
                > decision
                    .issued_at
                    .saturating_add(window_seconds.saturating_mul(1_000_000))
                // Issued in the future: more than replica clocks can plausibly disagree by.
                || now.saturating_add(MAX_CLOCK_SKEW_MICROS) < decision.issued_at
            {
                rejected.push(text.clone());
                continue;
            }
            match self.use_decision(txn, &decision, cost_per_use, now).await? {
                UseOutcome::Recorded {
                    exhausted: Some(promotion_id),
                } => exhausted.push(promotion_id),
                UseOutcome::Recorded { exhausted: None } => {}
                UseOutcome::AlreadyReported => rejected.push(text.clone()),
            }
        }
        for promotion_id in &exhausted {
            if let Some(row) = store::lock_promotion(&**txn, workspace_id, *promotion_id).await?
                && row.status != Status::Completed as i32
            {
                self.complete(txn, &row, None, "BUDGET_EXHAUSTED", now)
                    .await?;
                store::bump_version(&**txn, workspace_id).await?;
            }
        }
        Ok((rejected, exhausted))
    }

    async fn use_decision(
        &self,
        txn: &WriteTxn,
        decision: &Decision,
        cost_per_use: i64,
        now: i64,
    ) -> Result<UseOutcome, ServiceError> {
        let promotion_id = (!decision.promotion_id.is_nil()).then_some(decision.promotion_id);
        if usage::Entity::find_by_id(decision.id)
            .one(&**txn)
            .await?
            .is_some()
        {
            return Ok(UseOutcome::AlreadyReported);
        }
        let mut charge = 0;
        let mut exhausted = None;
        if let Some(promotion_id) = promotion_id
            && let Some(row) =
                store::lock_promotion(&**txn, decision.workspace_id, promotion_id).await?
        {
            let remaining = row.credits_remaining();
            if cost_per_use > 0
                && remaining >= cost_per_use
                && row.status != Status::Completed as i32
            {
                let (_, budget) = budget_account(decision.workspace_id, promotion_id);
                let revenue = SystemAccount::PlatformRevenue.id(decision.workspace_id, CREDITS);
                credits_ledger::accounts::ensure_system_account(
                    &**txn,
                    decision.workspace_id,
                    &SystemAccount::PlatformRevenue,
                    CREDITS,
                    now,
                )
                .await?;
                let id = Uuid::new_v5(&decision.id, b"use");
                let spend = transfer(
                    id,
                    budget,
                    revenue,
                    cost_per_use,
                    PROMOTION_USE,
                    promotion_id,
                    0,
                );
                match Ledger::apply_in(&**txn, decision.workspace_id, &[spend], now)
                    .await?
                    .first()
                {
                    Some(TransferResult::Created) => charge = cost_per_use,
                    other => {
                        return Err(ServiceError::internal(format!(
                            "usage charge failed: {other:?}"
                        )));
                    }
                }
            }
            if row.credits_remaining() - charge < Ord::max(cost_per_use, 1) {
                exhausted = Some(promotion_id);
            }
            promotion::Entity::update_many()
                .col_expr(
                    promotion::Column::UsageCount,
                    Expr::col(promotion::Column::UsageCount).add(1),
                )
                .col_expr(
                    promotion::Column::CreditsSpent,
                    Expr::col(promotion::Column::CreditsSpent).add(charge),
                )
                .col_expr(promotion::Column::UpdatedAt, Expr::value(now))
                .filter(promotion::Column::Id.eq(promotion_id))
                .exec(&**txn)
                .await?;
        }
        let row = usage::ActiveModel {
            decision_id: Set(decision.id),
            workspace_id: Set(decision.workspace_id),
            promotion_id: Set(promotion_id),
            material_id: Set(decision.material_id),
            charge: Set(charge),
            created_at: Set(now),
        };
        match usage::Entity::insert(row)
            .exec_without_returning(&**txn)
            .await
        {
            Ok(_) => Ok(UseOutcome::Recorded { exhausted }),
            // A concurrent report of the same decision committed first: run again and see it.
            Err(error) if kernel::db::is_unique_violation(&error) => {
                Err(ServiceError::retryable_conflict(error))
            }
            Err(error) => Err(error.into()),
        }
    }
}

enum UseOutcome {
    Recorded { exhausted: Option<Uuid> },
    AlreadyReported,
}

/// Writes queued impressions in batches: rows, counters and (when impressions cost credits)
/// charges capped at what each budget still holds, one transaction per batch.
async fn write_impressions(
    core: std::sync::Weak<PromotionCore>,
    mut receiver: mpsc::Receiver<ImpressionEvent>,
) {
    while let Some(first) = receiver.recv().await {
        let Some(core) = core.upgrade() else {
            return;
        };
        let context = &core.context;
        let mut batch = vec![first];
        while batch.len() < 5_000 {
            match receiver.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        let db = &context.db;
        let outcome = db
            .with_retry(|| async {
                let txn = db.begin_write().await?;
                let now = kernel::clock::to_micros(context.clock.now());
                let mut by_promotion: HashMap<(Uuid, Uuid), Vec<&ImpressionEvent>> = HashMap::new();
                for event in &batch {
                    by_promotion
                        .entry((event.workspace_id, event.promotion_id))
                        .or_default()
                        .push(event);
                }
                let mut keys: Vec<_> = by_promotion.keys().copied().collect();
                keys.sort();
                let mut exhausted = Vec::new();
                for (workspace_id, promotion_id) in keys {
                    let events = &by_promotion[&(workspace_id, promotion_id)];
                    let settings = match kernel::workspace::get(&*txn, workspace_id).await? {
                        Some(row) => kernel::workspace::settings_of(&row)?.promotion,
                        None => kernel::workspace::PromotionSettings::default(),
                    };
                    let cost = settings.cost_per_impression;
                    let min_charge = Ord::max(Ord::max(settings.cost_per_use, cost), 1);
                    let Some(row) =
                        store::lock_promotion(&*txn, workspace_id, promotion_id).await?
                    else {
                        continue;
                    };
                    let chargeable = if cost > 0 {
                        Ord::min(row.credits_remaining() / cost, events.len() as i64)
                    } else {
                        0
                    };
                    if chargeable > 0 {
                        let (_, budget) = budget_account(workspace_id, promotion_id);
                        credits_ledger::accounts::ensure_system_account(
                            &*txn,
                            workspace_id,
                            &SystemAccount::PlatformRevenue,
                            CREDITS,
                            now,
                        )
                        .await?;
                        let revenue = SystemAccount::PlatformRevenue.id(workspace_id, CREDITS);
                        let spend = transfer(
                            Uuid::new_v4(),
                            budget,
                            revenue,
                            chargeable * cost,
                            PROMOTION_IMPRESSION,
                            promotion_id,
                            0,
                        );
                        match Ledger::apply_in(&*txn, workspace_id, &[spend], now)
                            .await?
                            .first()
                        {
                            Some(TransferResult::Created) => {}
                            other => {
                                return Err(ServiceError::internal(format!(
                                    "impression charge failed: {other:?}"
                                )));
                            }
                        }
                    }
                    let rows: Vec<impression::ActiveModel> = events
                        .iter()
                        .enumerate()
                        .map(|(index, event)| impression::ActiveModel {
                            decision_id: Set(event.decision_id),
                            workspace_id: Set(workspace_id),
                            promotion_id: Set(promotion_id),
                            charge: Set(if (index as i64) < chargeable { cost } else { 0 }),
                            created_at: Set(event.at),
                        })
                        .collect();
                    for chunk in rows.chunks(500) {
                        impression::Entity::insert_many(chunk.to_vec())
                            .exec_without_returning(&*txn)
                            .await?;
                    }
                    promotion::Entity::update_many()
                        .col_expr(
                            promotion::Column::ImpressionCount,
                            Expr::col(promotion::Column::ImpressionCount).add(events.len() as i64),
                        )
                        .col_expr(
                            promotion::Column::CreditsSpent,
                            Expr::col(promotion::Column::CreditsSpent).add(chargeable * cost),
                        )
                        .filter(promotion::Column::Id.eq(promotion_id))
                        .exec(&*txn)
                        .await?;
                    // A budget that cannot pay one more charge ends the promotion now.
                    if row.status != Status::Completed as i32
                        && row.credits_remaining() - chargeable * cost < min_charge
                        && let Some(current) =
                            store::lock_promotion(&*txn, workspace_id, promotion_id).await?
                    {
                        core.complete(&txn, &current, None, "BUDGET_EXHAUSTED", now)
                            .await?;
                        store::bump_version(&*txn, workspace_id).await?;
                        exhausted.push((workspace_id, promotion_id));
                    }
                }
                txn.commit().await?;
                Ok(exhausted)
            })
            .await;
        if let Ok(exhausted) = &outcome {
            for (workspace_id, promotion_id) in exhausted {
                core.snapshots.exclude(*promotion_id);
                core.snapshots.invalidate(*workspace_id);
            }
        }
        if let Err(error) = outcome {
            if error.code() != ErrorCode::Internal {
                tracing::warn!(%error, impressions = batch.len(), "impression batch lost");
            } else {
                tracing::error!(%error, impressions = batch.len(), "impression batch lost");
            }
        }
    }
}
