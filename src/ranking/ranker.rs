//! [`Ranker`]: the ranking of live sessions for one user.

use std::sync::Arc;

use super::Policy;
use crate::domain::{RequestContext, SessionStatus, UserProfile};
use crate::features::{self, FeatureInput, NUM_FEATURES};
use crate::model::ModelRegistry;
use crate::store::{CatalogFilter, SessionSnapshot, Store, StoreError};

/// A validated ranking request.
#[derive(Debug, Clone)]
pub struct RankQuery {
    pub user_id: String,
    /// Used instead of the stored profile when present.
    pub user_override: Option<UserProfile>,
    pub context: RequestContext,
    /// Unique ids; empty = the live catalog.
    pub candidates: Vec<String>,
    /// Number of items to return, ≥ 1.
    pub limit: usize,
}

/// One scored session.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedItem {
    pub session_id: String,
    pub score: f32,
    pub p_engage: f32,
    pub p_purchase: f32,
    pub audience_fit: f32,
}

/// Why a candidate was not ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnrankedReason {
    NotFound,
    Ended,
    NotLive,
}

/// The result of a ranking.
#[derive(Debug, Clone)]
pub struct Ranked {
    pub ranking_id: String,
    /// `<name>/<version>` of the model that scored.
    pub model_id: String,
    /// Best first, at most `limit`.
    pub items: Vec<RankedItem>,
    pub unranked: Vec<(String, UnrankedReason)>,
    /// Candidates scored before truncation to `limit`.
    pub scored: usize,
}

/// Why a ranking failed.
#[derive(Debug, thiserror::Error)]
pub enum RankError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Ranks live sessions. Shared by all requests.
#[derive(Clone)]
pub struct Ranker {
    store: Arc<dyn Store>,
    models: Arc<ModelRegistry>,
    policy: Policy,
    /// Most live sessions considered when the request names no candidates.
    max_catalog_candidates: usize,
}

impl Ranker {
    /// A ranker over `store` scoring with the registry's serving model.
    pub fn new(
        store: Arc<dyn Store>,
        models: Arc<ModelRegistry>,
        policy: Policy,
        max_catalog_candidates: usize,
    ) -> Self {
        Ranker {
            store,
            models,
            policy,
            max_catalog_candidates,
        }
    }

    /// Ranks the query's candidates (or the live catalog) for its user.
    pub async fn rank(&self, query: RankQuery) -> Result<Ranked, RankError> {
        let user = match query.user_override {
            Some(profile) => profile,
            None => self
                .store
                .get_users(&[&query.user_id])
                .await?
                .pop()
                .flatten()
                .unwrap_or_default(),
        };

        let mut unranked = Vec::new();
        let candidates: Vec<SessionSnapshot> = if query.candidates.is_empty() {
            let filter = CatalogFilter {
                language: user.language.clone(),
                region: user.region.clone(),
                limit: self.max_catalog_candidates,
            };
            self.store.live_sessions(&filter).await?
        } else {
            let ids: Vec<&str> = query.candidates.iter().map(String::as_str).collect();
            let found = self.store.get_sessions(&ids).await?;
            let mut live = Vec::with_capacity(found.len());
            for (id, snapshot) in query.candidates.into_iter().zip(found) {
                match snapshot {
                    None => unranked.push((id, UnrankedReason::NotFound)),
                    Some(s) if s.session.status == SessionStatus::Ended => {
                        unranked.push((id, UnrankedReason::Ended))
                    }
                    Some(s) if s.session.status != SessionStatus::Live => {
                        unranked.push((id, UnrankedReason::NotLive))
                    }
                    Some(s) => live.push(s),
                }
            }
            live
        };

        let model = self.models.current();
        let heads = &model.artifact.heads;
        let mut row = [0f32; NUM_FEATURES];
        let mut items: Vec<RankedItem> = candidates
            .iter()
            .map(|c| {
                let input = FeatureInput {
                    user: &user,
                    session: &c.session,
                    stats: &c.stats,
                    context: &query.context,
                };
                let fit = features::extract(&input, &mut row).overall();
                let p_engage = heads.engage.predict(&row);
                let p_purchase = heads.purchase.predict(&row);
                RankedItem {
                    session_id: c.session.session_id.clone(),
                    score: self.policy.score(p_engage, p_purchase, fit),
                    p_engage,
                    p_purchase,
                    audience_fit: fit,
                }
            })
            .collect();
        let scored = items.len();
        let limit = query.limit.min(scored);
        if limit < scored {
            items.select_nth_unstable_by(limit, by_score);
            items.truncate(limit);
        }
        items.sort_unstable_by(by_score);

        Ok(Ranked {
            ranking_id: new_ranking_id(),
            model_id: model.id.clone(),
            items,
            unranked,
            scored,
        })
    }
}

/// Descending score; ties by session id so the order is deterministic.
fn by_score(a: &RankedItem, b: &RankedItem) -> std::cmp::Ordering {
    b.score
        .total_cmp(&a.score)
        .then_with(|| a.session_id.cmp(&b.session_id))
}

/// 128 random bits as 32 hex digits.
fn new_ranking_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
