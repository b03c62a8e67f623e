//! The served stream's on-disk encoding: each session and each live-stats snapshot is written
//! once per segment, and rankings refer to it by a small key.
//!
//! A ranking serves 50 items; written whole, each item carried its session (ids, language,
//! region, target) and its live stats (about 150 bytes of counters and windows) beside the
//! feature row, ≈ 40 KB per ranking, most of it the same sessions and the same snapshots over and
//! over: stats change only when one of the session's events arrives, and rankings come far more
//! often. Now one frame holds one ranking and, before it, the definitions it needs that its
//! segment does not have yet:
//!
//! - `sessions`: `(key, session)` for a session first seen in this segment, or changed (upserted)
//!   since it was last written;
//! - `stats`: `(key, stats)` for each session whose stats differ from the last written snapshot;
//! - `ranking`: the ranking, its items naming their session by key. Each item keeps its exact
//!   feature row.
//!
//! Reading a frame applies its definitions, then resolves the items back to a whole
//! [`ServedRanking`]; a segment is read front to back, so a key always refers to an earlier or
//! the same frame of the same segment. The writer forgets its keys when a segment rotates (or a
//! write fails), so every segment can be read on its own; a reader that meets an undefined key
//! treats the segment as damaged from there.

use std::{collections::HashMap, sync::Arc};

use serde::{Deserialize, Serialize};

use super::record::{ServedItem, ServedRanking, SmallWrites, SparseRow};
use crate::domain::{LiveSession, LiveStats, RequestContext, UserActivity, UserProfile};

/// What the writer has written into the current segment, per session id.
#[derive(Debug, Default)]
pub(super) struct Dictionary {
    sessions: HashMap<String, Written>,
}

#[derive(Debug)]
struct Written {
    key: u32,
    session: Arc<LiveSession>,
    stats: LiveStats,
}

/// A frame as encoded (borrowing the ranking).
#[derive(Serialize)]
struct FrameRef<'a> {
    sessions: Vec<(u32, &'a LiveSession)>,
    stats: Vec<(u32, &'a LiveStats)>,
    ranking: RankingRef<'a>,
}

#[derive(Serialize)]
struct RankingRef<'a> {
    ranking_id: &'a str,
    user_id: &'a str,
    user: &'a UserProfile,
    activity: &'a UserActivity,
    context: &'a RequestContext,
    schema_hash: &'a str,
    model_version: &'a str,
    experiment: &'a str,
    arm: &'a str,
    items: Vec<ItemRef<'a>>,
}

#[derive(Serialize)]
struct ItemRef<'a> {
    session: u32,
    position: u32,
    score: f32,
    p_engage: f32,
    p_purchase: f32,
    propensity: f32,
    features: &'a SparseRow,
}

/// A frame as decoded; the same fields, in the same order, as [`FrameRef`].
#[derive(Deserialize)]
struct Frame {
    sessions: Vec<(u32, LiveSession)>,
    stats: Vec<(u32, LiveStats)>,
    ranking: Ranking,
}

#[derive(Deserialize)]
struct Ranking {
    ranking_id: String,
    user_id: String,
    user: UserProfile,
    activity: UserActivity,
    context: RequestContext,
    schema_hash: String,
    model_version: String,
    experiment: String,
    arm: String,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    session: u32,
    position: u32,
    score: f32,
    p_engage: f32,
    p_purchase: f32,
    propensity: f32,
    features: SparseRow,
}

impl Dictionary {
    /// Forgets every key: the next frame starts a new segment.
    pub fn clear(&mut self) {
        self.sessions.clear();
    }

    /// Encodes `r` as one frame payload, adding the definitions this segment lacks.
    pub fn encode(&mut self, r: &ServedRanking) -> Vec<u8> {
        let mut sessions = Vec::new();
        let mut stats = Vec::new();
        let mut items = Vec::with_capacity(r.items.len());
        for item in &r.items {
            let next_key = self.sessions.len() as u32;
            let key = match self.sessions.get_mut(item.session.session_id.as_str()) {
                Some(w) => {
                    if !Arc::ptr_eq(&w.session, &item.session) {
                        if *w.session != *item.session {
                            sessions.push((w.key, &*item.session));
                        }
                        // Either way the newer `Arc` makes the next comparison a pointer test.
                        w.session = item.session.clone();
                    }
                    if w.stats != item.stats {
                        stats.push((w.key, &item.stats));
                        w.stats = item.stats;
                    }
                    w.key
                }
                None => {
                    self.sessions.insert(
                        item.session.session_id.clone(),
                        Written { key: next_key, session: item.session.clone(), stats: item.stats },
                    );
                    sessions.push((next_key, &*item.session));
                    stats.push((next_key, &item.stats));
                    next_key
                }
            };
            items.push(ItemRef {
                session: key,
                position: item.position,
                score: item.score,
                p_engage: item.p_engage,
                p_purchase: item.p_purchase,
                propensity: item.propensity,
                features: &item.features,
            });
        }
        let frame = FrameRef {
            sessions,
            stats,
            ranking: RankingRef {
                ranking_id: &r.ranking_id,
                user_id: &r.user_id,
                user: &r.user,
                activity: &r.activity,
                context: &r.context,
                schema_hash: &r.schema_hash,
                model_version: &r.model_version,
                experiment: &r.experiment,
                arm: &r.arm,
                items,
            },
        };
        // Definitions are rare once a segment is warm; the items are ≈ 300 bytes each.
        let flavor = SmallWrites(Vec::with_capacity(256 + r.items.len() * 320));
        postcard::serialize_with_flavor(&frame, flavor).expect("served frames encode")
    }
}

/// Why a frame could not be read back.
#[derive(Debug, thiserror::Error)]
pub(super) enum ResolveError {
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
    #[error("an item names session key {0}, not defined earlier in its segment")]
    UndefinedKey(u32),
}

/// The reader's side: the definitions met so far in one segment.
#[derive(Debug, Default)]
pub(super) struct Resolver {
    known: HashMap<u32, (Arc<LiveSession>, LiveStats)>,
}

impl Resolver {
    /// Decodes one frame payload into the ranking it holds.
    pub fn decode(&mut self, payload: &[u8]) -> Result<ServedRanking, ResolveError> {
        let frame: Frame = postcard::from_bytes(payload)?;
        for (key, session) in frame.sessions {
            let session = Arc::new(session);
            self.known
                .entry(key)
                .and_modify(|(s, _)| *s = session.clone())
                .or_insert_with(|| (session, LiveStats::default()));
        }
        for (key, stats) in frame.stats {
            match self.known.get_mut(&key) {
                Some((_, s)) => *s = stats,
                None => return Err(ResolveError::UndefinedKey(key)),
            }
        }
        let r = frame.ranking;
        let items = r
            .items
            .into_iter()
            .map(|i| {
                let (session, stats) = self.known.get(&i.session).ok_or(ResolveError::UndefinedKey(i.session))?;
                Ok(ServedItem {
                    session: session.clone(),
                    stats: *stats,
                    position: i.position,
                    score: i.score,
                    p_engage: i.p_engage,
                    p_purchase: i.p_purchase,
                    propensity: i.propensity,
                    features: i.features,
                })
            })
            .collect::<Result<_, ResolveError>>()?;
        Ok(ServedRanking {
            ranking_id: r.ranking_id,
            user_id: r.user_id,
            user: r.user,
            activity: r.activity,
            context: r.context,
            schema_hash: r.schema_hash,
            model_version: r.model_version,
            experiment: r.experiment,
            arm: r.arm,
            items,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::{Category, PriceBand, SessionStatus, Surface, TargetAudience};

    pub fn session(id: &str, region: &str) -> Arc<LiveSession> {
        Arc::new(LiveSession {
            session_id: id.into(),
            host_id: format!("host-of-{id}"),
            category: Category::Beauty,
            price_band: PriceBand::Luxury,
            language: "en".into(),
            region: region.into(),
            start_time_ms: 17,
            status: SessionStatus::Live,
            end_time_ms: 0,
            target: TargetAudience { min_age: 20, max_age: 30, regions: vec!["US".into()], ..Default::default() },
        })
    }

    pub fn stats(impressions: u64) -> LiveStats {
        let mut s = LiveStats { impressions, watch_seconds: 2.5, ..Default::default() };
        s.segment_views[5] = 9;
        s
    }

    pub fn ranking(id: &str, items: &[(&Arc<LiveSession>, LiveStats)]) -> ServedRanking {
        ServedRanking {
            ranking_id: id.into(),
            user_id: format!("user-of-{id}"),
            user: UserProfile { region: "US".into(), ..Default::default() },
            activity: UserActivity { at_ms: 5, ..Default::default() },
            context: RequestContext { time_ms: 99, surface: Surface::HomeFeed },
            schema_hash: "hash".into(),
            model_version: "m/1".into(),
            experiment: String::new(),
            arm: String::new(),
            items: items
                .iter()
                .enumerate()
                .map(|(i, (session, stats))| ServedItem {
                    session: Arc::clone(session),
                    stats: *stats,
                    position: i as u32,
                    score: 0.5 / (i + 1) as f32,
                    p_engage: 0.25,
                    p_purchase: 0.125,
                    propensity: 1.0,
                    features: SparseRow { index: vec![3, 200 + i as u16], value: vec![1.0, -0.25] },
                })
                .collect(),
        }
    }

    #[test]
    fn sessions_and_stats_are_written_once_and_resolve_back_exactly() {
        let (a, b) = (session("a", "US"), session("b", "DE"));
        let rankings = [
            ranking("r1", &[(&a, stats(1)), (&b, stats(2))]),
            // Nothing new: both sessions and both snapshots are known.
            ranking("r2", &[(&b, stats(2)), (&a, stats(1))]),
            // a's stats moved on.
            ranking("r3", &[(&a, stats(3)), (&b, stats(2))]),
            // b was upserted (a new `Arc` with new content) and a re-sent unchanged in a new `Arc`.
            ranking("r4", &[(&session("b", "FR"), stats(2)), (&session("a", "US"), stats(3))]),
        ];
        let mut dictionary = Dictionary::default();
        let payloads: Vec<Vec<u8>> = rankings.iter().map(|r| dictionary.encode(r)).collect();
        let frames: Vec<Frame> = payloads.iter().map(|p| postcard::from_bytes(p).unwrap()).collect();
        let defined = |f: &Frame| {
            (
                f.sessions.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                f.stats.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            )
        };
        assert_eq!(defined(&frames[0]), (vec![0, 1], vec![0, 1]));
        assert_eq!(defined(&frames[1]), (vec![], vec![]));
        assert_eq!(defined(&frames[2]), (vec![], vec![0]));
        assert_eq!(defined(&frames[3]), (vec![1], vec![]));
        assert!(payloads[1].len() * 3 < payloads[0].len(), "{} vs {} bytes", payloads[1].len(), payloads[0].len());

        let mut resolver = Resolver::default();
        for (payload, r) in payloads.iter().zip(&rankings) {
            assert_eq!(&resolver.decode(payload).unwrap(), r);
        }

        // A new segment starts from nothing; a reader that missed the definitions refuses.
        dictionary.clear();
        let again = dictionary.encode(&rankings[1]);
        assert_eq!(Resolver::default().decode(&again).unwrap(), rankings[1]);
        assert!(matches!(Resolver::default().decode(&payloads[1]), Err(ResolveError::UndefinedKey(_))));
        assert!(matches!(Resolver::default().decode(&payloads[1][..3]), Err(ResolveError::Decode(_))));
    }
}
