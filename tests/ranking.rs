//! Ranking through the real server: audience targeting decides the order.

mod common;

use common::{TestServer, attrs, session, target};
use fitrank::proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, catalog_service_client::CatalogServiceClient,
    ranking_service_client::RankingServiceClient,
};
use pb::{AgeBand, Gender};

async fn setup(server: &TestServer) {
    let mut catalog = CatalogServiceClient::new(server.channel().await);
    catalog
        .upsert_users(pb::UpsertUsersRequest {
            users: vec![
                pb::User {
                    user_id: "woman-28".into(),
                    attributes: Some(attrs(AgeBand::AgeBand2534, Gender::Female, "US-CA", "en")),
                },
                pb::User {
                    user_id: "man-58".into(),
                    attributes: Some(attrs(AgeBand::AgeBand5564, Gender::Male, "US-TX", "en")),
                },
            ],
        })
        .await
        .unwrap();
    catalog
        .upsert_sessions(pb::UpsertSessionsRequest {
            sessions: vec![
                // A: the brand wants women aged 20-30 in the US.
                session("A", Some(target(20, 30, &[Gender::Female], &["US"]))),
                // B: identical stream, targeted at men aged 55-64.
                session("B", Some(target(55, 64, &[Gender::Male], &[]))),
            ],
        })
        .await
        .unwrap();
}

async fn rank(server: &TestServer, user: &str, candidates: &[&str]) -> pb::RankResponse {
    RankingServiceClient::new(server.channel().await)
        .rank(pb::RankRequest {
            user_id: user.into(),
            candidate_session_ids: candidates.iter().map(|c| (*c).to_owned()).collect(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn order(r: &pb::RankResponse) -> Vec<&str> {
    r.items.iter().map(|i| i.session_id.as_str()).collect()
}

#[tokio::test]
async fn the_targeted_audience_gets_the_targeted_stream() {
    let server = TestServer::start().await;
    setup(&server).await;

    let woman = rank(&server, "woman-28", &["B", "A"]).await;
    assert_eq!(order(&woman), vec!["A", "B"], "{woman:?}");
    assert!(woman.items[0].audience_fit > 0.5 && woman.items[1].audience_fit == 0.0);
    assert!(woman.items[0].p_purchase > woman.items[1].p_purchase);
    assert_eq!(woman.model_version, "default/20261207-180000");
    assert_eq!(woman.ranking_id.len(), 32);

    let man = rank(&server, "man-58", &["A", "B"]).await;
    assert_eq!(order(&man), vec!["B", "A"], "{man:?}");
    assert_eq!(man.items[0].audience_fit, 1.0);

    for item in woman.items.iter().chain(&man.items) {
        assert!((0.0..=1.0).contains(&item.p_engage) && (0.0..=1.0).contains(&item.p_purchase));
        assert!(item.score.is_finite());
    }
    assert_ne!(woman.ranking_id, man.ranking_id);
}

#[tokio::test]
async fn inline_attributes_rank_unknown_users() {
    let server = TestServer::start().await;
    setup(&server).await;
    let r = RankingServiceClient::new(server.channel().await)
        .rank(pb::RankRequest {
            user_id: "never-stored".into(),
            user: Some(attrs(AgeBand::AgeBand5564, Gender::Male, "US", "en")),
            candidate_session_ids: vec!["A".into(), "B".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(order(&r), vec!["B", "A"]);
}

#[tokio::test]
async fn the_live_catalog_is_filtered_by_language_and_region_and_excludes_ended_sessions() {
    let server = TestServer::start().await;
    setup(&server).await;
    let mut catalog = CatalogServiceClient::new(server.channel().await);
    let mut german = session("DE-1", None);
    german.language = "de".into();
    german.region = "DE".into();
    let mut scheduled = session("later", None);
    scheduled.status = pb::SessionStatus::Scheduled as i32;
    catalog
        .upsert_sessions(pb::UpsertSessionsRequest { sessions: vec![german, scheduled, session("C", None)] })
        .await
        .unwrap();
    catalog.end_session(pb::EndSessionRequest { session_id: "C".into(), end_time_unix_ms: 0 }).await.unwrap();

    let r = rank(&server, "woman-28", &[]).await;
    let mut got = order(&r);
    got.sort();
    assert_eq!(got, vec!["A", "B"]);
    assert_eq!(r.scored, 2);

    let explicit = rank(&server, "woman-28", &["C", "later", "ghost", "A"]).await;
    assert_eq!(order(&explicit), vec!["A"]);
    let reasons: Vec<(&str, i32)> = explicit.unranked.iter().map(|u| (u.session_id.as_str(), u.reason)).collect();
    assert_eq!(
        reasons,
        vec![
            ("C", pb::UnrankedReason::Ended as i32),
            ("later", pb::UnrankedReason::NotLive as i32),
            ("ghost", pb::UnrankedReason::NotFound as i32),
        ]
    );
}

#[tokio::test]
async fn limit_truncates_to_the_best_items() {
    let server = TestServer::start().await;
    setup(&server).await;
    let mut catalog = CatalogServiceClient::new(server.channel().await);
    // One start time for all: sessions that differ only in when `session` read the clock could
    // score a rounding apart in one ranking and tie in the next, and swap places between them.
    let start = fitrank::domain::now_ms() - 10 * 60_000;
    let sessions: Vec<_> = (0..30)
        .map(|i| pb::LiveSession {
            start_time_unix_ms: start,
            ..session(&format!("s{i:02}"), Some(target(18 + i, 30 + i, &[], &[])))
        })
        .collect();
    // Only these sessions: "A" and "B" of `setup` started at another moment, so the time between
    // the two calls moves their minutes live, and with them their scores, against these.
    let ids: Vec<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
    catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions }).await.unwrap();
    let rank = |limit| pb::RankRequest {
        user_id: "woman-28".into(),
        candidate_session_ids: ids.clone(),
        limit,
        ..Default::default()
    };
    let all = RankingServiceClient::new(server.channel().await).rank(rank(32)).await.unwrap().into_inner();
    let top = RankingServiceClient::new(server.channel().await).rank(rank(5)).await.unwrap().into_inner();
    assert_eq!(all.items.len(), 30);
    assert_eq!(top.scored, 30);
    assert_eq!(order(&top), order(&all)[..5].to_vec());
    assert!(all.items.windows(2).all(|w| w[0].score >= w[1].score));
}

#[tokio::test]
async fn the_server_reports_its_own_rank_latency_per_window() {
    let server = TestServer::start().await;
    setup(&server).await;
    let mut admin = AdminServiceClient::new(server.channel().await);
    let latency = |reset| pb::GetRankLatencyRequest { reset };
    admin.get_rank_latency(latency(true)).await.unwrap();
    for _ in 0..5 {
        rank(&server, "woman-28", &["A", "B"]).await;
    }
    // A refused ranking counts as an error, not as a latency.
    let refused = RankingServiceClient::new(server.channel().await)
        .rank(pb::RankRequest { user_id: String::new(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    let window = admin.get_rank_latency(latency(true)).await.unwrap().into_inner();
    assert_eq!((window.count, window.errors), (5, 1), "{window:?}");
    assert!(window.p50_us >= 1 && window.p50_us <= window.p99_us, "{window:?}");
    assert!(window.p99_us <= window.p999_us && window.p999_us <= window.max_us, "{window:?}");
    assert!(window.window_seconds > 0.0, "{window:?}");

    // The reset started a new, empty window.
    let next = admin.get_rank_latency(latency(false)).await.unwrap().into_inner();
    assert_eq!((next.count, next.errors, next.max_us), (0, 0, 0), "{next:?}");
    rank(&server, "man-58", &["A"]).await;
    assert_eq!(admin.get_rank_latency(latency(false)).await.unwrap().into_inner().count, 1);

    // Operators read the same window from the shell.
    let url = server.url();
    let printed = tokio::task::spawn_blocking(move || {
        common::run(env!("CARGO_BIN_EXE_fitrank"), &["call", "--url", &url, "rank-latency"])
    })
    .await
    .unwrap();
    assert!(printed.starts_with("1 rankings (0 errors) in "), "{printed}");
}
