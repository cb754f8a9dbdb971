//! How the guard behaves, computed: the exact run-length distribution of the canary's CUSUM
//! (a finite Markov chain, since its weights are whole units), and a seeded simulation of the
//! whole guard state (the comparison with the other backends included) for what the chain does
//! not cover. Native only: `make guard-report` and the unit tests use it, the filter never does.

use super::cusum::{Cusum, Test};
use super::guard::{Answer, Guard, GuardState};
use crate::random::Rng;

/// The chance that the canary's CUSUM has crossed its threshold, by answer count, for a canary
/// failing each answer independently with probability `share`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunLength {
    /// `(answers, P(crossed within answers))` for each asked horizon.
    pub crossed_by: Vec<(f64, f64)>,
    /// Answers by which half the runs have crossed (`None`: beyond 10^15).
    pub median: Option<f64>,
    /// Answers by which 99 % of the runs have crossed.
    pub p99: Option<f64>,
    /// Answers iterated exactly before the tail was extrapolated (0: none was needed).
    pub exact_answers: u64,
}

/// Past this many answers a quantile is reported as "never" (`None`).
const QUANTILE_CAP: f64 = 1e15;

/// Direct iteration stops at this many answers; the tail after it is geometric (see below).
const MAX_EXACT_ANSWERS: u64 = 4_000_000;

/// The run length of `test`'s CUSUM (from 0, ignoring `min_requests`) for a canary failing
/// with probability `share`, at each of `horizons` (answers).
///
/// The chain's states are the statistic's values `0..threshold`; it is iterated answer by
/// answer (exact, up to float rounding) until its per-answer hazard has settled, after which the
/// survival is geometric: `S(n + m) = S(n)·(1 − h)^m` (the chain's quasi-stationary regime,
/// where the subdominant eigenvalues have died out).
pub fn run_length(test: &Test, share: f64, horizons: &[f64]) -> RunLength {
    if share <= 0.0 || test.up == 0 {
        // Never a failure (or a test that never aborts): never a crossing.
        return RunLength {
            crossed_by: horizons.iter().map(|&h| (h, 0.0)).collect(),
            median: None,
            p99: None,
            exact_answers: 0,
        };
    }
    let states = test.threshold as usize;
    let (up, down) = (test.up as usize, test.down as usize);
    let mut mass = vec![0.0f64; states.max(1)];
    let mut next = vec![0.0f64; states.max(1)];
    mass[0] = 1.0;
    let mut crossed = 0.0f64;
    let mut survival = 1.0f64;
    let mut median = None;
    let mut p99 = None;
    let mut hazard = 0.0f64;
    let mut settled_for = 0u32;
    let max_horizon = horizons.iter().copied().fold(0.0, f64::max);
    let mut answers = 0u64;
    let mut crossed_by: Vec<(f64, f64)> = Vec::with_capacity(horizons.len());
    let mut pending: Vec<f64> = horizons.to_vec();
    pending.sort_by(f64::total_cmp);
    pending.reverse();
    while answers < MAX_EXACT_ANSWERS {
        if pending.is_empty() && p99.is_some() {
            break;
        }
        if (answers as f64) >= max_horizon && p99.is_some() {
            break;
        }
        next.iter_mut().for_each(|x| *x = 0.0);
        let mut crossed_now = 0.0;
        for (state, &m) in mass.iter().enumerate() {
            if m == 0.0 {
                continue;
            }
            next[state.saturating_sub(down)] += (1.0 - share) * m;
            if state + up >= states {
                crossed_now += share * m;
            } else {
                next[state + up] += share * m;
            }
        }
        std::mem::swap(&mut mass, &mut next);
        answers += 1;
        let new_hazard = if survival > 0.0 {
            crossed_now / survival
        } else {
            0.0
        };
        crossed += crossed_now;
        survival = mass.iter().sum();
        if median.is_none() && crossed >= 0.5 {
            median = Some(answers as f64);
        }
        if p99.is_none() && crossed >= 0.99 {
            p99 = Some(answers as f64);
        }
        while pending.last().is_some_and(|&h| h <= answers as f64) {
            if let Some(horizon) = pending.pop() {
                crossed_by.push((horizon, crossed));
            }
        }
        if survival < 1e-15 {
            break;
        }
        let settled = new_hazard > 0.0 && ((new_hazard - hazard).abs() <= 1e-13 * new_hazard);
        settled_for = if settled { settled_for + 1 } else { 0 };
        hazard = new_hazard;
        if settled_for >= 2000 && answers > 10 * states as u64 {
            break;
        }
    }
    // The geometric tail for horizons and quantiles beyond the exact part.
    let tail = |more: f64| -> f64 {
        if survival <= 0.0 || hazard <= 0.0 {
            return crossed;
        }
        crossed + survival * -(more * (-hazard).ln_1p()).exp_m1()
    };
    for horizon in pending.into_iter().rev() {
        crossed_by.push((horizon, tail(horizon - answers as f64)));
    }
    let quantile = |q: f64| -> Option<f64> {
        if survival <= 0.0 || hazard <= 0.0 {
            return None;
        }
        let more = ((1.0 - q) / survival).ln() / (-hazard).ln_1p();
        let at = answers as f64 + more.max(0.0).ceil();
        (at <= QUANTILE_CAP).then_some(at)
    };
    let median = median.or_else(|| quantile(0.5));
    let p99 = p99.or_else(|| quantile(0.99));
    crossed_by.sort_by(|a, b| a.0.total_cmp(&b.0));
    RunLength {
        crossed_by,
        median,
        p99,
        exact_answers: answers,
    }
}

/// One simulated situation: a canary failing at `canary_share`, the other backends at
/// `others_share`, the canary taking `traffic_share` of the answers (1: alone, the last
/// step), at `canary_rate` answers per second, for at most `answers` canary answers.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub canary_share: f64,
    pub others_share: f64,
    pub traffic_share: f64,
    pub canary_rate: f64,
    pub answers: u64,
}

/// What the runs of a [`Scenario`] did.
#[derive(Debug, Clone, Default)]
pub struct Simulated {
    pub runs: u64,
    pub aborted: u64,
    /// Canary answers until the abort, one per aborted run, sorted.
    pub answers_to_abort: Vec<u64>,
    /// The evidence of the first aborts (at most 16), to see why they happened.
    pub evidence: Vec<Cusum>,
}

impl Simulated {
    pub fn abort_share(&self) -> f64 {
        self.aborted as f64 / self.runs.max(1) as f64
    }

    /// The `q` quantile of answers to abort over all runs (`None` if fewer runs aborted).
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let rank = (q * self.runs as f64).ceil() as usize;
        self.answers_to_abort.get(rank.max(1) - 1).copied()
    }

    /// The share of runs aborted within `answers` canary answers.
    pub fn aborted_within(&self, answers: u64) -> f64 {
        let count = self.answers_to_abort.partition_point(|&a| a <= answers);
        count as f64 / self.runs.max(1) as f64
    }
}

/// A uniform float in `[0, 1)`.
fn uniform(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

fn bernoulli(rng: &mut Rng, p: f64) -> bool {
    uniform(rng) < p
}

/// A binomial draw (`n` trials of probability `p`) by inversion: one uniform draw.
fn binomial(rng: &mut Rng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    let u = uniform(rng);
    let odds = p / (1.0 - p);
    let mut term = (1.0 - p).powi(n.min(i32::MAX as u64) as i32);
    let mut cumulative = term;
    let mut k = 0;
    while u >= cumulative && k < n {
        term *= (n - k) as f64 / (k + 1) as f64 * odds;
        k += 1;
        cumulative += term;
    }
    k
}

/// `runs` runs of `scenario` through the real [`GuardState`], seeded with `seed`. Answers of the
/// other backends arrive between canary answers (each answer is the canary's with probability
/// `traffic_share`) and are handed over in one batch per gap; canary answers arrive as a
/// Poisson process.
pub fn simulate(guard: &Guard, scenario: Scenario, runs: u64, seed: u64) -> Simulated {
    let mut rng = Rng::from_seed(seed);
    let mut result = Simulated {
        runs,
        ..Simulated::default()
    };
    let alone = scenario.traffic_share >= 1.0;
    let log_others = (1.0 - scenario.traffic_share).ln();
    let mean_gap_ms = 1000.0 / scenario.canary_rate;
    let window_ms = f64::from(guard.window_s) * 1000.0;
    for _ in 0..runs {
        let mut state = GuardState::default();
        let mut now = 0.0f64;
        for answer in 1..=scenario.answers {
            let gap = -mean_gap_ms * (1.0 - uniform(&mut rng)).ln();
            if !alone {
                // The others' answers before this canary answer (each answer is the canary's
                // with probability π: geometric), and how many of them failed (binomial).
                let others = ((1.0 - uniform(&mut rng)).ln() / log_others).floor() as u64;
                let failures = binomial(&mut rng, others, scenario.others_share);
                if others > 0 {
                    // The last of `others` uniform arrival times in the gap; when gaps are far
                    // shorter than the window its exact place cannot matter: the gap's end.
                    let last = if gap * 100.0 < window_ms {
                        now + gap
                    } else {
                        now + gap * uniform(&mut rng).powf(1.0 / others as f64)
                    };
                    state.others(guard, last as i64, others, failures, 0);
                }
            }
            now += gap;
            let failed = bernoulli(&mut rng, scenario.canary_share);
            let verdict = Answer {
                server_error: failed,
                slow: false,
            };
            if let Some(abort) = state.canary(guard, now as i64, verdict, !alone) {
                if result.evidence.len() < 16 {
                    result.evidence.push(abort.evidence);
                }
                result.aborted += 1;
                result.answers_to_abort.push(answer);
                break;
            }
        }
    }
    result.answers_to_abort.sort_unstable();
    result
}

#[cfg(test)]
mod tests;
