//! The `fitrank` binary: `serve` (the gRPC service) and `call` (a command-line client of it).
//!
//! The lab's and the instruments' commands (`train`, `export`, `evaluate`, `report`, `generate`,
//! `simulate`, `movielens`, `bench`) are the binaries `fitrank-lab` and `fitrank-bench` (crates
//! in `crates/`); `fitrank train …` runs `fitrank-lab train …` when it is installed beside this
//! binary or on the `PATH` ([`cli::external`]), so the serving binary links none of their code.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fitrank::{cli, config, server};

/// mimalloc instead of glibc's malloc: under `Rank` load glibc's allocator took about 15% of the
/// server's CPU (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "fitrank", version, about = "Ranks live shopping sessions for users, over gRPC",
    after_help = cli::external::HELP)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC service.
    Serve(ServeArgs),
    /// Call a running service (catalog, ranking, events, admin).
    Call(cli::CallArgs),
    /// Make access tokens for the access file.
    Access(cli::access::AccessArgs),
    /// A lab or instrument command, run by `fitrank-lab` or `fitrank-bench`.
    #[command(external_subcommand)]
    External(Vec<OsString>),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file (defaults < file < environment < flags).
    #[arg(long, env = "FITRANK_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, HOST:PORT.
    #[arg(long, env = "FITRANK_ADDR")]
    addr: Option<std::net::SocketAddr>,
    /// Log lines as text (for people) or JSON (one object per line, with a call's trace id).
    #[arg(long, env = "FITRANK_LOG_FORMAT", value_enum, default_value_t = cli::LogFormat::Text)]
    log_format: cli::LogFormat,
    /// Address of the HTTP port (/metrics, /healthz, /readyz, the console at /console/), HOST:PORT.
    #[arg(long, env = "FITRANK_HTTP_ADDR")]
    http_addr: Option<std::net::SocketAddr>,
    /// Models folder.
    #[arg(long, env = "FITRANK_MODELS")]
    models: Option<PathBuf>,
    /// Model name to serve (a folder under the models folder).
    #[arg(long, env = "FITRANK_MODEL_NAME")]
    model_name: Option<String>,
    /// Folder of the embedded store, the experiments file and the feature log.
    #[arg(long, env = "FITRANK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Online state: `embedded`, `redis://HOST:PORT` or `redis+cluster://HOST:PORT,HOST:PORT,...`.
    #[arg(long, env = "FITRANK_STORE")]
    store: Option<String>,
    /// TLS on the gRPC port: the server's certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "FITRANK_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "FITRANK_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// CA certificates (PEM) of client certificates: turns on mTLS.
    #[arg(long, env = "FITRANK_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// Access file: hashed tokens and client-certificate names with their roles (feed, operator,
    /// viewer). Without it, every caller may call everything.
    #[arg(long, env = "FITRANK_ACCESS_FILE")]
    access_file: Option<PathBuf>,
    /// Serve without an access file on an address other than loopback (anyone who reaches the
    /// port may then change experiments and models).
    #[arg(long, env = "FITRANK_ALLOW_OPEN_ADMIN")]
    allow_open_admin: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Command::External(words) = args.command {
        return cli::external::run(&words);
    }
    let format = match &args.command {
        Command::Serve(a) => a.log_format,
        _ => cli::LogFormat::Text,
    };
    fitrank::cli::init_logging_as("info", format);
    let result = match args.command {
        Command::Serve(a) => serve(a),
        Command::Call(a) => cli::call(a),
        Command::Access(a) => cli::access::access(a),
        Command::External(_) => unreachable!("dispatched above"),
    };
    fitrank::cli::exit_code(result)
}

type AnyError = fitrank::cli::CommandError;

/// Raises the soft limit on open files to the hard one: each connection is a descriptor, and the
/// usual soft default (1,024) would cap the server far below `connections.max_connections`.
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read or write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn serve(a: ServeArgs) -> Result<(), AnyError> {
    let overrides = config::Overrides {
        addr: a.addr,
        http_addr: a.http_addr,
        models_dir: a.models,
        model_name: a.model_name,
        data_dir: a.data_dir,
        store: a.store,
        tls_cert: a.tls_cert,
        tls_key: a.tls_key,
        tls_client_ca: a.tls_client_ca,
        access_file: a.access_file,
        allow_open_admin: a.allow_open_admin.then_some(true),
    };
    let config = config::Config::load(a.config.as_deref(), overrides)?;
    // A write past a file size limit (`ulimit -f`, systemd's LimitFSIZE) must fail like a write
    // to a full disk, which the stores answer and recover from, not kill the process.
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    raise_descriptor_limit();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.worker_threads > 0 {
        builder.worker_threads(config.worker_threads);
    }
    let runtime = builder.enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        let http = match config.http_addr {
            Some(addr) => {
                Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("HTTP port {addr}: {e}"))?)
            }
            None => None,
        };
        server::run_with_http(config, listener, http, server::shutdown_signal()).await?;
        Ok(())
    })
}
