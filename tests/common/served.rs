//! A small world for feature-log tests: four users, three sessions (A for women 20-30 in the US,
//! B for men 55-64, C untargeted), rankings at a chosen time, and events sent in batches.

use super::{TestServer, attrs, session, target};
use fitrank::proto::v1::{
    self as pb, catalog_service_client::CatalogServiceClient, event_service_client::EventServiceClient,
    ranking_service_client::RankingServiceClient,
};
use pb::{AgeBand, Gender};

/// A server whose feature log flushes every 20 ms.
pub async fn start() -> TestServer {
    TestServer::start_with(|c| c.feature_log.flush_interval_ms = 20).await
}

pub async fn catalog(server: &TestServer) {
    let mut catalog = CatalogServiceClient::new(server.channel().await);
    let users = vec![
        pb::User { user_id: "w1".into(), attributes: Some(attrs(AgeBand::AgeBand2534, Gender::Female, "US", "en")) },
        pb::User { user_id: "w2".into(), attributes: Some(attrs(AgeBand::AgeBand2534, Gender::Female, "US-NY", "en")) },
        pb::User { user_id: "w3".into(), attributes: Some(attrs(AgeBand::AgeBand1824, Gender::Female, "US", "en")) },
        pb::User { user_id: "m1".into(), attributes: Some(attrs(AgeBand::AgeBand5564, Gender::Male, "US", "en")) },
    ];
    catalog.upsert_users(pb::UpsertUsersRequest { users }).await.unwrap();
    let sessions = vec![
        session("A", Some(target(20, 30, &[Gender::Female], &["US"]))),
        session("B", Some(target(55, 64, &[Gender::Male], &[]))),
        session("C", None),
    ];
    catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions }).await.unwrap();
}

pub async fn rank_at(server: &TestServer, user: &str, time_ms: i64) -> pb::RankResponse {
    RankingServiceClient::new(server.channel().await)
        .rank(pb::RankRequest {
            user_id: user.into(),
            context: Some(pb::RequestContext { time_unix_ms: time_ms, surface: pb::Surface::HomeFeed as i32 }),
            candidate_session_ids: vec!["A".into(), "B".into(), "C".into()],
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

pub fn timed(mut e: pb::Event, ranking: &str, time_ms: i64) -> pb::Event {
    e.ranking_id = ranking.into();
    e.time_unix_ms = time_ms;
    e
}

pub async fn send(server: &TestServer, events: Vec<pb::Event>) -> pb::IngestResponse {
    EventServiceClient::new(server.channel().await)
        .ingest_batch(pb::IngestBatchRequest { events })
        .await
        .unwrap()
        .into_inner()
}
