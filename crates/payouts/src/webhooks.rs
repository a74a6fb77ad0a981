//! Provider events at `POST /webhooks/payouts`: authenticated only by their signature
//! (`signature`), each processed once (its id is stored in the transaction of its effect), and
//! applied in the order they happened: an event older than the last one applied to a payout is
//! stale and ignored. Unknown event types are acknowledged and logged.
//!
//! - `payout.paid` — the payout (found by the `payout_id`/`workspace_id` metadata it was sent
//!   with, or by its provider reference) is PAID: in-flight → external.
//! - `payout.failed` — FAILED with Stripe's failure message: in-flight → back to the wallet (a
//!   payout that was PAID and then fails, a bank return, comes back from external).
//! - `account.updated` — the connected account's `payouts_enabled` is recorded.

use std::collections::BTreeMap;

use credits_ledger::accounts::ensure_system_account;
use credits_ledger::{Ledger, NewTransfer, SystemAccount, TransferResult};
use kernel::ServiceError;
use proto::payouts::v1 as pb;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::dispatch;
use crate::entity::{account, payout, webhook_event};
use crate::escrow::CODE_RETURNED;
use crate::provider::ProviderOutcome;
use crate::signature;
use crate::state::Payouts;

/// What the HTTP listener answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub message: &'static str,
}

const fn answer(status: u16, message: &'static str) -> Answer {
    Answer { status, message }
}

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    created: i64,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: serde_json::Value,
}

/// Handles one delivery: `signature_header` is the `Stripe-Signature` header, `body` the raw
/// body, `secrets` the configured endpoint secrets.
pub async fn handle(
    core: &Payouts,
    secrets: &[String],
    signature_header: &str,
    body: &[u8],
) -> Answer {
    if secrets.is_empty() {
        return answer(404, "provider webhooks are not configured\n");
    }
    let now_seconds = core.context.clock.now().timestamp();
    if let Err(error) = signature::verify(signature_header, body, secrets, now_seconds) {
        metrics::counter!("promo_payout_webhooks_total", "outcome" => "bad_signature").increment(1);
        tracing::warn!(%error, "refused a payout provider event");
        return answer(400, "bad signature\n");
    }
    let Ok(event) = serde_json::from_slice::<Event>(body) else {
        tracing::warn!("a signed payout provider event is not an event");
        return answer(400, "not an event\n");
    };
    match apply(core, &event).await {
        Ok(outcome) => {
            metrics::counter!("promo_payout_webhooks_total", "outcome" => outcome).increment(1);
            tracing::info!(event_id = %event.id, event_type = %event.event_type, outcome, "payout provider event");
            answer(200, "ok\n")
        }
        Err(error) => {
            // Stripe delivers again later; nothing was recorded.
            tracing::error!(%error, event_id = %event.id, "a payout provider event failed");
            answer(503, "try again\n")
        }
    }
}

/// Records the event and applies it in one transaction; returns what happened.
async fn apply(core: &Payouts, event: &Event) -> Result<&'static str, ServiceError> {
    let provider = core.provider.name();
    core.context
        .write(|txn| async move {
            let now = core.now();
            let stored = webhook_event::Entity::insert(webhook_event::ActiveModel {
                provider: Set(provider.to_owned()),
                event_id: Set(event.id.chars().take(255).collect()),
                event_type: Set(event.event_type.chars().take(128).collect()),
                outcome: Set(String::new()),
                received_at: Set(now),
            })
            .on_conflict(
                OnConflict::columns([
                    webhook_event::Column::Provider,
                    webhook_event::Column::EventId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&*txn)
            .await?;
            if stored == 0 {
                return Ok((txn, "duplicate"));
            }
            let object = &event.data.object;
            let created = event.created.saturating_mul(1_000_000);
            let outcome = match event.event_type.as_str() {
                "payout.paid" => payout_event(&txn, provider, object, created, None, now).await?,
                "payout.failed" => {
                    let reason = object["failure_message"]
                        .as_str()
                        .or(object["failure_code"].as_str())
                        .unwrap_or("the provider reported the payout failed");
                    payout_event(&txn, provider, object, created, Some(reason), now).await?
                }
                "account.updated" => account_event(&*txn, provider, object, now).await?,
                _ => "ignored",
            };
            kernel::db::update(
                &*txn,
                webhook_event::ActiveModel {
                    provider: Set(provider.to_owned()),
                    event_id: Set(event.id.chars().take(255).collect()),
                    outcome: Set(outcome.to_owned()),
                    ..Default::default()
                },
            )
            .await?;
            Ok((txn, outcome))
        })
        .await
}

/// The payout an event is about: by the metadata it was sent with, else by its reference.
async fn find_payout<C: ConnectionTrait>(
    txn: &C,
    provider: &str,
    object: &serde_json::Value,
) -> Result<Option<payout::Model>, ServiceError> {
    let metadata = &object["metadata"];
    let ids = (
        metadata["workspace_id"]
            .as_str()
            .and_then(kernel::ids::parse_uuid_text),
        metadata["payout_id"]
            .as_str()
            .and_then(kernel::ids::parse_uuid_text),
    );
    if let (Some(workspace_id), Some(id)) = ids {
        let found = payout::Entity::find_by_id((workspace_id, id))
            .lock_exclusive()
            .one(txn)
            .await?;
        if found.as_ref().is_some_and(|row| row.provider == provider) {
            return Ok(found);
        }
    }
    let Some(reference) = object["id"]
        .as_str()
        .filter(|reference| !reference.is_empty())
    else {
        return Ok(None);
    };
    Ok(payout::Entity::find()
        .filter(payout::Column::Provider.eq(provider))
        .filter(payout::Column::ProviderReference.eq(reference))
        .lock_exclusive()
        .one(txn)
        .await?)
}

/// Applies `payout.paid` (no reason) or `payout.failed` (its reason).
async fn payout_event(
    txn: &kernel::db::WriteTxn,
    provider: &str,
    object: &serde_json::Value,
    created: i64,
    failure: Option<&str>,
    now: i64,
) -> Result<&'static str, ServiceError> {
    let Some(row) = find_payout(&**txn, provider, object).await? else {
        return Ok("unknown_payout");
    };
    if created < row.provider_event_at {
        return Ok("stale");
    }
    let reference = object["id"].as_str().unwrap_or_default().to_owned();
    let status = pb::PayoutStatus::try_from(row.status).unwrap_or_default();
    let outcome = match failure {
        None => ProviderOutcome::Paid { reference },
        Some(reason) => ProviderOutcome::Failed {
            reason: reason.to_owned(),
        },
    };
    let applied = match (status, &outcome) {
        (pb::PayoutStatus::Approved | pb::PayoutStatus::Processing, _) => {
            dispatch::record(&**txn, &row, &outcome, now).await?;
            "applied"
        }
        // Paid, then returned by the bank: the money comes back from outside to the wallet.
        (pb::PayoutStatus::Paid, ProviderOutcome::Failed { reason }) => {
            let transfer = returned(&**txn, &row, now).await?;
            apply_transfers(&**txn, row.workspace_id, vec![transfer], now).await?;
            dispatch::mark_returned(&**txn, &row, reason, now).await?;
            "returned"
        }
        _ => "no_change",
    };
    kernel::db::update(
        &**txn,
        payout::ActiveModel {
            workspace_id: Set(row.workspace_id),
            id: Set(row.id),
            provider_event_at: Set(created),
            ..Default::default()
        },
    )
    .await?;
    Ok(applied)
}

/// External → wallet: a paid payout that came back.
async fn returned<C: ConnectionTrait>(
    txn: &C,
    row: &payout::Model,
    now: i64,
) -> Result<NewTransfer, ServiceError> {
    let external = ensure_system_account(
        txn,
        row.workspace_id,
        &SystemAccount::External,
        &row.currency,
        now,
    )
    .await?;
    let wallet = ensure_system_account(
        txn,
        row.workspace_id,
        &SystemAccount::Wallet(row.promoter_id),
        &row.currency,
        now,
    )
    .await?;
    Ok(NewTransfer {
        id: Uuid::now_v7(),
        debit_account_id: external,
        credit_account_id: wallet,
        amount: row.amount,
        code: CODE_RETURNED.to_owned(),
        reference: row.id.to_string(),
        pending_id: None,
        timeout_seconds: 0,
        flags: 0,
        metadata: BTreeMap::new(),
    })
}

async fn apply_transfers<C: ConnectionTrait>(
    txn: &C,
    workspace_id: Uuid,
    transfers: Vec<NewTransfer>,
    now: i64,
) -> Result<(), ServiceError> {
    if transfers.is_empty() {
        return Ok(());
    }
    let results = Ledger::apply_in(txn, workspace_id, &transfers, now).await?;
    match results
        .iter()
        .find(|result| **result != TransferResult::Created)
    {
        None => Ok(()),
        Some(refused) => Err(ServiceError::internal(format!(
            "the ledger refused a payout event's transfer: {refused:?}"
        ))),
    }
}

/// `account.updated`: records whether the connected account can be paid.
async fn account_event<C: ConnectionTrait>(
    txn: &C,
    provider: &str,
    object: &serde_json::Value,
    now: i64,
) -> Result<&'static str, ServiceError> {
    let (Some(account_id), Some(enabled)) =
        (object["id"].as_str(), object["payouts_enabled"].as_bool())
    else {
        return Ok("ignored");
    };
    let changed = account::Entity::update_many()
        .col_expr(account::Column::PayoutsEnabled, Expr::value(enabled))
        .col_expr(account::Column::UpdatedAt, Expr::value(now))
        .filter(account::Column::Provider.eq(provider))
        .filter(account::Column::ProviderAccountId.eq(account_id))
        .exec(txn)
        .await?
        .rows_affected;
    Ok(if changed == 0 {
        "unknown_account"
    } else {
        "applied"
    })
}
