//! Cart pricing: what a cart costs under a set of discount rules. Pure: no I/O, no clock (the
//! caller passes the cart's local weekday and time of day), so the storefront's EvaluateCart can
//! run it on an in-memory snapshot and tests can run it on anything.
//!
//! # Declared semantics (every path computes exactly this)
//! - Amounts are integer minor units of the cart's one currency. A line's amount is
//!   `unit_price × quantity`.
//! - A rule's *eligible lines*: lines whose product is one of `product_ids` or that carry one of
//!   `category_ids` (all lines when both are empty), without sale items when `exclude_sale_items`.
//! - Each effect applies to what is *left* of a line (its amount minus the effects applied before
//!   it) and never takes a line below zero.
//! - **Percentage** (`bps`): each eligible line gives `bps` of what is left of it, rounded half-up
//!   to the minor unit. With `max_quantity`, it applies to that many units of the line: the base is
//!   `max_quantity / quantity` of what is left, floored.
//! - **Fixed amount**: `amount` (at most what is left of the eligible lines) spread over them in
//!   proportion to what is left of each with the largest-remainder splitter (kernel::money), ties to
//!   the earlier line; no line gets more than what is left of it.
//! - **Fixed per unit**: `amount` off each unit (never more than the unit price), for at most
//!   `max_quantity` units per line.
//! - **Free shipping**: what is left of the shipping.
//! - **Buy X get Y**: groups of `buy` units from the eligible lines, most expensive first, each
//!   followed by the `get` most expensive remaining units of the target lines (`get_scope`, the
//!   eligible lines when it is empty); only complete groups count; each free unit gives its unit
//!   price (within what is left of its line).
//! - **Tiered** (percentage or fixed): the highest tier the eligible lines reach (by their
//!   subtotal, or their quantity) applies as a percentage or fixed amount above. Tiers are ordered by
//!   their threshold, strictly increasing.
//! - `max_discount` caps an effect; a capped effect is spread over the lines it touched in
//!   proportion to their uncapped amounts (largest remainder).
//! - Conditions (customer tier, weekday, time of day, minimum eligible quantity) and the minimum
//!   eligible subtotal must hold, else the rule does not apply, with the reason.
//! - Order: higher `priority` first, then the order the candidates were given. Stackable effects
//!   stack in that order. An exclusive rule applies alone to the whole cart; the customer gets
//!   whichever is larger, the best exclusive effect (ties to the earlier) or the stack of stackable
//!   ones (which wins a tie); the candidates left out are rejected `NOT_COMBINABLE`.
//! - An effect larger than what is left of its campaign's budget (shared by every effect of that
//!   campaign in the cart) is not applied at all: rejected `CAMPAIGN_BUDGET_EXHAUSTED`.

use std::collections::BTreeMap;

use kernel::money::{Rounding, divide, split_weighted};
use serde::{Deserialize, Serialize};

mod bundles;
mod lines;
mod validation;

use lines::{LineIndex, eligible};

/// Most lines a cart may have.
pub const MAX_LINES: usize = 10_000;
/// Most units on one line.
pub const MAX_QUANTITY: i64 = 1_000_000;

/// One line of a cart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub line_id: String,
    pub product_id: String,
    pub category_ids: Vec<String>,
    pub quantity: i64,
    pub unit_price: i64,
    pub on_sale: bool,
}

impl Line {
    /// `unit_price × quantity` (validated carts keep it within MAX_AMOUNT).
    pub fn amount(&self) -> i64 {
        self.unit_price.saturating_mul(self.quantity)
    }
}

/// A cart as pricing sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cart {
    pub customer_tier: String,
    pub lines: Vec<Line>,
    pub shipping: i64,
    /// ISO weekday in the workspace time zone: 1 = Monday … 7 = Sunday.
    pub weekday: u8,
    /// Minutes since local midnight in the workspace time zone, 0..1440.
    pub minute_of_day: u16,
}

/// Which lines a rule (or a buy-X-get-Y target) applies to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub product_ids: Vec<String>,
    pub category_ids: Vec<String>,
    pub exclude_sale_items: bool,
}

impl Scope {
    /// The rule by definition, line by line (what [`eligible`] computes through the index).
    #[cfg(test)]
    pub(super) fn covers(&self, line: &Line) -> bool {
        if self.exclude_sale_items && line.on_sale {
            return false;
        }
        if self.product_ids.is_empty() && self.category_ids.is_empty() {
            return true;
        }
        self.product_ids.contains(&line.product_id)
            || line
                .category_ids
                .iter()
                .any(|category| self.category_ids.contains(category))
    }
}

/// A tier's threshold: eligible subtotal or eligible quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Threshold {
    Subtotal(i64),
    Quantity(i64),
}

/// One step of a tiered rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub threshold: Threshold,
    /// Basis points for a tiered percentage, minor units for a tiered fixed amount.
    pub value: i64,
}

/// The calculation of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    Percentage {
        bps: u32,
        max_quantity: Option<i64>,
    },
    FixedAmount {
        amount: i64,
    },
    FixedPerUnit {
        amount: i64,
        max_quantity: Option<i64>,
    },
    FreeShipping,
    BuyXGetY {
        buy: i64,
        get: i64,
        get_scope: Scope,
    },
    TieredPercentage {
        tiers: Vec<Tier>,
    },
    TieredFixed {
        tiers: Vec<Tier>,
    },
}

/// When a rule may apply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conditions {
    /// Empty: every tier.
    pub customer_tiers: Vec<String>,
    /// ISO weekdays 1..=7; empty: every day.
    pub days_of_week: Vec<u8>,
    /// `[start, end)` in minutes of the local day; a window with start > end wraps midnight.
    pub time_of_day: Option<(u16, u16)>,
    /// Least eligible units.
    pub min_quantity: i64,
}

/// A reusable discount calculation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub kind: Kind,
    pub scope: Scope,
    pub min_subtotal: i64,
    pub max_discount: Option<i64>,
    pub conditions: Conditions,
    pub exclusive: bool,
    pub priority: i32,
}

/// Why a candidate did not apply (the contract's reasons).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rejection {
    CustomerNotEligible,
    MinimumNotMet,
    NoEligibleItems,
    NotCombinable,
    CampaignBudgetExhausted,
}

impl Rejection {
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::CustomerNotEligible => "CUSTOMER_NOT_ELIGIBLE",
            Rejection::MinimumNotMet => "MINIMUM_NOT_MET",
            Rejection::NoEligibleItems => "NO_ELIGIBLE_ITEMS",
            Rejection::NotCombinable => "NOT_COMBINABLE",
            Rejection::CampaignBudgetExhausted => "CAMPAIGN_BUDGET_EXHAUSTED",
        }
    }
}

/// A rule offered to a cart: automatically by an active campaign, or by a coupon code.
#[derive(Clone, Debug)]
pub struct Candidate<'a, K> {
    /// Whatever the caller needs to name this candidate in the result (rule, campaign, coupon).
    pub key: K,
    pub rule: &'a Rule,
    /// The campaign whose budget pays it, with what is left of that budget; `None`: unlimited.
    pub budget: Option<(K, i64)>,
}

/// One applied rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect<K> {
    pub key: K,
    pub amount: i64,
    /// `(line index, amount)` of every line it discounted, in line order.
    pub lines: Vec<(usize, i64)>,
    pub shipping: i64,
}

/// What a cart costs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation<K> {
    pub subtotal: i64,
    /// Per line, in cart order.
    pub line_discounts: Vec<i64>,
    pub shipping_discount: i64,
    pub total_discount: i64,
    /// Subtotal + shipping − total discount.
    pub total: i64,
    pub effects: Vec<Effect<K>>,
    pub rejected: Vec<(K, Rejection)>,
}

/// What is left of each line and of the shipping while effects apply.
#[derive(Clone, Debug)]
struct Left {
    lines: Vec<i64>,
    shipping: i64,
}

fn check_conditions(cart: &Cart, rule: &Rule, lines: &[usize]) -> Result<(), Rejection> {
    let conditions = &rule.conditions;
    if !conditions.customer_tiers.is_empty()
        && !conditions.customer_tiers.contains(&cart.customer_tier)
    {
        return Err(Rejection::CustomerNotEligible);
    }
    if !conditions.days_of_week.is_empty() && !conditions.days_of_week.contains(&cart.weekday) {
        return Err(Rejection::CustomerNotEligible);
    }
    if let Some((start, end)) = conditions.time_of_day {
        let minute = cart.minute_of_day;
        let inside = if start < end {
            (start..end).contains(&minute)
        } else {
            minute >= start || minute < end
        };
        if !inside {
            return Err(Rejection::CustomerNotEligible);
        }
    }
    if lines.is_empty() && !matches!(rule.kind, Kind::FreeShipping) {
        return Err(Rejection::NoEligibleItems);
    }
    let quantity: i64 = lines.iter().map(|&index| cart.lines[index].quantity).sum();
    let subtotal: i64 = lines.iter().map(|&index| cart.lines[index].amount()).sum();
    if quantity < conditions.min_quantity || subtotal < rule.min_subtotal {
        return Err(Rejection::MinimumNotMet);
    }
    Ok(())
}

fn percentage(
    left: &Left,
    cart: &Cart,
    lines: &[usize],
    bps: i64,
    max_quantity: Option<i64>,
) -> Vec<(usize, i64)> {
    lines
        .iter()
        .map(|&index| {
            let quantity = cart.lines[index].quantity;
            let base = match max_quantity {
                Some(max) if max < quantity => divide(
                    i128::from(left.lines[index]) * i128::from(max),
                    i128::from(quantity),
                    Rounding::Floor,
                ) as i64,
                _ => left.lines[index],
            };
            let amount =
                divide(i128::from(base) * i128::from(bps), 10_000, Rounding::HalfUp) as i64;
            (index, amount.min(left.lines[index]))
        })
        .collect()
}

fn fixed_spread(left: &Left, lines: &[usize], amount: i64) -> Vec<(usize, i64)> {
    let available: i64 = lines.iter().map(|&index| left.lines[index]).sum();
    let amount = amount.min(available);
    if amount <= 0 {
        return Vec::new();
    }
    let weights: Vec<u64> = lines
        .iter()
        .map(|&index| left.lines[index] as u64)
        .collect();
    match split_weighted(amount, &weights) {
        Ok(parts) => lines.iter().copied().zip(parts).collect(),
        Err(_) => Vec::new(),
    }
}

/// The uncapped effect of `rule` on what is left; `Err` when it does not apply.
fn compute(
    cart: &Cart,
    index: &LineIndex<'_>,
    left: &Left,
    rule: &Rule,
) -> Result<(Vec<(usize, i64)>, i64), Rejection> {
    let lines = eligible(cart, index, &rule.scope);
    check_conditions(cart, rule, &lines)?;
    let (mut parts, shipping) = match &rule.kind {
        Kind::Percentage { bps, max_quantity } => (
            percentage(left, cart, &lines, i64::from(*bps), *max_quantity),
            0,
        ),
        Kind::FixedAmount { amount } => (fixed_spread(left, &lines, *amount), 0),
        Kind::FixedPerUnit {
            amount,
            max_quantity,
        } => (
            lines
                .iter()
                .map(|&index| {
                    let line = &cart.lines[index];
                    let units = max_quantity.map_or(line.quantity, |max| max.min(line.quantity));
                    let discount = (*amount).min(line.unit_price).saturating_mul(units);
                    (index, discount.min(left.lines[index]))
                })
                .collect(),
            0,
        ),
        Kind::FreeShipping => (Vec::new(), left.shipping),
        Kind::BuyXGetY {
            buy,
            get,
            get_scope,
        } => {
            let targets = if get_scope == &Scope::default() {
                lines.clone()
            } else {
                eligible(cart, index, get_scope)
            };
            let free = bundles::free_units(cart, &lines, &targets, *buy, *get);
            (
                free.into_iter()
                    .map(|(index, units)| {
                        let discount = cart.lines[index].unit_price.saturating_mul(units);
                        (index, discount.min(left.lines[index]))
                    })
                    .collect(),
                0,
            )
        }
        Kind::TieredPercentage { tiers } | Kind::TieredFixed { tiers } => {
            let quantity: i64 = lines.iter().map(|&index| cart.lines[index].quantity).sum();
            let subtotal: i64 = lines.iter().map(|&index| cart.lines[index].amount()).sum();
            let reached = tiers.iter().rev().find(|tier| match tier.threshold {
                Threshold::Subtotal(minimum) => subtotal >= minimum,
                Threshold::Quantity(minimum) => quantity >= minimum,
            });
            let Some(tier) = reached else {
                return Err(Rejection::MinimumNotMet);
            };
            if matches!(rule.kind, Kind::TieredPercentage { .. }) {
                (percentage(left, cart, &lines, tier.value, None), 0)
            } else {
                (fixed_spread(left, &lines, tier.value), 0)
            }
        }
    };
    parts.retain(|(_, amount)| *amount > 0);
    let total: i64 = parts.iter().map(|(_, amount)| amount).sum::<i64>() + shipping;
    if let Some(cap) = rule.max_discount
        && total > cap
    {
        // Shipping first, then the lines in proportion to what the rule gave them.
        let shipping = shipping.min(cap);
        let rest = cap - shipping;
        let weights: Vec<u64> = parts.iter().map(|(_, amount)| *amount as u64).collect();
        if !parts.is_empty() {
            let capped = split_weighted(rest, &weights).unwrap_or_default();
            for ((_, amount), capped) in parts.iter_mut().zip(capped) {
                *amount = capped;
            }
        }
        parts.retain(|(_, amount)| *amount > 0);
        return Ok((parts, shipping));
    }
    if total == 0 {
        return Err(Rejection::NoEligibleItems);
    }
    Ok((parts, shipping))
}

/// Applies candidates in order to `left`; returns the effects and the rejections.
fn stack<K: Clone + Ord>(
    cart: &Cart,
    index: &LineIndex<'_>,
    left: &mut Left,
    budgets: &mut BTreeMap<K, i64>,
    candidates: &[&Candidate<'_, K>],
) -> (Vec<Effect<K>>, Vec<(K, Rejection)>) {
    let mut effects = Vec::new();
    let mut rejected = Vec::new();
    for candidate in candidates {
        let (lines, shipping) = match compute(cart, index, left, candidate.rule) {
            Ok(effect) => effect,
            Err(rejection) => {
                rejected.push((candidate.key.clone(), rejection));
                continue;
            }
        };
        let amount: i64 = lines.iter().map(|(_, amount)| amount).sum::<i64>() + shipping;
        if let Some((campaign, _)) = &candidate.budget {
            let remaining = budgets.get(campaign).copied().unwrap_or(0);
            if amount > remaining {
                rejected.push((candidate.key.clone(), Rejection::CampaignBudgetExhausted));
                continue;
            }
            budgets.insert(campaign.clone(), remaining - amount);
        }
        for (index, part) in &lines {
            left.lines[*index] -= part;
        }
        left.shipping -= shipping;
        effects.push(Effect {
            key: candidate.key.clone(),
            amount,
            lines,
            shipping,
        });
    }
    (effects, rejected)
}

/// Prices `cart` under `candidates` (validated cart and rules; see the module's semantics).
pub fn evaluate<K: Clone + Ord>(cart: &Cart, candidates: &[Candidate<'_, K>]) -> Evaluation<K> {
    let fresh = Left {
        lines: cart.lines.iter().map(Line::amount).collect(),
        shipping: cart.shipping,
    };
    let fresh_budgets: BTreeMap<K, i64> = candidates
        .iter()
        .filter_map(|candidate| candidate.budget.clone())
        .collect();
    let mut ordered: Vec<(usize, &Candidate<'_, K>)> = candidates.iter().enumerate().collect();
    ordered.sort_by(|(a_index, a), (b_index, b)| {
        b.rule
            .priority
            .cmp(&a.rule.priority)
            .then(a_index.cmp(b_index))
    });
    let stackable: Vec<&Candidate<'_, K>> = ordered
        .iter()
        .filter(|(_, candidate)| !candidate.rule.exclusive)
        .map(|(_, candidate)| *candidate)
        .collect();
    let mut left = fresh.clone();
    let mut budgets = fresh_budgets.clone();
    let index = LineIndex::new(cart);
    let (mut effects, mut rejected) = stack(cart, &index, &mut left, &mut budgets, &stackable);
    let stacked: i64 = effects.iter().map(|effect| effect.amount).sum();

    // The best exclusive effect, each computed alone on the whole cart (ties to the earlier).
    let mut best: Option<(Effect<K>, Left)> = None;
    for (_, candidate) in ordered.iter().filter(|(_, c)| c.rule.exclusive) {
        let mut alone = fresh.clone();
        let mut alone_budgets = fresh_budgets.clone();
        let (mut applied, mut refused) =
            stack(cart, &index, &mut alone, &mut alone_budgets, &[*candidate]);
        rejected.append(&mut refused);
        let Some(effect) = applied.pop() else {
            continue;
        };
        match &best {
            Some((leader, _)) if effect.amount <= leader.amount => {
                rejected.push((effect.key, Rejection::NotCombinable));
            }
            _ => {
                if let Some((beaten, _)) = best.take() {
                    rejected.push((beaten.key, Rejection::NotCombinable));
                }
                best = Some((effect, alone));
            }
        }
    }
    // The stack wins a tie.
    if let Some((effect, alone)) = best {
        if effect.amount > stacked {
            for stacked_effect in effects.drain(..) {
                rejected.push((stacked_effect.key, Rejection::NotCombinable));
            }
            effects.push(effect);
            left = alone;
        } else {
            rejected.push((effect.key, Rejection::NotCombinable));
        }
    }

    let subtotal: i64 = cart.lines.iter().map(Line::amount).sum();
    let line_discounts: Vec<i64> = cart
        .lines
        .iter()
        .zip(&left.lines)
        .map(|(line, left)| line.amount() - left)
        .collect();
    let shipping_discount = cart.shipping - left.shipping;
    let total_discount = line_discounts.iter().sum::<i64>() + shipping_discount;
    Evaluation {
        subtotal,
        line_discounts,
        shipping_discount,
        total_discount,
        total: subtotal + cart.shipping - total_discount,
        effects,
        rejected,
    }
}
