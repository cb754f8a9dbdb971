//! Progressive delivery inside the proxy: a route's canary ramps through steps read from the
//! wall clock, and a guard aborts the rollout when the canary fails. Pure logic: the adapter
//! hands in the time and the responses, and keeps the per-worker state.
//!
//! Every weight table is built when the configuration is compiled, one per step plus one for
//! "before start" and one for "aborted". Their entries are the route's backends in
//! [`Rollout::order`]: the other backends in configuration order, the canary last. Sticky
//! hashing (`routing::sticky`) is monotone when only the last entry's weight grows while the
//! others keep their proportions, which is exactly what a step does: a key on the canary at
//! 20 % is still on it at 40 %, and an abort sends every key back where the lower levels put it.

pub mod cusum;
pub mod guard;
#[cfg(not(target_arch = "wasm32"))]
pub mod run_length;
pub mod state;
pub mod time;

use crate::weights::WeightTable;
use guard::Guard;

/// 100 % in hundredths of a percent (a step's weight has at most two decimals).
pub const FULL_SHARE: u32 = 10_000;

/// A route's compiled `rollout` section.
#[derive(Debug)]
pub struct Rollout {
    /// Index of the canary in the route's `backends`.
    pub canary: usize,
    /// `order[position]` is the backend index at `position` of every table here; canary last.
    pub order: Vec<usize>,
    /// Milliseconds since the epoch; `None` without steps.
    pub start_ms: Option<i64>,
    pub steps: Vec<Step>,
    /// The configured weights (before `start`, or without steps).
    pub configured: WeightTable,
    /// The canary's share of `configured`, in hundredths of a percent.
    pub configured_share: u32,
    /// The configured weights with the canary at 0 (after an abort).
    pub aborted: WeightTable,
    pub guard: Option<Guard>,
    /// Hash of the route name and the section's canonical content: the key of the abort in
    /// the host's shared data, so an abort survives exactly the reconfigurations that keep it.
    pub fingerprint: u64,
}

/// One step of the ramp.
#[derive(Debug)]
pub struct Step {
    /// The canary's share, in hundredths of a percent.
    pub share: u32,
    /// How long the step holds; `None` holds until the configuration changes.
    pub hold_ms: Option<i64>,
    /// When the step begins (ms since the epoch); `None` if an earlier step holds forever.
    pub begins_ms: Option<i64>,
    pub table: WeightTable,
}

/// Which step is in force at some time, and for how long that answer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepSpan {
    /// 0 before `start` (and for a rollout without steps), else 1-based.
    pub step: usize,
    /// The answer holds for `from_ms <= now < until_ms`.
    pub from_ms: i64,
    pub until_ms: i64,
}

impl Rollout {
    /// The step in force at `now_ms` and the span it holds for.
    pub fn span_at(&self, now_ms: i64) -> StepSpan {
        let begins = |index: usize| -> i64 {
            match self.steps.get(index) {
                Some(step) => step.begins_ms.unwrap_or(i64::MAX),
                None => i64::MAX,
            }
        };
        // Steps begin in order: the last one that has begun is in force.
        let begun = self
            .steps
            .partition_point(|s| s.begins_ms.is_some_and(|b| b <= now_ms));
        let from_ms = if begun == 0 {
            i64::MIN
        } else {
            begins(begun - 1)
        };
        StepSpan {
            step: begun,
            from_ms,
            until_ms: begins(begun),
        }
    }

    /// The table weighted and sticky decisions use in `step` (0: before start).
    pub fn table(&self, step: usize, aborted: bool) -> &WeightTable {
        if aborted {
            return &self.aborted;
        }
        match step.checked_sub(1).and_then(|i| self.steps.get(i)) {
            Some(step) => &step.table,
            None => &self.configured,
        }
    }

    /// The canary's effective share in `step`, in hundredths of a percent.
    pub fn canary_share(&self, step: usize, aborted: bool) -> u32 {
        if aborted {
            return 0;
        }
        match step.checked_sub(1).and_then(|i| self.steps.get(i)) {
            Some(step) => step.share,
            None => self.configured_share,
        }
    }

    /// Its guard judges latency: the answer's time must be read.
    pub fn times_answers(&self) -> bool {
        self.guard.as_ref().is_some_and(|g| g.latency.is_some())
    }

    /// The backend index at `position` of this rollout's tables.
    pub fn backend_at(&self, position: usize) -> usize {
        self.order.get(position).copied().unwrap_or(self.canary)
    }
}

/// A worker's cached answer of [`Rollout::span_at`]: per request, two comparisons unless a
/// step boundary was crossed (or the clock stepped back).
#[derive(Debug, Clone, Copy)]
pub struct StepClock(StepSpan);

impl Default for StepClock {
    fn default() -> Self {
        // An empty span: the first call computes.
        StepClock(StepSpan {
            step: 0,
            from_ms: i64::MAX,
            until_ms: i64::MIN,
        })
    }
}

impl StepClock {
    /// The step of the last answer (0 before the first).
    pub fn step(&self) -> usize {
        self.0.step
    }

    pub fn step_at(&mut self, rollout: &Rollout, now_ms: i64) -> usize {
        if now_ms < self.0.from_ms || now_ms >= self.0.until_ms {
            self.0 = rollout.span_at(now_ms);
        }
        self.0.step
    }
}

/// The weights of one step, in `order` positions: the canary gets `share` hundredths of a
/// percent, the others share the rest in proportion to `others` (their configured weights, or
/// equally if those are all 0). Exact integers: the total is `10,000 ×` the others' sum.
pub fn step_weights(others: &[u32], share: u32) -> Vec<u64> {
    let share = u64::from(share.min(FULL_SHARE));
    let all_zero = others.iter().all(|&w| w == 0);
    let other_weight = |w: u32| if all_zero { 1 } else { u64::from(w) };
    let others_total: u64 = others.iter().map(|&w| other_weight(w)).sum();
    let mut weights: Vec<u64> = others
        .iter()
        .map(|&w| other_weight(w) * (u64::from(FULL_SHARE) - share))
        .collect();
    weights.push(others_total * share);
    weights
}

/// `value / 10^decimals` written with exactly `decimals` decimals (`fixed(1234, 1)` is
/// `123.4`). Integer formatting: float formatting would add ~30 KB to the module.
pub fn fixed(value: u64, decimals: u32) -> String {
    let scale = 10u64.pow(decimals);
    if decimals == 0 {
        return value.to_string();
    }
    format!(
        "{}.{:0width$}",
        value / scale,
        value % scale,
        width = decimals as usize
    )
}

/// Like [`fixed`] without trailing zeros (`decimal(50_000, 6)` is `0.05`, `decimal(20, 0)` 20).
pub fn decimal(value: u64, decimals: u32) -> String {
    let text = fixed(value, decimals);
    if decimals == 0 {
        return text;
    }
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `part / whole` in percent with one decimal, rounded (`0.0` when `whole` is 0).
pub fn percent_text(part: u64, whole: u64) -> String {
    let per_mille = if whole == 0 {
        0
    } else {
        (u128::from(part) * 2000 + u128::from(whole)) / (2 * u128::from(whole))
    };
    fixed(per_mille as u64, 1)
}

#[cfg(test)]
mod tests;
