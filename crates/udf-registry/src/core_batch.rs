//! Core-module functions, a batch per call.
//!
//! A core module exports a function of numbers, called once per row. Rather
//! than cross from the host into Wasm once per row, Quiver generates a small
//! *driver* module for the function's signature: it imports the user's
//! function, and its `run` export loops over a batch laid out in its own
//! memory, calling the user's function for each row whose arguments are
//! all present. A call from one Wasm instance into another is an ordinary
//! Wasm call, so the host enters Wasm once per batch.
//!
//! Driver memory layout for `rows` rows: `rows` validity bytes (1 = call),
//! then each argument column, then the result column, each 8-byte aligned.
//! The driver's exported global `row` holds the row being computed, so a
//! trap can be reported with its row.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray, make_array};
use datafusion::arrow::buffer::{Buffer, MutableBuffer, NullBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float32Type, Float64Type, Int32Type, Int64Type,
};
use wasmtime::{Engine, Func, Global, Instance, Memory, Module, Store, Val, ValType};

use crate::runtime::HostState;
use crate::{Error, Result};

const PAGE: usize = 64 << 10;

/// The driver for one signature, compiled.
pub(crate) fn driver_module(
    engine: &Engine,
    params: &[ValType],
    result: &ValType,
) -> Result<Module> {
    let name = |t: &ValType| match t {
        ValType::I64 => "i64",
        ValType::F32 => "f32",
        ValType::F64 => "f64",
        _ => "i32",
    };
    let size = |t: &ValType| match t {
        ValType::I64 | ValType::F64 => 8,
        _ => 4,
    };
    let import_params: Vec<&str> = params.iter().map(name).collect();
    let column_params: String = (0..params.len())
        .map(|i| format!(" (param $in{i} i32)"))
        .collect();
    let loads: String = params
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                " ({}.load (i32.add (local.get $in{i}) (i32.mul (local.get $i) (i32.const {}))))",
                name(t),
                size(t)
            )
        })
        .collect();
    let wat = format!(
        r#"(module
  (import "user" "f" (func $f (param {params}) (result {result})))
  (memory (export "memory") 1)
  (global $row (export "row") (mut i32) (i32.const 0))
  (func (export "run") (param $rows i32) (param $valid i32){column_params} (param $out i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
        (if (i32.load8_u (i32.add (local.get $valid) (local.get $i)))
          (then
            (global.set $row (local.get $i))
            ({result}.store
              (i32.add (local.get $out) (i32.mul (local.get $i) (i32.const {result_size})))
              (call $f{loads}))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))))"#,
        params = import_params.join(" "),
        result = name(result),
        result_size = size(result),
    );
    Module::new(engine, wat).map_err(|e| Error::Runtime(format!("driver module: {e:#}")))
}

/// A user module instance wired to its driver.
pub(crate) struct CoreBatch {
    run: Func,
    memory: Memory,
    row: Global,
}

impl CoreBatch {
    pub(crate) fn instantiate(
        store: &mut Store<HostState>,
        user: &Module,
        symbol: &str,
        driver: &Module,
    ) -> wasmtime::Result<Self> {
        let user = Instance::new(&mut *store, user, &[])?;
        let f = user
            .get_func(&mut *store, symbol)
            .ok_or_else(|| wasmtime::Error::msg(format!("export {symbol} vanished")))?;
        let driver = Instance::new(&mut *store, driver, &[f.into()])?;
        let missing = || wasmtime::Error::msg("driver module exports missing");
        Ok(Self {
            run: driver.get_func(&mut *store, "run").ok_or_else(missing)?,
            memory: driver
                .get_memory(&mut *store, "memory")
                .ok_or_else(missing)?,
            row: driver.get_global(&mut *store, "row").ok_or_else(missing)?,
        })
    }

    /// The row the driver was computing (after a trap).
    pub(crate) fn row(&self, store: &mut Store<HostState>) -> u64 {
        match self.row.get(store) {
            Val::I32(row) => row as u64,
            _ => 0,
        }
    }

    /// Computes `rows` rows. `args` are Int32/Int64/Float32/Float64 arrays;
    /// rows where any argument is null are null (core functions are strict).
    pub(crate) fn call(
        &self,
        store: &mut Store<HostState>,
        args: &[ArrayRef],
        result: &ValType,
        rows: usize,
    ) -> wasmtime::Result<ArrayRef> {
        let nulls = args.iter().fold(None, |acc: Option<NullBuffer>, a| {
            NullBuffer::union(acc.as_ref(), a.nulls())
        });
        let align = |n: usize| n.div_ceil(8) * 8;
        let mut offset = align(rows);
        let mut layout = Vec::with_capacity(args.len());
        for a in args {
            layout.push(offset);
            offset += align(rows * width(a.data_type()));
        }
        let out = offset;
        let result_width = match result {
            ValType::I64 | ValType::F64 => 8,
            _ => 4,
        };
        let needed = out + rows * result_width;
        let have = self.memory.data_size(&*store);
        if needed > have {
            self.memory
                .grow(&mut *store, (needed - have).div_ceil(PAGE) as u64)?;
        }

        let memory = self.memory.data_mut(&mut *store);
        let valid = &mut memory[..rows];
        match &nulls {
            None => valid.fill(1),
            Some(n) => {
                for (slot, v) in valid.iter_mut().zip(n.iter()) {
                    *slot = u8::from(v);
                }
            }
        }
        for (a, at) in args.iter().zip(&layout) {
            let bytes = values(a);
            memory[*at..*at + bytes.len()].copy_from_slice(bytes);
        }

        let mut params = vec![Val::I32(rows as i32), Val::I32(0)];
        params.extend(layout.iter().map(|at| Val::I32(*at as i32)));
        params.push(Val::I32(out as i32));
        self.run.call(&mut *store, &params, &mut [])?;

        let mut buffer = MutableBuffer::from_len_zeroed(rows * result_width);
        buffer
            .as_slice_mut()
            .copy_from_slice(&self.memory.data(&*store)[out..out + rows * result_width]);
        let buffer: Buffer = buffer.into();
        Ok(match result {
            ValType::I64 => primitive::<Int64Type>(buffer, rows, nulls),
            ValType::F32 => primitive::<Float32Type>(buffer, rows, nulls),
            ValType::F64 => primitive::<Float64Type>(buffer, rows, nulls),
            _ => primitive::<Int32Type>(buffer, rows, nulls),
        })
    }
}

fn width(t: &DataType) -> usize {
    t.primitive_width().unwrap_or(8)
}

/// The value bytes of a primitive array (little-endian, as Wasm reads them).
fn values(a: &ArrayRef) -> &[u8] {
    fn bytes<T: ArrowPrimitiveType>(a: &ArrayRef) -> &[u8] {
        a.as_primitive_opt::<T>()
            .map(|p| p.values().inner().as_slice())
            .unwrap_or_default()
    }
    match a.data_type() {
        DataType::Int64 => bytes::<Int64Type>(a),
        DataType::Float32 => bytes::<Float32Type>(a),
        DataType::Float64 => bytes::<Float64Type>(a),
        _ => bytes::<Int32Type>(a),
    }
}

fn primitive<T: ArrowPrimitiveType>(
    buffer: Buffer,
    rows: usize,
    nulls: Option<NullBuffer>,
) -> ArrayRef {
    let values = ScalarBuffer::<T::Native>::new(buffer, 0, rows);
    let array = PrimitiveArray::<T>::new(values, nulls);
    make_array(array.into_data())
}
