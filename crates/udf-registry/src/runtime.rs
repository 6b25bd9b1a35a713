//! [`WasmRuntime`]: the one wasmtime [`Engine`] of a process, its compiled
//! module cache, and the sandbox every call runs in.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{Component, InstancePre, Linker as ComponentLinker, ResourceTable};
use wasmtime::{Config, Engine, Module, ResourceLimiter, Store, UpdateDeadline, ValType};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use crate::definition::{FunctionDef, Grants, Limits};
use crate::guest_output::GuestOutput;
use crate::interrupt::CallWatch;
use crate::keyvalue::KeyValueAccess;
use crate::module::ModuleBytes;
use crate::{Error, Result};

/// How often the epoch advances: the granularity of call time limits.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Server-wide sandbox settings: the defaults behind every function's limits.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled code is cached (keyed by module hash and engine
    /// settings), so a restart does not recompile. `None`: memory only.
    pub cache_dir: Option<PathBuf>,
    /// Largest linear memory of one instance, in bytes.
    pub max_memory: u64,
    /// Longest one call (one batch) may run.
    pub time_limit: Duration,
    /// Bytes of guest stdout and of stderr kept per instance.
    pub output_limit: usize,
    /// Directories functions may be granted to read (`--wasm-files
    /// NAME=DIR`), by name.
    pub file_dirs: std::collections::BTreeMap<String, PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_memory: 128 << 20,
            time_limit: Duration::from_secs(10),
            output_limit: 64 << 10,
            file_dirs: std::collections::BTreeMap::new(),
        }
    }
}

/// The limits one function's calls run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveLimits {
    pub max_memory: u64,
    pub time_limit_ms: u64,
}

/// A compiled module, ready to instantiate.
pub enum Compiled {
    /// Which interfaces it exports is checked when a function of a kind
    /// is created from it.
    Component(InstancePre<HostState>),
    Core(Module),
}

/// The process's Wasm engine.
pub struct WasmRuntime {
    engine: Engine,
    config: RuntimeConfig,
    component_linker: ComponentLinker<HostState>,
    /// Compiled modules by SHA-256. Kept for the life of the process: every
    /// task of every query reuses them, and a module compiles once.
    compiled: Mutex<HashMap<String, Arc<Compiled>>>,
    /// Held while compiling: wasmtime already uses every core for one module.
    compiling: Mutex<()>,
    /// Batch drivers of core functions, by signature (see `core_batch`).
    drivers: Mutex<HashMap<String, Module>>,
    engine_hash: String,
}

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WasmRuntime {
    /// Builds the engine and starts its epoch clock.
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(1 << 20);
        let engine = Engine::new(&wasm).map_err(runtime_error)?;
        let mut linker = ComponentLinker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(runtime_error)?;
        crate::keyvalue::add_to_linker(&mut linker).map_err(runtime_error)?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = format!("{:016x}", hasher.finish());
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
        }
        start_epoch_clock(&engine);
        Ok(Self {
            engine,
            config,
            component_linker: linker,
            compiled: Mutex::new(HashMap::new()),
            compiling: Mutex::new(()),
            drivers: Mutex::new(HashMap::new()),
            engine_hash,
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The limits a function with these overrides runs under. A function's
    /// own limits were checked against its server's when it was created
    /// (`check_limits`); executors, which take no limit flags, run it with
    /// them as they are.
    pub fn limits(&self, overrides: &Limits) -> EffectiveLimits {
        let (max_memory, time_limit_ms) = self.caps();
        EffectiveLimits {
            max_memory: overrides.max_memory.unwrap_or(max_memory),
            time_limit_ms: overrides.time_limit_ms.unwrap_or(time_limit_ms),
        }
    }

    /// Refuses a function's limits above this server's: they are ceilings
    /// as well as defaults.
    pub fn check_limits(&self, limits: &Limits) -> Result<()> {
        let (max_memory, time_limit_ms) = self.caps();
        if let Some(asked) = limits.max_memory.filter(|&m| m > max_memory) {
            return Err(Error::LimitAboveCap(format!(
                "quiver.wasm.max_memory of {asked} bytes is above this server's limit of \
                 {max_memory} bytes (--wasm-max-memory-mb)"
            )));
        }
        if let Some(asked) = limits.time_limit_ms.filter(|&t| t > time_limit_ms) {
            return Err(Error::LimitAboveCap(format!(
                "quiver.wasm.time_limit of {asked} ms is above this server's limit of \
                 {time_limit_ms} ms (--wasm-time-limit-ms)"
            )));
        }
        Ok(())
    }

    /// `grants` with the path of each granted directory filled in from
    /// this server's `--wasm-files`; a name it has no directory for is
    /// refused.
    pub fn resolve_files(&self, grants: &Grants) -> Result<Grants> {
        let mut grants = grants.clone();
        for grant in &mut grants.files {
            grant.path = self
                .config
                .file_dirs
                .get(&grant.name)
                .cloned()
                .ok_or_else(|| {
                    let known: Vec<&str> =
                        self.config.file_dirs.keys().map(String::as_str).collect();
                    Error::InvalidFunction(format!(
                        "quiver.wasm.files names \"{}\", which is not a directory this server grants (--wasm-files NAME=DIR; it has: {})",
                        grant.name,
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ))
                })?;
        }
        Ok(grants)
    }

    /// This process's memory (bytes) and time (ms) limits.
    fn caps(&self) -> (u64, u64) {
        (
            self.config.max_memory,
            self.config.time_limit.as_millis() as u64,
        )
    }

    /// The batch driver for a core function with `def`'s signature.
    pub(crate) fn core_driver(&self, def: &FunctionDef) -> Result<Module> {
        let params = def
            .args
            .iter()
            .map(|t| t.core_value_type())
            .collect::<Option<Vec<_>>>();
        let (Some(params), Some(result)) = (params, def.returns.core_value_type()) else {
            return Err(Error::Runtime(format!(
                "{} is not a core signature",
                def.signature()
            )));
        };
        let key = format!(
            "{} -> {result}",
            params
                .iter()
                .map(ValType::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut drivers = self.drivers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(driver) = drivers.get(&key) {
            return Ok(driver.clone());
        }
        let driver = crate::core_batch::driver_module(&self.engine, &params, &result)?;
        drivers.insert(key, driver.clone());
        Ok(driver)
    }

    /// The compiled form of `module`: from memory, else from the on-disk
    /// cache, else compiled now (and cached). Invalid modules are 42P13.
    pub fn compile(&self, module: &ModuleBytes) -> Result<Arc<Compiled>> {
        if let Some(compiled) = self.cached(&module.sha256) {
            return Ok(compiled);
        }
        // Compiling a large component (CPython inside) takes seconds: the
        // tasks of a query that all need it wait for one compilation, on a
        // thread that lets the runtime's other work (heartbeats) go on.
        outside_async(|| {
            let _one_at_a_time = self.compiling.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(compiled) = self.cached(&module.sha256) {
                return Ok(compiled);
            }
            self.compile_now(module)
        })
    }

    fn compile_now(&self, module: &ModuleBytes) -> Result<Arc<Compiled>> {
        let compiled = Arc::new(self.load_or_compile(module)?);
        let mut cache = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        Ok(cache
            .entry(module.sha256.clone())
            .or_insert(compiled)
            .clone())
    }

    /// The compiled module with this hash, if this process has it.
    pub fn cached(&self, sha256: &str) -> Option<Arc<Compiled>> {
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sha256)
            .cloned()
    }

    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        self.config
            .cache_dir
            .as_ref()
            .map(|dir| dir.join(format!("{sha256}-{}.cwasm", self.engine_hash)))
    }

    fn load_or_compile(&self, module: &ModuleBytes) -> Result<Compiled> {
        let component = module.is_component();
        let path = self.cache_path(&module.sha256);
        if let Some(path) = path.as_deref().filter(|p| p.exists()) {
            match self.deserialize(path, component) {
                Ok(compiled) => return self.prepare(compiled),
                Err(e) => tracing::warn!(path = %path.display(), error = %e,
                    "ignoring unusable compiled-code cache entry"),
            }
        }
        let started = std::time::Instant::now();
        let (compiled, serialized) = if component {
            let c = Component::new(&self.engine, &module.bytes).map_err(invalid_module)?;
            let bytes = c.serialize().map_err(runtime_error)?;
            (Either::Component(c), bytes)
        } else {
            let m = Module::new(&self.engine, &module.bytes).map_err(invalid_module)?;
            let bytes = m.serialize().map_err(runtime_error)?;
            (Either::Core(m), bytes)
        };
        tracing::info!(sha256 = %module.sha256, elapsed = ?started.elapsed(), "compiled Wasm module");
        if let Some(path) = path {
            write_atomically(&path, &serialized);
        }
        self.prepare(compiled)
    }

    /// Loads code this process (or an earlier run of it) compiled and wrote
    /// to the cache directory.
    #[allow(unsafe_code)]
    fn deserialize(&self, path: &Path, component: bool) -> Result<Either> {
        // SAFETY: wasmtime requires that deserialized bytes come from
        // `serialize` of a compatible engine. The cache directory is private
        // to the server: only `load_or_compile` writes it, with the output of
        // `serialize`, under a name that includes the engine's compatibility
        // hash; wasmtime checks the header again on load.
        unsafe {
            if component {
                Component::deserialize_file(&self.engine, path).map(Either::Component)
            } else {
                Module::deserialize_file(&self.engine, path).map(Either::Core)
            }
        }
        .map_err(runtime_error)
    }

    fn prepare(&self, compiled: Either) -> Result<Compiled> {
        Ok(match compiled {
            Either::Component(c) => {
                let pre = self.component_linker.instantiate_pre(&c).map_err(|e| {
                    Error::InvalidFunction(format!(
                        "the component needs imports Quiver does not provide: {e:#}"
                    ))
                })?;
                Compiled::Component(pre)
            }
            Either::Core(m) => {
                if let Some(import) = m.imports().next() {
                    return Err(Error::InvalidFunction(format!(
                        "core modules may not import anything, but this one imports \"{}\" \"{}\"",
                        import.module(),
                        import.name()
                    )));
                }
                Compiled::Core(m)
            }
        })
    }

    /// A fresh store for one instance, with the sandbox's limits and the
    /// buckets it may open.
    pub(crate) fn store(
        &self,
        limits: EffectiveLimits,
        keyvalue: KeyValueAccess,
        function: &FunctionDef,
    ) -> Result<Store<HostState>> {
        let stdout = MemoryOutputPipe::new(self.config.output_limit);
        let stderr = MemoryOutputPipe::new(self.config.output_limit);
        let grants = &function.grants;
        let signature = grants.log.then(|| function.signature());
        let logged = |stream| signature.as_deref().map(|f| (f, stream));
        let mut wasi = WasiCtx::builder();
        wasi.stdout(GuestOutput::new(stdout.clone(), logged("stdout")))
            .stderr(GuestOutput::new(stderr.clone(), logged("stderr")))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            // A granted file is read on the calling thread: calls already
            // run where blocking is allowed.
            .allow_blocking_current_thread(true);
        for grant in &grants.files {
            wasi.preopened_dir(&grant.path, format!("/{}", grant.name), FsPerms::ReadOnly)
                .map_err(|e| {
                    Error::Runtime(format!(
                        "cannot open the directory {} granted as {}: {e:#}",
                        grant.path.display(),
                        grant.name
                    ))
                })?;
        }
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            keyvalue,
            calls: 0,
            memory: MemoryLimit {
                max: limits.max_memory,
                granted: 0,
            },
            watch: CallWatch::start(),
            ticks_left: 0,
            stdout,
            stderr,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        // Every tick: end the call if its session was cancelled or its time is up.
        store.epoch_deadline_callback(|mut store| {
            let state = store.data_mut();
            if state.watch.is_cancelled() {
                return Err(wasmtime::Error::new(Cancelled));
            }
            if state.ticks_left == 0 {
                return Err(wasmtime::Trap::Interrupt.into());
            }
            state.ticks_left -= 1;
            Ok(UpdateDeadline::Continue(1))
        });
        Ok(store)
    }

    /// Arms the time limit (and the cancel check) for the next call in `store`.
    pub(crate) fn arm_deadline(&self, store: &mut Store<HostState>, limits: EffectiveLimits) {
        let state = store.data_mut();
        state.watch = CallWatch::start();
        state.calls += 1;
        state.ticks_left = limits.time_limit_ms.div_ceil(EPOCH_TICK.as_millis() as u64);
        store.set_epoch_deadline(1);
    }
}

enum Either {
    Component(Component),
    Core(Module),
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is gone.
fn start_epoch_clock(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("quiver-wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the Wasm epoch clock: calls have no time limit");
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "could not cache compiled code");
        let _ = std::fs::remove_file(&tmp);
    }
}

fn invalid_module(e: wasmtime::Error) -> Error {
    Error::InvalidFunction(format!("invalid Wasm module: {e:#}"))
}

pub(crate) fn runtime_error(e: wasmtime::Error) -> Error {
    Error::Runtime(format!("{e:#}"))
}

/// What a store holds besides the instance: its WASI context (empty: no
/// files, sockets, environment or arguments), the buckets its function's
/// definition grants, captured output, and its memory limit.
pub struct HostState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) keyvalue: KeyValueAccess,
    /// Calls armed so far: a bucket opened in an earlier call reads the
    /// bucket again (see [`crate::keyvalue`]).
    pub(crate) calls: u64,
    memory: MemoryLimit,
    /// The call in progress, for the cancel check.
    watch: CallWatch,
    /// Epoch ticks the call in progress may still run.
    ticks_left: u64,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    /// What the guest wrote to stderr (else stdout), for error messages.
    pub(crate) fn guest_output(&self) -> String {
        let err = self.stderr.contents();
        let out = if err.is_empty() {
            self.stdout.contents()
        } else {
            err
        };
        String::from_utf8_lossy(&out).trim().to_string()
    }

    /// The linear memory the instance has (its largest memory), in bytes.
    pub(crate) fn memory_bytes(&self) -> u64 {
        self.memory.granted
    }

    /// Whether the captured output is past half its capacity: such an
    /// instance is replaced rather than reused, so its output never fills up
    /// across calls.
    pub(crate) fn output_nearly_full(&self, limit: usize) -> bool {
        self.stdout.contents().len() > limit / 2 || self.stderr.contents().len() > limit / 2
    }
}

/// Refuses memory growth past the limit by failing the call with
/// [`MemoryLimitHit`], so the error says what happened.
struct MemoryLimit {
    max: u64,
    /// The largest linear memory granted so far, in bytes.
    granted: u64,
}

/// The error a memory growth past the limit fails the call with.
#[derive(Debug)]
pub(crate) struct MemoryLimitHit;

impl std::fmt::Display for MemoryLimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("memory limit exceeded")
    }
}

impl std::error::Error for MemoryLimitHit {}

/// The error a call of a cancelled session ends with.
#[derive(Debug)]
struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("canceled")
    }
}

impl std::error::Error for Cancelled {}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max {
            return Err(wasmtime::Error::new(MemoryLimitHit));
        }
        self.granted = self.granted.max(desired as u64);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold references, 8+ bytes each: bound them by the same budget.
        if (desired as u64).saturating_mul(8) > self.max {
            return Err(wasmtime::Error::new(MemoryLimitHit));
        }
        Ok(true)
    }
}

/// The SQL error for a failed call of `function`.
pub(crate) fn call_error(
    e: wasmtime::Error,
    function: &str,
    limits: EffectiveLimits,
    guest_output: String,
) -> Error {
    if e.downcast_ref::<Cancelled>().is_some() {
        return Error::Cancelled {
            function: function.to_string(),
        };
    }
    if e.downcast_ref::<MemoryLimitHit>().is_some() {
        return Error::MemoryLimit {
            function: function.to_string(),
            limit_bytes: limits.max_memory,
        };
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => Error::TimeLimit {
            function: function.to_string(),
            limit_ms: limits.time_limit_ms,
        },
        Some(wasmtime::Trap::StackOverflow) => Error::StackOverflow {
            function: function.to_string(),
        },
        trap => {
            let what = match trap {
                Some(trap) => format!("trap: {trap}"),
                None => format!("{e:#}"),
            };
            let message = if guest_output.is_empty() {
                what
            } else {
                format!("{guest_output} ({what})")
            };
            Error::Trap {
                function: function.to_string(),
                row: None,
                message,
            }
        }
    }
}

/// Runs `f`, which may block, where blocking is allowed. WASI's host side
/// (stdout, stderr, clocks) runs its futures with `block_on` on the ambient
/// tokio runtime, which panics on a thread that drives async tasks, and
/// DataFusion evaluates functions on such threads: there, move off the
/// worker first. A Wasm call may also run until its time limit, and the
/// worker's other tasks (other sessions' statements, new connections) must
/// not wait for it.
pub(crate) fn outside_async<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => f(),
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        Ok(_) => {
            std::thread::scope(
                |scope| match scope.spawn(crate::interrupt::carried(f)).join() {
                    Ok(r) => r,
                    Err(panic) => std::panic::resume_unwind(panic),
                },
            )
        }
    }
}
