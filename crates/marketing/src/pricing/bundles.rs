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

/// One pool of units (the bought or the target lines): its runs, most expensive first, the
/// position of the first run with unused units (units only ever run out, so it only moves on),
/// and how many units it still has.
struct Pool {
    runs: Vec<(i64, usize, i64)>,
    first: usize,
}

impl Pool {
    fn new(cart: &Cart, lines: &[usize]) -> Pool {
        Pool {
            runs: runs(cart, lines),
            first: 0,
        }
    }

    /// The line of the most expensive unused units.
    fn head(&mut self, unused: &[i64]) -> Option<usize> {
        while let Some((_, index, _)) = self.runs.get(self.first) {
            if unused[*index] > 0 {
                return Some(*index);
            }
            self.first += 1;
        }
        None
    }

    fn available(&self, unused: &[i64]) -> i64 {
        self.runs[self.first.min(self.runs.len())..]
            .iter()
            .map(|(_, index, _)| unused[*index])
            .sum()
    }

    /// Takes `count` of the most expensive unused units; None (and nothing taken) when too few.
    fn take(&mut self, unused: &mut [i64], count: i64) -> Option<Vec<(usize, i64)>> {
        if self.available(unused) < count {
            return None;
        }
        let mut taken = Vec::new();
        let mut wanted = count;
        for (_, index, _) in &self.runs[self.first..] {
            if wanted == 0 {
                break;
            }
            let here = unused[*index].min(wanted);
            if here > 0 {
                unused[*index] -= here;
                taken.push((*index, here));
                wanted -= here;
            }
        }
        Some(taken)
    }
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
    let mut unused = vec![0i64; cart.lines.len()];
    for &index in buy_lines.iter().chain(target_lines) {
        unused[index] = cart.lines[index].quantity;
    }
    let mut buying = Pool::new(cart, buy_lines);
    let mut getting = Pool::new(cart, target_lines);
    let mut free: BTreeMap<usize, i64> = BTreeMap::new();
    loop {
        // While the most expensive unused units of both pools stay on the same two lines (or one
        // line in both pools), whole groups can be taken at once: exactly what taking them one
        // group at a time would do, in a number of steps bounded by the lines, not the units.
        if let (Some(buy_line), Some(target_line)) = (buying.head(&unused), getting.head(&unused)) {
            let groups = if buy_line == target_line {
                unused[buy_line] / (buy + get)
            } else {
                (unused[buy_line] / buy).min(unused[target_line] / get)
            };
            if groups > 0 {
                unused[buy_line] -= groups * buy;
                unused[target_line] -= groups * get;
                *free.entry(target_line).or_default() += groups * get;
                continue;
            }
        }
        // A group that spans lines: one at a time.
        if buying.take(&mut unused, buy).is_none() {
            break;
        }
        let Some(got) = getting.take(&mut unused, get) else {
            break;
        };
        for (index, units) in got {
            *free.entry(index).or_default() += units;
        }
    }
    free
}
