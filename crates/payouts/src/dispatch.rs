//! Sending approved payouts to the provider and recording what it said: paid (in-flight →
//! external), processing (its confirmation comes later), failed (in-flight → back to the wallet,
//! FAILED with the reason; the next run pays it again), or "try again" (the sweeper resends with
//! backoff). The payout's id is the provider's idempotency key, so a resend after a crash never
//! pays twice.

use std::collections::BTreeMap;

use credits_ledger::accounts::ensure_system_account;
use credits_ledger::{Ledger, NewTransfer, SystemAccount, TransferResult};
use kernel::ServiceError;
use kernel::db::WriteTxn;
use proto::payouts::v1 as pb;
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
            let mut changed = 0;
            let mut transfers = Vec::new();
            for (id, outcome) in outcomes {
                let Some(row) = payout::Entity::find_by_id((workspace_id, *id))
                    .lock_exclusive()
                    .one(&*txn)
                    .await?
                else {
                    continue;
                };
                // Another sender recorded an outcome first.
                if row.status != pb::PayoutStatus::Approved as i32 {
                    continue;
                }
                if let Some(transfer) = record(&txn, &row, outcome, now).await? {
                    transfers.push(transfer);
                }
                if !matches!(outcome, ProviderOutcome::Retry { .. }) {
                    changed += 1;
                }
            }
            if !transfers.is_empty() {
                let results = Ledger::apply_in(&*txn, workspace_id, &transfers, now).await?;
                if let Some(refused) = results
                    .iter()
                    .find(|result| **result != TransferResult::Created)
                {
                    return Err(ServiceError::internal(format!(
                        "the ledger refused settling a payout: {refused:?}"
                    )));
                }
            }
            Ok((txn, changed))
        })
        .await
}

/// Stores one outcome on its payout (with its event) and returns the ledger transfer it needs.
pub(crate) async fn record(
    txn: &WriteTxn,
    row: &payout::Model,
    outcome: &ProviderOutcome,
    now: i64,
) -> Result<Option<NewTransfer>, ServiceError> {
    let workspace_id = row.workspace_id;
    let mut update = payout::ActiveModel {
        workspace_id: Set(workspace_id),
        id: Set(row.id),
        updated_at: Set(now),
        ..Default::default()
    };
    let mut transfer = None;
    match outcome {
        ProviderOutcome::Paid { reference } => {
            update.status = Set(pb::PayoutStatus::Paid as i32);
            update.provider_reference = Set(reference.clone());
            transfer = Some(settle(&**txn, row, true, now).await?);
            paid_event(txn, row, reference, now).await?;
        }
        ProviderOutcome::Processing { reference } => {
            update.status = Set(pb::PayoutStatus::Processing as i32);
            update.provider_reference = Set(reference.clone());
        }
        ProviderOutcome::Failed { reason } => {
            update.status = Set(pb::PayoutStatus::Failed as i32);
            update.failure_reason = Set(truncate(reason));
            transfer = Some(settle(&**txn, row, false, now).await?);
            failed_event(txn, row, reason, now).await?;
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
    kernel::db::update(&**txn, update).await?;
    Ok(transfer)
}

fn truncate(reason: &str) -> String {
    reason.chars().take(500).collect()
}

/// The transfer that ends a payout's time in flight: to the external account when paid, back to
/// the promoter's wallet when it failed.
async fn settle<C: ConnectionTrait>(
    txn: &C,
    row: &payout::Model,
    paid: bool,
    now: i64,
) -> Result<NewTransfer, ServiceError> {
    let (to, code) = if paid {
        (SystemAccount::External, CODE_SETTLED)
    } else {
        (SystemAccount::Wallet(row.promoter_id), CODE_RETURNED)
    };
    let in_flight = ensure_system_account(
        txn,
        row.workspace_id,
        &SystemAccount::PayoutsInFlight,
        &row.currency,
        now,
    )
    .await?;
    let to = ensure_system_account(txn, row.workspace_id, &to, &row.currency, now).await?;
    Ok(NewTransfer {
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
    })
}

async fn paid_event(
    txn: &WriteTxn,
    row: &payout::Model,
    reference: &str,
    now: i64,
) -> Result<(), ServiceError> {
    events::emit(
        txn,
        row.workspace_id,
        events::PAYOUT_PAID,
        format!("payouts/{}", row.id),
        json!({
            "payout_id": row.id.to_string(),
            "promoter_id": row.promoter_id.to_string(),
            "period": row.period,
            "currency": row.currency,
            "amount": row.amount,
            "provider": row.provider,
            "provider_reference": reference,
        }),
        now,
    )
    .await
}

async fn failed_event(
    txn: &WriteTxn,
    row: &payout::Model,
    reason: &str,
    now: i64,
) -> Result<(), ServiceError> {
    events::emit(
        txn,
        row.workspace_id,
        events::PAYOUT_FAILED,
        format!("payouts/{}", row.id),
        json!({
            "payout_id": row.id.to_string(),
            "promoter_id": row.promoter_id.to_string(),
            "period": row.period,
            "currency": row.currency,
            "amount": row.amount,
            "reason": reason,
        }),
        now,
    )
    .await
}
