//! Identity features: a learned weight per user and per host, found by hashing their ids.
//!
//! The rest of the row describes *kinds* of users and sessions (age band, category, live rates),
//! which is what lets a model rank a session that started a minute ago. Identity features add
//! *memory*: a user who views more than their demographics predict, or a host whose shows sell
//! better than their category's, gets a weight of their own once the training data has seen them.
//! They are the "wide" part of wide-and-deep models and the user and item id fields of the click
//! prediction literature (the MovieLens anchors of issue 3 include both ids).
//!
//! Ids are hashed into `buckets` slots per kind (FNV-1a 64, finished by SplitMix64 so that the low
//! bits are uniform), so a model's size is fixed whatever the number of users, and an id the
//! training data never saw lands on a slot whose weight is near zero (it only holds what other
//! ids hashed there taught it). An empty id (an anonymous user, a session without a host) has no
//! identity and takes no slot.
//!
//! The block sits after the dense row: column `NUM_FEATURES + slot` for the user and
//! `NUM_FEATURES + buckets + slot` for the host. A model with `identity_buckets = 0` in its manifest
//! has no block, and scores exactly as it would without this module. [`IdentityKeys::of`] is the
//! one function serving and training call, so both find the same slot for the same id.
//!
//! # Latent factors (collaborative filtering)
//!
//! A weight per id says "this user views a lot", "this host sells well"; it cannot say "this user
//! likes *this kind of* host". A model may also carry `factor_dims` latent values per slot and add
//! the dot product of the user's and the host's factors to the logit — the pairwise term of a
//! factorisation machine over the two identity fields, i.e. matrix factorisation of who engages
//! with whom. Users who engaged with the same hosts get similar factors, so a user is scored on a
//! host by what users like them did there: the collaborative signal the demographic and live
//! features cannot carry. The factors are learned from the training labels before the rest of
//! the head, out of fold (`crate::train::factors`), and live in the model (a fixed `2 × buckets × factor_dims` floats),
//! not in the user store, so they cost nothing per stored user; the term needs both ids and is
//! 0 for an anonymous user or a session without a host.

/// Largest number of slots per kind a model may have (2²², 16 MiB of f32 weights per head for
/// both kinds).
pub const MAX_BUCKETS: u32 = 1 << 22;

/// Largest number of latent factors per slot a model may have.
pub const MAX_FACTOR_DIMS: u32 = 256;

/// The hashed ids of one (user, host) pair; 0 means "no id".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdentityKeys {
    pub user: u64,
    pub host: u64,
}

impl IdentityKeys {
    /// The keys of `user_id` and `host_id`.
    pub fn of(user_id: &str, host_id: &str) -> Self {
        IdentityKeys { user: key(user_id), host: key(host_id) }
    }

    /// This pair with another host.
    pub fn with_host(self, host_id: &str) -> Self {
        IdentityKeys { host: key(host_id), ..self }
    }

    /// The slots these keys take in a block of `buckets` slots per kind, relative to the block's
    /// start: the user's in `0..buckets`, the host's in `buckets..2 * buckets`; `None` for a kind
    /// without an id, or when the model has no block (`buckets == 0`).
    #[inline]
    pub fn slots(&self, buckets: u32) -> [Option<u32>; 2] {
        if buckets == 0 {
            return [None, None];
        }
        let slot = |k: u64, kind: u32| (k != 0).then(|| kind * buckets + (k % u64::from(buckets)) as u32);
        [slot(self.user, 0), slot(self.host, 1)]
    }
}

/// Stable non-zero 64-bit key of a non-empty id; 0 for the empty one.
fn key(id: &str) -> u64 {
    if id.is_empty() {
        return 0;
    }
    crate::hash::mixed(id.as_bytes()).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_stable_separate_per_kind_and_absent_for_empty_ids() {
        let k = IdentityKeys::of("u-17", "host-3");
        assert_eq!(k, IdentityKeys::of("u-17", "host-3"));
        let [u, h] = k.slots(1000);
        assert!(u.unwrap() < 1000);
        assert!((1000..2000).contains(&h.unwrap()));
        assert_eq!(k.slots(0), [None, None]);
        assert_eq!(IdentityKeys::of("", "h").slots(10)[0], None);
        assert_eq!(IdentityKeys::of("u", "").slots(10)[1], None);
        assert_eq!(k.with_host("host-4").user, k.user);
        assert_ne!(k.with_host("host-4").host, k.host);
    }

    #[test]
    fn ids_spread_over_the_slots() {
        // 10,000 ids into 1,000 slots: every slot expected 10 times; none should be far off.
        let mut counts = [0u32; 1000];
        for i in 0..10_000 {
            counts[IdentityKeys::of(&format!("user-{i}"), "").slots(1000)[0].unwrap() as usize] += 1;
        }
        assert!(counts.iter().all(|c| (1..=30).contains(c)), "{:?}", counts.iter().max());
    }
}
