//! The ranking hot path in process: feature extraction, scoring per candidate, and whole
//! rankings of 100, 500 and 2,000 candidates through `Ranker::rank` (embedded store, shipped
//! model, feature log off); and a ranking of 500 with the feature log on (its cost on the
//! request thread: the returned items' rows recomputed, the record encoded and queued; the
//! writer thread runs beside it). And `Rank` through the generated gRPC service in process
//! (protobuf in and out, the handler, its metrics), bare and behind the layers a server with access
//! control runs (metrics by method and code, the access check of a bearer token), side by side.
//!
//! `cargo bench --bench ranking`

use std::{hint::black_box, sync::Arc};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use fitrank::domain::{
    AgeBand, Category, Gender, LiveSession, LiveStats, PriceBand, RequestContext, SessionStatus, Surface,
    TargetAudience, UserActivity, UserProfile, now_ms,
};
use fitrank::features::{CandidateRow, FeatureInput, NUM_FEATURES, RequestFeatures, extract, extract_candidate};
use fitrank::model::ModelRegistry;
use fitrank::policy::Policy;
use fitrank::ranking::{RankQuery, Ranker};
use fitrank::store::{EmbeddedStore, EmbeddedStoreConfig, Store};

/// The allocator the `fitrank` binary ships with, so whole rankings allocate as in the service.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn session(i: usize) -> LiveSession {
    LiveSession {
        session_id: format!("s{i}"),
        host_id: format!("h{}", i / 3),
        category: Category::ALL[i % Category::COUNT],
        price_band: PriceBand::ALL[i % PriceBand::COUNT],
        language: "en".into(),
        region: "US".into(),
        start_time_ms: now_ms() - 600_000,
        status: SessionStatus::Live,
        end_time_ms: 0,
        target: TargetAudience {
            min_age: 18 + (i % 30) as u32,
            max_age: 30 + (i % 30) as u32,
            genders: vec![[Gender::Female, Gender::Male][i % 2]],
            regions: vec!["US".into()],
            interests: vec![],
        },
    }
}

fn user() -> UserProfile {
    UserProfile {
        age_band: AgeBand::A25To34,
        gender: Gender::Female,
        region: "US-CA".into(),
        language: "en".into(),
        interests: vec!["sportswear".into()],
    }
}

fn models() -> Arc<ModelRegistry> {
    Arc::new(ModelRegistry::open(concat!(env!("CARGO_MANIFEST_DIR"), "/models"), "default").unwrap())
}

fn per_candidate(c: &mut Criterion) {
    let (user, activity, s, stats) = (user(), UserActivity::default(), session(1), LiveStats::default());
    let context = RequestContext { time_ms: now_ms(), surface: Surface::HomeFeed };
    let input = FeatureInput { user: &user, activity: &activity, session: &s, stats: &stats, context: &context };
    let models = models();
    let model = models.current();
    let heads = &model.artifact.heads;
    let mut row = [0f32; NUM_FEATURES];

    let mut group = c.benchmark_group("per_candidate");
    // The plain path (training, export, feature log): whole extraction and dense scoring.
    group.bench_function("plain_extract", |b| b.iter(|| black_box(extract(black_box(&input), &mut row))));
    extract(&input, &mut row);
    group.bench_function("plain_score_two_heads", |b| {
        b.iter(|| black_box(heads.engage.predict(black_box(&row)) + heads.purchase.predict(black_box(&row))))
    });
    // The ranking path: per-request part once, then per candidate extraction and sparse scoring.
    let request = RequestFeatures::new(&user, &activity, &context);
    let mut candidate_row = CandidateRow::new();
    group.bench_function("fast_extract", |b| {
        b.iter(|| {
            black_box(extract_candidate(black_box(&request), black_box(&s), black_box(&stats), &mut candidate_row))
        })
    });
    let active = extract_candidate(&request, &s, &stats, &mut candidate_row).active;
    let row = *candidate_row.row();
    group.bench_function("fast_score_two_heads", |b| {
        b.iter(|| {
            let (p_engage, p_purchase) = heads.predict_active_with(black_box(&row), &active, (0.0, 0.0));
            black_box(p_engage + p_purchase)
        })
    });
    group.bench_function("fast_score_two_heads_separately", |b| {
        b.iter(|| {
            black_box(
                heads.engage.predict_active(black_box(&row), &active) + heads.purchase.predict_active(&row, &active),
            )
        })
    });
    let policy = Policy::default();
    group.bench_function("fast_extract_and_score", |b| {
        b.iter(|| {
            let e = extract_candidate(black_box(&request), black_box(&s), black_box(&stats), &mut candidate_row);
            let (p_engage, p_purchase) = heads.predict_active_with(candidate_row.row(), &e.active, (0.0, 0.0));
            black_box(policy.score(p_engage, p_purchase, e.fit.overall(), e.credit))
        })
    });
    group.finish();
}

/// Alice's ranking of `candidates`, top 50, now.
fn query(candidates: &[String]) -> RankQuery {
    RankQuery {
        user_id: "alice".into(),
        user_override: None,
        context: RequestContext { time_ms: now_ms(), surface: Surface::HomeFeed },
        candidates: candidates.to_vec(),
        limit: 50,
        deadline: None,
    }
}

fn whole_ranking(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&EmbeddedStoreConfig {
        data_dir: dir.path().to_owned(),
        fsync: false,
        dedup_window_ms: 86_400_000,
    })
    .unwrap();
    rt.block_on(async {
        store.upsert_sessions((0..2_000).map(session).collect()).await.unwrap();
        store.upsert_users(vec![("alice".into(), user())]).await.unwrap();
    });
    let store: Arc<dyn Store> = Arc::new(store);
    let ranker_models = models();
    let ranker = Ranker::new(store.clone(), ranker_models.clone(), Policy::default(), 2_000, None);

    // The handler's cost beyond the ranking: recording what it did for /metrics, side by side
    // with the same ranking of 500 without it.
    let telemetry = fitrank::telemetry::Telemetry::new(fitrank::telemetry::Sources {
        store: store.clone(),
        models: ranker_models.clone(),
        feature_log: None,
    });
    let candidates: Vec<String> = (0..500).map(|i| format!("s{i}")).collect();
    let mut group = c.benchmark_group("rank_with_metrics");
    group.throughput(Throughput::Elements(500));
    group.bench_function("without", |b| b.iter(|| black_box(rt.block_on(ranker.rank(query(&candidates))).unwrap())));
    group.bench_function("with", |b| {
        b.iter(|| {
            let ranked = rt.block_on(ranker.rank(query(&candidates))).unwrap();
            telemetry.metrics.record_rank(&ranked);
            black_box(ranked)
        })
    });
    group.finish();

    rank_handler(c, &rt, &ranker, &telemetry);

    let mut group = c.benchmark_group("rank_in_process");
    for n in [100usize, 500, 2_000] {
        let candidates: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &candidates, |b, candidates| {
            b.iter(|| black_box(rt.block_on(ranker.rank(query(candidates))).unwrap()))
        });
    }
    group.finish();

    // The same ranking of 500 with the feature log on: 50 items returned and logged, plus the 50
    // best unreturned candidates (the default, for off-policy evaluation), or none.
    let log_dir = tempfile::tempdir().unwrap();
    let candidates: Vec<String> = (0..500).map(|i| format!("s{i}")).collect();
    let mut group = c.benchmark_group("rank_in_process_logged");
    group.throughput(Throughput::Elements(500));
    for unreturned in [50usize, 0] {
        let config = fitrank::featurelog::FeatureLogConfig { unreturned_candidates: unreturned, ..Default::default() };
        let log = fitrank::featurelog::FeatureLog::open(log_dir.path().join(unreturned.to_string()), &config).unwrap();
        let logged = Ranker::new(store.clone(), models(), Policy::default(), 2_000, Some(log));
        let name = if unreturned == 0 { "500".to_owned() } else { format!("500_with_{unreturned}_unreturned") };
        group.bench_function(name, |b| b.iter(|| black_box(rt.block_on(logged.rank(query(&candidates))).unwrap())));
    }
    group.finish();
}

/// One `Rank` request of 500 candidates as the gRPC service receives it: framed protobuf.
fn rank_call(token: Option<&str>) -> http::Request<tonic::body::Body> {
    use prost::Message;
    let request = fitrank::proto::v1::RankRequest {
        user_id: "alice".into(),
        candidate_session_ids: (0..500).map(|i| format!("s{i}")).collect(),
        limit: 50,
        ..Default::default()
    };
    let message = request.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let mut builder = http::Request::post("/fitrank.v1.RankingService/Rank")
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(tonic::body::Body::new(http_body_util::Full::new(bytes::Bytes::from(framed)))).unwrap()
}

/// Calls `service` with `request` and reads the whole response (body and trailers).
async fn call<S, B>(service: &mut S, request: http::Request<tonic::body::Body>) -> usize
where
    S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap();
    assert!(body.trailers().is_some_and(|t| t.get("grpc-status").is_some_and(|s| s == "0")), "Rank answered OK");
    body.to_bytes().len()
}

fn rank_handler(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    ranker: &Ranker,
    telemetry: &Arc<fitrank::telemetry::Telemetry>,
) {
    use fitrank::access::{Access, AccessLayer, AccessSource};
    use fitrank::proto::v1::ranking_service_server::RankingServiceServer;
    let service = || {
        RankingServiceServer::new(fitrank::api::RankingApi {
            ranker: ranker.clone(),
            limits: Default::default(),
            latency: Arc::new(fitrank::ranking::RankLatency::new()),
            telemetry: telemetry.clone(),
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let access_file = dir.path().join("access.toml");
    let hash: String =
        fitrank::access::hash_token("feed-token-0123456789abcdef").iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&access_file, format!("[[token]]\nname = \"feed\"\nroles = [\"feed\"]\nsha256 = \"{hash}\"\n"))
        .unwrap();
    let access = Access::Enforced(Arc::new(AccessSource::open(&access_file).unwrap()));
    let known = ["/fitrank.v1.RankingService/Rank".to_owned()].into_iter().collect();
    let mut bare = service();
    let mut layered = tower::ServiceBuilder::new()
        .layer(fitrank::telemetry::grpc::GrpcMetricsLayer::new(telemetry.clone(), known))
        .layer(AccessLayer::new(access))
        .service(service());
    // Both answer in full, and the layered one passed the access check.
    let (a, b) = rt.block_on(async {
        (
            call(&mut bare, rank_call(None)).await,
            call(&mut layered, rank_call(Some("feed-token-0123456789abcdef"))).await,
        )
    });
    assert!(a > 1_000 && a == b, "bare {a} bytes, layered {b} bytes");

    let mut group = c.benchmark_group("rank_handler");
    group.throughput(Throughput::Elements(500));
    group.bench_function("bare", |b| b.iter(|| black_box(rt.block_on(call(&mut bare, rank_call(None))))));
    group.bench_function("metrics_and_access", |b| {
        b.iter(|| black_box(rt.block_on(call(&mut layered, rank_call(Some("feed-token-0123456789abcdef"))))))
    });
    group.finish();
}

criterion_group!(benches, per_candidate, whole_ranking);
criterion_main!(benches);
