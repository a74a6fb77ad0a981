//! Published cases of other engines, where their semantics match ours (numbers in the tests).

use marketing::pricing::*;

use crate::{cart, line, price, rule};

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
