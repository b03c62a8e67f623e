//! Domain values as wire messages: the `From` conversions that the server's handlers and every
//! client (`fitrank call`, the lab's simulator, tests) share. They cannot fail; the other
//! direction validates and names the failing field, and belongs to the server
//! ([`crate::api::convert`]).

use super::v1 as pb;
use crate::domain::{
    AgeBand, Category, EventKind, Gender, GroupShare, LiveSession, ObservedAudience, PriceBand, SessionStatus,
};
use crate::experiment::{ExperimentDef, Kind, Status};
use crate::model::Manifest;

impl From<Gender> for pb::Gender {
    fn from(g: Gender) -> Self {
        match g {
            Gender::Unknown => pb::Gender::Unspecified,
            Gender::Female => pb::Gender::Female,
            Gender::Male => pb::Gender::Male,
            Gender::Other => pb::Gender::Other,
        }
    }
}

impl From<Category> for pb::Category {
    fn from(c: Category) -> Self {
        match c {
            Category::Fashion => pb::Category::Fashion,
            Category::Sportswear => pb::Category::Sportswear,
            Category::Beauty => pb::Category::Beauty,
            Category::Jewelry => pb::Category::Jewelry,
            Category::Electronics => pb::Category::Electronics,
            Category::Home => pb::Category::Home,
            Category::Food => pb::Category::Food,
            Category::Toys => pb::Category::Toys,
            Category::Collectibles => pb::Category::Collectibles,
            Category::Health => pb::Category::Health,
            Category::Outdoor => pb::Category::Outdoor,
            Category::Other => pb::Category::Other,
        }
    }
}

impl From<PriceBand> for pb::PriceBand {
    fn from(p: PriceBand) -> Self {
        match p {
            PriceBand::Budget => pb::PriceBand::Budget,
            PriceBand::Mid => pb::PriceBand::Mid,
            PriceBand::Premium => pb::PriceBand::Premium,
            PriceBand::Luxury => pb::PriceBand::Luxury,
        }
    }
}

impl From<AgeBand> for pb::AgeBand {
    fn from(a: AgeBand) -> Self {
        match a {
            AgeBand::Unknown => pb::AgeBand::Unspecified,
            AgeBand::A13To17 => pb::AgeBand::AgeBand1317,
            AgeBand::A18To24 => pb::AgeBand::AgeBand1824,
            AgeBand::A25To34 => pb::AgeBand::AgeBand2534,
            AgeBand::A35To44 => pb::AgeBand::AgeBand3544,
            AgeBand::A45To54 => pb::AgeBand::AgeBand4554,
            AgeBand::A55To64 => pb::AgeBand::AgeBand5564,
            AgeBand::A65Plus => pb::AgeBand::AgeBand65Plus,
        }
    }
}

impl From<EventKind> for pb::EventType {
    fn from(k: EventKind) -> Self {
        match k {
            EventKind::Impression => pb::EventType::Impression,
            EventKind::View => pb::EventType::View,
            EventKind::Watch => pb::EventType::Watch,
            EventKind::Like => pb::EventType::Like,
            EventKind::Comment => pb::EventType::Comment,
            EventKind::Share => pb::EventType::Share,
            EventKind::Follow => pb::EventType::Follow,
            EventKind::AddToCart => pb::EventType::AddToCart,
            EventKind::Purchase => pb::EventType::Purchase,
            EventKind::Return => pb::EventType::Return,
            EventKind::Hide => pb::EventType::Hide,
        }
    }
}

impl From<&LiveSession> for pb::LiveSession {
    fn from(s: &LiveSession) -> Self {
        pb::LiveSession {
            session_id: s.session_id.clone(),
            host_id: s.host_id.clone(),
            category: pb::Category::from(s.category) as i32,
            price_band: pb::PriceBand::from(s.price_band) as i32,
            language: s.language.clone(),
            region: s.region.clone(),
            start_time_unix_ms: s.start_time_ms,
            status: match s.status {
                SessionStatus::Live => pb::SessionStatus::Live,
                SessionStatus::Scheduled => pb::SessionStatus::Scheduled,
                SessionStatus::Ended => pb::SessionStatus::Ended,
            } as i32,
            target: Some(pb::TargetAudience {
                min_age: s.target.min_age,
                max_age: s.target.max_age,
                genders: s.target.genders.iter().map(|g| pb::Gender::from(*g) as i32).collect(),
                regions: s.target.regions.clone(),
                interests: s.target.interests.clone(),
            }),
        }
    }
}

impl From<&Manifest> for pb::ModelInfo {
    fn from(manifest: &Manifest) -> Self {
        pb::ModelInfo {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            schema_hash: manifest.schema_hash.clone(),
            feature_count: manifest.feature_names.len() as u32,
            created_at: manifest.created_at.clone(),
            metrics: manifest.metrics.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            identity_buckets: manifest.identity_buckets,
            factor_dims: manifest.factor_dims,
            metrics_data: manifest.metrics_data.as_ref().map_or_else(String::new, |d| d.source.clone()),
            metrics_rows: manifest.metrics_data.as_ref().map_or(0, |d| d.rows),
            metrics_from_unix_ms: manifest.metrics_data.as_ref().map_or(0, |d| d.from_ms),
            metrics_to_unix_ms: manifest.metrics_data.as_ref().map_or(0, |d| d.to_ms),
            training_data: manifest.training.source.clone(),
            training_from_unix_ms: manifest.training.data_from_ms,
            training_to_unix_ms: manifest.training.data_to_ms,
            excluded_features: manifest.excluded_features.clone(),
        }
    }
}

impl From<&ExperimentDef> for pb::Experiment {
    fn from(e: &ExperimentDef) -> Self {
        pb::Experiment {
            name: e.name.clone(),
            kind: match e.kind {
                Kind::Ab => "ab",
                Kind::Interleave => "interleave",
            }
            .into(),
            layer: e.layer.clone(),
            salt: e.salt.clone(),
            range_start: e.range_start,
            range_end: e.range_end,
            coverage: e.coverage,
            control: e.control.clone(),
            arms: e
                .arms
                .iter()
                .map(|a| pb::ExperimentArm {
                    name: a.name.clone(),
                    weight: a.weight,
                    model: a.model.clone().unwrap_or_default(),
                    policy: Some(pb::PolicyOverride {
                        purchase_weight: a.policy.purchase_weight,
                        engage_weight: a.policy.engage_weight,
                        audience_fit_weight: a.policy.audience_fit_weight,
                        on_target_weight: a.policy.on_target_weight,
                        exploration_share: a.policy.exploration_share,
                    }),
                })
                .collect(),
            status: match e.status {
                Status::Running => "running",
                Status::Stopped => "stopped",
            }
            .into(),
        }
    }
}

impl From<&GroupShare> for pb::GroupShare {
    fn from(g: &GroupShare) -> Self {
        pb::GroupShare {
            age_band: pb::AgeBand::from(g.age_band) as i32,
            gender: pb::Gender::from(g.gender) as i32,
            share: g.share,
        }
    }
}

impl From<&ObservedAudience> for pb::ObservedAudience {
    fn from(o: &ObservedAudience) -> Self {
        pb::ObservedAudience {
            declared: o.declared.clone(),
            profiled_views: o.profiled_views,
            profiled_purchases: o.profiled_purchases,
            viewers_inside_share: o.viewers_inside_share,
            buyers_inside_share: o.buyers_inside_share,
            top_viewers: o.top_viewers.iter().map(pb::GroupShare::from).collect(),
            top_buyers: o.top_buyers.iter().map(pb::GroupShare::from).collect(),
            mismatch: o.mismatch.clone().unwrap_or_default(),
        }
    }
}
