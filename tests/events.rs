//! Event ingestion: stored once per id, folded into live stats, streamed or batched.

mod common;

use common::{TestServer, attrs, event, session, target};
use fitrank::proto::v1::{
    self as pb, catalog_service_client::CatalogServiceClient, event_service_client::EventServiceClient,
};
use pb::EventType as T;

#[tokio::test]
async fn events_count_once_and_update_live_stats() {
    let server = TestServer::start().await;
    let mut catalog = CatalogServiceClient::new(server.channel().await);
    catalog
        .upsert_users(pb::UpsertUsersRequest {
            users: vec![
                pb::User {
                    user_id: "in".into(),
                    attributes: Some(attrs(pb::AgeBand::AgeBand2534, pb::Gender::Female, "US", "en")),
                },
                pb::User {
                    user_id: "out".into(),
                    attributes: Some(attrs(pb::AgeBand::AgeBand5564, pb::Gender::Male, "US", "en")),
                },
            ],
        })
        .await
        .unwrap();
    catalog
        .upsert_sessions(pb::UpsertSessionsRequest {
            sessions: vec![session("s", Some(target(20, 30, &[pb::Gender::Female], &[])))],
        })
        .await
        .unwrap();

    let mut events = EventServiceClient::new(server.channel().await);
    let batch = vec![
        event("i1", T::Impression, "in", "s"),
        event("v1", T::View, "in", "s"),
        event("v2", T::View, "out", "s"),
        event("v3", T::View, "anonymous", "s"),
        event("w1", T::Watch, "out", "s"),
        event("p1", T::Purchase, "in", "s"),
        event("p1", T::Purchase, "in", "s"),
    ];
    let first = events.ingest_batch(pb::IngestBatchRequest { events: batch.clone() }).await.unwrap().into_inner();
    assert_eq!((first.accepted, first.duplicates), (6, 1));
    // redelivery of the whole batch changes nothing
    let again = events.ingest_batch(pb::IngestBatchRequest { events: batch.clone() }).await.unwrap().into_inner();
    assert_eq!((again.accepted, again.duplicates), (0, 7));
    // the stream form with the same ids, plus one new
    let mut streamed = batch;
    streamed.push(event("r1", T::Return, "in", "s"));
    let r = events.ingest(tokio_stream::iter(streamed)).await.unwrap().into_inner();
    assert_eq!((r.accepted, r.duplicates), (1, 7));

    let stats = catalog
        .get_session(pb::GetSessionRequest { session_id: "s".into() })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert_eq!(stats.impressions, 1);
    assert_eq!(stats.views, 3);
    assert_eq!(stats.known_views, 2, "the anonymous viewer is not counted in the audience split");
    assert_eq!(stats.on_target_views, 1);
    assert_eq!(stats.watch_seconds, 30.0);
    assert_eq!((stats.purchases, stats.returns), (1, 1));
    assert_eq!(stats.revenue, 0.0);
}

#[tokio::test]
async fn a_large_stream_is_stored_in_chunks() {
    let server = TestServer::start().await;
    CatalogServiceClient::new(server.channel().await)
        .upsert_sessions(pb::UpsertSessionsRequest { sessions: vec![session("s", None)] })
        .await
        .unwrap();
    let n = 5_000;
    let stream = tokio_stream::iter((0..n).map(|i| event(&format!("e{i}"), T::Like, "u", "s")));
    let r = EventServiceClient::new(server.channel().await).ingest(stream).await.unwrap().into_inner();
    assert_eq!(r.accepted, n);
    let stats = CatalogServiceClient::new(server.channel().await)
        .get_session(pb::GetSessionRequest { session_id: "s".into() })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert_eq!(stats.interactions, u64::from(n));
}

#[tokio::test]
async fn a_stream_that_goes_quiet_is_ended_and_what_it_sent_is_stored() {
    let server = TestServer::start_with(|c| c.connections.stream_idle_timeout_secs = 1).await;
    let mut catalog = CatalogServiceClient::new(server.channel().await);
    catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions: vec![session("s", None)] }).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(event("quiet-1", T::View, "u", "s")).await.unwrap();
    let started = std::time::Instant::now();
    let status = EventServiceClient::new(server.channel().await)
        .ingest(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("resend"), "{}", status.message());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(tx);
    let got = catalog.get_session(pb::GetSessionRequest { session_id: "s".into() }).await.unwrap().into_inner();
    assert_eq!(got.stats.unwrap().views, 1);
}

#[tokio::test]
async fn calls_above_the_in_flight_limit_are_shed_at_once() {
    let server = TestServer::start_with(|c| c.connections.max_in_flight = 2).await;
    // Two open streams hold both places.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut client = EventServiceClient::new(server.channel().await);
        held.push(tokio::spawn(async move { client.ingest(futures_util::stream::pending::<pb::Event>()).await }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut ranking = fitrank::proto::v1::ranking_service_client::RankingServiceClient::new(server.channel().await);
    let request = || pb::RankRequest { user_id: "u".into(), ..Default::default() };
    let status = ranking.rank(request()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    for h in held {
        h.abort();
    }
    // Once the streams are gone, calls are served again.
    for _ in 0..100 {
        if ranking.rank(request()).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("calls were still shed after the streams ended");
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_and_the_open_ones_keep_working() {
    let server = TestServer::start_with(|c| c.connections.max_connections = 2).await;
    let health = |channel: tonic::transport::Channel| async move {
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
            .await
    };
    // Two connections in use (the readiness probe's has closed by now, or closes soon).
    let mut open = Vec::new();
    for _ in 0..100 {
        let channel = server.channel().await;
        if health(channel.clone()).await.is_ok() {
            open.push(channel);
            if open.len() == 2 {
                break;
            }
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    assert_eq!(open.len(), 2);
    // A third is closed at once.
    let third = tonic::transport::Channel::from_shared(server.url()).unwrap().connect_lazy();
    assert!(health(third).await.is_err(), "a third connection was served");
    for channel in &open {
        assert!(health(channel.clone()).await.is_ok(), "an open connection stopped working");
    }
    // Closing one makes room.
    open.pop();
    for _ in 0..100 {
        let channel = tonic::transport::Channel::from_shared(server.url()).unwrap().connect_lazy();
        if health(channel).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no connection was accepted after one closed");
}
