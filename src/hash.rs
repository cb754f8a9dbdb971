//! FNV-1a, 64-bit: the one hash of sticky keys, rollout identities and the route index's hosts.
//! Stable across platforms and releases (sticky assignments and rollout identities depend on it).

/// The hash of no bytes (FNV's offset basis).
pub const FNV1A64_EMPTY: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// One step: the hash of what `hash` covered, followed by `byte`.
#[inline]
pub fn fnv1a64_step(hash: u64, byte: u8) -> u64 {
    (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
}

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(FNV1A64_EMPTY, |hash, &b| fnv1a64_step(hash, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
