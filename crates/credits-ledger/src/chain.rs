//! The per-workspace hash chain: every committed transfer is hashed with the one before it, so
//! `promo ledger verify` can tell when history was altered.

use kernel::ServiceError;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QuerySelect};
use sha2::{Digest, Sha256};

use crate::domain::Transfer;
use crate::store::{chain_head, is_postgres};

/// The hash every workspace's chain starts from.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chained hash of one transfer: what it moved, between whom, when, and the hash before it.
pub fn chain_hash(previous: &str, seq: i64, transfer: &Transfer) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(seq.to_le_bytes());
    hasher.update(transfer.id.as_bytes());
    hasher.update(transfer.workspace_id.as_bytes());
    hasher.update(transfer.debit_account_id.as_bytes());
    hasher.update(transfer.credit_account_id.as_bytes());
    hasher.update(transfer.amount.to_le_bytes());
    hasher.update(transfer.pending_id.unwrap_or_default().as_bytes());
    hasher.update(transfer.flags.to_le_bytes());
    hasher.update((transfer.code.len() as u64).to_le_bytes());
    hasher.update(transfer.code.as_bytes());
    hasher.update((transfer.reference.len() as u64).to_le_bytes());
    hasher.update(transfer.reference.as_bytes());
    hasher.update(transfer.created_at.to_le_bytes());
    hex::encode(hasher.finalize())
}

/// Creates the workspace's chain head if needed and locks it (PostgreSQL); returns its position.
pub(crate) async fn lock_chain_head<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
) -> Result<(i64, String), ServiceError> {
    let head = chain_head::ActiveModel {
        workspace_id: Set(workspace_id),
        seq: Set(0),
        hash: Set(GENESIS_HASH.to_owned()),
    };
    chain_head::Entity::insert(head)
        .on_conflict(
            OnConflict::column(chain_head::Column::WorkspaceId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(connection)
        .await?;
    let mut query = chain_head::Entity::find_by_id(workspace_id);
    if is_postgres(connection) {
        query = query.lock_exclusive();
    }
    let head = query
        .one(connection)
        .await?
        .ok_or_else(|| ServiceError::internal(format!("chain head of {workspace_id} vanished")))?;
    Ok((head.seq, head.hash))
}
