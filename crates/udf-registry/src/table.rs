//! Wasm table functions in DataFusion: [`WasmTableFunction`] (the name in
//! `FROM f(...)`), [`WasmTableProvider`] (one call, with its constant
//! arguments) and [`WasmTableExec`] (the scan that streams its rows).
//!
//! The scan has one partition: on a cluster one task runs it, so every row
//! is produced exactly once. Rows are asked for a batch at a time, only
//! as fast as the query consumes them, and the guest stops when the query
//! needs no more (a `LIMIT` is passed down, and dropping the stream drops
//! the guest's resource).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, Result, ScalarValue, internal_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{ColumnarValue, Expr};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};

use crate::definition::Kind;
use crate::function::{TableRows, WasmFunction};
use crate::module_dir::ModuleDir;
use crate::types::SqlType;
use crate::udf::resolve;

/// Every overload of one Wasm table function name.
#[derive(Debug)]
pub struct WasmTableFunction {
    name: String,
    overloads: Vec<Arc<WasmFunction>>,
    modules: Option<ModuleDir>,
}

impl WasmTableFunction {
    pub fn new(name: &str, overloads: Vec<Arc<WasmFunction>>, modules: Option<ModuleDir>) -> Self {
        Self {
            name: name.to_string(),
            overloads,
            modules,
        }
    }
}

/// The value of a constant argument expression (`-1`, `'a' || 'b'`,
/// `1 + 2`); anything that needs a row is refused.
fn constant(session: &dyn Session, name: &str, expr: &Expr) -> Result<ScalarValue> {
    if let Expr::Literal(value, _) = expr {
        return Ok(value.clone());
    }
    let physical = session
        .create_physical_expr(expr.clone(), &DFSchema::empty())
        .or_else(|e| {
            plan_err!("arguments of table function {name} must be constants, not {expr}: {e}")
        })?;
    evaluate_constant(physical.as_ref())
}

/// The value of an expression of no columns.
pub(crate) fn evaluate_constant(physical: &dyn PhysicalExpr) -> Result<ScalarValue> {
    let one_row = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    match physical.evaluate(&one_row)? {
        ColumnarValue::Scalar(value) => Ok(value),
        ColumnarValue::Array(array) => ScalarValue::try_from_array(&array, 0),
    }
}

impl TableFunctionImpl for WasmTableFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let values = args
            .exprs()
            .iter()
            .map(|e| constant(args.session(), &self.name, e))
            .collect::<Result<Vec<_>>>()?;
        let types: Vec<_> = values.iter().map(ScalarValue::data_type).collect();
        let (function, sql_types) = resolve(&self.name, &self.overloads, &types)?;
        let values = values
            .iter()
            .zip(&sql_types)
            .map(|(v, t)| match t.data_type() {
                Some(t) => v.cast_to(&t),
                None => plan_err!("{}: anyelement needs a concrete type", self.name),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(WasmTableProvider::new(
            function.clone(),
            values,
            sql_types,
            self.modules.clone(),
        )?))
    }
}

/// The schema of a table function's rows.
fn table_schema(function: &WasmFunction) -> Result<SchemaRef> {
    let Kind::Table { columns } = &function.def().kind else {
        return internal_err!("{} is not a table function", function.def().name);
    };
    let fields = columns
        .iter()
        .map(|c| match c.ty.data_type() {
            Some(t) => Ok(Field::new(&c.name, t, true)),
            None => internal_err!("column {} has no concrete type", c.name),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// One call of a table function: `FROM f(1, 'x')`.
#[derive(Debug)]
pub struct WasmTableProvider {
    function: Arc<WasmFunction>,
    args: Vec<ScalarValue>,
    types: Vec<SqlType>,
    modules: Option<ModuleDir>,
    schema: SchemaRef,
}

impl WasmTableProvider {
    pub fn new(
        function: Arc<WasmFunction>,
        args: Vec<ScalarValue>,
        types: Vec<SqlType>,
        modules: Option<ModuleDir>,
    ) -> Result<Self> {
        let schema = table_schema(&function)?;
        Ok(Self {
            function,
            args,
            types,
            modules,
            schema,
        })
    }

    pub fn function(&self) -> &Arc<WasmFunction> {
        &self.function
    }

    /// The argument values and their SQL types.
    pub fn args(&self) -> (&[ScalarValue], &[SqlType]) {
        (&self.args, &self.types)
    }

    pub fn module_dir(&self) -> Option<&ModuleDir> {
        self.modules.as_ref()
    }
}

#[async_trait]
impl TableProvider for WasmTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(WasmTableExec::new(
            self.function.clone(),
            self.args.clone(),
            self.types.clone(),
            projection.cloned(),
            limit,
            self.modules.clone(),
        )?))
    }
}

/// Streams the rows of one table function call (one partition).
#[derive(Debug)]
pub struct WasmTableExec {
    function: Arc<WasmFunction>,
    args: Vec<ScalarValue>,
    types: Vec<SqlType>,
    projection: Option<Vec<usize>>,
    limit: Option<usize>,
    modules: Option<ModuleDir>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl WasmTableExec {
    pub fn new(
        function: Arc<WasmFunction>,
        args: Vec<ScalarValue>,
        types: Vec<SqlType>,
        projection: Option<Vec<usize>>,
        limit: Option<usize>,
        modules: Option<ModuleDir>,
    ) -> Result<Self> {
        let schema = table_schema(&function)?;
        let schema = match &projection {
            Some(p) => Arc::new(schema.project(p)?),
            None => schema,
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            function,
            args,
            types,
            projection,
            limit,
            modules,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    pub fn function(&self) -> &Arc<WasmFunction> {
        &self.function
    }

    /// The argument values and their SQL types.
    pub fn args(&self) -> (&[ScalarValue], &[SqlType]) {
        (&self.args, &self.types)
    }

    pub fn projection(&self) -> Option<&[usize]> {
        self.projection.as_deref()
    }

    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    pub fn module_dir(&self) -> Option<&ModuleDir> {
        self.modules.as_ref()
    }
}

impl DisplayAs for WasmTableExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "WasmTableExec: function={}, args=[{}]",
            self.function.def().signature(),
            self.args
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        if let Some(limit) = self.limit {
            write!(f, ", limit={limit}")?;
        }
        Ok(())
    }
}

/// Where a scan is: not started, running, or done.
struct Scan {
    function: Arc<WasmFunction>,
    args: Vec<ArrayRef>,
    types: Vec<SqlType>,
    rows: Option<TableRows>,
    /// Rows still wanted (`usize::MAX` without a limit).
    wanted: usize,
    batch_size: usize,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    full_schema: SchemaRef,
    baseline: BaselineMetrics,
}

impl Scan {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.wanted == 0 {
            self.rows = None;
            return Ok(None);
        }
        let _timer = self.baseline.elapsed_compute().timer();
        let rows = match &mut self.rows {
            Some(rows) => rows,
            None => self
                .rows
                .insert(self.function.start_table(&self.args, &self.types)?),
        };
        let Some((columns, count)) = rows.next(self.batch_size.min(self.wanted))? else {
            self.rows = None;
            return Ok(None);
        };
        self.wanted -= count;
        let batch = RecordBatch::try_new_with_options(
            self.full_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(count)),
        )?;
        let batch = match &self.projection {
            Some(p) => batch.project(p)?,
            None => batch,
        };
        debug_assert_eq!(batch.schema(), self.schema);
        self.baseline.record_output(count);
        Ok(Some(batch))
    }
}

impl ExecutionPlan for WasmTableExec {
    fn name(&self) -> &str {
        "WasmTableExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return internal_err!("WasmTableExec has no children");
        }
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("WasmTableExec has one partition, not {}", partition + 1);
        }
        let args = self
            .args
            .iter()
            .map(|v| v.to_array())
            .collect::<Result<Vec<_>>>()?;
        let schema = self.properties.eq_properties.schema().clone();
        let scan = Scan {
            function: self.function.clone(),
            args,
            types: self.types.clone(),
            rows: None,
            wanted: self.limit.unwrap_or(usize::MAX),
            batch_size: context.session_config().batch_size(),
            projection: self.projection.clone(),
            schema: schema.clone(),
            full_schema: table_schema(&self.function)?,
            baseline: BaselineMetrics::new(&self.metrics, partition),
        };
        let session: Arc<str> = Arc::from(context.session_id());
        let stream = futures::stream::try_unfold(scan, move |mut scan| {
            let batch = crate::interrupt::in_session(&session, || scan.next_batch());
            async move { Ok(batch?.map(|batch| (batch, scan))) }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
