//! What a reservation holds — one use of each coupon, one use and the budget of each campaign,
//! one of the customer's uses of each limited coupon or campaign — and how a rollback or expiry
//! releases exactly that.

use std::collections::{BTreeMap, BTreeSet};

use kernel::ServiceError;
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::loaded::Loaded;
use crate::offer::{Order, Priced};
use crate::redemptions::{EXPIRED, RESERVED};
use crate::snapshot::Change;
use crate::state::Marketing;
use crate::store::{self, redemption};

/// One applied effect as a redemption stores it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredEffect {
    pub(crate) campaign_id: Option<Uuid>,
    pub(crate) rule_id: Uuid,
    pub(crate) coupon: Option<(Uuid, String)>,
    pub(crate) amount: i64,
    pub(crate) lines: Vec<(String, i64)>,
    pub(crate) shipping: i64,
}

/// What a reservation holds, released exactly by a rollback or expiry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Held {
    pub(crate) effects: Vec<StoredEffect>,
    /// One use of each, in id order.
    pub(crate) coupons: Vec<Uuid>,
    /// The discount each campaign gave, in id order (counted when the redemption is confirmed).
    pub(crate) campaigns: Vec<(Uuid, i64)>,
    /// The campaigns with a budget or a total limit, whose use and budget this reservation holds,
    /// in id order. A campaign without either has nothing to hold, so reserving never touches its
    /// row (which every cart of an automatic campaign would otherwise queue on).
    #[serde(default)]
    pub(crate) reserved_campaigns: Vec<Uuid>,
    /// One of the customer's uses of each coupon or campaign, in id order.
    pub(crate) customer_scopes: Vec<Uuid>,
}

/// What a priced cart must hold.
pub(crate) fn holds(priced: &Priced, loaded: &Loaded, order: &Order) -> Held {
    let mut held = Held::default();
    let mut campaigns: BTreeMap<Uuid, i64> = BTreeMap::new();
    let mut scopes = BTreeSet::new();
    for effect in &priced.evaluation.effects {
        let Some(source) = priced.source(effect.key) else {
            continue;
        };
        if let Some((coupon_id, _)) = &source.coupon {
            held.coupons.push(*coupon_id);
            if loaded
                .coupons
                .values()
                .any(|coupon| coupon.id == *coupon_id && coupon.usage_limit_per_customer > 0)
            {
                scopes.insert(*coupon_id);
            }
        }
        if let Some(campaign_id) = source.campaign_id {
            *campaigns.entry(campaign_id).or_default() += effect.amount;
            if loaded
                .campaigns
                .get(&campaign_id)
                .is_some_and(|campaign| campaign.usage_limit_per_customer > 0)
            {
                scopes.insert(campaign_id);
            }
        }
        held.effects.push(StoredEffect {
            campaign_id: source.campaign_id,
            rule_id: source.rule_id,
            coupon: source.coupon.clone(),
            amount: effect.amount,
            lines: effect
                .lines
                .iter()
                .map(|(index, amount)| (order.cart.lines[*index].line_id.clone(), *amount))
                .collect(),
            shipping: effect.shipping,
        });
    }
    held.coupons.sort();
    held.coupons.dedup();
    held.campaigns = campaigns.into_iter().collect();
    held.reserved_campaigns =
        held.campaigns
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| {
                loaded.campaigns.get(id).is_some_and(|campaign| {
                    campaign.budget.is_some() || campaign.usage_limit_total > 0
                })
            })
            .collect();
    held.customer_scopes = scopes.into_iter().collect();
    held
}

impl Held {
    /// The reserved campaigns with the budget each holds, as snapshot changes of `sign`.
    fn reserved(&self, sign: i64) -> impl Iterator<Item = Change> + '_ {
        self.reserved_budgets()
            .map(move |(id, amount)| Change::Counter {
                id,
                uses: sign,
                budget: sign * amount,
            })
    }

    /// The reserved campaigns with the budget each holds, in id order.
    pub(crate) fn reserved_budgets(&self) -> impl Iterator<Item = (Uuid, i64)> + '_ {
        self.campaigns
            .iter()
            .filter(|(id, _)| self.reserved_campaigns.contains(id))
            .copied()
    }
}

/// The snapshot changes a reservation (sign 1) or its release (sign −1) makes.
pub(crate) fn counter_changes(held: &Held, sign: i64) -> Vec<Change> {
    held.coupons
        .iter()
        .map(|id| Change::Counter {
            id: *id,
            uses: sign,
            budget: 0,
        })
        .chain(held.reserved(sign))
        .collect()
}

/// Releases what a reserved redemption holds and moves it to `status` (ROLLED_BACK or
/// EXPIRED) in the open transaction; `false` when it was no longer reserved.
pub(crate) async fn release<C: ConnectionTrait>(
    connection: &C,
    row: &redemption::Model,
    status: i32,
    reason: &str,
    now: i64,
) -> Result<Option<Held>, ServiceError> {
    let (workspace_id, id) = (row.workspace_id, row.id);
    let held: Held = kernel::db::json_column("mkt_redemption", id, "effects", &row.effects)?;
    // Coupons before campaigns, each in id order: the order CreateRedemption locks in.
    store::lock_coupons_by_id(connection, workspace_id, &held.coupons).await?;
    let campaign_ids: Vec<Uuid> = held.campaigns.iter().map(|(id, _)| *id).collect();
    store::campaigns_by_ids(connection, workspace_id, &campaign_ids, true).await?;
    if !store::transition_redemption(connection, workspace_id, id, RESERVED, status, reason, now)
        .await?
    {
        return Ok(None);
    }
    for coupon_id in &held.coupons {
        store::move_coupon(connection, workspace_id, *coupon_id, -1, 0, now).await?;
    }
    for (campaign_id, amount) in held.reserved_budgets() {
        store::move_campaign(
            connection,
            workspace_id,
            campaign_id,
            (-1, -amount),
            (0, 0),
            now,
        )
        .await?;
    }
    if let Some(customer) = row.customer_id {
        for scope in &held.customer_scopes {
            store::release_customer_use(connection, workspace_id, *scope, customer).await?;
        }
    }
    Ok(Some(held))
}

/// Expires one reservation past its time (the sweeper); `true` when it did.
pub(crate) async fn expire(
    core: &Marketing,
    row: &redemption::Model,
) -> Result<bool, ServiceError> {
    let now = core.now();
    let released = core
        .context
        .write(|txn| async move {
            let held = release(&*txn, row, EXPIRED, "", now).await?;
            Ok((txn, held))
        })
        .await?;
    if let Some(held) = &released {
        core.snapshots
            .record(row.workspace_id, counter_changes(held, -1), None);
        tracing::info!(redemption_id = %row.id, "reservation expired");
    }
    Ok(released.is_some())
}
