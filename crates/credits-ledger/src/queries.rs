//! Reads: accounts, balances now and as of any past instant, and transfer history.

use kernel::ServiceError;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ConnectionTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::domain::{Account, TransferKind};
use crate::store::{self, StoredTransfer, account, transfer};

pub async fn get_account<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Option<Account>, ServiceError> {
    account::Entity::find_by_id((workspace_id, id))
        .one(connection)
        .await?
        .map(store::account_from_row)
        .transpose()
}

/// Accounts of a workspace by ascending id, optionally of one owner and asset.
pub async fn list_accounts<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    owner_id: Option<Uuid>,
    asset: Option<&str>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Account>, ServiceError> {
    let mut query = account::Entity::find()
        .filter(account::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(account::Column::Id)
        .limit(limit);
    if let Some(owner_id) = owner_id {
        query = query.filter(account::Column::OwnerId.eq(owner_id));
    }
    if let Some(asset) = asset {
        query = query.filter(account::Column::Asset.eq(asset));
    }
    if let Some(after) = after {
        query = query.filter(account::Column::Id.gt(after));
    }
    query
        .all(connection)
        .await?
        .into_iter()
        .map(store::account_from_row)
        .collect()
}

/// A wallet's balances, as a payout run reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalletBalance {
    pub owner_id: Uuid,
    pub account_id: Uuid,
    pub balances: Balances,
}

impl WalletBalance {
    /// What may leave the wallet now: posted balance minus what pending debits reserve.
    pub fn available(&self) -> i64 {
        self.balances.balance() - self.balances.debits_pending
    }
}

/// The wallets ([`crate::SystemAccount::Wallet`]) of one asset in a workspace, by ascending owner
/// after `after`: how a payout run walks every wallet once, in pages.
pub async fn wallets_after<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    asset: &str,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<WalletBalance>, ServiceError> {
    let mut query = account::Entity::find()
        .filter(account::Column::WorkspaceId.eq(workspace_id))
        .filter(account::Column::Code.eq("WALLET"))
        .filter(account::Column::Asset.eq(asset))
        .filter(account::Column::OwnerId.is_not_null())
        .order_by_asc(account::Column::OwnerId)
        .limit(limit);
    if let Some(after) = after {
        query = query.filter(account::Column::OwnerId.gt(after));
    }
    let mut wallets = Vec::new();
    for row in query.all(connection).await? {
        let account = store::account_from_row(row)?;
        let Some(owner_id) = account.owner_id else {
            continue;
        };
        // A client's own account may carry the code WALLET; only the derived one is a wallet.
        if crate::SystemAccount::Wallet(owner_id).id(workspace_id, asset) != account.id {
            continue;
        }
        wallets.push(WalletBalance {
            owner_id,
            account_id: account.id,
            balances: Balances::of(&account),
        });
    }
    Ok(wallets)
}

/// The balances of a system account; zeros when it does not exist yet.
pub async fn system_balances<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    kind: &crate::SystemAccount,
    asset: &str,
) -> Result<Balances, ServiceError> {
    Ok(
        get_account(connection, workspace_id, kind.id(workspace_id, asset))
            .await?
            .map(|account| Balances::of(&account))
            .unwrap_or_default(),
    )
}

/// The four balances of an account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balances {
    pub debits_posted: i64,
    pub credits_posted: i64,
    pub debits_pending: i64,
    pub credits_pending: i64,
}

impl Balances {
    pub fn of(account: &Account) -> Balances {
        Balances {
            debits_posted: account.debits_posted,
            credits_posted: account.credits_posted,
            debits_pending: account.debits_pending,
            credits_pending: account.credits_pending,
        }
    }

    pub fn balance(&self) -> i64 {
        self.credits_posted - self.debits_posted
    }
}

async fn sum_amounts<C: ConnectionTrait>(
    connection: &C,
    condition: Condition,
) -> Result<i64, ServiceError> {
    let total: Option<i64> = transfer::Entity::find()
        .select_only()
        .column_as(
            Expr::cust("CAST(COALESCE(SUM(amount), 0) AS BIGINT)"),
            "total",
        )
        .filter(condition)
        .into_tuple()
        .one(connection)
        .await?;
    Ok(total.unwrap_or(0))
}

/// The balances as they stood at `as_of` (microseconds), recomputed exactly from the transfers:
/// single and post transfers count from their creation; a pending transfer reserves from its
/// creation until it was posted, voided or expired. `None` recomputes the current stored state, in
/// which a pending transfer past its timeout reserves until the sweeper voids it.
pub async fn balances_as_of<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    account_id: Uuid,
    as_of: Option<i64>,
) -> Result<Balances, ServiceError> {
    let expiry_counts = as_of.is_some();
    let as_of = as_of.unwrap_or(i64::MAX);
    let posting = || {
        Condition::any()
            .add(transfer::Column::Kind.eq(TransferKind::Single as i16))
            .add(transfer::Column::Kind.eq(TransferKind::Post as i16))
    };
    let reserving = || {
        Condition::all()
            .add(transfer::Column::Kind.eq(TransferKind::Pending as i16))
            .add(
                Condition::any()
                    .add(transfer::Column::ResolvedAt.is_null())
                    .add(transfer::Column::ResolvedAt.gt(as_of)),
            )
            .add(if expiry_counts {
                Condition::any()
                    .add(transfer::Column::ExpiresAt.is_null())
                    .add(transfer::Column::ExpiresAt.gt(as_of))
            } else {
                Condition::all()
            })
    };
    let side = |column: transfer::Column, kind: Condition| {
        Condition::all()
            .add(transfer::Column::WorkspaceId.eq(workspace_id))
            .add(column.eq(account_id))
            .add(transfer::Column::CreatedAt.lte(as_of))
            .add(kind)
    };
    Ok(Balances {
        debits_posted: sum_amounts(
            connection,
            side(transfer::Column::DebitAccountId, posting()),
        )
        .await?,
        credits_posted: sum_amounts(
            connection,
            side(transfer::Column::CreditAccountId, posting()),
        )
        .await?,
        debits_pending: sum_amounts(
            connection,
            side(transfer::Column::DebitAccountId, reserving()),
        )
        .await?,
        credits_pending: sum_amounts(
            connection,
            side(transfer::Column::CreditAccountId, reserving()),
        )
        .await?,
    })
}

/// What to list transfers by; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct TransferFilter {
    pub account_id: Option<Uuid>,
    pub code: Option<String>,
    pub reference: Option<String>,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
}

/// Transfers of a workspace in commit order (by `seq`), strictly after `after_seq`.
pub async fn list_transfers<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    filter: &TransferFilter,
    after_seq: Option<i64>,
    limit: u64,
) -> Result<Vec<StoredTransfer>, ServiceError> {
    let mut query = transfer::Entity::find()
        .filter(transfer::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(transfer::Column::Seq)
        .limit(limit);
    if let Some(account_id) = filter.account_id {
        query = query.filter(
            Condition::any()
                .add(transfer::Column::DebitAccountId.eq(account_id))
                .add(transfer::Column::CreditAccountId.eq(account_id)),
        );
    }
    if let Some(code) = &filter.code {
        query = query.filter(transfer::Column::Code.eq(code.as_str()));
    }
    if let Some(reference) = &filter.reference {
        query = query.filter(transfer::Column::Reference.eq(reference.as_str()));
    }
    if let Some(start) = filter.start_time {
        query = query.filter(transfer::Column::CreatedAt.gte(start));
    }
    if let Some(end) = filter.end_time {
        query = query.filter(transfer::Column::CreatedAt.lt(end));
    }
    if let Some(after_seq) = after_seq {
        query = query.filter(transfer::Column::Seq.gt(after_seq));
    }
    query
        .all(connection)
        .await?
        .into_iter()
        .map(store::transfer_from_row)
        .collect()
}

pub async fn get_transfer<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Option<StoredTransfer>, ServiceError> {
    transfer::Entity::find_by_id((workspace_id, id))
        .one(connection)
        .await?
        .map(store::transfer_from_row)
        .transpose()
}
