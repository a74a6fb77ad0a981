//! The domain events material promotion appends (kernel::events), in the transaction that
//! completes a promotion. Subject: `promotions/{id}`. Payload fields, all present in every event
//! of the type:
//!
//! - `promotion.exhausted` — a running promotion's budget can no longer pay a charge; followed in
//!   the same transaction by `promotion.completed`. `{promotion_id, material_id, factory_id,
//!   credits_allocated, credits_spent}`.
//! - `promotion.completed` — the promotion ended for good. The same fields plus `reason`:
//!   `ENDED` (its end time passed), `BUDGET_EXHAUSTED`, or the factory's or an operator's
//!   `COMPLETED`.
//! - `promotion.refunded` — what was left of its budget went back to the factory's wallet. The
//!   same fields plus `credits_refunded` (this refund, in credits). Not appended when nothing was
//!   left.
//!
//! Amounts are JSON numbers of whole credits (below 2^53, so exact in every JSON reader).

use kernel::events::{NewEvent, append};
use kernel::{ServiceError, WriteTxn};
use serde_json::json;

use crate::store::promotion;

pub const EXHAUSTED: &str = "promotion.exhausted";
pub const COMPLETED: &str = "promotion.completed";
pub const REFUNDED: &str = "promotion.refunded";

/// The action `complete` records when a promotion completes because its budget ran out.
const BUDGET_EXHAUSTED: &str = "BUDGET_EXHAUSTED";

/// Appends the events of a completion: `exhausted` (when that was why), `completed`, and
/// `refunded` (when credits went back).
pub(crate) async fn completed(
    txn: &WriteTxn,
    row: &promotion::Model,
    reason: &str,
    refunded: i64,
    now: i64,
) -> Result<(), ServiceError> {
    let now = kernel::clock::from_micros(now);
    let base = json!({
        "promotion_id": row.id,
        "material_id": row.material_id,
        "factory_id": row.factory_id,
        "credits_allocated": row.credits_allocated,
        "credits_spent": row.credits_spent,
    });
    let event = |event_type: &'static str, extra: serde_json::Value| {
        let mut payload = base.clone();
        if let (Some(payload), Some(extra)) = (payload.as_object_mut(), extra.as_object()) {
            payload.extend(extra.clone());
        }
        NewEvent {
            workspace_id: row.workspace_id,
            event_type,
            subject: format!("promotions/{}", row.id),
            payload,
        }
    };
    if reason == BUDGET_EXHAUSTED {
        append(&**txn, event(EXHAUSTED, json!({})), now).await?;
    }
    append(&**txn, event(COMPLETED, json!({ "reason": reason })), now).await?;
    if refunded > 0 {
        append(
            &**txn,
            event(REFUNDED, json!({ "credits_refunded": refunded })),
            now,
        )
        .await?;
    }
    Ok(())
}
