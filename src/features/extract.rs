//! [`extract`]: (user, session, live statistics, context) → feature row.

use std::f32::consts::TAU;

use super::schema::{self, NUM_FEATURES, scalar};
use crate::domain::audience::{self, AudienceFit};
use crate::domain::learned;
use crate::domain::stats::counter;
use crate::domain::{
    AgeBand, Category, Gender, LiveSession, LiveStats, PriceBand, RequestContext, SEGMENTS, UserActivity, UserProfile,
    segment,
};

/// One model input row.
pub type Row = [f32; NUM_FEATURES];

/// Everything a feature row is computed from. Nothing else may influence it.
#[derive(Debug, Clone, Copy)]
pub struct FeatureInput<'a> {
    pub user: &'a UserProfile,
    /// The user's decayed engagement by category.
    pub activity: &'a UserActivity,
    pub session: &'a LiveSession,
    pub stats: &'a LiveStats,
    pub context: &'a RequestContext,
}

/// The one-hot positions a row sets below [`schema::SCALARS`], in ascending order: age, gender,
/// surface, category, price band, the three crosses, and fit × category. Every other position
/// below `SCALARS` is zero, which lets the scorer skip them.
pub type Active = [u16; 9];

/// What [`extract_candidate`] returns besides the row.
#[derive(Debug, Clone, Copy)]
pub struct Extracted {
    /// The audience fit it computed, so callers report the fit the model saw.
    pub fit: AudienceFit,
    /// The one-hot positions set.
    pub active: Active,
    /// The targeting credit the session has earned for the user (`domain::learned`), also the
    /// row's `live.targeting_credit`.
    pub credit: f32,
}

/// A feature row reused from candidate to candidate by [`extract_candidate`]. It remembers the
/// one-hot positions the last extraction set, so the next one clears those nine instead of the
/// ≈ 220 positions below `SCALARS` (clearing them all was a tenth of the extractor's time). The
/// row is only readable from outside, so that record stays true.
#[derive(Debug, Clone)]
pub struct CandidateRow {
    row: Row,
    /// The one-hot positions set in `row`; `None` while every position below `SCALARS` is zero.
    set: Option<Active>,
}

impl CandidateRow {
    /// An all-zero row.
    pub fn new() -> Self {
        CandidateRow { row: [0.0; NUM_FEATURES], set: None }
    }

    /// The row of the last [`extract_candidate`].
    pub fn row(&self) -> &Row {
        &self.row
    }
}

impl Default for CandidateRow {
    fn default() -> Self {
        Self::new()
    }
}

/// The part of a row that depends only on the user and the request, computed once per ranking.
#[derive(Debug, Clone, Copy)]
pub struct RequestFeatures<'a> {
    user: &'a UserProfile,
    context: &'a RequestContext,
    segment: usize,
    user_log_view_rate: f32,
    user_log_impressions: f32,
    user_view_logit: f32,
    user_log_activity: f32,
    /// Per category: sign(a) · ln(1 + |a|) of the user's decayed engagement a with it.
    category_affinity: [f32; Category::COUNT],
    /// Per category: the user's decayed engagement with it over their total (+1).
    category_share: [f32; Category::COUNT],
    /// Per category: the user's smoothed view-rate lift of it (`user.category_view_lift`).
    category_view_lift: [f32; Category::COUNT],
    user_log_purchase_per_view: f32,
    user_return_rate: f32,
    /// Per price band: `user.price_band_view_lift` and `user.price_band_purchase_lift`.
    price_view_lift: [f32; PriceBand::COUNT],
    price_purchase_lift: [f32; PriceBand::COUNT],
    hour_sin: f32,
    hour_cos: f32,
}

impl<'a> RequestFeatures<'a> {
    /// Precomputes the user- and request-level parts.
    pub fn new(user: &'a UserProfile, activity: &'a UserActivity, context: &'a RequestContext) -> Self {
        let activity_factor = activity.decay_to(context.time_ms);
        let hour = (context.time_ms.rem_euclid(86_400_000)) as f32 / 3_600_000.0;
        let activity_total = activity.raw_total() * activity_factor;
        let affinity = |c: usize| activity.by_category[c] * activity_factor;
        let view_rate =
            ((activity.views * activity_factor + 1.0) / (activity.impressions * activity_factor + 5.0)).min(1.0);
        let decayed = |x: f32| x.max(0.0) * activity_factor;
        let (purchases, views) = (decayed(activity.purchases), decayed(activity.views));
        let purchase_rate = ((purchases + 0.2) / (views + 5.0)).min(1.0);
        // The user's rate of `hits` per `trials` in one category or band over their own `rate`,
        // with USER_LIFT_PRIOR trials at that rate.
        let lift = |hits: f32, trials: f32, rate: f32| {
            ((decayed(hits) + USER_LIFT_PRIOR * rate) / ((decayed(trials) + USER_LIFT_PRIOR) * rate)).ln()
        };
        RequestFeatures {
            user,
            context,
            segment: segment(user),
            user_log_view_rate: view_rate.ln(),
            user_log_impressions: (activity.impressions * activity_factor).max(0.0).ln_1p(),
            user_view_logit: logit(activity.views * activity_factor, activity.impressions * activity_factor, 1.0, 4.0),
            user_log_activity: activity_total.ln_1p(),
            category_affinity: std::array::from_fn(|c| {
                let a = affinity(c);
                a.signum() * a.abs().ln_1p()
            }),
            category_share: std::array::from_fn(|c| affinity(c) / (activity_total + 1.0)),
            category_view_lift: std::array::from_fn(|c| {
                lift(activity.category_views[c], activity.category_impressions[c], view_rate)
            }),
            user_log_purchase_per_view: purchase_rate.ln(),
            user_return_rate: ((decayed(activity.returns) + 0.5) / (purchases + 5.0)).min(1.0),
            price_view_lift: std::array::from_fn(|b| {
                lift(activity.price_views[b], activity.price_impressions[b], view_rate)
            }),
            price_purchase_lift: std::array::from_fn(|b| {
                lift(activity.price_purchases[b], activity.price_views[b], purchase_rate)
            }),
            hour_sin: (TAU * hour / 24.0).sin(),
            hour_cos: (TAU * hour / 24.0).cos(),
        }
    }
}

/// Writes the feature row for `input` into `row` (every position is written) and returns the
/// audience fit it computed, so callers report the same fit the model saw.
pub fn extract(input: &FeatureInput<'_>, row: &mut Row) -> AudienceFit {
    let request = RequestFeatures::new(input.user, input.activity, input.context);
    // Every scalar is written; only the one-hot blocks need clearing.
    row[..schema::SCALARS].fill(0.0);
    write_row(&request, input.session, input.stats, row).fit
}

/// The per-candidate part of [`extract`]: the row of `session` for the request's user, written
/// into `out` (bit for bit the row [`extract`] writes; a property test checks it).
#[inline]
pub fn extract_candidate(
    request: &RequestFeatures<'_>,
    session: &LiveSession,
    stats: &LiveStats,
    out: &mut CandidateRow,
) -> Extracted {
    if let Some(set) = out.set.take() {
        for i in set {
            out.row[usize::from(i)] = 0.0;
        }
    }
    let extracted = write_row(request, session, stats, &mut out.row);
    out.set = Some(extracted.active);
    extracted
}

/// Writes every position of `row` but the zeros below `SCALARS`, which it expects to find there.
fn write_row(request: &RequestFeatures<'_>, session: &LiveSession, stats: &LiveStats, row: &mut Row) -> Extracted {
    let RequestFeatures { user, context, .. } = *request;

    let age = user.age_band.index();
    let gender = user.gender.index();
    let category = session.category.index();
    let price = session.price_band.index();
    let active: Active = [
        (schema::AGE + age) as u16,
        (schema::GENDER + gender) as u16,
        (schema::SURFACE + context.surface.index()) as u16,
        (schema::CATEGORY + category) as u16,
        (schema::PRICE + price) as u16,
        (schema::AGE_X_CATEGORY + age * Category::COUNT + category) as u16,
        (schema::GENDER_X_CATEGORY + gender * Category::COUNT + category) as u16,
        (schema::AGE_X_PRICE + age * PriceBand::COUNT + price) as u16,
        (schema::FIT_X_CATEGORY + category) as u16,
    ];
    for &i in &active[..8] {
        row[usize::from(i)] = 1.0;
    }

    let fit = audience::fit(user, &session.target);
    let overall = fit.overall();
    row[schema::FIT_X_CATEGORY + category] = overall;
    row[scalar::LANGUAGE_MATCH] = match_value(&user.language, |l| l.eq_ignore_ascii_case(&session.language));
    row[scalar::REGION_MATCH] = match_value(&user.region, |r| audience::region_contains(&session.region, r));
    row[scalar::FIT_AGE] = fit.age;
    row[scalar::FIT_GENDER] = fit.gender;
    row[scalar::FIT_REGION] = fit.region;
    row[scalar::FIT_INTERESTS] = fit.interests;
    row[scalar::FIT_OVERALL] = overall;
    row[scalar::FIT_DECLARED] = f32::from(fit.declared) / 4.0;
    row[scalar::FIT_UNKNOWN] = if fit.declared == 0 { 0.0 } else { f32::from(fit.unknown) / f32::from(fit.declared) };
    row[scalar::INTEREST_IN_CATEGORY] =
        f32::from(u8::from(user.interests.iter().any(|i| i == session.category.name())));

    let impressions = stats.impressions as f32;
    let views = stats.views as f32;
    let purchases = stats.purchases as f32;
    row[scalar::LOG_IMPRESSIONS] = ln_one_plus(impressions);
    row[scalar::LOG_VIEW_RATE] = ((views + 1.0) / (impressions + 10.0)).min(1.0).ln();
    row[scalar::LOG_PURCHASE_PER_VIEW] = ((purchases + 0.4) / (views + 20.0)).min(1.0).ln();
    row[scalar::LOG_PURCHASE_PER_IMPRESSION] = ((purchases + 0.2) / (impressions + 100.0)).min(1.0).ln();
    row[scalar::VIEW_LOGIT] = logit(views, impressions, 1.0, 9.0);
    row[scalar::LOG_WATCH_PER_VIEW] = ln_one_plus(stats.watch_seconds.max(0.0) as f32 / (views + 1.0));
    row[scalar::INTERACTION_RATE] = ((stats.interactions as f32 + 1.0) / (views + 10.0)).min(1.0);
    row[scalar::RETURN_RATE] = ((stats.returns as f32 + 0.5) / (purchases + 5.0)).min(1.0);
    row[scalar::HIDE_RATE] = ((stats.hides as f32 + 0.5) / (impressions + 50.0)).min(1.0);
    row[scalar::ON_TARGET_SHARE] = (stats.on_target_views as f32 + 1.0) / (stats.known_views as f32 + 2.0);
    row[scalar::COLD] = f32::from(u8::from(stats.impressions < 200));
    let minutes_live = (context.time_ms - session.start_time_ms).max(0) as f32 / 60_000.0;
    row[scalar::LOG_MINUTES_LIVE] = ln_one_plus(minutes_live);
    let t = context.time_ms;
    let w = stats.windows.at(t);
    let windowed = |c: usize, window: usize| w[c][window];
    row[scalar::LOG_IMPRESSIONS_5M] = ln_one_plus(windowed(counter::IMPRESSIONS, 1));
    for (window, slot) in [(0, scalar::LOG_VIEW_RATE_1M), (1, scalar::LOG_VIEW_RATE_5M), (2, scalar::LOG_VIEW_RATE_1H)]
    {
        let rate = (windowed(counter::VIEWS, window) + 1.0) / (windowed(counter::IMPRESSIONS, window) + 10.0);
        row[slot] = rate.min(1.0).ln();
    }
    for (window, slot) in [(1, scalar::LOG_PURCHASE_RATE_5M), (2, scalar::LOG_PURCHASE_RATE_1H)] {
        let rate = (windowed(counter::PURCHASES, window) + 0.2) / (windowed(counter::IMPRESSIONS, window) + 100.0);
        row[slot] = rate.min(1.0).ln();
    }
    row[scalar::LOG_WATCH_PER_VIEW_5M] =
        ln_one_plus(windowed(counter::WATCH_SECONDS, 1).max(0.0) / (windowed(counter::VIEWS, 1) + 1.0));
    let seg_views = stats.segment_views[request.segment] as f32;
    let n = SEGMENTS as f32;
    row[scalar::SEGMENT_VIEW_LIFT] = (n * (seg_views + 1.0) / (stats.profiled_views() as f32 + n)).ln();
    // Who buys here: the user's segment, age band and gender against the session's viewers.
    let per_view = (purchases + 0.4) / (views + 20.0);
    let lift = |bought: u32, viewed: u32| {
        ((bought as f32 + PURCHASE_LIFT_PRIOR * per_view) / ((viewed as f32 + PURCHASE_LIFT_PRIOR) * per_view)).ln()
    };
    let (seg, genders) = (request.segment, Gender::COUNT);
    let (age_band, gender) = (seg / genders, seg % genders);
    let SegmentSums { band_views, band_bought, gender_views, gender_bought, buyers, buyer_age_sum } =
        SegmentSums::of(stats, age_band, gender);
    row[scalar::SEGMENT_PURCHASE_LIFT] = lift(stats.segment_purchases[seg], stats.segment_views[seg]);
    row[scalar::AGE_PURCHASE_LIFT] = lift(band_bought, band_views);
    row[scalar::GENDER_PURCHASE_LIFT] = lift(gender_bought, gender_views);
    // How far the user is from the session's buyers' ages (bands of known age only).
    let (gap, gap_squared) = if buyers > 0 && age_band > 0 {
        let w = buyers as f32 / (buyers as f32 + 2.0);
        let d = (AGE_BAND_MIDDLES[age_band] - buyer_age_sum / buyers as f32) / 10.0;
        (w * d.abs(), w * d * d)
    } else {
        (0.0, 0.0)
    };
    row[scalar::BUYER_AGE_GAP] = gap;
    row[scalar::BUYER_AGE_GAP_SQUARED] = gap_squared;
    let credit =
        learned::credit(&session.target, &fit, user.age_band, user.gender, stats.segment_purchases[seg], buyers);
    row[scalar::TARGETING_CREDIT] = credit;
    row[scalar::USER_CATEGORY_AFFINITY] = request.category_affinity[category];
    row[scalar::USER_CATEGORY_SHARE] = request.category_share[category];
    row[scalar::USER_LOG_ACTIVITY] = request.user_log_activity;
    row[scalar::USER_LOG_VIEW_RATE] = request.user_log_view_rate;
    row[scalar::USER_LOG_IMPRESSIONS] = request.user_log_impressions;
    row[scalar::USER_VIEW_LOGIT] = request.user_view_logit;
    row[scalar::USER_CATEGORY_VIEW_LIFT] = request.category_view_lift[category];
    row[scalar::USER_LOG_PURCHASE_PER_VIEW] = request.user_log_purchase_per_view;
    row[scalar::USER_RETURN_RATE] = request.user_return_rate;
    row[scalar::USER_PRICE_BAND_VIEW_LIFT] = request.price_view_lift[price];
    row[scalar::USER_PRICE_BAND_PURCHASE_LIFT] = request.price_purchase_lift[price];

    row[scalar::HOUR_SIN] = request.hour_sin;
    row[scalar::HOUR_COS] = request.hour_cos;
    debug_assert!(row.iter().all(|v| v.is_finite()), "non-finite feature for session {}", session.session_id);
    debug_assert!(
        row[..schema::SCALARS].iter().enumerate().all(|(i, v)| *v == 0.0 || active.contains(&(i as u16))),
        "a non-zero below SCALARS is missing from the active positions"
    );
    Extracted { fit, active, credit }
}

/// A session's views and purchases summed over the segments of the user's age band and over
/// those of the user's gender, and its buyers of known age with the sum of their ages (each band's
/// purchases at the band's middle age); the counts saturate at `u32::MAX`.
#[derive(Debug, PartialEq)]
struct SegmentSums {
    band_views: u32,
    band_bought: u32,
    gender_views: u32,
    gender_bought: u32,
    buyers: u32,
    buyer_age_sum: f32,
}

impl SegmentSums {
    /// Segments are laid out age band by age band, `Gender::COUNT` to a band
    /// (`domain::segment`). Sums are taken in u64 and saturated once, which equals saturating at
    /// every step for counts ≥ 0; nothing goes through an array in memory (a read-modify-write
    /// chain on one took a quarter of the extractor's time, and reading back an array written
    /// element by element stalled).
    fn of(stats: &LiveStats, age_band: usize, gender: usize) -> Self {
        let genders = Gender::COUNT;
        let saturated = |sum: u64| u32::try_from(sum).unwrap_or(u32::MAX);
        let sum = |counts: &[u32]| counts.iter().map(|&c| u64::from(c)).sum::<u64>();
        let band = |counts: &[u32; SEGMENTS], b: usize| saturated(sum(&counts[b * genders..(b + 1) * genders]));
        let (mut gender_views, mut gender_bought, mut buyers, mut buyer_age_sum) = (0u64, 0u64, 0u64, 0f32);
        for (b, middle) in AGE_BAND_MIDDLES.iter().enumerate() {
            gender_views += u64::from(stats.segment_views[b * genders + gender]);
            gender_bought += u64::from(stats.segment_purchases[b * genders + gender]);
            if b > 0 {
                let bought = band(&stats.segment_purchases, b);
                buyers += u64::from(bought);
                buyer_age_sum += bought as f32 * middle;
            }
        }
        SegmentSums {
            band_views: band(&stats.segment_views, age_band),
            band_bought: band(&stats.segment_purchases, age_band),
            gender_views: saturated(gender_views),
            gender_bought: saturated(gender_bought),
            buyers: saturated(buyers),
            buyer_age_sum,
        }
    }
}

/// The middle of each age band's range (`AgeBand::range`; 65+ taken as 65 to 90), by index;
/// 0 for unknown.
const AGE_BAND_MIDDLES: [f32; AgeBand::COUNT] = [0.0, 15.0, 21.0, 29.5, 39.5, 49.5, 59.5, 77.5];

/// Impressions of prior weight (at the user's own view rate) in the user's category view lift.
const USER_LIFT_PRIOR: f32 = 5.0;

/// Views of prior weight (at the session's own purchases per view) in the purchase lifts.
const PURCHASE_LIFT_PRIOR: f32 = 20.0;

/// ln(1 + x) for x ≥ 0, as ln of the rounded sum: within 2⁻²⁴ (absolute) of the exact value, and
/// about twice as fast as libm's `log1pf` on this path, which takes five of these per candidate.
/// For counts below 2²⁴ the sum is exact. Features are ln(1 + a count or a rate), where an absolute
/// error far below the model's resolution is no loss, and the one extractor keeps training and
/// serving equal bit for bit.
#[inline]
fn ln_one_plus(x: f32) -> f32 {
    (1.0 + x).ln()
}

/// ln((hits + a) / (trials − hits + b)): the log-odds of a rate smoothed by a Beta(a, b) prior.
/// Hits above trials (a view without a recorded impression) count as no misses.
fn logit(hits: f32, trials: f32, a: f32, b: f32) -> f32 {
    let hits = hits.max(0.0);
    ((hits + a) / ((trials - hits).max(0.0) + b)).ln()
}

/// 1 when `value` is known and `matches`, 0 when known and not, 0.5 when unknown (empty).
fn match_value(value: &str, matches: impl Fn(&str) -> bool) -> f32 {
    if value.is_empty() { 0.5 } else { f32::from(u8::from(matches(value))) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AgeBand, Gender, SessionStatus, Surface, TargetAudience};

    #[test]
    fn age_band_middles_are_the_middles_of_the_bands() {
        for band in AgeBand::ALL {
            let expected = band.range().map_or(0.0, |(lo, hi)| (lo + hi) as f32 / 2.0);
            assert_eq!(AGE_BAND_MIDDLES[band.index()], expected, "{band:?}");
        }
    }

    /// The band and gender sums equal a segment-by-segment loop with saturating adds (the
    /// extractor's earlier form), at ordinary counts and at counts that saturate.
    #[test]
    fn segment_sums_equal_saturating_adds_segment_by_segment() {
        let reference = |stats: &LiveStats, age_band: usize, gender: usize| {
            let (mut band_views, mut band_bought, mut gender_views, mut gender_bought) = (0u32, 0u32, 0u32, 0u32);
            let mut bought_by_band = [0u32; AgeBand::COUNT];
            for (s, (&viewed, &bought)) in stats.segment_views.iter().zip(&stats.segment_purchases).enumerate() {
                let (b, g) = (s / Gender::COUNT, s % Gender::COUNT);
                if b == age_band {
                    band_views = band_views.saturating_add(viewed);
                    band_bought = band_bought.saturating_add(bought);
                }
                if g == gender {
                    gender_views = gender_views.saturating_add(viewed);
                    gender_bought = gender_bought.saturating_add(bought);
                }
                bought_by_band[b] = bought_by_band[b].saturating_add(bought);
            }
            let (mut buyers, mut buyer_age_sum) = (0u32, 0f32);
            for (n, middle) in bought_by_band.iter().zip(AGE_BAND_MIDDLES).skip(1) {
                buyers = buyers.saturating_add(*n);
                buyer_age_sum += *n as f32 * middle;
            }
            SegmentSums { band_views, band_bought, gender_views, gender_bought, buyers, buyer_age_sum }
        };
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |scale: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % scale) as u32
        };
        for scale in [10, 1_000_000, 1 << 31, 1 << 32] {
            for _ in 0..50 {
                let mut stats = LiveStats::default();
                for s in 0..SEGMENTS {
                    stats.segment_views[s] = next(scale);
                    stats.segment_purchases[s] = next(scale);
                }
                for age_band in 0..AgeBand::COUNT {
                    for gender in 0..Gender::COUNT {
                        let got = SegmentSums::of(&stats, age_band, gender);
                        let want = reference(&stats, age_band, gender);
                        assert_eq!(got.buyer_age_sum.to_bits(), want.buyer_age_sum.to_bits(), "scale {scale}");
                        assert_eq!(got, want, "scale {scale}");
                    }
                }
            }
        }
        let full =
            LiveStats { segment_views: [u32::MAX; SEGMENTS], segment_purchases: [7; SEGMENTS], ..Default::default() };
        assert_eq!(SegmentSums::of(&full, 3, 1).band_views, u32::MAX);
        assert_eq!(SegmentSums::of(&full, 3, 1).band_bought, 28);
        assert_eq!(SegmentSums::of(&full, 3, 1).buyers, 7 * 28);
    }

    #[test]
    fn who_buys_features_match_hand_computed_values() {
        let user = UserProfile { age_band: AgeBand::A25To34, gender: Gender::Female, ..Default::default() };
        let at = |band: AgeBand, gender: Gender| segment(&UserProfile { age_band: band, gender, ..Default::default() });
        let mut stats = LiveStats { views: 100, purchases: 4, ..Default::default() };
        // The user's segment: 20 views, 3 purchases; women 45-54: 10 views, 1 purchase; men
        // 25-34: 30 views, none (they watch and do not buy).
        for (s, v, p) in [
            (at(AgeBand::A25To34, Gender::Female), 20, 3),
            (at(AgeBand::A45To54, Gender::Female), 10, 1),
            (at(AgeBand::A25To34, Gender::Male), 30, 0),
        ] {
            stats.segment_views[s] = v;
            stats.segment_purchases[s] = p;
        }
        let ctx = RequestContext { time_ms: 2_000_000, surface: Surface::HomeFeed };
        let activity = UserActivity::default();
        let mut out = CandidateRow::new();
        extract_candidate(&RequestFeatures::new(&user, &activity, &ctx), &session(), &stats, &mut out);
        // r = (4 + 0.4) / (100 + 20); lift = ln((bought + 20 r) / ((viewed + 20) r)).
        let r = 4.4f32 / 120.0;
        let lift = |bought: f32, viewed: f32| ((bought + 20.0 * r) / ((viewed + 20.0) * r)).ln();
        let close = |got: f32, want: f32| (got - want).abs() < 1e-5;
        assert!(close(out.row()[scalar::SEGMENT_PURCHASE_LIFT], lift(3.0, 20.0)));
        assert!(close(out.row()[scalar::AGE_PURCHASE_LIFT], lift(3.0, 50.0)));
        assert!(close(out.row()[scalar::GENDER_PURCHASE_LIFT], lift(4.0, 30.0)));
        assert!(
            out.row()[scalar::SEGMENT_PURCHASE_LIFT] > 0.0,
            "the user's segment buys more than the viewers overall"
        );
        // Buyers: three aged 29.5 (25-34), one 49.5 (45-54): mean 34.5, the user 29.5 — half a
        // decade apart, weighted by 4 / (4 + 2).
        assert!(close(out.row()[scalar::BUYER_AGE_GAP], 4.0 / 6.0 * 0.5));
        assert!(close(out.row()[scalar::BUYER_AGE_GAP_SQUARED], 4.0 / 6.0 * 0.25));

        // A man of 25-34 is in the segment that watches without buying.
        let man = UserProfile { gender: Gender::Male, ..user.clone() };
        extract_candidate(&RequestFeatures::new(&man, &activity, &ctx), &session(), &stats, &mut out);
        assert!(close(out.row()[scalar::SEGMENT_PURCHASE_LIFT], lift(0.0, 30.0)));
        assert!(out.row()[scalar::SEGMENT_PURCHASE_LIFT] < 0.0);
        // Unknown age: no gap.
        let unknown = UserProfile { age_band: AgeBand::Unknown, ..user.clone() };
        extract_candidate(&RequestFeatures::new(&unknown, &activity, &ctx), &session(), &stats, &mut out);
        assert_eq!((out.row()[scalar::BUYER_AGE_GAP], out.row()[scalar::BUYER_AGE_GAP_SQUARED]), (0.0, 0.0));
    }

    fn session() -> LiveSession {
        LiveSession {
            session_id: "s".into(),
            host_id: "h".into(),
            category: Category::Sportswear,
            price_band: PriceBand::Mid,
            language: "en".into(),
            region: "US".into(),
            start_time_ms: 1_000_000,
            status: SessionStatus::Live,
            end_time_ms: 0,
            target: TargetAudience { min_age: 20, max_age: 30, genders: vec![Gender::Female], ..Default::default() },
        }
    }

    #[test]
    fn user_category_features_follow_the_candidates_category() {
        // Computed once per request for every category; each candidate must read its own.
        let user = UserProfile::default();
        let hour = 3_600_000;
        let activity = UserActivity {
            at_ms: 1_000_000,
            by_category: std::array::from_fn(|c| match c {
                c if c == Category::Sportswear.index() => 6.0,
                c if c == Category::Beauty.index() => -2.0,
                _ => 0.0,
            }),
            ..Default::default()
        };
        let ctx = RequestContext { time_ms: 1_000_000 + hour, surface: Surface::HomeFeed };
        let request = RequestFeatures::new(&user, &activity, &ctx);
        let decay = activity.decay_to(ctx.time_ms);
        assert!(decay > 0.0 && decay < 1.0);
        let total = 8.0 * decay;
        let mut out = CandidateRow::new();
        for (category, raw) in [(Category::Sportswear, 6.0f32), (Category::Beauty, -2.0), (Category::Toys, 0.0)] {
            let s = LiveSession { category, ..session() };
            extract_candidate(&request, &s, &LiveStats::default(), &mut out);
            let a = raw * decay;
            let close = |got: f32, want: f32| (got - want).abs() < 1e-6;
            assert!(close(out.row()[scalar::USER_CATEGORY_AFFINITY], a.signum() * a.abs().ln_1p()), "{category:?}");
            assert!(close(out.row()[scalar::USER_CATEGORY_SHARE], a / (total + 1.0)), "{category:?}");
            assert!(close(out.row()[scalar::USER_LOG_ACTIVITY], total.ln_1p()), "{category:?}");
        }
    }

    #[test]
    fn user_purchase_features_tell_browsers_and_bargain_hunters() {
        use crate::domain::{Event, EventKind};
        let ctx = RequestContext { time_ms: 10_000, surface: Surface::HomeFeed };
        let event = |kind, time_ms| Event {
            event_id: String::new(),
            kind,
            user_id: String::new(),
            session_id: String::new(),
            time_ms,
            ranking_id: String::new(),
            position: 0,
            watch_seconds: 0.0,
            amount: 0.0,
            order_id: String::new(),
        };
        // Twenty budget and twenty luxury sessions shown and viewed; one user never buys, the
        // other buys four budget sessions and returns one.
        let (mut browser, mut bargain) = (UserActivity::default(), UserActivity::default());
        for i in 0..40 {
            let band = if i % 2 == 0 { PriceBand::Budget } else { PriceBand::Luxury };
            for a in [&mut browser, &mut bargain] {
                a.apply(Category::Home, band, &event(EventKind::Impression, i));
                a.apply(Category::Home, band, &event(EventKind::View, i));
            }
            if i % 10 == 0 {
                bargain.apply(Category::Home, band, &event(EventKind::Purchase, i));
            }
        }
        bargain.apply(Category::Home, PriceBand::Budget, &event(EventKind::Return, 50));
        let user = UserProfile::default();
        let row = |activity: &UserActivity, band: PriceBand| {
            let mut out = CandidateRow::new();
            let s = LiveSession { price_band: band, ..session() };
            extract_candidate(&RequestFeatures::new(&user, activity, &ctx), &s, &LiveStats::default(), &mut out);
            *out.row()
        };
        let close = |got: f32, want: f32| (got - want).abs() < 1e-4;
        let (b, g) = (row(&browser, PriceBand::Budget), row(&bargain, PriceBand::Budget));
        assert!(
            close(b[scalar::USER_LOG_PURCHASE_PER_VIEW], (0.2f32 / 45.0).ln()),
            "{}",
            b[scalar::USER_LOG_PURCHASE_PER_VIEW]
        );
        assert!(close(g[scalar::USER_LOG_PURCHASE_PER_VIEW], (4.2f32 / 45.0).ln()));
        assert!(close(g[scalar::USER_RETURN_RATE], 1.5 / 9.0));
        assert!(close(b[scalar::USER_RETURN_RATE], 0.1));
        // q = 4.2 / 45; budget: ln(((4 + 5q) / (20 + 5)) / q) > 0; luxury: no purchases, < 0.
        let q = 4.2f32 / 45.0;
        assert!(close(g[scalar::USER_PRICE_BAND_PURCHASE_LIFT], ((4.0 + 5.0 * q) / (25.0 * q)).ln()));
        assert!(row(&bargain, PriceBand::Luxury)[scalar::USER_PRICE_BAND_PURCHASE_LIFT] < 0.0);
        // Both viewed everything they were shown of either band: the view lift is the same.
        assert!(close(b[scalar::USER_PRICE_BAND_VIEW_LIFT], g[scalar::USER_PRICE_BAND_VIEW_LIFT]));
        // A band the user was never shown: no lift either way.
        assert_eq!(row(&bargain, PriceBand::Mid)[scalar::USER_PRICE_BAND_PURCHASE_LIFT], 0.0);
        assert_eq!(row(&bargain, PriceBand::Mid)[scalar::USER_PRICE_BAND_VIEW_LIFT], 0.0);
    }

    #[test]
    fn one_hots_crosses_and_fit() {
        let user = UserProfile {
            age_band: AgeBand::A25To34,
            gender: Gender::Female,
            region: "US-NY".into(),
            language: "en".into(),
            interests: vec!["sportswear".into()],
        };
        let s = session();
        let ctx = RequestContext { time_ms: 1_000_000 + 30 * 60_000, surface: Surface::HomeFeed };
        let mut row = [f32::NAN; NUM_FEATURES];
        let fit = extract(
            &FeatureInput {
                user: &user,
                activity: &Default::default(),
                session: &s,
                stats: &LiveStats::default(),
                context: &ctx,
            },
            &mut row,
        );
        assert!(row.iter().all(|v| v.is_finite()));
        assert_eq!(row[schema::AGE + AgeBand::A25To34.index()], 1.0);
        let cross = schema::AGE_X_CATEGORY + AgeBand::A25To34.index() * Category::COUNT + Category::Sportswear.index();
        assert_eq!(row[cross], 1.0);
        assert_eq!(row[scalar::REGION_MATCH], 1.0);
        assert_eq!(row[scalar::INTEREST_IN_CATEGORY], 1.0);
        assert!((row[scalar::FIT_AGE] - 0.6).abs() < 1e-6);
        assert_eq!(row[scalar::FIT_OVERALL], fit.overall());
        assert!((row[scalar::LOG_MINUTES_LIVE] - 31f32.ln()).abs() < 1e-5);
        // exactly the one-hot blocks carry 1s: 5 one-hots + 3 crosses
        let ones = row[..schema::FIT_X_CATEGORY].iter().filter(|v| **v == 1.0).count();
        assert_eq!(ones, 8);
    }
}
