//! Projections kept above sort-merge joins with a filter.
//!
//! DataFusion 55's `ProjectionPushdown` moves a projection below a
//! `SortMergeJoinExec` by projecting its two inputs to the columns the
//! projection and the join keys use — and forgets the columns the join's
//! *filter* reads. `fa FULL JOIN fb ON fa.k = fb.k AND NOT (fb.a > 2)`
//! scanned `fb` without `a`, and the filter indexed past the end of its
//! batch: an executor panicked. Quiver's sessions prefer sort-merge joins
//! (as Ballista sets them up: they spill, hash joins do not), so every
//! outer join with a non-key condition met it.
//!
//! [`guard_merge_join_filters`] wraps DataFusion's rule so that such a
//! join is fenced off while it runs: the projection stays above the join,
//! and the inputs below it are still optimized.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, internal_err};
use datafusion::config::ConfigOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::SortMergeJoinExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

/// The optimizer rules `rules`, with DataFusion's projection pushdown made
/// safe for sort-merge joins with a filter (see the module docs).
pub fn guard_merge_join_filters(
    rules: &[Arc<dyn PhysicalOptimizerRule + Send + Sync>],
) -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    rules
        .iter()
        .map(|rule| -> Arc<dyn PhysicalOptimizerRule + Send + Sync> {
            if rule.name() == "ProjectionPushdown" {
                Arc::new(FencedProjectionPushdown {
                    inner: rule.clone(),
                })
            } else {
                rule.clone()
            }
        })
        .collect()
}

/// DataFusion's projection pushdown, run with filtered sort-merge joins
/// fenced off.
#[derive(Debug)]
struct FencedProjectionPushdown {
    inner: Arc<dyn PhysicalOptimizerRule + Send + Sync>,
}

impl PhysicalOptimizerRule for FencedProjectionPushdown {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let fenced = plan
            .transform_up(|node| {
                let filtered = node
                    .downcast_ref::<SortMergeJoinExec>()
                    .is_some_and(|join| join.filter().is_some());
                Ok(if filtered {
                    Transformed::yes(Arc::new(Fence::new(node)) as Arc<dyn ExecutionPlan>)
                } else {
                    Transformed::no(node)
                })
            })?
            .data;
        let optimized = self.inner.optimize(fenced, config)?;
        optimized
            .transform_up(|node| match node.downcast_ref::<Fence>() {
                Some(fence) => Ok(Transformed::yes(fence.input.clone())),
                None => Ok(Transformed::no(node)),
            })
            .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn schema_check(&self) -> bool {
        self.inner.schema_check()
    }
}

/// A node no projection is swapped with; it lives only while
/// [`FencedProjectionPushdown`] runs.
#[derive(Debug)]
struct Fence {
    input: Arc<dyn ExecutionPlan>,
}

impl Fence {
    fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        Self { input }
    }
}

impl DisplayAs for Fence {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Fence")
    }
}

impl ExecutionPlan for Fence {
    fn name(&self) -> &str {
        "Fence"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
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
            return internal_err!("Fence has one child, got {}", children.len());
        }
        Ok(Arc::new(Self::new(children.swap_remove(0))))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}
