//! Statistical tests of selection with fixed seeds (deterministic, never flaky): the promoted share,
//! the credit weighting among promoted picks and the uniform fallback. Each test is also run
//! against a deliberately wrong sampler, which it must reject: the tests have power.

use promotion_core::domain::WeightedSampler;
use promotion_core::settings::Fraction;
use promotion_core::snapshot::{EligiblePromotion, Snapshot};
use promotion_core::taxonomy::Taxonomy;
use rand::SeedableRng;
use rand::rngs::StdRng;
use uuid::Uuid;

const ALPHA: f64 = 0.001;

/// Two-sided exact binomial test: the probability, under `p`, of an outcome no more likely than
/// `k` successes in `n` trials.
fn binomial_p_value(k: u64, n: u64, p: f64) -> f64 {
    let mut log_factorial = vec![0.0f64; n as usize + 1];
    for i in 1..=n as usize {
        log_factorial[i] = log_factorial[i - 1] + (i as f64).ln();
    }
    let log_pmf = |i: u64| {
        log_factorial[n as usize] - log_factorial[i as usize] - log_factorial[(n - i) as usize]
            + i as f64 * p.ln()
            + (n - i) as f64 * (1.0 - p).ln()
    };
    let observed = log_pmf(k);
    // Relative tolerance as in the usual definition, so ties in floating point count.
    (0..=n)
        .map(log_pmf)
        .filter(|l| *l <= observed + 1e-7)
        .map(f64::exp)
        .sum::<f64>()
        .min(1.0)
}

/// Pearson's chi-square statistic of counts against expected proportions.
fn chi_square(counts: &[u64], proportions: &[f64]) -> f64 {
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .zip(proportions)
        .map(|(&observed, &share)| {
            let expected = total as f64 * share;
            (observed as f64 - expected).powi(2) / expected
        })
        .sum()
}

/// Upper critical values of the chi-square distribution at α = 0.001.
fn chi_square_critical(degrees_of_freedom: usize) -> f64 {
    match degrees_of_freedom {
        3 => 16.266,
        9 => 27.877,
        other => panic!("no critical value tabulated for {other} degrees of freedom"),
    }
}

fn material_ids(count: usize) -> Vec<(Uuid, String, String)> {
    (0..count)
        .map(|index| {
            (
                Uuid::from_u128(index as u128 + 1),
                format!("m{index}"),
                "wood".to_owned(),
            )
        })
        .collect()
}

fn snapshot(probability: Fraction, materials: usize, weights: &[u64]) -> (Snapshot, Vec<Uuid>) {
    let materials = material_ids(materials);
    let promotion_ids: Vec<Uuid> = (0..weights.len())
        .map(|index| Uuid::from_u128(1000 + index as u128))
        .collect();
    let promotions = weights
        .iter()
        .zip(&promotion_ids)
        .enumerate()
        .map(|(index, (weight, id))| EligiblePromotion {
            promotion_id: *id,
            material_id: materials[index].0,
            material_type: "wood".to_owned(),
            weight: *weight,
            project_types: vec![],
        })
        .collect();
    (
        Snapshot::build(
            1,
            probability,
            Taxonomy::defaults(),
            materials,
            promotions,
            None,
        ),
        promotion_ids,
    )
}

/// Does the promoted share of `n` picks pass the exact binomial test against 1/3?
fn promoted_share_passes(snapshot: &Snapshot, n: u64, seed: u64) -> (bool, f64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let promoted = (0..n)
        .filter(|_| {
            snapshot
                .select(&mut rng, "wood", "")
                .and_then(|pick| pick.promotion_id)
                .is_some()
        })
        .count() as u64;
    let share = promoted as f64 / n as f64;
    let p_value = binomial_p_value(promoted, n, 1.0 / 3.0);
    (p_value >= ALPHA && (share - 1.0 / 3.0).abs() <= 0.01, share)
}

#[test]
fn about_one_selection_in_three_is_promoted() {
    let (snapshot, _) = snapshot(
        Fraction {
            numerator: 1,
            denominator: 3,
        },
        20,
        &[10, 20, 30, 40],
    );
    let (passes, share) = promoted_share_passes(&snapshot, 120_000, 11);
    assert!(passes, "promoted share {share}");
}

#[test]
fn the_promoted_share_test_rejects_a_biased_sampler() {
    let (biased, _) = snapshot(
        Fraction {
            numerator: 35,
            denominator: 100,
        },
        20,
        &[10, 20, 30, 40],
    );
    let (passes, share) = promoted_share_passes(&biased, 120_000, 11);
    assert!(!passes, "a 35% sampler passed with share {share}");
}

fn weight_counts(snapshot: &Snapshot, promotions: &[Uuid], picks: usize, seed: u64) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut counts = vec![0u64; promotions.len()];
    let mut promoted = 0;
    while promoted < picks {
        if let Some(promotion_id) = snapshot
            .select(&mut rng, "wood", "")
            .and_then(|pick| pick.promotion_id)
        {
            let index = promotions
                .iter()
                .position(|id| *id == promotion_id)
                .expect("known promotion");
            counts[index] += 1;
            promoted += 1;
        }
    }
    counts
}

const ONE_TWO_THREE_FOUR: [f64; 4] = [0.1, 0.2, 0.3, 0.4];

#[test]
fn promoted_picks_follow_the_credit_weights() {
    let (snapshot, promotions) = snapshot(
        Fraction {
            numerator: 1,
            denominator: 3,
        },
        20,
        &[1_000, 2_000, 3_000, 4_000],
    );
    let counts = weight_counts(&snapshot, &promotions, 40_000, 5);
    let statistic = chi_square(&counts, &ONE_TWO_THREE_FOUR);
    assert!(
        statistic < chi_square_critical(3),
        "chi-square {statistic} for {counts:?}"
    );
}

#[test]
fn the_weight_test_rejects_a_misweighted_sampler() {
    let (misweighted, promotions) = snapshot(
        Fraction {
            numerator: 1,
            denominator: 3,
        },
        20,
        &[1_000, 2_000, 3_000, 5_000],
    );
    let counts = weight_counts(&misweighted, &promotions, 40_000, 5);
    let statistic = chi_square(&counts, &ONE_TWO_THREE_FOUR);
    assert!(
        statistic >= chi_square_critical(3),
        "a 1:2:3:5 sampler passed: chi-square {statistic}"
    );
}

fn uniform_counts(
    mut pick: impl FnMut(&mut StdRng) -> Option<usize>,
    picks: usize,
    seed: u64,
) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut counts = vec![0u64; 10];
    let mut taken = 0;
    while taken < picks {
        if let Some(index) = pick(&mut rng) {
            counts[index] += 1;
            taken += 1;
        }
    }
    counts
}

#[test]
fn non_promoted_picks_are_uniform_over_the_types_materials() {
    let (snapshot, _) = snapshot(
        Fraction {
            numerator: 1,
            denominator: 3,
        },
        10,
        &[5, 5],
    );
    let counts = uniform_counts(
        |rng| {
            let pick = snapshot.select(rng, "wood", "")?;
            if pick.promotion_id.is_some() {
                return None;
            }
            Some(pick.material_id.as_u128() as usize - 1)
        },
        50_000,
        9,
    );
    let statistic = chi_square(&counts, &[0.1; 10]);
    assert!(
        statistic < chi_square_critical(9),
        "chi-square {statistic} for {counts:?}"
    );
}

#[test]
fn the_uniformity_test_rejects_a_skewed_sampler() {
    let skewed =
        WeightedSampler::new((0..10usize).map(|index| (index, if index == 0 { 12 } else { 10 })));
    let counts = uniform_counts(|rng| skewed.pick(rng).copied(), 50_000, 9);
    let statistic = chi_square(&counts, &[0.1; 10]);
    assert!(
        statistic >= chi_square_critical(9),
        "a skewed sampler passed: chi-square {statistic}"
    );
}

#[test]
fn the_exact_binomial_test_matches_known_values() {
    // 60 heads in 100 fair tosses: two-sided p = 0.0569 (standard tables).
    let p = binomial_p_value(60, 100, 0.5);
    assert!((p - 0.0569).abs() < 0.0005, "{p}");
    assert!(binomial_p_value(50, 100, 0.5) > 0.99);
}

#[test]
fn project_type_targeting_only_adds_promotions_for_that_project() {
    let materials = material_ids(3);
    let promotions = vec![EligiblePromotion {
        promotion_id: Uuid::from_u128(7),
        material_id: materials[0].0,
        material_type: "wood".to_owned(),
        weight: 10,
        project_types: vec!["furniture".to_owned()],
    }];
    let snapshot = Snapshot::build(
        1,
        Fraction {
            numerator: 1,
            denominator: 1,
        },
        Taxonomy::defaults(),
        materials,
        promotions,
        None,
    );
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..100 {
        assert!(
            snapshot
                .select(&mut rng, "wood", "")
                .and_then(|p| p.promotion_id)
                .is_none()
        );
        assert_eq!(
            snapshot
                .select(&mut rng, "wood", "furniture")
                .and_then(|p| p.promotion_id),
            Some(Uuid::from_u128(7))
        );
    }
    assert!(
        snapshot.select(&mut rng, "glass", "").is_none(),
        "unknown type"
    );
}
