//! A user's recent engagement, decayed over days: per category ("what this user is into now"), how
//! often this user views what they are shown overall, and per category (the impressions and
//! views behind the user's own view rate of each category: `features::extract` turns them into
//! a Beta-smoothed lift over the user's overall rate, a per-user term that moves with every
//! ingested event, between retrains).
//!
//! What a user buys is kept beside what they watch: purchases and returns overall, and views and
//! purchases per price band. From them `features::extract` tells a user who watches and never
//! buys (a purchase rate per view far under the prior), one who returns much of what they buy,
//! and one who buys only cheap things (a price band's purchases per view over the user's own
//! rate); impressions per price band give the same lift for views. Like the rest, they move with
//! every ingested event.

use serde::{Deserialize, Serialize};

use super::{Category, Event, EventKind, PriceBand, UnixMs};

/// Half-life of category affinity: 3 days.
pub const AFFINITY_HALF_LIFE_MS: i64 = 3 * 86_400_000;

/// Decayed engagement score per category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UserActivity {
    /// Reference time of `by_category`, ms.
    pub at_ms: UnixMs,
    pub by_category: [f32; Category::COUNT],
    /// Decayed count of impressions shown to the user, at `at_ms`.
    #[serde(default)]
    pub impressions: f32,
    /// Decayed count of views by the user, at `at_ms`.
    #[serde(default)]
    pub views: f32,
    /// Decayed impressions shown to the user, per category of the session, at `at_ms`.
    #[serde(default)]
    pub category_impressions: [f32; Category::COUNT],
    /// Decayed views by the user, per category of the session, at `at_ms`.
    #[serde(default)]
    pub category_views: [f32; Category::COUNT],
    /// Decayed purchases by the user, at `at_ms`.
    #[serde(default)]
    pub purchases: f32,
    /// Decayed returns by the user, at `at_ms`.
    #[serde(default)]
    pub returns: f32,
    /// Decayed impressions shown to the user, per price band of the session, at `at_ms`.
    #[serde(default)]
    pub price_impressions: [f32; PriceBand::COUNT],
    /// Decayed views by the user, per price band of the session, at `at_ms`.
    #[serde(default)]
    pub price_views: [f32; PriceBand::COUNT],
    /// Decayed purchases by the user, per price band of the session, at `at_ms`.
    #[serde(default)]
    pub price_purchases: [f32; PriceBand::COUNT],
}

/// How much an event says about the user's interest in the session's category.
pub fn engagement_weight(event: &Event) -> f32 {
    match event.kind {
        EventKind::Impression => 0.0,
        EventKind::View => 1.0,
        EventKind::Watch => (event.watch_seconds as f32 / 60.0).min(5.0),
        EventKind::Like | EventKind::Comment | EventKind::Share => 0.5,
        EventKind::Follow | EventKind::AddToCart => 2.0,
        EventKind::Purchase => 5.0,
        EventKind::Return => -3.0,
        EventKind::Hide => -2.0,
    }
}

fn factor(dt_ms: i64) -> f32 {
    super::window::decay(-(dt_ms.max(0) as f32) / AFFINITY_HALF_LIFE_MS as f32)
}

impl UserActivity {
    /// Adds an event on a session of `category` and `price_band`.
    pub fn apply(&mut self, category: Category, price_band: PriceBand, event: &Event) {
        let w = engagement_weight(event);
        let counted = matches!(event.kind, EventKind::Impression | EventKind::View);
        if w == 0.0 && !counted {
            return;
        }
        if event.time_ms > self.at_ms {
            let f = factor(event.time_ms - self.at_ms);
            self.by_category.iter_mut().for_each(|v| *v *= f);
            self.impressions *= f;
            self.views *= f;
            self.category_impressions.iter_mut().for_each(|v| *v *= f);
            self.category_views.iter_mut().for_each(|v| *v *= f);
            self.purchases *= f;
            self.returns *= f;
            self.price_impressions.iter_mut().for_each(|v| *v *= f);
            self.price_views.iter_mut().for_each(|v| *v *= f);
            self.price_purchases.iter_mut().for_each(|v| *v *= f);
            self.at_ms = event.time_ms;
        }
        let f = factor(self.at_ms - event.time_ms);
        let (c, p) = (category.index(), price_band.index());
        self.by_category[c] += w * f;
        match event.kind {
            EventKind::Impression => {
                self.impressions += f;
                self.category_impressions[c] += f;
                self.price_impressions[p] += f;
            }
            EventKind::View => {
                self.views += f;
                self.category_views[c] += f;
                self.price_views[p] += f;
            }
            EventKind::Purchase => {
                self.purchases += f;
                self.price_purchases[p] += f;
            }
            EventKind::Return => self.returns += f,
            _ => {}
        }
    }

    /// The factor that decays the stored scores to `t_ms` (1 for times before `at_ms`).
    pub fn decay_to(&self, t_ms: UnixMs) -> f32 {
        factor(t_ms - self.at_ms)
    }

    /// Sum of absolute stored (undecayed) scores.
    pub fn raw_total(&self) -> f32 {
        self.by_category.iter().map(|v| v.abs()).sum::<f32>()
    }

    /// Decayed score of `category` at `t_ms` (never extrapolated backwards).
    pub fn affinity(&self, category: Category, t_ms: UnixMs) -> f32 {
        self.by_category[category.index()] * self.decay_to(t_ms)
    }

    /// Sum of absolute decayed scores at `t_ms`.
    pub fn total(&self, t_ms: UnixMs) -> f32 {
        self.raw_total() * self.decay_to(t_ms)
    }
}
