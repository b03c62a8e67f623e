//! Property tests of invariants that no input may break.

use fitrank::api::{Limits, convert};
use fitrank::domain::window::Decayed;
use fitrank::domain::{
    AgeBand, Category, Gender, LiveSession, LiveStats, PriceBand, RequestContext, SessionStatus, Surface,
    TargetAudience, UserActivity, UserProfile, audience,
};
use fitrank::featurelog::SparseRow;
use fitrank::features::{
    CandidateRow, FeatureInput, IdentityKeys, NUM_FEATURES, RequestFeatures, extract, extract_candidate,
};
use fitrank::model::{LoadedModel, ModelRegistry};
use fitrank::proto::v1 as pb;
use proptest::prelude::*;

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z]{1,3}", "\\PC{0,140}", Just("US-CA".to_owned())]
}

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), -10.0..1e7]
}

prop_compose! {
    fn any_attrs()(age in -2i32..10, gender in -2i32..6, region in any_string(), language in any_string(),
                   interests in prop::collection::vec(any_string(), 0..40)) -> pb::UserAttributes {
        pb::UserAttributes { age_band: age, gender, region, language, interests }
    }
}

prop_compose! {
    fn any_rank_request()(user_id in any_string(), user in prop::option::of(any_attrs()),
                          time in prop_oneof![Just(0i64), any::<i64>()], surface in -1i32..7,
                          candidates in prop::collection::vec("[a-d]{0,2}", 0..30), limit in any::<u32>())
                          -> pb::RankRequest {
        pb::RankRequest {
            user_id, user, context: Some(pb::RequestContext { time_unix_ms: time, surface }),
            candidate_session_ids: candidates, limit,
        }
    }
}

prop_compose! {
    fn any_event()(id in any_string(), kind in -1i32..13, user in any_string(), session in any_string(),
                   time in any::<i64>(), ranking in any_string(), position in any::<u32>(),
                   watch in any_f64(), amount in any_f64(), order in any_string()) -> pb::Event {
        pb::Event { event_id: id, r#type: kind, user_id: user, session_id: session, time_unix_ms: time,
                    ranking_id: ranking, position, watch_seconds: watch, amount, order_id: order }
    }
}

fn pick<T: Copy>(all: &[T], i: usize) -> T {
    all[i % all.len()]
}

prop_compose! {
    fn any_profile()(age in 0usize..8, gender in 0usize..4, region in prop_oneof![Just(""), Just("US"), Just("US-CA"), Just("DE")],
                     language in prop_oneof![Just(""), Just("en"), Just("de")], interested in any::<bool>()) -> UserProfile {
        UserProfile {
            age_band: pick(AgeBand::ALL, age), gender: pick(Gender::ALL, gender), region: region.into(),
            language: language.into(), interests: if interested { vec!["beauty".into()] } else { vec![] },
        }
    }
}

prop_compose! {
    fn any_session()(cat in 0usize..12, price in 0usize..4, min_age in 0u32..121, span in 0u32..121,
                     genders in prop::collection::vec(1usize..4, 0..3), regioned in any::<bool>(),
                     start in 0i64..4_000_000_000_000) -> LiveSession {
        LiveSession {
            session_id: "s".into(), host_id: "h".into(), category: pick(Category::ALL, cat),
            price_band: pick(PriceBand::ALL, price), language: "en".into(), region: "US".into(),
            start_time_ms: start, status: SessionStatus::Live, end_time_ms: 0,
            target: TargetAudience {
                min_age, max_age: if span == 0 { 0 } else { (min_age + span).min(120) },
                genders: genders.into_iter().map(|g| pick(Gender::ALL, g)).collect(),
                regions: if regioned { vec!["US".into()] } else { vec![] },
                interests: vec![],
            },
        }
    }
}

prop_compose! {
    fn any_stats()(c in prop::array::uniform8(0u64..u64::MAX / 4), watch in 0.0f64..1e12, revenue in -1e9f64..1e9,
                   at_ms in 0i64..4_000_000_000_000, w in prop::array::uniform12(0.0f32..1e9),
                   segs in prop::collection::vec(any::<u32>(), 32),
                   bought in prop::collection::vec(any::<u32>(), 32)) -> LiveStats {
        let values = [[w[0], w[1], w[2]], [w[3], w[4], w[5]], [w[6], w[7], w[8]], [w[9], w[10], w[11]]];
        LiveStats {
            impressions: c[0], views: c[1], watch_seconds: watch, interactions: c[2], follows: c[3],
            add_to_carts: c[4], purchases: c[5], revenue, returns: c[6], hides: c[7],
            on_target_views: c[1] / 2, known_views: c[1],
            windows: Decayed { at_ms, values },
            segment_views: segs.try_into().unwrap(),
            segment_purchases: bought.try_into().unwrap(),
        }
    }
}

prop_compose! {
    fn any_activity()(
        at_ms in 0i64..4_000_000_000_000,
        v in prop::array::uniform12(-1e6f32..1e6),
        impressions in 0f32..1e6,
        views in 0f32..1e6,
        category_impressions in prop::array::uniform12(0f32..1e6),
        category_views in prop::array::uniform12(0f32..1e6),
        purchases in 0f32..1e5,
        returns in 0f32..1e5,
        price_impressions in prop::array::uniform4(0f32..1e6),
        price_views in prop::array::uniform4(0f32..1e6),
        price_purchases in prop::array::uniform4(0f32..1e5),
    ) -> UserActivity {
        UserActivity {
            at_ms, by_category: v, impressions, views, category_impressions, category_views, purchases, returns,
            price_impressions, price_views, price_purchases,
        }
    }
}

fn shipped_model() -> std::sync::Arc<LoadedModel> {
    static MODELS: std::sync::OnceLock<ModelRegistry> = std::sync::OnceLock::new();
    MODELS
        .get_or_init(|| ModelRegistry::open(concat!(env!("CARGO_MANIFEST_DIR"), "/models"), "default").unwrap())
        .current()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The ranking hot path (per-request precomputation, a row reused from the previous
    /// candidate, sparse scoring) gives the same bits as the plain extractor and dense scoring
    /// that training and the feature log use.
    #[test]
    fn the_fast_path_is_bit_identical(user in any_profile(), session in any_session(), stats in any_stats(),
                                      previous in any_session(), previous_stats in any_stats(),
                                      activity in any_activity(), time in 0i64..4_000_000_000_000) {
        let context = RequestContext { time_ms: time, surface: Surface::Search };
        let mut plain = [f32::NAN; NUM_FEATURES];
        let fit = extract(&FeatureInput { user: &user, activity: &activity, session: &session, stats: &stats, context: &context }, &mut plain);
        let request = RequestFeatures::new(&user, &activity, &context);
        let mut reused = CandidateRow::new();
        extract_candidate(&request, &previous, &previous_stats, &mut reused);
        let extracted = extract_candidate(&request, &session, &stats, &mut reused);
        let fast = *reused.row();
        prop_assert_eq!(plain.map(f32::to_bits), fast.map(f32::to_bits));
        prop_assert_eq!(fit, extracted.fit);
        // The feature log's sparse row from the one-hot positions equals the full scan's.
        let (from_dense, from_extracted) = (SparseRow::from_dense(&plain), SparseRow::from_extracted(&fast, &extracted.active));
        prop_assert_eq!(&from_dense.index, &from_extracted.index);
        prop_assert_eq!(from_dense.value.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        from_extracted.value.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        let model = shipped_model();
        let heads = &model.artifact.heads;
        // Both heads in one pass give each head's own bits.
        let extras = ((time % 5) as f32 - 2.0, (time % 3) as f32 - 1.0);
        let (engage, purchase) = heads.predict_active_with(&fast, &extracted.active, extras);
        prop_assert_eq!(engage.to_bits(), heads.engage.predict_with(&plain, extras.0).to_bits());
        prop_assert_eq!(purchase.to_bits(), heads.purchase.predict_with(&plain, extras.1).to_bits());
        for head in [&model.artifact.heads.engage, &model.artifact.heads.purchase] {
            prop_assert_eq!(head.predict(&plain).to_bits(), head.predict_active(&fast, &extracted.active).to_bits());
            // With an identity block's part of the logit, too (training predicts with the former).
            let extra = (time % 7) as f32 - 3.0;
            prop_assert_eq!(
                head.predict_with(&plain, extra).to_bits(),
                head.predict_active_with(&fast, &extracted.active, extra).to_bits()
            );
        }
    }

    /// Every id lands in its kind's range of slots; only an empty id has none.
    #[test]
    fn identity_slots_stay_in_their_block(user in any_string(), host in any_string(), buckets in 1u32..5_000_000) {
        let [u, h] = IdentityKeys::of(&user, &host).slots(buckets);
        prop_assert_eq!(u.is_none(), user.is_empty());
        prop_assert_eq!(h.is_none(), host.is_empty());
        prop_assert!(u.is_none_or(|s| s < buckets));
        prop_assert!(h.is_none_or(|s| (buckets..2 * buckets).contains(&s)));
    }

    /// Any rank request either converts to a query satisfying the limits or names a field.
    #[test]
    fn rank_requests_validate_without_panicking(req in any_rank_request()) {
        let limits = Limits { max_candidates: 20, default_limit: 5, max_batch: 100 };
        match convert::rank_query(req, &limits, 1_000) {
            Ok(q) => {
                prop_assert!(!q.user_id.is_empty());
                prop_assert!(q.candidates.len() <= 20);
                prop_assert!((1..=20).contains(&q.limit));
                let unique: std::collections::HashSet<_> = q.candidates.iter().collect();
                prop_assert_eq!(unique.len(), q.candidates.len());
                prop_assert!(q.context.time_ms >= 0);
            }
            Err(e) => prop_assert!(!e.field.is_empty()),
        }
    }

    /// Accepted events have finite, bounded numbers and known kinds.
    #[test]
    fn events_validate_without_panicking(e in any_event()) {
        if let Ok(ev) = convert::event("event", &e, 1) {
            prop_assert!(ev.watch_seconds.is_finite() && (0.0..=86_400.0).contains(&ev.watch_seconds));
            prop_assert!(ev.amount.is_finite() && (0.0..=1e6).contains(&ev.amount));
            prop_assert!(!ev.event_id.is_empty() && ev.time_ms >= 0);
        }
    }

    /// Every feature is finite and bounded, and audience fit stays in [0, 1], whatever the stats.
    #[test]
    fn features_are_finite_and_fit_is_a_share(user in any_profile(), session in any_session(), stats in any_stats(),
                                              activity in any_activity(), time in 0i64..4_000_000_000_000) {
        let context = RequestContext { time_ms: time, surface: Surface::HomeFeed };
        let mut row = [f32::NAN; NUM_FEATURES];
        let fit = extract(&FeatureInput { user: &user, activity: &activity, session: &session, stats: &stats, context: &context }, &mut row);
        prop_assert!(row.iter().all(|v| v.is_finite() && v.abs() <= fitrank::features::MAX_ABS_FEATURE));
        prop_assert!((0.0..=1.0).contains(&fit.overall()));
        prop_assert_eq!(fit, audience::fit(&user, &session.target));
    }
}
