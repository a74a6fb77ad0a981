//! Buy X get Y: which units are free.

use std::collections::BTreeMap;

use super::Cart;

/// `(unit price, line index, units)` runs, most expensive first, ties to the earlier line.
fn runs(cart: &Cart, lines: &[usize]) -> Vec<(i64, usize, i64)> {
    let mut runs: Vec<(i64, usize, i64)> = lines
        .iter()
        .map(|&index| {
            (
                cart.lines[index].unit_price,
                index,
                cart.lines[index].quantity,
            )
        })
        .collect();
    runs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    runs
}

/// Buy X get Y: the number of free units per line.
pub(super) fn free_units(
    cart: &Cart,
    buy_lines: &[usize],
    target_lines: &[usize],
    buy: i64,
    get: i64,
) -> BTreeMap<usize, i64> {
    // Units still unused per line, shared by both pools (a line may be in both).
    let mut unused: BTreeMap<usize, i64> = buy_lines
        .iter()
        .chain(target_lines)
        .map(|&index| (index, cart.lines[index].quantity))
        .collect();
    let buy_runs = runs(cart, buy_lines);
    let target_runs = runs(cart, target_lines);
    let mut free: BTreeMap<usize, i64> = BTreeMap::new();
    // Takes `count` units from the most expensive unused units of `pool`; None when too few.
    let take = |unused: &mut BTreeMap<usize, i64>,
                pool: &[(i64, usize, i64)],
                count: i64|
     -> Option<Vec<(usize, i64)>> {
        let available: i64 = pool.iter().map(|(_, index, _)| unused[index]).sum();
        if available < count {
            return None;
        }
        let mut taken = Vec::new();
        let mut wanted = count;
        for (_, index, _) in pool {
            if wanted == 0 {
                break;
            }
            let here = unused[index].min(wanted);
            if here > 0 {
                if let Some(units) = unused.get_mut(index) {
                    *units -= here;
                }
                taken.push((*index, here));
                wanted -= here;
            }
        }
        Some(taken)
    };
    loop {
        // While the most expensive unused units of both pools stay on the same two lines (or one
        // line in both pools), whole groups can be taken at once: exactly what taking them one
        // group at a time would do, in a number of steps bounded by the lines, not the units.
        let head = |runs: &[(i64, usize, i64)], unused: &BTreeMap<usize, i64>| {
            runs.iter()
                .find(|(_, index, _)| unused[index] > 0)
                .map(|run| run.1)
        };
        if let (Some(buy_line), Some(target_line)) =
            (head(&buy_runs, &unused), head(&target_runs, &unused))
        {
            let groups = if buy_line == target_line {
                unused[&buy_line] / (buy + get)
            } else {
                (unused[&buy_line] / buy).min(unused[&target_line] / get)
            };
            if groups > 0 {
                if let Some(units) = unused.get_mut(&buy_line) {
                    *units -= groups * buy;
                }
                if let Some(units) = unused.get_mut(&target_line) {
                    *units -= groups * get;
                }
                *free.entry(target_line).or_default() += groups * get;
                continue;
            }
        }
        // A group that spans lines: one at a time.
        if take(&mut unused, &buy_runs, buy).is_none() {
            break;
        }
        let Some(got) = take(&mut unused, &target_runs, get) else {
            break;
        };
        for (index, units) in got {
            *free.entry(index).or_default() += units;
        }
    }
    free
}
