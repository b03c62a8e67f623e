//! Bad input gets INVALID_ARGUMENT naming the field (or a per-item reason), and the server keeps
//! serving.

mod common;

use common::{TestServer, attrs, event, session, target};
use fitrank::proto::v1::{
    self as pb, catalog_service_client::CatalogServiceClient, event_service_client::EventServiceClient,
    ranking_service_client::RankingServiceClient,
};
use tonic::Code;

fn at_time(time_unix_ms: i64) -> pb::RankRequest {
    let mut r = rank_req("u", vec![]);
    r.context = Some(pb::RequestContext { time_unix_ms, surface: 0 });
    r
}

fn rank_req(user: &str, candidates: Vec<String>) -> pb::RankRequest {
    pb::RankRequest { user_id: user.into(), candidate_session_ids: candidates, ..Default::default() }
}

#[tokio::test]
async fn rank_rejects_bad_requests_naming_the_field() {
    let server = TestServer::start().await;
    let mut ranking = RankingServiceClient::new(server.channel().await);
    let too_many: Vec<String> = (0..2_001).map(|i| format!("s{i}")).collect();
    let mut unknown_enum = rank_req("u", vec![]);
    unknown_enum.user = Some(pb::UserAttributes { age_band: 99, ..Default::default() });
    let mut bad_surface = rank_req("u", vec![]);
    bad_surface.context = Some(pb::RequestContext { time_unix_ms: 0, surface: 42 });
    let mut negative_time = rank_req("u", vec![]);
    negative_time.context = Some(pb::RequestContext { time_unix_ms: -5, surface: 0 });
    let mut big_limit = rank_req("u", vec![]);
    big_limit.limit = 5_000;
    let mut bad_region = rank_req("u", vec![]);
    bad_region.user = Some(attrs(pb::AgeBand::AgeBand1824, pb::Gender::Female, "U S!", "en"));

    let cases: Vec<(&str, pb::RankRequest, &str)> = vec![
        ("missing user id", rank_req("", vec![]), "user_id: is required"),
        ("too many candidates", rank_req("u", too_many), "candidate_session_ids: has 2001 candidates, at most 2000"),
        (
            "duplicate candidates",
            rank_req("u", vec!["a".into(), "b".into(), "a".into()]),
            "candidate_session_ids[2]: duplicate of candidate_session_ids[0]",
        ),
        ("empty candidate", rank_req("u", vec!["a".into(), String::new()]), "candidate_session_ids[1]: is required"),
        ("overlong id", rank_req(&"x".repeat(129), vec![]), "user_id: is 129 bytes"),
        ("unknown enum value", unknown_enum, "user.age_band: unknown enum value 99"),
        ("unknown surface", bad_surface, "context.surface: unknown enum value 42"),
        ("negative time", negative_time, "context.time_unix_ms: -5 is before 2000-01-01"),
        ("time in seconds", at_time(1_700_000_000), "context.time_unix_ms: 1700000000 is before 2000-01-01"),
        ("an hour ahead", at_time(fitrank::domain::now_ms() + 3_600_000), "context.time_unix_ms:"),
        ("limit above max", big_limit, "limit: 5000 exceeds the maximum of 2000"),
        ("malformed region", bad_region, "user.region:"),
    ];
    for (name, request, expected) in cases {
        let status = ranking.rank(request).await.expect_err(name);
        assert_eq!(status.code(), Code::InvalidArgument, "{name}: {status:?}");
        assert!(
            status.message().starts_with(expected),
            "{name}: {:?} does not start with {expected:?}",
            status.message()
        );
    }
    // still serving
    let ok = ranking.rank(rank_req("u", vec!["ghost".into()])).await.unwrap().into_inner();
    assert_eq!(ok.unranked[0].reason, pb::UnrankedReason::NotFound as i32);
}

#[tokio::test]
async fn catalog_batches_are_validated_whole() {
    let server = TestServer::start().await;
    let mut catalog = CatalogServiceClient::new(server.channel().await);

    let mut nan_like_age = session("s2", Some(target(40, 200, &[], &[])));
    nan_like_age.host_id = "h".into();
    let mut inverted = session("s3", Some(target(40, 20, &[], &[])));
    inverted.host_id = "h".into();
    let mut no_category = session("s4", None);
    no_category.category = 0;
    let mut bad_category = session("s5", None);
    bad_category.category = 77;
    let unspecified_gender = session("s6", Some(target(0, 0, &[pb::Gender::Unspecified], &[])));
    let mut no_start = session("s7", None);
    no_start.start_time_unix_ms = 0;
    let mut ended = session("s8", None);
    ended.status = pb::SessionStatus::Ended as i32;

    let cases = vec![
        (vec![session("ok", None), nan_like_age], "sessions[1].target.max_age: must be at most 120"),
        (vec![inverted], "sessions[0].target.max_age: 20 is below min_age 40"),
        (vec![no_category], "sessions[0].category: is required"),
        (vec![bad_category], "sessions[0].category: unknown enum value 77"),
        (vec![unspecified_gender], "sessions[0].target.genders[0]: GENDER_UNSPECIFIED cannot be targeted"),
        (vec![no_start], "sessions[0].start_time_unix_ms: is required"),
        (vec![ended], "sessions[0].status: use CatalogService.EndSession"),
        (vec![session("d", None), session("d", None)], "sessions[1]: duplicate id \"d\", also at sessions[0]"),
        (vec![], "sessions: must not be empty"),
    ];
    for (sessions, expected) in cases {
        let status = catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions }).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with(expected), "{:?} vs {expected:?}", status.message());
    }
    // the valid first item of a rejected batch was not stored: batches are atomic
    let missing = catalog.get_session(pb::GetSessionRequest { session_id: "ok".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let bad_user =
        pb::User { user_id: "u".into(), attributes: Some(pb::UserAttributes { gender: -3, ..Default::default() }) };
    let status = catalog.upsert_users(pb::UpsertUsersRequest { users: vec![bad_user] }).await.unwrap_err();
    assert_eq!(status.message(), "users[0].attributes.gender: unknown enum value -3");

    let status = catalog
        .end_session(pb::EndSessionRequest { session_id: "nope".into(), end_time_unix_ms: 0 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_events_are_rejected_one_by_one() {
    let server = TestServer::start().await;
    CatalogServiceClient::new(server.channel().await)
        .upsert_sessions(pb::UpsertSessionsRequest { sessions: vec![session("s", None)] })
        .await
        .unwrap();
    let mut nan_watch = event("e-nan", pb::EventType::Watch, "u", "s");
    nan_watch.watch_seconds = f64::NAN;
    let mut negative_amount = event("e-neg", pb::EventType::Purchase, "u", "s");
    negative_amount.amount = -1.0;
    let mut no_ranking = event("e-imp", pb::EventType::Impression, "u", "s");
    no_ranking.ranking_id.clear();
    let mut bad_type = event("e-type", pb::EventType::View, "u", "s");
    bad_type.r#type = 1234;
    let mut made_up_ranking = event("e-made-up", pb::EventType::Impression, "u", "s");
    made_up_ranking.ranking_id = "r1".into();
    let mut free_purchase = event("e-free", pb::EventType::Purchase, "u", "s");
    free_purchase.amount = 0.0;
    let mut ancient = event("e-1970", pb::EventType::View, "u", "s");
    ancient.time_unix_ms = 5_000;
    let events = vec![
        event("good", pb::EventType::View, "u", "s"),
        nan_watch,
        negative_amount,
        no_ranking,
        bad_type,
        event("e-ghost", pb::EventType::View, "u", "ghost"),
        event("", pb::EventType::View, "u", "s"),
        made_up_ranking,
        free_purchase,
        ancient,
    ];
    let r = EventServiceClient::new(server.channel().await)
        .ingest_batch(pb::IngestBatchRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 1);
    let got: Vec<(u32, &str)> = r.rejected.iter().map(|e| (e.index, e.reason.as_str())).collect();
    let expected_prefixes = [
        (1, "event.watch_seconds: must be a finite number"),
        (2, "event.amount: must be a finite number from 0"),
        (3, "event.ranking_id: is required for impressions"),
        (4, "event.type: unknown enum value 1234"),
        (5, "event.session_id: no such session"),
        (6, "event.event_id: is required"),
        (7, "event.ranking_id: \"r1\" was not issued by this service"),
        (8, "event.amount: is required for purchases"),
        (9, "event.time_unix_ms: 5000 is before 2000-01-01"),
    ];
    assert_eq!(got.len(), expected_prefixes.len(), "{got:?}");
    for ((index, reason), (want_index, want)) in got.iter().zip(expected_prefixes) {
        assert_eq!(*index, want_index);
        assert!(reason.starts_with(want), "{reason:?} vs {want:?}");
    }
}

#[tokio::test]
async fn a_megabyte_value_is_refused_naming_its_field_in_a_short_answer() {
    let server = TestServer::start().await;
    let huge = "x".repeat(1 << 20);
    let mut request = rank_req("u", vec![]);
    request.user = Some(attrs(pb::AgeBand::AgeBand1824, pb::Gender::Female, &huge, "en"));
    let status = RankingServiceClient::new(server.channel().await).rank(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("user.region: \"xxxx"), "{}", status.message());
    assert!(status.message().len() < 200, "{} bytes", status.message().len());

    let status = fitrank::proto::v1::admin_service_client::AdminServiceClient::new(server.channel().await)
        .load_model(pb::LoadModelRequest { name: String::new(), version: huge.clone() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().len() <= 1024, "{} bytes", status.message().len());
}
