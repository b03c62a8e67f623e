//! An experiment's report from an export of the feature log counts every exposed user once, in
//! the arm the service assigned.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{TestServer, attrs, session, target};
use fitrank::proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, catalog_service_client::CatalogServiceClient,
    ranking_service_client::RankingServiceClient,
};
use fitrank_lab::{export, report};
use pb::{AgeBand, Gender};

const USERS: usize = 300;

#[tokio::test]
async fn the_report_counts_each_exposed_user_once_in_the_arm_served() {
    let mut server = TestServer::start_with(|c| c.feature_log.flush_interval_ms = 20).await;
    CatalogServiceClient::new(server.channel().await)
        .upsert_sessions(pb::UpsertSessionsRequest {
            sessions: vec![session("A", Some(target(20, 30, &[Gender::Female], &["US"]))), session("B", None)],
        })
        .await
        .unwrap();
    let arm = |name: &str| pb::ExperimentArm { name: name.into(), weight: 1.0, ..Default::default() };
    AdminServiceClient::new(server.channel().await)
        .create_experiment(pb::CreateExperimentRequest {
            experiment: Some(pb::Experiment {
                name: "fit-weight".into(),
                layer: "policy".into(),
                coverage: 0.6,
                arms: vec![arm("control"), arm("fit")],
                ..Default::default()
            }),
        })
        .await
        .unwrap();

    let mut ranking = RankingServiceClient::new(server.channel().await);
    let mut assigned: HashMap<String, Option<String>> = HashMap::new();
    for u in 0..USERS {
        let user_id = format!("user-{u}");
        let r = ranking
            .rank(pb::RankRequest {
                user_id: user_id.clone(),
                user: Some(attrs(AgeBand::AgeBand2534, Gender::Female, "US-CA", "en")),
                candidate_session_ids: vec!["A".into(), "B".into()],
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assigned.insert(user_id, r.experiments.first().map(|e| e.arm.clone()));
    }
    let data_dir = server.data_dir.clone();
    server.stop().await.unwrap();

    // No events were sent, so every served item counts; all were ranked just now (open windows).
    let options = export::JoinOptions { require_impression: false, include_open: true, ..Default::default() };
    let (table, _) = export::export(&[data_dir.join("featurelog")], &options).unwrap();
    let weights = BTreeMap::from([("control".to_owned(), 1.0), ("fit".to_owned(), 1.0)]);
    let report = report::report(&table, "fit-weight", "control", &weights).unwrap();
    assert_eq!(report.users_in_several_arms, 0);
    assert_eq!(report.arms.len(), 2);
    for arm in &report.arms {
        let want = assigned.values().filter(|a| a.as_deref() == Some(arm.arm.as_str())).count();
        assert!(want > 0, "no user in {}", arm.arm);
        assert_eq!(arm.users, want, "users of {}", arm.arm);
    }
    assert!(report.srm.is_some());
}
