//! `fitrank call`: a command-line client of a running service, built on the generated gRPC
//! clients, so that operators can upsert users and sessions, rank, and send events from a shell.
//!
//! Enum values use the domain's names (`--age-band 25-34`, `--gender female`,
//! `--category sportswear`, `--type purchase`); `fitrank call <command> --help` lists them.

use clap::{Args, Subcommand};

use super::connect::{Conn, ConnectArgs, connect};

use crate::domain::{AgeBand, Category, EventKind, Gender, PriceBand, now_ms};
use crate::proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, catalog_service_client::CatalogServiceClient,
    event_service_client::EventServiceClient, ranking_service_client::RankingServiceClient,
};

/// Arguments of `fitrank call`.
#[derive(Args, Debug)]
pub struct CallArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print the response message as JSON (proto field names; enum values by name) instead of a
    /// table; works with every command.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: CallCommand,
}

#[derive(Args, Debug, Clone, Default)]
struct ProfileArgs {
    /// Age band: 13-17, 18-24, 25-34, 35-44, 45-54, 55-64, 65+.
    #[arg(long, value_parser = parse_age_band)]
    age_band: Option<AgeBand>,
    /// Gender: female, male, other.
    #[arg(long, value_parser = parse_gender)]
    gender: Option<Gender>,
    /// Region code, e.g. US or US-CA.
    #[arg(long)]
    region: Option<String>,
    /// Language tag, e.g. en.
    #[arg(long)]
    language: Option<String>,
    /// Interest tag (repeatable).
    #[arg(long = "interest")]
    interests: Vec<String>,
}

impl ProfileArgs {
    fn is_empty(&self) -> bool {
        self.age_band.is_none()
            && self.gender.is_none()
            && self.region.is_none()
            && self.language.is_none()
            && self.interests.is_empty()
    }

    fn to_proto(&self) -> pb::UserAttributes {
        pb::UserAttributes {
            age_band: pb::AgeBand::from(self.age_band.unwrap_or_default()) as i32,
            gender: pb::Gender::from(self.gender.unwrap_or_default()) as i32,
            region: self.region.clone().unwrap_or_default(),
            language: self.language.clone().unwrap_or_default(),
            interests: self.interests.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
enum CallCommand {
    /// Create or replace a user.
    UpsertUser {
        #[arg(long)]
        id: String,
        #[command(flatten)]
        profile: ProfileArgs,
    },
    /// Create or replace a live session.
    UpsertSession {
        #[arg(long)]
        id: String,
        #[arg(long)]
        host: String,
        /// fashion, sportswear, beauty, jewelry, electronics, home, food, toys, collectibles, health, outdoor, other.
        #[arg(long, value_parser = parse_category)]
        category: Category,
        /// budget, mid, premium, luxury.
        #[arg(long, value_parser = parse_price_band)]
        price_band: PriceBand,
        #[arg(long)]
        language: String,
        #[arg(long)]
        region: String,
        /// Start time, ms since the epoch (default: now).
        #[arg(long)]
        start_ms: Option<i64>,
        /// Mark the session scheduled (not yet live).
        #[arg(long)]
        scheduled: bool,
        /// Targeted ages, MIN-MAX (e.g. 20-30).
        #[arg(long, value_parser = parse_age_range)]
        target_age: Option<(u32, u32)>,
        /// Targeted gender (repeatable).
        #[arg(long = "target-gender", value_parser = parse_gender)]
        target_genders: Vec<Gender>,
        /// Targeted region (repeatable).
        #[arg(long = "target-region")]
        target_regions: Vec<String>,
        /// Targeted interest (repeatable).
        #[arg(long = "target-interest")]
        target_interests: Vec<String>,
    },
    /// End a live session.
    EndSession {
        #[arg(long)]
        id: String,
    },
    /// Show a session and its live statistics.
    GetSession {
        #[arg(long)]
        id: String,
    },
    /// Rank live sessions for a user.
    Rank {
        #[arg(long)]
        user: String,
        /// Candidate session ids, comma-separated (default: the live catalog).
        #[arg(long, value_delimiter = ',')]
        candidates: Vec<String>,
        /// Items to return (0 = server default).
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// Inline attributes, used instead of the stored profile.
        #[command(flatten)]
        profile: ProfileArgs,
    },
    /// Send one engagement event.
    Event {
        /// Event id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// impression, view, watch, like, comment, share, follow, add_to_cart, purchase, return, hide.
        #[arg(long = "type", value_parser = parse_event_kind)]
        kind: EventKind,
        #[arg(long)]
        user: String,
        #[arg(long)]
        session: String,
        #[arg(long, default_value = "")]
        ranking_id: String,
        #[arg(long, default_value_t = 0)]
        position: u32,
        #[arg(long, default_value_t = 0.0)]
        watch_seconds: f64,
        #[arg(long, default_value_t = 0.0)]
        amount: f64,
        /// The order a purchase created or a return reverses.
        #[arg(long, default_value = "")]
        order_id: String,
    },
    /// Show the serving model.
    Model,
    /// List the model versions on disk, newest first.
    Models {
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Serve the previous model again (pinned).
    Rollback,
    /// Follow the newest model version again.
    Unpin,
    /// Load a model version (explicit version: pinned; none: the newest, followed).
    LoadModel {
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = "")]
        version: String,
    },
    /// List experiments (running and stopped) and the global holdout.
    Experiments,
    /// Start an experiment from a JSON file (the layout of `experiments.json` entries; see README).
    CreateExperiment {
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// Set an experiment's coverage (0 to 1); raising it moves nobody between arms.
    Ramp {
        #[arg(long)]
        name: String,
        #[arg(long)]
        coverage: f64,
    },
    /// An experiment's definition and what this process served for it: rankings per arm, their
    /// in-service time and failures (the guardrails). The report with lifts is `fitrank report`.
    ExperimentStatus {
        #[arg(long)]
        name: String,
    },
    /// Stop an experiment (it stays listed for reports).
    StopExperiment {
        #[arg(long)]
        name: String,
    },
    /// The server's own Rank latency since start or the last reset (AdminService.GetRankLatency).
    RankLatency {
        /// Start a new window after reading this one.
        #[arg(long)]
        reset: bool,
    },
    /// The newest entries of the audit log: every admin change, who made it, before and after.
    Audit {
        /// Most entries, newest first.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Check health (overall, or one service).
    Health {
        #[arg(long, default_value = "")]
        service: String,
    },
}

/// A Unix-ms time as `YYYY-MM-DD HH:MM` UTC, or `?` when unknown.
fn minute(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) if ms > 0 => t.format("%Y-%m-%d %H:%M").to_string(),
        _ => "?".into(),
    }
}

/// The versions with their metrics and the rows those metrics come from.
fn print_versions(r: &pb::ListModelsResponse) {
    println!("  {:<20} {:<22} {:>12}  metrics measured on", "version", "created", "purchase_auc");
    let mut sources = std::collections::BTreeSet::new();
    for v in &r.versions {
        let m = v.model.clone().unwrap_or_default();
        let mark = if v.serving { "*" } else { " " };
        let auc = m.metrics.get("purchase_auc").map_or(String::new(), |a| format!("{a:.4}"));
        let on = if !v.error.is_empty() {
            format!("(cannot serve: {})", v.error)
        } else if m.metrics_data.is_empty() {
            "(not recorded)".to_owned()
        } else {
            sources.insert((m.metrics_data.clone(), m.metrics_from_unix_ms, m.metrics_to_unix_ms));
            format!(
                "{} rows, {} to {}: {}",
                m.metrics_rows,
                minute(m.metrics_from_unix_ms),
                minute(m.metrics_to_unix_ms),
                m.metrics_data
            )
        };
        println!("{mark} {:<20} {:<22} {auc:>12}  {on}", m.version, m.created_at);
    }
    let unrecorded = r.versions.iter().any(|v| v.model.as_ref().is_some_and(|m| m.metrics_data.is_empty()));
    if sources.len() > 1 || (unrecorded && !sources.is_empty()) {
        println!(
            "\nThese metrics come from different rows and are not comparable. Score the versions on the same,\n\
             later rows: fitrank evaluate --data LATER_EXPORT --model NAME/V1 --model NAME/V2"
        );
    }
}

fn parse_with<T>(s: &str, from: fn(&str) -> Option<T>, all: &[&str]) -> Result<T, String> {
    from(s).ok_or_else(|| format!("expected one of: {}", all.join(", ")))
}
fn parse_age_band(s: &str) -> Result<AgeBand, String> {
    parse_with(s, AgeBand::from_name, &AgeBand::ALL.iter().map(|v| v.name()).collect::<Vec<_>>())
}
fn parse_gender(s: &str) -> Result<Gender, String> {
    parse_with(s, Gender::from_name, &Gender::ALL.iter().map(|v| v.name()).collect::<Vec<_>>())
}
fn parse_category(s: &str) -> Result<Category, String> {
    parse_with(s, Category::from_name, &Category::ALL.iter().map(|v| v.name()).collect::<Vec<_>>())
}
fn parse_price_band(s: &str) -> Result<PriceBand, String> {
    parse_with(s, PriceBand::from_name, &PriceBand::ALL.iter().map(|v| v.name()).collect::<Vec<_>>())
}
fn parse_event_kind(s: &str) -> Result<EventKind, String> {
    parse_with(s, EventKind::from_name, &EventKind::ALL.iter().map(|v| v.name()).collect::<Vec<_>>())
}
fn parse_age_range(s: &str) -> Result<(u32, u32), String> {
    let (lo, hi) = s.split_once('-').ok_or("expected MIN-MAX, e.g. 20-30")?;
    Ok((lo.trim().parse().map_err(|e| format!("{e}"))?, hi.trim().parse().map_err(|e| format!("{e}"))?))
}

type CallResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Runs one `fitrank call` command.
pub fn call(args: CallArgs) -> CallResult {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let channel = connect(&args.connect).await?;
        run(channel, args.command, Output { json: args.json }).await
    })
}

/// How responses are printed: a table for people, or the message as JSON for programs.
#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    /// Prints `message` as JSON, or runs `table` to print it for people.
    fn print<M: serde::Serialize>(self, message: &M, table: impl FnOnce(&M)) -> CallResult {
        if self.json {
            println!("{}", serde_json::to_string_pretty(message)?);
        } else {
            table(message);
        }
        Ok(())
    }
}

async fn run(channel: Conn, command: CallCommand, out: Output) -> CallResult {
    let status = |s: tonic::Status| format!("{:?}: {}", s.code(), s.message());
    match command {
        CallCommand::UpsertUser { id, profile } => {
            let user = pb::User { user_id: id, attributes: Some(profile.to_proto()) };
            let r = CatalogServiceClient::new(channel)
                .upsert_users(pb::UpsertUsersRequest { users: vec![user] })
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |r| println!("upserted {} user(s)", r.upserted))?;
        }
        CallCommand::UpsertSession {
            id,
            host,
            category,
            price_band,
            language,
            region,
            start_ms,
            scheduled,
            target_age,
            target_genders,
            target_regions,
            target_interests,
        } => {
            let (min_age, max_age) = target_age.unwrap_or((0, 0));
            let session = pb::LiveSession {
                session_id: id,
                host_id: host,
                category: pb::Category::from(category) as i32,
                price_band: pb::PriceBand::from(price_band) as i32,
                language,
                region,
                start_time_unix_ms: start_ms.unwrap_or_else(now_ms),
                status: if scheduled { pb::SessionStatus::Scheduled } else { pb::SessionStatus::Live } as i32,
                target: Some(pb::TargetAudience {
                    min_age,
                    max_age,
                    genders: target_genders.into_iter().map(|g| pb::Gender::from(g) as i32).collect(),
                    regions: target_regions,
                    interests: target_interests,
                }),
            };
            let r = CatalogServiceClient::new(channel)
                .upsert_sessions(pb::UpsertSessionsRequest { sessions: vec![session] })
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |r| println!("upserted {} session(s)", r.upserted))?;
        }
        CallCommand::EndSession { id } => {
            let r = CatalogServiceClient::new(channel)
                .end_session(pb::EndSessionRequest { session_id: id.clone(), end_time_unix_ms: 0 })
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |_| println!("ended {id}"))?;
        }
        CallCommand::GetSession { id } => {
            let r = CatalogServiceClient::new(channel)
                .get_session(pb::GetSessionRequest { session_id: id })
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |r| {
                print_session(&r.session.clone().unwrap_or_default());
                print_stats(&r.stats.clone().unwrap_or_default());
                print_observed(&r.observed.clone().unwrap_or_default());
            })?;
        }
        CallCommand::Rank { user, candidates, limit, profile } => {
            let request = pb::RankRequest {
                user_id: user,
                user: (!profile.is_empty()).then(|| profile.to_proto()),
                context: None,
                candidate_session_ids: candidates,
                limit,
            };
            let r = RankingServiceClient::new(channel).rank(request).await.map_err(status)?.into_inner();
            out.print(&r, print_ranking)?;
        }
        CallCommand::Event { id, kind, user, session, ranking_id, position, watch_seconds, amount, order_id } => {
            let event = pb::Event {
                event_id: id.unwrap_or_else(|| format!("cli-{:032x}", rand::random::<u128>())),
                r#type: pb::EventType::from(kind) as i32,
                user_id: user,
                session_id: session,
                time_unix_ms: 0,
                ranking_id,
                position,
                watch_seconds,
                amount,
                order_id,
            };
            let r = EventServiceClient::new(channel)
                .ingest_batch(pb::IngestBatchRequest { events: vec![event] })
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |r| {
                println!("accepted {}  duplicates {}", r.accepted, r.duplicates);
                for rej in &r.rejected {
                    println!("  rejected {}: {}", rej.event_id, rej.reason);
                }
            })?;
        }
        CallCommand::Model => {
            let r = AdminServiceClient::new(channel)
                .get_active_model(pb::GetActiveModelRequest {})
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |r| print_model(&r.model.clone().unwrap_or_default()))?;
        }
        CallCommand::Models { name } => {
            let r = AdminServiceClient::new(channel)
                .list_models(pb::ListModelsRequest { name })
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, print_versions)?;
        }
        CallCommand::Rollback => {
            let r = AdminServiceClient::new(channel)
                .rollback_model(pb::RollbackModelRequest {})
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |r| println!("serving {} (pinned)", r.model.clone().unwrap_or_default().version))?;
        }
        CallCommand::Unpin => {
            let r = AdminServiceClient::new(channel)
                .unpin_model(pb::UnpinModelRequest {})
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |r| {
                println!("serving {} (following the newest)", r.model.clone().unwrap_or_default().version)
            })?;
        }
        CallCommand::LoadModel { name, version } => {
            let r = AdminServiceClient::new(channel)
                .load_model(pb::LoadModelRequest { name, version })
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |r| print_model(&r.model.clone().unwrap_or_default()))?;
        }
        CallCommand::Experiments => {
            let r = AdminServiceClient::new(channel)
                .list_experiments(pb::ListExperimentsRequest {})
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |r| {
                println!("holdout share {}", r.holdout_share);
                for e in &r.experiments {
                    print_experiment(e);
                }
            })?;
        }
        CallCommand::CreateExperiment { file } => {
            let text = std::fs::read_to_string(&file)?;
            let def: crate::experiment::ExperimentDef =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            let r = AdminServiceClient::new(channel)
                .create_experiment(pb::CreateExperimentRequest { experiment: Some(pb::Experiment::from(&def)) })
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |r| print_experiment(&r.experiment.clone().unwrap_or_default()))?;
        }
        CallCommand::Ramp { name, coverage } => {
            let r = AdminServiceClient::new(channel)
                .set_experiment_coverage(pb::SetExperimentCoverageRequest { name, coverage })
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |r| print_experiment(&r.experiment.clone().unwrap_or_default()))?;
        }
        CallCommand::ExperimentStatus { name } => {
            let r = AdminServiceClient::new(channel)
                .get_experiment_status(pb::GetExperimentStatusRequest { name })
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |r| {
                print_experiment(&r.experiment.clone().unwrap_or_default());
                println!("served by this process since it started:");
                println!(
                    "  {:<16} {:>10} {:>8} {:>9} {:>9} {:>9}",
                    "arm", "rankings", "errors", "error %", "p50 µs", "p99 µs"
                );
                for g in &r.guardrails {
                    println!(
                        "  {:<16} {:>10} {:>8} {:>9.3} {:>9} {:>9}",
                        g.arm,
                        g.requests,
                        g.errors,
                        100.0 * g.error_rate,
                        g.p50_us,
                        g.p99_us
                    );
                }
            })?;
        }
        CallCommand::StopExperiment { name } => {
            let r = AdminServiceClient::new(channel)
                .stop_experiment(pb::StopExperimentRequest { name })
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |r| print_experiment(&r.experiment.clone().unwrap_or_default()))?;
        }
        CallCommand::RankLatency { reset } => {
            let r = AdminServiceClient::new(channel)
                .get_rank_latency(pb::GetRankLatencyRequest { reset })
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |r| {
                println!(
                    "{} rankings ({} errors) in {:.1}s; µs inside Rank: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                    r.count, r.errors, r.window_seconds, r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.max_us
                )
            })?;
        }
        CallCommand::Audit { limit } => {
            let r = AdminServiceClient::new(channel)
                .list_audit_log(pb::ListAuditLogRequest { limit })
                .await
                .map_err(status)?
                .into_inner();
            out.print(&r, |r| {
                for e in &r.entries {
                    let time = chrono::DateTime::from_timestamp_millis(e.time_unix_ms)
                        .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string());
                    println!("{time}  {} ({}, {})  {} {}", e.actor, e.via, e.peer, e.action, e.target);
                    println!("    before {}", e.before_json);
                    println!("    after  {}", e.after_json);
                }
            })?;
        }
        CallCommand::Health { service } => {
            let r = tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest { service })
                .await
                .map_err(status)?
                .into_inner();
            let s = tonic_health::pb::health_check_response::ServingStatus::try_from(r.status)
                .map_or("UNKNOWN", |s| s.as_str_name());
            if out.json {
                println!("{}", serde_json::json!({ "status": s }));
            } else {
                println!("{s}");
            }
        }
    }
    Ok(())
}

fn print_experiment(e: &pb::Experiment) {
    println!(
        "{} [{}] layer {} buckets {}..{} coverage {} control {}",
        e.name, e.status, e.layer, e.range_start, e.range_end, e.coverage, e.control
    );
    for a in &e.arms {
        let p = a.policy.unwrap_or_default();
        let policy: Vec<String> = [
            ("purchase_weight", p.purchase_weight),
            ("engage_weight", p.engage_weight),
            ("audience_fit_weight", p.audience_fit_weight),
            ("on_target_weight", p.on_target_weight),
            ("exploration_share", p.exploration_share),
        ]
        .iter()
        .filter_map(|(n, v)| v.map(|v| format!("{n}={v}")))
        .collect();
        let model = if a.model.is_empty() { "serving model" } else { a.model.as_str() };
        println!("  {:<16} weight {:<6} {model} {}", a.name, a.weight, policy.join(" "));
    }
}

fn print_ranking(r: &pb::RankResponse) {
    println!("ranking_id {}  model {}  scored {}", r.ranking_id, r.model_version, r.scored);
    for e in &r.experiments {
        println!("experiment {}  arm {}", e.experiment, e.arm);
    }
    println!(
        "{:>3}  {:<24} {:>10} {:>9} {:>10} {:>6} {:>6} {:>6}",
        "pos", "session", "score", "p_engage", "p_purchase", "fit", "inside", "credit"
    );
    for (i, item) in r.items.iter().enumerate() {
        println!(
            "{:>3}  {:<24} {:>10.6} {:>9.4} {:>10.5} {:>6.3} {:>6} {:>6.2}",
            i,
            item.session_id,
            item.score,
            item.p_engage,
            item.p_purchase,
            item.audience_fit,
            if item.in_target { "yes" } else { "no" },
            item.targeting_credit
        );
    }
    for u in &r.unranked {
        println!("  not ranked: {} ({})", u.session_id, enum_name::<pb::UnrankedReason>(u.reason, "UNRANKED_REASON_"));
    }
}

/// A generated enum's value for people: without the type's `prefix`, lower-cased
/// (`CATEGORY_HOME` → `home`).
fn enum_name<E: crate::proto::json::EnumName>(value: i32, prefix: &str) -> String {
    let name = E::name(value).unwrap_or("UNKNOWN");
    name.strip_prefix(prefix).unwrap_or(name).to_ascii_lowercase()
}

fn print_session(s: &pb::LiveSession) {
    let target = s.target.clone().unwrap_or_default();
    let genders: Vec<String> = target.genders.iter().map(|g| enum_name::<pb::Gender>(*g, "GENDER_")).collect();
    let rows = [
        ("session", s.session_id.clone()),
        ("host", s.host_id.clone()),
        ("category", enum_name::<pb::Category>(s.category, "CATEGORY_")),
        ("price band", enum_name::<pb::PriceBand>(s.price_band, "PRICE_BAND_")),
        ("language / region", format!("{} / {}", s.language, s.region)),
        ("status", enum_name::<pb::SessionStatus>(s.status, "SESSION_STATUS_")),
        ("started", crate::domain::rfc3339(s.start_time_unix_ms)),
        (
            "declared target",
            format!(
                "ages {}; genders {}; regions {}; interests {}",
                match (target.min_age, target.max_age) {
                    (0, 0) => "any".to_owned(),
                    (lo, hi) => format!("{lo}-{hi}"),
                },
                if genders.is_empty() { "any".to_owned() } else { genders.join(", ") },
                if target.regions.is_empty() { "any".to_owned() } else { target.regions.join(", ") },
                if target.interests.is_empty() { "any".to_owned() } else { target.interests.join(", ") },
            ),
        ),
    ];
    for (k, v) in rows {
        println!("{k:<18} {v}");
    }
}

fn print_stats(s: &pb::LiveStats) {
    println!(
        "{:<18} impressions {}  views {}  watch {:.0} s  interactions {}  follows {}  carts {}",
        "totals", s.impressions, s.views, s.watch_seconds, s.interactions, s.follows, s.add_to_carts
    );
    println!(
        "{:<18} purchases {}  revenue {:.2}  returns {}  hides {}  on-target views {} of {} known",
        "", s.purchases, s.revenue, s.returns, s.hides, s.on_target_views, s.known_views
    );
    if !s.windows.is_empty() {
        println!("{:<18} {:>12} {:>10} {:>12} {:>10}", "window", "impressions", "views", "watch s", "purchases");
        for w in &s.windows {
            println!(
                "{:<18} {:>12.1} {:>10.1} {:>12.0} {:>10.1}",
                w.window, w.impressions, w.views, w.watch_seconds, w.purchases
            );
        }
    }
    if !s.audience.is_empty() {
        println!("{:<18} {:>10}", "viewers", "views");
        for a in &s.audience {
            let who = format!(
                "{} {}",
                enum_name::<pb::Gender>(a.gender, "GENDER_"),
                enum_name::<pb::AgeBand>(a.age_band, "AGE_BAND_")
            );
            println!("{who:<18} {:>10}", a.views);
        }
    }
}

fn print_model(m: &pb::ModelInfo) {
    println!("model              {}/{}", m.name, m.version);
    println!("created            {}", m.created_at);
    println!("feature schema     {} ({} features)", m.schema_hash, m.feature_count);
    println!("identity buckets   {}  factor dims {}", m.identity_buckets, m.factor_dims);
    if !m.excluded_features.is_empty() {
        println!("fitted without     {}", feature_list(&m.excluded_features));
    }
    let mut metrics: Vec<_> = m.metrics.iter().collect();
    metrics.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in metrics {
        println!("  {k:<28} {v:.4}");
    }
}

/// Feature names, each run of one one-hot block (`x.fit&category=…`) as one `prefix=* (count)`.
fn feature_list(names: &[String]) -> String {
    // (block, count, the first name of the run)
    let mut runs: Vec<(Option<&str>, usize, &str)> = Vec::new();
    for name in names {
        let block = name.split_once('=').map(|(prefix, _)| prefix);
        match runs.last_mut() {
            Some((last, n, _)) if block.is_some() && *last == block => *n += 1,
            _ => runs.push((block, 1, name)),
        }
    }
    let parts: Vec<String> = runs
        .into_iter()
        .map(|(block, n, first)| match block {
            Some(prefix) if n > 1 => format!("{prefix}=* ({n})"),
            _ => first.to_owned(),
        })
        .collect();
    format!("{} features: {}", names.len(), parts.join(", "))
}

fn print_observed(o: &pb::ObservedAudience) {
    let share = |s: Option<f64>| s.map_or("-".to_owned(), |s| format!("{:.0}%", 100.0 * s));
    let groups = |g: &[pb::GroupShare]| {
        g.iter()
            .map(|g| {
                let gender = enum_name::<pb::Gender>(g.gender, "GENDER_");
                let age = enum_name::<pb::AgeBand>(g.age_band, "AGE_BAND_").replace('_', "-");
                format!("{:.0}% {gender} {age}", 100.0 * g.share)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{:<18} {} profiled viewers ({} inside the target), {} buyers ({} inside)",
        "reached",
        o.profiled_views,
        share(o.viewers_inside_share),
        o.profiled_purchases,
        share(o.buyers_inside_share)
    );
    if !o.top_buyers.is_empty() {
        println!("{:<18} {}", "top buyers", groups(&o.top_buyers));
    }
    if !o.top_viewers.is_empty() {
        println!("{:<18} {}", "top viewers", groups(&o.top_viewers));
    }
    if !o.mismatch.is_empty() {
        println!("{:<18} {}", "MISMATCH", o.mismatch);
    }
}

#[cfg(test)]
mod tests {
    use super::feature_list;

    #[test]
    fn a_one_hot_block_of_excluded_features_reads_as_one_entry() {
        let names: Vec<String> =
            ["x.fit&category=fashion", "x.fit&category=toys", "fit.age", "ctx.surface=search", "fit.overall"]
                .map(String::from)
                .into();
        assert_eq!(feature_list(&names), "5 features: x.fit&category=* (2), fit.age, ctx.surface=search, fit.overall");
    }
}
