//! The pricing engine against its declared semantics: published cases of other engines where
//! their semantics match ours (numbers in the tests), the edge of every kind, and properties over
//! random carts and rules.

mod oracle;
mod properties;
mod semantics;

use marketing::pricing::*;

pub fn line(id: &str, unit_price: i64, quantity: i64) -> Line {
    Line {
        line_id: id.to_owned(),
        product_id: format!("p-{id}"),
        category_ids: vec!["all".to_owned()],
        quantity,
        unit_price,
        on_sale: false,
    }
}

pub fn cart(lines: Vec<Line>) -> Cart {
    Cart {
        customer_tier: "gold".to_owned(),
        lines,
        shipping: 0,
        weekday: 3,
        minute_of_day: 12 * 60,
    }
}

pub fn rule(kind: Kind) -> Rule {
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

pub fn price(cart: &Cart, rules: &[Rule]) -> Evaluation<usize> {
    evaluate(cart, &candidates(rules))
}
