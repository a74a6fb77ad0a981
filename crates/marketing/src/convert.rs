//! Between the wire and the model: requests' rules and carts read and validated (every bad field
//! named at once), rows written back as proto messages.

use chrono::{Datelike, Timelike};
use kernel::clock::{from_micros, micros_to_timestamp};
use kernel::money::{Asset, MAX_AMOUNT, MoneyError};
use kernel::{ServiceError, Violations};
use proto::marketing::v1 as pb;
use uuid::Uuid;

use crate::DOMAIN;
use crate::model::CampaignStatus;
use crate::offer::Order;
use crate::pricing::{self, Conditions, Kind, Rule, Scope, Threshold, Tier};
use crate::store::{campaign, coupon, rule};

/// Most product or category ids a rule's scope may list.
const MAX_SCOPE_IDS: usize = 1000;
/// Most tiers of a tiered rule.
const MAX_TIERS: usize = 20;
/// Longest product, category or line id.
const MAX_ID_CHARS: usize = 128;

/// The currency every amount of one request must share.
#[derive(Default)]
pub struct Currency {
    code: Option<&'static str>,
    mismatch: Option<String>,
}

impl Currency {
    /// Reads an optional Money field: its minor units when present, recording bad values.
    pub fn money(
        &mut self,
        violations: &mut Violations,
        field: &str,
        value: Option<&pb::Money>,
        allow_zero: bool,
    ) -> Option<i64> {
        let value = value?;
        let Some(asset) = Asset::parse(&value.currency) else {
            violations.add(
                &format!("{field}.currency"),
                "must be CREDITS or an ISO 4217 code",
            );
            return None;
        };
        match self.code {
            Some(code) if code != asset.code => {
                self.mismatch.get_or_insert_with(|| field.to_owned());
            }
            _ => self.code = Some(asset.code),
        }
        let least = if allow_zero { 0 } else { 1 };
        if !(least..=MAX_AMOUNT).contains(&value.amount) {
            violations.add(
                &format!("{field}.amount"),
                format!("must be between {least} and {MAX_AMOUNT} minor units"),
            );
            return None;
        }
        Some(value.amount)
    }

    /// The shared currency ("" when no amount was given), or CURRENCY_MISMATCH.
    pub fn finish(self) -> Result<String, ServiceError> {
        if let (Some(field), Some(code)) = (self.mismatch, self.code) {
            return Err(MoneyError::AssetMismatch {
                left: code,
                right: "another currency",
            }
            .into_service(DOMAIN, &field));
        }
        Ok(self.code.unwrap_or_default().to_owned())
    }
}

/// Checks a list of product or category ids.
fn scope_ids(violations: &mut Violations, field: &str, ids: &[String]) -> Vec<String> {
    violations.check(
        ids.len() <= MAX_SCOPE_IDS,
        field,
        format!("must list at most {MAX_SCOPE_IDS} ids"),
    );
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for (index, id) in ids.iter().enumerate() {
        let ok = !id.is_empty()
            && id.chars().count() <= MAX_ID_CHARS
            && !id.chars().any(|c| c.is_control() || c.is_whitespace());
        if !ok {
            violations.add(
                &format!("{field}[{index}]"),
                format!("must be 1 to {MAX_ID_CHARS} characters without spaces"),
            );
        } else if !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

/// "HH:MM" as minutes of the day (24:00 allowed as an end).
fn minute_of_day(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
    let total = hours * 60 + minutes;
    (minutes < 60 && total <= 1440).then_some(total)
}

/// Reads and validates a rule; returns its calculation and the currency of its amounts.
pub fn rule_from_proto(input: &pb::DiscountRule) -> Result<(Rule, String), ServiceError> {
    let mut violations = Violations::new(DOMAIN);
    let mut currency = Currency::default();
    if let Err(error) = kernel::ids::check_text(DOMAIN, "rule.name", &input.name, 200, false) {
        violations.take::<()>("rule.name", Err(error));
    }
    let amount = currency.money(&mut violations, "rule.amount", input.amount.as_ref(), false);
    let max_quantity = (input.max_quantity != 0).then_some(input.max_quantity);
    let kind = match pb::DiscountKind::try_from(input.kind) {
        Ok(pb::DiscountKind::Percentage) => Some(Kind::Percentage {
            bps: u32::try_from(input.percent_bps).unwrap_or(0),
            max_quantity,
        }),
        Ok(pb::DiscountKind::FixedAmount) => amount.map(|amount| Kind::FixedAmount { amount }),
        Ok(pb::DiscountKind::FixedPerUnit) => amount.map(|amount| Kind::FixedPerUnit {
            amount,
            max_quantity,
        }),
        Ok(pb::DiscountKind::FreeShipping) => Some(Kind::FreeShipping),
        Ok(pb::DiscountKind::BuyXGetY) => Some(Kind::BuyXGetY {
            buy: input.buy_quantity,
            get: input.get_quantity,
            get_scope: Scope {
                product_ids: scope_ids(
                    &mut violations,
                    "rule.get_product_ids",
                    &input.get_product_ids,
                ),
                category_ids: scope_ids(
                    &mut violations,
                    "rule.get_category_ids",
                    &input.get_category_ids,
                ),
                exclude_sale_items: input.exclude_sale_items,
            },
        }),
        Ok(kind @ (pb::DiscountKind::TieredPercentage | pb::DiscountKind::TieredFixed)) => {
            let percentage = kind == pb::DiscountKind::TieredPercentage;
            violations.check(
                input.tiers.len() <= MAX_TIERS,
                "rule.tiers",
                format!("must hold at most {MAX_TIERS} tiers"),
            );
            let mut tiers = Vec::new();
            for (index, tier) in input.tiers.iter().enumerate() {
                let field = format!("rule.tiers[{index}]");
                let threshold = match (&tier.min_subtotal, tier.min_quantity) {
                    (Some(_), 0) => currency
                        .money(
                            &mut violations,
                            &format!("{field}.min_subtotal"),
                            tier.min_subtotal.as_ref(),
                            true,
                        )
                        .map(Threshold::Subtotal),
                    (None, quantity) if quantity > 0 => Some(Threshold::Quantity(quantity)),
                    _ => {
                        violations.add(
                            &field,
                            "needs exactly one of min_subtotal and min_quantity (positive)",
                        );
                        None
                    }
                };
                let value = if percentage {
                    Some(i64::from(tier.percent_bps))
                } else {
                    currency.money(
                        &mut violations,
                        &format!("{field}.amount"),
                        tier.amount.as_ref(),
                        false,
                    )
                };
                match (threshold, value) {
                    (Some(threshold), Some(value)) => tiers.push(Tier { threshold, value }),
                    (_, None) if !percentage => {
                        violations.check(
                            tier.amount.is_some(),
                            &format!("{field}.amount"),
                            "is required",
                        );
                    }
                    _ => {}
                }
            }
            Some(if percentage {
                Kind::TieredPercentage { tiers }
            } else {
                Kind::TieredFixed { tiers }
            })
        }
        _ => {
            violations.add("rule.kind", "must be one of the DISCOUNT_KIND_ values");
            None
        }
    };
    if matches!(
        pb::DiscountKind::try_from(input.kind),
        Ok(pb::DiscountKind::FixedAmount | pb::DiscountKind::FixedPerUnit)
    ) && input.amount.is_none()
    {
        violations.add("rule.amount", "is required for this kind");
    }
    let min_subtotal = currency
        .money(
            &mut violations,
            "rule.min_subtotal",
            input.min_subtotal.as_ref(),
            true,
        )
        .unwrap_or(0);
    let max_discount = currency.money(
        &mut violations,
        "rule.max_discount",
        input.max_discount.as_ref(),
        false,
    );
    let conditions = input.conditions.clone().unwrap_or_default();
    let time_of_day = match (
        conditions.start_time_of_day.as_str(),
        conditions.end_time_of_day.as_str(),
    ) {
        ("", "") => None,
        (start, end) => match (minute_of_day(start), minute_of_day(end)) {
            (Some(start), Some(end)) => Some((start, end)),
            _ => {
                violations.add(
                    "rule.conditions",
                    "start_time_of_day and end_time_of_day must both be HH:MM",
                );
                None
            }
        },
    };
    violations.check(
        conditions.customer_tiers.len() <= 100,
        "rule.conditions.customer_tiers",
        "must list at most 100 tiers",
    );
    violations.check(
        (0..=pricing::MAX_QUANTITY).contains(&conditions.min_quantity),
        "rule.conditions.min_quantity",
        format!("must be between 0 and {}", pricing::MAX_QUANTITY),
    );
    let scope = Scope {
        product_ids: scope_ids(&mut violations, "rule.product_ids", &input.product_ids),
        category_ids: scope_ids(&mut violations, "rule.category_ids", &input.category_ids),
        exclude_sale_items: input.exclude_sale_items,
    };
    let Some(kind) = kind else {
        return Err(violations.into_error());
    };
    let rule = Rule {
        kind,
        scope,
        min_subtotal,
        max_discount,
        conditions: Conditions {
            customer_tiers: conditions.customer_tiers.clone(),
            days_of_week: conditions
                .days_of_week
                .iter()
                .map(|day| u8::try_from(*day).unwrap_or(0))
                .collect(),
            time_of_day,
            min_quantity: conditions.min_quantity,
        },
        exclusive: input.exclusive,
        priority: input.priority,
    };
    rule.validate(&mut violations);
    violations.finish()?;
    Ok((rule, currency.finish()?))
}

fn money(currency: &str, amount: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency: currency.to_owned(),
        amount,
    })
}

pub fn rule_to_proto(row: &rule::Model) -> Result<pb::DiscountRule, ServiceError> {
    let definition = crate::model::RuleDef::from_row(row)?;
    let rule = definition.rule;
    let currency = row.currency.as_str();
    let mut out = pb::DiscountRule {
        id: row.id.to_string(),
        name: row.name.clone(),
        kind: row.kind,
        min_subtotal: (rule.min_subtotal > 0)
            .then(|| money(currency, rule.min_subtotal))
            .flatten(),
        max_discount: rule.max_discount.and_then(|cap| money(currency, cap)),
        product_ids: rule.scope.product_ids.clone(),
        category_ids: rule.scope.category_ids.clone(),
        exclude_sale_items: rule.scope.exclude_sale_items,
        conditions: Some(pb::Conditions {
            customer_tiers: rule.conditions.customer_tiers.clone(),
            days_of_week: rule
                .conditions
                .days_of_week
                .iter()
                .map(|day| i32::from(*day))
                .collect(),
            start_time_of_day: rule
                .conditions
                .time_of_day
                .map(|(start, _)| format!("{:02}:{:02}", start / 60, start % 60))
                .unwrap_or_default(),
            end_time_of_day: rule
                .conditions
                .time_of_day
                .map(|(_, end)| format!("{:02}:{:02}", end / 60, end % 60))
                .unwrap_or_default(),
            min_quantity: rule.conditions.min_quantity,
        }),
        exclusive: rule.exclusive,
        priority: rule.priority,
        currency: row.currency.clone(),
        create_time: Some(micros_to_timestamp(row.created_at)),
        update_time: Some(micros_to_timestamp(row.updated_at)),
        ..pb::DiscountRule::default()
    };
    let tiers_to_proto = |tiers: &[Tier], percentage: bool| -> Vec<pb::Tier> {
        tiers
            .iter()
            .map(|tier| {
                let mut out = pb::Tier::default();
                match tier.threshold {
                    Threshold::Subtotal(value) => out.min_subtotal = money(currency, value),
                    Threshold::Quantity(value) => out.min_quantity = value,
                }
                if percentage {
                    out.percent_bps = i32::try_from(tier.value).unwrap_or(0);
                } else {
                    out.amount = money(currency, tier.value);
                }
                out
            })
            .collect()
    };
    match &rule.kind {
        Kind::Percentage { bps, max_quantity } => {
            out.percent_bps = i32::try_from(*bps).unwrap_or(0);
            out.max_quantity = max_quantity.unwrap_or(0);
        }
        Kind::FixedAmount { amount } => out.amount = money(currency, *amount),
        Kind::FixedPerUnit {
            amount,
            max_quantity,
        } => {
            out.amount = money(currency, *amount);
            out.max_quantity = max_quantity.unwrap_or(0);
        }
        Kind::FreeShipping => {}
        Kind::BuyXGetY {
            buy,
            get,
            get_scope,
        } => {
            out.buy_quantity = *buy;
            out.get_quantity = *get;
            out.get_product_ids = get_scope.product_ids.clone();
            out.get_category_ids = get_scope.category_ids.clone();
        }
        Kind::TieredPercentage { tiers } => out.tiers = tiers_to_proto(tiers, true),
        Kind::TieredFixed { tiers } => out.tiers = tiers_to_proto(tiers, false),
    }
    Ok(out)
}

fn optional_id(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

pub fn coupon_to_proto(row: &coupon::Model) -> pb::Coupon {
    pb::Coupon {
        id: row.id.to_string(),
        code: row.code.clone(),
        discount_rule_id: row.rule_id.to_string(),
        campaign_id: optional_id(row.campaign_id),
        customer_id: optional_id(row.customer_id),
        participation_id: optional_id(row.participation_id),
        batch_id: optional_id(row.batch_id),
        valid_from: row.valid_from.map(micros_to_timestamp),
        valid_until: row.valid_until.map(micros_to_timestamp),
        usage_limit: row.usage_limit,
        usage_limit_per_customer: row.usage_limit_per_customer,
        times_redeemed: row.times_redeemed,
        times_reserved: row.uses_held - row.times_redeemed,
        create_time: Some(micros_to_timestamp(row.created_at)),
        update_time: Some(micros_to_timestamp(row.updated_at)),
    }
}

/// Reads and validates a cart; `now` in the workspace's `zone` places it in the week and day.
pub fn order_from_proto(
    cart: Option<pb::Cart>,
    zone: chrono_tz::Tz,
    now: i64,
) -> Result<Order, ServiceError> {
    let mut violations = Violations::new(DOMAIN);
    let Some(cart) = cart else {
        violations.add("cart", "is required");
        return Err(violations.into_error());
    };
    let currency = match Asset::parse(&cart.currency) {
        Some(asset) => asset.code.to_owned(),
        None => {
            violations.add("cart.currency", "must be CREDITS or an ISO 4217 code");
            String::new()
        }
    };
    let customer_id = violations.optional_uuid("cart.customer_id", &cart.customer_id);
    violations.check(
        cart.customer_tier.chars().count() <= 64,
        "cart.customer_tier",
        "must be at most 64 characters",
    );
    if cart.lines.len() > pricing::MAX_LINES {
        violations.add(
            "cart.lines",
            format!("must hold at most {} lines", pricing::MAX_LINES),
        );
        return Err(violations.into_error());
    }
    let local = from_micros(now).with_timezone(&zone);
    let mut lines = Vec::with_capacity(cart.lines.len());
    // Field names are written only for what is wrong (a cart has up to 10,000 lines).
    for (index, line) in cart.lines.into_iter().enumerate() {
        for (name, value) in [("line_id", &line.line_id), ("product_id", &line.product_id)] {
            if value.is_empty() || value.chars().count() > MAX_ID_CHARS {
                violations.add(
                    &format!("cart.lines[{index}].{name}"),
                    format!("must be 1 to {MAX_ID_CHARS} characters"),
                );
            }
        }
        if line.category_ids.len() > 100 {
            violations.add(
                &format!("cart.lines[{index}].category_ids"),
                "must list at most 100 categories",
            );
        }
        lines.push(pricing::Line {
            line_id: line.line_id,
            product_id: line.product_id,
            category_ids: line.category_ids,
            quantity: line.quantity,
            unit_price: line.unit_price,
            on_sale: line.on_sale,
        });
    }
    let order = Order {
        currency,
        customer_id,
        cart: pricing::Cart {
            customer_tier: cart.customer_tier,
            lines,
            shipping: cart.shipping,
            weekday: u8::try_from(local.weekday().number_from_monday()).unwrap_or(1),
            minute_of_day: u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(0),
        },
    };
    order.cart.validate(&mut violations);
    violations.finish()?;
    Ok(order)
}

fn budget_money(currency: &str, amount: i64) -> Option<pb::Money> {
    (!currency.is_empty()).then(|| pb::Money {
        currency: currency.to_owned(),
        amount,
    })
}

pub fn campaign_to_proto(row: &campaign::Model, now: i64) -> Result<pb::Campaign, ServiceError> {
    let stored = CampaignStatus::from_i32(row.status).unwrap_or(CampaignStatus::Completed);
    let rule_ids: Vec<Uuid> = kernel::db::json_column(
        "mkt_campaign",
        format!("({}, {})", row.workspace_id, row.id),
        "rule_ids",
        &row.rule_ids,
    )?;
    let utm: std::collections::BTreeMap<String, String> = kernel::db::json_column(
        "mkt_campaign",
        format!("({}, {})", row.workspace_id, row.id),
        "utm",
        &row.utm,
    )?;
    let field = |name: &str| utm.get(name).cloned().unwrap_or_default();
    Ok(pb::Campaign {
        id: row.id.to_string(),
        title: row.title.clone(),
        code: row.code.clone().unwrap_or_default(),
        description: row.description.clone(),
        group_id: row.group_id.map(|id| id.to_string()).unwrap_or_default(),
        trigger_type: row.trigger_type,
        auto_apply: row.auto_apply,
        discount_rule_ids: rule_ids.iter().map(Uuid::to_string).collect(),
        start_time: row.start_time.map(micros_to_timestamp),
        end_time: row.end_time.map(micros_to_timestamp),
        budget: row
            .budget
            .and_then(|budget| budget_money(&row.currency, budget)),
        usage_limit_total: row.usage_limit_total,
        usage_limit_per_customer: row.usage_limit_per_customer,
        is_public: row.is_public,
        utm: Some(pb::Utm {
            source: field("source"),
            medium: field("medium"),
            campaign: field("campaign"),
            term: field("term"),
            content: field("content"),
        }),
        kind: row.kind,
        status: stored.effective(row.start_time, row.end_time, now) as i32,
        redemption_count: row.redemption_count,
        discount_given: budget_money(&row.currency, row.discount_given),
        budget_reserved: budget_money(&row.currency, row.budget_used - row.discount_given),
        create_time: Some(micros_to_timestamp(row.created_at)),
        update_time: Some(micros_to_timestamp(row.updated_at)),
        promo_credits: row.promo_credits,
        trial_days: row.trial_days,
    })
}
