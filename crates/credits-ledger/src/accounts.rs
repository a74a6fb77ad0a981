//! Creating accounts, and the system accounts every workspace gets on demand.

use std::collections::BTreeMap;

use kernel::ServiceError;
use kernel::money::Asset;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, QueryFilter};

use crate::domain::{
    self, Account, CREDITS_MUST_NOT_EXCEED_DEBITS, DEBITS_MUST_NOT_EXCEED_CREDITS,
    MANAGED_BY_DOMAIN,
};
use crate::store::{self, account};

/// The outcome of creating one account; numbered as `promo.ledger.v1.CreateAccountResult`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum CreateAccountResult {
    Created = 1,
    Exists = 2,
    ExistsWithDifferentFields = 3,
    InvalidId = 4,
    InvalidAsset = 5,
    FlagsAreMutuallyExclusive = 6,
    InvalidCode = 7,
    InvalidOwnerId = 8,
    /// The id is a version-5 UUID, the namespace of ids the platform derives.
    IdReserved = 9,
}

/// An account as a client asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    pub id: Uuid,
    pub owner_id: Option<Uuid>,
    pub asset: String,
    pub code: String,
    pub flags: u32,
    pub metadata: BTreeMap<String, String>,
}

fn validate(account: &NewAccount) -> Result<(), CreateAccountResult> {
    if account.id.is_nil() || account.id.is_max() {
        return Err(CreateAccountResult::InvalidId);
    }
    if kernel::ids::is_reserved(&account.id) {
        return Err(CreateAccountResult::IdReserved);
    }
    if Asset::parse(&account.asset).is_none() {
        return Err(CreateAccountResult::InvalidAsset);
    }
    let both = DEBITS_MUST_NOT_EXCEED_CREDITS | CREDITS_MUST_NOT_EXCEED_DEBITS;
    if account.flags & both == both || account.flags > both {
        return Err(CreateAccountResult::FlagsAreMutuallyExclusive);
    }
    if !domain::valid_account_code(&account.code) || !domain::valid_metadata(&account.metadata) {
        return Err(CreateAccountResult::InvalidCode);
    }
    if account.owner_id.is_some_and(|owner| owner.is_nil()) {
        return Err(CreateAccountResult::InvalidOwnerId);
    }
    Ok(())
}

/// Creates a client's accounts in the caller's transaction; an exact repeat answers EXISTS. Only
/// ids of this workspace are looked at: an id used in another workspace is free here.
pub async fn create_accounts<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    accounts: &[NewAccount],
    now: i64,
) -> Result<Vec<CreateAccountResult>, ServiceError> {
    let ids: Vec<Uuid> = accounts.iter().map(|account| account.id).collect();
    let mut existing: BTreeMap<Uuid, Account> = BTreeMap::new();
    for chunk in ids.chunks(500) {
        for row in account::Entity::find()
            .filter(account::Column::WorkspaceId.eq(workspace_id))
            .filter(account::Column::Id.is_in(chunk.iter().copied()))
            .all(connection)
            .await?
        {
            existing.insert(row.id, store::account_from_row(row)?);
        }
    }
    let mut results = Vec::with_capacity(accounts.len());
    let mut rows = Vec::new();
    for requested in accounts {
        if let Err(result) = validate(requested) {
            results.push(result);
            continue;
        }
        if let Some(stored) = existing.get(&requested.id) {
            let same = stored.owner_id == requested.owner_id
                && stored.asset == requested.asset
                && stored.code == requested.code
                && stored.flags == requested.flags
                && stored.metadata == requested.metadata;
            results.push(if same {
                CreateAccountResult::Exists
            } else {
                CreateAccountResult::ExistsWithDifferentFields
            });
            continue;
        }
        let account = Account {
            id: requested.id,
            workspace_id,
            owner_id: requested.owner_id,
            asset: requested.asset.clone(),
            code: requested.code.clone(),
            flags: requested.flags,
            debits_posted: 0,
            credits_posted: 0,
            debits_pending: 0,
            credits_pending: 0,
            metadata: requested.metadata.clone(),
            created_at: now,
        };
        rows.push(account::ActiveModel::from(store::account_to_row(&account)));
        existing.insert(account.id, account);
        results.push(CreateAccountResult::Created);
    }
    for chunk in rows.chunks(500) {
        account::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(connection)
            .await
            .map_err(|error| {
                if kernel::db::is_unique_violation(&error) {
                    ServiceError::retryable_conflict(error)
                } else {
                    error.into()
                }
            })?;
    }
    Ok(results)
}

/// Accounts the platform keeps per workspace and asset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SystemAccount {
    /// Where value enters from outside (purchases, funding); may go negative.
    External,
    /// What the platform earns.
    PlatformRevenue,
    /// Where promotional value comes from (promo-code credits, referral and badge rewards); may
    /// go negative: its balance is minus what promotions have granted. The domain that grants
    /// bounds it (a campaign's budget).
    Promotional,
    /// Value held for a purpose another domain names (a promotion budget, a campaign).
    Escrow(String),
    /// An owner's wallet; it can never be overdrawn.
    Wallet(Uuid),
    /// Money on its way to a payout provider: out of wallets, not yet confirmed paid (it goes
    /// on to the external account, or back to the wallet when the payout fails).
    PayoutsInFlight,
}

impl SystemAccount {
    fn key(&self, asset: &str) -> String {
        match self {
            SystemAccount::External => format!("system:external:{asset}"),
            SystemAccount::PlatformRevenue => format!("system:revenue:{asset}"),
            SystemAccount::Promotional => format!("system:promotional:{asset}"),
            SystemAccount::Escrow(name) => format!("escrow:{name}:{asset}"),
            SystemAccount::Wallet(owner) => format!("wallet:{owner}:{asset}"),
            SystemAccount::PayoutsInFlight => format!("system:payouts_in_flight:{asset}"),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            SystemAccount::External => "EXTERNAL",
            SystemAccount::PlatformRevenue => "PLATFORM_REVENUE",
            SystemAccount::Promotional => "PROMOTIONAL",
            SystemAccount::Escrow(_) => "ESCROW",
            SystemAccount::Wallet(_) => "WALLET",
            SystemAccount::PayoutsInFlight => "PAYOUTS_IN_FLIGHT",
        }
    }

    fn flags(&self) -> u32 {
        match self {
            SystemAccount::External | SystemAccount::Promotional => MANAGED_BY_DOMAIN,
            _ => DEBITS_MUST_NOT_EXCEED_CREDITS | MANAGED_BY_DOMAIN,
        }
    }

    /// The account's id: derived from workspace, purpose and asset, so every replica agrees. It is
    /// a reserved (version-5) id that no client can create, in a workspace-scoped key that no
    /// other workspace can touch.
    pub fn id(&self, workspace_id: Uuid, asset: &str) -> Uuid {
        kernel::ids::derived(&workspace_id, &self.key(asset))
    }
}

/// The system account `kind` of `asset` as it is created: its derived id, owner, code, flags and
/// metadata, with zero balances.
pub fn system_account(workspace_id: Uuid, kind: &SystemAccount, asset: &str, now: i64) -> Account {
    let owner_id = match kind {
        SystemAccount::Wallet(owner) => Some(*owner),
        _ => None,
    };
    let mut metadata = BTreeMap::new();
    metadata.insert("system".to_owned(), kind.key(asset));
    Account {
        id: kind.id(workspace_id, asset),
        workspace_id,
        owner_id,
        asset: asset.to_owned(),
        code: kind.code().to_owned(),
        flags: kind.flags(),
        debits_posted: 0,
        credits_posted: 0,
        debits_pending: 0,
        credits_pending: 0,
        metadata,
        created_at: now,
    }
}

/// Creates the system account (managed by its domain) if it does not exist yet and returns its id.
pub async fn ensure_system_account<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    kind: &SystemAccount,
    asset: &str,
    now: i64,
) -> Result<Uuid, ServiceError> {
    if Asset::parse(asset).is_none() {
        return Err(ServiceError::invalid_field(
            crate::DOMAIN,
            "asset",
            format!("unknown asset {asset:?}"),
        ));
    }
    let account = system_account(workspace_id, kind, asset, now);
    let id = account.id;
    account::Entity::insert(account::ActiveModel::from(store::account_to_row(&account)))
        .on_conflict(
            OnConflict::columns([account::Column::WorkspaceId, account::Column::Id])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(connection)
        .await?;
    Ok(id)
}
