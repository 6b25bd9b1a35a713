//! Plan codecs that carry Wasm functions by reference.
//!
//! A query's plan is encoded on the way to the scheduler (logical) and to
//! each task (physical). A Wasm function — scalar, aggregate, or the scan of
//! a table function with its arguments — travels as its definitions (name,
//! signature, module SHA-256, version, and the module directory: a few
//! hundred bytes), never as module bytes; the receiving side rebuilds it
//! with its [`FunctionLoader`], which fetches and compiles a module at most
//! once per process. Built-in window functions carry their evaluation
//! direction and null treatment ([`PortableWindowUdf`]). Everything else is
//! delegated to the wrapped codecs (Ballista's), file formats included.

use std::any::Any;
use std::io::Cursor;
use std::sync::Arc;

use ballista_core::serde::{
    BallistaCodec, BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec,
};
use serde::{Deserialize, Serialize};

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::TableProvider;
use datafusion::common::{Result, ScalarValue, TableReference, exec_datafusion_err};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{
    AggregateUDF, Extension, LogicalPlan, Operator, ScalarUDF, WindowUDF,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use crate::aggregate::WasmAggregateUdf;
use crate::checked_arithmetic::CheckedArithmetic;
use crate::datetime_input::DateTimeInput;
use crate::datetime_template::{Template, TemplateFunction};
use crate::definition::{FunctionDef, Limits, TableColumn};
use crate::folded::{FoldedAggregateUdf, FoldedParts};
use crate::format::Format;
use crate::function::WasmFunction;
use crate::interval_span::IntervalSpan;
use crate::json::JsonBuildObject;
use crate::lateral::{Apply, WasmApplyExec, WasmApplyNode};
use crate::loader::FunctionLoader;
use crate::metrics::WasmMetricsExec;
use crate::module_dir::ModuleDir;
use crate::numeric_division::NumericDivision;
use crate::percentile_disc::PercentileDisc;
use crate::round_half_even::RoundHalfEven;
use crate::scalar_subquery::{SubqueryRows, SubqueryValue};
use crate::single_partition::SinglePartitionExec;
use crate::sized_text::SizedTextCast;
use crate::table::{WasmTableExec, WasmTableProvider};
use crate::transform::{SortKey, TransformCall, WasmTransformExec, WasmTransformNode};
use crate::types::SqlType;
use crate::udf::WasmScalarUdf;
use crate::window::PortableWindowUdf;

/// The whole encoding of a [`WasmMetricsExec`] (its input travels as a child).
const METRICS_EXEC: &[u8] = b"quiver-wasm-metrics/1";

/// The whole encoding of a [`SinglePartitionExec`] (its input travels as a child).
const SINGLE_PARTITION_EXEC: &[u8] = b"quiver-single-partition/1";

/// Marks a function reference written by these codecs.
const MAGIC: &[u8] = b"quiver-wasm-udf/2\n";

/// Marks a table function call (a logical scan's provider or a physical
/// scan) written by these codecs.
const TABLE_MAGIC: &[u8] = b"quiver-wasm-table/1\n";

/// What a plan carries for one Wasm function or aggregate name.
#[derive(Serialize, Deserialize)]
struct Reference {
    /// Where a process that lacks a module reads it.
    modules: Option<String>,
    /// Every overload, with the limits it runs under made explicit, so
    /// every process enforces the frontend's limits.
    functions: Vec<FunctionDef>,
}

/// The whole encodings of [`SubqueryRows`] and [`SubqueryValue`], which
/// every process has built in.
const SUBQUERY_ROWS: &[u8] = b"quiver-subquery-rows/1";
const SUBQUERY_VALUE: &[u8] = b"quiver-subquery-value/1";

/// The whole encodings of the [`CheckedArithmetic`] functions, built in too.
const CHECKED: [(&[u8], Operator); 3] = [
    (b"quiver-checked-add/1", Operator::Plus),
    (b"quiver-checked-sub/1", Operator::Minus),
    (b"quiver-checked-mul/1", Operator::Multiply),
];

/// The whole encoding of [`RoundHalfEven`], built in too.
const ROUND_HALF_EVEN: &[u8] = b"quiver-round-half-even/1";

/// The whole encoding of [`NumericDivision`], built in too.
const NUMERIC_DIVISION: &[u8] = b"quiver-numeric-div/1";

/// The whole encoding of [`JsonBuildObject`], built in too.
const JSON_BUILD_OBJECT: &[u8] = b"quiver-json-build-object/1";

/// The whole encoding of [`PercentileDisc`], built in too.
const PERCENTILE_DISC: &[u8] = b"quiver-percentile-disc/1";

/// The whole encoding of [`Format`], built in too.
const FORMAT: &[u8] = b"quiver-format/1";

/// The whole encodings of the [`TemplateFunction`]s, built in too.
const TEMPLATES: [(&[u8], Template); 3] = [
    (b"quiver-to-char/1", Template::ToChar),
    (b"quiver-to-date/1", Template::ToDate),
    (b"quiver-to-timestamp/1", Template::ToTimestamp),
];

/// The whole encoding of [`IntervalSpan`], built in too.
const INTERVAL_SPAN: &[u8] = b"quiver-interval-span/1";

/// The beginning of a [`DateTimeInput`]'s encoding, before its target.
const DATETIME_INPUT: &[u8] = b"quiver-datetime-input/1:";

/// The whole encodings of the [`SizedTextCast`] functions, built in too:
/// `varchar`, then `bpchar`.
const SIZED_TEXT: [&[u8]; 2] = [b"quiver-varchar/1", b"quiver-bpchar/1"];

/// Marks a classic aggregate written by these codecs.
const FOLDED_MAGIC: &[u8] = b"quiver-wasm-folded/1\n";

/// What a plan carries for one classic aggregate name.
#[derive(Serialize, Deserialize)]
struct FoldedReference {
    modules: Option<String>,
    overloads: Vec<FoldedDefs>,
}

/// One overload of a classic aggregate and the functions it folds with.
#[derive(Serialize, Deserialize)]
struct FoldedDefs {
    aggregate: FunctionDef,
    sfunc: FunctionDef,
    combinefunc: FunctionDef,
    finalfunc: Option<FunctionDef>,
}

/// What a plan carries for one table function call.
#[derive(Serialize, Deserialize)]
struct TableCall {
    modules: Option<String>,
    function: FunctionDef,
    types: Vec<SqlType>,
    /// The argument values: one row of Arrow IPC, hex encoded.
    args: String,
    /// Physical scans only.
    projection: Option<Vec<usize>>,
    limit: Option<usize>,
}

/// Marks a transform call (a logical node or a physical plan) written by
/// these codecs (its input travels as a child).
const TRANSFORM_MAGIC: &[u8] = b"quiver-wasm-transform/1\n";

/// What a plan carries for one transform call.
#[derive(Serialize, Deserialize)]
struct TransformPlan {
    modules: Option<String>,
    function: FunctionDef,
    types: Vec<SqlType>,
    /// The argument values: one row of Arrow IPC, hex encoded.
    args: String,
    input: Vec<TableColumn>,
    partition_by: Vec<usize>,
    order_by: Vec<SortKey>,
    output: Vec<TableColumn>,
}

fn write_transform(call: &TransformCall, buf: &mut Vec<u8>) -> Result<()> {
    let modules = call.modules.as_ref();
    let plan = TransformPlan {
        modules: modules.map(|dir| dir.location().to_string()),
        function: explicit(&call.function, modules)?,
        types: call.types.clone(),
        args: encode_values(&call.args)?,
        input: call.input.clone(),
        partition_by: call.partition_by.clone(),
        order_by: call.order_by.clone(),
        output: call.output.clone(),
    };
    buf.extend_from_slice(TRANSFORM_MAGIC);
    serde_json::to_writer(&mut *buf, &plan).map_err(|e| {
        exec_datafusion_err!("cannot encode transform {}: {e}", call.function.def().name)
    })
}

fn read_transform(loader: &FunctionLoader, buf: &[u8]) -> Option<Result<TransformCall>> {
    let payload = buf.strip_prefix(TRANSFORM_MAGIC)?;
    Some((|| {
        let plan: TransformPlan = serde_json::from_slice(payload)
            .map_err(|e| exec_datafusion_err!("cannot decode a transform call: {e}"))?;
        let modules = loader.module_dir(plan.modules.as_deref())?;
        Ok(TransformCall {
            function: loader.function(&plan.function, modules.as_ref())?,
            args: decode_values(&plan.args)?,
            types: plan.types,
            input: plan.input,
            partition_by: plan.partition_by,
            order_by: plan.order_by,
            output: plan.output,
            modules,
        })
    })())
}

/// Marks a lateral table function call (a logical node or a physical
/// plan) written by these codecs (its input travels as a child).
const APPLY_MAGIC: &[u8] = b"quiver-wasm-apply/1\n";

/// What a plan carries for one lateral table function call.
#[derive(Serialize, Deserialize)]
struct ApplyPlan {
    modules: Option<String>,
    function: FunctionDef,
    types: Vec<SqlType>,
    args: Vec<usize>,
    width: usize,
    outer: bool,
    /// The alias of the function's columns (logical plans only).
    qualifier: Option<String>,
}

fn write_apply(apply: &Apply, qualifier: Option<&TableReference>, buf: &mut Vec<u8>) -> Result<()> {
    let modules = apply.modules.as_ref();
    let plan = ApplyPlan {
        modules: modules.map(|dir| dir.location().to_string()),
        function: explicit(&apply.function, modules)?,
        types: apply.types.clone(),
        args: apply.args.clone(),
        width: apply.width,
        outer: apply.outer,
        qualifier: qualifier.map(|q| q.table().to_string()),
    };
    buf.extend_from_slice(APPLY_MAGIC);
    serde_json::to_writer(&mut *buf, &plan).map_err(|e| {
        exec_datafusion_err!("cannot encode a call of {}: {e}", apply.function.def().name)
    })
}

fn read_apply(loader: &FunctionLoader, buf: &[u8]) -> Option<Result<(Apply, Option<String>)>> {
    let payload = buf.strip_prefix(APPLY_MAGIC)?;
    Some((|| {
        let plan: ApplyPlan = serde_json::from_slice(payload)
            .map_err(|e| exec_datafusion_err!("cannot decode a lateral call: {e}"))?;
        let modules = loader.module_dir(plan.modules.as_deref())?;
        let apply = Apply {
            function: loader.function(&plan.function, modules.as_ref())?,
            types: plan.types,
            args: plan.args,
            width: plan.width,
            outer: plan.outer,
            modules,
        };
        Ok((apply, plan.qualifier))
    })())
}

/// A definition with the limits it runs under made explicit, and the
/// version of each bucket it may open pinned: every task reads the buckets
/// as they were when the plan was encoded, from snapshots published in
/// `modules` (where the reading process has no catalog).
fn explicit(f: &WasmFunction, modules: Option<&ModuleDir>) -> Result<FunctionDef> {
    let limits = f.limits();
    let mut grants = f.def().grants.clone();
    for grant in grants.keyvalue.iter_mut().filter(|g| g.version.is_none()) {
        let version = f.bucket_source().pin(&grant.bucket, modules).map_err(|e| {
            exec_datafusion_err!(
                "cannot plan Wasm function {} with bucket \"{}\": {e}",
                f.def().name,
                grant.bucket
            )
        })?;
        grant.version = Some(version);
    }
    Ok(FunctionDef {
        limits: Limits {
            max_memory: Some(limits.max_memory),
            time_limit_ms: Some(limits.time_limit_ms),
        },
        grants,
        ..f.def().clone()
    })
}

/// DataFusion's array, map and struct function `name`: Ballista's executor
/// registry leaves them out, so a plan that calls `array_length` could not
/// be decoded on an executor (docs/upstream.md #19).
fn nested_udf(name: &str) -> Option<Arc<ScalarUDF>> {
    datafusion::functions_nested::all_default_nested_functions()
        .into_iter()
        .find(|f| f.name() == name || f.aliases().iter().any(|alias| alias == name))
}

fn write_reference(
    name: &str,
    overloads: &[Arc<WasmFunction>],
    modules: Option<&ModuleDir>,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let reference = Reference {
        modules: modules.map(|dir| dir.location().to_string()),
        functions: overloads
            .iter()
            .map(|f| explicit(f, modules))
            .collect::<Result<_>>()?,
    };
    buf.extend_from_slice(MAGIC);
    serde_json::to_writer(&mut *buf, &reference)
        .map_err(|e| exec_datafusion_err!("cannot encode Wasm function {name}: {e}"))
}

/// A function reference read back: the overloads, and where their modules are.
struct Overloads(Vec<Arc<WasmFunction>>, Option<ModuleDir>);

/// The overloads and module directory of a reference, if `buf` is one.
fn read_reference(loader: &FunctionLoader, name: &str, buf: &[u8]) -> Option<Result<Overloads>> {
    let payload = buf.strip_prefix(MAGIC)?;
    Some((|| {
        let reference: Reference = serde_json::from_slice(payload)
            .map_err(|e| exec_datafusion_err!("cannot decode Wasm function {name}: {e}"))?;
        let modules = loader.module_dir(reference.modules.as_deref())?;
        let overloads = reference
            .functions
            .iter()
            .map(|def| loader.function(def, modules.as_ref()))
            .collect::<crate::Result<Vec<_>>>()?;
        Ok(Overloads(overloads, modules))
    })())
}

fn encode_udf(node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<bool> {
    let inner: &dyn Any = node.inner().as_ref();
    if inner.is::<SubqueryValue>() {
        buf.extend_from_slice(SUBQUERY_VALUE);
        return Ok(true);
    }
    if inner.is::<RoundHalfEven>() {
        buf.extend_from_slice(ROUND_HALF_EVEN);
        return Ok(true);
    }
    if inner.is::<NumericDivision>() {
        buf.extend_from_slice(NUMERIC_DIVISION);
        return Ok(true);
    }
    if inner.is::<JsonBuildObject>() {
        buf.extend_from_slice(JSON_BUILD_OBJECT);
        return Ok(true);
    }
    if inner.is::<Format>() {
        buf.extend_from_slice(FORMAT);
        return Ok(true);
    }
    if let Some(checked) = inner.downcast_ref::<CheckedArithmetic>()
        && let Some((encoding, _)) = CHECKED.iter().find(|(_, op)| *op == checked.op())
    {
        buf.extend_from_slice(encoding);
        return Ok(true);
    }
    if let Some(cast) = inner.downcast_ref::<SizedTextCast>() {
        buf.extend_from_slice(SIZED_TEXT[usize::from(cast.padded())]);
        return Ok(true);
    }
    if inner.is::<IntervalSpan>() {
        buf.extend_from_slice(INTERVAL_SPAN);
        return Ok(true);
    }
    if let Some(input) = inner.downcast_ref::<DateTimeInput>() {
        buf.extend_from_slice(DATETIME_INPUT);
        buf.extend_from_slice(input.encode_target().as_bytes());
        return Ok(true);
    }
    if let Some(function) = inner.downcast_ref::<TemplateFunction>()
        && let Some((encoding, _)) = TEMPLATES.iter().find(|(_, t)| *t == function.template())
    {
        buf.extend_from_slice(encoding);
        return Ok(true);
    }
    let Some(wasm) = inner.downcast_ref::<WasmScalarUdf>() else {
        return Ok(false);
    };
    write_reference(node.name(), wasm.overloads(), wasm.module_dir(), buf)?;
    Ok(true)
}

fn decode_udf(loader: &FunctionLoader, name: &str, buf: &[u8]) -> Option<Result<Arc<ScalarUDF>>> {
    if buf == SUBQUERY_VALUE {
        return Some(Ok(SubqueryValue::udf()));
    }
    if buf == ROUND_HALF_EVEN {
        return Some(Ok(RoundHalfEven::udf()));
    }
    if buf == NUMERIC_DIVISION {
        return Some(Ok(NumericDivision::udf()));
    }
    if buf == JSON_BUILD_OBJECT {
        return Some(Ok(JsonBuildObject::udf()));
    }
    if buf == FORMAT {
        return Some(Ok(Format::udf()));
    }
    if let Some((_, op)) = CHECKED.iter().find(|(encoding, _)| buf == *encoding) {
        return CheckedArithmetic::udf(*op).map(Ok);
    }
    if let Some(padded) = SIZED_TEXT.iter().position(|encoding| buf == *encoding) {
        return Some(Ok(SizedTextCast::udf(padded == 1)));
    }
    if buf == INTERVAL_SPAN {
        return Some(Ok(IntervalSpan::udf()));
    }
    if let Some(target) = buf.strip_prefix(DATETIME_INPUT) {
        let target = String::from_utf8_lossy(target);
        return Some(
            DateTimeInput::decode_target(&target)
                .ok_or_else(|| exec_datafusion_err!("cannot decode a cast of text to {target}")),
        );
    }
    if let Some((_, template)) = TEMPLATES.iter().find(|(encoding, _)| buf == *encoding) {
        return Some(Ok(TemplateFunction::udf(*template)));
    }
    Some(
        read_reference(loader, name, buf)?.map(|Overloads(overloads, modules)| {
            Arc::new(WasmScalarUdf::new_udf(name, overloads, modules))
        }),
    )
}

fn encode_udaf(node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<bool> {
    let inner: &dyn Any = node.inner().as_ref();
    if inner.is::<SubqueryRows>() {
        buf.extend_from_slice(SUBQUERY_ROWS);
        return Ok(true);
    }
    if inner.is::<PercentileDisc>() {
        buf.extend_from_slice(PERCENTILE_DISC);
        return Ok(true);
    }
    if let Some(folded) = inner.downcast_ref::<FoldedAggregateUdf>() {
        let modules = folded.module_dir();
        let reference = FoldedReference {
            modules: modules.map(|dir| dir.location().to_string()),
            overloads: folded
                .overloads()
                .iter()
                .map(|p| {
                    Ok(FoldedDefs {
                        aggregate: p.aggregate.clone(),
                        sfunc: explicit(&p.sfunc, modules)?,
                        combinefunc: explicit(&p.combinefunc, modules)?,
                        finalfunc: p
                            .finalfunc
                            .as_deref()
                            .map(|f| explicit(f, modules))
                            .transpose()?,
                    })
                })
                .collect::<Result<_>>()?,
        };
        buf.extend_from_slice(FOLDED_MAGIC);
        serde_json::to_writer(&mut *buf, &reference)
            .map_err(|e| exec_datafusion_err!("cannot encode aggregate {}: {e}", node.name()))?;
        return Ok(true);
    }
    let Some(wasm) = inner.downcast_ref::<WasmAggregateUdf>() else {
        return Ok(false);
    };
    write_reference(node.name(), wasm.overloads(), wasm.module_dir(), buf)?;
    Ok(true)
}

fn decode_folded(loader: &FunctionLoader, name: &str, payload: &[u8]) -> Result<Arc<AggregateUDF>> {
    let reference: FoldedReference = serde_json::from_slice(payload)
        .map_err(|e| exec_datafusion_err!("cannot decode aggregate {name}: {e}"))?;
    let modules = loader.module_dir(reference.modules.as_deref())?;
    let load = |def: &FunctionDef| loader.function(def, modules.as_ref());
    let mut overloads = Vec::new();
    let mut shells = Vec::new();
    for o in &reference.overloads {
        shells.push(load(&o.aggregate)?);
        overloads.push(FoldedParts {
            aggregate: o.aggregate.clone(),
            sfunc: load(&o.sfunc)?,
            combinefunc: load(&o.combinefunc)?,
            finalfunc: o.finalfunc.as_ref().map(load).transpose()?,
        });
    }
    Ok(Arc::new(FoldedAggregateUdf::new_udaf(
        name, overloads, shells, modules,
    )))
}

fn decode_udaf(
    loader: &FunctionLoader,
    name: &str,
    buf: &[u8],
) -> Option<Result<Arc<AggregateUDF>>> {
    if buf == SUBQUERY_ROWS {
        return Some(Ok(SubqueryRows::udaf()));
    }
    if buf == PERCENTILE_DISC {
        return Some(Ok(PercentileDisc::udaf()));
    }
    if let Some(payload) = buf.strip_prefix(FOLDED_MAGIC) {
        return Some(decode_folded(loader, name, payload));
    }
    Some(
        read_reference(loader, name, buf)?.map(|Overloads(overloads, modules)| {
            Arc::new(WasmAggregateUdf::new_udaf(name, overloads, modules))
        }),
    )
}

/// One row of constant values as hex-encoded Arrow IPC.
fn encode_values(values: &[ScalarValue]) -> Result<String> {
    let arrays = values
        .iter()
        .map(ScalarValue::to_array)
        .collect::<Result<Vec<_>>>()?;
    let fields: Vec<Field> = arrays
        .iter()
        .enumerate()
        .map(|(i, a)| Field::new(format!("a{i}"), a.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    let mut bytes = Vec::new();
    let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema())?;
    writer.write(&batch)?;
    writer.finish()?;
    drop(writer);
    Ok(hex::encode(bytes))
}

fn decode_values(text: &str) -> Result<Vec<ScalarValue>> {
    let bytes = hex::decode(text).map_err(|e| exec_datafusion_err!("bad table arguments: {e}"))?;
    let mut reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    let batch = reader
        .next()
        .ok_or_else(|| exec_datafusion_err!("table arguments are missing"))??;
    batch
        .columns()
        .iter()
        .map(|c| ScalarValue::try_from_array(c, 0))
        .collect()
}

fn write_table_call(
    function: &WasmFunction,
    (args, types): (&[ScalarValue], &[SqlType]),
    modules: Option<&ModuleDir>,
    projection: Option<&[usize]>,
    limit: Option<usize>,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let call = TableCall {
        modules: modules.map(|dir| dir.location().to_string()),
        function: explicit(function, modules)?,
        types: types.to_vec(),
        args: encode_values(args)?,
        projection: projection.map(<[usize]>::to_vec),
        limit,
    };
    buf.extend_from_slice(TABLE_MAGIC);
    serde_json::to_writer(&mut *buf, &call).map_err(|e| {
        exec_datafusion_err!("cannot encode table function {}: {e}", function.def().name)
    })
}

/// A table function call read back: its function, arguments and module
/// directory, and the call itself (types, projection and limit).
struct Call {
    function: Arc<WasmFunction>,
    args: Vec<ScalarValue>,
    modules: Option<ModuleDir>,
    call: TableCall,
}

impl Call {
    /// The logical scan's provider.
    fn provider(self) -> Result<WasmTableProvider> {
        WasmTableProvider::new(self.function, self.args, self.call.types, self.modules)
    }

    /// The physical scan, with its projection and limit.
    fn exec(self) -> Result<WasmTableExec> {
        WasmTableExec::new(
            self.function,
            self.args,
            self.call.types,
            self.call.projection,
            self.call.limit,
            self.modules,
        )
    }
}

fn read_table_call(loader: &FunctionLoader, buf: &[u8]) -> Option<Result<Call>> {
    let payload = buf.strip_prefix(TABLE_MAGIC)?;
    Some((|| {
        let call: TableCall = serde_json::from_slice(payload)
            .map_err(|e| exec_datafusion_err!("cannot decode a table function call: {e}"))?;
        let modules = loader.module_dir(call.modules.as_deref())?;
        let function = loader.function(&call.function, modules.as_ref())?;
        let args = decode_values(&call.args)?;
        Ok(Call {
            function,
            args,
            modules,
            call,
        })
    })())
}

/// Quiver's codecs around Ballista's, for a process whose Wasm functions
/// come from a [`FunctionLoader`]: what the scheduler, the executors and the
/// frontend's Ballista client all use.
#[derive(Debug, Clone)]
pub struct Codecs {
    pub logical: Arc<dyn LogicalExtensionCodec>,
    pub physical: Arc<dyn PhysicalExtensionCodec>,
}

impl Codecs {
    pub fn new(loader: Arc<FunctionLoader>) -> Self {
        Self {
            logical: Arc::new(QuiverLogicalCodec::new(
                Arc::new(BallistaLogicalExtensionCodec::default()),
                loader.clone(),
            )),
            physical: Arc::new(QuiverPhysicalCodec::new(
                Arc::new(BallistaPhysicalExtensionCodec::default()),
                loader,
            )),
        }
    }

    /// Both, the way Ballista's client and executor take them.
    pub fn ballista(&self) -> BallistaCodec {
        BallistaCodec::new(self.logical.clone(), self.physical.clone())
    }
}

/// Quiver's logical codec: Wasm functions by reference, the rest by `inner`.
#[derive(Debug)]
pub struct QuiverLogicalCodec {
    inner: Arc<dyn LogicalExtensionCodec>,
    loader: Arc<FunctionLoader>,
}

impl QuiverLogicalCodec {
    pub fn new(inner: Arc<dyn LogicalExtensionCodec>, loader: Arc<FunctionLoader>) -> Self {
        Self { inner, loader }
    }
}

impl LogicalExtensionCodec for QuiverLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        if let Some(call) = read_transform(&self.loader, buf) {
            let [input] = inputs else {
                return Err(exec_datafusion_err!(
                    "WasmTransform has one input, got {}",
                    inputs.len()
                ));
            };
            return Ok(Extension {
                node: Arc::new(WasmTransformNode::new(call?, input.clone())?),
            });
        }
        if let Some(apply) = read_apply(&self.loader, buf) {
            let [input] = inputs else {
                return Err(exec_datafusion_err!(
                    "WasmApply has one input, got {}",
                    inputs.len()
                ));
            };
            let (apply, qualifier) = apply?;
            let node =
                WasmApplyNode::new(apply, input.clone(), qualifier.map(TableReference::bare))?;
            return Ok(Extension {
                node: Arc::new(node),
            });
        }
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        if let Some(transform) = node.node.as_any().downcast_ref::<WasmTransformNode>() {
            return write_transform(&transform.call, buf);
        }
        if let Some(apply) = node.node.as_any().downcast_ref::<WasmApplyNode>() {
            return write_apply(&apply.apply, apply.qualifier(), buf);
        }
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        match read_table_call(&self.loader, buf) {
            Some(call) => Ok(Arc::new(call?.provider()?)),
            None => self
                .inner
                .try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if let Some(call) = node.downcast_ref::<WasmTableProvider>() {
            return write_table_call(
                call.function(),
                call.args(),
                call.module_dir(),
                None,
                None,
                buf,
            );
        }
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        decode_udf(&self.loader, name, buf)
            .or_else(|| nested_udf(name).map(Ok))
            .unwrap_or_else(|| self.inner.try_decode_udf(name, buf))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if encode_udf(node, buf)? {
            return Ok(());
        }
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        decode_udaf(&self.loader, name, buf)
            .unwrap_or_else(|| self.inner.try_decode_udaf(name, buf))
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        if encode_udaf(node, buf)? {
            return Ok(());
        }
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        PortableWindowUdf::decode(name, buf)
            .unwrap_or_else(|| self.inner.try_decode_udwf(name, buf))
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        if PortableWindowUdf::encode(node, buf) {
            return Ok(());
        }
        self.inner.try_encode_udwf(node, buf)
    }
}

/// The one input of a decoded `node` that has one.
fn only_input(node: &str, inputs: &[Arc<dyn ExecutionPlan>]) -> Result<Arc<dyn ExecutionPlan>> {
    match inputs {
        [input] => Ok(input.clone()),
        _ => Err(exec_datafusion_err!(
            "{node} has one input, got {}",
            inputs.len()
        )),
    }
}

/// Quiver's physical codec: Wasm functions by reference, the rest by `inner`.
#[derive(Debug)]
pub struct QuiverPhysicalCodec {
    inner: Arc<dyn PhysicalExtensionCodec>,
    loader: Arc<FunctionLoader>,
}

impl QuiverPhysicalCodec {
    pub fn new(inner: Arc<dyn PhysicalExtensionCodec>, loader: Arc<FunctionLoader>) -> Self {
        Self { inner, loader }
    }
}

impl PhysicalExtensionCodec for QuiverPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if buf == METRICS_EXEC {
            let input = only_input("WasmMetricsExec", inputs)?;
            return Ok(Arc::new(WasmMetricsExec::new(input)));
        }
        if buf == SINGLE_PARTITION_EXEC {
            let input = only_input("SinglePartitionExec", inputs)?;
            return Ok(Arc::new(SinglePartitionExec::new(input)));
        }
        if let Some(call) = read_table_call(&self.loader, buf) {
            return Ok(Arc::new(call?.exec()?));
        }
        if let Some(call) = read_transform(&self.loader, buf) {
            let input = only_input("WasmTransformExec", inputs)?;
            return Ok(Arc::new(WasmTransformExec::new(input, call?)?));
        }
        if let Some(apply) = read_apply(&self.loader, buf) {
            let input = only_input("WasmApplyExec", inputs)?;
            return Ok(Arc::new(WasmApplyExec::new(input, apply?.0)?));
        }
        self.inner.try_decode(buf, inputs, ctx, proto_converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if node.is::<WasmMetricsExec>() {
            buf.extend_from_slice(METRICS_EXEC);
            return Ok(());
        }
        if node.is::<SinglePartitionExec>() {
            buf.extend_from_slice(SINGLE_PARTITION_EXEC);
            return Ok(());
        }
        if let Some(scan) = node.downcast_ref::<WasmTableExec>() {
            return write_table_call(
                scan.function(),
                scan.args(),
                scan.module_dir(),
                scan.projection(),
                scan.limit(),
                buf,
            );
        }
        if let Some(transform) = node.downcast_ref::<WasmTransformExec>() {
            return write_transform(transform.call(), buf);
        }
        if let Some(apply) = node.downcast_ref::<WasmApplyExec>() {
            return write_apply(apply.apply(), None, buf);
        }
        self.inner.try_encode(node, buf, proto_converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        decode_udf(&self.loader, name, buf)
            .or_else(|| nested_udf(name).map(Ok))
            .unwrap_or_else(|| self.inner.try_decode_udf(name, buf))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if encode_udf(node, buf)? {
            return Ok(());
        }
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        decode_udaf(&self.loader, name, buf)
            .unwrap_or_else(|| self.inner.try_decode_udaf(name, buf))
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        if encode_udaf(node, buf)? {
            return Ok(());
        }
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        PortableWindowUdf::decode(name, buf)
            .unwrap_or_else(|| self.inner.try_decode_udwf(name, buf))
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        if PortableWindowUdf::encode(node, buf) {
            return Ok(());
        }
        self.inner.try_encode_udwf(node, buf)
    }
}
