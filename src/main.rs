//! The `fitrank` binary: `serve`, `train`, and `call` (a command-line gRPC client).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fitrank::{cli, config, server, train};

#[derive(Parser)]
#[command(name = "fitrank", version, about = "Ranks live shopping sessions for users, over gRPC")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC service.
    Serve(ServeArgs),
    /// Train a model version and write it under the models folder.
    Train(TrainArgs),
    /// Export served rows joined to outcomes (Parquet or CSV) for training.
    Export(ExportArgs),
    /// Call a running service (catalog, ranking, events, admin).
    Call(cli::CallArgs),
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
}

fn parse_time_arg(s: &str) -> Result<i64, String> {
    fitrank::domain::parse_time(s).ok_or_else(|| format!("{s:?} is neither ms since the epoch nor RFC 3339"))
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file (defaults < file < environment < flags).
    #[arg(long, env = "FITRANK_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, HOST:PORT.
    #[arg(long, env = "FITRANK_ADDR")]
    addr: Option<std::net::SocketAddr>,
    /// Models folder.
    #[arg(long, env = "FITRANK_MODELS")]
    models: Option<PathBuf>,
    /// Model name to serve (a folder under the models folder).
    #[arg(long, env = "FITRANK_MODEL_NAME")]
    model_name: Option<String>,
    /// Folder of the embedded store.
    #[arg(long, env = "FITRANK_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Train on data from the built-in synthetic generator (the only source so far).
    #[arg(long, required = true)]
    generate: bool,
    /// Seed of the generator.
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
    /// L2 regularisation strength.
    #[arg(long, default_value_t = 1.0)]
    alpha: f64,
    /// Most L-BFGS iterations per head.
    #[arg(long, default_value_t = 200)]
    max_iterations: u64,
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("FITRANK_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let result = match args.command {
        Command::Serve(a) => serve(a),
        Command::Train(a) => run_train(a),
        Command::Export(a) => run_export(a),
        Command::Call(a) => cli::call(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

fn serve(a: ServeArgs) -> Result<(), AnyError> {
    let overrides =
        config::Overrides { addr: a.addr, models_dir: a.models, model_name: a.model_name, data_dir: a.data_dir };
    let config = config::Config::load(a.config.as_deref(), overrides)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        server::run(config, listener, server::shutdown_signal()).await?;
        Ok(())
    })
}

fn run_train(a: TrainArgs) -> Result<(), AnyError> {
    let gen_config =
        train::generator::GeneratorConfig { users: a.users, sessions: a.sessions, impressions: a.rows, seed: a.seed };
    let started = std::time::Instant::now();
    eprintln!("generating {} impressions (seed {})...", a.rows, a.seed);
    let data = train::generator::generate(gen_config);
    eprintln!("fitting engage and purchase heads on {} rows...", data.len());
    let version = a.version.unwrap_or_else(|| fitrank::domain::version_stamp(fitrank::domain::now_ms()));
    if !fitrank::model::is_valid_version(&version) || !fitrank::model::is_valid_version(&a.name) {
        return Err(format!("invalid model name or version {}/{}", a.name, version).into());
    }
    let opts = train::TrainOptions {
        name: a.name.clone(),
        version: version.clone(),
        alpha: a.alpha,
        max_iterations: a.max_iterations,
        holdout: 0.2,
        source: format!("generated(users={},sessions={},rows={})", a.users, a.sessions, a.rows),
        seed: a.seed,
    };
    let artifact = train::train(&data, &opts)?;
    let dir = a.models.join(&a.name).join(&version);
    artifact.save(&dir)?;
    println!("wrote {}", dir.display());
    for (k, v) in &artifact.manifest.metrics {
        println!("  {k:<20} {v:.4}");
    }
    eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

fn run_export(a: ExportArgs) -> Result<(), AnyError> {
    let dirs = if a.log_dirs.is_empty() { vec![PathBuf::from("data/featurelog")] } else { a.log_dirs };
    let options = fitrank::export::JoinOptions {
        from_ms: a.from.unwrap_or(0),
        to_ms: a.to.unwrap_or(i64::MAX),
        window_ms: a.window_minutes * 60_000,
        return_window_ms: a.return_window_days * 86_400_000,
        require_impression: !a.all_served,
    };
    let (table, stats) = fitrank::export::export(&dirs, &options)?;
    fitrank::export::write(&table, &a.out)?;
    println!("wrote {} rows x {} columns to {}", table.rows(), table.columns.len(), a.out.display());
    println!("{}", serde_json::to_string_pretty(&stats)?);
    if stats.skewed_rows > 0 {
        eprintln!("warning: {} rows' features differ from a recomputation (training/serving skew)", stats.skewed_rows);
    }
    Ok(())
}
