//! Sticky cohorts: a key (user id, session cookie) always lands on the same backend, on every
//! worker of every proxy, and canary ramps only ever move keys toward the canary.
//!
//! The rule, for backends `b[0..n]` in config order with weights `w[i]` (the last backend is
//! the canary side of a ramp):
//!
//! ```text
//! h    = FNV-1a 64 of the key bytes (crate::hash)
//! u(k) = splitmix64(h XOR k·0x9E3779B97F4A7C15)          an independent draw per level k
//! for k = n-1 down to 1:
//!     W(k) = w[0] + ... + w[k]
//!     if u(k) · W(k) / 2^64  <  w[k]:  choose b[k]
//! choose b[0]
//! ```
//!
//! Backend `k` gets the keys whose level-`k` draw falls in its share of the prefix `0..=k`;
//! overall `P(b[k]) = w[k] / total`. Raising the last weight while the others keep their
//! proportions leaves every lower level's ratio `w[k]/W(k)` unchanged and only widens the last
//! level's share: keys move only onto the canary, never off it or between the others. A ramp
//! down is the mirror image: only keys on the canary move, each to the backend the lower levels
//! give it. With two backends this is the cumulative-range rule with the canary's range at the
//! top.

use crate::hash::fnv1a64;

const LEVEL_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

/// The splitmix64 finalizer: spreads `x` evenly over all 64-bit values.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(LEVEL_SALT);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The backend for `key`, given the route's cumulative weights (`cumulative[k]` = W(k)).
pub fn sticky_backend(key: &[u8], cumulative: &[u64]) -> usize {
    let hash = fnv1a64(key);
    for level in (1..cumulative.len()).rev() {
        let prefix_total = cumulative[level];
        let weight = prefix_total - cumulative[level - 1];
        if prefix_total == 0 {
            break;
        }
        let draw = splitmix64(hash ^ (level as u64).wrapping_mul(LEVEL_SALT));
        let point = ((u128::from(draw) * u128::from(prefix_total)) >> 64) as u64;
        if point < weight {
            return level;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("user-{i}")).collect()
    }

    fn cumulative(weights: &[u32]) -> Vec<u64> {
        weights
            .iter()
            .scan(0u64, |total, &w| {
                *total += u64::from(w);
                Some(*total)
            })
            .collect()
    }

    fn assignment(weights: &[u32], keys: &[String]) -> Vec<usize> {
        let table = cumulative(weights);
        keys.iter()
            .map(|k| sticky_backend(k.as_bytes(), &table))
            .collect()
    }

    #[test]
    fn same_key_same_backend() {
        let keys = keys(100);
        assert_eq!(assignment(&[70, 30], &keys), assignment(&[70, 30], &keys));
    }

    #[test]
    fn shares_follow_weights() {
        let keys = keys(20_000);
        for weights in [[90u32, 10, 0], [50, 25, 25], [0, 0, 5], [1, 1, 1]] {
            let chosen = assignment(&weights, &keys);
            let total: u32 = weights.iter().sum();
            for (backend, &weight) in weights.iter().enumerate() {
                let share =
                    chosen.iter().filter(|&&c| c == backend).count() as f64 / keys.len() as f64;
                let expected = f64::from(weight) / f64::from(total);
                assert!(
                    (share - expected).abs() < 0.015,
                    "{weights:?}: backend {backend} share {share}"
                );
            }
        }
    }

    #[test]
    fn ramp_up_only_moves_keys_onto_the_canary() {
        let keys = keys(5_000);
        // Three backends: stable ones keep their 2:1 proportion while the canary grows.
        let steps = [[60u32, 30, 10], [50, 25, 25], [34, 17, 49], [0, 0, 100]];
        for pair in steps.windows(2) {
            let (before, after) = (assignment(&pair[0], &keys), assignment(&pair[1], &keys));
            for (b, a) in before.iter().zip(&after) {
                assert!(
                    b == a || *a == 2,
                    "{:?} -> {:?}: key moved {b} -> {a}",
                    pair[0],
                    pair[1]
                );
            }
        }
    }

    #[test]
    fn ramp_down_only_moves_keys_off_the_canary() {
        let keys = keys(5_000);
        let (before, after) = (assignment(&[50, 50], &keys), assignment(&[90, 10], &keys));
        for (b, a) in before.iter().zip(&after) {
            assert!(b == a || (*b == 1 && *a == 0), "key moved {b} -> {a}");
        }
    }

    #[test]
    fn zero_weights_are_never_chosen() {
        let keys = keys(2_000);
        assert!(assignment(&[0, 5, 0], &keys).iter().all(|&b| b == 1));
        assert!(assignment(&[3, 0, 4], &keys).iter().all(|&b| b != 1));
    }
}
