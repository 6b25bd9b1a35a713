#![doc = include_str!("../README.md")]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::error::BallistaError;
use ballista_core::extension::SessionConfigExt;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_executor::executor_server::TERMINATING;
use datafusion::execution::cache::cache_manager::{CacheManager, CacheManagerConfig};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use quiver_storage::ObjectStores;
use quiver_udf_registry::usage::UsageCounters;
use quiver_udf_registry::{Codecs, FunctionLoader, RuntimeConfig, WasmRuntime};
use tokio::sync::watch;

/// Errors of the executor crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A port or directory the executor needs is not available.
    #[error("{0}")]
    Setup(String),
    /// Ballista could not start or run the executor.
    #[error("Ballista executor: {0}")]
    Ballista(#[from] ballista_core::error::BallistaError),
    /// The Wasm runtime could not start.
    #[error("{0}")]
    Wasm(#[from] quiver_udf_registry::Error),
}

/// Result of executor operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to run one executor.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's `HOST:PORT`.
    pub scheduler: String,
    /// Address the executor's two services bind to.
    pub bind_host: String,
    /// The host name other nodes reach this executor by (default: `bind_host`).
    pub external_host: Option<String>,
    /// Arrow Flight port: shuffle and result data are fetched here.
    pub flight_port: u16,
    /// gRPC port: the scheduler pushes tasks here.
    pub grpc_port: u16,
    /// Tasks run at once.
    pub slots: usize,
    /// Shuffle files (`shuffle/`), spill files (`spill/`) and, for
    /// `quiver executor`, compiled Wasm (`wasm-cache/`, unless
    /// `wasm_cache_dir` says elsewhere).
    pub work_dir: PathBuf,
    /// Where `quiver executor` caches compiled Wasm, if not in `work_dir`.
    pub wasm_cache_dir: Option<PathBuf>,
    /// How often the executor tells the scheduler it is alive.
    pub heartbeat: Duration,
    /// Bytes this executor's tasks may hold at once, split evenly among
    /// its slots; `None`: Ballista's default share of the machine's (or
    /// the container's) memory. Sorts, joins and aggregates spill to stay
    /// within their part; what cannot fails with `ResourcesExhausted`.
    pub memory_limit: Option<u64>,
}

impl ExecutorOptions {
    /// Options for an executor of the scheduler at `scheduler`, on free
    /// loopback ports.
    pub fn loopback(
        scheduler: SocketAddr,
        slots: usize,
        work_dir: PathBuf,
        memory_limit: Option<u64>,
    ) -> Result<Self> {
        Ok(Self {
            scheduler: scheduler.to_string(),
            bind_host: "127.0.0.1".into(),
            external_host: None,
            flight_port: free_port()?,
            grpc_port: free_port()?,
            slots,
            work_dir,
            wasm_cache_dir: None,
            heartbeat: Duration::from_secs(2),
            memory_limit,
        })
    }

    fn process_config(
        &self,
        session: SessionConfig,
        codecs: Codecs,
        stores: Arc<ObjectStores>,
    ) -> Result<ExecutorProcessConfig> {
        let (scheduler_host, scheduler_port) = self
            .scheduler
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.to_string(), port.parse().ok()?)))
            .ok_or_else(|| {
                Error::Setup(format!(
                    "scheduler address \"{}\" is not HOST:PORT",
                    self.scheduler
                ))
            })?;
        let unspecified = self
            .bind_host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified());
        if unspecified && self.external_host.is_none() {
            return Err(Error::Setup(format!(
                "binding to {} needs --external-host: the name or address other machines reach this executor by",
                self.bind_host
            )));
        }
        // Ballista removes every directory in its work directory when it
        // stops: shuffle files get one of their own.
        let shuffle = self.work_dir.join("shuffle");
        let spill = self.work_dir.join("spill");
        let footers = CacheManager::try_new(&CacheManagerConfig::default())
            .map_err(|e| Error::Setup(e.to_string()))?
            .get_file_metadata_cache();
        for dir in [&shuffle, &spill] {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::Setup(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
        Ok(ExecutorProcessConfig {
            bind_host: self.bind_host.clone(),
            external_host: Some(
                self.external_host
                    .clone()
                    .unwrap_or_else(|| self.bind_host.clone()),
            ),
            port: self.flight_port,
            grpc_port: self.grpc_port,
            scheduler_host,
            scheduler_port,
            // Executors may start before the scheduler: keep trying a while.
            scheduler_connect_timeout_seconds: 30,
            vcores: self.slots.max(1),
            task_scheduling_policy: TaskSchedulingPolicy::PushStaged,
            work_dir: Some(shuffle.to_string_lossy().into_owned()),
            // Every task gets a runtime of its own, but they read tables in
            // object stores through one registry (one client per bucket)
            // and share one cache of Parquet footers: without it each task
            // read a file's metadata again (a ranged GET per file and task
            // on a bucket).
            override_runtime_producer: Some(Arc::new(move |_| {
                Ok(Arc::new(
                    RuntimeEnvBuilder::new()
                        .with_temp_file_path(spill.clone())
                        .with_object_store_registry(stores.clone())
                        .with_cache_manager(
                            CacheManagerConfig::default()
                                .with_file_metadata_cache(Some(footers.clone())),
                        )
                        .build()?,
                ))
            })),
            memory_pool_size: self.memory_limit,
            job_data_clean_up_interval_seconds: 300,
            job_data_ttl_seconds: 3600,
            executor_heartbeat_interval_seconds: self.heartbeat.as_secs().max(1),
            override_config_producer: Some(Arc::new(move || session.clone())),
            override_logical_codec: Some(codecs.logical),
            override_physical_codec: Some(codecs.physical),
            ..ExecutorProcessConfig::default()
        })
    }
}

/// A free TCP port on loopback (for the embedded executor, whose services
/// Ballista binds itself).
fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Setup(format!("no free port on 127.0.0.1: {e}")))
}

/// Starts an executor inside this process (the embedded mode of `quiver
/// serve`) and returns once it accepts work.
///
/// Its ports were free when [`ExecutorOptions::loopback`] picked them, but
/// another socket can take one before Ballista binds it (an outgoing
/// connection's local port is drawn from the same range). Ballista then
/// stops the executor it just registered; it is started again on other
/// ports, a few times, before the server gives up.
pub async fn start_embedded(
    mut options: ExecutorOptions,
    session: SessionConfig,
    codecs: Codecs,
) -> Result<()> {
    const ATTEMPTS: usize = 3;
    let stores = Arc::new(ObjectStores::new());
    for attempt in 1.. {
        match start_once(&options, session.clone(), codecs.clone(), stores.clone()).await? {
            Started::Running => return Ok(()),
            Started::Stopped if attempt < ATTEMPTS => {
                tracing::warn!(
                    flight_port = options.flight_port,
                    grpc_port = options.grpc_port,
                    "the embedded executor could not serve on its ports; trying others"
                );
                // Ballista marks the process's executor as terminating for good.
                TERMINATING.store(false, Ordering::Release);
                options.flight_port = free_port()?;
                options.grpc_port = free_port()?;
            }
            Started::Stopped => break,
        }
    }
    Err(Error::Setup(format!(
        "the embedded executor stopped as it started, {ATTEMPTS} times (ports taken?)"
    )))
}

/// How one start of the embedded executor went.
enum Started {
    /// It serves on its ports.
    Running,
    /// It stopped by itself before serving: a port was taken.
    Stopped,
}

async fn start_once(
    options: &ExecutorOptions,
    session: SessionConfig,
    codecs: Codecs,
    stores: Arc<ObjectStores>,
) -> Result<Started> {
    let config = options.process_config(session, codecs, stores)?;
    let running = tokio::spawn(start_executor_process(Arc::new(config)));
    // The Flight service starts after registration with the scheduler.
    let flight = format!("{}:{}", options.bind_host, options.flight_port);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if running.is_finished() {
            return match running.await {
                Ok(Ok(())) => Ok(Started::Stopped),
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(Error::Setup(format!("the embedded executor failed: {e}"))),
            };
        }
        if tokio::net::TcpStream::connect(&flight).await.is_ok() {
            tracing::info!(slots = options.slots, %flight, "embedded Ballista executor started");
            return Ok(Started::Running);
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::Setup(
                "the embedded executor did not start within 30 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `quiver executor`: an executor process of its own. Wasm functions in
/// task plans are rebuilt from the module directory each plan names and
/// compiled once, cached under the work directory.
///
/// An executor the scheduler stopped — it expires executors whose
/// heartbeats are late, as when the process was paused or starved — joins
/// again under a new id; only `shutdown` (Ctrl-C, SIGTERM) ends it.
pub async fn run_process(
    options: &ExecutorOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let runtime = Arc::new(WasmRuntime::new(RuntimeConfig {
        cache_dir: Some(
            options
                .wasm_cache_dir
                .clone()
                .unwrap_or_else(|| options.work_dir.join("wasm-cache")),
        ),
        ..RuntimeConfig::default()
    })?);
    // One registry of object stores for the process: tasks' tables, and
    // the module directories plans name.
    let stores = Arc::new(ObjectStores::new());
    let loader = Arc::new(FunctionLoader::new(runtime, None, stores.clone()));
    let codecs = Codecs::new(loader.clone());
    report_usage(loader.usage().clone());
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    println!(
        "quiver: executor {}:{} joining scheduler {}",
        options.bind_host, options.flight_port, options.scheduler
    );
    let mut restarted = false;
    loop {
        let config = options.process_config(
            SessionConfig::new_with_ballista(),
            codecs.clone(),
            stores.clone(),
        )?;
        let ran = serve_until_stopped(config, stopping.clone()).await;
        if *stopping.borrow() {
            write_usage(loader.usage());
            return ran.map_err(Error::from);
        }
        match ran {
            // The first start failing (a port taken) is the operator's to fix.
            Err(e) if !restarted => return Err(e.into()),
            // A restart can fail while the old services still close.
            Err(e) => tracing::warn!(error = %e, "the executor could not start again; retrying"),
            Ok(()) => tracing::warn!(
                "the scheduler stopped this executor (its heartbeats were late); joining again"
            ),
        }
        restarted = true;
        // Ballista marks the process's executor as terminating for good.
        TERMINATING.store(false, Ordering::Release);
        let mut stopping = stopping.clone();
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopping.wait_for(|stop| *stop) => {}
        }
    }
}

/// Runs Ballista's executor until it stops by itself or `stopping` turns
/// true.
///
/// Ballista listens for SIGTERM and Ctrl-C itself, draining its tasks
/// before it returns — but only once it serves: a signal that came while
/// it registered (or between two runs) reaches only `stopping`, and
/// Ballista would serve on forever. Such an executor has no tasks yet, so
/// it is dropped; one that heard the signal marks itself
/// [`TERMINATING`] at once and is waited for.
async fn serve_until_stopped(
    config: ExecutorProcessConfig,
    mut stopping: watch::Receiver<bool>,
) -> Result<(), BallistaError> {
    let serve = start_executor_process(Arc::new(config));
    tokio::pin!(serve);
    tokio::select! {
        ran = &mut serve => return ran,
        Ok(_) = stopping.wait_for(|stop| *stop) => {}
    }
    let heard = async {
        while !TERMINATING.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        ran = &mut serve => ran,
        () = heard => serve.await,
        () = tokio::time::sleep(SIGNAL_HEARD_WITHIN) => {
            tracing::info!("the executor stopped before it served");
            Ok(())
        }
    }
}

/// How long Ballista's executor may take to notice a signal it listens for.
const SIGNAL_HEARD_WITHIN: Duration = Duration::from_secs(1);

/// How often an executor hands what its functions did to the frontend
/// (PostgreSQL's backends report their statistics about as often).
const USAGE_INTERVAL: Duration = Duration::from_secs(1);

/// Writes what this process's Wasm functions did into the module
/// directories their plans named, every [`USAGE_INTERVAL`], for the
/// frontend to add to `quiver.function_stats` (see
/// `quiver_udf_registry::usage`).
fn report_usage(usage: Arc<UsageCounters>) {
    let spawned = std::thread::Builder::new()
        .name("quiver-usage".into())
        .spawn(move || {
            loop {
                std::thread::sleep(USAGE_INTERVAL);
                write_usage(&usage);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "no thread for usage reports: quiver.function_stats misses this executor's calls");
    }
}

fn write_usage(usage: &UsageCounters) {
    if let Err(e) = usage.write_out() {
        tracing::warn!(error = %e, "could not write function usage for the frontend");
    }
}
