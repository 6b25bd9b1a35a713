//! The server: the embedded Ballista cluster, the catalog, the session
//! template, and the PostgreSQL listener.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ballista::extension::{SessionConfigExt, SessionStateExt};
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider,
};
use datafusion::common::ScalarValue;
use datafusion::execution::SessionState;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool, TrackConsumersPool};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use quiver_catalog::{
    Catalog, DEFAULT_SCHEMA, Database, LocalListings, MetaStore, SEARCH_PATH, SessionCatalog,
    SessionDatabase,
};
use quiver_executor::ExecutorOptions;
use quiver_udf_registry::{
    Codecs, FunctionRegistry, LateralWasmCalls, RuntimeConfig, WasmRelationPlanner, WasmRuntime,
};
use tokio::net::TcpListener;

use crate::auth::{AuthMethod, Roles};
use crate::bucket_tables::{BucketValuesTable, BucketsTable};
use crate::cancel::{Canceller, Cancels, JobScheduler};
use crate::cluster::ExecutorsTable;
use crate::datetimes::PostgresDateTimes;
use crate::functions::{FunctionStatsTable, Functions, FunctionsTable};
use crate::grouping_sets::EmptyGroupingSet;
use crate::handler::{Connection, Login};
use crate::integers::CheckedIntegerArithmetic;
use crate::locations::ExternalLocations;
use crate::parse::SqlParser;
use crate::pg_acl::TablePrivilegesTable;
use crate::planner::QuiverQueryPlanner;
use crate::rounding::PostgresRounding;
use crate::session::Session;
use crate::settings::version_string;
use crate::subquery::ScalarSubqueryRows;
use crate::system::SystemTable;
use crate::window::PortableWindowFunctions;
use crate::{Error, Result};
use quiver_storage::ObjectStores;

/// The name of Quiver's one database (DataFusion catalog). Clients may name
/// any database when they connect; they all reach this one.
pub const DATABASE: &str = "quiver";

/// How to run a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Accept clients on a non-loopback address although they are not
    /// authenticated (`auth` is trust).
    pub trust_remote_clients: bool,
    /// How clients are authenticated.
    pub auth: AuthMethod,
    /// A file of `name:password` lines: login roles besides `CREATE ROLE`'s.
    pub users: Option<PathBuf>,
    /// The local directory of the catalog (and, without `table_store`,
    /// of the tables).
    pub data_dir: PathBuf,
    /// The object-store URL of the tables' files, temporary tables and
    /// (unless `module_store` says otherwise) modules; `None`: they are in
    /// `data_dir`.
    pub table_store: Option<String>,
    /// The cluster's scheduler (`HOST:PORT`); `None` runs an embedded
    /// scheduler and executor in this process.
    pub scheduler: Option<String>,
    /// Task slots of the embedded executor.
    pub executor_slots: usize,
    /// Partitions a query is split into at each step: every session's
    /// `datafusion.execution.target_partitions` until it sets another.
    pub partitions: usize,
    /// Bytes the queries the frontend runs itself may hold at once, and
    /// the embedded executor's tasks as many (see [`memory_pool`]); `None`:
    /// half the machine's memory for the frontend, Ballista's default share
    /// for the executor.
    pub memory_limit: Option<u64>,
    /// Bytes of stored table files a statement may read and still run on
    /// the frontend rather than as a Ballista job (`quiver.local_read_limit`
    /// of every session, which may change it); 0: every statement over
    /// stored tables runs as a job.
    pub local_read_limit: u64,
    /// How long a distributed query waits while the scheduler has no
    /// executor before it fails with 57P03. (The embedded scheduler never
    /// loses its executor.)
    pub no_executors_grace: Duration,
    /// Where `CREATE FUNCTION ... AS 'file.wasm', 'name'` reads modules;
    /// `None` disables module files.
    pub function_dir: Option<PathBuf>,
    /// Directories and object-store URLs external tables may read and
    /// write under, besides the data directory's `import` directory (see
    /// [`ExternalLocations`]).
    pub external_dirs: Vec<String>,
    /// Where modules are published for executors, with pinned bucket
    /// versions and executors' usage files: a directory or an object-store
    /// URL; `None`: `modules` beside the tables (in the data directory,
    /// or in `table_store`).
    pub module_store: Option<String>,
    /// Default memory limit of a Wasm instance, in bytes.
    pub wasm_max_memory: u64,
    /// Default time limit of one Wasm call (one batch).
    pub wasm_time_limit: Duration,
    /// Where compiled Wasm is cached; `None`: `wasm-cache` in the data
    /// directory.
    pub wasm_cache_dir: Option<PathBuf>,
    /// Directories functions may be granted to read, by name.
    pub wasm_files: std::collections::BTreeMap<String, PathBuf>,
    /// The certificate (chain) and private key clients' TLS sessions use
    /// (PEM files); `None`: TLS is refused.
    pub tls: Option<TlsFiles>,
}

/// A server certificate and its key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, the server's first.
    pub cert: PathBuf,
    /// The private key (PKCS #8, PKCS #1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The TLS side of the listener: rustls with these files.
    fn acceptor(&self) -> Result<pgwire::tokio::TlsAcceptor> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let failed = |path: &PathBuf, e: &dyn std::fmt::Display| {
            Error::InvalidParameterValue(format!("TLS: cannot use {}: {e}", path.display()))
        };
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| failed(&self.cert, &e))?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| failed(&self.key, &e))?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(&self.cert, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| failed(&self.cert, &e))?;
        Ok(pgwire::tokio::TlsAcceptor::from(Arc::new(config)))
    }
}

/// A running server, ready to accept connections.
pub struct Server {
    listener: TcpListener,
    engine: Arc<Engine>,
    tls: Option<pgwire::tokio::TlsAcceptor>,
}

/// The schema of Quiver's system tables (`quiver.functions`).
pub const SYSTEM_SCHEMA: &str = "quiver";

/// Whether `schema` is one Quiver serves itself (not one `CREATE SCHEMA`
/// may make or `DROP SCHEMA` drop).
pub(crate) fn is_system_schema(schema: &str) -> bool {
    matches!(
        schema,
        SYSTEM_SCHEMA | "pg_catalog" | "information_schema" | "pg_temp" | "pg_toast"
    )
}

/// What every session of the server shares.
struct Engine {
    template: SessionState,
    catalog: Arc<Catalog>,
    /// The database every session shares; each sees it through its own
    /// [`SessionDatabase`].
    database: Arc<Database>,
    functions: Arc<Functions>,
    parser: Arc<SqlParser>,
    cancels: Arc<Cancels>,
    scheduler: JobScheduler,
    roles: Arc<Roles>,
    login: Arc<Login>,
    locations: Arc<ExternalLocations>,
}

impl Server {
    /// Opens the data directory, starts the embedded Ballista scheduler and
    /// executor, and binds the listener.
    pub async fn start(config: ServerConfig) -> Result<Self> {
        if !config.listen.ip().is_loopback()
            && config.auth == AuthMethod::Trust
            && !config.trust_remote_clients
        {
            return Err(Error::InvalidParameterValue(format!(
                "refusing to listen on {} with trust authentication: anyone who can reach this address could run any statement; use --auth scram-sha-256, listen on a loopback address, or pass --trust-remote-clients to accept other machines' connections anyway",
                config.listen
            )));
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            Error::Internal(format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let data_dir = config.data_dir.canonicalize().map_err(|e| {
            Error::Internal(format!("data directory {}: {e}", config.data_dir.display()))
        })?;

        let tls = config.tls.as_ref().map(TlsFiles::acceptor).transpose()?;
        let store = Arc::new(MetaStore::open(&data_dir.join("catalog"))?);
        let runtime = Arc::new(WasmRuntime::new(RuntimeConfig {
            cache_dir: Some(
                config
                    .wasm_cache_dir
                    .clone()
                    .unwrap_or_else(|| data_dir.join("wasm-cache")),
            ),
            max_memory: config.wasm_max_memory,
            time_limit: config.wasm_time_limit,
            file_dirs: config.wasm_files.clone(),
            ..RuntimeConfig::default()
        })?);
        let function_dir = match &config.function_dir {
            Some(dir) => Some(dir.canonicalize().map_err(|e| {
                Error::Internal(format!("function directory {}: {e}", dir.display()))
            })?),
            None => None,
        };
        let stores = Arc::new(ObjectStores::new());
        let files = match &config.table_store {
            Some(url) => quiver_storage::location_url(url)?,
            None => quiver_storage::location_url(&data_dir.to_string_lossy())?,
        };
        let modules = match &config.module_store {
            Some(location) => location.clone(),
            None => files
                .join("modules")
                .map_err(|e| Error::Internal(format!("{files}: {e}")))?
                .to_string(),
        };
        let registry = Arc::new(FunctionRegistry::open(
            store.clone(),
            runtime,
            stores.clone(),
            function_dir,
            Some(&modules),
        )?);

        gather_usage_regularly(registry.clone());

        // Wasm functions travel in plans by reference (see quiver-udf-registry's codec).
        let codecs = Codecs::new(registry.loader().clone());
        let mut session_config = session_config(config.partitions)
            .with_ballista_logical_extension_codec(codecs.logical.clone())
            .with_ballista_physical_extension_codec(codecs.physical.clone());
        session_config.options_mut().set(
            quiver_scheduler::LOCAL_READ_LIMIT_SETTING,
            &config.local_read_limit.to_string(),
        )?;
        let memory = memory_pool(
            config
                .memory_limit
                .map_or_else(default_memory_limit, |limit| limit as usize),
        );
        let scheduler = match &config.scheduler {
            Some(scheduler) => scheduler.clone(),
            None => {
                let scheduler =
                    quiver_scheduler::start_embedded(session_config.clone(), codecs.clone())
                        .await
                        .map_err(|e| Error::Internal(e.to_string()))?;
                let executor = ExecutorOptions::loopback(
                    scheduler,
                    config.executor_slots.max(1),
                    data_dir.join("executor"),
                    config.memory_limit,
                )
                .map_err(|e| Error::Internal(e.to_string()))?;
                quiver_executor::start_embedded(executor, session_config.clone(), codecs)
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?;
                scheduler.to_string()
            }
        };

        let roles = Arc::new(Roles::open(store.clone(), config.users.as_deref())?);
        let login = Arc::new(Login::new(config.auth, roles.clone()));
        let import = data_dir.join("import");
        std::fs::create_dir_all(&import)
            .map_err(|e| Error::Internal(format!("cannot create {}: {e}", import.display())))?;
        let locations = Arc::new(ExternalLocations::new(
            std::iter::once(import.display().to_string())
                .chain(config.external_dirs.iter().cloned()),
        )?);
        let scheduler = JobScheduler {
            addr: scheduler,
            no_executors_grace: config.no_executors_grace,
        };
        let engine = Engine::new(
            &data_dir,
            &files,
            store,
            registry,
            session_config,
            scheduler,
            memory,
            roles,
            login,
            locations,
        )
        .await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| Error::Internal(format!("cannot listen on {}: {e}", config.listen)))?;
        tracing::info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            data_dir = %data_dir.display(), "Quiver is ready for connections");
        Ok(Self {
            listener,
            engine: Arc::new(engine),
            tls,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections until `shutdown` completes. Each connection runs in
    /// its own task; one connection's failure never reaches another.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        loop {
            tokio::select! {
                _ = &mut shutdown => {
                    tracing::info!("shutting down");
                    return Ok(());
                }
                accepted = self.listener.accept() => {
                    let (socket, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            continue;
                        }
                    };
                    let connection = match self.engine.connection() {
                        Ok(connection) => Arc::new(connection),
                        Err(e) => {
                            tracing::error!(%peer, error = %e, "cannot set up a session");
                            continue;
                        }
                    };
                    let tls = self.tls.clone();
                    let open = open.clone();
                    open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::spawn(async move {
                        tracing::debug!(%peer, "connection opened");
                        if let Err(e) = crate::connection::serve(socket, tls, connection).await {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                        if open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                            tokio::task::spawn_blocking(return_freed_memory);
                        }
                    });
                }
            }
        }
    }
}

/// How often the server adds what Wasm functions did to the catalog's
/// totals (`quiver.function_stats`), besides whenever they are read.
const USAGE_GATHERING: Duration = Duration::from_secs(10);

/// Gathers usage every [`USAGE_GATHERING`]: each busy executor writes a
/// usage file a second into the module directory, which would pile up
/// while nobody reads `quiver.function_stats`.
fn gather_usage_regularly(registry: Arc<FunctionRegistry>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(USAGE_GATHERING);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let registry = registry.clone();
            match tokio::task::spawn_blocking(move || registry.gather_usage()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "could not gather function usage"),
                Err(e) => tracing::warn!(error = %e, "function usage gathering failed"),
            }
        }
    });
}

/// Gives the system back the memory glibc's malloc keeps after frees: it
/// keeps freed memory in its per-thread arenas, so a server that had many
/// sessions stayed near their peak (a 64-client soak: 296 MB idle against
/// 113 MB before it). The `quiver` binary allocates with mimalloc, which
/// returns freed pages by itself; what C and C++ code (RocksDB) allocates
/// is still glibc's. Called when the last connection closes.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `malloc_trim` only hands free pages of the heap back to the
    // system; glibc makes it safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Session settings every Quiver session (frontend, scheduler jobs, executor
/// tasks) starts from, splitting queries into `partitions`.
fn session_config(partitions: usize) -> SessionConfig {
    let mut config = SessionConfig::new_with_ballista()
        .with_target_partitions(partitions.max(1))
        .with_information_schema(true)
        .with_default_catalog_and_schema(DATABASE, DEFAULT_SCHEMA)
        .with_create_default_catalog_and_schema(false);
    config.options_mut().sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
    // `2.5` is a `numeric`, as PostgreSQL reads it, not a `double
    // precision`: `0.1 + 0.2` is `0.3`, and `2.5 / 3` divides as `numeric`.
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    quiver_scheduler::job_settings(config)
}

/// A memory budget of `limit` bytes for the queries the frontend runs
/// itself: sorts, joins and aggregates that can spill do so to stay within
/// their share, and the rest fail with `ResourcesExhausted` (SQLSTATE
/// 53200) naming the largest consumers, instead of growing until the
/// machine is out of memory.
fn memory_pool(limit: usize) -> Arc<dyn MemoryPool> {
    const REPORTED: NonZeroUsize = NonZeroUsize::new(3).expect("non-zero");
    Arc::new(TrackConsumersPool::new(FairSpillPool::new(limit), REPORTED))
}

/// Half the machine's memory (`MemTotal` of `/proc/meminfo`), or 2 GiB where
/// that cannot be read.
fn default_memory_limit() -> usize {
    const FALLBACK: usize = 2 << 30;
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib.saturating_mul(1024) / 2)
        })
        .unwrap_or(FALLBACK)
}

/// The frontend's runtime, within the `memory` budget. DataFusion's cache of
/// listings is off: tables change under INSERT and COPY, and it could keep
/// a listing that hides rows; the local file system keeps the listings of
/// managed tables while their directories stay as they were
/// ([`LocalListings`]). Other URLs reach the object stores they name
/// ([`ObjectStores`]).
fn frontend_runtime(memory: Arc<dyn MemoryPool>, data_dir: &Path) -> Result<Arc<RuntimeEnv>> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(memory)
        .with_object_store_registry(Arc::new(ObjectStores::new()))
        .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
        .build_arc()?;
    runtime.register_object_store(
        ObjectStoreUrl::local_filesystem().as_ref(),
        Arc::new(LocalListings::new(data_dir)),
    );
    Ok(runtime)
}

impl Engine {
    #[expect(
        clippy::too_many_arguments,
        reason = "each is a part of the server's state"
    )]
    async fn new(
        data_dir: &std::path::Path,
        files: &url::Url,
        store: Arc<MetaStore>,
        registry: Arc<FunctionRegistry>,
        config: SessionConfig,
        scheduler: JobScheduler,
        memory: Arc<dyn MemoryPool>,
        roles: Arc<Roles>,
        login: Arc<Login>,
        locations: Arc<ExternalLocations>,
    ) -> Result<Self> {
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        // Empty while the stored tables are rebuilt.
        catalogs.register_catalog(DATABASE.to_string(), Arc::new(MemoryCatalogProvider::new()));

        let local = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(frontend_runtime(memory, data_dir)?)
            .with_catalog_list(catalogs.clone())
            .build();
        let catalog = Arc::new(Catalog::open(store, files, &local).await?);
        let database = Arc::new(Database::new(catalog.clone()));
        catalogs.register_catalog(DATABASE.to_string(), database.clone());
        let system = Arc::new(MemorySchemaProvider::new());
        system.register_table(
            "functions".to_string(),
            Arc::new(SystemTable(FunctionsTable::new(registry.clone()))),
        )?;
        system.register_table(
            "function_stats".to_string(),
            Arc::new(SystemTable(FunctionStatsTable::new(registry.clone()))),
        )?;
        if let Some(buckets) = registry.loader().buckets().buckets() {
            system.register_table(
                "buckets".to_string(),
                Arc::new(SystemTable(BucketsTable::new(buckets.clone()))),
            )?;
            system.register_table(
                "bucket_values".to_string(),
                Arc::new(SystemTable(BucketValuesTable::new(buckets.clone()))),
            )?;
        }
        system.register_table(
            "executors".to_string(),
            Arc::new(SystemTable(ExecutorsTable::new(scheduler.addr.clone()))),
        )?;
        system.register_table(
            "table_privileges".to_string(),
            Arc::new(SystemTable(TablePrivilegesTable::new(catalog.clone()))),
        )?;
        for name in crate::info_schema::TABLES
            .into_iter()
            .chain(crate::info_schema::PG_CATALOG_TABLES)
        {
            if let Some(table) = crate::info_schema::table(name) {
                system.register_table(name.to_string(), table)?;
            }
        }
        database.register_schema(SYSTEM_SCHEMA, system)?;

        // Ballista replaces the function registry; Quiver's functions go after.
        let distributed = local.upgrade_for_ballista(format!("http://{}", scheduler.addr))?;
        let planner = Arc::new(QuiverQueryPlanner::new(distributed.query_planner().clone()));
        // Scalar subqueries, checked arithmetic, PostgreSQL's rounding,
        // dates, times and intervals, portable window functions and the
        // empty grouping set, after DataFusion's analyzer rules (type
        // coercion among them). Filtered sort-merge joins keep their
        // columns and offsets their order (see `guard_upstream_rules`).
        let rules = quiver_scheduler::guard_upstream_rules(distributed.physical_optimizers());
        let state = SessionStateBuilder::new_from_existing(distributed)
            .with_physical_optimizer_rules(rules)
            .with_query_planner(planner)
            .with_relation_planners(vec![Arc::new(WasmRelationPlanner::new(registry.clone()))])
            .with_analyzer_rule(Arc::new(LateralWasmCalls))
            .with_analyzer_rule(Arc::new(ScalarSubqueryRows))
            .with_analyzer_rule(Arc::new(CheckedIntegerArithmetic))
            .with_analyzer_rule(Arc::new(PostgresRounding))
            .with_analyzer_rule(Arc::new(PostgresDateTimes))
            .with_analyzer_rule(Arc::new(PortableWindowFunctions))
            .with_analyzer_rule(Arc::new(EmptyGroupingSet))
            .build();
        let ctx = SessionContext::new_with_state(state);
        datafusion_pg_catalog::setup_pg_catalog(&ctx, DATABASE, EmptyContextProvider)
            .map_err(|e| Error::DataFusion(*e))?;
        crate::pg_catalog::install(
            &ctx,
            DATABASE,
            registry.clone(),
            catalog.clone(),
            roles.clone(),
        )?;
        crate::pg_functions::install(&ctx)?;
        ctx.register_udf(create_udf(
            "version",
            vec![],
            DataType::Utf8,
            Volatility::Stable,
            Arc::new(|_| {
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                    version_string(),
                ))))
            }),
        ));
        drop_replaced_aliases(&ctx);
        let template = ctx.state();
        let builtins: HashSet<String> = template
            .scalar_functions()
            .keys()
            .chain(template.aggregate_functions().keys())
            .chain(template.window_functions().keys())
            .cloned()
            .collect();
        Ok(Self {
            template,
            catalog,
            database,
            functions: Arc::new(Functions::new(registry, builtins)),
            parser: Arc::new(SqlParser::default()),
            cancels: Arc::new(Cancels::default()),
            scheduler,
            roles,
            login,
            locations,
        })
    }

    /// A new connection with its own session: its own temporary tables,
    /// transaction blocks and search path over the shared schemas.
    fn connection(&self) -> Result<Connection> {
        let session_id = uuid::Uuid::new_v4().to_string();
        let temp = Arc::new(self.catalog.temp_tables(&session_id));
        let staging = Arc::new(self.catalog.staging(&session_id));
        let relations = Arc::new(SessionCatalog::new(temp, self.catalog.clone(), staging));
        let database = SessionDatabase::new(self.database.clone(), relations.clone());
        let catalogs = MemoryCatalogProviderList::new();
        catalogs.register_catalog(DATABASE.to_string(), Arc::new(database));
        // Jobs carry the session's id to the scheduler, which plans them under it.
        let mut config = self.template.config().clone();
        config
            .options_mut()
            .set(quiver_scheduler::SESSION_SETTING, &session_id)?;
        // Unqualified names are looked up along the session's search path.
        config.options_mut().catalog.default_schema = SEARCH_PATH.to_string();
        let state = SessionStateBuilder::new_from_existing(self.template.clone())
            .with_config(config)
            .with_session_id(session_id.clone())
            .with_catalog_list(Arc::new(catalogs))
            .build();
        let canceller = Arc::new(Canceller::new(&session_id, self.scheduler.clone()));
        let session = Session::new(
            SessionContext::new_with_state(state),
            relations,
            self.functions.clone(),
            canceller,
            self.roles.clone(),
            self.locations.clone(),
        );
        Ok(Connection::new(
            session,
            self.parser.clone(),
            self.login.clone(),
            self.cancels.clone(),
        ))
    }
}

/// Removes the aliases that still name a function Quiver registered another
/// in place of (DataFusion's `to_char` stayed behind as `date_format`).
/// Each connection's state is rebuilt from the template, which registers
/// every function again under its own name and its aliases in no set
/// order: through such an alias the replaced function came back under its
/// name in some sessions and not in others.
fn drop_replaced_aliases(ctx: &SessionContext) {
    let state = ctx.state();
    let scalar = replaced_aliases(state.scalar_functions(), |f| f.name());
    let aggregate = replaced_aliases(state.aggregate_functions(), |f| f.name());
    for key in scalar {
        tracing::debug!(alias = %key, "dropping the alias of a replaced function");
        ctx.deregister_udf(&key);
    }
    for key in aggregate {
        tracing::debug!(alias = %key, "dropping the alias of a replaced aggregate");
        ctx.deregister_udaf(&key);
    }
}

/// The keys of `functions` that are aliases of a function other than the
/// one registered under its name.
fn replaced_aliases<F: PartialEq>(
    functions: &std::collections::HashMap<String, Arc<F>>,
    name: impl Fn(&F) -> &str,
) -> Vec<String> {
    functions
        .iter()
        .filter(|(key, f)| {
            let name = name(f);
            name != key.as_str() && functions.get(name).is_some_and(|current| current != *f)
        })
        .map(|(key, _)| key.clone())
        .collect()
}
