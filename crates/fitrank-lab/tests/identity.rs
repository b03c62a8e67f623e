//! Identity features end to end: a model trained with `--identity-buckets` learns which host
//! sells, and the running server ranks a new session of that host above an otherwise identical
//! one, after a hot load and without a restart.

mod common;

use common::{TestServer, fitrank, session};
use fitrank::proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, catalog_service_client::CatalogServiceClient,
    ranking_service_client::RankingServiceClient,
};

/// 2,000 impressions whose raw inputs are all alike but for the user and the host: the shows of
/// `host-good` are viewed 60% and bought 20% of the time, those of `host-poor` 20% and 2%.
fn write_table(path: &std::path::Path) {
    let mut csv = String::from("user_id,session.host_id,label_engage,label_purchase\n");
    for i in 0..2_000 {
        let good = i % 2 == 0;
        let k = (i / 2) % 50;
        let (engaged, bought) = if good { (k < 30, k < 10) } else { (k < 10, k < 1) };
        let host = if good { "host-good" } else { "host-poor" };
        csv.push_str(&format!("u-{},{host},{},{}\n", i % 100, u8::from(engaged), u8::from(bought)));
    }
    std::fs::write(path, csv).unwrap();
}

/// Trains `default/29991231-000000` and `default/29991231-000001` on `table` into the server's
/// models folder, alike but for `flag`, set to `values[0]` and `values[1]`, and returns the second
/// version's weights.
fn train_two_versions(
    server: &TestServer,
    table: &std::path::Path,
    common: &[&str],
    flag: &str,
    values: [&str; 2],
) -> serde_json::Value {
    let models = server.models_dir.to_str().unwrap();
    for (version, value) in ["29991231-000000", "29991231-000001"].into_iter().zip(values) {
        let mut args = vec!["train", "--data", table.to_str().unwrap(), "--recompute", "--split", "random"];
        args.extend(["--alphas", "1"]);
        args.extend(common);
        args.extend([flag, value, "--models", models, "--version", version]);
        fitrank(&args);
    }
    let weights = std::fs::read(server.models_dir.join("default/29991231-000001/weights.json")).unwrap();
    serde_json::from_slice(&weights).unwrap()
}

/// Adds sessions `s1` and `s2`, alike in every attribute but their hosts, `hosts[0]` and
/// `hosts[1]`.
async fn upsert_shows_of(server: &TestServer, hosts: [&str; 2]) {
    let sessions = ["s1", "s2"]
        .into_iter()
        .zip(hosts)
        .map(|(id, host)| pb::LiveSession { host_id: host.into(), ..session(id, None) })
        .collect();
    let mut catalog = CatalogServiceClient::new(server.channel().await);
    catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions }).await.unwrap();
}

#[tokio::test]
async fn a_host_that_sells_ranks_first_through_its_identity_weight() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("rows.csv");
    write_table(&table);
    let models = server.models_dir.to_str().unwrap().to_owned();
    let weights = train_two_versions(&server, &table, &[], "--identity-buckets", ["0", "1024"]);
    assert_eq!(weights["purchase"]["identity"].as_array().unwrap().len(), 2048);

    // Offline, side by side on the same rows: only the identity model tells the hosts apart.
    let printed = fitrank(&[
        "evaluate",
        "--data",
        table.to_str().unwrap(),
        "--recompute",
        "--models-dir",
        &models,
        "--model",
        "default/29991231-000000",
        "--model",
        "default/29991231-000001",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&printed).unwrap();
    let auc = |m: usize| report["models"][m]["purchase"]["auc"].as_f64().unwrap();
    // Purchases: 20% for the good host, 2% for the poor one, so the best AUC is about 0.77.
    assert!((auc(0) - 0.5).abs() < 1e-9, "without ids every row scores the same: {}", auc(0));
    assert!(auc(1) > 0.7, "the identity model separates the hosts: {}", auc(1));

    // Two new sessions alike in every attribute; the poor host's has the smaller id, so it wins
    // every tie.
    upsert_shows_of(&server, ["host-poor", "host-good"]).await;

    let mut admin = AdminServiceClient::new(server.channel().await);
    let mut ranking = RankingServiceClient::new(server.channel().await);
    let rank = |ranking: &mut RankingServiceClient<_>| {
        let mut ranking = ranking.clone();
        async move {
            ranking
                .rank(pb::RankRequest {
                    user_id: "someone-new".into(),
                    candidate_session_ids: vec!["s1".into(), "s2".into()],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };

    // Without the block the two sessions score the same.
    // An explicit version is pinned: the models-folder watcher does not move off it.
    let pin = |version: &str| pb::LoadModelRequest { version: version.into(), ..Default::default() };
    let loaded = admin.load_model(pin("29991231-000000")).await.unwrap().into_inner().model.unwrap();
    assert_eq!(loaded.identity_buckets, 0);
    let r = rank(&mut ranking).await;
    assert_eq!(r.items[0].p_purchase, r.items[1].p_purchase, "{r:?}");
    assert_eq!(r.items[0].session_id, "s1");

    // With it, the good host's new session comes first, by what its earlier shows sold.
    let loaded = admin.load_model(pin("29991231-000001")).await.unwrap().into_inner().model.unwrap();
    assert_eq!(loaded.identity_buckets, 1024);
    let r = rank(&mut ranking).await;
    assert_eq!(r.model_version, "default/29991231-000001");
    assert_eq!(r.items[0].session_id, "s2", "{r:?}");
    assert!(r.items[0].p_purchase > 2.0 * r.items[1].p_purchase, "{r:?}");
    assert!(r.items[0].p_engage > r.items[1].p_engage, "{r:?}");
}

/// 4,000 impressions in a world of taste: users and hosts each belong to one of two groups, and
/// a user views a host's show 70% of the time when their groups match and 10% when not, and buys
/// on 20% of the impressions of their own group's hosts and never from the others. Every
/// host is viewed as often as every other, and every user views as often as every other, so a
/// weight per id learns nothing; only who views whom tells the groups apart.
fn write_taste_table(path: &std::path::Path) {
    let mut csv = String::from("user_id,session.host_id,label_engage,label_purchase\n");
    for i in 0..4_000 {
        let (user, host) = (i % 40, (i / 40) % 10);
        let same = user % 2 == host % 2;
        let k = (i / 400) % 10;
        let engaged = if same { k < 7 } else { k < 1 };
        csv.push_str(&format!("u-{user},h-{host},{},{}\n", u8::from(engaged), u8::from(engaged && same && k < 2)));
    }
    std::fs::write(path, csv).unwrap();
}

#[tokio::test]
async fn factors_rank_a_host_first_for_the_users_who_share_its_audience() {
    factors_rank_by_taste(&[], 4).await;
}

/// The same with Bayesian factors: 20 draws of 4 factors serve 20 × 4 + 2 values per slot.
#[tokio::test]
async fn sampled_factors_rank_a_host_first_for_the_users_who_share_its_audience() {
    factors_rank_by_taste(&["--factor-samples", "20"], 82).await;
}

/// Trains the taste table without and with 4 factors (`extra` arguments to both), `served`
/// values per slot, and checks who ranks first for users of each group.
async fn factors_rank_by_taste(extra: &[&str], served: u32) {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("rows.csv");
    write_taste_table(&table);
    let common: Vec<&str> = ["--identity-buckets", "256"].into_iter().chain(extra.iter().copied()).collect();
    let weights = train_two_versions(&server, &table, &common, "--factor-dims", ["0", "4"]);
    assert_eq!(weights["engage"]["factors"].as_array().unwrap().len(), 2 * 256 * served as usize);

    // A new show of an even host and of an odd one, alike in every attribute.
    upsert_shows_of(&server, ["h-2", "h-3"]).await;

    let mut admin = AdminServiceClient::new(server.channel().await);
    let ranking = RankingServiceClient::new(server.channel().await);
    let first = |user: &'static str| {
        let mut ranking = ranking.clone();
        async move {
            let r = ranking
                .rank(pb::RankRequest {
                    user_id: user.into(),
                    candidate_session_ids: vec!["s1".into(), "s2".into()],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let p = |id: &str| r.items.iter().find(|i| i.session_id == id).unwrap().p_engage;
            (r.items[0].session_id.clone(), p("s1"), p("s2"))
        }
    };
    let pin = |version: &str| pb::LoadModelRequest { version: version.into(), ..Default::default() };

    // Without factors each user sees the two hosts alike (near-equal weights per host).
    let loaded = admin.load_model(pin("29991231-000000")).await.unwrap().into_inner().model.unwrap();
    assert_eq!(loaded.factor_dims, 0);
    for user in ["u-4", "u-7"] {
        let (_, even, odd) = first(user).await;
        assert!(even.max(odd) < 1.3 * even.min(odd), "{user}: without factors the hosts score alike ({even}, {odd})");
    }

    // With them, each user's own group's host comes first, by far.
    let loaded = admin.load_model(pin("29991231-000001")).await.unwrap().into_inner().model.unwrap();
    assert_eq!((loaded.identity_buckets, loaded.factor_dims), (256, served));
    let (session, even, odd) = first("u-4").await;
    assert_eq!(session, "s1", "an even user's first show is the even host's: {even} vs {odd}");
    assert!(even > 2.0 * odd, "by far: {even} vs {odd}");
    let (session, even, odd) = first("u-7").await;
    assert_eq!(session, "s2", "an odd user's first show is the odd host's");
    assert!(odd > 2.0 * even, "by far: {odd} vs {even}");
}
