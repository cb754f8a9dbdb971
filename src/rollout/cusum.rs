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
//! The comparison: when `S ≥ H`, its evidence (the canary's answers since `S` was last 0) is
//! weighed again against a reference `r = max(p0, U)`, where `U` is an upper confidence bound
//! (Wilson, z = 2) of the other backends' share over the same span; the canary is aborted only
//! if that likelihood ratio also reaches the threshold. A failure shared by every backend raises
//! `U` with it, so the canary's evidence against `r` falls instead of rising. When the others
//! answered nothing during the span and nothing in the last `window_s` (the last step, or only
//! the canary being reached), there is nothing to compare with: the canary is judged alone.

/// Answers in one day at 1,000 answers/s: the horizon `false_abort_rate` is stated for.
pub const TARGET_HORIZON_ANSWERS: f64 = 86_400_000.0;

/// A failure weighs at least this many units, so that rounding the likelihood ratio of a
/// failure to a good answer to whole units moves it by at most 1 %.
const MIN_UP_UNITS: f64 = 100.0;

/// Limits below this are read as it (a limit of 0 has no likelihood ratio).
pub const MIN_LIMIT: f64 = 1e-6;

/// The Wilson bound's z: about 97.7 % one-sided.
const WILSON_Z: f64 = 2.0;

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

    /// With [`Cusum::alarmed`]: the canary is also worse than the other backends (or there are
    /// none to compare with: `alone`).
    pub fn worse_than_others(&self, test: &Test, alone: bool) -> bool {
        if self.others.answers == 0 {
            return alone;
        }
        let reference = wilson_upper(self.others).max(test.limit);
        if reference <= test.limit {
            return true;
        }
        if reference >= 1.0 {
            return false;
        }
        let bad = bad_share(reference, test.sensitivity);
        let failures = self.canary.bad as f64;
        let passes = (self.canary.answers - self.canary.bad) as f64;
        let evidence =
            failures * (bad / reference).ln() + passes * ((1.0 - bad) / (1.0 - reference)).ln();
        evidence >= f64::from(test.threshold) * test.unit_nats
    }
}

/// Wilson's score upper bound of a share from `tally` (1 without answers).
pub fn wilson_upper(tally: Tally) -> f64 {
    if tally.answers == 0 {
        return 1.0;
    }
    let n = tally.answers as f64;
    let bad = tally.bad as f64;
    let z2 = WILSON_Z * WILSON_Z;
    let spread = WILSON_Z * (bad * (n - bad) / n + z2 / 4.0).sqrt();
    ((bad + z2 / 2.0 + spread) / (n + z2)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_tests() {
        for limit in [0.001, 0.01, 0.05, 0.2, 0.5] {
            let t = Test::new(limit, 2.0, 0.01);
            eprintln!(
                "{limit}: {t:?} failures {} bound {}",
                t.failures_to_threshold(),
                t.false_abort_bound(limit / 2.0, TARGET_HORIZON_ANSWERS)
            );
        }
    }
}
