//! sea-orm entities and queries for the ledger's tables (`ledger_*`), and the one function that
//! loads, applies and persists a batch inside a caller's transaction.

use std::collections::{BTreeMap, BTreeSet};

use kernel::ServiceError;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbBackend, QueryFilter, QueryOrder, QuerySelect};

use crate::domain::{Account, Key, Origin, PendingState, Transfer, TransferResult, WorkingSet};

pub mod account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ledger_account")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub owner_id: Option<Uuid>,
        pub asset: String,
        pub code: String,
        pub flags: i32,
        pub debits_posted: i64,
        pub credits_posted: i64,
        pub debits_pending: i64,
        pub credits_pending: i64,
        pub metadata: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod transfer {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ledger_transfer")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub seq: i64,
        pub debit_account_id: Uuid,
        pub credit_account_id: Uuid,
        pub amount: i64,
        pub requested_amount: i64,
        pub pending_id: Option<Uuid>,
        pub code: String,
        pub reference: String,
        pub timeout_seconds: i64,
        pub flags: i32,
        pub kind: i16,
        pub pending_state: i16,
        pub expires_at: Option<i64>,
        pub resolved_at: Option<i64>,
        pub metadata: String,
        pub created_at: i64,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod failed {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ledger_failed_transfer")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub result: i32,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod chain_head {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ledger_chain_head")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: Uuid,
        pub seq: i64,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use crate::chain::lock_chain_head;
pub use crate::chain::{GENESIS_HASH, chain_hash};

/// Rows per multi-row statement: well under SQLite's and PostgreSQL's bind-parameter limits.
const CHUNK: usize = 500;

pub fn metadata_to_column(metadata: &BTreeMap<String, String>) -> String {
    serde_json::to_string(metadata).unwrap_or_else(|_| "{}".to_owned())
}

fn metadata_from_column(
    table: &str,
    workspace_id: Uuid,
    id: Uuid,
    text: &str,
) -> Result<BTreeMap<String, String>, ServiceError> {
    kernel::db::json_column(table, format!("({workspace_id}, {id})"), "metadata", text)
}

/// An account from its row; metadata that does not parse is an error naming the row.
pub fn account_from_row(row: account::Model) -> Result<Account, ServiceError> {
    let metadata = metadata_from_column("ledger_account", row.workspace_id, row.id, &row.metadata)?;
    Ok(Account {
        id: row.id,
        workspace_id: row.workspace_id,
        owner_id: row.owner_id,
        asset: row.asset,
        code: row.code,
        flags: row.flags as u32,
        debits_posted: row.debits_posted,
        credits_posted: row.credits_posted,
        debits_pending: row.debits_pending,
        credits_pending: row.credits_pending,
        metadata,
        created_at: row.created_at,
    })
}

pub fn account_to_row(account: &Account) -> account::Model {
    account::Model {
        id: account.id,
        workspace_id: account.workspace_id,
        owner_id: account.owner_id,
        asset: account.asset.clone(),
        code: account.code.clone(),
        flags: account.flags as i32,
        debits_posted: account.debits_posted,
        credits_posted: account.credits_posted,
        debits_pending: account.debits_pending,
        credits_pending: account.credits_pending,
        metadata: metadata_to_column(&account.metadata),
        created_at: account.created_at,
    }
}

/// A stored transfer plus its position in the workspace's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTransfer {
    pub transfer: Transfer,
    pub seq: i64,
    pub hash: String,
}

/// A transfer from its row; metadata that does not parse is an error naming the row.
pub fn transfer_from_row(row: transfer::Model) -> Result<StoredTransfer, ServiceError> {
    let metadata =
        metadata_from_column("ledger_transfer", row.workspace_id, row.id, &row.metadata)?;
    Ok(StoredTransfer {
        transfer: Transfer {
            id: row.id,
            workspace_id: row.workspace_id,
            debit_account_id: row.debit_account_id,
            credit_account_id: row.credit_account_id,
            amount: row.amount,
            requested_amount: row.requested_amount,
            code: row.code,
            reference: row.reference,
            pending_id: row.pending_id,
            timeout_seconds: row.timeout_seconds,
            flags: row.flags as u32,
            metadata,
            pending_state: PendingState::from_i16(row.pending_state),
            expires_at: row.expires_at,
            resolved_at: row.resolved_at,
            created_at: row.created_at,
        },
        seq: row.seq,
        hash: row.hash,
    })
}

fn transfer_to_row(transfer: &Transfer, seq: i64, hash: String) -> transfer::ActiveModel {
    transfer::ActiveModel {
        id: Set(transfer.id),
        workspace_id: Set(transfer.workspace_id),
        seq: Set(seq),
        debit_account_id: Set(transfer.debit_account_id),
        credit_account_id: Set(transfer.credit_account_id),
        amount: Set(transfer.amount),
        requested_amount: Set(transfer.requested_amount),
        pending_id: Set(transfer.pending_id),
        code: Set(transfer.code.clone()),
        reference: Set(transfer.reference.clone()),
        timeout_seconds: Set(transfer.timeout_seconds),
        flags: Set(transfer.flags as i32),
        kind: Set(transfer.kind() as i16),
        pending_state: Set(transfer.pending_state as i16),
        expires_at: Set(transfer.expires_at),
        resolved_at: Set(transfer.resolved_at),
        metadata: Set(metadata_to_column(&transfer.metadata)),
        created_at: Set(transfer.created_at),
        hash: Set(hash),
    }
}

pub(crate) fn is_postgres<C: ConnectionTrait>(connection: &C) -> bool {
    connection.get_database_backend() == DbBackend::Postgres
}

/// Writes the four balances of each account back in one statement: an `UPDATE … FROM (VALUES …)`
/// joined on the primary key (PostgreSQL names the VALUES columns; SQLite calls them column1…).
async fn write_balances<C: ConnectionTrait>(
    connection: &C,
    accounts: &[&Account],
) -> Result<(), ServiceError> {
    if accounts.is_empty() {
        return Ok(());
    }
    let backend = connection.get_database_backend();
    let postgres = backend == DbBackend::Postgres;
    let mut sql = String::with_capacity(160 + accounts.len() * 48);
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(accounts.len() * 6);
    for (index, account) in accounts.iter().enumerate() {
        let base = index * 6;
        sql.push_str(if index == 0 { "(" } else { ", (" });
        for column in 0..6 {
            if column > 0 {
                sql.push_str(", ");
            }
            if postgres {
                let cast = if column < 2 { "::uuid" } else { "::bigint" };
                sql.push_str(&format!("${}{cast}", base + column + 1));
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
        values.push(account.workspace_id.into());
        values.push(account.id.into());
        values.push(account.debits_posted.into());
        values.push(account.credits_posted.into());
        values.push(account.debits_pending.into());
        values.push(account.credits_pending.into());
    }
    let statement = if postgres {
        format!(
            "UPDATE ledger_account AS a SET debits_posted = v.dp, credits_posted = v.cp, \
             debits_pending = v.dq, credits_pending = v.cq \
             FROM (VALUES {sql}) AS v(ws, id, dp, cp, dq, cq) \
             WHERE a.workspace_id = v.ws AND a.id = v.id"
        )
    } else {
        format!(
            "UPDATE ledger_account SET debits_posted = v.column3, credits_posted = v.column4, \
             debits_pending = v.column5, credits_pending = v.column6 FROM (VALUES {sql}) AS v \
             WHERE ledger_account.workspace_id = v.column1 AND ledger_account.id = v.column2"
        )
    };
    let result = connection
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            backend, statement, values,
        ))
        .await?;
    if result.rows_affected() != accounts.len() as u64 {
        return Err(ServiceError::internal(format!(
            "balance write touched {} of {} accounts",
            result.rows_affected(),
            accounts.len()
        )));
    }
    Ok(())
}

/// The keys grouped by workspace, each group's ids ascending: the order rows are locked in.
fn by_workspace(keys: &BTreeSet<Key>) -> BTreeMap<Uuid, Vec<Uuid>> {
    let mut groups: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    for (workspace_id, id) in keys {
        groups.entry(*workspace_id).or_default().push(*id);
    }
    groups
}

/// Loads what the engine needs of accounts (not their code, owner or metadata), locking them in
/// ascending `(workspace_id, id)` order on PostgreSQL.
pub(crate) async fn load_accounts<C: ConnectionTrait>(
    connection: &C,
    keys: &BTreeSet<Key>,
    working: &mut WorkingSet,
) -> Result<(), ServiceError> {
    type Row = (Uuid, Uuid, String, i32, i64, i64, i64, i64);
    for (workspace_id, ids) in by_workspace(keys) {
        for chunk in ids.chunks(CHUNK) {
            let mut query = account::Entity::find()
                .select_only()
                .columns([
                    account::Column::Id,
                    account::Column::WorkspaceId,
                    account::Column::Asset,
                    account::Column::Flags,
                    account::Column::DebitsPosted,
                    account::Column::CreditsPosted,
                    account::Column::DebitsPending,
                    account::Column::CreditsPending,
                ])
                .filter(account::Column::WorkspaceId.eq(workspace_id))
                .filter(account::Column::Id.is_in(chunk.iter().copied()))
                .order_by_asc(account::Column::Id);
            if is_postgres(connection) {
                query = query.lock_exclusive();
            }
            let rows: Vec<Row> = query.into_tuple().all(connection).await?;
            for (
                id,
                workspace_id,
                asset,
                flags,
                debits_posted,
                credits_posted,
                debits_pending,
                credits_pending,
            ) in rows
            {
                working.accounts.insert(
                    (workspace_id, id),
                    Account {
                        id,
                        workspace_id,
                        owner_id: None,
                        asset,
                        code: String::new(),
                        flags: flags as u32,
                        debits_posted,
                        credits_posted,
                        debits_pending,
                        credits_pending,
                        metadata: BTreeMap::new(),
                        created_at: 0,
                    },
                );
            }
        }
    }
    Ok(())
}

pub(crate) async fn load_transfers<C: ConnectionTrait>(
    connection: &C,
    keys: &BTreeSet<Key>,
    lock: bool,
    working: &mut WorkingSet,
) -> Result<(), ServiceError> {
    for (workspace_id, ids) in by_workspace(keys) {
        for chunk in ids.chunks(CHUNK) {
            let mut query = transfer::Entity::find()
                .filter(transfer::Column::WorkspaceId.eq(workspace_id))
                .filter(transfer::Column::Id.is_in(chunk.iter().copied()))
                .order_by_asc(transfer::Column::Id);
            if lock && is_postgres(connection) {
                query = query.lock_exclusive();
            }
            for row in query.all(connection).await? {
                let stored = transfer_from_row(row)?;
                working
                    .transfers
                    .insert(stored.transfer.key(), stored.transfer);
            }
        }
    }
    Ok(())
}

async fn load_failures<C: ConnectionTrait>(
    connection: &C,
    keys: &BTreeSet<Key>,
    working: &mut WorkingSet,
) -> Result<(), ServiceError> {
    for (workspace_id, ids) in by_workspace(keys) {
        for chunk in ids.chunks(CHUNK) {
            let rows = failed::Entity::find()
                .filter(failed::Column::WorkspaceId.eq(workspace_id))
                .filter(failed::Column::Id.is_in(chunk.iter().copied()))
                .all(connection)
                .await?;
            for row in rows {
                if let Some(result) = TransferResult::from_i32(row.result) {
                    working.failed.insert((row.workspace_id, row.id), result);
                }
            }
        }
    }
    Ok(())
}

/// One request in a batch: a workspace, who asks, and its transfers, in order.
pub struct BatchRequest<'a> {
    pub workspace_id: Uuid,
    pub origin: Origin,
    pub transfers: &'a [crate::domain::NewTransfer],
}

/// Loads what the requests touch, applies them in order and persists the result, all inside the
/// caller's transaction. Locks (PostgreSQL): referenced pending transfers, then accounts, then
/// chain heads, each in ascending key order, so concurrent batches never deadlock.
pub async fn apply_batch<C: ConnectionTrait>(
    connection: &C,
    requests: &[BatchRequest<'_>],
    now: i64,
) -> Result<Vec<Vec<TransferResult>>, ServiceError> {
    let mut working = WorkingSet::default();
    let mut new_ids = BTreeSet::new();
    let mut pending_ids = BTreeSet::new();
    for request in requests {
        for transfer in request.transfers {
            new_ids.insert((request.workspace_id, transfer.id));
            if let Some(pending_id) = transfer.pending_id {
                pending_ids.insert((request.workspace_id, pending_id));
            }
        }
    }
    // Lock order: referenced pending transfers, then accounts (learned from the requests and the
    // pending transfers), each ascending. Only then read which ids already exist or failed: under
    // READ COMMITTED those reads see every transaction that held these locks before us.
    load_transfers(connection, &pending_ids, true, &mut working).await?;
    let mut account_ids = BTreeSet::new();
    for request in requests {
        for transfer in request.transfers {
            for id in [transfer.debit_account_id, transfer.credit_account_id] {
                if !id.is_nil() {
                    account_ids.insert((request.workspace_id, id));
                }
            }
        }
    }
    for pending in working.transfers.values() {
        account_ids.insert((pending.workspace_id, pending.debit_account_id));
        account_ids.insert((pending.workspace_id, pending.credit_account_id));
    }
    load_accounts(connection, &account_ids, &mut working).await?;
    let unseen: BTreeSet<Key> = new_ids
        .iter()
        .filter(|id| !working.transfers.contains_key(id))
        .copied()
        .collect();
    load_transfers(connection, &unseen, false, &mut working).await?;
    load_failures(connection, &new_ids, &mut working).await?;
    let results: Vec<Vec<TransferResult>> = requests
        .iter()
        .map(|request| working.apply(request.workspace_id, now, request.transfers, request.origin))
        .collect();
    persist(connection, &mut working, now).await?;
    Ok(results)
}

/// Writes what a working set changed: new transfers (chained), balances, pending states, failures.
pub async fn persist<C: ConnectionTrait>(
    connection: &C,
    working: &mut WorkingSet,
    now: i64,
) -> Result<(), ServiceError> {
    if !working.created.is_empty() {
        let workspaces: BTreeSet<Uuid> = working
            .created
            .iter()
            .map(|(workspace_id, _)| *workspace_id)
            .collect();
        let mut heads = BTreeMap::new();
        for workspace_id in workspaces {
            heads.insert(
                workspace_id,
                lock_chain_head(connection, workspace_id).await?,
            );
        }
        let mut rows = Vec::with_capacity(working.created.len());
        for key in &working.created {
            let Some(transfer) = working.transfers.get(key) else {
                continue;
            };
            let Some((seq, hash)) = heads.get_mut(&transfer.workspace_id) else {
                continue;
            };
            *seq += 1;
            *hash = chain_hash(hash, *seq, transfer);
            rows.push(transfer_to_row(transfer, *seq, hash.clone()));
        }
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<_> = rows.by_ref().take(CHUNK).collect();
            transfer::Entity::insert_many(chunk)
                .exec_without_returning(connection)
                .await
                .map_err(unique_is_conflict)?;
        }
        for (workspace_id, (seq, hash)) in heads {
            chain_head::Entity::update_many()
                .col_expr(chain_head::Column::Seq, Expr::value(seq))
                .col_expr(chain_head::Column::Hash, Expr::value(hash))
                .filter(chain_head::Column::WorkspaceId.eq(workspace_id))
                .exec(connection)
                .await?;
        }
    }
    let touched: Vec<&Account> = working
        .touched_accounts
        .iter()
        .filter_map(|id| working.accounts.get(id))
        .collect();
    for chunk in touched.chunks(CHUNK) {
        write_balances(connection, chunk).await?;
    }
    let created: BTreeSet<Key> = working.created.iter().copied().collect();
    for key in working.resolved.iter().filter(|key| !created.contains(key)) {
        let Some(transfer) = working.transfers.get(key) else {
            continue;
        };
        transfer::Entity::update_many()
            .col_expr(
                transfer::Column::PendingState,
                Expr::value(transfer.pending_state as i16),
            )
            .col_expr(
                transfer::Column::ResolvedAt,
                Expr::value(transfer.resolved_at),
            )
            .filter(transfer::Column::WorkspaceId.eq(key.0))
            .filter(transfer::Column::Id.eq(key.1))
            .exec(connection)
            .await?;
    }
    if !working.new_failures.is_empty() {
        let rows: Vec<failed::ActiveModel> = working
            .new_failures
            .iter()
            .map(|(id, workspace_id, result)| failed::ActiveModel {
                id: Set(*id),
                workspace_id: Set(*workspace_id),
                result: Set(*result as i32),
                created_at: Set(now),
            })
            .collect();
        for chunk in rows.chunks(CHUNK) {
            failed::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::columns([failed::Column::WorkspaceId, failed::Column::Id])
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(connection)
                .await
                .map_err(unique_is_conflict)?;
        }
    }
    Ok(())
}

/// A transfer id inserted concurrently by another transaction: run the batch again, and it will
/// answer EXISTS.
fn unique_is_conflict(error: DbErr) -> ServiceError {
    if kernel::db::is_unique_violation(&error) {
        ServiceError::retryable_conflict(error)
    } else {
        error.into()
    }
}
