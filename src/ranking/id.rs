//! Ranking ids: 32 lowercase hex digits, 24 random (96 bits) and 8 of a checksum over them.
//!
//! Events name the ranking that showed a session (`Event.ranking_id`), and the export attributes
//! outcomes through it. The checksum lets any replica tell an id the service issued from one a
//! client made up or mangled, without remembering ids: a made-up id passes with probability
//! 2⁻³². It is a consistency check, not a secret: the id carries no authority.

use crate::hash::Fnv;

const RANDOM_HEX: usize = 24;
const LEN: usize = 32;

/// A new ranking id.
pub fn new_ranking_id() -> String {
    let random = format!("{:024x}", rand::random::<u128>() >> 32);
    let check = checksum(random.as_bytes());
    format!("{random}{check:08x}")
}

/// Whether `id` has the form of an id [`new_ranking_id`] issues.
pub fn is_issued(id: &str) -> bool {
    let bytes = id.as_bytes();
    if bytes.len() != LEN || !bytes.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)) {
        return false;
    }
    let (random, check) = id.split_at(RANDOM_HEX);
    u32::from_str_radix(check, 16).is_ok_and(|c| c == checksum(random.as_bytes()))
}

fn checksum(random_hex: &[u8]) -> u32 {
    (Fnv::default().eat(*b"fitrank.ranking_id").eat(random_hex.iter().copied()).mixed() >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_ids_check_and_made_up_or_mangled_ones_do_not() {
        for _ in 0..1_000 {
            let id = new_ranking_id();
            assert_eq!(id.len(), 32);
            assert!(is_issued(&id), "{id}");
            let mut mangled = id.clone().into_bytes();
            mangled[5] = if mangled[5] == b'0' { b'1' } else { b'0' };
            assert!(!is_issued(std::str::from_utf8(&mangled).unwrap()));
        }
        for made_up in ["", "r1", "0123456789abcdef0123456789abcdef", "sim-popularity-7", &"f".repeat(32)] {
            assert!(!is_issued(made_up), "{made_up}");
        }
        let upper = new_ranking_id().to_uppercase();
        assert!(!is_issued(&upper));
    }
}
