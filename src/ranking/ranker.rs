//! [`Ranker`]: the ranking of live sessions for one user.

use std::sync::Arc;

use super::explore;
use super::id::new_ranking_id;
use super::interleave::{self, Team};
use crate::domain::{LiveStats, RequestContext, SessionStatus, UserActivity, UserProfile};
use crate::experiment::{ArmDef, ExperimentDef, Experiments, Kind, TEAM_DRAFT_PREFIX, arm_group};
use crate::featurelog::{FeatureLog, ServedItem, ServedRanking, SparseRow};
use crate::features::{self, CandidateRow, IdentityKeys, RequestFeatures};
use crate::model::{LoadedModel, ModelRegistry};
use crate::policy::{Policy, PolicyOverride};
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
    /// The caller's deadline, if it set one: a networked store gives up on reads in time to
    /// answer from its local copies (degraded).
    pub deadline: Option<std::time::Instant>,
}

/// One scored session.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedItem {
    pub session_id: String,
    pub score: f32,
    pub p_engage: f32,
    pub p_purchase: f32,
    pub audience_fit: f32,
    /// Whether the user is inside the session's declared target (`AudienceFit::in_target`;
    /// false when the profile leaves a declared dimension unknown).
    pub in_target: bool,
    /// The targeting credit the session has earned for the user, in [0, 1] (`domain::learned`):
    /// what `Policy::on_target_weight` multiplies.
    pub targeting_credit: f32,
}

/// Why a candidate was not ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnrankedReason {
    NotFound,
    Ended,
    NotLive,
    /// The shared store could not be read and this replica has no cached copy.
    Unavailable,
}

impl UnrankedReason {
    /// Lower-case name, for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            UnrankedReason::NotFound => "not_found",
            UnrankedReason::Ended => "ended",
            UnrankedReason::NotLive => "not_live",
            UnrankedReason::Unavailable => "unavailable",
        }
    }
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
    /// The experiments and arms this ranking was made under.
    pub exposures: Vec<Exposure>,
    /// Made from this replica's cached copies because the shared store could not be read in time.
    pub degraded: bool,
}

/// One experiment arm a ranking was made under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    pub experiment: String,
    pub arm: String,
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
    /// Where served rankings are recorded, if anywhere.
    log: Option<Arc<FeatureLog>>,
    /// Running experiments, if any.
    experiments: Option<Arc<Experiments>>,
    /// Whom each returned session was placed in front of, if counted.
    shown: Option<Arc<super::Shown>>,
}

impl Ranker {
    /// A ranker over `store` scoring with the registry's serving model.
    pub fn new(
        store: Arc<dyn Store>,
        models: Arc<ModelRegistry>,
        policy: Policy,
        max_catalog_candidates: usize,
        log: Option<Arc<FeatureLog>>,
    ) -> Self {
        Ranker { store, models, policy, max_catalog_candidates, log, experiments: None, shown: None }
    }

    /// Applies the arms of running experiments to the users they assign.
    pub fn with_experiments(mut self, experiments: Arc<Experiments>) -> Self {
        self.experiments = Some(experiments);
        self
    }

    /// Counts every returned session under the user's audience segment in `shown`.
    pub fn with_shown(mut self, shown: Arc<super::Shown>) -> Self {
        self.shown = Some(shown);
        self
    }

    /// Step 2, treat: the model, policy and exposures for `user_id`: the service's own, changed by each arm the
    /// user is in (layers in the order their experiments were created; a later arm's model or
    /// policy values win where two layers set the same thing). An interleaving experiment (the
    /// first one the user is in) is returned separately: both its arms score every ranking.
    fn treatment(&self, user_id: &str) -> Treatment {
        let mut t =
            Treatment { model: self.models.current(), policy: self.policy, exposures: Vec::new(), interleave: None };
        let Some(experiments) = &self.experiments else { return t };
        let state = experiments.state();
        let resolve = |e: &ExperimentDef, arm: &ArmDef| match &arm.model {
            None => Some(None),
            Some(id) => match self.models.loaded_arm_model(id) {
                Some(m) => Some(Some(m)),
                None => {
                    // Created experiments load their models first; this would be a bug.
                    tracing::error!(experiment = %e.name, arm = %arm.name, model = %id, "arm model not loaded; user left out of the experiment");
                    None
                }
            },
        };
        for (e, arm) in state.treatments(user_id) {
            if e.kind == Kind::Interleave {
                if t.interleave.is_none()
                    && let (Some(a), Some(b)) = (resolve(e, &e.arms[0]), resolve(e, &e.arms[1]))
                {
                    t.interleave = Some((e.name.clone(), [(a, e.arms[0].policy), (b, e.arms[1].policy)]));
                }
                continue;
            }
            let Some(model) = resolve(e, arm) else { continue };
            if let Some(m) = model {
                t.model = m;
            }
            t.policy = arm.policy.apply(t.policy);
            t.exposures.push(Exposure { experiment: e.name.clone(), arm: arm.name.clone() });
        }
        t
    }

    /// Ranks the query's candidates (or the live catalog) for its user, and records the ranking's
    /// time and outcome for the guardrails of the user's experiment arms.
    pub async fn rank(&self, query: RankQuery) -> Result<Ranked, RankError> {
        let Some(experiments) = &self.experiments else { return self.rank_inner(query).await };
        let started = std::time::Instant::now();
        let user_id = query.user_id.clone();
        let result = self.rank_inner(query).await;
        let elapsed = started.elapsed();
        match &result {
            Ok(r) => {
                let arms: Vec<(&str, &str)> =
                    r.exposures.iter().map(|e| (e.experiment.as_str(), e.arm.as_str())).collect();
                experiments.record(&user_id, &arms, elapsed, true);
            }
            Err(_) => {
                let state = experiments.state();
                let arms: Vec<(&str, &str)> = state
                    .treatments(&user_id)
                    .into_iter()
                    .map(|(e, a)| {
                        (
                            e.name.as_str(),
                            if e.kind == Kind::Interleave { arm_group(TEAM_DRAFT_PREFIX) } else { a.name.as_str() },
                        )
                    })
                    .collect();
                experiments.record(&user_id, &arms, elapsed, false);
            }
        }
        result
    }

    /// One ranking, step by step.
    async fn rank_inner(&self, mut query: RankQuery) -> Result<Ranked, RankError> {
        let mut fetched = self.fetch(&mut query).await?;
        let treatment = self.treatment(&query.user_id);
        let ranking_id = new_ranking_id();
        let unreturned = self.log.as_ref().map_or(0, |l| l.unreturned_candidates());
        let ordered = order(&query, &fetched, treatment, &ranking_id, unreturned);
        // The profile goes to the log as it is; the response does not need it.
        let segment = crate::domain::segment(&fetched.user);
        let user = std::mem::take(&mut fetched.user);
        self.log(&query, user, &fetched, &ordered, &ranking_id);
        let ranked = respond(ranking_id, fetched, ordered);
        if let Some(shown) = &self.shown {
            shown.record(segment, ranked.items.iter().map(|i| i.session_id.as_str()));
        }
        Ok(ranked)
    }

    /// Step 1, fetch: the user and the candidates (named, or the live catalog filtered by the
    /// user's language and region), in as few store calls as possible. Named candidates do not
    /// depend on the user, so both are read at once (one round trip to a networked store).
    async fn fetch(&self, query: &mut RankQuery) -> Result<Fetched, RankError> {
        let ids: Vec<&str> = query.candidates.iter().map(String::as_str).collect();
        let user_ids = [query.user_id.as_str()];
        let deadline = query.deadline;
        let (users, named) = if ids.is_empty() {
            (self.store.get_users(&user_ids, deadline).await?, None)
        } else {
            let (users, found) =
                tokio::join!(self.store.get_users(&user_ids, deadline), self.store.get_sessions(&ids, deadline));
            (users?, Some(found?))
        };
        let mut degraded = users.degraded;
        let stored = users.value.into_iter().next().unwrap_or_default();
        let user = query.user_override.take().or(stored.profile).unwrap_or_default();
        let mut unranked = Vec::new();
        let candidates = match named {
            None => {
                let filter = CatalogFilter {
                    language: user.language.to_string(),
                    region: user.region.to_string(),
                    limit: self.max_catalog_candidates,
                };
                let listed = self.store.live_sessions(&filter, deadline).await?;
                degraded |= listed.degraded;
                listed.value
            }
            Some(found) => {
                degraded |= found.degraded;
                live_only(&ids, found.value, found.degraded, &mut unranked)
            }
        };
        Ok(Fetched { user, activity: stored.activity, candidates, unranked, degraded })
    }

    /// Step 5, log: hands the ranking to the feature log, if it is on. The record holds `Arc`s
    /// of the sessions and copies of the stats; the writer thread computes the returned items'
    /// rows from them (`ServedRanking::extract_rows`: the extractor is a pure function of these
    /// inputs, so they are the rows that were scored) and encodes the record, off the request
    /// thread.
    fn log(&self, query: &RankQuery, user: UserProfile, fetched: &Fetched, ordered: &Ordered, ranking_id: &str) {
        let Some(log) = &self.log else { return };
        // Several layers: names joined by ',' in the same order in both fields.
        let experiment_names = ordered.exposures.iter().map(|e| e.experiment.as_str()).collect::<Vec<_>>().join(",");
        let arm_names = ordered.exposures.iter().map(|e| e.arm.as_str()).collect::<Vec<_>>().join(",");
        // The returned items, then the unreturned candidates (propensity 0).
        let returned = ordered.items.len();
        let items: Vec<ServedItem> = ordered
            .items
            .iter()
            .chain(&ordered.unreturned)
            .enumerate()
            .map(|(position, s)| {
                let c = &fetched.candidates[s.candidate];
                let propensity =
                    if position < returned { ordered.propensities.get(position).copied().unwrap_or(1.0) } else { 0.0 };
                ServedItem {
                    session: Arc::clone(&c.session),
                    stats: LiveStats::clone(&c.stats),
                    position: position as u32,
                    score: s.score,
                    p_engage: s.p_engage,
                    p_purchase: s.p_purchase,
                    propensity,
                    features: SparseRow::default(),
                }
            })
            .collect();
        log.log_served(ServedRanking {
            ranking_id: ranking_id.to_owned(),
            user_id: query.user_id.clone(),
            user,
            activity: fetched.activity,
            context: query.context,
            schema_hash: features::schema_hash().to_owned(),
            model_version: ordered.model_id.clone(),
            experiment: experiment_names,
            arm: arm_names,
            items,
        });
    }
}

/// The named candidates that are live, in request order; the others go to `unranked` with their
/// reason (only their ids are copied out, to be returned as sent).
fn live_only(
    ids: &[&str],
    found: Vec<Option<SessionSnapshot>>,
    degraded: bool,
    unranked: &mut Vec<(String, UnrankedReason)>,
) -> Vec<SessionSnapshot> {
    let missing = if degraded { UnrankedReason::Unavailable } else { UnrankedReason::NotFound };
    let mut live = Vec::with_capacity(found.len());
    for (id, snapshot) in ids.iter().zip(found) {
        match snapshot {
            None => unranked.push(((*id).to_owned(), missing)),
            Some(s) if s.session.status == SessionStatus::Ended => {
                unranked.push(((*id).to_owned(), UnrankedReason::Ended))
            }
            Some(s) if s.session.status != SessionStatus::Live => {
                unranked.push(((*id).to_owned(), UnrankedReason::NotLive))
            }
            Some(s) => live.push(s),
        }
    }
    live
}

/// Step 3, score: both heads of `model` and the `policy` score for every candidate, in candidate
/// order.
fn score(query: &RankQuery, fetched: &Fetched, model: &LoadedModel, policy: Policy) -> Vec<Scored> {
    let request = RequestFeatures::new(&fetched.user, &fetched.activity, &query.context);
    let heads = &model.artifact.heads;
    // Only a model with an identity block pays for hashing the ids.
    let user_keys = (model.artifact.manifest.identity_buckets > 0).then(|| IdentityKeys::of(&query.user_id, ""));
    let mut row = CandidateRow::new();
    fetched
        .candidates
        .iter()
        .enumerate()
        .map(|(candidate, c)| {
            let extracted = features::extract_candidate(&request, &c.session, &c.stats, &mut row);
            let fit = extracted.fit.overall();
            let identity = match user_keys {
                None => (0.0, 0.0),
                Some(user) => {
                    let keys = user.with_host(&c.session.host_id);
                    (heads.engage.identity_logit(&keys), heads.purchase.identity_logit(&keys))
                }
            };
            let (p_engage, p_purchase) = heads.predict_active_with(row.row(), &extracted.active, identity);
            let on_target = extracted.fit.in_target() == Some(true);
            let credit = extracted.credit;
            let score = policy.score(p_engage, p_purchase, fit, credit);
            Scored { candidate, score, p_engage, p_purchase, fit, on_target, credit }
        })
        .collect()
}

/// Step 4, order: the top `limit` by the treatment's policy, with targeted exploration of cold
/// sessions when the policy asks for it, or the team-draft merge of an interleaving experiment's
/// two arms. Scores (step 3) are computed here, per arm. Besides, up to `unreturned` of the
/// candidates not placed, best first by the (first arm's) score, for the feature log.
fn order(query: &RankQuery, fetched: &Fetched, treatment: Treatment, ranking_id: &str, unreturned: usize) -> Ordered {
    let Treatment { model, policy, mut exposures, interleave } = treatment;
    let candidates = &fetched.candidates;
    let total = candidates.len();
    let by_score = |a: &Scored, b: &Scored| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| candidates[a.candidate].session.session_id.cmp(&candidates[b.candidate].session.session_id))
    };
    let limit = query.limit.min(total);
    let seed = u64::from_str_radix(&ranking_id[..16], 16).unwrap_or(0);
    match interleave {
        None if policy.exploration_share > 0.0 || policy.exploration_head_share > 0.0 => {
            // Exploitation order over every candidate, then targeted exploration of cold ones.
            let mut all = score(query, fetched, &model, policy);
            all.sort_unstable_by(by_score);
            let exploit: Vec<usize> = all.iter().map(|s| s.candidate).collect();
            let cold: Vec<usize> =
                (0..total).filter(|&i| candidates[i].stats.impressions < policy.cold_impressions).collect();
            let by_candidate = by_candidate(all, total);
            let in_audience = |i: usize| by_candidate[i].is_some_and(|s| s.credit >= 0.5);
            let score = |i: usize| by_candidate[i].as_ref().map_or(0.0, |s| s.score);
            let exploration = explore::Exploration {
                share: policy.exploration_share,
                uniform_share: policy.exploration_uniform_share,
                head_share: policy.exploration_head_share,
                head_size: policy.exploration_head_size,
            };
            let placed = explore::place(&exploit, total, limit, &cold, in_audience, score, exploration, seed);
            let items: Vec<usize> = placed.iter().map(|(c, _)| *c).collect();
            Ordered {
                propensities: placed.iter().map(|(_, p)| *p).collect(),
                items: items.iter().filter_map(|c| by_candidate[*c]).collect(),
                unreturned: not_placed(&exploit, &items, total, unreturned, &by_candidate),
                model_id: model.id.clone(),
                exposures,
            }
        }
        None => {
            let mut scored = score(query, fetched, &model, policy);
            let keep = limit.saturating_add(unreturned).min(total);
            if keep < total {
                scored.select_nth_unstable_by(keep, by_score);
                scored.truncate(keep);
            }
            scored.sort_unstable_by(by_score);
            let unreturned = scored.split_off(limit);
            Ordered { items: scored, propensities: Vec::new(), unreturned, model_id: model.id.clone(), exposures }
        }
        Some((name, arms)) => {
            // Both arms rank everything; team-draft picks from the two orders.
            let mut orders = arms.map(|(arm_model, arm_policy)| {
                let m = arm_model.unwrap_or_else(|| model.clone());
                let mut s = score(query, fetched, &m, arm_policy.apply(policy));
                s.sort_unstable_by(by_score);
                (m.id.clone(), s)
            });
            let index = |s: &[Scored]| s.iter().map(|x| x.candidate).collect::<Vec<_>>();
            let lists = [index(&orders[0].1), index(&orders[1].1)];
            let merged = interleave::team_draft(&lists[0], &lists[1], total, limit, seed);
            let by_candidate = [
                by_candidate(std::mem::take(&mut orders[0].1), total),
                by_candidate(std::mem::take(&mut orders[1].1), total),
            ];
            let placed: Vec<usize> = merged.iter().map(|(c, _)| *c).collect();
            let propensities = interleave::placement_probabilities(&lists[0], &lists[1], total, &placed);
            let teams: String = merged.iter().map(|(_, t)| t.letter()).collect();
            let items = merged.iter().filter_map(|(c, team)| by_candidate[usize::from(*team == Team::B)][*c]).collect();
            exposures.push(Exposure { experiment: name, arm: format!("{TEAM_DRAFT_PREFIX}{teams}") });
            let model_id = if orders[0].0 == orders[1].0 {
                orders[0].0.clone()
            } else {
                format!("{}|{}", orders[0].0, orders[1].0)
            };
            let unreturned = not_placed(&lists[0], &placed, total, unreturned, &by_candidate[0]);
            Ordered { items, propensities, unreturned, model_id, exposures }
        }
    }
}

/// Step 6, respond: the ordered items as the ranking's result.
fn respond(ranking_id: String, fetched: Fetched, ordered: Ordered) -> Ranked {
    let items = ordered
        .items
        .iter()
        .map(|s| RankedItem {
            session_id: fetched.candidates[s.candidate].session.session_id.clone(),
            score: s.score,
            p_engage: s.p_engage,
            p_purchase: s.p_purchase,
            audience_fit: s.fit,
            in_target: s.on_target,
            targeting_credit: s.credit,
        })
        .collect();
    Ranked {
        ranking_id,
        model_id: ordered.model_id,
        items,
        unranked: fetched.unranked,
        scored: fetched.candidates.len(),
        exposures: ordered.exposures,
        degraded: fetched.degraded,
    }
}

/// What step 1 read for one ranking.
struct Fetched {
    user: UserProfile,
    activity: UserActivity,
    /// Live candidates; [`Scored::candidate`] indexes this.
    candidates: Vec<SessionSnapshot>,
    unranked: Vec<(String, UnrankedReason)>,
    degraded: bool,
}

/// What step 4 chose: the items in order, with their placement probabilities when exploration
/// placed them (empty otherwise: each placement was certain).
struct Ordered {
    items: Vec<Scored>,
    propensities: Vec<f32>,
    /// The best scored candidates that were not returned, for the feature log.
    unreturned: Vec<Scored>,
    /// `<name>/<version>` of the model that scored (both, `|`-joined, for an interleaving).
    model_id: String,
    exposures: Vec<Exposure>,
}

/// One scored candidate.
#[derive(Debug, Clone, Copy)]
struct Scored {
    candidate: usize,
    score: f32,
    p_engage: f32,
    p_purchase: f32,
    fit: f32,
    /// Inside the declared target.
    on_target: bool,
    /// The targeting credit earned (`domain::learned`).
    credit: f32,
}

/// What the user's experiments change in one ranking.
struct Treatment {
    model: Arc<LoadedModel>,
    policy: Policy,
    exposures: Vec<Exposure>,
    /// An interleaving experiment: its name and its two arms.
    interleave: Option<(String, [InterleavedArm; 2])>,
}

/// One arm of an interleaving experiment: its model (None = the treatment's) and policy overrides.
type InterleavedArm = (Option<Arc<LoadedModel>>, PolicyOverride);

/// `scored` indexed by candidate.
fn by_candidate(scored: Vec<Scored>, total: usize) -> Vec<Option<Scored>> {
    let mut out = vec![None; total];
    for s in scored {
        out[s.candidate] = Some(s);
    }
    out
}

/// The first `n` candidates of `order` not in `placed`, scored.
fn not_placed(order: &[usize], placed: &[usize], total: usize, n: usize, scored: &[Option<Scored>]) -> Vec<Scored> {
    if n == 0 {
        return Vec::new();
    }
    let mut is_placed = vec![false; total];
    for &c in placed {
        is_placed[c] = true;
    }
    order.iter().filter(|c| !is_placed[**c]).filter_map(|c| scored[*c]).take(n).collect()
}
