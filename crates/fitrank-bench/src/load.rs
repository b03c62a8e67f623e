//! `fitrank bench rank|ingest|floor`: a gRPC load generator for a running service, using the generated clients
//! over several connections.
//!
//! - **closed loop** (`--concurrency N`, no `--rate`): N workers each send the next request when
//!   the previous one is answered; measures maximum throughput.
//! - **fixed rate** (`--rate R`): requests are due at t0 + i/R whether or not earlier ones were
//!   answered, and latency is measured from that *intended* send time, so a server that falls
//!   behind shows its queueing in the percentiles (no coordinated omission).
//!
//! Latencies go into an HDR histogram (µs, 3 significant digits). Targets: `rank` (Rank with
//! `--candidates` explicit ids), `ingest` (IngestBatch of `--batch` events; throughput reported in
//! events/s), `floor` (grpc.health.v1 Check: an empty unary call, the transport's floor). One
//! target runs without a service: `stalls` (the machine's own stalls of running threads,
//! [`crate::stalls`]: the control for a latency figure).
//!
//! Two readings are taken over the same measured window to say whose tail a tail is: the
//! server's own time inside `Rank` (`AdminService.GetRankLatency`, reset when the window starts;
//! absent for a server without it, such as the Python baseline), and the machine's CPU time from
//! `/proc/stat`, whose *steal* share is the time the hypervisor gave this VM's CPUs to someone
//! else (Linux only).
//!
//! A third reading measures the machine itself, the way jHiccup does: a thread that does nothing
//! but sleep 1 ms at a time records how late each wake-up is. The lateness is what any thread on
//! this machine (the server's request thread too) can suffer from the hypervisor and the guest's
//! scheduler without doing anything; a request's latency cannot have a shorter tail than that.
//!
//! A fourth reading is the load generator's own: how long its threads waited for a CPU over the
//! window (`/proc/self/task/*/schedstat`). Sends and reads that wait count in the latencies too.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::{Args, ValueEnum};
use fitrank::cli::connect::{Conn as Channel, ConnectArgs};
use serde::Serialize;

use fitrank::domain::now_ms;
use fitrank::metrics::LatencyCounts;
use fitrank::proto::v1::{
    self as pb, admin_service_client::AdminServiceClient, catalog_service_client::CatalogServiceClient,
    event_service_client::EventServiceClient, ranking_service_client::RankingServiceClient,
};

/// What to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// RankingService.Rank.
    Rank,
    /// EventService.IngestBatch.
    Ingest,
    /// grpc.health.v1.Health/Check (empty unary call).
    Floor,
    /// A feed service's mix: every other call a Rank, the others an `Ingest` stream of `--batch`
    /// events sent one message each (many small messages on a shared connection). Failures are
    /// reported by gRPC code.
    Mixed,
    /// Offline: this machine's stalls of running threads, no service involved (--probe-threads,
    /// --duty, --duration; `stalls`).
    Stalls,
    /// Exactly-once ingest: `IngestBatch` calls retried until acknowledged for --duration, then
    /// every session's counters compared with what was acknowledged ([`crate::verify`]). Run it
    /// while replicas are killed and the store restarted (scripts/verify-redis-exactly-once.sh).
    Verify,
}

/// Arguments of `fitrank bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// What to call.
    #[arg(value_enum)]
    target: Target,
    /// Service address, TLS and credentials (`--url`, `--ca`, `--cert`/`--key`, `--token`): a
    /// secured deployment is measured as its clients call it.
    #[command(flatten)]
    connect: ConnectArgs,
    /// HTTP/2 connections; calls are spread round-robin.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests in flight (closed loop).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Fixed rate in requests per second (open loop); omit for closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Measured seconds (after warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up seconds, not measured.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Candidates per Rank request.
    #[arg(long, default_value_t = 500)]
    candidates: usize,
    /// Items returned per Rank.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// The deadline every call carries (grpc-timeout), ms; none by default. A call past it is
    /// cancelled by the client (HTTP/2 RST_STREAM), as a feed service does.
    #[arg(long)]
    pub deadline_ms: Option<u64>,
    /// Events per IngestBatch.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Users of the benchmark catalog (rankings and events cycle through them).
    #[arg(long, default_value_t = 1_000)]
    users: usize,
    /// Sessions that ingest's events go to: the first N of the catalog's 2,000 (a live-commerce
    /// platform's events crowd onto its few live streams; the default spreads them over all).
    #[arg(long, default_value_t = SESSIONS)]
    event_sessions: usize,
    /// Do not upsert the benchmark catalog first.
    #[arg(long)]
    no_setup: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Threads of the stall probe (stalls).
    #[arg(long, default_value_t = 2)]
    probe_threads: usize,
    /// Busy share of each 1 ms period of the stall probe's threads, in (0, 1] (stalls).
    #[arg(long, default_value_t = 0.5)]
    duty: f64,
    /// Client runtime worker threads (1 keeps the load generator from competing with a server on
    /// the same small machine for more than one core).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
}

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub target: Target,
    pub mode: String,
    pub connections: usize,
    pub concurrency: usize,
    pub candidates: usize,
    pub requests: u64,
    pub errors: u64,
    /// Failed calls by gRPC code: how many, and the first one's message.
    pub errors_by_code: std::collections::BTreeMap<String, (u64, String)>,
    pub seconds: f64,
    /// Answered requests per second.
    pub rps: f64,
    /// Items per second: candidates scored (rank), events stored (ingest), calls (floor).
    pub items_per_second: f64,
    /// Answered rankings (`rank`, `mixed`), and those the service marked `degraded` (served
    /// from its local copy because the store did not answer in time).
    pub rankings: u64,
    pub degraded_rankings: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// The server's own time inside `Rank` over the measured window, if it reports it.
    pub server: Option<ServerLatency>,
    /// This machine's CPU time over the measured window, if `/proc/stat` can be read.
    pub host: Option<HostCpu>,
    /// How late a sleeping thread woke up over the measured window.
    pub hiccups: Hiccups,
    /// How long this load generator's own threads waited for a CPU over the measured window, if
    /// `/proc/self/task/*/schedstat` can be read: a late send or a late read counts in the
    /// latencies as much as a late answer.
    pub client: Option<ClientWaits>,
}

/// This process's threads over the measured window, summed (`/proc/self/task/*/schedstat`).
#[derive(Debug, Clone, Serialize)]
pub struct ClientWaits {
    /// Time on a CPU.
    pub ran_ms: f64,
    /// Time runnable but waiting for a CPU (on a VM, also while the CPU it waited on was stopped).
    pub waited_ms: f64,
    /// Times a thread was put on a CPU.
    pub runs: u64,
}

/// `schedstat` of every thread of this process: (ns on a CPU, ns waiting for one, runs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SchedTotals {
    ran_ns: u64,
    waited_ns: u64,
    runs: u64,
}

impl SchedTotals {
    /// Sums the threads alive now; a thread that ended is missing (also one that ends while this
    /// reads), so both readings are taken while the threads of the window live.
    fn read() -> Option<Self> {
        let mut total = SchedTotals::default();
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let Some(t) = std::fs::read_to_string(task.path().join("schedstat")).ok().and_then(|l| Self::parse(&l))
            else {
                continue;
            };
            total.ran_ns += t.ran_ns;
            total.waited_ns += t.waited_ns;
            total.runs += t.runs;
        }
        Some(total)
    }

    /// `<ns on cpu> <ns waiting> <timeslices>`
    fn parse(line: &str) -> Option<Self> {
        let mut v = line.split_whitespace().map(|x| x.parse::<u64>().ok());
        Some(SchedTotals { ran_ns: v.next()??, waited_ns: v.next()??, runs: v.next()?? })
    }

    fn since(self, start: SchedTotals) -> ClientWaits {
        ClientWaits {
            ran_ms: self.ran_ns.saturating_sub(start.ran_ns) as f64 / 1e6,
            waited_ms: self.waited_ns.saturating_sub(start.waited_ns) as f64 / 1e6,
            runs: self.runs.saturating_sub(start.runs),
        }
    }
}

/// The lateness of a thread's 1 ms sleeps over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct Hiccups {
    /// Wake-ups measured.
    pub samples: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// Share of the window, in percent, spent in wake-ups later than 1 ms (their lateness summed).
    pub stalled_pct: f64,
}

/// Sleeps 1 ms at a time until `end`, recording how late each wake-up is from `from` on.
fn measure_hiccups(from: Instant, end: Instant) -> Hiccups {
    const TICK: Duration = Duration::from_millis(1);
    let mut lateness = LatencyCounts::new();
    let mut stalled = Duration::ZERO;
    if let Some(wait) = from.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    loop {
        let before = Instant::now();
        if before >= end {
            break;
        }
        std::thread::sleep(TICK);
        let late = before.elapsed().saturating_sub(TICK);
        lateness.record(late, true);
        if late > TICK {
            stalled += late;
        }
    }
    let window = end.saturating_duration_since(from).as_secs_f64().max(1e-9);
    Hiccups {
        samples: lateness.ok(),
        p50_us: lateness.quantile_us(0.5),
        p99_us: lateness.quantile_us(0.99),
        p999_us: lateness.quantile_us(0.999),
        max_us: lateness.max_us(),
        stalled_pct: 100.0 * stalled.as_secs_f64() / window,
    }
}

/// `AdminService.GetRankLatency` over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct ServerLatency {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// Shares of all CPUs' time over the measured window, in percent.
#[derive(Debug, Clone, Serialize)]
pub struct HostCpu {
    /// Running anything (user, system, interrupts), this load generator and the server included.
    pub busy_pct: f64,
    /// Taken by the hypervisor for other guests while this VM wanted to run.
    pub steal_pct: f64,
    /// The ticks `/proc/stat` accounted over the window against the wall clock's CPU time. The
    /// kernel folds some time in late (a tickless CPU's idle or busy stretch), so below ~95% the
    /// two shares above cover only part of the window and are rough.
    pub accounted_pct: f64,
}

/// The machine-wide line of `/proc/stat`: (busy, steal, total) in clock ticks.
#[derive(Debug, Clone, Copy)]
struct CpuTicks {
    busy: u64,
    steal: u64,
    total: u64,
}

impl CpuTicks {
    fn read() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// `cpu user nice system idle iowait irq softirq steal guest guest_nice` (guest time is
    /// already inside user and nice, so it is not added again).
    fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|x| x.parse().ok()).collect::<Option<_>>()?;
        let [user, nice, system, idle, iowait, irq, softirq, steal] = v.try_into().ok()?;
        Some(CpuTicks {
            busy: user + nice + system + irq + softirq,
            steal,
            total: user + nice + system + idle + iowait + irq + softirq + steal,
        })
    }

    /// The shares between `start` and `self`, `wall` apart, with `capacity` CPU ticks per second
    /// of wall time (CPUs × ticks per second).
    fn since(self, start: CpuTicks, wall: Duration, capacity: f64) -> Option<HostCpu> {
        let total = self.total.checked_sub(start.total).filter(|&t| t > 0)? as f64;
        let pct = |a: u64, b: u64| 100.0 * a.saturating_sub(b) as f64 / total;
        Some(HostCpu {
            busy_pct: pct(self.busy, start.busy),
            steal_pct: pct(self.steal, start.steal),
            accounted_pct: 100.0 * total / (wall.as_secs_f64() * capacity).max(1e-9),
        })
    }

    /// CPUs × clock ticks per second, as `/proc/stat` counts them.
    fn capacity() -> f64 {
        // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        (if ticks > 0 { ticks as f64 } else { 100.0 }) * cpus as f64
    }
}

/// Reads (and with `reset`, restarts) the server's Rank latency window; None if the server does
/// not offer it.
async fn server_latency(channel: Channel, reset: bool) -> Option<ServerLatency> {
    let r = AdminServiceClient::new(channel).get_rank_latency(pb::GetRankLatencyRequest { reset }).await.ok()?;
    let r = r.into_inner();
    Some(ServerLatency { count: r.count, p50_us: r.p50_us, p99_us: r.p99_us, p999_us: r.p999_us, max_us: r.max_us })
}

pub const SESSIONS: usize = 2_000;

pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// `fitrank bench stalls`: runs the probe, prints what it found.
fn stalls(args: &BenchArgs) -> BenchResult<()> {
    let r = crate::stalls::run(args.probe_threads, args.duty, args.duration)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} threads busy {:.0}% of each ms for {:.1}s: {} stalls > 1 ms ({} > 5 ms), {:.2}% of {:.2} busy seconds lost, longest {} µs",
            r.threads,
            100.0 * r.duty,
            r.seconds,
            r.stalls,
            r.stalls_over_5ms,
            r.stalled_pct,
            r.busy_seconds,
            r.max_us
        );
    }
    Ok(())
}

/// Runs `fitrank bench`.
pub fn bench(args: BenchArgs) -> BenchResult<()> {
    if args.target == Target::Stalls {
        return stalls(&args);
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.client_threads.max(1)).enable_all().build()?;
    if args.target == Target::Verify {
        return runtime.block_on(verify(args));
    }
    let report = runtime.block_on(run(args.clone()))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{:?} {}  connections {}  concurrency {}  candidates {}",
            report.target, report.mode, report.connections, report.concurrency, report.candidates
        );
        println!(
            "  {} requests in {:.1}s ({} errors): {:.0} req/s, {:.0} items/s",
            report.requests, report.seconds, report.errors, report.rps, report.items_per_second
        );
        if report.rankings > 0 {
            println!("  {} of {} rankings degraded", report.degraded_rankings, report.rankings);
        }
        for (code, (n, message)) in &report.errors_by_code {
            println!("    {n} × {code}: {message}");
        }
        println!(
            "  latency µs: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            report.p50_us, report.p90_us, report.p99_us, report.p999_us, report.max_us
        );
        if let Some(s) = &report.server {
            println!(
                "  server-side Rank µs ({} rankings): p50 {}  p99 {}  p99.9 {}  max {}",
                s.count, s.p50_us, s.p99_us, s.p999_us, s.max_us
            );
        }
        let h = &report.hiccups;
        println!(
            "  a sleeping thread's wake-up lateness µs: p50 {}  p99 {}  p99.9 {}  max {}; {:.2}% of the time stalled > 1 ms",
            h.p50_us, h.p99_us, h.p999_us, h.max_us, h.stalled_pct
        );
        if let Some(c) = &report.client {
            println!(
                "  this load generator's threads: {:.0} ms on a CPU, {:.1} ms waiting for one, over {} runs",
                c.ran_ms, c.waited_ms, c.runs
            );
        }
        if let Some(h) = &report.host {
            println!(
                "  machine CPU: {:.1}% busy, {:.1}% stolen by the hypervisor ({:.0}% of the window accounted)",
                h.busy_pct, h.steal_pct, h.accounted_pct
            );
        }
    }
    Ok(())
}

fn session(i: usize) -> pb::LiveSession {
    pb::LiveSession {
        session_id: format!("bench-s{i}"),
        host_id: format!("bench-h{}", i / 3),
        category: (1 + i % 12) as i32,
        price_band: (1 + i % 4) as i32,
        language: "en".into(),
        region: "US".into(),
        start_time_unix_ms: now_ms() - 600_000,
        status: pb::SessionStatus::Live as i32,
        target: Some(pb::TargetAudience {
            min_age: 18 + (i % 30) as u32,
            max_age: 30 + (i % 30) as u32,
            genders: vec![1 + (i % 2) as i32],
            regions: vec!["US".into()],
            interests: vec![],
        }),
    }
}

/// Users per `UpsertUsers` call of the setup.
const USER_BATCH: usize = 10_000;

/// `fitrank bench verify`: the catalog unless `--no-setup`, then [`crate::verify::verify`], printed.
async fn verify(args: BenchArgs) -> BenchResult<()> {
    let channel = fitrank::cli::connect::connect(&args.connect).await?;
    if !args.no_setup {
        setup(channel.clone(), args.users.max(1)).await?;
    }
    let duration = Duration::from_secs_f64(args.duration);
    let v = crate::verify::verify(channel, duration, args.batch, args.concurrency, args.users.max(1) as u64).await?;
    if args.json {
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!(
            "{} batches acknowledged in {:.1}s ({} failed attempts retried)",
            v.batches, v.seconds, v.failed_attempts
        );
        for k in &v.kinds {
            println!("  {:<13} acknowledged {:>10}  counted {:>10}", k.counter, k.acknowledged, k.counted);
        }
        println!("  lost {}  counted twice {}", v.lost, v.counted_twice);
    }
    if v.lost > 0 || v.counted_twice > 0 {
        return Err(format!("not exactly once: {} lost, {} counted twice", v.lost, v.counted_twice).into());
    }
    Ok(())
}

/// Upserts the benchmark catalog: 2,000 live sessions and `users` users.
pub async fn setup(channel: Channel, users: usize) -> BenchResult<()> {
    let mut catalog = CatalogServiceClient::new(channel);
    catalog.upsert_sessions(pb::UpsertSessionsRequest { sessions: (0..SESSIONS).map(session).collect() }).await?;
    for first in (0..users).step_by(USER_BATCH) {
        upsert_users(&mut catalog, first..(first + USER_BATCH).min(users)).await?;
    }
    Ok(())
}

async fn upsert_users(catalog: &mut CatalogServiceClient<Channel>, ids: std::ops::Range<usize>) -> BenchResult<()> {
    let users = ids
        .map(|i| pb::User {
            user_id: format!("bench-u{i}"),
            attributes: Some(pb::UserAttributes {
                age_band: (1 + i % 7) as i32,
                gender: (1 + i % 3) as i32,
                region: "US".into(),
                language: "en".into(),
                interests: vec![],
            }),
        })
        .collect();
    catalog.upsert_users(pb::UpsertUsersRequest { users }).await?;
    Ok(())
}

/// One request of the target; returns the items it covered.
#[derive(Clone)]
struct Caller {
    target: Target,
    candidates: Arc<Vec<String>>,
    limit: u32,
    batch: usize,
    deadline: Option<Duration>,
    next: Arc<AtomicU64>,
    users: u64,
    /// Sessions the events go to (the first of the catalog's).
    event_sessions: u64,
}

impl Caller {
    async fn call(&self, channel: Channel) -> Result<Answer, tonic::Status> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        match self.target {
            Target::Rank => self.rank(channel, n).await,
            Target::Mixed if n.is_multiple_of(2) => self.rank(channel, n).await,
            Target::Mixed => {
                let events = self.request(futures_util::stream::iter(self.events(n)));
                let r = EventServiceClient::new(channel).ingest(events).await?;
                let r = r.into_inner();
                Ok(Answer::items(u64::from(r.accepted + r.duplicates)))
            }
            Target::Ingest => {
                let events = self.request(pb::IngestBatchRequest { events: self.events(n) });
                let r = EventServiceClient::new(channel).ingest_batch(events).await?;
                let r = r.into_inner();
                Ok(Answer::items(u64::from(r.accepted + r.duplicates)))
            }
            Target::Floor => {
                tonic_health::pb::health_client::HealthClient::new(channel)
                    .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
                    .await?;
                Ok(Answer::items(1))
            }
            Target::Stalls | Target::Verify => {
                Err(tonic::Status::invalid_argument("stalls runs offline, verify on its own loop"))
            }
        }
    }

    async fn rank(&self, channel: Channel, n: u64) -> Result<Answer, tonic::Status> {
        let request = pb::RankRequest {
            user_id: format!("bench-u{}", n % self.users),
            user: None,
            context: None,
            candidate_session_ids: self.candidates.as_ref().clone(),
            limit: self.limit,
        };
        let r = RankingServiceClient::new(channel).rank(self.request(request)).await?.into_inner();
        Ok(Answer { items: u64::from(r.scored), ranking: Some(r.degraded) })
    }

    /// `message` as a request with the `--deadline-ms` deadline, if any.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(d) = self.deadline {
            request.set_timeout(d);
        }
        request
    }

    /// The `--batch` events of call `n`: unique ids, the benchmark's users and sessions.
    fn events(&self, n: u64) -> Vec<pb::Event> {
        let base = n * self.batch as u64;
        let ranking_id = fitrank::ranking::new_ranking_id();
        (0..self.batch as u64)
            .map(|k| {
                let id = base + k;
                pb::Event {
                    event_id: format!("bench-{}-{id}", std::process::id()),
                    r#type: [1, 2, 4, 9][(id % 4) as usize],
                    user_id: format!("bench-u{}", id % self.users),
                    session_id: format!("bench-s{}", id % self.event_sessions),
                    time_unix_ms: 0,
                    ranking_id: ranking_id.clone(),
                    position: 0,
                    watch_seconds: 0.0,
                    amount: 10.0,
                    order_id: String::new(),
                }
            })
            .collect()
    }
}

/// What one answered call covered.
struct Answer {
    items: u64,
    /// For a ranking: whether the service marked it degraded (served from stale local state).
    ranking: Option<bool>,
}

impl Answer {
    fn items(items: u64) -> Self {
        Answer { items, ranking: None }
    }
}

#[derive(Default)]
struct Tally {
    /// Answered rankings, and those marked degraded.
    rankings: u64,
    degraded: u64,
    /// Answered requests' latencies, and the failed ones.
    latency: LatencyCounts,
    items: u64,
    /// Failed calls by gRPC code, with one message of each.
    errors: std::collections::BTreeMap<String, (u64, String)>,
}

impl Tally {
    fn record(&mut self, latency: Duration, result: Result<Answer, tonic::Status>) {
        match &result {
            Ok(answer) => {
                self.items += answer.items;
                if let Some(degraded) = answer.ranking {
                    self.rankings += 1;
                    self.degraded += u64::from(degraded);
                }
            }
            Err(status) => {
                let entry = self.errors.entry(format!("{:?}", status.code())).or_insert((0, String::new()));
                entry.0 += 1;
                if entry.1.is_empty() {
                    entry.1 = status.message().chars().take(200).collect();
                }
            }
        }
        self.latency.record(latency, result.is_ok());
    }
}

async fn run(args: BenchArgs) -> BenchResult<BenchReport> {
    let mut channels: Vec<Channel> = Vec::with_capacity(args.connections.max(1));
    for _ in 0..args.connections.max(1) {
        channels.push(fitrank::cli::connect::connect(&args.connect).await?);
    }
    if !args.no_setup && args.target != Target::Floor {
        setup(channels[0].clone(), args.users.max(1)).await?;
    }
    let caller = Caller {
        target: args.target,
        candidates: Arc::new((0..args.candidates.min(SESSIONS)).map(|i| format!("bench-s{i}")).collect()),
        limit: args.limit,
        batch: args.batch,
        deadline: args.deadline_ms.map(Duration::from_millis),
        next: Arc::new(AtomicU64::new(0)),
        users: args.users.max(1) as u64,
        event_sessions: args.event_sessions.clamp(1, SESSIONS) as u64,
    };
    let tally = Arc::new(Mutex::new(Tally::default()));
    let warmup = Duration::from_secs_f64(args.warmup);
    let measured = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measured;
    // At the start of the measured window: a new server-side window and the first CPU reading.
    let hiccups = std::thread::spawn(move || measure_hiccups(measure_from, end));
    let window_start = {
        let channel = channels[0].clone();
        let rank = args.target == Target::Rank;
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            let ticks = CpuTicks::read().map(|t| (t, Instant::now()));
            let sched = SchedTotals::read();
            let server = if rank { server_latency(channel, true).await.is_some() } else { false };
            (ticks, sched, server)
        })
    };

    // The second reading of the threads' schedstat, taken at the end of the window while every
    // thread that ran in it is still alive.
    let end_sched = match args.rate {
        None => {
            let mut workers = Vec::new();
            for w in 0..args.concurrency.max(1) {
                let (caller, tally, channel) = (caller.clone(), tally.clone(), channels[w % channels.len()].clone());
                workers.push(tokio::spawn(async move {
                    while Instant::now() < end {
                        let sent = Instant::now();
                        let result = caller.call(channel.clone()).await;
                        if sent >= measure_from {
                            tally.lock().unwrap_or_else(|e| e.into_inner()).record(sent.elapsed(), result);
                        }
                    }
                }));
            }
            for w in workers {
                w.await?;
            }
            SchedTotals::read()
        }
        Some(rate) if rate > 0.0 => {
            // The schedule runs on its own OS thread: thread::sleep is precise to tens of µs,
            // where tokio's timer wheel rounds to 1 ms and would add its lateness to every latency.
            let interval = Duration::from_secs_f64(1.0 / rate);
            let handle = tokio::runtime::Handle::current();
            let (caller, tally, channels) = (caller.clone(), tally.clone(), channels.clone());
            let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
            let scheduler = std::thread::spawn(move || {
                let mut i: u64 = 0;
                loop {
                    let due = start + interval.mul_f64(i as f64);
                    if due >= end {
                        break;
                    }
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let (caller, tally, done) = (caller.clone(), tally.clone(), done_tx.clone());
                    let channel = channels[(i as usize) % channels.len()].clone();
                    handle.spawn(async move {
                        let result = caller.call(channel).await;
                        if due >= measure_from {
                            // from the intended send time: queueing in the client or server counts
                            tally.lock().unwrap_or_else(|e| e.into_inner()).record(due.elapsed(), result);
                        }
                        drop(done);
                    });
                    i += 1;
                }
                drop(done_tx);
                SchedTotals::read()
            });
            let end_sched = tokio::task::spawn_blocking(move || scheduler.join())
                .await?
                .map_err(|_| "scheduler thread panicked")?;
            // every spawned call holds a sender; the channel closes when the last one finishes
            while done_rx.recv().await.is_some() {}
            end_sched
        }
        Some(rate) => return Err(format!("--rate must be positive, got {rate}").into()),
    };

    let end_ticks = CpuTicks::read().map(|t| (t, Instant::now()));
    let hiccups = tokio::task::spawn_blocking(move || hiccups.join()).await?.map_err(|_| "hiccup thread panicked")?;
    let (start_ticks, start_sched, server_reset) = window_start.await?;
    let client = start_sched.zip(end_sched).map(|(start, end)| end.since(start));
    let server = if server_reset { server_latency(channels[0].clone(), false).await } else { None };
    let host = start_ticks
        .zip(end_ticks)
        .and_then(|((start, t0), (end, t1))| end.since(start, t1.duration_since(t0), CpuTicks::capacity()));

    let seconds = measured.as_secs_f64();
    let t = tally.lock().unwrap_or_else(|e| e.into_inner());
    let h = &t.latency;
    Ok(BenchReport {
        target: args.target,
        mode: match args.rate {
            Some(r) => format!("fixed-rate {r}/s"),
            None => "closed-loop".into(),
        },
        connections: channels.len(),
        concurrency: args.concurrency,
        candidates: if args.target == Target::Rank { caller.candidates.len() } else { 0 },
        requests: h.ok(),
        errors: h.errors(),
        errors_by_code: t.errors.clone(),
        seconds,
        rps: h.ok() as f64 / seconds,
        items_per_second: t.items as f64 / seconds,
        rankings: t.rankings,
        degraded_rankings: t.degraded,
        p50_us: h.quantile_us(0.5),
        p90_us: h.quantile_us(0.9),
        p99_us: h.quantile_us(0.99),
        p999_us: h.quantile_us(0.999),
        max_us: h.max_us(),
        server,
        host,
        hiccups,
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_threads_schedstat_and_the_difference_of_two_readings() {
        let start = SchedTotals::parse("1000000 250000 10\n").unwrap();
        let end = SchedTotals::parse("5000000 2250000 30").unwrap();
        let w = end.since(start);
        assert_eq!((w.ran_ms, w.waited_ms, w.runs), (4.0, 2.0, 20));
        assert_eq!(SchedTotals::parse("12 x 3"), None);
        assert_eq!(SchedTotals::parse("12 3"), None);
        // This process's own threads, where Linux exposes them.
        if std::path::Path::new("/proc/self/task").exists() {
            assert!(SchedTotals::read().is_some());
        }
    }

    #[test]
    fn reads_cpu_shares_from_proc_stat() {
        let before = CpuTicks::parse("cpu  100 0 50 800 10 0 10 30 5 0\ncpu0 1 2 3\n").unwrap();
        let after = CpuTicks::parse("cpu  160 0 70 880 10 0 20 60 9 0\nintr 1\n").unwrap();
        // 2 CPUs at 100 ticks/s over 1.25 s: 250 ticks of capacity
        let host = after.since(before, Duration::from_millis(1_250), 200.0).unwrap();
        // 200 ticks passed: 90 busy (60 user, 20 system, 10 softirq), 30 stolen
        assert!((host.busy_pct - 45.0).abs() < 1e-9, "{host:?}");
        assert!((host.steal_pct - 15.0).abs() < 1e-9, "{host:?}");
        assert!((host.accounted_pct - 80.0).abs() < 1e-9, "{host:?}");
        assert!(CpuTicks::parse("intr 1\n").is_none());
        assert!(CpuTicks::parse("cpu  1 2 x 4 5 6 7 8\n").is_none());
        assert!(before.since(before, Duration::from_secs(1), 200.0).is_none());
    }

    #[test]
    fn the_hiccup_meter_samples_its_window_once_per_sleep() {
        let from = Instant::now();
        let h = measure_hiccups(from, from + Duration::from_millis(20));
        // every sleep lasts at least 1 ms, so at most 20 of them start inside 20 ms
        assert!((1..=20).contains(&h.samples), "{h:?}");
        assert!(h.p50_us <= h.p99_us && h.p99_us <= h.p999_us && h.p999_us <= h.max_us, "{h:?}");
        assert!(h.stalled_pct >= 0.0, "{h:?}");
    }
}
