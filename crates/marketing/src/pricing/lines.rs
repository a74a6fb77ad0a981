//! Which lines a rule applies to, looked up through an index of the cart's products and
//! categories.

use std::collections::HashMap;

use super::{Cart, Scope};

/// The cart's lines by product and by category, built once per evaluation, so a rule's eligible
/// lines are looked up rather than found by comparing every line with every id of its scope.
pub(super) struct LineIndex<'c> {
    by_product: HashMap<&'c str, Vec<usize>>,
    by_category: HashMap<&'c str, Vec<usize>>,
}

impl<'c> LineIndex<'c> {
    pub(super) fn new(cart: &'c Cart) -> LineIndex<'c> {
        let mut index = LineIndex {
            by_product: HashMap::with_capacity(cart.lines.len()),
            by_category: HashMap::new(),
        };
        for (position, line) in cart.lines.iter().enumerate() {
            index
                .by_product
                .entry(line.product_id.as_str())
                .or_default()
                .push(position);
            for category in &line.category_ids {
                let lines = index.by_category.entry(category.as_str()).or_default();
                // A line listing a category twice is still one line.
                if lines.last() != Some(&position) {
                    lines.push(position);
                }
            }
        }
        index
    }
}

/// The lines `scope` covers, in cart order (see [`Scope`]'s rule: a listed product or a listed
/// category, all lines when it lists neither, without sale items when it excludes them).
pub(super) fn eligible(cart: &Cart, index: &LineIndex<'_>, scope: &Scope) -> Vec<usize> {
    let wanted = |position: &usize| !(scope.exclude_sale_items && cart.lines[*position].on_sale);
    if scope.product_ids.is_empty() && scope.category_ids.is_empty() {
        return (0..cart.lines.len()).filter(wanted).collect();
    }
    let mut lines: Vec<usize> = Vec::new();
    for product in &scope.product_ids {
        if let Some(found) = index.by_product.get(product.as_str()) {
            lines.extend(found);
        }
    }
    for category in &scope.category_ids {
        if let Some(found) = index.by_category.get(category.as_str()) {
            lines.extend(found);
        }
    }
    lines.sort_unstable();
    lines.dedup();
    lines.retain(wanted);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::Line;

    fn line(product: &str, categories: &[&str], on_sale: bool) -> Line {
        Line {
            line_id: product.to_owned(),
            product_id: product.to_owned(),
            category_ids: categories.iter().map(|c| (*c).to_owned()).collect(),
            quantity: 1,
            unit_price: 100,
            on_sale,
        }
    }

    #[test]
    fn indexed_eligibility_is_the_scope_rule_line_by_line() {
        let cart = Cart {
            customer_tier: String::new(),
            lines: vec![
                line("a", &["x", "x"], false),
                line("b", &["y"], true),
                line("a", &["y", "z"], false),
                line("c", &[], false),
                line("d", &["z"], true),
            ],
            shipping: 0,
            weekday: 1,
            minute_of_day: 0,
        };
        let index = LineIndex::new(&cart);
        let ids = |list: &[&str]| list.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>();
        for products in [&[][..], &["a"], &["c", "a"], &["nope"]] {
            for categories in [&[][..], &["y"], &["x", "z"], &["z", "y", "x"]] {
                for exclude_sale_items in [false, true] {
                    let scope = Scope {
                        product_ids: ids(products),
                        category_ids: ids(categories),
                        exclude_sale_items,
                    };
                    let expected: Vec<usize> = (0..cart.lines.len())
                        .filter(|position| scope.covers(&cart.lines[*position]))
                        .collect();
                    assert_eq!(eligible(&cart, &index, &scope), expected, "{scope:?}");
                }
            }
        }
    }
}
