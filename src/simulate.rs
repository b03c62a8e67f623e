//! A first live-commerce simulator: the generator's world (users, live sessions, hidden truth)
//! driving a running fitrank **only through its gRPC API**.
//!
//! Setup upserts the world's users and sessions. Each simulated feed request picks a user, calls
//! `Rank` on the live catalog, and plays the user's behaviour on the returned slots under the
//! hidden truth: slot `p` is looked at with probability 1 / (1 + p) (time-poor shoppers), a
//! looked-at slot is an impression, viewed with the truth's P(view), bought with P(buy | view).
//! The events go back through `IngestBatch`, so live statistics, the feature log and experiments
//! see them as they would see a real feed service.
//!
//! The scorecard counts, per experiment arm the service reported (or "none"), impressions,
//! views and purchases, and the purchases per 1,000 impressions. This is the simulator's first
//! step (issue 5 asks for baselines, an oracle, cold-start and on-target scorecards on top).

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use tonic::transport::Channel;

use crate::api::convert;
use crate::proto::v1::{
    self as pb, catalog_service_client::CatalogServiceClient, event_service_client::EventServiceClient,
    ranking_service_client::RankingServiceClient,
};
use crate::train::generator::{GeneratorConfig, World};

/// Settings of one simulation.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub world: GeneratorConfig,
    /// Feed requests to simulate.
    pub requests: usize,
    /// Slots shown per request.
    pub slots: u32,
    /// Seed of the users' behaviour (the world has its own).
    pub seed: u64,
}

/// Totals of one arm.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArmScore {
    pub rankings: u64,
    pub impressions: u64,
    pub views: u64,
    pub purchases: u64,
    pub purchases_per_1000_impressions: f64,
}

/// What a simulation measured, by "experiment/arm" ("none" outside experiments).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scorecard {
    pub requests: u64,
    pub arms: BTreeMap<String, ArmScore>,
}

type SimResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Upserts the world's users and sessions into the service.
pub async fn setup(channel: Channel, world: &World) -> SimResult<()> {
    let mut catalog = CatalogServiceClient::new(channel);
    for (k, chunk) in world.users.chunks(500).enumerate() {
        let users = chunk
            .iter()
            .enumerate()
            .map(|(i, u)| pb::User {
                user_id: format!("sim-u{}", k * 500 + i),
                attributes: Some(pb::UserAttributes {
                    age_band: convert::age_band_to_proto(u.age_band) as i32,
                    gender: convert::gender_to_proto(u.gender) as i32,
                    region: u.region.to_string(),
                    language: u.language.to_string(),
                    interests: u.interests.clone(),
                }),
            })
            .collect();
        catalog.upsert_users(pb::UpsertUsersRequest { users }).await?;
    }
    for chunk in world.sessions.chunks(500) {
        let sessions = chunk.iter().map(convert::session_to_proto).collect();
        catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions }).await?;
    }
    Ok(())
}

/// Simulates `options.requests` feed requests against the service behind `channel`.
pub async fn run(channel: Channel, world: &World, options: &SimOptions) -> SimResult<Scorecard> {
    let index: std::collections::HashMap<&str, usize> =
        world.sessions.iter().enumerate().map(|(i, s)| (s.session_id.as_str(), i)).collect();
    let mut ranking = RankingServiceClient::new(channel.clone());
    let mut events_client = EventServiceClient::new(channel);
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut card = Scorecard::default();
    let mut next_event = 0u64;
    for _ in 0..options.requests {
        let user = rng.gen_range(0..world.users.len());
        let user_id = format!("sim-u{user}");
        let r = ranking
            .rank(pb::RankRequest { user_id: user_id.clone(), limit: options.slots, ..Default::default() })
            .await?
            .into_inner();
        card.requests += 1;
        let arm_keys: Vec<String> = if r.experiments.is_empty() {
            vec!["none".into()]
        } else {
            r.experiments
                .iter()
                .map(|e| {
                    let arm = if e.arm.starts_with("team-draft:") { "interleaved" } else { e.arm.as_str() };
                    format!("{}/{arm}", e.experiment)
                })
                .collect()
        };
        let mut tally = ArmScore { rankings: 1, ..Default::default() };
        let mut events = Vec::new();
        let mut event = |kind: pb::EventType, session: &str, position: u32, amount: f64| {
            next_event += 1;
            pb::Event {
                event_id: format!("sim-{}-{next_event}", options.seed),
                r#type: kind as i32,
                user_id: user_id.clone(),
                session_id: session.to_owned(),
                ranking_id: r.ranking_id.clone(),
                position,
                amount,
                ..Default::default()
            }
        };
        for (p, item) in r.items.iter().enumerate() {
            if !rng.gen_bool(1.0 / (1.0 + p as f64)) {
                continue;
            }
            let Some(&s) = index.get(item.session_id.as_str()) else { continue };
            let (p_view, p_buy) = world.probs(s, user);
            tally.impressions += 1;
            events.push(event(pb::EventType::Impression, &item.session_id, p as u32, 0.0));
            if rng.gen_bool(f64::from(p_view)) {
                tally.views += 1;
                events.push(event(pb::EventType::View, &item.session_id, p as u32, 0.0));
                if rng.gen_bool(f64::from(p_buy)) {
                    tally.purchases += 1;
                    events.push(event(pb::EventType::Purchase, &item.session_id, p as u32, 25.0));
                }
            }
        }
        if !events.is_empty() {
            events_client.ingest_batch(pb::IngestBatchRequest { events }).await?;
        }
        for key in arm_keys {
            let a = card.arms.entry(key).or_default();
            a.rankings += tally.rankings;
            a.impressions += tally.impressions;
            a.views += tally.views;
            a.purchases += tally.purchases;
        }
    }
    for a in card.arms.values_mut() {
        a.purchases_per_1000_impressions = 1000.0 * a.purchases as f64 / a.impressions.max(1) as f64;
    }
    Ok(card)
}

impl Scorecard {
    /// A readable table.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} feed requests\n{:<28} {:>9} {:>11} {:>8} {:>9} {:>10}\n",
            self.requests, "arm", "rankings", "impressions", "views", "purchases", "buys/1k"
        );
        for (arm, a) in &self.arms {
            out += &format!(
                "{arm:<28} {:>9} {:>11} {:>8} {:>9} {:>10.2}\n",
                a.rankings, a.impressions, a.views, a.purchases, a.purchases_per_1000_impressions
            );
        }
        out
    }
}
