//! The whole loop in simulation, as `scripts/sim-loop.sh` runs it: warm up on a baseline ranking
//! (no model weights, 20% exploration), export what the service logged, train on it with the
//! `fitrank` commands, serve the new version, and score fresh traffic next to the baselines.

mod common;

use common::{TestServer, fitrank};
use fitrank::proto::v1::{self as pb, admin_service_client::AdminServiceClient};
use fitrank_lab::simulate::{self, SimOptions, SimPolicy};
use fitrank_lab::train::generator::{GeneratorConfig, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_export_train_serve_beats_the_baselines_on_fresh_traffic() {
    let world = World::new(GeneratorConfig { users: 5_000, sessions: 600, impressions: 0, seed: 7 });

    // 1-2. Warm-up on the baseline policy; the service logs what it served and what happened.
    let mut warm = TestServer::start_with(|c| {
        c.feature_log.flush_interval_ms = 20;
        c.policy.purchase_weight = 0.0;
        c.policy.engage_weight = 0.0;
        c.policy.audience_fit_weight = 0.0;
        c.policy.on_target_weight = 0.0;
        c.policy.exploration_share = 0.2;
    })
    .await;
    let options = SimOptions::new(4_000, 5, 1);
    simulate::setup(warm.channel().await, &world, options.start_ms).await.unwrap();
    let warm_up = simulate::run(warm.channel().await, &world, &options, &[SimPolicy::Fitrank]).await.unwrap();
    warm.stop().await.unwrap();
    let baseline = warm_up.arms["fitrank"].purchases_per_1000_impressions;

    // 3. Export and train into the models folder, as a newer version than the shipped one.
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served.parquet");
    let log_dir = warm.data_dir.join("featurelog");
    let models = warm.models_dir.to_str().unwrap().to_owned();
    // 4,000 requests are 22 simulated minutes: every attribution window is still open at the end.
    let exported = fitrank(&[
        "export",
        "--log-dir",
        log_dir.to_str().unwrap(),
        "--include-open",
        "--out",
        served.to_str().unwrap(),
    ]);
    assert!(exported.contains("wrote"), "{exported}");
    let trained = fitrank(&[
        "train",
        "--data",
        served.to_str().unwrap(),
        "--exclude-features",
        "declared",
        "--name",
        "default",
        "--version",
        "29990101-000000",
        "--models",
        &models,
    ]);
    assert!(trained.contains("29990101-000000"), "{trained}");
    let artifact = fitrank::model::ModelArtifact::load(&warm.models_dir.join("default/29990101-000000")).unwrap();
    let excluded = &artifact.manifest.excluded_features;
    assert!(
        excluded.iter().any(|f| f == "live.on_target_view_share"),
        "the manifest names what was left out: {excluded:?}"
    );

    // 4. A service on that models folder serves the new version with the default policy.
    let models_dir = warm.models_dir.clone();
    let serving = TestServer::start_with(move |c| c.models_dir = models_dir).await;
    let active = AdminServiceClient::new(serving.channel().await)
        .get_active_model(pb::GetActiveModelRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(active.model.unwrap().version, "29990101-000000");

    // 5. Fresh traffic (other behaviour seed, two simulated hours later), the trained policy
    // beside the baselines.
    let options = SimOptions { start_ms: simulate::default_start_ms() + 2 * 3_600_000, ..SimOptions::new(3_000, 5, 2) };
    simulate::setup(serving.channel().await, &world, options.start_ms).await.unwrap();
    let policies = [SimPolicy::Fitrank, SimPolicy::Popularity, SimPolicy::Random];
    let card = simulate::run(serving.channel().await, &world, &options, &policies).await.unwrap();
    let per_1000 = |p: &str| card.arms[p].purchases_per_1000_impressions;
    let text = card.to_text();
    eprintln!("warm-up baseline: {baseline:.1} purchases per 1,000 impressions\n{text}");
    // Popularity's own rate moves a lot on 1,000 rankings (27.7 to 41.2 per 1,000 impressions in
    // five runs of this test, 2026-12-02; fitrank 71.4 to 85.6, ratios 1.88 to 2.80): 1.5x keeps
    // the margin of a policy that learned something without failing on a lucky popularity run.
    assert!(per_1000("fitrank") > 1.5 * per_1000("popularity"), "{text}");
    assert!(per_1000("fitrank") > 2.0 * per_1000("random"), "{text}");
    assert!(per_1000("fitrank") > 1.5 * baseline, "the loop improved on its warm-up policy ({baseline:.1}): {text}");
}
