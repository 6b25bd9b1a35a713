//! [`WasmFunction`]: one overload, compiled, with its pool of instances.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, make_array, new_null_array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::{CastOptions, cast, cast_with_options};
use datafusion::arrow::datatypes::DataType;
use wasmtime::{Store, ValType};

use crate::component::{Udf, WitType, from_column, to_column};
use crate::core_batch::CoreBatch;
use crate::definition::{Abi, FunctionDef};
use crate::runtime::{Compiled, EffectiveLimits, HostState, WasmRuntime, call_error};
use crate::types::SqlType;
use crate::{Error, Result};

/// One overload of a Wasm function, ready to call.
pub struct WasmFunction {
    def: FunctionDef,
    compiled: Arc<Compiled>,
    runtime: Arc<WasmRuntime>,
    limits: EffectiveLimits,
    /// Idle instances. An instance serves one call at a time and goes back
    /// only after a call that succeeded.
    pool: Mutex<Vec<Instance>>,
    /// Return types the guest gave for argument types (polymorphic functions).
    return_types: Mutex<HashMap<Vec<SqlType>, SqlType>>,
}

impl std::fmt::Debug for WasmFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmFunction")
            .field("def", &self.def)
            .finish_non_exhaustive()
    }
}

enum Instance {
    Component {
        store: Store<HostState>,
        udf: Udf,
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

impl WasmFunction {
    pub(crate) fn new(
        def: FunctionDef,
        compiled: Arc<Compiled>,
        runtime: Arc<WasmRuntime>,
    ) -> Self {
        let limits = runtime.limits(&def.limits);
        Self {
            def,
            compiled,
            runtime,
            limits,
            pool: Mutex::new(Vec::new()),
            return_types: Mutex::new(HashMap::new()),
        }
    }

    pub fn def(&self) -> &FunctionDef {
        &self.def
    }

    /// The limits its calls run under (its own, or the server's defaults).
    pub fn limits(&self) -> EffectiveLimits {
        self.limits
    }

    /// Checks the SQL signature against the module: the export exists, and
    /// takes and returns what the SQL signature says (42P13 otherwise).
    pub(crate) fn validate(&self) -> Result<()> {
        let def = &self.def;
        match (&*self.compiled, def.abi) {
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
            (Compiled::Component(_), Abi::Component) => {
                let functions = self
                    .with_component(|store, udf| udf.quiver_udf_scalar().call_functions(store))?;
                if !functions.contains(&def.symbol) {
                    return Err(Error::InvalidFunction(format!(
                        "the component has no function \"{}\"{}",
                        def.symbol,
                        hint(&functions)
                    )));
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
                        "function \"{}\" of the component returns {returns} for ({}), not {}",
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
            _ => Err(Error::Runtime("module kind does not match its ABI".into())),
        }
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

    fn guest_return_type(&self, args: &[SqlType]) -> Result<SqlType> {
        let wit: Vec<WitType> = args.iter().map(|t| WitType::from(*t)).collect();
        let symbol = self.def.symbol.clone();
        let answer = self.with_component(move |store, udf| {
            udf.quiver_udf_scalar()
                .call_return_type(store, &symbol, &wit)
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
    fn with_component<R: Send>(
        &self,
        f: impl FnOnce(&mut Store<HostState>, &Udf) -> wasmtime::Result<R> + Send,
    ) -> Result<R> {
        // Instantiating runs the guest's initialisers, which may use WASI too.
        outside_async(|| {
            let mut instance = self.instance()?;
            let Instance::Component { store, udf } = &mut instance else {
                return Err(Error::Runtime("not a component".into()));
            };
            self.runtime.arm_deadline(store, self.limits);
            match f(store, udf) {
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
        match self.def.abi {
            Abi::Component => self.invoke_component(args, types, returns, rows),
            Abi::Core => self.invoke_core(args, &return_type, rows),
        }
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
        let answer = self.with_component(|store, udf| {
            udf.quiver_udf_scalar()
                .call_call(store, symbol, &columns, rows_u32)
        })?;
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
        let mut instance = self.instance()?;
        let Instance::Core { store, batch } = &mut instance else {
            return Err(Error::Runtime("not a core module".into()));
        };
        self.runtime.arm_deadline(store, self.limits);
        let array = match batch.call(store, &args, &result_type, rows) {
            Ok(array) => array,
            Err(e) => {
                let row = batch.row(store);
                let mut error = self.failure(e, instance.store());
                if let Error::Trap { row: r, .. } = &mut error {
                    *r = Some(row);
                }
                return Err(error);
            }
        };
        self.release(instance);
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
        let mut store = self.runtime.store(self.limits);
        self.runtime.arm_deadline(&mut store, self.limits);
        match &*self.compiled {
            Compiled::Component(pre) => match pre.instantiate(&mut store) {
                Ok(udf) => Ok(Instance::Component { store, udf }),
                Err(e) => Err(self.failure(e, &store)),
            },
            Compiled::Core(module) => {
                let driver = self.runtime.core_driver(&self.def)?;
                match CoreBatch::instantiate(&mut store, module, &self.def.symbol, &driver) {
                    Ok(batch) => Ok(Instance::Core { store, batch }),
                    Err(e) => Err(self.failure(e, &store)),
                }
            }
        }
    }

    fn release(&self, instance: Instance) {
        if instance
            .store()
            .data()
            .output_nearly_full(self.runtime.config().output_limit)
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

/// Runs `f`, which may block, where blocking is allowed. WASI's host side
/// (stdout, stderr, clocks) runs its futures with `block_on` on the ambient
/// tokio runtime, which panics on a thread that drives async tasks, and
/// DataFusion evaluates functions on such threads: there, move off the
/// worker first.
fn outside_async<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => f(),
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|scope| match scope.spawn(f).join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
    }
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
