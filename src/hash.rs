//! The one stable hash: FNV-1a 64 over bytes, optionally finished by SplitMix64's mixer.
//!
//! Everything that must hash the same on every machine, replica and version uses it: experiment
//! buckets ([`crate::experiment::bucket`]), identity slots ([`crate::features::IdentityKeys`]), the
//! feature schema's hash, and the lab's fixed folds and starting values. FNV-1a's low bits alone
//! are not uniform enough for small moduli, hence the finaliser wherever a hash is reduced.

/// FNV-1a 64's offset basis: the hash of no bytes.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// An FNV-1a 64 hasher fed byte slices in order.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(FNV_OFFSET)
    }
}

impl Fnv {
    /// Feeds `bytes`.
    pub fn eat(&mut self, bytes: impl IntoIterator<Item = u8>) -> &mut Self {
        for b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
        self
    }

    /// The FNV-1a hash so far.
    pub fn value(&self) -> u64 {
        self.0
    }

    /// The hash so far, finished by [`finalize`].
    pub fn mixed(&self) -> u64 {
        finalize(self.0)
    }
}

/// FNV-1a 64 of `bytes`, finished by [`finalize`].
pub fn mixed(bytes: &[u8]) -> u64 {
    Fnv::default().eat(bytes.iter().copied()).mixed()
}

/// SplitMix64's finaliser: every input bit moves every output bit.
pub fn finalize(mut h: u64) -> u64 {
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// SplitMix64's output for state `x` (the golden-ratio increment, then [`finalize`]).
pub fn splitmix64(x: u64) -> u64 {
    finalize(x.wrapping_add(0x9e37_79b9_7f4a_7c15))
}

/// A uniform number in [0, 1) from the top 53 bits of `h`.
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_fnv1a_and_splitmix64_values() {
        // FNV-1a 64 test vectors (Fowler, Noll, Vo).
        assert_eq!(Fnv::default().value(), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv::default().eat(*b"a").value(), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(Fnv::default().eat(*b"foobar").value(), 0x8594_4171_f739_67e8);
        // SplitMix64 from seed 0: the first output of the reference generator.
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn unit_is_in_the_half_open_interval() {
        assert_eq!(unit(0), 0.0);
        assert!(unit(u64::MAX) < 1.0);
    }
}
