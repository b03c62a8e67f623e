//! A seller reads, through `GetSession`, who their stream actually reached against the target they
//! declared, and a mismatch in words once the evidence is enough.

mod common;

use common::{TestServer, attrs, event, session, target};
use fitrank::proto::v1::{
    self as pb, catalog_service_client::CatalogServiceClient, event_service_client::EventServiceClient,
};
use pb::{AgeBand, EventType as T, Gender};

async fn observed(server: &TestServer, id: &str) -> pb::ObservedAudience {
    CatalogServiceClient::new(server.channel().await)
        .get_session(pb::GetSessionRequest { session_id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .observed
        .unwrap()
}

#[tokio::test]
async fn a_stream_for_young_women_that_sells_to_older_men_is_flagged() {
    let server = TestServer::start().await;
    let mut catalog = CatalogServiceClient::new(server.channel().await);
    let mut users: Vec<pb::User> = (0..12)
        .map(|i| pb::User {
            user_id: format!("man-{i}"),
            attributes: Some(attrs(AgeBand::AgeBand5564, Gender::Male, "US-TX", "en")),
        })
        .collect();
    users.push(pb::User {
        user_id: "woman".into(),
        attributes: Some(attrs(AgeBand::AgeBand2534, Gender::Female, "US-CA", "en")),
    });
    catalog.upsert_users(pb::UpsertUsersRequest { users }).await.unwrap();
    let yoga = session("yoga-live", Some(target(20, 30, &[Gender::Female], &["US"])));
    catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions: vec![yoga] }).await.unwrap();

    let mut events = EventServiceClient::new(server.channel().await);
    let send = |buyers: std::ops::Range<usize>| {
        buyers
            .flat_map(|i| {
                let user = format!("man-{i}");
                [
                    event(&format!("v{i}"), T::View, &user, "yoga-live"),
                    event(&format!("p{i}"), T::Purchase, &user, "yoga-live"),
                ]
            })
            .collect::<Vec<_>>()
    };
    // Nine buyers are not enough evidence yet.
    let mut first = send(0..8);
    first.push(event("vw", T::View, "woman", "yoga-live"));
    first.push(event("pw", T::Purchase, "woman", "yoga-live"));
    events.ingest_batch(pb::IngestBatchRequest { events: first }).await.unwrap();
    let early = observed(&server, "yoga-live").await;
    assert_eq!((early.profiled_views, early.profiled_purchases), (9, 9));
    assert_eq!(early.declared, "women 20–30 in US");
    assert!((early.buyers_inside_share.unwrap() - 1.0 / 9.0).abs() < 1e-12);
    assert_eq!(early.mismatch, "");

    events.ingest_batch(pb::IngestBatchRequest { events: send(8..12) }).await.unwrap();
    let o = observed(&server, "yoga-live").await;
    assert_eq!(o.profiled_purchases, 13);
    assert_eq!(o.top_buyers.len(), 1);
    assert_eq!((o.top_buyers[0].age_band, o.top_buyers[0].gender), (AgeBand::AgeBand5564 as i32, Gender::Male as i32));
    assert_eq!(o.mismatch, "declared women 20–30 in US; buyers so far 92% men 55–64 (8% inside the target)");
}
