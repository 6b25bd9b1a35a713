//! `quiver`: the command-line entry point. Parses flags and hands over to the
//! library crates.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::time::Duration;

use clap::{Parser, Subcommand};
use quiver_executor::ExecutorOptions;
use quiver_scheduler::SchedulerOptions;
use quiver_sql_frontend::{AuthMethod, Server, ServerConfig, TlsFiles};
use quiver_storage::ObjectStores;
use tracing_subscriber::EnvFilter;

/// mimalloc, not the system's allocator: a statement allocates and frees
/// many small objects from many threads, and glibc's malloc spent 15% of a
/// point lookup's time (bench/README.md, "Small statements").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Quiver: distributed SQL with WebAssembly functions, over the PostgreSQL protocol.
#[derive(Debug, Parser)]
#[command(name = "quiver", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: PostgreSQL frontend and catalog, with an in-process
    /// Ballista scheduler and executor, or (with --scheduler) as the frontend
    /// of a cluster. Connect with `psql -h 127.0.0.1 -p 5433`.
    Serve(Box<ServeArgs>),
    /// Run a cluster's scheduler: plans queries into stages and hands tasks to
    /// executors. Start one, then executors and a frontend pointing at it.
    Scheduler(SchedulerArgs),
    /// Run a cluster executor: runs tasks (and the Wasm functions in them)
    /// for the scheduler at --scheduler.
    Executor(ExecutorArgs),
    /// Copy a data directory — its catalog and its tables — to an object
    /// store (or a directory), with a manifest of every file's checksum.
    /// Stop the server first. `quiver restore` makes a data directory of it
    /// again, on any machine.
    Backup(BackupArgs),
    /// Make a new data directory from a backup `quiver backup` took, every
    /// file checked against the backup's manifest; then start `quiver serve
    /// --data-dir` on it.
    Restore(RestoreArgs),
}

#[derive(Debug, clap::Args)]
struct BackupArgs {
    /// The data directory to back up (its server stopped).
    #[arg(long, env = "QUIVER_DATA_DIR", default_value = "./quiver-data", value_parser = parse_data_dir)]
    data_dir: PathBuf,
    /// Where the backup goes: an object-store URL (`s3://bucket/backups/2026-12-06`,
    /// credentials from the environment as for `serve`) or a directory. It
    /// must not hold a backup already.
    #[arg(value_name = "URL|DIR", value_parser = parse_location)]
    to: String,
}

#[derive(Debug, clap::Args)]
struct RestoreArgs {
    /// The backup: the URL or directory given to `quiver backup`.
    #[arg(value_name = "URL|DIR", value_parser = parse_location)]
    from: String,
    /// The data directory to make: it must not exist, or be empty.
    #[arg(long, env = "QUIVER_DATA_DIR", value_parser = parse_data_dir)]
    data_dir: PathBuf,
}

/// How quickly the scheduler gives up on lost executors.
#[derive(Debug, clap::Args)]
struct LossArgs {
    /// Seconds without a heartbeat after which an executor is lost and its
    /// work runs again on the others.
    #[arg(long, env = "QUIVER_EXECUTOR_TIMEOUT", default_value_t = 10)]
    executor_timeout: u64,
    /// Seconds running queries wait for an executor when none is left,
    /// before they fail.
    #[arg(long, env = "QUIVER_NO_EXECUTORS_GRACE", default_value_t = 10)]
    no_executors_grace: u64,
}

impl From<&LossArgs> for SchedulerOptions {
    fn from(args: &LossArgs) -> Self {
        SchedulerOptions {
            executor_timeout: Duration::from_secs(args.executor_timeout),
            no_executors_grace: Duration::from_secs(args.no_executors_grace),
        }
    }
}

#[derive(Debug, clap::Args)]
struct SchedulerArgs {
    /// Address executors and frontends connect to.
    #[arg(
        long,
        env = "QUIVER_SCHEDULER_LISTEN",
        default_value = "127.0.0.1:50050"
    )]
    listen: SocketAddr,
    #[command(flatten)]
    loss: LossArgs,
}

#[derive(Debug, clap::Args)]
struct ExecutorArgs {
    /// The scheduler, HOST:PORT.
    #[arg(long, env = "QUIVER_SCHEDULER")]
    scheduler: String,
    /// Address this executor's services bind to.
    #[arg(long, env = "QUIVER_EXECUTOR_BIND", default_value = "127.0.0.1")]
    bind: String,
    /// Host name other nodes reach this executor by (default: --bind).
    #[arg(long, env = "QUIVER_EXECUTOR_EXTERNAL_HOST")]
    external_host: Option<String>,
    /// Arrow Flight port: query results and shuffle data are fetched here.
    #[arg(long, env = "QUIVER_EXECUTOR_PORT", default_value_t = 50051)]
    port: u16,
    /// gRPC port: the scheduler sends tasks here.
    #[arg(long, env = "QUIVER_EXECUTOR_GRPC_PORT", default_value_t = 50052)]
    grpc_port: u16,
    /// Tasks run at once (default: the number of CPUs).
    #[arg(long, env = "QUIVER_EXECUTOR_SLOTS")]
    slots: Option<usize>,
    /// Shuffle files and compiled Wasm (default: a directory under the
    /// system's temporary directory, named by the port).
    #[arg(long, env = "QUIVER_EXECUTOR_WORK_DIR")]
    work_dir: Option<PathBuf>,
    /// Where compiled Wasm is cached (default: `wasm-cache` in the work directory). Processes
    /// on one machine may share it: entries are written whole and named by
    /// module hash and engine, so a module is compiled once for all of them.
    #[arg(long, env = "QUIVER_WASM_CACHE_DIR")]
    wasm_cache_dir: Option<PathBuf>,
    /// Seconds between heartbeats to the scheduler.
    #[arg(long, env = "QUIVER_EXECUTOR_HEARTBEAT", default_value_t = 2)]
    heartbeat: u64,
    /// MiB this executor's tasks may hold at once, split among its slots
    /// (default: Ballista's share of the machine's or container's memory).
    /// Sorts, joins and aggregates spill to disk to stay within it; what
    /// cannot fails with SQLSTATE 53200.
    #[arg(long, env = "QUIVER_MEMORY_LIMIT_MB")]
    memory_limit_mb: Option<u64>,
}

impl From<ExecutorArgs> for ExecutorOptions {
    fn from(args: ExecutorArgs) -> Self {
        ExecutorOptions {
            scheduler: args.scheduler,
            bind_host: args.bind,
            external_host: args.external_host,
            flight_port: args.port,
            grpc_port: args.grpc_port,
            slots: args.slots.unwrap_or_else(cpus),
            work_dir: args.work_dir.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("quiver-executor-{}", args.port))
            }),
            wasm_cache_dir: args.wasm_cache_dir,
            heartbeat: Duration::from_secs(args.heartbeat.max(1)),
            memory_limit: args.memory_limit_mb.map(mib),
        }
    }
}

/// `NAME=DIR` of `--wasm-files`: a name a function's grant can give (letters,
/// digits, `_` and `-`) and a directory.
/// A local data directory; an object-store URL is refused rather than
/// taken for a relative path (`s3:/bucket/...` in the working directory).
fn parse_data_dir(text: &str) -> Result<PathBuf, String> {
    match parse_data_location(text)? {
        DataLocation::Local(path) => Ok(path),
        DataLocation::Store(_) => Err(format!(
            "{text}: give the local data directory (with an object-store --data-dir, its \
             --catalog-dir); a data directory in an object store is not backed up by this \
             command"
        )),
    }
}

/// Where `quiver serve` keeps its data (see `--data-dir`).
#[derive(Debug, Clone)]
enum DataLocation {
    Local(PathBuf),
    /// An object-store URL.
    Store(String),
}

fn parse_data_location(text: &str) -> Result<DataLocation, String> {
    match text.split_once("://") {
        Some(("file", path)) => Ok(DataLocation::Local(PathBuf::from(path))),
        Some(_) => {
            quiver_storage::location_url(text).map_err(|e| e.to_string())?;
            Ok(DataLocation::Store(text.trim_end_matches('/').to_string()))
        }
        None => Ok(DataLocation::Local(PathBuf::from(text))),
    }
}

/// An object-store URL, or a directory (made absolute).
fn parse_location(text: &str) -> Result<String, String> {
    if text.contains("://") {
        return Ok(text.to_string());
    }
    std::path::absolute(text)
        .map_err(|e| format!("{text}: {e}"))?
        .into_os_string()
        .into_string()
        .map_err(|_| format!("{text} is not valid UTF-8"))
}

fn parse_file_dir(text: &str) -> Result<(String, PathBuf), String> {
    let (name, dir) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=DIR, got {text:?}"))?;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(format!(
            "the name {name:?} must be letters, digits, '_' or '-'"
        ));
    }
    let dir = PathBuf::from(dir)
        .canonicalize()
        .map_err(|e| format!("cannot use directory {dir:?}: {e}"))?;
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    Ok((name.to_string(), dir))
}

/// MiB in bytes.
fn mib(mib: u64) -> u64 {
    mib.saturating_mul(1 << 20)
}

fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Auth {
    Trust,
    #[value(name = "scram-sha-256")]
    ScramSha256,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to accept PostgreSQL connections on.
    #[arg(long, env = "QUIVER_LISTEN", default_value = "127.0.0.1:5433")]
    listen: SocketAddr,
    /// Accept connections from other machines although Quiver does not
    /// authenticate clients yet (every client is trusted). Without it,
    /// `--listen` must be a loopback address.
    #[arg(long, env = "QUIVER_TRUST_REMOTE_CLIENTS")]
    trust_remote_clients: bool,
    /// How clients authenticate: `trust` (anyone, under any user name) or
    /// `scram-sha-256` (login roles from --users and `CREATE ROLE ...
    /// PASSWORD`; a wrong password is SQLSTATE 28P01).
    #[arg(long, env = "QUIVER_AUTH", value_enum, default_value_t = Auth::Trust)]
    auth: Auth,
    /// A file of `name:password` lines: login roles for --auth scram-sha-256
    /// besides those `CREATE ROLE` made. Only its owner may read it (chmod
    /// 600): the server refuses to start otherwise.
    #[arg(long, env = "QUIVER_USERS")]
    users: Option<PathBuf>,
    /// Where Quiver keeps its data. A local directory (created if missing)
    /// holds it all: tables (Parquet), temporary tables, Wasm modules and
    /// the catalog (RocksDB); in a cluster every executor must reach it at
    /// the same path (a shared directory). An object-store URL
    /// (`s3://bucket/quiver`, `gs://`, `az://`; credentials from the
    /// environment, see docs/storage.md) holds the tables, temporary tables
    /// and modules, which every executor reaches with no shared directory;
    /// the catalog then stays in the local --catalog-dir. Back a local data
    /// directory up with `quiver backup`.
    #[arg(long, env = "QUIVER_DATA_DIR", value_name = "DIR|URL", default_value = "./quiver-data", value_parser = parse_data_location)]
    data_dir: DataLocation,
    /// The local directory of the catalog (RocksDB), the compiled-Wasm cache
    /// and the embedded executor's scratch files when --data-dir is an
    /// object-store URL (required then). With a local --data-dir, they are
    /// in it.
    #[arg(long, env = "QUIVER_CATALOG_DIR")]
    catalog_dir: Option<PathBuf>,
    /// Run as the frontend of a cluster whose scheduler is at HOST:PORT
    /// (started with `quiver scheduler`), instead of running an embedded
    /// scheduler and executor.
    #[arg(long, env = "QUIVER_SCHEDULER")]
    scheduler: Option<String>,
    /// Seconds a query waits while the scheduler has no executor, before
    /// it fails with SQLSTATE 57P03 (the embedded executor is never lost).
    #[arg(long, env = "QUIVER_NO_EXECUTORS_GRACE", default_value_t = 10)]
    no_executors_grace: u64,
    /// Task slots of the embedded executor (default: the number of CPUs).
    #[arg(long, env = "QUIVER_EXECUTOR_SLOTS")]
    executor_slots: Option<usize>,
    /// Partitions a query's rows are split into at each step (scans,
    /// joins, grouping), each a task for one slot: the default of every
    /// session's `datafusion.execution.target_partitions`, which a session
    /// may SET. Default: twice the embedded executor's slots, so a slot
    /// whose partition ends early finds another; with --scheduler, 16
    /// (give a cluster about twice its executors' slots in all).
    #[arg(long, env = "QUIVER_PARTITIONS", value_parser = clap::value_parser!(u16).range(1..))]
    partitions: Option<u16>,
    /// MiB the queries the frontend runs itself may hold at once, and the
    /// embedded executor's tasks as many (default: half the machine's memory,
    /// and Ballista's share of it). Sorts, joins and aggregates spill to disk
    /// to stay within it; what cannot fails with SQLSTATE 53200.
    #[arg(long, env = "QUIVER_MEMORY_LIMIT_MB")]
    memory_limit_mb: Option<u64>,
    /// KiB of stored table files a statement may read and still run on the
    /// frontend, without the fixed cost (tens of milliseconds) and the slot
    /// queue of a Ballista job; 0 runs every statement over stored tables
    /// as a job. Sessions may change it: `SET quiver.local_read_limit =
    /// <bytes>`. `EXPLAIN` shows where a statement runs.
    #[arg(long, env = "QUIVER_LOCAL_READ_LIMIT_KB", default_value_t = 8192)]
    local_read_limit_kb: u64,
    /// Directory `CREATE FUNCTION ... AS 'file.wasm', 'name'` reads Wasm modules
    /// from (never outside it). Without it, modules can only be given inline.
    #[arg(long, env = "QUIVER_FUNCTION_DIR")]
    function_dir: Option<PathBuf>,
    /// A directory or object-store URL (`s3://bucket/prefix`, `gs://`,
    /// `az://`) external tables (`CREATE EXTERNAL TABLE ... LOCATION`) may
    /// read and write under; repeat it for more. Besides these, only
    /// `import` in the data directory is allowed: any other location, a
    /// symbolic link out of these included, fails with SQLSTATE 42501.
    /// Object stores take their credentials from the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, ...; see docs/storage.md).
    #[arg(long = "external-dir", value_name = "DIR|URL")]
    external_dirs: Vec<String>,
    /// Where the frontend publishes Wasm modules (and executors read them
    /// by hash), with the key-value bucket versions plans pin and the usage
    /// counts executors write back: an absolute directory or an object-store
    /// prefix (`s3://bucket/quiver/modules`). Default: `modules` in the data
    /// directory. A cluster whose machines share no file system names an
    /// object-store prefix every executor and the scheduler can reach.
    #[arg(long, env = "QUIVER_MODULE_STORE", value_name = "DIR|URL", value_parser = parse_location)]
    module_store: Option<String>,
    /// Memory limit of one Wasm function instance, in MiB: the default, and
    /// the most a function may ask for (`SET quiver.wasm.max_memory = '64MB'`).
    #[arg(long, env = "QUIVER_WASM_MAX_MEMORY_MB", default_value_t = 128)]
    wasm_max_memory_mb: u64,
    /// Time limit of one Wasm function call (one batch of rows), in
    /// milliseconds: the default, and the most a function may ask for (`SET
    /// quiver.wasm.time_limit = '2s'`).
    #[arg(long, env = "QUIVER_WASM_TIME_LIMIT_MS", default_value_t = 10_000)]
    wasm_time_limit_ms: u64,
    /// A directory Wasm functions may be granted to read, as NAME=DIR; repeat
    /// it for more. A function whose definition says `SET quiver.wasm.files
    /// = 'NAME'` sees it, read-only, as `/NAME`; no other function sees it.
    /// In a cluster, every executor must reach DIR at the same path.
    #[arg(long = "wasm-files", value_name = "NAME=DIR", value_parser = parse_file_dir)]
    wasm_files: Vec<(String, PathBuf)>,
    /// Where compiled Wasm is cached (default: `wasm-cache` in the data directory). Processes
    /// on one machine may share it: entries are written whole and named by
    /// module hash and engine, so a module is compiled once for all of them.
    #[arg(long, env = "QUIVER_WASM_CACHE_DIR")]
    wasm_cache_dir: Option<PathBuf>,
    /// Server certificate (PEM, the chain with the server's first) for
    /// clients that ask for TLS (`sslmode=require`, `verify-full`); with
    /// --tls-key.
    #[arg(long, env = "QUIVER_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "QUIVER_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Partitions of a cluster frontend's queries unless `--partitions` says
/// otherwise: Ballista's default, as the frontend cannot know the slots of
/// executors that register later.
const CLUSTER_PARTITIONS: usize = 16;

impl TryFrom<ServeArgs> for ServerConfig {
    type Error = String;

    fn try_from(args: ServeArgs) -> Result<Self, String> {
        let (data_dir, table_store) = match (args.data_dir, args.catalog_dir) {
            (DataLocation::Local(dir), None) => (dir, None),
            (DataLocation::Local(dir), Some(_)) => {
                return Err(format!(
                    "--catalog-dir is for an object-store --data-dir; the catalog of {} is in it",
                    dir.display()
                ));
            }
            (DataLocation::Store(url), Some(dir)) => (dir, Some(url)),
            (DataLocation::Store(url), None) => {
                return Err(format!(
                    "--data-dir {url} keeps the tables in an object store: give --catalog-dir, \
                     a local directory for the catalog"
                ));
            }
        };
        let executor_slots = args.executor_slots.unwrap_or_else(cpus).max(1);
        let partitions = args.partitions.map_or_else(
            || match args.scheduler {
                Some(_) => CLUSTER_PARTITIONS,
                None => executor_slots.saturating_mul(2),
            },
            usize::from,
        );
        Ok(ServerConfig {
            listen: args.listen,
            trust_remote_clients: args.trust_remote_clients,
            auth: match args.auth {
                Auth::Trust => AuthMethod::Trust,
                Auth::ScramSha256 => AuthMethod::ScramSha256,
            },
            users: args.users,
            data_dir,
            table_store,
            scheduler: args.scheduler,
            no_executors_grace: Duration::from_secs(args.no_executors_grace),
            executor_slots,
            partitions,
            memory_limit: args.memory_limit_mb.map(mib),
            local_read_limit: args.local_read_limit_kb.saturating_mul(1 << 10),
            function_dir: args.function_dir,
            external_dirs: args.external_dirs,
            module_store: args.module_store,
            wasm_max_memory: args.wasm_max_memory_mb.saturating_mul(1 << 20),
            wasm_time_limit: std::time::Duration::from_millis(args.wasm_time_limit_ms.max(1)),
            wasm_cache_dir: args.wasm_cache_dir,
            wasm_files: args.wasm_files.into_iter().collect(),
            tls: args
                .tls_cert
                .zip(args.tls_key)
                .map(|(cert, key)| TlsFiles { cert, key }),
        })
    }
}

/// The stack of each runtime thread (Rust's default is 2 MiB).
const THREAD_STACK_SIZE: usize = 32 << 20;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("QUIVER_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,ballista=warn,datafusion=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Planning and running a statement recurse once per level of its
        // expressions (up to the limit the frontend enforces); the pages
        // are reserved, not committed, until a deep statement uses them.
        .thread_stack_size(THREAD_STACK_SIZE)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("quiver: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => match ServerConfig::try_from(*args) {
                Ok(config) => serve(config).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            },
            Command::Scheduler(args) => {
                quiver_scheduler::run(args.listen, &(&args.loss).into(), shutdown_signal())
                    .await
                    .map_err(|e| e.to_string())
            }
            Command::Executor(args) => {
                quiver_executor::run_process(&args.into(), shutdown_signal())
                    .await
                    .map_err(|e| e.to_string())
            }
            Command::Backup(args) => {
                let stores = ObjectStores::new();
                quiver_catalog::backup(&args.data_dir, &args.to, &stores)
                    .await
                    .map(|copied| {
                        println!(
                            "quiver: backed up {} files ({} bytes) of {} to {}",
                            copied.files,
                            copied.bytes,
                            args.data_dir.display(),
                            args.to
                        );
                    })
                    .map_err(|e| e.to_string())
            }
            Command::Restore(args) => {
                let stores = ObjectStores::new();
                quiver_catalog::restore(&args.from, &args.data_dir, &stores)
                    .await
                    .map(|copied| {
                        println!(
                            "quiver: restored {} files ({} bytes) from {} into {}",
                            copied.files,
                            copied.bytes,
                            args.from,
                            args.data_dir.display()
                        );
                    })
                    .map_err(|e| e.to_string())
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("quiver: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(config: ServerConfig) -> quiver_sql_frontend::Result<()> {
    let server = Server::start(config).await?;
    if let Ok(addr) = server.local_addr() {
        // Scripts and tests wait for this line.
        println!("quiver: listening on {addr}");
    }
    server.run(shutdown_signal()).await
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
