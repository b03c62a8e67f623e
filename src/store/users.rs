//! The embedded store's user table, laid out for memory: a catalog holds many more users than
//! live sessions, so every byte per user counts (the goal is ≤ 256 B per stored user, including
//! recent activity; `cargo bench --bench memory` measures it).
//!
//! Per user id the table keeps one 48-byte hash-map bucket, and nothing else on the heap:
//!
//! - the id itself inline in a [`UserKey`] when it has at most 23 bytes (numeric and most
//!   generated ids; longer ones such as UUID strings go to the heap), which saves an allocation
//!   per user (a 14-byte id costs a 32-byte chunk of the system allocator);
//! - the profile's region and language as indices into an [`Interner`] of strings (a catalog has
//!   a few hundred distinct values, repeated over millions of users), its interest tags as the
//!   index of an interned list of tag ids (users share a few thousand combinations at most), age
//!   band and gender as bytes;
//! - the index of the user's [`UserActivity`] in an [`ActivitySlab`], only for users who sent
//!   events: fixed-size chunks of activities, so there is no allocation per user (no allocator
//!   header and rounding each) and growth never copies or doubles a large vector.
//!
//! Readers get ordinary [`UserProfile`]s back ([`UserTable::profile`]); the compact form never
//! leaves this module.

use std::sync::Arc;

use foldhash::HashMap;

use crate::domain::{AgeBand, Gender, TargetAudience, UserActivity, UserProfile, Viewer};

/// Values shared by all profiles — region and language strings, lists of interest-tag ids —
/// each stored once and named by its index.
#[derive(Debug)]
struct Interner<T: ?Sized> {
    ids: HashMap<Arc<T>, u32>,
    values: Vec<Arc<T>>,
}

impl<T: ?Sized> Default for Interner<T> {
    fn default() -> Self {
        Interner { ids: HashMap::default(), values: Vec::new() }
    }
}

impl<T: ?Sized + Eq + std::hash::Hash> Interner<T>
where
    for<'a> Arc<T>: From<&'a T>,
{
    fn id(&mut self, value: &T) -> u32 {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct interned profile values");
        let shared: Arc<T> = Arc::from(value);
        self.values.push(shared.clone());
        self.ids.insert(shared, id);
        id
    }

    fn get(&self, id: u32) -> &Arc<T> {
        &self.values[id as usize]
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.values.len()
    }
}

/// A profile with its strings interned: 16 bytes.
#[derive(Debug)]
struct CompactProfile {
    age_band: AgeBand,
    gender: Gender,
    region: u32,
    language: u32,
    /// Index into [`UserTable::interest_lists`].
    interests: u32,
}

/// Longest id stored inline in a [`UserKey`].
const INLINE_ID: usize = 23;

/// A user id: inline up to [`INLINE_ID`] bytes, else boxed. 24 bytes either way (the boxed
/// variant is told apart by a zero in the inline length's place). Hashes and compares as its
/// `str`, so the table is looked up with a plain `&str`.
enum UserKey {
    Inline { bytes: [u8; INLINE_ID], len: std::num::NonZeroU8 },
    Heap(Box<str>),
}

impl UserKey {
    fn new(id: &str) -> UserKey {
        // An empty id cannot be inline (the length is not zero): it is boxed, with no allocation.
        match std::num::NonZeroU8::new(id.len() as u8) {
            Some(len) if id.len() <= INLINE_ID => {
                let mut bytes = [0; INLINE_ID];
                bytes[..id.len()].copy_from_slice(id.as_bytes());
                UserKey::Inline { bytes, len }
            }
            _ => UserKey::Heap(Box::from(id)),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // The bytes are a prefix copied from a `str` and cut at its own length.
            UserKey::Inline { bytes, len } => {
                std::str::from_utf8(&bytes[..len.get() as usize]).expect("inline ids are copied from a str")
            }
            UserKey::Heap(s) => s,
        }
    }
}

impl std::borrow::Borrow<str> for UserKey {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for UserKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for UserKey {}

impl std::hash::Hash for UserKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// No activity stored for this user.
const NO_ACTIVITY: u32 = u32::MAX;

#[derive(Debug)]
struct Entry {
    /// Index into [`UserTable::activities`], or [`NO_ACTIVITY`].
    activity: u32,
    profile: Option<CompactProfile>,
}

/// Activities stored in chunks of [`ActivitySlab::CHUNK`], addressed by a dense index.
#[derive(Debug, Default)]
struct ActivitySlab {
    chunks: Vec<Box<[UserActivity]>>,
    len: usize,
}

impl ActivitySlab {
    /// Activities per chunk: 72 B each, so about 288 KiB per chunk; the unused tail of the last
    /// chunk is the only slack.
    const CHUNK: usize = 4096;

    fn get(&self, i: u32) -> Option<&UserActivity> {
        let i = i as usize;
        if i >= self.len {
            return None;
        }
        Some(&self.chunks[i / Self::CHUNK][i % Self::CHUNK])
    }

    fn get_mut(&mut self, i: u32) -> &mut UserActivity {
        let i = i as usize;
        assert!(i < self.len, "activity index {i} out of bounds");
        &mut self.chunks[i / Self::CHUNK][i % Self::CHUNK]
    }

    /// Adds an empty activity and returns its index (`None` past `u32` indices).
    fn push(&mut self) -> Option<u32> {
        let i = u32::try_from(self.len).ok().filter(|i| *i != NO_ACTIVITY)?;
        if self.len.is_multiple_of(Self::CHUNK) {
            self.chunks.push(vec![UserActivity::default(); Self::CHUNK].into_boxed_slice());
        }
        self.len += 1;
        Some(i)
    }
}

/// Profiles and recent activity per user id (activity also for ids without a profile).
#[derive(Debug, Default)]
pub(super) struct UserTable {
    entries: HashMap<UserKey, Entry>,
    activities: ActivitySlab,
    strings: Interner<str>,
    interest_lists: Interner<[u32]>,
}

impl UserTable {
    /// Stores (or replaces) `id`'s profile; its activity is kept.
    pub fn upsert(&mut self, id: String, profile: &UserProfile) {
        let compact = CompactProfile {
            age_band: profile.age_band,
            gender: profile.gender,
            region: self.strings.id(&profile.region),
            language: self.strings.id(&profile.language),
            interests: {
                let ids: Vec<u32> = profile.interests.iter().map(|i| self.strings.id(i)).collect();
                self.interest_lists.id(&ids)
            },
        };
        match self.entries.get_mut(id.as_str()) {
            Some(entry) => entry.profile = Some(compact),
            None => {
                self.entries.insert(UserKey::new(&id), Entry { activity: NO_ACTIVITY, profile: Some(compact) });
            }
        }
    }

    /// `id`'s stored profile.
    pub fn profile(&self, id: &str) -> Option<UserProfile> {
        let p = self.entries.get(id)?.profile.as_ref()?;
        Some(self.expand(p, true))
    }

    /// `id`'s stored activity.
    pub fn activity(&self, id: &str) -> Option<&UserActivity> {
        match self.entries.get(id)?.activity {
            NO_ACTIVITY => None,
            i => self.activities.get(i),
        }
    }

    /// `id` as a viewer of a session targeting `target` (unknown when `id` has no profile).
    pub fn viewer(&self, id: &str, target: &TargetAudience) -> Viewer {
        let profile = self.entries.get(id).and_then(|e| e.profile.as_ref());
        // Interest tags matter only to a target that declares interests: do not copy them otherwise.
        let profile = profile.map(|p| self.expand(p, !target.interests.is_empty()));
        Viewer::of(profile.as_ref(), target)
    }

    /// `id`'s activity, created empty when it has none (and the entry too, for an unknown id).
    pub fn activity_mut(&mut self, id: &str) -> &mut UserActivity {
        let entry = match self.entries.get_mut(id) {
            Some(e) => e,
            None => self.entries.entry(UserKey::new(id)).or_insert(Entry { activity: NO_ACTIVITY, profile: None }),
        };
        if entry.activity == NO_ACTIVITY {
            entry.activity = self.activities.push().expect("fewer than 2^32 - 1 users with activity");
        }
        self.activities.get_mut(entry.activity)
    }

    /// Number of user ids (with a profile, activity, or both).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn expand(&self, p: &CompactProfile, with_interests: bool) -> UserProfile {
        UserProfile {
            age_band: p.age_band,
            gender: p.gender,
            region: self.strings.get(p.region).clone(),
            language: self.strings.get(p.language).clone(),
            interests: if with_interests {
                self.interest_lists.get(p.interests).iter().map(|i| self.strings.get(*i).to_string()).collect()
            } else {
                Vec::new()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(region: &str, interests: &[&str]) -> UserProfile {
        UserProfile {
            age_band: AgeBand::A25To34,
            gender: Gender::Female,
            region: region.into(),
            language: "en".into(),
            interests: interests.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn profiles_round_trip_and_share_their_strings() {
        let mut t = UserTable::default();
        t.upsert("a".into(), &profile("US-CA", &["running", "yoga"]));
        t.upsert("b".into(), &profile("US-CA", &["yoga"]));
        assert_eq!(t.profile("a"), Some(profile("US-CA", &["running", "yoga"])));
        assert_eq!(t.profile("b"), Some(profile("US-CA", &["yoga"])));
        assert_eq!(t.profile("c"), None);
        let (a, b) = (t.profile("a").unwrap(), t.profile("b").unwrap());
        assert!(Arc::ptr_eq(&a.region, &b.region), "one copy of each region");
        // US-CA, en, running, yoga
        assert_eq!(t.strings.len(), 4);
    }

    #[test]
    fn a_new_profile_replaces_the_old_and_keeps_the_activity() {
        let mut t = UserTable::default();
        t.activity_mut("a").views = 2.0;
        assert_eq!(t.profile("a"), None, "activity alone makes no profile");
        t.upsert("a".into(), &profile("GB", &["x"]));
        t.upsert("a".into(), &profile("DE", &[]));
        assert_eq!(t.profile("a"), Some(profile("DE", &[])));
        assert_eq!(t.activity("a").unwrap().views, 2.0);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn ids_of_every_length_are_kept_apart() {
        let mut t = UserTable::default();
        let ids: Vec<String> = (0..=40).map(|n| "é".repeat(n / 2) + &"x".repeat(n % 2)).collect();
        for (i, id) in ids.iter().enumerate() {
            t.activity_mut(id).views = i as f32;
        }
        assert_eq!(t.len(), ids.len());
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(t.activity(id).unwrap().views, i as f32, "id {id:?}");
        }
        assert!(matches!(UserKey::new(&"x".repeat(INLINE_ID)), UserKey::Inline { .. }));
        assert!(matches!(UserKey::new(&"x".repeat(INLINE_ID + 1)), UserKey::Heap(_)));
        assert!(matches!(UserKey::new(""), UserKey::Heap(_)));
        assert_eq!(std::mem::size_of::<UserKey>(), 24);
        assert_eq!(std::mem::size_of::<Entry>(), 20);
    }

    #[test]
    fn interest_lists_are_stored_once_and_keep_their_order() {
        let mut t = UserTable::default();
        t.upsert("a".into(), &profile("GB", &["yoga", "running"]));
        t.upsert("b".into(), &profile("GB", &["yoga", "running"]));
        t.upsert("c".into(), &profile("GB", &["running", "yoga"]));
        t.upsert("d".into(), &profile("GB", &[]));
        assert_eq!(t.profile("c"), Some(profile("GB", &["running", "yoga"])));
        assert_eq!(t.profile("d"), Some(profile("GB", &[])));
        assert_eq!(t.interest_lists.len(), 3);
    }

    #[test]
    fn each_user_has_its_own_activity() {
        let mut t = UserTable::default();
        t.upsert("a".into(), &profile("GB", &[]));
        assert!(t.activity("a").is_none());
        t.activity_mut("b").views = 1.0;
        t.activity_mut("a").views = 3.0;
        t.activity_mut("b").views += 1.0;
        assert_eq!((t.activity("a").unwrap().views, t.activity("b").unwrap().views), (3.0, 2.0));
        assert_eq!(t.activities.len, 2);
    }

    #[test]
    fn activities_past_one_chunk_stay_apart() {
        let mut t = UserTable::default();
        let n = ActivitySlab::CHUNK * 2 + 3;
        for i in 0..n {
            t.activity_mut(&format!("u{i}")).views = i as f32;
        }
        assert_eq!(t.activities.chunks.len(), 3);
        for i in [0, ActivitySlab::CHUNK - 1, ActivitySlab::CHUNK, n - 1] {
            assert_eq!(t.activity(&format!("u{i}")).unwrap().views, i as f32);
        }
        assert!(t.activities.get(n as u32).is_none());
    }

    #[test]
    fn viewers_see_interests_only_when_the_target_declares_them() {
        let mut t = UserTable::default();
        t.upsert("a".into(), &profile("US-CA", &["yoga"]));
        let by_interest = TargetAudience { interests: vec!["yoga".into()], ..Default::default() };
        assert_eq!(t.viewer("a", &by_interest), Viewer::of(Some(&profile("US-CA", &["yoga"])), &by_interest));
        assert!(t.viewer("a", &by_interest).in_target.unwrap_or(false));
        let by_gender = TargetAudience { genders: vec![Gender::Male], ..Default::default() };
        assert_eq!(t.viewer("a", &by_gender), Viewer::of(Some(&profile("US-CA", &["yoga"])), &by_gender));
        assert_eq!(t.viewer("nobody", &by_gender), Viewer::default());
    }
}
