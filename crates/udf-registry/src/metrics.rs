//! Per-function metrics in `EXPLAIN ANALYZE`: calls, rows and time of every
//! Wasm function, per operator and per task.
//!
//! [`WasmMetricsRule`] (a physical optimizer rule, run by the scheduler
//! when it plans a job) puts a [`WasmMetricsExec`] above each operator whose
//! own expressions call a Wasm function. That node is transparent: while
//! the operator below computes a batch (inside its `poll_next`), the node
//! names itself the current metrics sink of the thread, and every Wasm call
//! records into it (and can be cancelled with its session, see
//! [`crate::interrupt`]). Each task decodes its own copy of the node, so figures
//! are per task and Ballista sums them per stage like any other metric.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, internal_err};
use datafusion::config::ConfigOptions;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateInputMode};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::Stream;

use crate::udf::WasmScalarUdf;

thread_local! {
    /// Where Wasm calls made on this thread right now are counted.
    static SINK: RefCell<Option<Arc<Sink>>> = const { RefCell::new(None) };
}

/// Counts a finished call of `function` over `rows` rows, if an operator
/// is measuring this thread.
pub(crate) fn record(function: &str, rows: usize, elapsed: Duration) {
    SINK.with(|sink| {
        if let Some(sink) = sink.borrow().as_ref() {
            sink.record(function, rows, elapsed);
        }
    });
}

/// One partition's counters of one [`WasmMetricsExec`].
struct Sink {
    metrics: ExecutionPlanMetricsSet,
    partition: usize,
    functions: Mutex<HashMap<String, (Count, Count, Time)>>,
}

impl Sink {
    fn record(&self, function: &str, rows: usize, elapsed: Duration) {
        let mut functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        let (calls, counted, time) = functions.entry(function.to_string()).or_insert_with(|| {
            let metric = |suffix: &str| format!("{function}_{suffix}");
            (
                MetricBuilder::new(&self.metrics).counter(metric("calls"), self.partition),
                MetricBuilder::new(&self.metrics).counter(metric("rows"), self.partition),
                MetricBuilder::new(&self.metrics).subset_time(metric("time"), self.partition),
            )
        });
        calls.add(1);
        counted.add(rows);
        time.add_duration(elapsed);
    }
}

/// The Wasm functions `plan`'s own expressions call, by name.
fn wasm_functions(plan: &dyn ExecutionPlan) -> Vec<String> {
    let mut names = Vec::new();
    // An aggregate that merges partial states names its arguments'
    // expressions but never evaluates them.
    if plan
        .downcast_ref::<AggregateExec>()
        .is_some_and(|a| a.mode().input_mode() == AggregateInputMode::Partial)
    {
        return names;
    }
    let _ = plan.apply_expressions(&mut |root: &Arc<dyn PhysicalExpr>| {
        root.apply(|expr| {
            if let Some(call) = expr.downcast_ref::<ScalarFunctionExpr>()
                && (call.fun().inner().as_ref() as &dyn Any).is::<WasmScalarUdf>()
                && !names.iter().any(|n| n == call.name())
            {
                names.push(call.name().to_string());
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(TreeNodeRecursion::Continue)
    });
    names.sort();
    names
}

/// Measures the Wasm calls of the operator below it; otherwise passes its
/// rows through untouched.
#[derive(Debug)]
pub struct WasmMetricsExec {
    input: Arc<dyn ExecutionPlan>,
    functions: Vec<String>,
    metrics: ExecutionPlanMetricsSet,
}

impl WasmMetricsExec {
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        let functions = wasm_functions(input.as_ref());
        Self::measuring(input, functions)
    }

    fn measuring(input: Arc<dyn ExecutionPlan>, functions: Vec<String>) -> Self {
        Self {
            input,
            functions,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for WasmMetricsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "WasmMetricsExec: functions=[{}]",
            self.functions.join(", ")
        )
    }
}

impl ExecutionPlan for WasmMetricsExec {
    fn name(&self) -> &str {
        "WasmMetricsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
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
            return internal_err!("WasmMetricsExec has one child, got {}", children.len());
        }
        Ok(Arc::new(Self::new(children.swap_remove(0))))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let sink = Arc::new(Sink {
            metrics: self.metrics.clone(),
            partition,
            functions: Mutex::new(HashMap::new()),
        });
        let session = Arc::from(context.session_id());
        let input = self.input.execute(partition, context)?;
        Ok(Box::pin(MeasuredStream {
            input,
            sink,
            session,
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

struct MeasuredStream {
    input: SendableRecordBatchStream,
    sink: Arc<Sink>,
    /// The session the calls serve, so that cancelling it stops them.
    session: Arc<str>,
}

impl Stream for MeasuredStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let sink = Some(self.sink.clone());
        let outer = SINK.with(|current| current.replace(sink));
        let session = self.session.clone();
        let polled = crate::interrupt::in_session(&session, || self.input.as_mut().poll_next(cx));
        SINK.with(|current| *current.borrow_mut() = outer);
        polled
    }
}

impl RecordBatchStream for MeasuredStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}

/// Puts a [`WasmMetricsExec`] above every operator that calls a Wasm function.
#[derive(Debug, Default)]
pub struct WasmMetricsRule;

impl PhysicalOptimizerRule for WasmMetricsRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if node.is::<WasmMetricsExec>() {
                return Ok(Transformed::no(node));
            }
            let functions = wasm_functions(node.as_ref());
            if functions.is_empty() {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(
                Arc::new(WasmMetricsExec::measuring(node, functions)) as Arc<dyn ExecutionPlan>,
            ))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "wasm_metrics"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
