//! The guard's sequential test: a Bernoulli CUSUM built to be checked after every answer, with
//! a threshold derived from a stated false-abort target, and a comparison with the other
//! backends so that a failure they share is not blamed on the canary.
//!
//! For one class of bad answer (5xx, or slow) with limit `p0` (`max_error_rate`), the test
//! weighs each canary answer by the log-likelihood ratio of "the canary fails at `p1 = k × p0`"
//! against "it fails at `p0`" (`k` is `sensitivity`). The statistic `S` adds the weight of each
//! answer and is floored at 0 (`S = max(0, S + w)`): it is the strongest evidence, over every
//! span of recent answers, that the canary is bad. The weights are integers (a failure adds
//! `up`, a good answer takes `down` away) so that the rule is a finite Markov chain whose run
//! length `run_length.rs` computes exactly.
//!
//! The threshold `H` comes from Ville's maximal inequality: for a canary failing at
//! `p = p0 / 2` ("healthy"), `θ` solving `p·e^{θ·up} + (1 − p)·e^{−θ·down} = 1` makes `e^{θS}`
//! a martingale during an excursion, so an excursion started by one failure (at `up`) reaches
//! `H` with probability at most `e^{−θ(H − up)}`. At most one excursion starts per failure, so
//! over `N` answers `P(false abort) ≤ p·N·e^{−θ(H − up)}`; `H` is the smallest value that
//! makes this `≤ false_abort_rate` for `N` = 86.4 M answers (a day at 1,000 answers/s). A
//! canary failing less often than `p0 / 2` is aborted even less often (larger `θ`, fewer
//! excursions).
//!
//! The comparison: when `S ≥ H`, its span (the canary's answers since `S` was last 0) is
//! compared with the other backends' answers over the same span by a one-sided generalized
//! likelihood ratio (each side at its own share against both at the pooled share), which must
//! reach the same threshold in nats plus [`COMPARISON_MARGIN_NATS`]. A failure shared by every backend gives them the same
//! share, so that ratio stays near 0 however long the outage lasts. When the others have no
//! live traffic (the weights give them nothing: the last step; or they answered nothing during
//! the span, the last `window_s` and the last 128 canary answers), there is nothing to compare
//! with: the canary is judged alone.

/// Answers in one day at 1,000 answers/s: the horizon `false_abort_rate` is stated for.
pub const TARGET_HORIZON_ANSWERS: f64 = 86_400_000.0;

/// A failure weighs at least this many units, so that rounding the likelihood ratio of a
/// failure to a good answer to whole units moves it by at most 1 %.
const MIN_UP_UNITS: f64 = 100.0;

/// Limits below this are read as it (a limit of 0 has no likelihood ratio).
pub const MIN_LIMIT: f64 = 1e-6;

/// The comparison's threshold is the CUSUM's plus this (a likelihood ratio e² ≈ 7.4 times
/// higher): it is looked at after every canary answer of a long outage, and the span it
/// compares grows with it, so its chance of a fluke grows with the logarithm of the outage's
/// length; the margin keeps a shared outage of an hour at 1,000 answers/s below 1 % of runs
/// (the shared-failure rows of docs/guard.md).
pub const COMPARISON_MARGIN_NATS: f64 = 2.0;

/// One compiled test (for 5xx, or for slow answers).
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    /// The limit `p0` (after [`MIN_LIMIT`]).
    pub limit: f64,
    /// `p1`: `k × p0`, or half-way from `p0` to 1 if that is lower.
    pub bad: f64,
    pub sensitivity: f64,
    /// Units a failing answer adds.
    pub up: u32,
    /// Units a good answer takes away.
    pub down: u32,
    /// `H`: the canary is judged bad at `S ≥ threshold` units. `u32::MAX`: never (limit 1).
    pub threshold: u32,
    /// Nats per unit: `H × unit_nats` is the threshold as a log-likelihood ratio.
    pub unit_nats: f64,
}

impl Test {
    /// The test for limit `limit` (0..=1), sensitivity `k` (> 1) and a false-abort target
    /// `alpha` (0..1) over [`TARGET_HORIZON_ANSWERS`].
    pub fn new(limit: f64, k: f64, alpha: f64) -> Test {
        let p0 = limit.max(MIN_LIMIT);
        if p0 >= 1.0 {
            return Test {
                limit: 1.0,
                bad: 1.0,
                sensitivity: k,
                up: 0,
                down: 1,
                threshold: u32::MAX,
                unit_nats: 1.0,
            };
        }
        let p1 = bad_share(p0, k);
        let fail_nats = (p1 / p0).ln();
        let pass_nats = ((1.0 - p0) / (1.0 - p1)).ln();
        let ratio = fail_nats / pass_nats;
        let down = (MIN_UP_UNITS / ratio).ceil().max(1.0);
        let up = (ratio * down).round().max(1.0);
        // Both at most ~1e8 for any limit >= MIN_LIMIT: the casts cannot truncate.
        let (up, down) = (up as u32, down as u32);
        let healthy = p0 / 2.0;
        let theta = ville_theta(healthy, up, down);
        let excursions = healthy * TARGET_HORIZON_ANSWERS / alpha;
        let above_start = if excursions > 1.0 && theta > 0.0 {
            (excursions.ln() / theta).ceil()
        } else {
            0.0
        };
        let threshold = (f64::from(up) + above_start).min(f64::from(u32::MAX / 4)) as u32;
        Test {
            limit: p0,
            bad: p1,
            sensitivity: k,
            up,
            down,
            threshold: threshold.max(1),
            unit_nats: pass_nats / f64::from(down),
        }
    }

    /// The upper bound this test guarantees on the chance that a canary failing at
    /// `share ≤ limit / 2` is aborted within `answers` answers (Ville's inequality).
    pub fn false_abort_bound(&self, share: f64, answers: f64) -> f64 {
        let theta = ville_theta(share, self.up, self.down);
        let above_start = f64::from(self.threshold.saturating_sub(self.up));
        (share * answers * (-theta * above_start).exp()).min(1.0)
    }

    /// Consecutive failures that reach the threshold (from 0).
    pub fn failures_to_threshold(&self) -> u64 {
        if self.up == 0 {
            return u64::MAX;
        }
        u64::from(self.threshold.div_ceil(self.up))
    }
}

/// `k × p0`, or half-way from `p0` to 1 when that is lower (so that `p1 < 1`).
fn bad_share(p0: f64, k: f64) -> f64 {
    (k * p0).min((1.0 + p0) / 2.0)
}

/// The `θ > 0` with `p·e^{θ·up} + (1 − p)·e^{−θ·down} = 1` (0 if the walk does not drift down
/// at `p`, where no such root exists).
pub fn ville_theta(p: f64, up: u32, down: u32) -> f64 {
    let (up, down) = (f64::from(up), f64::from(down));
    let excess = |theta: f64| p * (theta * up).exp() + (1.0 - p) * (-theta * down).exp() - 1.0;
    if p * up >= (1.0 - p) * down {
        return 0.0;
    }
    // The function is convex, 0 at 0 and falling there: bracket the positive root, bisect.
    let mut high = 1.0 / up.max(down);
    while excess(high) < 0.0 && high < 1e6 {
        high *= 2.0;
    }
    let mut low = 0.0;
    for _ in 0..200 {
        let middle = (low + high) / 2.0;
        if excess(middle) < 0.0 {
            low = middle;
        } else {
            high = middle;
        }
    }
    low
}

/// Answers and how many of them were bad (5xx, or slow), over some span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub answers: u64,
    pub bad: u64,
}

impl Tally {
    fn add(&mut self, answers: u64, bad: u64) {
        self.answers += answers;
        self.bad += bad;
    }
}

/// The state of one test on one worker: the statistic and the evidence it rests on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cusum {
    /// `S`, in units.
    pub units: u32,
    /// The canary's answers since `S` was last 0 (the span of the evidence).
    pub canary: Tally,
    /// The other backends' answers over the same span.
    pub others: Tally,
}

impl Cusum {
    /// One canary answer; `bad` if it failed this test's class.
    pub fn canary(&mut self, test: &Test, bad: bool) {
        if bad {
            // Capped well above the threshold: a canary that recovers is forgotten in a bounded
            // number of answers.
            let cap = test.threshold.saturating_mul(2);
            self.units = self.units.saturating_add(test.up).min(cap);
        } else {
            self.units = self.units.saturating_sub(test.down);
        }
        if self.units == 0 {
            self.canary = Tally::default();
            self.others = Tally::default();
        } else {
            self.canary.add(1, u64::from(bad));
        }
    }

    /// `answers` answers of the other backends, `bad` of them failing this test's class.
    pub fn others(&mut self, answers: u64, bad: u64) {
        if self.units > 0 {
            self.others.add(answers, bad);
        }
    }

    /// The canary's evidence has reached the threshold.
    pub fn alarmed(&self, test: &Test) -> bool {
        self.units >= test.threshold
    }

    /// With [`Cusum::alarmed`]: the canary is also worse than the other backends over the same
    /// span (or there are none to compare with: `alone`). The evidence is the one-sided
    /// generalized likelihood ratio of "each side fails at its own share" against "both fail
    /// at their pooled share", which must reach the same threshold as the CUSUM.
    pub fn worse_than_others(&self, test: &Test, alone: bool) -> bool {
        let (canary, others) = (self.canary, self.others);
        if others.answers == 0 {
            return alone;
        }
        // One-sided: the canary's share must be the higher (integer cross-multiplication).
        if u128::from(canary.bad) * u128::from(others.answers)
            <= u128::from(others.bad) * u128::from(canary.answers)
        {
            return false;
        }
        let threshold = f64::from(test.threshold) * test.unit_nats + COMPARISON_MARGIN_NATS;
        // Pearson's X² bounds the likelihood ratio from above (KL ≤ χ²) without a logarithm:
        // during a shared outage this check runs after every canary answer and stops here.
        if pearson(canary, others) < threshold {
            return false;
        }
        let pooled = Tally {
            answers: canary.answers + others.answers,
            bad: canary.bad + others.bad,
        };
        let evidence = log_likelihood(canary) + log_likelihood(others) - log_likelihood(pooled);
        evidence >= threshold
    }
}

/// Pearson's X² of the 2×2 table (canary, others) × (bad, good). The log-likelihood ratio is
/// `Σ n_side·KL(side's share ‖ pooled)` and X² is `Σ n_side·χ²(side's share ‖ pooled)`; since
/// KL ≤ χ², `X² < c` proves the ratio is below `c` (infinite when a margin is empty).
fn pearson(canary: Tally, others: Tally) -> f64 {
    let (a, b) = (canary.bad as f64, (canary.answers - canary.bad) as f64);
    let (c, d) = (others.bad as f64, (others.answers - others.bad) as f64);
    let n = a + b + c + d;
    let margins = (a + b) * (c + d) * (a + c) * (b + d);
    if margins == 0.0 {
        return f64::INFINITY;
    }
    let cross = a * d - b * c;
    n * cross * cross / margins
}

/// The binomial log-likelihood of `tally` at its own share (`0·ln 0 = 0`).
fn log_likelihood(tally: Tally) -> f64 {
    let n = tally.answers as f64;
    let bad = tally.bad as f64;
    let good = n - bad;
    let term = |count: f64| {
        if count > 0.0 {
            count * (count / n).ln()
        } else {
            0.0
        }
    };
    term(bad) + term(good)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lower_false_abort_target_raises_the_threshold() {
        let loose = Test::new(0.05, 2.0, 0.1);
        let strict = Test::new(0.05, 2.0, 1e-6);
        assert!(strict.threshold > loose.threshold);
        assert!(strict.false_abort_bound(0.025, TARGET_HORIZON_ANSWERS) <= 1e-6);
    }

    #[test]
    fn weights_are_the_likelihood_ratio_in_whole_units() {
        let test = Test::new(0.01, 2.0, 0.01);
        assert_eq!(test.bad, 0.02);
        let up_nats = f64::from(test.up) * test.unit_nats;
        assert!((up_nats - 2f64.ln()).abs() < 0.01 * 2f64.ln(), "{up_nats}");
        assert!(test.up >= 100);
    }

    #[test]
    fn limit_one_never_aborts_and_limit_zero_is_one_in_a_million() {
        let never = Test::new(1.0, 2.0, 0.01);
        let mut cusum = Cusum::default();
        for _ in 0..1000 {
            cusum.canary(&never, true);
        }
        assert!(!cusum.alarmed(&never));
        let zero = Test::new(0.0, 2.0, 0.01);
        assert_eq!(zero.limit, MIN_LIMIT);
        assert!(zero.failures_to_threshold() <= 25);
    }

    #[test]
    fn the_bad_share_stays_below_one() {
        let test = Test::new(0.6, 3.0, 0.01);
        assert!((test.bad - 0.8).abs() < 1e-12);
        assert!(test.threshold > 0);
    }

    #[test]
    fn the_statistic_resets_its_span_at_zero() {
        let test = Test::new(0.05, 2.0, 0.01);
        let mut cusum = Cusum::default();
        cusum.canary(&test, true);
        cusum.others(3, 1);
        assert_eq!(cusum.canary, Tally { answers: 1, bad: 1 });
        assert_eq!(cusum.others, Tally { answers: 3, bad: 1 });
        while cusum.units > 0 {
            cusum.canary(&test, false);
        }
        assert_eq!(cusum, Cusum::default());
        // Others answering while the statistic is 0 are outside any span.
        cusum.others(5, 5);
        assert_eq!(cusum.others, Tally::default());
    }

    #[test]
    fn pearson_bounds_the_likelihood_ratio() {
        let mut rng = crate::random::Rng::from_seed(9);
        for _ in 0..10_000 {
            let canary_answers = 1 + rng.below(500);
            let others_answers = 1 + rng.below(500);
            let canary = Tally {
                answers: canary_answers,
                bad: rng.below(canary_answers + 1),
            };
            let others = Tally {
                answers: others_answers,
                bad: rng.below(others_answers + 1),
            };
            let pooled = Tally {
                answers: canary.answers + others.answers,
                bad: canary.bad + others.bad,
            };
            let ratio = log_likelihood(canary) + log_likelihood(others) - log_likelihood(pooled);
            assert!(
                ratio <= pearson(canary, others) + 1e-9,
                "{canary:?} {others:?}"
            );
        }
    }
}
