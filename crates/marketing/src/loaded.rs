//! Pricing's view of rows read in a transaction: what CreateRedemption prices under its locks and
//! what ValidateCoupon checks (per-customer limits included, which the snapshot does not keep).

use std::collections::{BTreeSet, HashMap};

use kernel::{Principal, ServiceError};
use proto::marketing::v1 as pb;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::DOMAIN;
use crate::model::{CampaignDef, CouponDef, RuleDef};
use crate::offer::{self, Order, View};
use crate::state::Marketing;
use crate::store;

/// Pricing's view of rows read in a transaction.
#[derive(Default)]
pub(crate) struct Loaded {
    pub(crate) coupons: HashMap<String, CouponDef>,
    pub(crate) campaigns: HashMap<Uuid, CampaignDef>,
    pub(crate) automatic: Vec<Uuid>,
    pub(crate) rules: HashMap<Uuid, RuleDef>,
    pub(crate) customer_uses: HashMap<Uuid, i64>,
}

impl View for Loaded {
    fn coupon(&self, code: &str) -> Option<&CouponDef> {
        self.coupons.get(code)
    }
    fn campaign(&self, id: Uuid) -> Option<&CampaignDef> {
        self.campaigns.get(&id)
    }
    fn rule(&self, id: Uuid) -> Option<&RuleDef> {
        self.rules.get(&id)
    }
    fn automatic_campaigns(&self) -> Vec<&CampaignDef> {
        self.automatic
            .iter()
            .filter_map(|id| self.campaigns.get(id))
            .collect()
    }
    fn customer_uses(&self, scope: Uuid, _customer: Uuid) -> Option<i64> {
        Some(self.customer_uses.get(&scope).copied().unwrap_or(0))
    }
}

fn limited(campaign: &crate::store::campaign::Model) -> bool {
    campaign.budget.is_some()
        || campaign.usage_limit_total > 0
        || campaign.usage_limit_per_customer > 0
}

/// Reads what pricing `codes` for `customer` needs; with `lock`, locks the coupons and the
/// limited campaigns (coupons first, each in id order).
pub(crate) async fn load<C: ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    codes: &[String],
    customer: Option<Uuid>,
    lock: bool,
) -> Result<Loaded, ServiceError> {
    let normalized: Vec<String> = codes
        .iter()
        .filter_map(|code| crate::codes::normalize(code))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let coupon_rows = store::coupons_by_codes(connection, workspace_id, &normalized, lock).await?;
    let mut loaded = Loaded::default();
    let coupon_campaigns: BTreeSet<Uuid> = coupon_rows
        .iter()
        .filter_map(|row| row.campaign_id)
        .collect();
    // Live campaigns only: a coupon's campaign that is not live reads CAMPAIGN_NOT_ACTIVE.
    let mut to_lock = Vec::new();
    for row in store::live_campaigns(connection, workspace_id).await? {
        let campaign = CampaignDef::from_row(&row)?;
        if !campaign.automatic && !coupon_campaigns.contains(&campaign.id) {
            continue;
        }
        if campaign.automatic {
            loaded.automatic.push(campaign.id);
        }
        if lock && limited(&row) {
            to_lock.push(campaign.id);
        }
        loaded.campaigns.insert(campaign.id, campaign);
    }
    // The limited ones are read again under their locks (in id order): their counters are current.
    for row in store::campaigns_by_ids(connection, workspace_id, &to_lock, true).await? {
        loaded
            .campaigns
            .insert(row.id, CampaignDef::from_row(&row)?);
    }
    let mut rule_ids: BTreeSet<Uuid> = coupon_rows.iter().map(|row| row.rule_id).collect();
    for campaign in loaded.campaigns.values() {
        if campaign.automatic {
            rule_ids.extend(campaign.rule_ids.iter().copied());
        }
    }
    let rule_ids: Vec<Uuid> = rule_ids.into_iter().collect();
    for row in store::rules_by_ids(connection, workspace_id, &rule_ids).await? {
        loaded.rules.insert(row.id, RuleDef::from_row(&row)?);
    }
    if let Some(customer) = customer {
        let scopes: Vec<Uuid> = coupon_rows
            .iter()
            .map(|row| row.id)
            .chain(loaded.campaigns.keys().copied())
            .collect();
        for (scope, held) in
            store::customer_uses(connection, workspace_id, customer, &scopes).await?
        {
            loaded.customer_uses.insert(scope, held);
        }
    }
    for row in &coupon_rows {
        loaded
            .coupons
            .insert(row.code.clone(), CouponDef::from_row(row));
    }
    Ok(loaded)
}

/// ValidateCoupon: the coupon checked against the database (per-customer limits included) and
/// priced on the cart when one is given.
pub(crate) async fn validate(
    core: &Marketing,
    principal: &Principal,
    body: &pb::ValidateCouponRequest,
    customer: Option<Uuid>,
) -> Result<pb::ValidateCouponResponse, ServiceError> {
    let workspace_id = principal.workspace_id;
    let snapshot = core.snapshots.get(workspace_id).await?;
    let now = core.now();
    let mut order = match &body.cart {
        Some(cart) => crate::convert::order_from_proto(Some(cart.clone()), snapshot.zone, now)?,
        None => Order {
            currency: String::new(),
            customer_id: None,
            cart: crate::pricing::Cart::default(),
        },
    };
    if order.customer_id.is_none() {
        order.customer_id = customer;
    } else if customer.is_some() && order.customer_id != customer {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "cart.customer_id",
            "must be the customer the coupon is validated for",
        ));
    }
    let codes = vec![body.code.clone()];
    let loaded = load(
        core.context.db.connection(),
        workspace_id,
        &codes,
        order.customer_id,
        false,
    )
    .await?;
    let reject = |reason: &str| pb::ValidateCouponResponse {
        valid: false,
        reason: reason.to_owned(),
        discount: None,
    };
    let Some(coupon) = crate::codes::normalize(&body.code).and_then(|code| loaded.coupon(&code))
    else {
        return Ok(reject("COUPON_NOT_FOUND"));
    };
    if body.cart.is_none() {
        // Without a cart the currency is the coupon's own: its rule's, else its campaign budget's.
        let currency = loaded
            .rule(coupon.rule_id)
            .map(|rule| rule.currency.clone())
            .filter(|currency| !currency.is_empty())
            .or_else(|| {
                let campaign = coupon.campaign_id.and_then(|id| loaded.campaign(id));
                campaign.map(|campaign| campaign.currency.clone())
            })
            .unwrap_or_default();
        order.currency = currency;
        return Ok(match offer::check_coupon(&loaded, coupon, &order, now) {
            Ok(_) => pb::ValidateCouponResponse {
                valid: true,
                reason: String::new(),
                discount: None,
            },
            Err(reason) => reject(reason),
        });
    }
    let priced = offer::price(&loaded, &order, &codes, now);
    if let Some((_, reason)) = priced.rejected.first() {
        return Ok(reject(reason));
    }
    let amount: i64 = priced
        .evaluation
        .effects
        .iter()
        .filter(|effect| {
            priced
                .source(effect.key)
                .is_some_and(|source| source.coupon.is_some())
        })
        .map(|effect| effect.amount)
        .sum();
    Ok(pb::ValidateCouponResponse {
        valid: true,
        reason: String::new(),
        discount: Some(pb::Money {
            currency: order.currency.clone(),
            amount,
        }),
    })
}
