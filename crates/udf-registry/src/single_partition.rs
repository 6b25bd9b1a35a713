//! A plan node that asks for its input in one partition and keeps it so.
//!
//! DataFusion expresses "this operator needs all of its input in one
//! partition" as a required distribution, and its optimizer satisfies it by
//! inserting a `CoalescePartitionsExec`, which Ballista turns into a stage
//! boundary. A `CoalescePartitionsExec` put into a plan by hand does not
//! last: Ballista re-runs DataFusion's distribution rules on each stage, and
//! those remove any coalescing that no operator requires. Put above an
//! input, [`SinglePartitionExec`] makes the requirement explicit, so the
//! input is gathered into one partition wherever the plan runs. It
//! travels in plans through Quiver's codecs.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    Partitioning, PlanProperties,
};

/// Passes the rows of its input through, requiring that input to be a
/// single partition (see the module docs).
#[derive(Debug)]
pub struct SinglePartitionExec {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl SinglePartitionExec {
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        let properties = PlanProperties::new(
            input.equivalence_properties().clone(),
            Partitioning::UnknownPartitioning(1),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        Self {
            input,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for SinglePartitionExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SinglePartitionExec")
    }
}

impl ExecutionPlan for SinglePartitionExec {
    fn name(&self) -> &str {
        "SinglePartitionExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
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
            return internal_err!("SinglePartitionExec has one child, got {}", children.len());
        }
        Ok(Arc::new(Self::new(children.swap_remove(0))))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let partitions = self.input.output_partitioning().partition_count();
        if partition != 0 || partitions != 1 {
            return internal_err!(
                "SinglePartitionExec runs partition 0 of one input partition, \
                 asked for {partition} of {partitions}"
            );
        }
        self.input.execute(0, context)
    }
}
