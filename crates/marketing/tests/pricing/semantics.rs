//! The edge of every kind and of stacking, budgets, conditions and validation.

use kernel::Violations;
use marketing::pricing::*;

use crate::{cart, line, price, rule};

#[test]
fn a_fixed_amount_never_exceeds_what_is_left() {
    let evaluation = price(
        &cart(vec![line("a", 300, 1), line("b", 200, 1)]),
        &[rule(Kind::FixedAmount { amount: 10_000 })],
    );
    assert_eq!(evaluation.line_discounts, [300, 200]);
    assert_eq!(evaluation.total, 0);
}

#[test]
fn percentages_round_half_up_per_line_and_respect_a_maximum_quantity() {
    let fifteen = rule(Kind::Percentage {
        bps: 1500,
        max_quantity: None,
    });
    // 150.15 → 150, 150.45 → 150, 151.5 → 152.
    let evaluation = price(
        &cart(vec![
            line("a", 1001, 1),
            line("b", 1003, 1),
            line("c", 1010, 1),
        ]),
        std::slice::from_ref(&fifteen),
    );
    assert_eq!(evaluation.line_discounts, [150, 150, 152]);
    // 50 % of at most 2 of 5 units.
    let half_of_two = rule(Kind::Percentage {
        bps: 5000,
        max_quantity: Some(2),
    });
    assert_eq!(
        price(&cart(vec![line("a", 1000, 5)]), &[half_of_two]).line_discounts,
        [1000]
    );
}

#[test]
fn per_unit_discounts_stop_at_the_unit_price_and_the_unit_limit() {
    let evaluation = price(
        &cart(vec![line("cheap", 200, 3), line("dear", 5000, 1)]),
        &[rule(Kind::FixedPerUnit {
            amount: 300,
            max_quantity: Some(2),
        })],
    );
    assert_eq!(evaluation.line_discounts, [400, 300]);
}

#[test]
fn buy_one_get_one_gives_the_most_expensive_remaining_units_in_complete_groups() {
    let bogo = rule(Kind::BuyXGetY {
        buy: 1,
        get: 1,
        get_scope: Scope::default(),
    });
    // Units 1000, 1000, 1000, 500, 500: (buy 1000, free 1000), (buy 1000, free 500), then
    // (buy 500) has no free unit left: an incomplete group gives nothing.
    let evaluation = price(
        &cart(vec![line("a", 1000, 3), line("b", 500, 2)]),
        std::slice::from_ref(&bogo),
    );
    assert_eq!(evaluation.line_discounts, [1000, 500]);
    // Buy 2 get 1 on 7 units of one line: two complete groups.
    let three_for_two = rule(Kind::BuyXGetY {
        buy: 2,
        get: 1,
        get_scope: Scope::default(),
    });
    assert_eq!(
        price(&cart(vec![line("a", 700, 7)]), &[three_for_two]).line_discounts,
        [1400]
    );
    // Buy a shirt, get a sock: the target scope differs from the bought one.
    let mut shirts_for_socks = rule(Kind::BuyXGetY {
        buy: 1,
        get: 1,
        get_scope: Scope {
            product_ids: vec!["p-socks".to_owned()],
            ..Scope::default()
        },
    });
    shirts_for_socks.scope.product_ids = vec!["p-shirt".to_owned()];
    let evaluation = price(
        &cart(vec![line("shirt", 3000, 2), line("socks", 800, 5)]),
        &[shirts_for_socks],
    );
    assert_eq!(evaluation.line_discounts, [0, 1600]);
}

#[test]
fn a_million_units_take_few_steps() {
    let bogo = rule(Kind::BuyXGetY {
        buy: 1,
        get: 1,
        get_scope: Scope::default(),
    });
    let lines: Vec<Line> = (0..50)
        .map(|i| line(&i.to_string(), 100 + i, MAX_QUANTITY))
        .collect();
    let evaluation = price(&cart(lines), &[bogo]);
    // Half of every line's units are free (each line has an even count).
    let expected: i64 = (0..50).map(|i| (100 + i) * MAX_QUANTITY / 2).sum();
    assert_eq!(evaluation.total_discount, expected);
}

#[test]
fn tiers_pick_the_highest_reached() {
    let tiered = rule(Kind::TieredPercentage {
        tiers: vec![
            Tier {
                threshold: Threshold::Subtotal(0),
                value: 500,
            },
            Tier {
                threshold: Threshold::Subtotal(10_000),
                value: 1000,
            },
        ],
    });
    assert_eq!(
        price(
            &cart(vec![line("a", 12_000, 1)]),
            std::slice::from_ref(&tiered)
        )
        .total_discount,
        1200
    );
    assert_eq!(
        price(&cart(vec![line("a", 9_000, 1)]), &[tiered]).total_discount,
        450
    );
    let by_quantity = rule(Kind::TieredFixed {
        tiers: vec![Tier {
            threshold: Threshold::Quantity(3),
            value: 700,
        }],
    });
    let short = price(
        &cart(vec![line("a", 1000, 2)]),
        std::slice::from_ref(&by_quantity),
    );
    assert_eq!(short.rejected, [(0, Rejection::MinimumNotMet)]);
    assert_eq!(
        price(&cart(vec![line("a", 1000, 3)]), &[by_quantity]).total_discount,
        700
    );
}

#[test]
fn a_capped_effect_is_spread_over_what_it_touched() {
    let mut half = rule(Kind::Percentage {
        bps: 5000,
        max_quantity: None,
    });
    half.max_discount = Some(1000);
    let evaluation = price(&cart(vec![line("a", 1000, 1), line("b", 3000, 1)]), &[half]);
    assert_eq!(evaluation.line_discounts, [250, 750]);
}

#[test]
fn free_shipping_and_scopes() {
    let mut basket = cart(vec![line("a", 1000, 1), line("b", 2000, 1)]);
    basket.lines[1].on_sale = true;
    basket.lines[1].category_ids = vec!["shoes".to_owned()];
    basket.shipping = 495;
    let mut shoes = rule(Kind::Percentage {
        bps: 1000,
        max_quantity: None,
    });
    shoes.scope.category_ids = vec!["shoes".to_owned()];
    let mut not_on_sale = shoes.clone();
    not_on_sale.scope.exclude_sale_items = true;
    let evaluation = price(&basket, &[rule(Kind::FreeShipping), shoes, not_on_sale]);
    assert_eq!(evaluation.shipping_discount, 495);
    assert_eq!(evaluation.line_discounts, [0, 200]);
    assert_eq!(evaluation.rejected, [(2, Rejection::NoEligibleItems)]);
    assert_eq!(evaluation.total, 1000 + 2000 + 495 - 695);
}

#[test]
fn the_customer_gets_the_larger_of_the_best_exclusive_and_the_stack() {
    let basket = cart(vec![line("a", 10_000, 1)]);
    let ten = rule(Kind::Percentage {
        bps: 1000,
        max_quantity: None,
    });
    let five_off = rule(Kind::FixedAmount { amount: 500 });
    let mut twenty = rule(Kind::Percentage {
        bps: 2000,
        max_quantity: None,
    });
    twenty.exclusive = true;
    let mut twelve = twenty.clone();
    twelve.kind = Kind::Percentage {
        bps: 1200,
        max_quantity: None,
    };
    // Stack: 10 % (1000) then 500 = 1500; exclusives alone: 2000 and 1200 → 2000 wins.
    let evaluation = price(
        &basket,
        &[ten.clone(), five_off.clone(), twenty, twelve.clone()],
    );
    assert_eq!(evaluation.total_discount, 2000);
    assert_eq!(evaluation.effects.len(), 1);
    assert_eq!(evaluation.effects[0].key, 2);
    let mut rejected = evaluation.rejected.clone();
    rejected.sort();
    assert_eq!(
        rejected,
        [
            (0, Rejection::NotCombinable),
            (1, Rejection::NotCombinable),
            (3, Rejection::NotCombinable)
        ]
    );
    // Without the 20 %, the stack (1500) beats the 12 % (1200).
    let evaluation = price(&basket, &[ten, five_off, twelve]);
    assert_eq!(evaluation.total_discount, 1500);
    assert_eq!(evaluation.rejected, [(2, Rejection::NotCombinable)]);
}

#[test]
fn an_effect_beyond_its_campaigns_budget_is_not_applied_in_part() {
    let basket = cart(vec![line("a", 10_000, 1)]);
    let rules = [
        rule(Kind::FixedAmount { amount: 500 }),
        rule(Kind::FixedAmount { amount: 200 }),
        rule(Kind::FixedAmount { amount: 100 }),
    ];
    let with_budget: Vec<Candidate<'_, usize>> = rules
        .iter()
        .enumerate()
        .map(|(key, rule)| Candidate {
            key,
            rule,
            // The campaign is key 100; 600 is left of its budget.
            budget: Some((100, 600)),
        })
        .collect();
    let evaluation = evaluate(&basket, &with_budget);
    assert_eq!(
        evaluation.total_discount, 600,
        "500, then 200 refused, then 100"
    );
    assert_eq!(
        evaluation.rejected,
        [(1, Rejection::CampaignBudgetExhausted)]
    );
}

#[test]
fn conditions_hold_or_the_rule_says_why_not() {
    let basket = cart(vec![line("a", 1000, 2)]);
    let mut platinum = rule(Kind::FixedAmount { amount: 100 });
    platinum.conditions.customer_tiers = vec!["platinum".to_owned()];
    let mut weekend = rule(Kind::FixedAmount { amount: 100 });
    weekend.conditions.days_of_week = vec![6, 7];
    let mut night = rule(Kind::FixedAmount { amount: 100 });
    night.conditions.time_of_day = Some((22 * 60, 6 * 60));
    let mut three_units = rule(Kind::FixedAmount { amount: 100 });
    three_units.conditions.min_quantity = 3;
    let mut big_spender = rule(Kind::FixedAmount { amount: 100 });
    big_spender.min_subtotal = 2001;
    let evaluation = price(
        &basket,
        &[platinum, weekend, night.clone(), three_units, big_spender],
    );
    assert_eq!(evaluation.total_discount, 0);
    assert_eq!(
        evaluation.rejected,
        [
            (0, Rejection::CustomerNotEligible),
            (1, Rejection::CustomerNotEligible),
            (2, Rejection::CustomerNotEligible),
            (3, Rejection::MinimumNotMet),
            (4, Rejection::MinimumNotMet),
        ]
    );
    // The night window wraps midnight.
    let mut late = basket.clone();
    late.minute_of_day = 23 * 60;
    assert_eq!(
        price(&late, std::slice::from_ref(&night)).total_discount,
        100
    );
    late.minute_of_day = 5 * 60;
    assert_eq!(price(&late, &[night]).total_discount, 100);
}

#[test]
fn nonsense_rules_and_carts_are_refused_field_by_field() {
    let mut bad = rule(Kind::TieredPercentage {
        tiers: vec![
            Tier {
                threshold: Threshold::Subtotal(5000),
                value: 500,
            },
            Tier {
                threshold: Threshold::Subtotal(1000),
                value: 12_000,
            },
        ],
    });
    bad.conditions.days_of_week = vec![0];
    let mut violations = Violations::new("promo.marketing");
    bad.validate(&mut violations);
    let fields: Vec<&str> = violations
        .as_slice()
        .iter()
        .map(|(f, _)| f.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "rule.tiers[1]",
            "rule.tiers[1]",
            "rule.conditions.days_of_week"
        ]
    );
    let mut violations = Violations::new("promo.marketing");
    rule(Kind::Percentage {
        bps: 10_001,
        max_quantity: None,
    })
    .validate(&mut violations);
    assert_eq!(violations.as_slice()[0].0, "rule.percent_bps");

    let mut basket = cart(vec![line("a", 0, 1), line("a", 100, -1)]);
    basket.shipping = -5;
    let mut violations = Violations::new("promo.marketing");
    basket.validate(&mut violations);
    let fields: Vec<&str> = violations
        .as_slice()
        .iter()
        .map(|(f, _)| f.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "cart.lines[0].unit_price",
            "cart.lines[1].line_id",
            "cart.lines[1].quantity",
            "cart.shipping"
        ]
    );
    let huge = cart(
        (0..=MAX_LINES)
            .map(|i| line(&i.to_string(), 1, 1))
            .collect(),
    );
    let mut violations = Violations::new("promo.marketing");
    huge.validate(&mut violations);
    assert_eq!(violations.as_slice()[0].0, "cart.lines");
}
