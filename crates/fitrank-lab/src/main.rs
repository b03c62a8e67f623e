//! `fitrank-lab`: the lab's commands (train, export, evaluate, report, generate, simulate,
//! movielens). `fitrank train …` runs `fitrank-lab train …` when both are installed side by side.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fitrank_lab::train;

/// The server's allocator (mimalloc), so that the lab's in-process measurements and training run
/// on the same allocator as the service.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fitrank-lab",
    version,
    about = "fitrank's lab: train, export, evaluate, report, generate, simulate, movielens"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model version and write it under the models folder.
    Train(TrainArgs),
    /// Export served rows joined to outcomes (Parquet or CSV) for training.
    Export(ExportArgs),
    /// Measure model versions on a data set, side by side (AUC, log loss, calibration, NDCG@k).
    Evaluate(EvaluateArgs),
    /// Report an experiment from a feature-log export: per-arm metrics, lifts with 95% CIs, SRM.
    Report(ReportArgs),
    /// Drive a running service with the synthetic world over gRPC and print the scorecard per arm.
    Simulate(SimulateArgs),
    /// Write rows of the built-in generator as a training table (.parquet or .csv).
    Generate(GenerateArgs),
    /// The MovieLens 100k benchmark through fitrank's feature path (no service needed).
    Movielens(MovielensArgs),
}

#[derive(clap::Args)]
struct ExportArgs {
    /// Feature-log folder (repeatable, e.g. one per replica); default data/featurelog.
    #[arg(long = "log-dir")]
    log_dirs: Vec<PathBuf>,
    /// Output file: .parquet or .csv.
    #[arg(long)]
    out: PathBuf,
    /// Rankings served at or after this time (ms or RFC 3339, e.g. 2026-11-22T00:00:00Z).
    #[arg(long, value_parser = parse_time_arg)]
    from: Option<i64>,
    /// Rankings served before this time.
    #[arg(long, value_parser = parse_time_arg)]
    to: Option<i64>,
    /// Attribution window for engagement and purchases, minutes.
    #[arg(long, default_value_t = 30)]
    window_minutes: i64,
    /// Attribution window for returns, days.
    #[arg(long, default_value_t = 30)]
    return_window_days: i64,
    /// Keep served items that have no impression event (default: only items shown).
    #[arg(long)]
    all_served: bool,
    /// Keep rows whose attribution window had not closed at the log's end (their labels may
    /// still change; default: left out and counted as open_window_rows).
    #[arg(long)]
    include_open: bool,
    /// Keep the logged candidates that were not returned (propensity 0), so a candidate policy
    /// can re-rank everything the logging policy saw (`fitrank evaluate`'s off-policy estimates).
    /// Implies --all-served.
    #[arg(long)]
    candidates: bool,
}

fn parse_time_arg(s: &str) -> Result<i64, String> {
    fitrank::domain::parse_time(s).ok_or_else(|| format!("{s:?} is neither ms since the epoch nor RFC 3339"))
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["generate", "data"])))]
struct TrainArgs {
    /// Train on data from the built-in synthetic generator.
    #[arg(long)]
    generate: bool,
    /// Train on a table: a `fitrank export` file or any table mapped onto its layout (.parquet or .csv).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Rename a column of --data to the name fitrank expects, OURS=THEIRS (repeatable),
    /// e.g. --map label_purchase=bought --map user.age_band=age.
    #[arg(long = "map", value_parser = parse_mapping)]
    mappings: Vec<(String, String)>,
    /// Recompute features from the raw-input columns of --data (required for tables that are not
    /// exports of this schema; missing raw columns take documented defaults).
    #[arg(long)]
    recompute: bool,
    /// What the purchase head learns from --data: `purchases` (label_purchase) or
    /// `net-purchases` (label_net_purchase: purchases no return reversed), so that the policy's
    /// purchase_weight ranks by what sellers keep.
    #[arg(long, default_value = "purchases", value_parser = ["purchases", "net-purchases"])]
    objective: String,
    /// What the purchase head is fitted for: `pointwise` (log loss over every shown row) or
    /// `ranking` (the order of sessions within each served ranking of --data, by its ranking_id,
    /// then calibrated to probabilities on every row; needs --identity-buckets 0). See
    /// `fitrank_lab::train::ranking`.
    #[arg(long, value_enum, default_value = "pointwise")]
    purchase_objective: train::PurchaseObjective,
    /// Split rows by time (last shares are validation and test) or randomly by --seed.
    #[arg(long, default_value = "time", value_parser = ["time", "random"])]
    split: String,
    /// Share of rows for validation (choosing alpha).
    #[arg(long, default_value_t = 0.1)]
    validation: f64,
    /// Share of rows for the test metrics in the manifest.
    #[arg(long, default_value_t = 0.1)]
    test: f64,
    /// The generated world (with --generate); its seed also seeds a random split.
    #[command(flatten)]
    world: WorldArgs,
    /// L2 regularisation strengths to try, comma-separated; chosen per head on validation.
    #[arg(long, value_delimiter = ',', default_value = "0.1,1,10")]
    alphas: Vec<f64>,
    /// Most L-BFGS iterations per head.
    #[arg(long, default_value_t = 200)]
    max_iterations: u64,
    /// Optimiser: `sparse` (one pass per evaluation over the rows' non-zeros) or `linfa`
    /// (linfa-logistic on a dense matrix, the reference); same objective, same weights.
    #[arg(long, default_value = "sparse")]
    solver: train::fit::Solver,
    /// Slots per kind of the identity block: a learned weight per hashed user id and host id
    /// (from the table's `user_id` and `session.host_id` columns); 0 for none. A power of two a few
    /// times the number of distinct users keeps collisions rare; each N costs 16 bytes of memory
    /// (two kinds, two heads) and about 45 bytes of weights.json. `auto` (the default) trains
    /// without the block, with it (four slots per distinct user), and with it and 8 latent
    /// factors, and keeps the one whose purchase head predicts the validation split best (the
    /// latest rows under the time split); it ignores --factor-dims. Ids learned in one world mean
    /// nothing in another: give 0 for a model that will serve other users.
    #[arg(long, default_value = "auto", value_parser = parse_identity_buckets)]
    identity_buckets: IdentityBuckets,
    /// Latent factors per identity slot: the dot product of the user's and the host's factors is
    /// added to the logit (matrix factorisation of who engages with whom, learned with the
    /// heads; needs --identity-buckets and the sparse solver); 0 for none. Each dimension costs as
    /// much memory as the identity block itself.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=i64::from(fitrank::features::identity::MAX_FACTOR_DIMS)))]
    factor_dims: u32,
    /// L2 strength on the latent factors (fixed: --alphas chooses the weights' strength); not
    /// used with --factor-samples, whose strengths are sampled.
    #[arg(long, default_value_t = train::DEFAULT_FACTOR_ALPHA)]
    factor_alpha: f64,
    /// Fit the latent factors as a Bayesian probit factorisation by Gibbs sampling, keeping this
    /// many posterior draws (the model serves their mean: draws × factor dims + 2 values per
    /// slot); 0 fits them by alternating least squares.
    #[arg(long, default_value_t = 0)]
    factor_samples: u32,
    /// Features to fit the heads without, comma-separated: names, prefixes ending in `*`
    /// (`x.fit&category=*`), or `declared`: every feature that reads the declared target directly,
    /// so that a declaration reaches the model only through the targeting credit its buyers
    /// confirm (docs/decisions/0017; the shipped model is fitted so). Their weights are 0 and the
    /// manifest lists them; the rows and the export keep them.
    #[arg(long, value_delimiter = ',')]
    exclude_features: Vec<String>,
    /// Models folder to write into.
    #[arg(long, default_value = "models")]
    models: PathBuf,
    /// Model name.
    #[arg(long, default_value = "default")]
    name: String,
    /// Version name; default: the current UTC time, YYYYMMDD-HHMMSS.
    #[arg(long)]
    version: Option<String>,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// A `fitrank export` file (.parquet or .csv).
    #[arg(long)]
    data: PathBuf,
    /// Experiment name.
    #[arg(long)]
    experiment: String,
    /// The service's experiments file (`<data_dir>/experiments.json`): the experiment's kind,
    /// control arm and the arms' weights (for the sample-ratio check). Or `--url`.
    #[arg(long, conflicts_with = "url")]
    experiments: Option<PathBuf>,
    /// A running service to read the experiment's definition from (`AdminService.ListExperiments`).
    #[arg(long)]
    url: Option<String>,
    /// Control arm (default: the experiment's control in the experiments file, else "control").
    #[arg(long)]
    control: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Write the lift chart (SVG) here.
    #[arg(long)]
    chart: Option<PathBuf>,
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Service address.
    #[arg(long, env = "FITRANK_URL", default_value = "http://127.0.0.1:50051")]
    url: String,
    /// Feed requests to simulate.
    #[arg(long, default_value_t = 2_000)]
    requests: usize,
    /// Slots shown per request.
    #[arg(long, default_value_t = 5)]
    slots: u32,
    /// Seed of the users' behaviour.
    #[arg(long, default_value_t = 1)]
    behaviour_seed: u64,
    /// The world (seed 7 is the world the shipped model was trained on).
    #[command(flatten)]
    world: WorldArgs,
    /// The world's family: `default` (the generator's, the shipped model's own), `shoppers`
    /// (hidden shopper types, wrong and too broad declarations), or a world file (TOML; see
    /// `fitrank_lab::worlds`).
    #[arg(long = "world", default_value = "default")]
    family: String,
    /// Ranking policies, round-robin over requests.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "fitrank,random,popularity,oracle,demographic")]
    policies: Vec<fitrank_lab::simulate::SimPolicy>,
    /// Feed requests per simulated second (the simulated clock advances 1 / rate per request).
    #[arg(long, default_value_t = fitrank_lab::simulate::DEFAULT_RATE)]
    rate: f64,
    /// Simulated time of the first request, in hours after the start of the world's day
    /// (its sessions start in the first 20 hours and run one to four).
    #[arg(long, default_value_t = fitrank_lab::simulate::DEFAULT_START_HOUR)]
    start_hour: f64,
    /// Cold start is scored over the first this many simulated minutes of each session going
    /// live during the run.
    #[arg(long, default_value_t = fitrank_lab::simulate::DEFAULT_COLD_MINUTES)]
    cold_minutes: u32,
    /// Added to the true expected purchases of on-target sessions in the oracle's order: 0 is the
    /// unconstrained upper bound; a positive weight shows the purchases reachable at a higher
    /// on-target share (the cost of the targeting constraint itself).
    #[arg(long, default_value_t = 0.0)]
    oracle_on_target_weight: f64,
    /// The posterior oracle's state (`--policies posterior`): read at the start when the file
    /// exists, written at the end, so that a run continuing a warm-up starts from what the
    /// warm-up's users did (given, it is kept up to date whatever the policies).
    #[arg(long)]
    posterior_state: Option<PathBuf>,
    /// Do not upsert the world's users and the sessions live at the start first (a run continuing
    /// an earlier one on the same service: give the earlier run's end as --start-hour).
    #[arg(long)]
    no_setup: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Output file: .parquet or .csv.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    world: WorldArgs,
}

/// The built-in generator's world.
#[derive(clap::Args)]
struct WorldArgs {
    /// Seed of the generator (and of a random split).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Generated impressions (rows).
    #[arg(long, default_value_t = 120_000)]
    rows: usize,
    /// Generated users.
    #[arg(long, default_value_t = 5_000)]
    users: usize,
    /// Generated live sessions.
    #[arg(long, default_value_t = 600)]
    sessions: usize,
}

impl WorldArgs {
    fn config(&self) -> train::generator::GeneratorConfig {
        train::generator::GeneratorConfig {
            users: self.users,
            sessions: self.sessions,
            impressions: self.rows,
            seed: self.seed,
        }
    }

    fn describe(&self) -> String {
        format!("generated(users={},sessions={},rows={})", self.users, self.sessions, self.rows)
    }
}

#[derive(clap::Args)]
struct EvaluateArgs {
    /// The data: a `fitrank export` file or a mapped table (.parquet or .csv).
    #[arg(long)]
    data: PathBuf,
    /// Model to evaluate, NAME (newest version) or NAME/VERSION; repeat to compare versions.
    #[arg(long = "model", default_value = "default")]
    models: Vec<String>,
    /// Models folder.
    #[arg(long = "models-dir", default_value = "models")]
    models_dir: PathBuf,
    /// Rename a column, OURS=THEIRS (repeatable).
    #[arg(long = "map", value_parser = parse_mapping)]
    mappings: Vec<(String, String)>,
    /// Recompute features from raw-input columns.
    #[arg(long)]
    recompute: bool,
    /// Also score rows at or before the end of a version's training data (by default only the
    /// rows after every evaluated version's training data are scored, the same rows for each).
    #[arg(long)]
    include_training_rows: bool,
    /// Cut-off of NDCG.
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// Folder for ROC and reliability plots (SVG).
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also record the comparison beside the versions (`<models>/<name>/comparisons/`), where the
    /// service's console shows the newest one.
    #[arg(long)]
    record: bool,
}

/// `--identity-buckets`: `auto` (None) or a number of slots.
#[derive(Debug, Clone, Copy)]
struct IdentityBuckets(Option<u32>);

/// `auto` or a number of identity slots within the allowed range.
fn parse_identity_buckets(s: &str) -> Result<IdentityBuckets, String> {
    if s == "auto" {
        return Ok(IdentityBuckets(None));
    }
    let n: u32 = s.parse().map_err(|_| format!("{s:?} is neither auto nor a number"))?;
    let max = fitrank::features::identity::MAX_BUCKETS;
    if n > max {
        return Err(format!("{n} identity buckets: at most {max}"));
    }
    Ok(IdentityBuckets(Some(n)))
}

fn parse_mapping(s: &str) -> Result<(String, String), String> {
    let (ours, theirs) = s.split_once('=').ok_or("expected OURS=THEIRS")?;
    Ok((ours.to_owned(), theirs.to_owned()))
}

fn main() -> ExitCode {
    fitrank::cli::init_logging("info");
    let args = Args::parse();
    let result = match args.command {
        Command::Train(a) => run_train(a),
        Command::Export(a) => run_export(a),
        Command::Evaluate(a) => run_evaluate(a),
        Command::Generate(a) => run_generate(a),
        Command::Report(a) => run_report(a),
        Command::Simulate(a) => run_simulate(a),
        Command::Movielens(a) => run_movielens(a),
    };
    fitrank::cli::exit_code(result)
}

type AnyError = fitrank::cli::CommandError;

fn run_train(a: TrainArgs) -> Result<(), AnyError> {
    let started = std::time::Instant::now();
    let version = a.version.unwrap_or_else(|| fitrank::domain::version_stamp(fitrank::domain::now_ms()));
    if !fitrank::model::is_valid_version(&version) || !fitrank::model::is_valid_version(&a.name) {
        return Err(format!("invalid model name or version {}/{}", a.name, version).into());
    }
    if a.alphas.is_empty() || a.alphas.iter().any(|x| !x.is_finite() || *x < 0.0) {
        return Err("--alphas must be finite numbers >= 0".into());
    }
    let (mut data, source) = match &a.data {
        None => {
            eprintln!("generating {} impressions (seed {})...", a.world.rows, a.world.seed);
            (train::generator::generate(a.world.config()), a.world.describe())
        }
        Some(path) => {
            eprintln!("reading {}...", path.display());
            let mut table = fitrank_lab::export::Table::read(path)?;
            table.rename(&a.mappings)?;
            let purchase_label = if a.objective == "net-purchases" { "label_net_purchase" } else { "label_purchase" };
            let source = train::table::TableSource {
                recompute: a.recompute,
                purchase_label: purchase_label.into(),
                ..Default::default()
            };
            eprintln!(
                "building features for {} rows{}...",
                table.rows(),
                if a.recompute { " (recomputed)" } else { "" }
            );
            (train::table::dataset(&mut table, &source)?, path.display().to_string())
        }
    };
    let excluded = train::feature_positions(&a.exclude_features)?;
    data.exclude(&excluded);
    let split = match a.split.as_str() {
        "random" => train::Split::Random { seed: a.world.seed, validation: a.validation, test: a.test },
        _ => train::Split::Time { validation: a.validation, test: a.test },
    };
    eprintln!("fitting engage and purchase heads on {} rows ({} alphas)...", data.len(), a.alphas.len());
    let opts = train::TrainOptions {
        name: a.name.clone(),
        version: version.clone(),
        alphas: a.alphas,
        max_iterations: a.max_iterations,
        solver: a.solver,
        split,
        source,
        seed: a.world.seed,
        identity_buckets: a.identity_buckets.0.unwrap_or(0),
        factor_dims: a.factor_dims,
        factor_alpha: a.factor_alpha,
        factor_samples: a.factor_samples,
        purchase_objective: a.purchase_objective,
        excluded,
    };
    if opts.purchase_objective == train::PurchaseObjective::Ranking && a.identity_buckets.0 != Some(0) {
        return Err("--purchase-objective ranking fits no identity block: give --identity-buckets 0".into());
    }
    let no_ids = data.ids.iter().all(|k| *k == fitrank::features::IdentityKeys::default());
    if let Some(buckets) = a.identity_buckets.0.filter(|b| *b > 0 && no_ids) {
        eprintln!("warning: --identity-buckets {buckets} but the rows carry no user or host ids");
    }
    let fitting = fitrank_lab::progress::spinner("fitting both heads");
    fitting.enable_steady_tick(std::time::Duration::from_millis(200));
    let artifact = match a.identity_buckets.0 {
        Some(_) => train::train(&data, &opts),
        None => train::train_choosing_identity(&data, &opts).map(|(artifact, trials)| {
            let chosen = (artifact.manifest.identity_buckets, artifact.manifest.factor_dims);
            if !trials.is_empty() {
                eprintln!("identity chosen on validation: buckets {}, factor dimensions {}", chosen.0, chosen.1);
            }
            artifact
        }),
    };
    fitting.finish_and_clear();
    let artifact = artifact?;
    let dir = a.models.join(&a.name).join(&version);
    artifact.save(&dir)?;
    println!("wrote {}", dir.display());
    for (k, v) in &artifact.manifest.metrics {
        println!("  {k:<28} {v:.4}");
    }
    eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

fn run_export(a: ExportArgs) -> Result<(), AnyError> {
    let dirs = if a.log_dirs.is_empty() { vec![PathBuf::from("data/featurelog")] } else { a.log_dirs };
    let options = fitrank_lab::export::JoinOptions {
        from_ms: a.from.unwrap_or(0),
        to_ms: a.to.unwrap_or(i64::MAX),
        window_ms: a.window_minutes * 60_000,
        return_window_ms: a.return_window_days * 86_400_000,
        require_impression: !a.all_served,
        include_open: a.include_open,
        include_candidates: a.candidates,
    };
    let joining = fitrank_lab::progress::spinner("joining the feature log");
    joining.enable_steady_tick(std::time::Duration::from_millis(200));
    let exported = fitrank_lab::export::export(&dirs, &options);
    joining.finish_and_clear();
    let (table, stats) = exported?;
    fitrank_lab::export::write(&table, &a.out)?;
    println!("wrote {} rows x {} columns to {}", table.rows(), table.columns.len(), a.out.display());
    println!("{}", serde_json::to_string_pretty(&stats)?);
    if stats.open_window_rows > 0 {
        eprintln!(
            "note: left out {} rows ranked in the last {} minutes of the log, whose attribution window was still open \
             (--include-open keeps them)",
            stats.open_window_rows, a.window_minutes
        );
    }
    if stats.skewed_rows > 0 {
        eprintln!("warning: {} rows' features differ from a recomputation (training/serving skew)", stats.skewed_rows);
    }
    Ok(())
}

fn run_evaluate(a: EvaluateArgs) -> Result<(), AnyError> {
    let mut table = fitrank_lab::export::Table::read(&a.data)?;
    table.rename(&a.mappings)?;
    let source = train::table::TableSource { recompute: a.recompute, ..Default::default() };
    let data = train::table::dataset(&mut table, &source)?;
    let models = a
        .models
        .iter()
        .map(|spec| fitrank_lab::evaluate::load_model(&a.models_dir, spec))
        .collect::<Result<Vec<_>, _>>()?;
    let (table, data) = if a.include_training_rows {
        (table, data)
    } else {
        let common = fitrank_lab::evaluate::common_later_rows(&data, &models);
        if common.rows.is_empty() {
            return Err(format!(
                "every row of {} is at or before the end of a version's training data ({}): score later data, \
                 or pass --include-training-rows to score the versions on rows they may have learned from",
                a.data.display(),
                fitrank::domain::rfc3339(common.after_ms)
            )
            .into());
        }
        if common.left_out > 0 {
            eprintln!(
                "scoring the {} rows after every version's training data (after {}); {} earlier rows left out",
                common.rows.len(),
                fitrank::domain::rfc3339(common.after_ms),
                common.left_out
            );
        }
        (table.select(&common.rows), data.select(&common.rows))
    };
    let report = fitrank_lab::evaluate::evaluate(&table, &data, &models, &fitrank::policy::Policy::default(), a.k)?;
    if a.record {
        let comparison = fitrank_lab::evaluate::comparison(&report, &a.data.display().to_string(), &data.time_ms);
        let mut names: Vec<&str> = models.iter().map(|m| m.manifest.name.as_str()).collect();
        names.dedup();
        for name in names {
            let path = fitrank::model::comparison::record(&a.models_dir, name, &comparison)?;
            eprintln!("recorded the comparison in {}", path.display());
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", fitrank_lab::evaluate::render_table(&report));
    }
    if let Some(dir) = a.plots {
        for file in fitrank_lab::evaluate::write_plots(&dir, &data, &models)? {
            eprintln!("wrote {}", file.display());
        }
    }
    Ok(())
}

fn run_generate(a: GenerateArgs) -> Result<(), AnyError> {
    let generating = fitrank_lab::progress::spinner("generating rows");
    generating.enable_steady_tick(std::time::Duration::from_millis(200));
    let table = train::generator::generate(a.world.config()).to_table();
    generating.finish_and_clear();
    fitrank_lab::export::write(&table, &a.out)?;
    println!("wrote {} rows x {} columns to {}", table.rows(), table.columns.len(), a.out.display());
    Ok(())
}

fn run_report(a: ReportArgs) -> Result<(), AnyError> {
    let defined = experiment_definition(&a)?;
    if defined.kind == fitrank::experiment::Kind::Interleave {
        let report = fitrank_lab::report::interleaving(&fitrank_lab::export::Table::read(&a.data)?, &a.experiment)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.to_text());
        }
        return Ok(());
    }
    let control = a.control.unwrap_or(defined.control);
    let weights = defined.arms.into_iter().map(|arm| (arm.name, arm.weight)).collect();
    let report = fitrank_lab::report::report_file(&a.data, &a.experiment, &control, &weights)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    if let Some(path) = &a.chart {
        report.write_chart(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The definition of `--experiment`, from `--experiments FILE` or the service at `--url`; an error
/// when neither is given or neither defines it (weights are never assumed: a wrong weight raises a
/// false sample-ratio alert).
fn experiment_definition(a: &ReportArgs) -> Result<fitrank::experiment::ExperimentDef, AnyError> {
    let (defined, source) = match (&a.experiments, &a.url) {
        (Some(path), _) => {
            let bytes = std::fs::read(path).map_err(|e| format!("reading --experiments {}: {e}", path.display()))?;
            let file: fitrank::experiment::registry::ExperimentsFile =
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            (file.experiments, path.display().to_string())
        }
        (None, Some(url)) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let listed = runtime.block_on(async {
                let channel = tonic::transport::Channel::from_shared(url.clone())?.connect().await?;
                let mut admin = fitrank::proto::v1::admin_service_client::AdminServiceClient::new(channel);
                let r = admin.list_experiments(fitrank::proto::v1::ListExperimentsRequest {}).await?;
                Ok::<_, AnyError>(r.into_inner().experiments)
            })?;
            let defs = listed
                .into_iter()
                .map(fitrank::api::convert::experiment_from_proto)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the service at {url} listed an invalid experiment: {e}"))?;
            (defs, url.clone())
        }
        (None, None) => {
            return Err("fitrank report needs the experiment's definition (its kind, control arm and arm weights): \
                 --experiments <data_dir>/experiments.json of the service, or --url of the running service"
                .into());
        }
    };
    defined
        .into_iter()
        .find(|e| e.name == a.experiment)
        .ok_or_else(|| format!("{source} defines no experiment named {:?}", a.experiment).into())
}

fn run_simulate(a: SimulateArgs) -> Result<(), AnyError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let channel = tonic::transport::Channel::from_shared(a.url.clone())?.connect().await?;
        let spec = fitrank_lab::worlds::WorldSpec::load(&a.family)?;
        let world = train::generator::World::of(&spec, a.world.config());
        if !(a.start_hour.is_finite() && a.start_hour >= 0.0) {
            return Err(format!("--start-hour must be a non-negative number, got {}", a.start_hour).into());
        }
        let start_ms = fitrank_lab::simulate::world_time_ms(a.start_hour);
        if !a.no_setup {
            fitrank_lab::simulate::setup(channel.clone(), &world, start_ms).await?;
        }
        let options = fitrank_lab::simulate::SimOptions {
            start_ms,
            rate: a.rate,
            cold_minutes: a.cold_minutes,
            oracle_on_target_weight: a.oracle_on_target_weight,
            posterior_state: a.posterior_state.clone(),
            ..fitrank_lab::simulate::SimOptions::new(a.requests, a.slots, a.behaviour_seed)
        };
        let card = fitrank_lab::simulate::run(channel, &world, &options, &a.policies).await?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&card)?);
        } else {
            print!("{}", card.to_text());
        }
        Ok(())
    })
}

#[derive(clap::Args)]
struct MovielensArgs {
    /// Print JSON instead of a line of text.
    #[arg(long)]
    json: bool,
    /// MovieLens 100k directory.
    #[arg(long)]
    data: PathBuf,
    /// Seed of the MovieLens split.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// MovieLens feature set.
    #[arg(long, value_enum, default_value = "full")]
    features: fitrank_lab::movielens::FeatureSet,
    /// L2 strengths tried on the MovieLens validation split.
    #[arg(long, value_delimiter = ',', default_value = "0.3,1,3,10,30,100")]
    alphas: Vec<f64>,
    /// Slots per kind of the identity block (user id, movie id as the host) in the MovieLens
    /// model; 0 leaves the ids out.
    #[arg(long, default_value_t = fitrank_lab::movielens::IDENTITY_BUCKETS)]
    identity_buckets: u32,
    /// Latent factors per identity slot in the MovieLens model (the user × movie term, see
    /// `fitrank train --factor-dims`); 0 for none.
    #[arg(long, default_value_t = fitrank_lab::movielens::FACTOR_DIMS)]
    factor_dims: u32,
    /// L2 strength on the MovieLens model's factors (alternating least squares only).
    #[arg(long, default_value_t = fitrank_lab::movielens::FACTOR_ALPHA)]
    factor_alpha: f64,
    /// Posterior draws of the MovieLens model's Bayesian factors (see `fitrank train
    /// --factor-samples`); 0 fits them by alternating least squares.
    #[arg(long, default_value_t = fitrank_lab::movielens::FACTOR_SAMPLES)]
    factor_samples: u32,
}

/// `fitrank movielens`: loads the data set, runs the protocol, prints test AUC and log loss.
fn run_movielens(args: MovielensArgs) -> Result<(), AnyError> {
    let data = fitrank_lab::movielens::load(&args.data)?;
    let protocol = fitrank_lab::movielens::Protocol {
        seed: args.seed,
        features: args.features,
        alphas: args.alphas.clone(),
        max_iterations: 500,
        identity_buckets: args.identity_buckets,
        factor_dims: args.factor_dims,
        factor_alpha: args.factor_alpha,
        factor_samples: args.factor_samples,
    };
    let report = fitrank_lab::movielens::run(&data, &protocol)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "MovieLens 100k, {:?} features, identity buckets {}, factor dimensions {}, seed {}: test AUC {:.4}, log loss {:.4} (alpha {}, {} train / {} validation / {} test rows)",
            report.features,
            report.identity_buckets,
            report.factor_dims,
            report.seed,
            report.auc,
            report.logloss,
            report.alpha,
            report.train_rows,
            report.validation_rows,
            report.test_rows
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fitrank train …` runs `fitrank-lab train …` (`fitrank::cli::external`): the command word
    /// is the lab's subcommand.
    #[test]
    fn every_lab_command_is_a_subcommand_as_fitrank_passes_it_on() {
        for words in [
            &["fitrank-lab", "train", "--generate"][..],
            &["fitrank-lab", "export", "--out", "x.csv"],
            &["fitrank-lab", "evaluate", "--data", "x.csv"],
            &["fitrank-lab", "report", "--data", "x.csv", "--experiment", "e"],
            &["fitrank-lab", "generate", "--out", "x.csv"],
            &["fitrank-lab", "simulate", "--world", "shoppers"],
            &["fitrank-lab", "movielens", "--data", "ml-100k"],
        ] {
            assert!(Args::try_parse_from(words).is_ok(), "{words:?}");
        }
    }

    /// Weights are never assumed: without a definition, or with one that lacks the experiment,
    /// the report refuses.
    #[test]
    fn the_report_refuses_without_the_experiments_definition() {
        let args = |extra: &[&str]| {
            let mut words = vec!["fitrank-lab", "report", "--data", "x.csv", "--experiment", "aa"];
            words.extend_from_slice(extra);
            match Args::try_parse_from(words).unwrap().command {
                Command::Report(a) => a,
                _ => unreachable!(),
            }
        };
        let err = experiment_definition(&args(&[])).unwrap_err().to_string();
        assert!(err.contains("--experiments") && err.contains("--url"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("experiments.json");
        let err = experiment_definition(&args(&["--experiments", missing.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("reading --experiments"), "{err}");
        std::fs::write(&missing, r#"{"experiments": []}"#).unwrap();
        let err = experiment_definition(&args(&["--experiments", missing.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("defines no experiment named \"aa\""), "{err}");
    }
}
