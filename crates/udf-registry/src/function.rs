//! [`WasmFunction`]: one overload, compiled, with its pool of instances;
//! [`Accumulator`] and [`TableRows`]: an aggregate's states and a running
//! table function, each living in an instance of their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, make_array, new_null_array};
use datafusion::arrow::buffer::{Buffer, NullBuffer};
use datafusion::arrow::compute::{CastOptions, cast, cast_with_options};
use datafusion::arrow::datatypes::DataType;
use wasmtime::component::ResourceAny;
use wasmtime::{Store, ValType};

use crate::component::aggregates::exports::quiver::udf::aggregate::Guest as AggregateGuest;
use crate::component::aggregates::{Aggregates, AggregatesPre};
use crate::component::scalars::exports::quiver::udf::scalar::Guest as ScalarGuest;
use crate::component::scalars::{Scalars, ScalarsPre};
use crate::component::tables::exports::quiver::udf::table::Guest as TableGuest;
use crate::component::tables::{Tables, TablesPre};
use crate::component::transforms::exports::quiver::udf::transform::{
    Batch as TransformBatch, Field as WitField, Guest as TransformGuest,
};
use crate::component::transforms::{Transforms, TransformsPre};
use crate::component::{VarBinary, WitType, from_column, offsets, to_column, var_binary};
use crate::core_batch::CoreBatch;
use crate::definition::{Abi, FunctionDef, Kind, TableColumn};
use crate::keyvalue::{BucketSource, KeyValueAccess};
use crate::module_dir::ModuleDir;
use crate::runtime::{
    Compiled, EffectiveLimits, HostState, WasmRuntime, call_error, outside_async,
};
use crate::types::SqlType;
use crate::usage::Counters;
use crate::{Error, Result};

/// One overload of a Wasm function, ready to call.
pub struct WasmFunction {
    def: FunctionDef,
    compiled: OnceLock<Arc<Compiled>>,
    /// Where the module is read from when it is compiled at the first call.
    fetch: Option<ModuleDir>,
    runtime: Arc<WasmRuntime>,
    limits: EffectiveLimits,
    /// Idle instances. An instance serves one call at a time and goes back
    /// only after a call that succeeded.
    pool: Mutex<Vec<Instance>>,
    /// Return types the guest gave for argument types (polymorphic functions).
    return_types: Mutex<HashMap<Vec<SqlType>, SqlType>>,
    /// Where the buckets its definition grants are read (and written).
    buckets: Arc<BucketSource>,
    /// Where snapshots of buckets a plan pinned are published (the plan's
    /// module directory).
    published: Option<ModuleDir>,
    /// What its calls are counted in (`quiver.function_stats`).
    usage: Arc<Counters>,
}

impl std::fmt::Debug for WasmFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmFunction")
            .field("def", &self.def)
            .finish_non_exhaustive()
    }
}

/// A component instance, seen through the world of its function's kind.
enum Exports {
    Scalar(Scalars),
    Aggregate(Aggregates),
    Table(Tables),
    Transform(Transforms),
}

impl Exports {
    fn scalar(&self) -> wasmtime::Result<&ScalarGuest> {
        match self {
            Exports::Scalar(s) => Ok(s.quiver_udf_scalar()),
            _ => Err(wasmtime::Error::msg("not a scalar function's instance")),
        }
    }

    fn aggregate(&self) -> wasmtime::Result<&AggregateGuest> {
        match self {
            Exports::Aggregate(a) => Ok(a.quiver_udf_aggregate()),
            _ => Err(wasmtime::Error::msg("not an aggregate's instance")),
        }
    }

    fn table(&self) -> wasmtime::Result<&TableGuest> {
        match self {
            Exports::Table(t) => Ok(t.quiver_udf_table()),
            _ => Err(wasmtime::Error::msg("not a table function's instance")),
        }
    }

    fn transform(&self) -> wasmtime::Result<&TransformGuest> {
        match self {
            Exports::Transform(t) => Ok(t.quiver_udf_transform()),
            _ => Err(wasmtime::Error::msg("not a transform's instance")),
        }
    }
}

enum Instance {
    Component {
        store: Store<HostState>,
        exports: Exports,
    },
    Core {
        store: Store<HostState>,
        batch: CoreBatch,
    },
}

impl Instance {
    fn store(&self) -> &Store<HostState> {
        match self {
            Instance::Component { store, .. } | Instance::Core { store, .. } => store,
        }
    }
}

/// A function's compiled module: at hand, or read from a module directory
/// and compiled at the first call. Schedulers and executors decode plans
/// naming functions they may never call (a scheduler calls none), and must
/// not spend the seconds a large component (CPython inside) takes to
/// compile while they decode: a scheduler doing so kept its client waiting
/// past the gRPC timeout.
pub(crate) enum Code {
    Compiled(Arc<Compiled>),
    Fetch(ModuleDir),
}

impl WasmFunction {
    pub(crate) fn new(def: FunctionDef, code: Code, runtime: Arc<WasmRuntime>) -> Self {
        let limits = runtime.limits(&def.limits);
        let (compiled, fetch) = match code {
            Code::Compiled(compiled) => (OnceLock::from(compiled), None),
            Code::Fetch(modules) => (OnceLock::new(), Some(modules)),
        };
        Self {
            def,
            compiled,
            fetch,
            runtime,
            limits,
            pool: Mutex::new(Vec::new()),
            return_types: Mutex::new(HashMap::new()),
            buckets: Arc::new(BucketSource::default()),
            published: None,
            usage: Arc::default(),
        }
    }

    /// The function counting its calls in `usage`.
    pub(crate) fn counted_in(mut self, usage: Arc<Counters>) -> Self {
        self.usage = usage;
        self
    }

    /// Runs one call of the guest over `rows` rows, counting it.
    fn counted<R>(&self, rows: usize, call: impl FnOnce() -> Result<R>) -> Result<R> {
        counted(&self.usage, rows, call)
    }

    /// The function reading its buckets from `buckets`, and pinned versions
    /// of them from `published` too.
    pub(crate) fn with_buckets(
        mut self,
        buckets: Arc<BucketSource>,
        published: Option<ModuleDir>,
    ) -> Self {
        self.buckets = buckets;
        self.published = published;
        self
    }

    pub(crate) fn bucket_source(&self) -> &Arc<BucketSource> {
        &self.buckets
    }

    pub fn def(&self) -> &FunctionDef {
        &self.def
    }

    /// The compiled module, compiled now if this is the first call.
    fn compiled(&self) -> Result<&Compiled> {
        if let Some(compiled) = self.compiled.get() {
            return Ok(compiled);
        }
        let sha = &self.def.module_sha256;
        let compiled = match (self.runtime.cached(sha), &self.fetch) {
            (Some(compiled), _) => compiled,
            (None, Some(modules)) => {
                let started = std::time::Instant::now();
                let compiled = self.runtime.compile(&modules.read(sha)?)?;
                tracing::info!(function = %self.def.signature(), sha256 = %sha,
                    from = %modules.location(),
                    elapsed_ms = started.elapsed().as_millis() as u64, "Wasm module fetched");
                compiled
            }
            (None, None) => {
                return Err(Error::Corrupt {
                    key: self.def.signature(),
                    message: format!("module {sha} is missing"),
                });
            }
        };
        Ok(self.compiled.get_or_init(|| compiled))
    }

    /// The limits its calls run under (its own, or the server's defaults).
    pub fn limits(&self) -> EffectiveLimits {
        self.limits
    }

    /// Checks the SQL signature against the module: the export exists, and
    /// takes and returns what the SQL signature says (42P13 otherwise).
    pub(crate) fn validate(&self) -> Result<()> {
        let def = &self.def;
        match (self.compiled()?, def.abi) {
            (Compiled::Core(module), Abi::Core) => {
                let exports: Vec<String> = module
                    .exports()
                    .filter(|e| e.ty().func().is_some())
                    .map(|e| e.name().to_string())
                    .collect();
                let Some(export) = module.get_export(&def.symbol) else {
                    return Err(Error::InvalidFunction(format!(
                        "the module has no exported function \"{}\"{}",
                        def.symbol,
                        hint(&exports)
                    )));
                };
                let Some(func) = export.func() else {
                    return Err(Error::InvalidFunction(format!(
                        "the module's export \"{}\" is not a function",
                        def.symbol
                    )));
                };
                let params: Vec<ValType> = func.params().collect();
                let results: Vec<ValType> = func.results().collect();
                let wanted: Vec<ValType> = def.args.iter().map(core_type).collect::<Result<_>>()?;
                let wanted_result = core_type(&def.returns)?;
                let same = |a: &[ValType], b: &[ValType]| {
                    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ValType::eq(x, y))
                };
                if !same(&params, &wanted) || !same(&results, std::slice::from_ref(&wanted_result))
                {
                    return Err(Error::InvalidFunction(format!(
                        "the module's \"{}\" has type {} but {} needs {}",
                        def.symbol,
                        func_type(&params, &results),
                        def.signature(),
                        func_type(&wanted, &[wanted_result])
                    )));
                }
                Ok(())
            }
            (Compiled::Component(_), Abi::Component) => self.validate_component(),
            _ => Err(Error::Runtime("module kind does not match its ABI".into())),
        }
    }

    /// Checks that the component has the function under its symbol, among
    /// the functions of its kind; returns what that kind is called.
    pub(crate) fn check_exported(&self) -> Result<&'static str> {
        let (what, names) = match &self.def.kind {
            Kind::Scalar => (
                "function",
                self.with_exports(|store, e| e.scalar()?.call_functions(store))?,
            ),
            Kind::Aggregate => (
                "aggregate",
                self.with_exports(|store, e| e.aggregate()?.call_aggregates(store))?,
            ),
            Kind::Table { .. } => (
                "table function",
                self.with_exports(|store, e| e.table()?.call_tables(store))?,
            ),
            Kind::Transform => (
                "transform",
                self.with_exports(|store, e| e.transform()?.call_transforms(store))?,
            ),
            Kind::Folded(_) => return Ok("aggregate"),
        };
        if !names.contains(&self.def.symbol) {
            return Err(Error::InvalidFunction(format!(
                "the component has no {what} \"{}\"{}",
                self.def.symbol,
                hint(&names)
            )));
        }
        Ok(what)
    }

    fn validate_component(&self) -> Result<()> {
        let def = &self.def;
        let what = self.check_exported()?;
        if def.kind == Kind::Transform {
            // Its columns depend on its input: described at each query.
            return Ok(());
        }
        if let Kind::Table { columns } = &def.kind {
            let wit: Vec<WitType> = def.args.iter().map(|t| WitType::from(*t)).collect();
            let symbol = def.symbol.clone();
            let produced = self
                .with_exports(move |store, e| e.table()?.call_columns(store, &symbol, &wit))?
                .map_err(Error::InvalidFunction)?;
            let produced: Vec<SqlType> = produced.into_iter().map(SqlType::from).collect();
            let declared: Vec<SqlType> = columns.iter().map(|c| c.ty).collect();
            if produced != declared {
                let names = |ts: &[SqlType]| {
                    ts.iter()
                        .map(|t| t.pg_name())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(Error::InvalidFunction(format!(
                    "table function \"{}\" of the component produces columns ({}), but RETURNS TABLE declares ({})",
                    def.symbol,
                    names(&produced),
                    names(&declared)
                )));
            }
            return Ok(());
        }
        if def.args.contains(&SqlType::AnyElement) || def.returns == SqlType::AnyElement {
            // Polymorphic: checked with actual types when a query is planned.
            return Ok(());
        }
        let returns = self.guest_return_type(&def.args).map_err(|e| match e {
            Error::ArgumentTypes(m) => Error::InvalidFunction(m),
            other => other,
        })?;
        if returns != def.returns {
            return Err(Error::InvalidFunction(format!(
                "{what} \"{}\" of the component returns {returns} for ({}), not {}",
                def.symbol,
                def.args
                    .iter()
                    .map(|t| t.pg_name())
                    .collect::<Vec<_>>()
                    .join(", "),
                def.returns
            )));
        }
        Ok(())
    }

    /// What the function returns for arguments of these (concrete) types.
    pub fn return_type(&self, args: &[SqlType]) -> Result<SqlType> {
        if self.def.returns != SqlType::AnyElement && !self.def.args.contains(&SqlType::AnyElement)
        {
            return Ok(self.def.returns);
        }
        let known = self
            .return_types
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(args)
            .copied();
        if let Some(t) = known {
            return Ok(t);
        }
        let t = self.guest_return_type(args)?;
        self.return_types
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(args.to_vec(), t);
        Ok(t)
    }

    /// What the component says the function returns for these arguments
    /// (scalar functions and aggregates).
    pub(crate) fn guest_return_type(&self, args: &[SqlType]) -> Result<SqlType> {
        let wit: Vec<WitType> = args.iter().map(|t| WitType::from(*t)).collect();
        let symbol = self.def.symbol.clone();
        let kind = self.def.kind.clone();
        let answer = self.with_exports(move |store, e| match kind {
            Kind::Scalar => e.scalar()?.call_return_type(store, &symbol, &wit),
            Kind::Aggregate => e.aggregate()?.call_return_type(store, &symbol, &wit),
            Kind::Table { .. } | Kind::Transform => Err(wasmtime::Error::msg(
                "table functions and transforms have columns",
            )),
            Kind::Folded(_) => Err(wasmtime::Error::msg("folded aggregates call their parts")),
        })?;
        answer.map(SqlType::from).map_err(|message| {
            Error::ArgumentTypes(format!(
                "function {} does not accept ({}): {message}",
                self.def.name,
                args.iter()
                    .map(|t| t.pg_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// Runs `f` on a pooled component instance.
    fn with_exports<R: Send>(
        &self,
        f: impl FnOnce(&mut Store<HostState>, &Exports) -> wasmtime::Result<R> + Send,
    ) -> Result<R> {
        // Instantiating runs the guest's initialisers, which may use WASI too.
        outside_async(|| {
            let mut instance = self.instance()?;
            let Instance::Component { store, exports } = &mut instance else {
                return Err(Error::Runtime("not a component".into()));
            };
            self.runtime.arm_deadline(store, self.limits);
            match synced(store, |store| f(store, exports)) {
                Ok(r) => {
                    self.release(instance);
                    Ok(r)
                }
                Err(e) => Err(self.failure(e, instance.store())),
            }
        })
    }

    /// Computes the function over `rows` rows. `args` are the argument
    /// columns, `types` their SQL types.
    pub fn invoke(&self, args: &[ArrayRef], types: &[SqlType], rows: usize) -> Result<ArrayRef> {
        let returns = self.return_type(types)?;
        let Some(return_type) = returns.data_type() else {
            return Err(Error::Runtime("anyelement return type".into()));
        };
        if rows == 0 {
            return Ok(new_null_array(&return_type, 0));
        }
        self.counted(rows, || match self.def.abi {
            Abi::Component => self.invoke_component(args, types, returns, rows),
            Abi::Core => self.invoke_core(args, &return_type, rows),
        })
    }

    fn invoke_component(
        &self,
        args: &[ArrayRef],
        types: &[SqlType],
        returns: SqlType,
        rows: usize,
    ) -> Result<ArrayRef> {
        let columns = args
            .iter()
            .zip(types)
            .map(|(a, t)| to_column(a, *t))
            .collect::<Result<Vec<_>>>()?;
        let rows_u32 = u32::try_from(rows).map_err(|_| Error::Runtime("batch too large".into()))?;
        let symbol = &self.def.symbol;
        let answer =
            self.with_exports(|store, e| e.scalar()?.call_call(store, symbol, &columns, rows_u32))?;
        match answer {
            Ok(column) => from_column(column, returns, rows)
                .and_then(|array| self.null_on_null_input(array, args))
                .map_err(|e| match e {
                    Error::Runtime(message) => Error::Trap {
                        function: self.def.signature(),
                        row: None,
                        message,
                    },
                    other => other,
                }),
            Err(row_error) => Err(Error::Trap {
                function: self.def.signature(),
                row: Some(u64::from(row_error.row)),
                message: row_error.message,
            }),
        }
    }

    /// `STRICT`: rows with a null argument are null, whatever the guest said.
    fn null_on_null_input(&self, array: ArrayRef, args: &[ArrayRef]) -> Result<ArrayRef> {
        if !self.def.strict || args.iter().all(|a| a.null_count() == 0) {
            return Ok(array);
        }
        let nulls = args.iter().fold(array.nulls().cloned(), |acc, a| {
            NullBuffer::union(acc.as_ref(), a.nulls())
        });
        let data = array
            .to_data()
            .into_builder()
            .nulls(nulls)
            .build()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        Ok(make_array(data))
    }

    fn invoke_core(
        &self,
        args: &[ArrayRef],
        return_type: &DataType,
        rows: usize,
    ) -> Result<ArrayRef> {
        let args = args.iter().map(core_argument).collect::<Result<Vec<_>>>()?;
        let result_type = core_type(&self.def.returns)?;
        // A call may run until its time limit: off the async worker, whose
        // other tasks (other sessions' statements, new connections) must
        // go on meanwhile.
        let array = outside_async(|| {
            let mut instance = self.instance()?;
            let Instance::Core { store, batch } = &mut instance else {
                return Err(Error::Runtime("not a core module".into()));
            };
            self.runtime.arm_deadline(store, self.limits);
            match batch.call(store, &args, &result_type, rows) {
                Ok(array) => {
                    self.release(instance);
                    Ok(array)
                }
                Err(e) => {
                    let row = batch.row(store);
                    let mut error = self.failure(e, instance.store());
                    if let Error::Trap { row: r, .. } = &mut error {
                        *r = Some(row);
                    }
                    Err(error)
                }
            }
        })?;
        if array.data_type() == return_type {
            return Ok(array);
        }
        // i32 results become boolean, tinyint or smallint; out of range is an error.
        let options = CastOptions {
            safe: false,
            ..CastOptions::default()
        };
        cast_with_options(&array, return_type, &options).map_err(|e| Error::Trap {
            function: self.def.signature(),
            row: None,
            message: format!("result out of range for {}: {e}", self.def.returns),
        })
    }

    fn instance(&self) -> Result<Instance> {
        if let Some(instance) = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(instance);
        }
        let keyvalue = KeyValueAccess::new(
            self.def.grants.keyvalue.clone(),
            self.buckets.clone(),
            self.published.clone(),
            self.usage.clone(),
        );
        let mut store = self.runtime.store(self.limits, keyvalue, &self.def)?;
        self.runtime.arm_deadline(&mut store, self.limits);
        match self.compiled()? {
            Compiled::Component(pre) => {
                let missing = |interface: &str, e: wasmtime::Error| {
                    Error::InvalidFunction(format!(
                        "the component does not export the quiver:udf/{interface} interface: {e:#}"
                    ))
                };
                let exports = match &self.def.kind {
                    Kind::Scalar => ScalarsPre::new(pre.clone())
                        .map_err(|e| missing("scalar", e))?
                        .instantiate(&mut store)
                        .map(Exports::Scalar),
                    Kind::Aggregate => AggregatesPre::new(pre.clone())
                        .map_err(|e| missing("aggregate", e))?
                        .instantiate(&mut store)
                        .map(Exports::Aggregate),
                    Kind::Table { .. } => TablesPre::new(pre.clone())
                        .map_err(|e| missing("table", e))?
                        .instantiate(&mut store)
                        .map(Exports::Table),
                    Kind::Transform => TransformsPre::new(pre.clone())
                        .map_err(|e| missing("transform", e))?
                        .instantiate(&mut store)
                        .map(Exports::Transform),
                    Kind::Folded(_) => {
                        return Err(Error::Runtime(format!(
                            "{} is called through its SFUNC, not itself",
                            self.def.signature()
                        )));
                    }
                };
                match exports {
                    Ok(exports) => Ok(Instance::Component { store, exports }),
                    Err(e) => Err(self.failure(e, &store)),
                }
            }
            Compiled::Core(module) => {
                let driver = self.runtime.core_driver(&self.def)?;
                match CoreBatch::instantiate(&mut store, module, &self.def.symbol, &driver) {
                    Ok(batch) => Ok(Instance::Core { store, batch }),
                    Err(e) => Err(self.failure(e, &store)),
                }
            }
        }
    }

    /// Puts an instance back in the pool for the next call, unless it is
    /// better replaced: its captured output is nearly full, or its memory
    /// has grown past half its limit (linear memory never shrinks, so an
    /// instance whose heap fragments or leaks a little on every call would
    /// fail some later call that a fresh one runs: the benchmark's Python
    /// `upper` once failed past 128 MiB after many batches).
    fn release(&self, instance: Instance) {
        let state = instance.store().data();
        if state.output_nearly_full(self.runtime.config().output_limit)
            || state.memory_bytes() > self.limits.max_memory / 2
        {
            return;
        }
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(instance);
    }

    fn failure(&self, e: wasmtime::Error, store: &Store<HostState>) -> Error {
        let error = call_error(
            e,
            &self.def.signature(),
            self.limits,
            store.data().guest_output(),
        );
        tracing::debug!(function = %self.def.signature(), error = %error, "Wasm call failed");
        error
    }
}

impl WasmFunction {
    /// A new accumulator of this aggregate for arguments of these types.
    pub fn accumulator(self: &Arc<Self>, args: &[SqlType]) -> Result<Accumulator> {
        let returns = self.return_type(args)?;
        let wit: Vec<WitType> = args.iter().map(|t| WitType::from(*t)).collect();
        let lease = self.counted(0, || {
            self.leased(|store, e| e.aggregate()?.call_create(store, &self.def.symbol, &wit))
        })?;
        Ok(Accumulator {
            lease,
            args: args.to_vec(),
            returns,
        })
    }

    /// Starts this table function with `args` (one value each).
    pub fn start_table(
        self: &Arc<Self>,
        args: &[ArrayRef],
        types: &[SqlType],
    ) -> Result<TableRows> {
        let Kind::Table { columns } = &self.def.kind else {
            return Err(Error::Runtime(format!(
                "{} is not a table function",
                self.def.name
            )));
        };
        let columns: Vec<SqlType> = columns.iter().map(|c| c.ty).collect();
        let args = args
            .iter()
            .zip(types)
            .map(|(a, t)| to_column(a, *t))
            .collect::<Result<Vec<_>>>()?;
        let lease = self.counted(0, || {
            self.leased(|store, e| e.table()?.call_start(store, &self.def.symbol, &args))
        })?;
        Ok(TableRows { lease, columns })
    }

    /// The columns this transform produces from input rows of `input`'s
    /// columns and the constant `args` (of `types`, one value each).
    pub fn describe(
        &self,
        input: &[TableColumn],
        args: &[ArrayRef],
        types: &[SqlType],
    ) -> Result<Vec<TableColumn>> {
        let input = wit_fields(input);
        let args = columns_of(args, types)?;
        let symbol = self.def.symbol.clone();
        let described = self.with_exports(move |store, e| {
            e.transform()?.call_describe(store, &symbol, &input, &args)
        })?;
        let fields = described.map_err(|message| {
            Error::ArgumentTypes(format!("transform {}: {message}", self.def.name))
        })?;
        Ok(fields
            .into_iter()
            .map(|f| TableColumn {
                name: f.name,
                ty: SqlType::from(f.type_),
            })
            .collect())
    }

    /// Starts a partition of this transform: input rows of `input`'s
    /// columns in, rows of `output`'s out.
    pub fn start_transform(
        self: &Arc<Self>,
        input: &[TableColumn],
        args: &[ArrayRef],
        types: &[SqlType],
        output: &[TableColumn],
    ) -> Result<TransformPartition> {
        let fields = wit_fields(input);
        let args = columns_of(args, types)?;
        let lease = self.counted(0, || {
            self.leased(|store, e| {
                e.transform()?
                    .call_start(store, &self.def.symbol, &fields, &args)
            })
        })?;
        Ok(TransformPartition {
            lease,
            input: input.iter().map(|c| c.ty).collect(),
            output: output.iter().map(|c| c.ty).collect(),
        })
    }

    /// Runs `create` on an instance taken from the pool for as long as the
    /// resource it makes lives.
    fn leased(
        self: &Arc<Self>,
        create: impl FnOnce(
            &mut Store<HostState>,
            &Exports,
        ) -> wasmtime::Result<std::result::Result<ResourceAny, String>>
        + Send,
    ) -> Result<Lease> {
        let (instance, handle) = outside_async(|| {
            let mut instance = self.instance()?;
            let Instance::Component { store, exports } = &mut instance else {
                return Err(Error::Runtime("not a component".into()));
            };
            self.runtime.arm_deadline(store, self.limits);
            match synced(store, |store| create(store, exports)) {
                Ok(Ok(handle)) => Ok((instance, handle)),
                Ok(Err(message)) => {
                    self.release(instance);
                    Err(self.trap(None, message))
                }
                Err(e) => Err(self.failure(e, instance.store())),
            }
        })?;
        Ok(Lease {
            function: self.clone(),
            instance: Mutex::new(Some(instance)),
            handle,
        })
    }

    /// The arrays of the columns of `rows` rows the guest returned, of
    /// these types; a malformed column is the function's error.
    fn arrays(
        &self,
        columns: Vec<crate::component::Column>,
        types: &[SqlType],
        rows: usize,
    ) -> Result<Vec<ArrayRef>> {
        columns
            .into_iter()
            .zip(types)
            .map(|(c, t)| from_column(c, *t, rows))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| match e {
                Error::Runtime(message) => self.trap(None, message),
                other => other,
            })
    }

    fn trap(&self, row: Option<u32>, message: String) -> Error {
        Error::Trap {
            function: self.def.signature(),
            row: row.map(u64::from),
            message,
        }
    }
}

/// An instance taken from a function's pool while a guest resource in it
/// lives. Dropped: the resource is dropped and the instance goes back, or
/// is discarded after a failure.
struct Lease {
    function: Arc<WasmFunction>,
    /// `None` once a call failed: the instance is gone. (In a mutex only
    /// to be `Sync`, as DataFusion's accumulators must be; every use has
    /// `&mut self`.)
    instance: Mutex<Option<Instance>>,
    handle: ResourceAny,
}

impl Lease {
    fn call<R: Send>(
        &mut self,
        f: impl FnOnce(&mut Store<HostState>, &Exports, ResourceAny) -> wasmtime::Result<R> + Send,
    ) -> Result<R> {
        let function = &self.function;
        let slot = self.instance.get_mut().unwrap_or_else(|p| p.into_inner());
        let Some(instance) = slot.as_mut() else {
            return Err(Error::Runtime(format!(
                "{} cannot be used after an earlier failure",
                function.def.signature()
            )));
        };
        let handle = self.handle;
        let result = outside_async(|| {
            let Instance::Component { store, exports } = instance else {
                return Err(wasmtime::Error::msg("not a component"));
            };
            function.runtime.arm_deadline(store, function.limits);
            synced(store, |store| f(store, exports, handle))
        });
        result.map_err(|e| match slot.take() {
            Some(instance) => function.failure(e, instance.store()),
            None => Error::Runtime(format!("{e:#}")),
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let slot = self.instance.get_mut().unwrap_or_else(|p| p.into_inner());
        let Some(mut instance) = slot.take() else {
            return;
        };
        let function = &self.function;
        let handle = self.handle;
        let dropped = outside_async(|| {
            let Instance::Component { store, .. } = &mut instance else {
                return false;
            };
            function.runtime.arm_deadline(store, function.limits);
            synced(store, |store| handle.resource_drop(store)).is_ok()
        });
        if dropped {
            function.release(instance);
        }
    }
}

/// The states of one aggregate call over any number of groups, living in
/// one instance of the component (see the `aggregate` interface).
pub struct Accumulator {
    lease: Lease,
    args: Vec<SqlType>,
    returns: SqlType,
}

impl std::fmt::Debug for Accumulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accumulator")
            .field("function", &self.lease.function.def.signature())
            .finish_non_exhaustive()
    }
}

fn count(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Runtime(format!("too many {what}: {n}")))
}

impl Accumulator {
    /// The function this accumulates for.
    pub fn function(&self) -> &Arc<WasmFunction> {
        &self.lease.function
    }

    /// The argument types it takes.
    pub fn args(&self) -> &[SqlType] {
        &self.args
    }

    /// The memory of the instance holding the states, in bytes.
    pub fn memory(&self) -> usize {
        self.lease
            .instance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |i| i.store().data().memory_bytes() as usize)
    }

    /// Adds `rows` rows of `args`; row `i` to group `groups[i]` (every row
    /// to group 0 when `groups` is empty).
    pub fn update(
        &mut self,
        groups: &[u32],
        group_count: usize,
        args: &[ArrayRef],
        rows: usize,
    ) -> Result<()> {
        let usage = self.lease.function.usage.clone();
        counted(&usage, rows, || {
            let columns = args
                .iter()
                .zip(&self.args)
                .map(|(a, t)| to_column(a, *t))
                .collect::<Result<Vec<_>>>()?;
            let (group_count, rows) = (count(group_count, "groups")?, count(rows, "rows")?);
            let answer = self.lease.call(|store, e, h| {
                e.aggregate()?.accumulator().call_update(
                    store,
                    h,
                    groups,
                    group_count,
                    &columns,
                    rows,
                )
            })?;
            answer.map_err(|r| self.lease.function.trap(Some(r.row), r.message))
        })
    }

    /// Merges serialized states (nulls are skipped): state `i` into group
    /// `groups[i]` (all into group 0 when `groups` is empty).
    pub fn merge(
        &mut self,
        groups: &[u32],
        group_count: usize,
        states: &BinaryArray,
    ) -> Result<()> {
        let usage = self.lease.function.usage.clone();
        counted(&usage, states.len(), || {
            let (groups, states): (Vec<u32>, BinaryArray) = if states.null_count() == 0 {
                (groups.to_vec(), states.clone())
            } else {
                let valid: Vec<usize> = (0..states.len()).filter(|i| states.is_valid(*i)).collect();
                (
                    if groups.is_empty() {
                        Vec::new()
                    } else {
                        valid.iter().map(|i| groups[*i]).collect()
                    },
                    valid.iter().map(|i| Some(states.value(*i))).collect(),
                )
            };
            let states = var_binary(states.value_offsets(), states.value_data());
            let group_count = count(group_count, "groups")?;
            let answer = self.lease.call(|store, e, h| {
                e.aggregate()?
                    .accumulator()
                    .call_merge(store, h, &groups, group_count, &states)
            })?;
            answer.map_err(|r| self.lease.function.trap(Some(r.row), r.message))
        })
    }

    /// The serialized states of the first `n` groups.
    pub fn state(&mut self, n: usize) -> Result<BinaryArray> {
        let usage = self.lease.function.usage.clone();
        counted(&usage, 0, || {
            let n32 = count(n, "groups")?;
            let answer = self
                .lease
                .call(|store, e, h| e.aggregate()?.accumulator().call_state(store, h, n32))?;
            let VarBinary { offsets: o, data } =
                answer.map_err(|message| self.lease.function.trap(None, message))?;
            let offsets = offsets(o, data.len(), n).map_err(|e| self.guest_error(e))?;
            BinaryArray::try_new(offsets, Buffer::from_vec(data), None)
                .map_err(|e| self.guest_error(Error::Runtime(e.to_string())))
        })
    }

    /// The results of the first `n` groups.
    pub fn finish(&mut self, n: usize) -> Result<ArrayRef> {
        let usage = self.lease.function.usage.clone();
        counted(&usage, 0, || {
            let n32 = count(n, "groups")?;
            let answer = self
                .lease
                .call(|store, e, h| e.aggregate()?.accumulator().call_finish(store, h, n32))?;
            let column = answer.map_err(|r| self.lease.function.trap(Some(r.row), r.message))?;
            from_column(column, self.returns, n).map_err(|e| self.guest_error(e))
        })
    }

    /// Forgets the first `n` groups; the others are renumbered from 0.
    pub fn remove(&mut self, n: usize) -> Result<()> {
        let usage = self.lease.function.usage.clone();
        counted(&usage, 0, || {
            let n = count(n, "groups")?;
            self.lease
                .call(|store, e, h| e.aggregate()?.accumulator().call_remove(store, h, n))
        })
    }

    fn guest_error(&self, e: Error) -> Error {
        match e {
            Error::Runtime(message) => self.lease.function.trap(None, message),
            other => other,
        }
    }
}

/// A running table function, living in one instance of its component.
pub struct TableRows {
    lease: Lease,
    columns: Vec<SqlType>,
}

impl TableRows {
    /// The next batch of at most `max_rows` rows (columns and row count),
    /// or `None` at the end.
    pub fn next(&mut self, max_rows: usize) -> Result<Option<(Vec<ArrayRef>, usize)>> {
        let usage = self.lease.function.usage.clone();
        let started = std::time::Instant::now();
        let result = self.next_batch(max_rows);
        let rows = match &result {
            Ok(Some((_, rows))) => *rows,
            _ => 0,
        };
        usage.call(rows, started.elapsed(), result.is_err());
        result
    }

    fn next_batch(&mut self, max_rows: usize) -> Result<Option<(Vec<ArrayRef>, usize)>> {
        let max = count(max_rows.max(1), "rows")?;
        let answer = self
            .lease
            .call(|store, e, h| e.table()?.rows().call_next(store, h, max))?;
        let function = &self.lease.function;
        let Some(batch) = answer.map_err(|r| function.trap(Some(r.row), r.message))? else {
            return Ok(None);
        };
        let rows = batch.rows as usize;
        if rows == 0 {
            // An empty batch ends the rows too: a guest cannot keep a query
            // busy returning nothing.
            return Ok(None);
        }
        if rows > max_rows.max(1) {
            return Err(function.trap(
                None,
                format!("returned {rows} rows where at most {max} were asked for"),
            ));
        }
        if batch.columns.len() != self.columns.len() {
            return Err(function.trap(
                None,
                format!(
                    "returned {} columns, not {}",
                    batch.columns.len(),
                    self.columns.len()
                ),
            ));
        }
        let arrays = function.arrays(batch.columns, &self.columns, rows)?;
        Ok(Some((arrays, rows)))
    }
}

/// Columns as a transform's guest sees them.
fn wit_fields(columns: &[TableColumn]) -> Vec<WitField> {
    columns
        .iter()
        .map(|c| WitField {
            name: c.name.clone(),
            type_: WitType::from(c.ty),
        })
        .collect()
}

/// `arrays` (of `types`) as a guest's columns.
fn columns_of(arrays: &[ArrayRef], types: &[SqlType]) -> Result<Vec<crate::component::Column>> {
    arrays
        .iter()
        .zip(types)
        .map(|(a, t)| to_column(a, *t))
        .collect()
}

/// One partition of a running transform (one call sequence), living in one
/// instance of its component.
pub struct TransformPartition {
    lease: Lease,
    input: Vec<SqlType>,
    output: Vec<SqlType>,
}

impl TransformPartition {
    /// Gives the transform `rows` rows of `columns`; returns the rows it
    /// produced (columns and count; no columns when it produced none).
    pub fn push(&mut self, columns: &[ArrayRef], rows: usize) -> Result<(Vec<ArrayRef>, usize)> {
        let usage = self.lease.function.usage.clone();
        counted(&usage, rows, || {
            let batch = TransformBatch {
                columns: columns_of(columns, &self.input)?,
                rows: count(rows, "rows")?,
            };
            let answer = self
                .lease
                .call(|store, e, h| e.transform()?.partition().call_push(store, h, &batch))?;
            self.produced(answer)
        })
    }

    /// Ends the input; returns the rows the transform still produced.
    pub fn finish(&mut self) -> Result<(Vec<ArrayRef>, usize)> {
        let usage = self.lease.function.usage.clone();
        counted(&usage, 0, || {
            let answer = self
                .lease
                .call(|store, e, h| e.transform()?.partition().call_finish(store, h))?;
            self.produced(answer)
        })
    }

    fn produced(
        &self,
        answer: std::result::Result<TransformBatch, crate::component::RowError>,
    ) -> Result<(Vec<ArrayRef>, usize)> {
        let function = &self.lease.function;
        let batch = answer.map_err(|r| function.trap(Some(r.row), r.message))?;
        if batch.rows == 0 {
            // Nothing (its columns, if any, unread).
            return Ok((Vec::new(), 0));
        }
        if batch.columns.len() != self.output.len() {
            return Err(function.trap(
                None,
                format!(
                    "produced {} columns, not the {} it described",
                    batch.columns.len(),
                    self.output.len()
                ),
            ));
        }
        let rows = batch.rows as usize;
        let arrays = function.arrays(batch.columns, &self.output, rows)?;
        Ok((arrays, rows))
    }
}

/// Runs `call` (one call into the guest in `store`), then makes the bucket
/// writes it made durable, whether it succeeded or not (writes are not
/// undone): one sync per call that wrote.
fn synced<R>(
    store: &mut Store<HostState>,
    call: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    let result = call(store);
    let durable = store.data_mut().keyvalue.sync().map_err(|e| {
        wasmtime::Error::msg(format!("cannot make the call's bucket writes durable: {e}"))
    });
    result.and_then(|r| durable.map(|()| r))
}

/// Runs `call` (one call of a guest over `rows` rows), counting it in `usage`.
fn counted<R>(usage: &Counters, rows: usize, call: impl FnOnce() -> Result<R>) -> Result<R> {
    let started = std::time::Instant::now();
    let result = call();
    usage.call(rows, started.elapsed(), result.is_err());
    result
}

/// The core value type of a SQL type (42P13 for types core modules lack).
fn core_type(t: &SqlType) -> Result<ValType> {
    t.core_value_type().ok_or_else(|| {
        Error::InvalidFunction(format!(
            "core modules take and return only numbers (i32, i64, f32, f64); {t} needs a component"
        ))
    })
}

fn func_type(params: &[ValType], results: &[ValType]) -> String {
    let names = |ts: &[ValType]| {
        ts.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!("(param {}) (result {})", names(params), names(results))
}

fn hint(available: &[String]) -> String {
    if available.is_empty() {
        String::new()
    } else {
        format!("; available functions: {}", available.join(", "))
    }
}

/// An argument as the array a core function reads: i32 for boolean and
/// the small integers, as is for i64, f32 and f64.
fn core_argument(array: &ArrayRef) -> Result<ArrayRef> {
    match array.data_type() {
        DataType::Int32 | DataType::Int64 | DataType::Float32 | DataType::Float64 => {
            Ok(array.clone())
        }
        _ => cast(array, &DataType::Int32)
            .map_err(|e| Error::Runtime(format!("cannot pass argument: {e}"))),
    }
}
