#![doc = include_str!("../README.md")]

mod constant_rows;
mod fences;
mod joins;
mod limits;
mod status;
mod window_sorts;

pub use fences::guard_upstream_rules;
pub use status::{ExecutorStatus, cancel_job, executors};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::SessionConfigExt;
use ballista_core::utils::default_session_builder;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use quiver_storage::ObjectStores;
use quiver_udf_registry::{
    Codecs, FunctionLoader, RuntimeConfig, TransformQueryPlanner, WasmMetricsRule, WasmRuntime,
};
use tokio::net::TcpListener;

use crate::constant_rows::MeteredConstantRows;
use crate::joins::{DistributedHashJoins, PinnedUnionBranchJoins, SingleTaskNestedLoopJoins};
use crate::limits::{OrderedOffsets, UnboundedLimits};
use crate::window_sorts::ExplicitWindowSorts;

/// Errors of the scheduler crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Ballista could not start or run the scheduler.
    #[error("Ballista scheduler: {0}")]
    Ballista(#[from] ballista_core::error::BallistaError),
    /// The Wasm runtime could not start.
    #[error("{0}")]
    Wasm(#[from] quiver_udf_registry::Error),
    /// The scheduler's status could not be read.
    #[error("{0}")]
    Status(String),
}

/// Result of scheduler operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How the scheduler treats executors.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// An executor silent for this long is lost: its running tasks, and the
    /// stages whose shuffle output it held, run again elsewhere.
    pub executor_timeout: Duration,
    /// When every executor is gone, how long running queries wait for one
    /// to (re)join before they fail.
    pub no_executors_grace: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            executor_timeout: Duration::from_secs(10),
            no_executors_grace: Duration::from_secs(10),
        }
    }
}

/// Quiver's own settings (`quiver.*`), kept in a session's DataFusion
/// configuration and sent with each of its jobs like DataFusion's.
#[derive(Debug, Clone)]
pub struct QuiverOptions {
    /// The frontend session the job runs for. The job's tasks run under
    /// this session id on every executor, so cancelling the session reaches
    /// their Wasm calls (see `quiver_udf_registry::interrupt`).
    pub session: String,
    /// Bytes of stored table files a statement may read and still run on
    /// the frontend, without the fixed cost of a Ballista job; 0: every
    /// statement over stored tables runs as a job.
    pub local_read_limit: u64,
}

/// The default [`QuiverOptions::local_read_limit`]: 8 MiB.
pub const DEFAULT_LOCAL_READ_LIMIT: u64 = 8 << 20;

impl Default for QuiverOptions {
    fn default() -> Self {
        Self {
            session: String::new(),
            local_read_limit: DEFAULT_LOCAL_READ_LIMIT,
        }
    }
}

impl ConfigExtension for QuiverOptions {
    const PREFIX: &'static str = "quiver";
}

// By hand rather than with `extensions_options!`, whose entries leave out
// the prefix: Ballista sends a job's settings as entries, and the scheduler
// could not set them back.
impl ExtensionOptions for QuiverOptions {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> datafusion::common::Result<()> {
        match key {
            "session" => {
                self.session = value.to_string();
                Ok(())
            }
            "local_read_limit" => {
                self.local_read_limit = value.trim().parse().map_err(|_| {
                    datafusion::common::DataFusionError::Configuration(format!(
                        "quiver.local_read_limit is a number of bytes, not \"{value}\""
                    ))
                })?;
                Ok(())
            }
            _ => datafusion::common::config_err!("configuration key `quiver.{key}` does not exist"),
        }
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        vec![
            ConfigEntry {
                key: SESSION_SETTING.to_string(),
                value: Some(self.session.clone()),
                description: "the frontend session a Ballista job runs for",
            },
            ConfigEntry {
                key: LOCAL_READ_LIMIT_SETTING.to_string(),
                value: Some(self.local_read_limit.to_string()),
                description: "bytes of stored tables a statement may read and still run on the frontend (0: every one runs as a Ballista job)",
            },
        ]
    }
}

/// The setting that names a job's session (see [`QuiverOptions`]).
pub const SESSION_SETTING: &str = "quiver.session";

/// The setting of [`QuiverOptions::local_read_limit`].
pub const LOCAL_READ_LIMIT_SETTING: &str = "quiver.local_read_limit";

/// Quiver's settings for Ballista jobs, on top of `base`. Frontends send
/// them with every job; the scheduler's own defaults are the same.
pub fn job_settings(base: SessionConfig) -> SessionConfig {
    let base = base.with_option_extension(QuiverOptions::default());
    // Ballista 55's adaptive planner gives wrong results for UNION ALL when
    // a task gets a slice of the union's partitions (an executor with fewer
    // free slots than the union has inputs): every task runs every branch,
    // so rows come back duplicated (`sql/server/queries.slt` shows it with
    // one-slot executors). The static planner is correct.
    let base = base.set_str("ballista.planner.adaptive.enabled", "false");
    // Tables are written with LZ4: a point lookup of a small table spent
    // more of its time in zstd's decompression (DataFusion's default,
    // `zstd(3)`) than in anything else (bench/README.md, "Small
    // statements"); LZ4 reads several times faster, for larger files.
    let base = base.set_str("datafusion.execution.parquet.compression", "lz4_raw");
    // A read decodes whole pages, and a column's whole dictionary before
    // any page of it: with DataFusion's defaults (20,000 rows a page,
    // dictionaries up to 1 MB) a point lookup of a 10,000-row table decoded
    // every value of every column it read. Pages of about 1,024 rows, which
    // the page index lets a lookup pick alone, and dictionaries that stop
    // at 8 KiB (a column of few distinct values keeps one; one of mostly
    // distinct values is written plain instead) made a lookup a fifth
    // faster; a 2-million-row table came out 5% larger and scanned as fast
    // (bench/README.md, "Smaller pages and dictionaries, prepared plans
    // optimized once").
    base.set_str(
        "datafusion.execution.parquet.data_page_row_count_limit",
        "1024",
    )
    .set_str(
        "datafusion.execution.parquet.dictionary_page_size_limit",
        "8192",
    )
    // A scan splits a file into byte ranges, one per partition, but a row
    // group is read whole by the range holding its middle: with
    // DataFusion's row groups of up to 1 M rows, a 2-million-row table (four
    // files of one row group each) split into 16 ranges kept all rows in 4
    // of them, and a task of two partitions ran on one core while the other
    // waited for its empty half (a Wasm-heavy query used one core of two;
    // bench/README.md, "Scaling with slots"). Row groups of 128 Ki rows
    // spread a file over the ranges that read it.
    .set_str("datafusion.execution.parquet.max_row_group_size", "131072")
    // Equi-joins are hash joins, except those whose build side is too
    // large to hold (`DistributedHashJoins`): Ballista makes every
    // join a sort-merge join, which shuffles and sorts both inputs
    // (crates/scheduler/src/joins.rs).
    .set_str("datafusion.optimizer.prefer_hash_join", "true")
    // Grouping by a `CASE` whose condition proves its value not null
    // (`CASE WHEN y.a = x.b THEN x.b ...`) failed planning with an internal
    // error: the logical plan knows the column is not null, the physical
    // one does not, and the aggregate compared them (docs/upstream.md #32).
    // The physical schema, the looser one, is what the rows are written
    // with.
    .set_str(
        "datafusion.execution.skip_physical_aggregate_schema_check",
        "true",
    )
    // A task of several partitions holds a slot for each until the last
    // of them ends, so a slot whose partition ended early (fewer rows, or
    // rows a filter dropped) waits idle. One partition a task frees it for
    // the next: a skewed Wasm-heavy scan ran 15% faster on two slots, and a
    // small query's time stayed as it was (bench/README.md, "Scaling with
    // slots"). Executors of one slot ran so already.
    .set_str("ballista.scheduler.max_partitions_per_task", "1")
}

/// The session a job is planned in: Ballista's, under the frontend
/// session's id, plus Quiver's rules: `OFFSET` without `LIMIT` read back
/// as the frontend meant it, filtered sort-merge joins that keep their
/// columns, nested-loop joins that stay correct when split into tasks,
/// union branches whose joins Ballista cannot swap under them, sort-merge
/// joins where a hash join's build side would not fit in memory,
/// window sorts every stage can check, offsets that keep their order,
/// constant rows every task meters alike, and Wasm function metrics for
/// `EXPLAIN ANALYZE`. Tables in object stores are listed through
/// `stores`, which the process's jobs share (one client per bucket).
fn job_session(
    config: SessionConfig,
    stores: Arc<ObjectStores>,
) -> datafusion::common::Result<SessionState> {
    let session = config
        .options()
        .extensions
        .get::<QuiverOptions>()
        .map(|options| options.session.clone())
        .filter(|session| !session.is_empty());
    let state = default_session_builder(config)?;
    let mut rules = guard_upstream_rules(state.physical_optimizers());
    let selection = rules
        .iter()
        .position(|rule| rule.name() == "join_selection");
    rules.insert(
        selection.map_or(0, |at| at + 1),
        Arc::new(DistributedHashJoins),
    );
    let mut builder = SessionStateBuilder::new_from_existing(state)
        .with_runtime_env(
            RuntimeEnvBuilder::new()
                .with_object_store_registry(stores)
                .build_arc()?,
        )
        .with_physical_optimizer_rules(rules)
        .with_query_planner(Arc::new(TransformQueryPlanner::default()))
        .with_analyzer_rule(Arc::new(UnboundedLimits))
        .with_physical_optimizer_rule(Arc::new(SingleTaskNestedLoopJoins))
        .with_physical_optimizer_rule(Arc::new(PinnedUnionBranchJoins))
        .with_physical_optimizer_rule(Arc::new(ExplicitWindowSorts))
        .with_physical_optimizer_rule(Arc::new(OrderedOffsets))
        .with_physical_optimizer_rule(Arc::new(MeteredConstantRows))
        .with_physical_optimizer_rule(Arc::new(WasmMetricsRule));
    if let Some(session) = session {
        builder = builder.with_session_id(session);
    }
    Ok(builder.build())
}

/// Longer than any process runs (a century).
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Seconds, at least one (Ballista counts whole seconds).
fn seconds(d: Duration) -> u64 {
    d.as_secs().max(1)
}

/// A scheduler bound to its address, not yet serving.
pub struct Scheduler {
    listener: TcpListener,
    addr: SocketAddr,
    config: SchedulerConfig,
}

impl Scheduler {
    /// Binds `addr`. Jobs get sessions built from `session` (plus the
    /// settings each client sends); plans are decoded and encoded with
    /// `codecs` (Quiver's, wrapping Ballista's).
    pub async fn bind(
        addr: SocketAddr,
        options: &SchedulerOptions,
        session: SessionConfig,
        codecs: Codecs,
    ) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Listen { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| Error::Listen { addr, source })?;
        let mut config = SchedulerConfig::default()
            .with_hostname(local.ip().to_string())
            .with_port(local.port())
            // Tasks are pushed to executors as soon as a slot is free: no
            // polling delay on the path of every query.
            .with_scheduler_policy(TaskSchedulingPolicy::PushStaged)
            .with_no_executors_grace_period_seconds(seconds(options.no_executors_grace))
            .with_finished_job_data_clean_up_interval_seconds(60)
            .with_finished_job_state_clean_up_interval_seconds(300)
            .with_override_config_producer(Arc::new(move || session.clone()))
            .with_override_session_builder({
                let stores = Arc::new(ObjectStores::new());
                Arc::new(move |config| job_session(config, stores.clone()))
            });
        config.bind_host = local.ip().to_string();
        config.executor_timeout_seconds = seconds(options.executor_timeout);
        config.expire_dead_executor_interval_seconds = 1;
        config.override_logical_codec = Some(codecs.logical);
        config.override_physical_codec = Some(codecs.physical);
        config.validate()?;
        Ok(Self {
            listener,
            addr: local,
            config,
        })
    }

    /// Where executors and the frontend connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the process ends (or an error).
    pub async fn serve(self) -> Result<()> {
        let config = Arc::new(self.config);
        let cluster = BallistaCluster::new_from_config(&config).await?;
        let scheduler =
            create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config).await?;
        start_grpc_service_with_listener(self.listener, scheduler).await?;
        Ok(())
    }
}

/// Starts a scheduler on a free loopback port inside this process (the
/// embedded mode of `quiver serve`) and returns its address.
pub async fn start_embedded(session: SessionConfig, codecs: Codecs) -> Result<SocketAddr> {
    // The executor in this process shares the scheduler's fate: its
    // heartbeats are late only when the whole process is (paused, or its
    // threads busy), and a scheduler that expired it told it to stop, so
    // it never came back and every query waited. It is never expired.
    let options = SchedulerOptions {
        executor_timeout: FOREVER,
        no_executors_grace: FOREVER,
    };
    let scheduler = Scheduler::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &options,
        session,
        codecs,
    )
    .await?;
    let addr = scheduler.local_addr();
    tokio::spawn(async move {
        if let Err(e) = scheduler.serve().await {
            tracing::error!(error = %e, "embedded Ballista scheduler stopped");
        }
    });
    tracing::info!(%addr, "embedded Ballista scheduler listening");
    Ok(addr)
}

/// `quiver scheduler`: a scheduler process of its own, until `shutdown`
/// completes. Wasm functions in plans are rebuilt from the module directory
/// each plan names.
pub async fn run(
    addr: SocketAddr,
    options: &SchedulerOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let runtime = Arc::new(WasmRuntime::new(RuntimeConfig::default())?);
    let loader = FunctionLoader::new(runtime, None, Arc::new(ObjectStores::new()));
    let codecs = Codecs::new(Arc::new(loader));
    let session = job_settings(SessionConfig::new_with_ballista());
    let scheduler = Scheduler::bind(addr, options, session, codecs).await?;
    // Scripts and tests wait for this line.
    println!("quiver: scheduler listening on {}", scheduler.local_addr());
    tokio::select! {
        served = scheduler.serve() => served,
        () = shutdown => {
            tracing::info!("scheduler shutting down");
            Ok(())
        }
    }
}
