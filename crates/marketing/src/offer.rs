//! What a cart is offered: the rules of the active automatic campaigns and of the coupons the
//! customer entered, checked against their windows, limits and budgets, then priced by
//! [`crate::pricing::evaluate`]. The same function serves EvaluateCart (on the in-memory snapshot),
//! ValidateCoupon and CreateRedemption (on rows read in the transaction), so every path prices
//! alike.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::model::{CampaignDef, CouponDef, RuleDef};
use crate::pricing::{self, Candidate, Evaluation};

/// Most coupon codes one cart may carry.
pub const MAX_CODES: usize = 20;

/// Where pricing reads campaigns, rules and coupons from.
pub trait View {
    /// The coupon with this normalized code.
    fn coupon(&self, code: &str) -> Option<&CouponDef>;
    fn campaign(&self, id: Uuid) -> Option<&CampaignDef>;
    fn rule(&self, id: Uuid) -> Option<&RuleDef>;
    /// Campaigns that apply without a code (by id; whether each is active is checked here).
    fn automatic_campaigns(&self) -> Vec<&CampaignDef>;
    /// Uses of a coupon or campaign (`scope`) this customer holds; `None` when the view does not
    /// know (the in-memory snapshot does not keep per-customer counts).
    fn customer_uses(&self, scope: Uuid, customer: Uuid) -> Option<i64>;
    /// A coupon's uses held now (the view may know newer counts than the definition).
    fn coupon_uses(&self, coupon: &CouponDef) -> i64 {
        coupon.uses_held
    }
    /// A campaign's `(uses held, budget used)` now.
    fn campaign_counters(&self, campaign: &CampaignDef) -> (i64, i64) {
        (campaign.uses_held, campaign.budget_used)
    }
}

/// A cart as the storefront sent it, with its local time already placed in the cart.
#[derive(Clone, Debug)]
pub struct Order {
    pub currency: String,
    pub customer_id: Option<Uuid>,
    pub cart: pricing::Cart,
}

/// Names a candidate, or a campaign whose budget candidates share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Candidate(usize),
    Campaign(usize),
}

/// Where an offered rule came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub campaign_id: Option<Uuid>,
    pub rule_id: Uuid,
    /// The coupon `(id, code)` that offered it; `None` for an automatic campaign.
    pub coupon: Option<(Uuid, String)>,
}

/// A priced cart.
#[derive(Clone, Debug)]
pub struct Priced {
    pub evaluation: Evaluation<Key>,
    /// Indexed by `Key::Candidate`.
    pub sources: Vec<Source>,
    /// Codes that did not apply, in request order, with the contract's reason.
    pub rejected: Vec<(String, &'static str)>,
}

impl Priced {
    pub fn source(&self, key: Key) -> Option<&Source> {
        match key {
            Key::Candidate(index) => self.sources.get(index),
            Key::Campaign(_) => None,
        }
    }
}

/// Checks that apply to a campaign whichever way it is offered.
fn campaign_refusal(
    view: &impl View,
    campaign: &CampaignDef,
    order: &Order,
    now: i64,
) -> Option<&'static str> {
    if !campaign.is_active(now) {
        return Some("CAMPAIGN_NOT_ACTIVE");
    }
    if campaign.budget.is_some() && campaign.currency != order.currency {
        return Some("CURRENCY_MISMATCH");
    }
    let (uses, budget_used) = view.campaign_counters(campaign);
    if campaign.usage_limit_total > 0 && uses >= campaign.usage_limit_total {
        return Some("COUPON_USAGE_LIMIT_REACHED");
    }
    if campaign.budget.is_some_and(|budget| budget_used >= budget) {
        return Some("CAMPAIGN_BUDGET_EXHAUSTED");
    }
    per_customer_refusal(view, campaign.id, campaign.usage_limit_per_customer, order)
}

fn per_customer_refusal(
    view: &impl View,
    scope: Uuid,
    limit: i64,
    order: &Order,
) -> Option<&'static str> {
    if limit == 0 {
        return None;
    }
    let Some(customer) = order.customer_id else {
        return Some("CUSTOMER_NOT_ELIGIBLE");
    };
    match view.customer_uses(scope, customer) {
        Some(uses) if uses >= limit => Some("CUSTOMER_USAGE_LIMIT_REACHED"),
        _ => None,
    }
}

fn rule_refusal(rule: &RuleDef, order: &Order) -> Option<&'static str> {
    (!rule.currency.is_empty() && rule.currency != order.currency).then_some("CURRENCY_MISMATCH")
}

/// Checks one coupon; on success the rule it grants and its campaign, if any.
pub fn check_coupon<'v, V: View>(
    view: &'v V,
    coupon: &'v CouponDef,
    order: &Order,
    now: i64,
) -> Result<(&'v RuleDef, Option<&'v CampaignDef>), &'static str> {
    // A coupon bound to someone else does not exist for this cart.
    if coupon
        .customer_id
        .is_some_and(|bound| order.customer_id != Some(bound))
    {
        return Err("COUPON_NOT_FOUND");
    }
    let rule = view.rule(coupon.rule_id).ok_or("COUPON_NOT_FOUND")?;
    if coupon.valid_from.is_some_and(|from| from > now) {
        return Err("COUPON_NOT_YET_VALID");
    }
    if coupon.valid_until.is_some_and(|until| until <= now) {
        return Err("COUPON_EXPIRED");
    }
    if let Some(reason) = rule_refusal(rule, order) {
        return Err(reason);
    }
    let campaign = match coupon.campaign_id {
        Some(id) => {
            let campaign = view.campaign(id).ok_or("CAMPAIGN_NOT_ACTIVE")?;
            if let Some(reason) = campaign_refusal(view, campaign, order, now) {
                return Err(reason);
            }
            Some(campaign)
        }
        None => None,
    };
    if coupon.usage_limit > 0 && view.coupon_uses(coupon) >= coupon.usage_limit {
        return Err("COUPON_USAGE_LIMIT_REACHED");
    }
    if let Some(reason) =
        per_customer_refusal(view, coupon.id, coupon.usage_limit_per_customer, order)
    {
        return Err(reason);
    }
    Ok((rule, campaign))
}

/// Prices `order` with the automatic campaigns and the coupons `codes` (normalized here).
pub fn price(view: &impl View, order: &Order, codes: &[String], now: i64) -> Priced {
    let mut sources: Vec<Source> = Vec::new();
    let mut rules: Vec<&pricing::Rule> = Vec::new();
    let mut budgets: Vec<Option<(Key, i64)>> = Vec::new();
    // Candidates sharing a campaign's budget name it by the same key: its place in this list.
    let mut campaigns: Vec<Uuid> = Vec::new();
    let mut rejected = Vec::new();
    let mut budget_of = |campaign: &CampaignDef| {
        campaign.budget.map(|budget| {
            let (_, used) = view.campaign_counters(campaign);
            let index = match campaigns.iter().position(|known| *known == campaign.id) {
                Some(index) => index,
                None => {
                    campaigns.push(campaign.id);
                    campaigns.len() - 1
                }
            };
            (Key::Campaign(index), (budget - used).max(0))
        })
    };
    for campaign in view.automatic_campaigns() {
        if campaign_refusal(view, campaign, order, now).is_some() {
            continue;
        }
        let budget = budget_of(campaign);
        for rule_id in &campaign.rule_ids {
            let Some(rule) = view.rule(*rule_id) else {
                continue;
            };
            if rule_refusal(rule, order).is_some() {
                continue;
            }
            sources.push(Source {
                campaign_id: Some(campaign.id),
                rule_id: rule.id,
                coupon: None,
            });
            rules.push(&rule.rule);
            budgets.push(budget);
        }
    }
    let automatic = sources.len();
    let mut seen = BTreeSet::new();
    for code in codes {
        let normalized = crate::codes::normalize(code);
        let Some(coupon) = normalized.as_deref().and_then(|code| view.coupon(code)) else {
            rejected.push((code.clone(), "COUPON_NOT_FOUND"));
            continue;
        };
        if !seen.insert(coupon.id) {
            rejected.push((code.clone(), "NOT_COMBINABLE"));
            continue;
        }
        match check_coupon(view, coupon, order, now) {
            Ok((rule, campaign)) => {
                sources.push(Source {
                    campaign_id: campaign.map(|campaign| campaign.id),
                    rule_id: rule.id,
                    coupon: Some((coupon.id, coupon.code.clone())),
                });
                rules.push(&rule.rule);
                budgets.push(campaign.and_then(&mut budget_of));
            }
            Err(reason) => rejected.push((code.clone(), reason)),
        }
    }
    let candidates: Vec<Candidate<'_, Key>> = rules
        .iter()
        .zip(budgets)
        .enumerate()
        .map(|(index, (rule, budget))| Candidate {
            key: Key::Candidate(index),
            rule,
            budget,
        })
        .collect();
    let evaluation = pricing::evaluate(&order.cart, &candidates);
    // Coupons the engine turned down join the list, in the order they were entered.
    for (key, rejection) in &evaluation.rejected {
        if let Key::Candidate(index) = key
            && *index >= automatic
            && let Some((_, code)) = &sources[*index].coupon
        {
            let entered = codes
                .iter()
                .find(|entered| crate::codes::normalize(entered).as_deref() == Some(code))
                .cloned()
                .unwrap_or_else(|| code.clone());
            rejected.push((entered, rejection.reason()));
        }
    }
    let position = |code: &String| codes.iter().position(|entered| entered == code);
    rejected.sort_by_key(|(code, _)| position(code));
    Priced {
        evaluation,
        sources,
        rejected,
    }
}
