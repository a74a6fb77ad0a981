//! Properties over random carts and rules.

use marketing::pricing::*;
use proptest::prelude::*;

use crate::{cart, line, price};

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
