//! The pricing engine against its declared semantics: published cases of other engines where
//! their semantics match ours (numbers in the tests), the edge of every kind, and properties over
//! random carts and rules.

use kernel::Violations;
use marketing::pricing::*;
use proptest::prelude::*;

fn line(id: &str, unit_price: i64, quantity: i64) -> Line {
    Line {
        line_id: id.to_owned(),
        product_id: format!("p-{id}"),
        category_ids: vec!["all".to_owned()],
        quantity,
        unit_price,
        on_sale: false,
    }
}

fn cart(lines: Vec<Line>) -> Cart {
    Cart {
        customer_tier: "gold".to_owned(),
        lines,
        shipping: 0,
        weekday: 3,
        minute_of_day: 12 * 60,
    }
}

fn rule(kind: Kind) -> Rule {
    Rule {
        kind,
        scope: Scope::default(),
        min_subtotal: 0,
        max_discount: None,
        conditions: Conditions::default(),
        exclusive: false,
        priority: 0,
    }
}

fn candidates<'a>(rules: &'a [Rule]) -> Vec<Candidate<'a, usize>> {
    rules
        .iter()
        .enumerate()
        .map(|(key, rule)| Candidate {
            key,
            rule,
            budget: None,
        })
        .collect()
}

fn price(cart: &Cart, rules: &[Rule]) -> Evaluation<usize> {
    evaluate(cart, &candidates(rules))
}

/// Sylius' "several actions" scenario: 5 × €25 and 2 × €15 (€155), an order fixed discount of €20
/// and then 5 % of what is left: "Promotion total: -€26.75".
#[test]
fn sylius_fixed_then_percentage_is_26_75() {
    let cart = cart(vec![line("sarge", 2500, 5), line("lenny", 1500, 2)]);
    let mut fixed = rule(Kind::FixedAmount { amount: 2000 });
    fixed.priority = 2;
    let mut five = rule(Kind::Percentage {
        bps: 500,
        max_quantity: None,
    });
    five.priority = 1;
    let evaluation = price(&cart, &[five, fixed]);
    assert_eq!(evaluation.total_discount, 2675);
    // €20 spread 12500:3000 → 1612.9 / 387.1 → 1613 / 387; 5 % of 10887 and 2613, half up.
    assert_eq!(evaluation.line_discounts, [1613 + 544, 387 + 131]);
    assert_eq!(evaluation.total, 15500 - 2675);
    let keys: Vec<usize> = evaluation.effects.iter().map(|e| e.key).collect();
    assert_eq!(keys, [1, 0], "the higher priority first");
}

/// Vendure's prorate cases, as a fixed amount over lines of those amounts.
#[test]
fn vendure_prorate_cases_as_fixed_amounts() {
    let cases: &[(&[i64], i64, &[i64])] = &[
        (&[4000, 2000, 2000], 300, &[150, 75, 75]),
        (&[4300, 1400, 2300], 299, &[161, 52, 86]),
        (&[1000, 1000, 1000], 299, &[100, 100, 99]),
        (
            &[10, 20, 10, 30, 50, 20, 10, 40],
            93,
            &[5, 10, 5, 15, 24, 10, 5, 19],
        ),
    ];
    for (amounts, total, expected) in cases {
        let lines = amounts
            .iter()
            .enumerate()
            .map(|(i, amount)| line(&i.to_string(), *amount, 1))
            .collect();
        let evaluation = price(&cart(lines), &[rule(Kind::FixedAmount { amount: *total })]);
        assert_eq!(evaluation.line_discounts, *expected, "{amounts:?} {total}");
    }
}

/// Solidus' DistributedAmount calculator: $15 over one line, over three $50 lines, $10 over three
/// $50 lines (one gets the extra cent: ours is the first), $15 over $150, $50 and $100 lines.
#[test]
fn solidus_distributed_amount_cases() {
    let spread = |amount: i64, lines: Vec<Line>| {
        price(&cart(lines), &[rule(Kind::FixedAmount { amount })]).line_discounts
    };
    assert_eq!(spread(1500, vec![line("a", 10000, 1)]), [1500]);
    let three = || vec![line("a", 5000, 1), line("b", 5000, 1), line("c", 5000, 1)];
    assert_eq!(spread(1500, three()), [500, 500, 500]);
    assert_eq!(spread(1000, three()), [334, 333, 333]);
    assert_eq!(
        spread(
            1500,
            vec![line("a", 5000, 3), line("b", 5000, 1), line("c", 5000, 2)]
        ),
        [750, 250, 500]
    );
}

/// Medusa's computeActions cases (promotion module integration tests), in cents: items
/// "allocation: across" are our fixed amount spread by line amounts; "allocation: each" with a
/// max_quantity is our percentage or fixed-per-unit with a maximum number of units; stacked
/// promotions apply in order on what the earlier ones left.
#[test]
fn medusa_compute_actions_cases() {
    let spread = |amounts: &[(i64, i64)], rules: &[Rule]| {
        let lines = amounts
            .iter()
            .enumerate()
            .map(|(i, (unit, quantity))| line(&i.to_string(), *unit, *quantity))
            .collect();
        price(&cart(lines), rules)
    };
    let fixed = |amount: i64, priority: i32| Rule {
        priority,
        ..rule(Kind::FixedAmount { amount })
    };
    // Across: 400 over 2 × 100 and 2 × 300 → 100 and 300.
    let across = spread(&[(10_000, 2), (30_000, 2)], &[fixed(40_000, 0)]);
    assert_eq!(across.line_discounts, [10_000, 30_000]);
    // Across, two promotions: 30 then 50 over 50 and 150 → 7.50 / 22.50, then 12.50 / 37.50.
    let two = spread(
        &[(5_000, 1), (15_000, 1)],
        &[fixed(3_000, 2), fixed(5_000, 1)],
    );
    let per_effect: Vec<Vec<i64>> = two
        .effects
        .iter()
        .map(|effect| effect.lines.iter().map(|(_, amount)| *amount).collect())
        .collect();
    assert_eq!(per_effect, [vec![750, 2_250], vec![1_250, 3_750]]);
    // Across, 1000 then 50 over 50 and 150: the first takes both lines whole, the second nothing.
    let whole = spread(
        &[(5_000, 1), (15_000, 1)],
        &[fixed(100_000, 2), fixed(5_000, 1)],
    );
    assert_eq!(whole.line_discounts, [5_000, 15_000]);
    assert_eq!(whole.total_discount, 20_000);
    // Each, fixed 200 on one unit: a 100 t-shirt gets 100 (never more than the unit), a 150
    // sweater (5 × 150) gets 150.
    let each = spread(
        &[(10_000, 1), (15_000, 5)],
        &[rule(Kind::FixedPerUnit {
            amount: 20_000,
            max_quantity: Some(1),
        })],
    );
    assert_eq!(each.line_discounts, [10_000, 15_000]);
    // Each, fixed 100 on up to 5 units of 5 × 1000 → 500.
    let five = spread(
        &[(100_000, 5)],
        &[rule(Kind::FixedPerUnit {
            amount: 10_000,
            max_quantity: Some(5),
        })],
    );
    assert_eq!(five.line_discounts, [50_000]);
    // Each, 10 % of one unit: 100 → 10, 5 × 150 → 15.
    let ten = spread(
        &[(10_000, 1), (15_000, 5)],
        &[rule(Kind::Percentage {
            bps: 1_000,
            max_quantity: Some(1),
        })],
    );
    assert_eq!(ten.line_discounts, [1_000, 1_500]);
    // Each, 30 % of two units then 10 % of one: 1 × 150 → 45 then 10.50 (10 % of the 105 the
    // first left), as Medusa. On 3 × 50 the first gives 30, as Medusa; the second differs by
    // declaration: Medusa keeps the third unit whole and takes 10 % of 50 = 5.00, ours takes 10 %
    // of one third of the 120 left = 4.00 (the base of a maximum quantity is that share of what is
    // left, see pricing's semantics), so this line is not an oracle case.
    let percent = |bps: u32, units: i64, priority: i32| Rule {
        priority,
        ..rule(Kind::Percentage {
            bps,
            max_quantity: Some(units),
        })
    };
    let stacked = spread(
        &[(5_000, 3), (15_000, 1)],
        &[percent(3_000, 2, 2), percent(1_000, 1, 1)],
    );
    let per_effect: Vec<Vec<i64>> = stacked
        .effects
        .iter()
        .map(|effect| effect.lines.iter().map(|(_, amount)| *amount).collect())
        .collect();
    assert_eq!(per_effect, [vec![3_000, 4_500], vec![400, 1_050]]);
    // (Medusa's "two 100 % promotions on one unit each of 4 × 50 → 50 and 50" differs the same
    // way: ours gives 50.00, then 100 % of a quarter of the 150 left = 37.50.)
    let twice = spread(
        &[(5_000, 4)],
        &[percent(10_000, 1, 2), percent(10_000, 1, 1)],
    );
    assert_eq!(twice.line_discounts, [8_750]);
}

/// Saleor's product-voucher cases (discount utils tests) on lines of 5, 10 and 15: a 10 %
/// voucher takes 3 in all (per unit, which is per line here), a fixed 2 applied once takes 2.
#[test]
fn saleor_product_voucher_cases() {
    let lines = || vec![line("a", 500, 1), line("b", 1_000, 1), line("c", 1_500, 1)];
    let ten = price(
        &cart(lines()),
        &[rule(Kind::Percentage {
            bps: 1_000,
            max_quantity: None,
        })],
    );
    assert_eq!(ten.total_discount, 300);
    assert_eq!(ten.line_discounts, [50, 100, 150]);
    let two = price(&cart(lines()), &[rule(Kind::FixedAmount { amount: 200 })]);
    assert_eq!(two.total_discount, 200);
}

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

fn arbitrary_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (1u32..=10_000, proptest::option::of(1i64..5))
            .prop_map(|(bps, max_quantity)| { Kind::Percentage { bps, max_quantity } }),
        (1i64..50_000).prop_map(|amount| Kind::FixedAmount { amount }),
        (1i64..5_000, proptest::option::of(1i64..5)).prop_map(|(amount, max_quantity)| {
            Kind::FixedPerUnit {
                amount,
                max_quantity,
            }
        }),
        Just(Kind::FreeShipping),
        (1i64..4, 1i64..3).prop_map(|(buy, get)| Kind::BuyXGetY {
            buy,
            get,
            get_scope: Scope::default(),
        }),
    ]
}

fn arbitrary_rule() -> impl Strategy<Value = Rule> {
    (
        arbitrary_kind(),
        proptest::option::of(1i64..20_000),
        any::<bool>(),
        -3i32..3,
        any::<bool>(),
    )
        .prop_map(|(kind, max_discount, exclusive, priority, sale)| Rule {
            kind,
            scope: Scope {
                exclude_sale_items: sale,
                ..Scope::default()
            },
            min_subtotal: 0,
            max_discount,
            conditions: Conditions::default(),
            exclusive,
            priority,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Every discount is between zero and what it applies to; every effect's parts sum exactly to
    /// it; the per-line discounts are the sums of the effects; the total adds up.
    #[test]
    fn discounts_stay_within_their_lines_and_add_up(
        lines in proptest::collection::vec((1i64..100_000, 1i64..20, any::<bool>()), 1..12),
        shipping in 0i64..2_000,
        rules in proptest::collection::vec(arbitrary_rule(), 0..6),
    ) {
        let mut basket = cart(
            lines.iter().enumerate().map(|(i, (price, quantity, _))| line(&i.to_string(), *price, *quantity)).collect(),
        );
        for (line, (_, _, sale)) in basket.lines.iter_mut().zip(&lines) {
            line.on_sale = *sale;
        }
        basket.shipping = shipping;
        let evaluation = price(&basket, &rules);
        let mut per_line = vec![0i64; basket.lines.len()];
        let mut shipping_sum = 0;
        for effect in &evaluation.effects {
            let parts: i64 = effect.lines.iter().map(|(_, amount)| amount).sum();
            prop_assert_eq!(parts + effect.shipping, effect.amount);
            prop_assert!(effect.amount > 0);
            if let Some(cap) = rules[effect.key].max_discount {
                prop_assert!(effect.amount <= cap);
            }
            for (index, amount) in &effect.lines {
                prop_assert!(*amount > 0);
                per_line[*index] += amount;
            }
            shipping_sum += effect.shipping;
        }
        prop_assert_eq!(&per_line, &evaluation.line_discounts);
        for (discount, line) in evaluation.line_discounts.iter().zip(&basket.lines) {
            prop_assert!(*discount >= 0 && *discount <= line.amount());
        }
        prop_assert_eq!(shipping_sum, evaluation.shipping_discount);
        prop_assert!(evaluation.shipping_discount <= shipping);
        prop_assert_eq!(
            evaluation.total,
            evaluation.subtotal + shipping - evaluation.total_discount
        );
        prop_assert!(evaluation.total >= 0);
        // Every candidate is either applied or rejected, once.
        let mut seen: Vec<usize> = evaluation.effects.iter().map(|e| e.key)
            .chain(evaluation.rejected.iter().map(|(key, _)| *key)).collect();
        seen.sort_unstable();
        prop_assert_eq!(seen, (0..rules.len()).collect::<Vec<_>>());
    }
}
