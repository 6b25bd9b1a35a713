//! Plan codecs that carry Wasm functions by reference.
//!
//! A query's plan is encoded on the way to the scheduler (logical) and to
//! each task (physical). A Wasm function travels as its definitions (name,
//! signature, module SHA-256, version, and the module directory: a few
//! hundred bytes), never as module bytes; the receiving side rebuilds it
//! with its [`FunctionLoader`], which fetches and compiles a module at most
//! once per process. Everything else is
//! delegated to the wrapped codecs (Ballista's), file formats included.

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::serde::{
    BallistaCodec, BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec,
};
use serde::{Deserialize, Serialize};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{Result, TableReference, exec_datafusion_err};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF, WindowUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use crate::definition::{FunctionDef, Limits};
use crate::loader::FunctionLoader;
use crate::metrics::WasmMetricsExec;
use crate::module_dir::ModuleDir;
use crate::udf::WasmScalarUdf;

/// The whole encoding of a [`WasmMetricsExec`] (its input travels as a child).
const METRICS_EXEC: &[u8] = b"quiver-wasm-metrics/1";

/// Marks a function reference written by these codecs.
const MAGIC: &[u8] = b"quiver-wasm-udf/2\n";

/// What a plan carries for one Wasm function name.
#[derive(Serialize, Deserialize)]
struct Reference {
    /// Where a process that lacks a module reads it.
    modules: Option<PathBuf>,
    /// Every overload, with the limits it runs under made explicit, so
    /// every process enforces the frontend's limits.
    functions: Vec<FunctionDef>,
}

fn encode_udf(node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<bool> {
    let inner: &dyn Any = node.inner().as_ref();
    let Some(wasm) = inner.downcast_ref::<WasmScalarUdf>() else {
        return Ok(false);
    };
    let reference = Reference {
        modules: wasm.module_dir().map(|dir| dir.path().to_path_buf()),
        functions: wasm
            .overloads()
            .iter()
            .map(|f| {
                let limits = f.limits();
                FunctionDef {
                    limits: Limits {
                        max_memory: Some(limits.max_memory),
                        time_limit_ms: Some(limits.time_limit_ms),
                    },
                    ..f.def().clone()
                }
            })
            .collect(),
    };
    buf.extend_from_slice(MAGIC);
    serde_json::to_writer(&mut *buf, &reference)
        .map_err(|e| exec_datafusion_err!("cannot encode Wasm function {}: {e}", node.name()))?;
    Ok(true)
}

fn decode_udf(loader: &FunctionLoader, name: &str, buf: &[u8]) -> Option<Result<Arc<ScalarUDF>>> {
    let payload = buf.strip_prefix(MAGIC)?;
    Some((|| {
        let reference: Reference = serde_json::from_slice(payload)
            .map_err(|e| exec_datafusion_err!("cannot decode Wasm function {name}: {e}"))?;
        let modules = reference.modules.map(ModuleDir::at);
        let overloads = reference
            .functions
            .iter()
            .map(|def| loader.function(def, modules.as_ref()))
            .collect::<crate::Result<Vec<_>>>()?;
        Ok(Arc::new(WasmScalarUdf::new_udf(name, overloads, modules)))
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
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        self.inner
            .try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
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
        decode_udf(&self.loader, name, buf).unwrap_or_else(|| self.inner.try_decode_udf(name, buf))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if encode_udf(node, buf)? {
            return Ok(());
        }
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.inner.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udwf(node, buf)
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
            let [input] = inputs else {
                return Err(exec_datafusion_err!(
                    "WasmMetricsExec has one input, got {}",
                    inputs.len()
                ));
            };
            return Ok(Arc::new(WasmMetricsExec::new(input.clone())));
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
        self.inner.try_encode(node, buf, proto_converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        decode_udf(&self.loader, name, buf).unwrap_or_else(|| self.inner.try_decode_udf(name, buf))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if encode_udf(node, buf)? {
            return Ok(());
        }
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.inner.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udwf(node, buf)
    }
}
