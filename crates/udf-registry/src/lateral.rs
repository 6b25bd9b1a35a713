//! `LATERAL` calls of Wasm table functions: arguments from the rows of the
//! relations before them.
//!
//! ```sql
//! SELECT t.id, s.* FROM t, LATERAL split_rows(t.csv, ',') AS s;
//! SELECT t.id, s.part FROM t LEFT JOIN LATERAL split_rows(t.csv, ',') s ON true;
//! ```
//!
//! DataFusion plans such a call as a join of the left relation with a
//! correlated subquery, which it cannot run. [`WasmRelationPlanner`] plans the
//! call as a [`WasmLateralCall`] (arguments referring to the outer row), and
//! the analyzer rule [`LateralWasmCalls`] turns the join into a
//! [`WasmApplyNode`] over the left relation: for each of its rows, the
//! function is called with that row's values, and its rows are joined to
//! that row (a `LEFT JOIN` keeps a row that produced none, with nulls). The
//! argument values are computed by a projection below the node, as extra
//! columns, so the node and its physical plan, [`WasmApplyExec`], refer to
//! them by position.
//!
//! [`WasmRelationPlanner`]: crate::relations::WasmRelationPlanner

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array, new_null_array,
};
use datafusion::arrow::compute::{concat, take};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{
    Column, DFSchema, DFSchemaRef, Result, TableReference, internal_err, plan_err,
};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::logical_plan::{Join, JoinType, Subquery, SubqueryAlias};
use datafusion::logical_expr::{
    Expr, ExprSchemable, Extension, LogicalPlan, LogicalPlanBuilder, UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::EmissionType;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::StreamExt;

use crate::definition::Kind;
use crate::function::WasmFunction;
use crate::module_dir::ModuleDir;
use crate::types::SqlType;

/// The columns a table function produces, unqualified.
pub(crate) fn table_fields(function: &WasmFunction) -> Result<Vec<Field>> {
    let Kind::Table { columns } = &function.def().kind else {
        return internal_err!("{} is not a table function", function.def().name);
    };
    columns
        .iter()
        .map(|c| match c.ty.data_type() {
            Some(t) => Ok(Field::new(&c.name, t, true)),
            None => internal_err!("column {} has no concrete type", c.name),
        })
        .collect()
}

/// A call of a table function whose arguments refer to the row of an outer
/// relation (`LATERAL f(t.x)`), before [`LateralWasmCalls`] joins it.
#[derive(Debug, Clone)]
pub struct WasmLateralCall {
    pub function: Arc<WasmFunction>,
    /// The types the arguments are converted to.
    pub types: Vec<SqlType>,
    pub args: Vec<Expr>,
    pub modules: Option<ModuleDir>,
    schema: DFSchemaRef,
}

impl WasmLateralCall {
    pub fn new(
        function: Arc<WasmFunction>,
        types: Vec<SqlType>,
        args: Vec<Expr>,
        modules: Option<ModuleDir>,
    ) -> Result<Self> {
        let schema = Arc::new(DFSchema::try_from(Schema::new(table_fields(&function)?))?);
        Ok(Self {
            function,
            types,
            args,
            modules,
            schema,
        })
    }

    fn key(&self) -> (String, &Vec<Expr>) {
        (self.function.def().signature(), &self.args)
    }
}

impl PartialEq for WasmLateralCall {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for WasmLateralCall {}

impl std::hash::Hash for WasmLateralCall {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for WasmLateralCall {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.key().partial_cmp(&other.key())
    }
}

impl UserDefinedLogicalNodeCore for WasmLateralCall {
    fn name(&self) -> &str {
        "WasmLateralCall"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        self.args.clone()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "WasmLateralCall: function={}, args=[{}]",
            self.function.def().signature(),
            self.args
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        if !inputs.is_empty() || exprs.len() != self.args.len() {
            return internal_err!("WasmLateralCall has no inputs and one expression per argument");
        }
        Ok(Self {
            args: exprs,
            ..self.clone()
        })
    }
}

/// For each row of `input`, the rows of a table function called with that
/// row's values: the input's first `width` columns, then the function's.
#[derive(Debug, Clone)]
pub struct WasmApplyNode {
    pub apply: Apply,
    pub input: LogicalPlan,
    schema: DFSchemaRef,
}

/// What a [`WasmApplyNode`] and a [`WasmApplyExec`] do (but their input).
#[derive(Debug, Clone)]
pub struct Apply {
    pub function: Arc<WasmFunction>,
    pub types: Vec<SqlType>,
    /// The input's columns holding the argument values.
    pub args: Vec<usize>,
    /// The input's columns that are output (the first ones).
    pub width: usize,
    /// `LEFT JOIN`: a row the function gives no rows for is kept, with nulls.
    pub outer: bool,
    pub modules: Option<ModuleDir>,
}

impl Apply {
    fn key(&self) -> impl PartialOrd + std::hash::Hash + '_ {
        let def = self.function.def();
        (
            def.signature(),
            &def.module_sha256,
            def.version,
            &self.args,
            self.width,
            self.outer,
        )
    }

    fn describe(&self, input: &Schema) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|i| {
                input
                    .fields()
                    .get(*i)
                    .map_or_else(|| format!("#{i}"), |f| f.name().clone())
            })
            .collect();
        format!(
            "function={}, args=[{}]{}",
            self.function.def().signature(),
            args.join(", "),
            if self.outer { ", left" } else { "" }
        )
    }
}

impl WasmApplyNode {
    /// `qualifier`: the alias of the function's columns.
    pub fn new(
        apply: Apply,
        input: LogicalPlan,
        qualifier: Option<TableReference>,
    ) -> Result<Self> {
        let input_schema = input.schema();
        let mut fields: Vec<(Option<TableReference>, Arc<Field>)> = (0..apply.width)
            .map(|i| {
                let (q, f) = input_schema.qualified_field(i);
                (q.cloned(), f.clone())
            })
            .collect();
        fields.extend(
            table_fields(&apply.function)?
                .into_iter()
                .map(|f| (qualifier.clone(), Arc::new(f))),
        );
        let schema = Arc::new(DFSchema::new_with_metadata(fields, Default::default())?);
        Ok(Self {
            apply,
            input,
            schema,
        })
    }

    /// The alias of the function's columns.
    pub fn qualifier(&self) -> Option<&TableReference> {
        self.schema.qualified_field(self.apply.width).0
    }
}

impl PartialEq for WasmApplyNode {
    fn eq(&self, other: &Self) -> bool {
        self.apply.key() == other.apply.key()
            && self.input == other.input
            && self.schema == other.schema
    }
}

impl Eq for WasmApplyNode {}

impl std::hash::Hash for WasmApplyNode {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.apply.key().hash(state);
        self.input.hash(state);
    }
}

impl PartialOrd for WasmApplyNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match self.apply.key().partial_cmp(&other.apply.key()) {
            Some(std::cmp::Ordering::Equal) => self.input.partial_cmp(&other.input),
            order => order,
        }
    }
}

impl UserDefinedLogicalNodeCore for WasmApplyNode {
    fn name(&self) -> &str {
        "WasmApply"
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
        write!(
            f,
            "WasmApply: {}",
            self.apply.describe(self.input.schema().as_arrow())
        )
    }

    fn with_exprs_and_inputs(
        &self,
        exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        if !exprs.is_empty() || inputs.len() != 1 {
            return internal_err!("WasmApply has one input and no expressions");
        }
        Ok(Self {
            apply: self.apply.clone(),
            input: inputs.remove(0),
            schema: self.schema.clone(),
        })
    }

    fn supports_limit_pushdown(&self) -> bool {
        false
    }
}

/// The lateral call under a join's right side: its alias (if any) and the call.
fn lateral_call(plan: &LogicalPlan) -> Option<(Option<&TableReference>, &WasmLateralCall)> {
    let (alias, plan) = match plan {
        LogicalPlan::SubqueryAlias(SubqueryAlias { input, alias, .. }) => {
            (Some(alias), input.as_ref())
        }
        other => (None, other),
    };
    let plan = match plan {
        LogicalPlan::Subquery(Subquery { subquery, .. }) => subquery.as_ref(),
        other => other,
    };
    let LogicalPlan::Extension(Extension { node }) = plan else {
        return None;
    };
    node.as_any()
        .downcast_ref::<WasmLateralCall>()
        .map(|call| (alias, call))
}

/// Joins of a relation with a [`WasmLateralCall`] as [`WasmApplyNode`]s.
#[derive(Debug, Default)]
pub struct LateralWasmCalls;

impl AnalyzerRule for LateralWasmCalls {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let LogicalPlan::Join(join) = &plan else {
                return Ok(Transformed::no(plan));
            };
            let Some((alias, call)) = lateral_call(&join.right) else {
                return Ok(Transformed::no(plan));
            };
            Ok(Transformed::yes(apply(join, alias, call)?))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "lateral_wasm_calls"
    }
}

/// `join` (of a relation and a lateral call) as a [`WasmApplyNode`].
fn apply(
    join: &Join,
    alias: Option<&TableReference>,
    call: &WasmLateralCall,
) -> Result<LogicalPlan> {
    let name = &call.function.def().name;
    let outer = match join.join_type {
        JoinType::Inner => false,
        JoinType::Left => true,
        other => {
            return plan_err!(
                "{other} JOIN LATERAL {name}(...) is not supported: use JOIN or LEFT JOIN"
            );
        }
    };
    if !join.on.is_empty() {
        return plan_err!("JOIN LATERAL {name}(...) takes ON true, or a condition on its columns");
    }
    let left = join.left.as_ref().clone();
    let width = left.schema().fields().len();
    // The arguments: outer references become the left relation's columns.
    let args = call
        .args
        .iter()
        .zip(&call.types)
        .enumerate()
        .map(|(i, (arg, ty))| {
            let arg = arg
                .clone()
                .transform(|e| match e {
                    Expr::OuterReferenceColumn(_, column) => {
                        Ok(Transformed::yes(Expr::Column(column)))
                    }
                    other => Ok(Transformed::no(other)),
                })?
                .data;
            let Some(target) = ty.data_type() else {
                return plan_err!("{name}: anyelement needs a concrete type");
            };
            let arg = if arg.get_type(left.schema())? == target {
                arg
            } else {
                arg.cast_to(&target, left.schema())?
            };
            Ok(arg.alias(format!("#arg{i}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let input = LogicalPlanBuilder::from(left)
        .project(
            (0..width)
                .map(|i| Expr::Column(Column::from(join.left.schema().qualified_field(i))))
                .chain(args)
                .collect::<Vec<_>>(),
        )?
        .build()?;
    let node = WasmApplyNode::new(
        Apply {
            function: call.function.clone(),
            types: call.types.clone(),
            args: (width..width + call.args.len()).collect(),
            width,
            outer,
            modules: call.modules.clone(),
        },
        input,
        alias.cloned(),
    )?;
    let plan = LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    });
    match &join.filter {
        None => Ok(plan),
        Some(Expr::Literal(v, _)) if v == &datafusion::common::ScalarValue::Boolean(Some(true)) => {
            Ok(plan)
        }
        Some(_) if outer => {
            plan_err!("LEFT JOIN LATERAL {name}(...) takes ON true; filter its rows in WHERE")
        }
        Some(filter) => LogicalPlanBuilder::from(plan)
            .filter(filter.clone())?
            .build(),
    }
}

/// Calls a table function for each input row, one output partition per
/// input partition.
#[derive(Debug)]
pub struct WasmApplyExec {
    input: Arc<dyn ExecutionPlan>,
    apply: Apply,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl WasmApplyExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, apply: Apply) -> Result<Self> {
        let input_schema = input.schema();
        let fields: Vec<Field> = input_schema.fields()[..apply.width]
            .iter()
            .map(|f| f.as_ref().clone())
            .chain(table_fields(&apply.function)?)
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(
                input.properties().output_partitioning().partition_count(),
            ),
            EmissionType::Incremental,
            input.properties().boundedness,
        ));
        Ok(Self {
            input,
            apply,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    pub fn apply(&self) -> &Apply {
        &self.apply
    }
}

impl DisplayAs for WasmApplyExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "WasmApplyExec: {}",
            self.apply.describe(&self.input.schema())
        )
    }
}

impl ExecutionPlan for WasmApplyExec {
    fn name(&self) -> &str {
        "WasmApplyExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
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
            return internal_err!("WasmApplyExec has one input");
        }
        Ok(Arc::new(Self::new(children.remove(0), self.apply.clone())?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context.clone())?;
        let schema = self.properties.eq_properties.schema().clone();
        let apply = self.apply.clone();
        let batch_size = context.session_config().batch_size();
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let session: Arc<str> = Arc::from(context.session_id());
        let out_schema = schema.clone();
        let stream = input.filter_map(move |batch| {
            let result = batch.and_then(|batch| {
                let _timer = baseline.elapsed_compute().timer();
                // One hand-off of the async worker for the batch's calls.
                let out = crate::interrupt::in_session(&session, || {
                    crate::runtime::outside_async(|| {
                        apply_batch(&apply, &batch, &out_schema, batch_size)
                    })
                })?;
                baseline.record_output(out.as_ref().map_or(0, RecordBatch::num_rows));
                Ok(out)
            });
            futures::future::ready(result.transpose())
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// The output for one input batch (none when it is empty).
fn apply_batch(
    apply: &Apply,
    batch: &RecordBatch,
    schema: &SchemaRef,
    batch_size: usize,
) -> Result<Option<RecordBatch>> {
    let function_fields = table_fields(&apply.function)?;
    let mut rows_of: Vec<u32> = Vec::new();
    let mut chunks: Vec<Vec<ArrayRef>> = vec![Vec::new(); function_fields.len()];
    for row in 0..batch.num_rows() {
        let args: Vec<ArrayRef> = apply
            .args
            .iter()
            .map(|i| batch.column(*i).slice(row, 1))
            .collect();
        let mut rows = apply.function.start_table(&args, &apply.types)?;
        let mut produced = 0;
        while let Some((columns, n)) = rows.next(batch_size)? {
            rows_of.extend(std::iter::repeat_n(row as u32, n));
            for (chunk, column) in chunks.iter_mut().zip(columns) {
                chunk.push(column);
            }
            produced += n;
        }
        if produced == 0 && apply.outer {
            rows_of.push(row as u32);
            for (chunk, field) in chunks.iter_mut().zip(&function_fields) {
                chunk.push(new_null_array(field.data_type(), 1));
            }
        }
    }
    if rows_of.is_empty() {
        return Ok(None);
    }
    let indices = UInt32Array::from(rows_of);
    let mut columns: Vec<ArrayRef> = batch.columns()[..apply.width]
        .iter()
        .map(|c| take(c, &indices, None))
        .collect::<std::result::Result<_, _>>()?;
    for chunk in &chunks {
        let parts: Vec<&dyn datafusion::arrow::array::Array> =
            chunk.iter().map(|a| a.as_ref()).collect();
        columns.push(concat(&parts)?);
    }
    let rows = indices.len();
    Ok(Some(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?))
}
