//! A small, fast pseudo-random generator (wyrand). Seeded once per VM from `getrandom`; every
//! later draw is pure arithmetic, never a host call.

/// wyrand: 64-bit state, one multiply per draw; good statistical quality for sampling.
#[derive(Clone, Copy, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn from_seed(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// Seeds from the host's entropy (WASI `random_get` in Envoy). Falls back to a fixed seed
    /// if entropy is unavailable: sampling stays uniform, only less unpredictable.
    pub fn from_entropy() -> Self {
        let mut seed = [0u8; 8];
        if getrandom::getrandom(&mut seed).is_err() {
            seed = 0x853c_49e6_748f_ea9b_u64.to_le_bytes();
        }
        Rng::from_seed(u64::from_le_bytes(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0xa076_1d64_78bd_642f);
        let product = u128::from(self.state) * u128::from(self.state ^ 0xe703_7ed1_a0b4_28db);
        ((product >> 64) as u64) ^ (product as u64)
    }

    /// A uniform integer in `0..bound` (Lemire's multiply-shift; `bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::from_seed(7);
        let mut seen = [false; 10];
        for _ in 0..10_000 {
            let value = rng.below(10);
            assert!(value < 10);
            seen[value as usize] = true;
        }
        assert!(seen.iter().all(|&hit| hit));
    }

    #[test]
    fn entropy_seeds_differ() {
        let a = Rng::from_entropy().next_u64();
        let b = Rng::from_entropy().next_u64();
        assert_ne!(a, b);
    }
}
