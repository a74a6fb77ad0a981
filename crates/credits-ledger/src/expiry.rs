//! Pending transfers past their timeout: finding them and voiding them.

use std::collections::BTreeSet;

use kernel::ServiceError;
use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::domain::{Key, PendingState, WorkingSet};
use crate::store::{load_accounts, load_transfers, persist, transfer};

/// Up to `limit` pending transfers whose timeout passed before `now`, oldest deadline first.
pub async fn due_pending<C: ConnectionTrait>(
    connection: &C,
    now: i64,
    limit: u64,
) -> Result<Vec<Key>, ServiceError> {
    Ok(transfer::Entity::find()
        .select_only()
        .columns([transfer::Column::WorkspaceId, transfer::Column::Id])
        .filter(transfer::Column::PendingState.eq(PendingState::Pending as i16))
        .filter(transfer::Column::ExpiresAt.lte(now))
        .order_by_asc(transfer::Column::ExpiresAt)
        .limit(limit)
        .into_tuple::<(Uuid, Uuid)>()
        .all(connection)
        .await?)
}

/// Voids the given pending transfers if they are still pending and due.
pub async fn expire_keys<C: ConnectionTrait>(
    connection: &C,
    due: &BTreeSet<Key>,
    now: i64,
) -> Result<usize, ServiceError> {
    if due.is_empty() {
        return Ok(0);
    }
    let mut working = WorkingSet::default();
    load_transfers(connection, due, true, &mut working).await?;
    let account_ids: BTreeSet<Key> = working
        .transfers
        .values()
        .flat_map(|t| {
            [
                (t.workspace_id, t.debit_account_id),
                (t.workspace_id, t.credit_account_id),
            ]
        })
        .collect();
    load_accounts(connection, &account_ids, &mut working).await?;
    let expired = due
        .iter()
        .filter(|key| {
            working
                .transfers
                .get(key)
                .and_then(|t| t.expires_at)
                .is_some_and(|at| at <= now)
                && working.expire(**key)
        })
        .count();
    persist(connection, &mut working, now).await?;
    Ok(expired)
}
