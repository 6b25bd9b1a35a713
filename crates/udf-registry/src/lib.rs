#![doc = include_str!("../README.md")]

mod codec;
mod component;
mod core_batch;
mod definition;
mod error;
mod function;
mod loader;
mod metrics;
mod module;
mod module_dir;
mod registry;
mod runtime;
mod types;
mod udf;

pub use codec::{Codecs, QuiverLogicalCodec, QuiverPhysicalCodec};
pub use definition::{Abi, FunctionDef, Limits, Volatility};
pub use error::{Error, Result};
pub use function::WasmFunction;
pub use loader::FunctionLoader;
pub use metrics::{WasmMetricsExec, WasmMetricsRule};
pub use module::ModuleBytes;
pub use module_dir::ModuleDir;
pub use registry::{CreateFunction, FunctionRegistry, ModuleSource};
pub use runtime::{EffectiveLimits, RuntimeConfig, WasmRuntime};
pub use types::{DECIMAL_PRECISION, SqlType, signature};
pub use udf::WasmScalarUdf;
