//! [`WasmFunction`]: one overload, compiled, with its pool of instances.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Float64Array, Int32Array, Int64Array, make_array,
    new_null_array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::{CastOptions, cast, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type};
use wasmtime::{Func, Store, Val, ValType};

use crate::component::{Udf, WitType, from_column, to_column};
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
    Component { store: Store<HostState>, udf: Udf },
    Core { store: Store<HostState>, func: Func },
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
        let mut instance = self.instance()?;
        let Instance::Component { store, udf } = &mut instance else {
            return Err(Error::Runtime("not a component".into()));
        };
        self.runtime.arm_deadline(store, self.limits);
        match outside_async(|| f(store, udf)) {
            Ok(r) => {
                self.release(instance);
                Ok(r)
            }
            Err(e) => Err(self.failure(e, instance.store())),
        }
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
        let columns = args
            .iter()
            .map(CoreColumn::new)
            .collect::<Result<Vec<_>>>()?;
        let result_type = core_type(&self.def.returns)?;
        let mut instance = self.instance()?;
        let Instance::Core { store, func } = &mut instance else {
            return Err(Error::Runtime("not a core module".into()));
        };
        self.runtime.arm_deadline(store, self.limits);
        let mut params = vec![Val::I32(0); columns.len()];
        let mut result = [Val::I32(0)];
        let mut out = CoreResult::new(&result_type, rows);
        for row in 0..rows {
            if columns.iter().any(|c| c.is_null(row)) {
                out.push_null();
                continue;
            }
            for (param, column) in params.iter_mut().zip(&columns) {
                *param = column.value(row);
            }
            if let Err(e) = func.call(&mut *store, &params, &mut result) {
                let mut error = self.failure(e, instance.store());
                if let Error::Trap { row: r, .. } = &mut error {
                    *r = Some(row as u64);
                }
                return Err(error);
            }
            out.push(&result[0]);
        }
        self.release(instance);
        let array = out.finish();
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
                let instance = match wasmtime::Instance::new(&mut store, module, &[]) {
                    Ok(instance) => instance,
                    Err(e) => return Err(self.failure(e, &store)),
                };
                let func = instance
                    .get_func(&mut store, &self.def.symbol)
                    .ok_or_else(|| {
                        Error::Runtime(format!("export {} vanished", self.def.symbol))
                    })?;
                Ok(Instance::Core { store, func })
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

/// An argument column as core-module values.
enum CoreColumn {
    I32(Int32Array),
    I64(Int64Array),
    F32(Float32Array),
    F64(Float64Array),
}

impl CoreColumn {
    fn new(array: &ArrayRef) -> Result<Self> {
        let cast_to = |t: &DataType| {
            cast(array, t).map_err(|e| Error::Runtime(format!("cannot pass argument: {e}")))
        };
        Ok(match array.data_type() {
            DataType::Int64 => Self::I64(array.as_primitive::<Int64Type>().clone()),
            DataType::Float32 => Self::F32(array.as_primitive::<Float32Type>().clone()),
            DataType::Float64 => Self::F64(array.as_primitive::<Float64Type>().clone()),
            _ => Self::I32(
                cast_to(&DataType::Int32)?
                    .as_primitive::<Int32Type>()
                    .clone(),
            ),
        })
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Self::I32(a) => a.is_null(row),
            Self::I64(a) => a.is_null(row),
            Self::F32(a) => a.is_null(row),
            Self::F64(a) => a.is_null(row),
        }
    }

    fn value(&self, row: usize) -> Val {
        match self {
            Self::I32(a) => Val::I32(a.value(row)),
            Self::I64(a) => Val::I64(a.value(row)),
            Self::F32(a) => Val::F32(a.value(row).to_bits()),
            Self::F64(a) => Val::F64(a.value(row).to_bits()),
        }
    }
}

/// Results of a core function, row by row.
enum CoreResult {
    I32(Vec<Option<i32>>),
    I64(Vec<Option<i64>>),
    F32(Vec<Option<f32>>),
    F64(Vec<Option<f64>>),
}

impl CoreResult {
    fn new(t: &ValType, rows: usize) -> Self {
        match t {
            ValType::I64 => Self::I64(Vec::with_capacity(rows)),
            ValType::F32 => Self::F32(Vec::with_capacity(rows)),
            ValType::F64 => Self::F64(Vec::with_capacity(rows)),
            _ => Self::I32(Vec::with_capacity(rows)),
        }
    }

    fn push(&mut self, v: &Val) {
        match (self, v) {
            (Self::I32(out), Val::I32(x)) => out.push(Some(*x)),
            (Self::I64(out), Val::I64(x)) => out.push(Some(*x)),
            (Self::F32(out), Val::F32(x)) => out.push(Some(f32::from_bits(*x))),
            (Self::F64(out), Val::F64(x)) => out.push(Some(f64::from_bits(*x))),
            (out, _) => out.push_null(),
        }
    }

    fn push_null(&mut self) {
        match self {
            Self::I32(out) => out.push(None),
            Self::I64(out) => out.push(None),
            Self::F32(out) => out.push(None),
            Self::F64(out) => out.push(None),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Self::I32(v) => Arc::new(Int32Array::from(v)),
            Self::I64(v) => Arc::new(Int64Array::from(v)),
            Self::F32(v) => Arc::new(Float32Array::from(v)),
            Self::F64(v) => Arc::new(Float64Array::from(v)),
        }
    }
}
