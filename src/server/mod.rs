//! Assembles the gRPC server: stores, model, services, health, reflection and graceful shutdown.
//!
//! Shutdown order: the shutdown future resolves → health reports NOT_SERVING for every service →
//! after `shutdown_drain_ms` the listener closes → in-flight calls finish (at most
//! `shutdown_timeout_secs`) → [`run`] returns.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

mod connections;
mod http;
pub mod tls;

use crate::access::{Access, AccessError, AccessSource};
use crate::api::{AdminApi, CatalogApi, EventApi, RankingApi};
use crate::audit::AuditLog;
use crate::config::Config;
use crate::experiment::Experiments;
use crate::featurelog::FeatureLog;
use crate::model::{ModelError, ModelRegistry};
use crate::proto::{FILE_DESCRIPTOR_SET, v1 as pb};
use crate::ranking::Ranker;
use crate::store::{EmbeddedStore, EmbeddedStoreConfig, RedisStore, Store, StoreError};
use connections::{LimitedIncoming, connection_settings};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot load the model: {0}")]
    Model(#[from] ModelError),
    #[error("reflection setup failed: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("transport failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot open the experiments: {0}")]
    Experiments(#[from] crate::experiment::ExperimentError),
    #[error("cannot open the feature log: {0}")]
    FeatureLog(std::io::Error),
    #[error("in-flight calls did not finish within {0:?} of shutdown")]
    ShutdownTimeout(Duration),
    #[error("{0}")]
    OpenAdmin(String),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("access control: {0}")]
    Access(#[from] AccessError),
}

/// Names of the services whose health is reported.
const SERVICES: &[&str] =
    &["fitrank.v1.RankingService", "fitrank.v1.CatalogService", "fitrank.v1.EventService", "fitrank.v1.AdminService"];

/// Serves on `listener` until `shutdown` resolves, then drains and returns (no HTTP port).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    run_with_http(config, listener, None, shutdown).await
}

/// [`run`], with the HTTP port (`/metrics`, `/healthz`, `/readyz`) on `http` if given.
pub async fn run_with_http(
    config: Config,
    listener: TcpListener,
    http: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if let Some(refusal) = listener.local_addr().ok().and_then(|addr| config.open_admin_refusal(addr)) {
        return Err(ServeError::OpenAdmin(refusal));
    }
    let access = match &config.access.file {
        Some(path) => Access::Enforced(Arc::new(AccessSource::open(path)?)),
        None => Access::Open,
    };
    let tls = if config.tls.enabled() { Some(Arc::new(tls::TlsReloader::load(&config.tls)?)) } else { None };
    let http_tls = if config.tls.enabled() && config.tls.http {
        Some(Arc::new(tls::TlsReloader::load_for_http(&config.tls)?))
    } else {
        None
    };
    let dedup_window_ms = (config.dedup_window_secs as i64).saturating_mul(1000);
    let (store, shared_doc, audit): (Arc<dyn Store>, _, _) = match config.redis_target() {
        Some(target) => {
            let redis = RedisStore::connect(&target, config.redis.clone(), dedup_window_ms).await?;
            let (doc, audit) = (redis.shared_doc(), AuditLog::Shared(redis.shared_list()));
            (Arc::new(redis), Some(doc), audit)
        }
        None => {
            let store_config =
                EmbeddedStoreConfig { data_dir: config.data_dir.clone(), fsync: config.fsync, dedup_window_ms };
            (Arc::new(EmbeddedStore::open(&store_config)?), None, AuditLog::file(config.audit_path()))
        }
    };
    let audit = Arc::new(audit);
    let models = Arc::new(ModelRegistry::open(&config.models_dir, &config.model_name)?);
    tracing::info!(model = %models.current().id, "model loaded");

    let log = if config.feature_log.enabled {
        Some(FeatureLog::open(config.feature_log_dir(), &config.feature_log).map_err(ServeError::FeatureLog)?)
    } else {
        None
    };

    let shared_experiments = shared_doc.is_some();
    let experiments = Arc::new(match shared_doc {
        Some(doc) => Experiments::open_shared(doc, config.experiments.clone(), config.holdout.clone()).await?,
        None => Experiments::open(config.experiments_path(), config.experiments.clone(), config.holdout.clone())?,
    });
    // Arm models load now, so rankings never read files and a missing version fails the start.
    load_arm_models(&experiments, &models)?;
    // With shared experiments, follow changes made through other replicas.
    let follower = shared_experiments.then(|| {
        let (experiments, models) = (experiments.clone(), models.clone());
        let period = Duration::from_millis(config.experiments_refresh_ms.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match experiments.refresh().await {
                    Ok(true) => {
                        let (experiments, models) = (experiments.clone(), models.clone());
                        match tokio::task::spawn_blocking(move || load_arm_models(&experiments, &models)).await {
                            Ok(Ok(())) => tracing::info!("shared experiments changed"),
                            Ok(Err(e)) => {
                                tracing::error!(error = %e, "an arm model of a shared experiment cannot load")
                            }
                            Err(e) => tracing::error!(error = %e, "loading arm models panicked"),
                        }
                    }
                    Ok(false) => {}
                    Err(e) => tracing::debug!(error = %e, "cannot refresh shared experiments"),
                }
            }
        })
    });

    let telemetry = crate::telemetry::Telemetry::new(crate::telemetry::Sources {
        store: store.clone(),
        models: models.clone(),
        feature_log: log.clone(),
    });
    let limits = config.limits();
    let shown = Arc::new(crate::ranking::Shown::default());
    let ranker = Ranker::new(store.clone(), models.clone(), config.policy, config.max_candidates, log.clone())
        .with_experiments(experiments.clone())
        .with_shown(shown.clone());

    // Follow newer model versions (unless pinned); a refused artifact leaves the current one serving.
    let watcher = (config.model_poll_ms > 0).then(|| {
        let models = models.clone();
        let period = Duration::from_millis(config.model_poll_ms);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let models = models.clone();
                let _ = tokio::task::spawn_blocking(move || models.poll()).await;
            }
        })
    });

    // Re-read the access file and the TLS files when they change (rotated tokens, certificates).
    let reloaders = reloaders(&config, &access, [tls.as_ref(), http_tls.as_ref()]);

    let (health, health_service) = tonic_health::server::health_reporter();
    for name in SERVICES {
        health.set_service_status(*name, ServingStatus::Serving).await;
    }
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let drain = Duration::from_millis(config.shutdown_drain_ms);
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    // Set when the listener closes: open `Ingest` streams end then instead of holding shutdown.
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    // Set when shutdown begins: `/readyz` turns 503 with the health service.
    let (draining_tx, draining_rx) = tokio::sync::watch::channel(false);
    let latency = Arc::new(crate::ranking::RankLatency::new());
    let admin = Arc::new(AdminApi {
        models,
        experiments: experiments.clone(),
        store: store.clone(),
        latency: latency.clone(),
        audit,
        telemetry: telemetry.clone(),
    });
    let console = (http.is_some() && config.console.enabled).then(|| {
        let history =
            Arc::new(crate::console::History::new(telemetry.clone(), store.clone(), latency.clone(), shown.clone()));
        let sampler = tokio::spawn(history.clone().run(Duration::from_millis(config.console.sample_ms.max(100))));
        let console = Arc::new(crate::console::Console {
            admin: admin.clone(),
            shown,
            history,
            logins: crate::console::Logins::new(access.clone(), Duration::from_secs(60 * config.console.login_minutes)),
            refresh_ms: config.console.refresh_ms.max(250),
        });
        (console, sampler)
    });
    let http_task = http.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, console = console.is_some(), "HTTP port serving /metrics, /healthz, /readyz, /console/");
        }
        let state = http::HttpState {
            telemetry: telemetry.clone(),
            store: store.clone(),
            draining: draining_rx,
            console: console.as_ref().map(|(c, _)| c.clone()),
            tls: http_tls,
        };
        tokio::spawn(http::serve(listener, state))
    });
    let signal = {
        let health = health.clone();
        async move {
            shutdown.await;
            tracing::info!("shutdown requested: reporting NOT_SERVING and draining");
            let _ = draining_tx.send(true);
            health.set_service_status("", ServingStatus::NotServing).await;
            for name in SERVICES {
                health.set_service_status(*name, ServingStatus::NotServing).await;
            }
            tokio::time::sleep(drain).await;
            let _ = closing_tx.send(true);
            let _ = stopping_tx.send(());
        }
    };

    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, "fitrank serving");
    let router = connection_settings(&config.connections, telemetry.clone(), access)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(pb::ranking_service_server::RankingServiceServer::new(RankingApi {
            ranker,
            limits,
            latency: latency.clone(),
            telemetry: telemetry.clone(),
        }))
        .add_service(pb::catalog_service_server::CatalogServiceServer::new(CatalogApi { store: store.clone(), limits }))
        .add_service(pb::event_service_server::EventServiceServer::new(EventApi {
            store: store.clone(),
            limits,
            log: log.clone(),
            stream_idle_timeout: Duration::from_secs(config.connections.stream_idle_timeout_secs),
            closing: closing_rx,
            telemetry: telemetry.clone(),
            experiments: Some(experiments.clone()),
        }))
        .add_service(pb::admin_service_server::AdminServiceServer::from_arc(admin));
    let incoming = LimitedIncoming::new(
        TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(Duration::from_secs(60))),
        config.connections.max_connections,
    );
    let serve: std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>> = match tls {
        Some(tls) => Box::pin(
            router
                .serve_with_incoming_shutdown(tls::incoming(incoming, tls, config.connections.max_connections), signal),
        ),
        None => Box::pin(router.serve_with_incoming_shutdown(incoming, signal)),
    };

    let timeout = Duration::from_secs(config.shutdown_timeout_secs);
    tokio::pin!(serve);
    let result = tokio::select! {
        result = &mut serve => result.map_err(Into::into),
        _ = stopping_rx => match tokio::time::timeout(timeout, serve).await {
            Ok(result) => {
                tracing::info!("all in-flight calls finished");
                result.map_err(Into::into)
            }
            Err(_) => Err(ServeError::ShutdownTimeout(timeout)),
        },
    };
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    for task in reloaders {
        task.abort();
    }
    if let Some(http) = http_task {
        http.abort();
    }
    if let Some((_, sampler)) = console {
        sampler.abort();
    }
    if let Some(follower) = follower {
        follower.abort();
    }
    if let Some(log) = log {
        tokio::task::spawn_blocking(move || log.close()).await.ok();
        tracing::info!("feature log closed");
    }
    result
}

/// Tasks that re-read the access file and the TLS files every so often.
fn reloaders(
    config: &Config,
    access: &Access,
    tls: [Option<&Arc<tls::TlsReloader>>; 2],
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Access::Enforced(source) = access {
        let source = source.clone();
        tasks.push(every(config.access.reload_ms, move || {
            source.reload_if_changed();
        }));
    }
    for tls in tls.into_iter().flatten() {
        let tls = tls.clone();
        tasks.push(every(config.tls.reload_ms, move || {
            tls.reload_if_changed();
        }));
    }
    tasks
}

/// Runs `f` on the blocking pool every `period_ms` (at least 100 ms).
fn every(period_ms: u64, f: impl Fn() + Send + Sync + 'static) -> tokio::task::JoinHandle<()> {
    let f = Arc::new(f);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(period_ms.max(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let f = f.clone();
            let _ = tokio::task::spawn_blocking(move || f()).await;
        }
    })
}

/// Loads the models named by arms of running experiments (a missing one is an error).
fn load_arm_models(experiments: &Experiments, models: &ModelRegistry) -> Result<(), ModelError> {
    for e in experiments.state().file.experiments.iter().filter(|e| e.status == crate::experiment::Status::Running) {
        for model in e.arms.iter().filter_map(|a| a.model.as_deref()) {
            models.arm_model(model)?;
        }
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
