#![doc = include_str!("../README.md")]

mod aggregate;
mod codec;
mod component;
mod core_batch;
mod definition;
mod error;
mod folded;
mod function;
pub mod interrupt;
mod loader;
mod metrics;
mod module;
mod module_dir;
mod registry;
mod runtime;
mod scalar_subquery;
mod table;
mod types;
mod udf;

pub use aggregate::WasmAggregateUdf;
pub use codec::{Codecs, QuiverLogicalCodec, QuiverPhysicalCodec};
pub use definition::{Abi, Folded, FunctionDef, Kind, Limits, TableColumn, Volatility};
pub use error::{Error, Result};
pub use folded::{FoldedAggregateUdf, FoldedParts};
pub use function::{Accumulator, TableRows, WasmFunction};
pub use loader::FunctionLoader;
pub use metrics::{WasmMetricsExec, WasmMetricsRule};
pub use module::ModuleBytes;
pub use module_dir::ModuleDir;
pub use registry::{CreateFolded, CreateFunction, FunctionRegistry, ModuleSource};
pub use runtime::{EffectiveLimits, RuntimeConfig, WasmRuntime};
pub use scalar_subquery::{MORE_THAN_ONE_ROW, SubqueryRows, SubqueryValue};
pub use table::{WasmTableExec, WasmTableFunction, WasmTableProvider};
pub use types::{DECIMAL_PRECISION, SqlType, signature};
pub use udf::WasmScalarUdf;
