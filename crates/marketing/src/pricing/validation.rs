//! What a valid cart and a valid rule are; everything else is refused field by field before
//! pricing sees it.

use kernel::Violations;
use kernel::money::MAX_AMOUNT;

use super::{Cart, Kind, MAX_LINES, MAX_QUANTITY, Rule, Threshold};

impl Cart {
    /// Every problem with the cart, field by field (under `cart.`).
    pub fn validate(&self, violations: &mut Violations) {
        if self.lines.is_empty() {
            violations.add("cart.lines", "must hold at least one line");
        }
        if self.lines.len() > MAX_LINES {
            violations.add("cart.lines", format!("must hold at most {MAX_LINES} lines"));
            return;
        }
        let mut total: i128 = i128::from(self.shipping.max(0));
        let mut ids = std::collections::BTreeSet::new();
        for (index, line) in self.lines.iter().enumerate() {
            let field = |name: &str| format!("cart.lines[{index}].{name}");
            if line.line_id.is_empty() || !ids.insert(line.line_id.as_str()) {
                violations.add(&field("line_id"), "must be present and unique in the cart");
            }
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                violations.add(
                    &field("quantity"),
                    format!("must be between 1 and {MAX_QUANTITY}"),
                );
            }
            if !(1..=MAX_AMOUNT).contains(&line.unit_price) {
                violations.add(
                    &field("unit_price"),
                    format!("must be between 1 and {MAX_AMOUNT} minor units"),
                );
            }
            total += i128::from(line.unit_price) * i128::from(line.quantity);
        }
        if !(0..=MAX_AMOUNT).contains(&self.shipping) {
            violations.add(
                "cart.shipping",
                format!("must be between 0 and {MAX_AMOUNT} minor units"),
            );
        }
        if total > i128::from(MAX_AMOUNT) {
            violations.add(
                "cart",
                format!("its total must be at most {MAX_AMOUNT} minor units"),
            );
        }
        if !(1..=7).contains(&self.weekday) || self.minute_of_day >= 1440 {
            violations.add("cart", "weekday must be 1..=7 and minute_of_day below 1440");
        }
    }
}

impl Rule {
    /// Every problem with the rule, field by field (under `rule.`).
    pub fn validate(&self, violations: &mut Violations) {
        let amount_ok = |amount: i64| (1..=MAX_AMOUNT).contains(&amount);
        match &self.kind {
            Kind::Percentage { bps, max_quantity } => {
                violations.check(
                    (1..=10_000).contains(bps),
                    "rule.percent_bps",
                    "must be between 1 and 10000 (100%)",
                );
                violations.check(
                    max_quantity.is_none_or(|q| (1..=MAX_QUANTITY).contains(&q)),
                    "rule.max_quantity",
                    format!("must be between 1 and {MAX_QUANTITY}"),
                );
            }
            Kind::FixedAmount { amount } => {
                violations.check(amount_ok(*amount), "rule.amount", "must be positive");
            }
            Kind::FixedPerUnit {
                amount,
                max_quantity,
            } => {
                violations.check(amount_ok(*amount), "rule.amount", "must be positive");
                violations.check(
                    max_quantity.is_none_or(|q| (1..=MAX_QUANTITY).contains(&q)),
                    "rule.max_quantity",
                    format!("must be between 1 and {MAX_QUANTITY}"),
                );
            }
            Kind::FreeShipping => {}
            Kind::BuyXGetY { buy, get, .. } => {
                violations.check(
                    (1..=1000).contains(buy),
                    "rule.buy_quantity",
                    "must be between 1 and 1000",
                );
                violations.check(
                    (1..=1000).contains(get),
                    "rule.get_quantity",
                    "must be between 1 and 1000",
                );
            }
            Kind::TieredPercentage { tiers } | Kind::TieredFixed { tiers } => {
                let percentage = matches!(self.kind, Kind::TieredPercentage { .. });
                if tiers.is_empty() {
                    violations.add("rule.tiers", "must hold at least one tier");
                }
                let by_subtotal = tiers
                    .first()
                    .is_some_and(|tier| matches!(tier.threshold, Threshold::Subtotal(_)));
                let mut previous: Option<i64> = None;
                for (index, tier) in tiers.iter().enumerate() {
                    let threshold = match (tier.threshold, by_subtotal) {
                        (Threshold::Subtotal(value), true)
                        | (Threshold::Quantity(value), false) => value,
                        _ => {
                            violations.add(
                                &format!("rule.tiers[{index}]"),
                                "every tier must use the same threshold: min_subtotal or min_quantity",
                            );
                            continue;
                        }
                    };
                    if threshold < 0 || previous.is_some_and(|previous| threshold <= previous) {
                        violations.add(
                            &format!("rule.tiers[{index}]"),
                            "tiers must be in strictly increasing order of their threshold",
                        );
                    }
                    previous = Some(threshold);
                    let value_ok = if percentage {
                        (1..=10_000).contains(&tier.value)
                    } else {
                        amount_ok(tier.value)
                    };
                    if !value_ok {
                        violations.add(
                            &format!("rule.tiers[{index}]"),
                            if percentage {
                                "percent_bps must be between 1 and 10000 (100%)"
                            } else {
                                "amount must be positive"
                            },
                        );
                    }
                }
            }
        }
        violations.check(
            (0..=MAX_AMOUNT).contains(&self.min_subtotal),
            "rule.min_subtotal",
            "must not be negative",
        );
        violations.check(
            self.max_discount.is_none_or(amount_ok),
            "rule.max_discount",
            "must be positive",
        );
        violations.check(
            self.conditions
                .days_of_week
                .iter()
                .all(|day| (1..=7).contains(day)),
            "rule.conditions.days_of_week",
            "days are 1 (Monday) to 7 (Sunday)",
        );
        violations.check(
            self.conditions
                .time_of_day
                .is_none_or(|(start, end)| start < 1440 && end <= 1440 && start != end),
            "rule.conditions",
            "the time of day is [start, end) in minutes 0..1440 and not empty",
        );
    }
}
