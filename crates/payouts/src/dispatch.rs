//! Sending approved payouts to the provider and recording what it said: paid (in-flight →
//! external), processing (its confirmation comes later), failed (in-flight → back to the wallet,
//! FAILED with the reason; the next run pays it again), or "try again" (the sweeper resends with
//! backoff). The payout's id is the provider's idempotency key, so a resend after a crash never
//! pays twice.

use std::collections::BTreeMap;

use credits_ledger::accounts::ensure_system_account;
use credits_ledger::{Ledger, NewTransfer, SystemAccount, TransferResult};
use std::collections::HashMap;

use kernel::ServiceError;
use kernel::events::NewEvent;
use proto::payouts::v1 as pb;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

use crate::entity::payout;
use crate::escrow::{CODE_RETURNED, CODE_SETTLED};
use crate::events;
use crate::provider::{ProviderOutcome, ProviderPayout};
use crate::state::Payouts;

/// The longest wait between two attempts to reach the provider.
const MAX_BACKOFF_SECONDS: i64 = 3600;

/// Approved payouts due to be sent (first time or again), oldest first.
pub async fn due<C: ConnectionTrait>(
    connection: &C,
    now: i64,
    limit: u64,
) -> Result<Vec<(Uuid, Uuid)>, ServiceError> {
    Ok(payout::Entity::find()
        .select_only()
        .columns([payout::Column::WorkspaceId, payout::Column::Id])
        .filter(payout::Column::Status.eq(pb::PayoutStatus::Approved as i32))
        .filter(payout::Column::NextAttemptAt.lte(now))
        .order_by_asc(payout::Column::NextAttemptAt)
        .limit(limit)
        .into_tuple::<(Uuid, Uuid)>()
        .all(connection)
        .await?)
}

/// Sends one approved payout (the sweeper's path); true when it changed.
pub async fn send(core: &Payouts, workspace_id: Uuid, id: Uuid) -> Result<bool, ServiceError> {
    let Some(row) = payout::Entity::find_by_id((workspace_id, id))
        .one(core.context.db.connection())
        .await?
    else {
        return Ok(false);
    };
    if row.status != pb::PayoutStatus::Approved as i32 {
        return Ok(false);
    }
    Ok(send_many(core, workspace_id, vec![row]).await? > 0)
}

/// Sends approved payouts of one workspace and records the outcomes in one transaction; returns
/// how many changed status.
pub async fn send_many(
    core: &Payouts,
    workspace_id: Uuid,
    rows: Vec<payout::Model>,
) -> Result<usize, ServiceError> {
    let mut outcomes = Vec::with_capacity(rows.len());
    for row in rows {
        let outcome = core
            .provider
            .send(&ProviderPayout {
                payout_id: row.id.to_string(),
                workspace_id: row.workspace_id.to_string(),
                provider_account_id: row.provider_account_id.clone(),
                currency: row.currency.clone(),
                amount: row.amount,
            })
            .await;
        outcomes.push((row.id, outcome));
    }
    let outcomes = &outcomes;
    core.context
        .write(|txn| async move {
            let now = core.now();
            let ids: Vec<Uuid> = outcomes.iter().map(|(id, _)| *id).collect();
            let rows: HashMap<Uuid, payout::Model> = payout::Entity::find()
                .filter(payout::Column::WorkspaceId.eq(workspace_id))
                .filter(payout::Column::Id.is_in(ids))
                .lock_exclusive()
                .all(&*txn)
                .await?
                .into_iter()
                .map(|row| (row.id, row))
                .collect();
            let mut settlement = Settlement::default();
            for (id, outcome) in outcomes {
                // Another sender recorded an outcome first.
                match rows.get(id) {
                    Some(row) if row.status == pb::PayoutStatus::Approved as i32 => {
                        settlement.add(&*txn, row, outcome, now).await?;
                    }
                    _ => {}
                }
            }
            let changed = settlement.changed;
            settlement.store(&*txn, workspace_id, now).await?;
            Ok((txn, changed))
        })
        .await
}

/// Records one provider outcome on one payout (a provider event's path).
pub(crate) async fn record<C: ConnectionTrait>(
    txn: &C,
    row: &payout::Model,
    outcome: &ProviderOutcome,
    now: i64,
) -> Result<(), ServiceError> {
    let mut settlement = Settlement::default();
    settlement.add(txn, row, outcome, now).await?;
    settlement.store(txn, row.workspace_id, now).await
}

/// A paid payout that came back (a bank return): FAILED with the reason, and its event; the
/// caller moves the money back to the wallet.
pub(crate) async fn mark_returned<C: ConnectionTrait>(
    txn: &C,
    row: &payout::Model,
    reason: &str,
    now: i64,
) -> Result<(), ServiceError> {
    kernel::db::update(
        txn,
        payout::ActiveModel {
            workspace_id: Set(row.workspace_id),
            id: Set(row.id),
            status: Set(pb::PayoutStatus::Failed as i32),
            failure_reason: Set(truncate(reason)),
            updated_at: Set(now),
            ..Default::default()
        },
    )
    .await?;
    kernel::events::append_many(
        txn,
        vec![failed_event(row, reason)],
        kernel::clock::from_micros(now),
    )
    .await
}

/// What a batch of outcomes does, gathered so that it is written with a few statements: payouts
/// paid without a reference of the provider's own in one update, every ledger transfer in one
/// batch, every event in one insert.
#[derive(Default)]
struct Settlement {
    paid_plainly: Vec<Uuid>,
    updates: Vec<payout::ActiveModel>,
    transfers: Vec<NewTransfer>,
    events: Vec<NewEvent>,
    /// In-flight and external account ids per currency.
    accounts: HashMap<String, (Uuid, Uuid)>,
    changed: usize,
}

impl Settlement {
    async fn add<C: ConnectionTrait>(
        &mut self,
        txn: &C,
        row: &payout::Model,
        outcome: &ProviderOutcome,
        now: i64,
    ) -> Result<(), ServiceError> {
        let mut update = payout::ActiveModel {
            workspace_id: Set(row.workspace_id),
            id: Set(row.id),
            updated_at: Set(now),
            ..Default::default()
        };
        match outcome {
            ProviderOutcome::Paid { reference } => {
                let (in_flight, external) = self.accounts(txn, row, now).await?;
                self.transfers
                    .push(transfer(row, in_flight, external, CODE_SETTLED));
                self.events.push(paid_event(row, reference));
                self.changed += 1;
                if reference.is_empty() {
                    self.paid_plainly.push(row.id);
                    return Ok(());
                }
                update.status = Set(pb::PayoutStatus::Paid as i32);
                update.provider_reference = Set(reference.clone());
            }
            ProviderOutcome::Processing { reference } => {
                update.status = Set(pb::PayoutStatus::Processing as i32);
                update.provider_reference = Set(reference.clone());
                self.changed += 1;
            }
            ProviderOutcome::Failed { reason } => {
                let (in_flight, _) = self.accounts(txn, row, now).await?;
                let wallet =
                    SystemAccount::Wallet(row.promoter_id).id(row.workspace_id, &row.currency);
                self.transfers
                    .push(transfer(row, in_flight, wallet, CODE_RETURNED));
                self.events.push(failed_event(row, reason));
                update.status = Set(pb::PayoutStatus::Failed as i32);
                update.failure_reason = Set(truncate(reason));
                self.changed += 1;
            }
            ProviderOutcome::Retry { reason } => {
                let attempts = row.attempts.saturating_add(1);
                let wait = 1i64
                    .checked_shl(attempts.clamp(0, 12) as u32)
                    .unwrap_or(MAX_BACKOFF_SECONDS)
                    .min(MAX_BACKOFF_SECONDS);
                update.attempts = Set(attempts);
                update.next_attempt_at = Set(now + wait * 1_000_000);
                update.failure_reason = Set(truncate(reason));
                tracing::warn!(payout_id = %row.id, attempts, %reason, "the payout provider could not be reached; retrying");
            }
        }
        self.updates.push(update);
        Ok(())
    }

    /// The in-flight and external accounts of the payout's currency (created on first use).
    async fn accounts<C: ConnectionTrait>(
        &mut self,
        txn: &C,
        row: &payout::Model,
        now: i64,
    ) -> Result<(Uuid, Uuid), ServiceError> {
        if let Some(ids) = self.accounts.get(&row.currency) {
            return Ok(*ids);
        }
        let ensure = |kind| ensure_system_account(txn, row.workspace_id, kind, &row.currency, now);
        let ids = (
            ensure(&SystemAccount::PayoutsInFlight).await?,
            ensure(&SystemAccount::External).await?,
        );
        self.accounts.insert(row.currency.clone(), ids);
        Ok(ids)
    }

    async fn store<C: ConnectionTrait>(
        self,
        txn: &C,
        workspace_id: Uuid,
        now: i64,
    ) -> Result<(), ServiceError> {
        if !self.transfers.is_empty() {
            let results = Ledger::apply_in(txn, workspace_id, &self.transfers, now).await?;
            if let Some(refused) = results
                .iter()
                .find(|result| **result != TransferResult::Created)
            {
                return Err(ServiceError::internal(format!(
                    "the ledger refused settling a payout: {refused:?}"
                )));
            }
        }
        for chunk in self.paid_plainly.chunks(1000) {
            payout::Entity::update_many()
                .col_expr(
                    payout::Column::Status,
                    Expr::value(pb::PayoutStatus::Paid as i32),
                )
                .col_expr(payout::Column::UpdatedAt, Expr::value(now))
                .filter(payout::Column::WorkspaceId.eq(workspace_id))
                .filter(payout::Column::Id.is_in(chunk.iter().copied()))
                .exec(txn)
                .await?;
        }
        for update in self.updates {
            kernel::db::update(txn, update).await?;
        }
        kernel::events::append_many(txn, self.events, kernel::clock::from_micros(now)).await
    }
}

fn truncate(reason: &str) -> String {
    reason.chars().take(500).collect()
}

/// The transfer that ends a payout's time in flight: to the external account when paid, back to
/// the promoter's wallet when it failed.
fn transfer(row: &payout::Model, in_flight: Uuid, to: Uuid, code: &str) -> NewTransfer {
    NewTransfer {
        id: Uuid::now_v7(),
        debit_account_id: in_flight,
        credit_account_id: to,
        amount: row.amount,
        code: code.to_owned(),
        reference: row.id.to_string(),
        pending_id: None,
        timeout_seconds: 0,
        flags: 0,
        metadata: BTreeMap::new(),
    }
}

fn paid_event(row: &payout::Model, reference: &str) -> NewEvent {
    NewEvent {
        workspace_id: row.workspace_id,
        event_type: events::PAYOUT_PAID,
        subject: format!("payouts/{}", row.id),
        payload: json!({
            "payout_id": row.id.to_string(),
            "promoter_id": row.promoter_id.to_string(),
            "period": row.period,
            "currency": row.currency,
            "amount": row.amount,
            "provider": row.provider,
            "provider_reference": reference,
        }),
    }
}

fn failed_event(row: &payout::Model, reason: &str) -> NewEvent {
    NewEvent {
        workspace_id: row.workspace_id,
        event_type: events::PAYOUT_FAILED,
        subject: format!("payouts/{}", row.id),
        payload: json!({
            "payout_id": row.id.to_string(),
            "promoter_id": row.promoter_id.to_string(),
            "period": row.period,
            "currency": row.currency,
            "amount": row.amount,
            "reason": reason,
        }),
    }
}
