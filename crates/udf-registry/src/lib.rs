#![doc = include_str!("../README.md")]

mod aggregate;
mod checked_arithmetic;
mod codec;
mod component;
mod core_batch;
mod datetime_input;
mod datetime_template;
mod definition;
mod error;
mod folded;
mod format;
mod function;
mod guest_output;
pub mod interrupt;
mod interval_span;
mod json;
mod keyvalue;
mod lateral;
mod loader;
mod metrics;
mod module;
mod module_dir;
mod numeric_division;
mod percentile_disc;
mod registry;
mod relations;
mod round_half_even;
mod runtime;
mod scalar_subquery;
mod single_partition;
mod sized_text;
mod table;
mod transform;
mod types;
mod udf;
pub mod usage;
mod window;

pub use aggregate::WasmAggregateUdf;
pub use checked_arithmetic::CheckedArithmetic;
pub use codec::{Codecs, QuiverLogicalCodec, QuiverPhysicalCodec};
pub use datetime_input::{DateTimeInput, INVALID_DATETIME_SYNTAX};
pub use datetime_template::{
    DATETIME_OUT_OF_RANGE, INVALID_DATETIME_VALUE, TWELVE_HOUR_CLOCK, Template, TemplateFunction,
};
pub use definition::{
    Abi, FileGrant, Folded, FunctionDef, Grants, Kind, Limits, TableColumn, Volatility,
};
pub use error::{Error, Result};
pub use folded::{FoldedAggregateUdf, FoldedParts};
pub use format::{FORMAT_ERROR, Format, NULL_IDENTIFIER, quote_ident, quote_literal};
pub use function::{Accumulator, TableRows, TransformPartition, WasmFunction};
pub use interval_span::IntervalSpan;
pub use json::JsonBuildObject;
pub use keyvalue::{BucketGrant, BucketSource};
pub use lateral::{Apply, LateralWasmCalls, WasmApplyExec, WasmApplyNode, WasmLateralCall};
pub use loader::FunctionLoader;
pub use metrics::{WasmMetricsExec, WasmMetricsRule};
pub use module::ModuleBytes;
pub use module_dir::ModuleDir;
pub use numeric_division::{MIN_DISPLAY_SCALE, NumericDivision, quotient_text};
pub use percentile_disc::{PERCENTILE_OUT_OF_RANGE, PercentileDisc};
pub use registry::{CreateFolded, CreateFunction, FunctionRegistry, ModuleSource};
pub use relations::{TABLE_ARGUMENT, WasmRelationPlanner};
pub use round_half_even::RoundHalfEven;
pub use runtime::{EffectiveLimits, RuntimeConfig, WasmRuntime};
pub use scalar_subquery::{MORE_THAN_ONE_ROW, SubqueryRows, SubqueryValue};
pub use single_partition::SinglePartitionExec;
pub use sized_text::{MAX_LENGTH, PG_TYPE, SizedText, SizedTextCast, VALUE_TOO_LONG};
pub use table::{WasmTableExec, WasmTableFunction, WasmTableProvider};
pub use transform::{
    SortKey, TransformCall, TransformQueryPlanner, WasmNodePlanner, WasmTransformExec,
    WasmTransformNode, transform_physical_planner,
};
pub use types::{DECIMAL_PRECISION, SqlType, signature};
pub use udf::{WasmScalarUdf, called_overload};
pub use window::PortableWindowUdf;
