//! Wasm transforms in DataFusion: a relation in, a relation out.
//!
//! `FROM sessionize(TABLE clicks PARTITION BY user_id ORDER BY ts, 1800)`
//! is planned by [`WasmRelationPlanner`](crate::relations::WasmRelationPlanner) into a
//! [`WasmTransformNode`] over the plan of `clicks`, its output columns
//! described by the component. The physical plan is a
//! [`WasmTransformExec`] over the input's plan, which asks for its input
//! hash-partitioned by the `PARTITION BY` keys and sorted by them and the
//! `ORDER BY` keys: DataFusion's optimizer adds the repartition and the
//! sort, and Ballista runs the repartition as a shuffle between stages, so
//! each key's rows meet in one task, in order. Each task streams its
//! partition's batches through the guest: one call sequence (`start`,
//! `push`es, `finish`) per key, or per task without `PARTITION BY`.
//!
//! The keys travel as column positions of the input: an expression that
//! is not a column of the relation is computed by a projection below the
//! node, as an extra column the guest never sees.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::{BatchCoalescer, SortOptions, partition};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DFSchemaRef, Result, ScalarValue, internal_err, plan_err};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::{
    EquivalenceProperties, LexRequirement, OrderingRequirements, PhysicalExpr,
    PhysicalSortRequirement,
};
use datafusion::physical_plan::execution_plan::EmissionType;
use datafusion::physical_plan::expressions::Column;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::definition::TableColumn;
use crate::function::{TransformPartition, WasmFunction};
use crate::lateral::{WasmApplyExec, WasmApplyNode};
use crate::module_dir::ModuleDir;
use crate::types::SqlType;

/// One `ORDER BY` key: a column of the input.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Serialize, Deserialize)]
pub struct SortKey {
    pub column: usize,
    pub descending: bool,
    pub nulls_first: bool,
}

/// One call of a transform: everything but its input.
#[derive(Debug, Clone)]
pub struct TransformCall {
    pub function: Arc<WasmFunction>,
    /// The constant arguments and their SQL types.
    pub args: Vec<ScalarValue>,
    pub types: Vec<SqlType>,
    /// The columns the guest receives: the first columns of the input.
    pub input: Vec<TableColumn>,
    /// `PARTITION BY`: columns of the input.
    pub partition_by: Vec<usize>,
    pub order_by: Vec<SortKey>,
    /// The columns it produces (as the component described them).
    pub output: Vec<TableColumn>,
    pub modules: Option<ModuleDir>,
}

impl TransformCall {
    fn schema(&self) -> Result<Schema> {
        let fields = self
            .output
            .iter()
            .map(|c| match c.ty.data_type() {
                Some(t) => Ok(Field::new(&c.name, t, true)),
                None => plan_err!(
                    "transform {}: column {} has no concrete type",
                    self.function.def().name,
                    c.name
                ),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Schema::new(fields))
    }

    /// What tells two calls apart.
    fn key(&self) -> impl PartialOrd + std::hash::Hash + '_ {
        let def = self.function.def();
        (
            def.signature(),
            &def.module_sha256,
            def.version,
            &self.args,
            &self.partition_by,
            &self.order_by,
        )
    }

    fn describe(&self, input: &Schema) -> String {
        let name = |i: usize| {
            input
                .fields()
                .get(i)
                .map_or_else(|| format!("#{i}"), |f| f.name().clone())
        };
        let mut text = format!(
            "function={}, args=[{}]",
            self.function.def().signature(),
            self.args
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !self.partition_by.is_empty() {
            let keys: Vec<String> = self.partition_by.iter().map(|i| name(*i)).collect();
            text.push_str(&format!(", partition_by=[{}]", keys.join(", ")));
        }
        if !self.order_by.is_empty() {
            let keys: Vec<String> = self
                .order_by
                .iter()
                .map(|k| {
                    format!(
                        "{} {}{}",
                        name(k.column),
                        if k.descending { "DESC" } else { "ASC" },
                        if k.nulls_first { " NULLS FIRST" } else { "" }
                    )
                })
                .collect();
            text.push_str(&format!(", order_by=[{}]", keys.join(", ")));
        }
        text
    }
}

/// The logical plan of a transform call over its input.
#[derive(Debug, Clone)]
pub struct WasmTransformNode {
    pub call: TransformCall,
    pub input: LogicalPlan,
    schema: DFSchemaRef,
}

impl WasmTransformNode {
    pub fn new(call: TransformCall, input: LogicalPlan) -> Result<Self> {
        let schema = Arc::new(DFSchema::try_from(call.schema()?)?);
        Ok(Self {
            call,
            input,
            schema,
        })
    }

    /// The plan node.
    pub fn plan(self) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(self),
        })
    }
}

impl PartialEq for WasmTransformNode {
    fn eq(&self, other: &Self) -> bool {
        self.call.key() == other.call.key() && self.input == other.input
    }
}

impl Eq for WasmTransformNode {}

impl std::hash::Hash for WasmTransformNode {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.call.key().hash(state);
        self.input.hash(state);
    }
}

impl PartialOrd for WasmTransformNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match self.call.key().partial_cmp(&other.call.key()) {
            Some(std::cmp::Ordering::Equal) => self.input.partial_cmp(&other.input),
            order => order,
        }
    }
}

impl UserDefinedLogicalNodeCore for WasmTransformNode {
    fn name(&self) -> &str {
        "WasmTransform"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let input = self.input.schema().as_arrow();
        write!(f, "WasmTransform: {}", self.call.describe(input))
    }

    fn with_exprs_and_inputs(
        &self,
        exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        if !exprs.is_empty() || inputs.len() != 1 {
            return internal_err!("WasmTransform has one input and no expressions");
        }
        Ok(Self {
            call: self.call.clone(),
            input: inputs.remove(0),
            schema: self.schema.clone(),
        })
    }

    fn supports_limit_pushdown(&self) -> bool {
        false
    }
}

/// Plans Quiver's logical nodes over an input: [`WasmTransformNode`]s as
/// [`WasmTransformExec`]s, [`WasmApplyNode`]s as [`WasmApplyExec`]s.
#[derive(Debug, Default)]
pub struct WasmNodePlanner;

#[async_trait]
impl ExtensionPlanner for WasmNodePlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session_state: &dyn datafusion::catalog::Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let input = || match physical_inputs {
            [input] => Ok(input.clone()),
            _ => internal_err!("a Wasm node has one input"),
        };
        let node = node.as_any();
        let exec: Arc<dyn ExecutionPlan> =
            if let Some(transform) = node.downcast_ref::<WasmTransformNode>() {
                Arc::new(WasmTransformExec::new(input()?, transform.call.clone())?)
            } else if let Some(apply) = node.downcast_ref::<WasmApplyNode>() {
                Arc::new(WasmApplyExec::new(input()?, apply.apply.clone())?)
            } else {
                return Ok(None);
            };
        Ok(Some(exec))
    }
}

/// DataFusion's physical planner, also planning transforms: the query
/// planner of a session that plans them locally (a scheduler's jobs).
pub struct TransformQueryPlanner(DefaultPhysicalPlanner);

impl fmt::Debug for TransformQueryPlanner {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("TransformQueryPlanner")
    }
}

impl Default for TransformQueryPlanner {
    fn default() -> Self {
        Self(transform_physical_planner())
    }
}

/// DataFusion's physical planner with the planners of transforms and of
/// lateral table function calls.
pub fn transform_physical_planner() -> DefaultPhysicalPlanner {
    DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(WasmNodePlanner)])
}

#[async_trait]
impl QueryPlanner for TransformQueryPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session_state: &dyn datafusion::catalog::Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.0.create_physical_plan(plan, session_state).await
    }
}

/// Runs a transform over its input, one output partition per input
/// partition.
#[derive(Debug)]
pub struct WasmTransformExec {
    input: Arc<dyn ExecutionPlan>,
    call: TransformCall,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl WasmTransformExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, call: TransformCall) -> Result<Self> {
        let schema = Arc::new(call.schema()?);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(
                input.properties().output_partitioning().partition_count(),
            ),
            EmissionType::Both,
            input.properties().boundedness,
        ));
        Ok(Self {
            input,
            call,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    pub fn call(&self) -> &TransformCall {
        &self.call
    }

    fn column(&self, i: usize) -> Arc<dyn PhysicalExpr> {
        let schema = self.input.schema();
        Arc::new(Column::new(schema.field(i).name(), i))
    }
}

impl DisplayAs for WasmTransformExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "WasmTransformExec: {}",
            self.call.describe(&self.input.schema())
        )
    }
}

impl ExecutionPlan for WasmTransformExec {
    fn name(&self) -> &str {
        "WasmTransformExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        let call = &self.call;
        vec![if !call.partition_by.is_empty() {
            Distribution::KeyPartitioned(
                call.partition_by.iter().map(|i| self.column(*i)).collect(),
            )
        } else if !call.order_by.is_empty() {
            // One ordered sequence of every row.
            Distribution::SinglePartition
        } else {
            Distribution::UnspecifiedDistribution
        }]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        let call = &self.call;
        let keys = call
            .partition_by
            .iter()
            .map(|i| PhysicalSortRequirement::new(self.column(*i), None))
            .chain(call.order_by.iter().map(|k| {
                PhysicalSortRequirement::new(
                    self.column(k.column),
                    Some(SortOptions {
                        descending: k.descending,
                        nulls_first: k.nulls_first,
                    }),
                )
            }));
        vec![LexRequirement::new(keys).map(OrderingRequirements::new)]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return internal_err!("WasmTransformExec has one input");
        }
        Ok(Arc::new(Self::new(children.remove(0), self.call.clone())?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context.clone())?;
        let schema = self.properties.eq_properties.schema().clone();
        let converter = if self.call.partition_by.is_empty() {
            None
        } else {
            let input_schema = self.input.schema();
            Some(RowConverter::new(
                self.call
                    .partition_by
                    .iter()
                    .map(|i| SortField::new(input_schema.field(*i).data_type().clone()))
                    .collect(),
            )?)
        };
        let run = Run {
            call: self.call.clone(),
            schema: schema.clone(),
            converter,
            key: None,
            partition: None,
            ready: BatchCoalescer::new(schema.clone(), context.session_config().batch_size()),
            baseline: BaselineMetrics::new(&self.metrics, partition),
        };
        let session: Arc<str> = Arc::from(context.session_id());
        let stream = futures::stream::try_unfold(
            (input, run, false),
            move |(mut input, mut run, mut ended)| {
                let session = session.clone();
                async move {
                    loop {
                        if let Some(batch) = run.ready.next_completed_batch() {
                            return Ok(Some((batch, (input, run, ended))));
                        }
                        if ended {
                            return Ok(None);
                        }
                        match input.next().await {
                            Some(batch) => {
                                let batch = batch?;
                                // One hand-off of the async worker for the
                                // batch's guest calls, not one per call.
                                crate::interrupt::in_session(&session, || {
                                    crate::runtime::outside_async(|| run.consume(&batch))
                                })?;
                            }
                            None => {
                                crate::interrupt::in_session(&session, || run.end_partition())?;
                                run.ready.finish_buffered_batch()?;
                                ended = true;
                            }
                        }
                    }
                }
            },
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One output partition of a transform as it runs.
struct Run {
    call: TransformCall,
    schema: SchemaRef,
    /// The `PARTITION BY` keys as comparable rows (none without keys).
    converter: Option<RowConverter>,
    /// The key of the running partition.
    key: Option<OwnedRow>,
    partition: Option<TransformPartition>,
    /// Output not yet handed on, gathered into batches of the session's
    /// size (a key's rows are often few).
    ready: BatchCoalescer,
    baseline: BaselineMetrics,
}

impl Run {
    fn consume(&mut self, batch: &RecordBatch) -> Result<()> {
        let elapsed = self.baseline.elapsed_compute().clone();
        let _timer = elapsed.timer();
        let Some(converter) = &self.converter else {
            return self.push(batch, 0, batch.num_rows());
        };
        let keys: Vec<ArrayRef> = self
            .call
            .partition_by
            .iter()
            .map(|i| batch.column(*i).clone())
            .collect();
        let rows = converter.convert_columns(&keys)?;
        for range in partition(&keys)?.ranges() {
            let key = rows.row(range.start);
            if self.key.as_ref().map(OwnedRow::row) != Some(key) {
                self.end_partition()?;
                self.key = Some(key.owned());
            }
            self.push(batch, range.start, range.end - range.start)?;
        }
        Ok(())
    }

    /// Gives the running partition (started if need be) `len` rows of
    /// `batch` from `offset`.
    fn push(&mut self, batch: &RecordBatch, offset: usize, len: usize) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = batch.columns()[..self.call.input.len()]
            .iter()
            .map(|c| c.slice(offset, len))
            .collect();
        let partition = match &mut self.partition {
            Some(partition) => partition,
            None => self.partition.insert(self.call.function.start_transform(
                &self.call.input,
                &constants(&self.call.args)?,
                &self.call.types,
                &self.call.output,
            )?),
        };
        let produced = partition.push(&columns, len)?;
        self.emit(produced)
    }

    /// Ends the running partition, if any.
    fn end_partition(&mut self) -> Result<()> {
        let Some(mut partition) = self.partition.take() else {
            return Ok(());
        };
        let produced = partition.finish()?;
        self.emit(produced)
    }

    fn emit(&mut self, (columns, rows): (Vec<ArrayRef>, usize)) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        self.baseline.record_output(rows);
        self.ready.push_batch(batch)?;
        Ok(())
    }
}

/// Constant values as one-row arrays.
pub(crate) fn constants(values: &[ScalarValue]) -> Result<Vec<ArrayRef>> {
    values.iter().map(ScalarValue::to_array).collect()
}
