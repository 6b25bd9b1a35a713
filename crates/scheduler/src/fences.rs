//! DataFusion optimizer rules run with the nodes they mishandle fenced off.
//!
//! Two of DataFusion 55's physical rules give wrong plans for one kind of
//! node each; [`guard_upstream_rules`] wraps them so that those nodes are
//! hidden behind a [`Fence`] while the rule runs, and uncovered after:
//!
//! - `ProjectionPushdown` moves a projection below a `SortMergeJoinExec`
//!   by projecting its two inputs to the columns the projection and the
//!   join keys use — and forgets the columns the join's *filter* reads.
//!   `fa FULL JOIN fb ON fa.k = fb.k AND NOT (fb.a > 2)` scanned `fb`
//!   without `a`, and the filter indexed past the end of its batch: an
//!   executor panicked. Quiver's sessions prefer sort-merge joins (as
//!   Ballista sets them up: they spill, hash joins do not), so every outer
//!   join with a non-key condition met it. Fenced, the projection stays
//!   above the join and the inputs below it are still optimized.
//! - `EnsureRequirements` (sort enforcement) pushes a sort requirement through a
//!   `GlobalLimitExec` that skips rows but has no fetch (`OFFSET` without
//!   `LIMIT`): it stops only at operators with a `fetch()`. In
//!   `SELECT x FROM (SELECT a AS x FROM t ORDER BY 1 DESC OFFSET 3) s
//!   ORDER BY 1` the outer sort replaced the inner one, and the offset
//!   skipped the wrong rows (`docs/upstream.md` #14). The fence does not
//!   keep its input's order, so the outer sort stays above the offset; and
//!   it requires the order the offset reads its rows in, so the rule keeps
//!   the sort below, which nothing else required (an offset states no
//!   requirement of its own). Projections between the offset and that
//!   sort move above the offset first: one that drops a sort key hid the
//!   order, and `SELECT b FROM (SELECT DISTINCT a, b ... ORDER BY a, b
//!   OFFSET 4) x ORDER BY b LIMIT 3` skipped four unsorted rows.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, internal_err};
use datafusion::config::ConfigOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{OrderingRequirements, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::SortMergeJoinExec;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
    ReplaceChildrenOptions,
};

type Rule = Arc<dyn PhysicalOptimizerRule + Send + Sync>;

/// The optimizer rules `rules`, with DataFusion's projection pushdown and
/// sort enforcement made safe for the nodes they mishandle (see the module
/// docs).
pub fn guard_upstream_rules(rules: &[Rule]) -> Vec<Rule> {
    rules
        .iter()
        .map(|rule| -> Rule {
            let fenced = match rule.name() {
                "ProjectionPushdown" => Some(FENCE_FILTERED_MERGE_JOINS),
                "EnsureRequirements" => Some(FENCE_BARE_OFFSETS),
                _ => None,
            };
            match fenced {
                Some(kind) => Arc::new(FencedRule {
                    inner: rule.clone(),
                    kind,
                }),
                None => rule.clone(),
            }
        })
        .collect()
}

/// Which nodes a rule must not see through, whether the fence keeps its
/// input's order (a fence that does not stops sort pushdown), and whether
/// it requires that order (which keeps the sorts that give it).
#[derive(Debug, Clone, Copy)]
struct FenceKind {
    fences: fn(&dyn ExecutionPlan) -> bool,
    keeps_order: bool,
    requires_order: bool,
}

const FENCE_FILTERED_MERGE_JOINS: FenceKind = FenceKind {
    fences: |node| {
        node.downcast_ref::<SortMergeJoinExec>()
            .is_some_and(|join| join.filter().is_some())
    },
    keeps_order: true,
    requires_order: false,
};

const FENCE_BARE_OFFSETS: FenceKind = FenceKind {
    fences: |node| {
        node.downcast_ref::<GlobalLimitExec>()
            .is_some_and(is_bare_offset)
    },
    keeps_order: false,
    requires_order: true,
};

/// `OFFSET` without `LIMIT`.
fn is_bare_offset(limit: &GlobalLimitExec) -> bool {
    limit.skip() > 0 && limit.fetch().is_none()
}

/// `plan` with each bare offset moved below the projections it reads
/// through, next to the operator that orders its rows (see the module
/// docs): a projection computes each row alone, so it may as well run on
/// the rows the offset keeps.
fn offsets_below_projections(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(limit) = node
            .downcast_ref::<GlobalLimitExec>()
            .filter(|l| is_bare_offset(l))
        else {
            return Ok(Transformed::no(node));
        };
        let mut projections = Vec::new();
        let mut input = limit.input().clone();
        while input.downcast_ref::<ProjectionExec>().is_some() {
            let below = input.children()[0].clone();
            projections.push(input);
            input = below;
        }
        if projections.is_empty() {
            return Ok(Transformed::no(node));
        }
        let mut plan: Arc<dyn ExecutionPlan> =
            Arc::new(GlobalLimitExec::new(input, limit.skip(), None));
        for projection in projections.into_iter().rev() {
            let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
            plan = projection.replace_children(vec![plan], options)?;
        }
        Ok(Transformed::yes(plan))
    })
    .map(|transformed| transformed.data)
}

/// A DataFusion rule, run with some nodes fenced off.
#[derive(Debug)]
struct FencedRule {
    inner: Rule,
    kind: FenceKind,
}

impl PhysicalOptimizerRule for FencedRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let kind = self.kind;
        let plan = if kind.requires_order {
            offsets_below_projections(plan)?
        } else {
            plan
        };
        let fenced = plan
            .transform_up(|node| {
                Ok(if (kind.fences)(node.as_ref()) {
                    Transformed::yes(Arc::new(Fence::new(node, kind)) as Arc<dyn ExecutionPlan>)
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

/// A node a rule does not see through; it lives only while a
/// [`FencedRule`] runs.
#[derive(Debug)]
struct Fence {
    input: Arc<dyn ExecutionPlan>,
    kind: FenceKind,
    /// The order the fence requires of its input: the input's own, if
    /// the kind requires it.
    required: Option<OrderingRequirements>,
}

impl Fence {
    fn new(input: Arc<dyn ExecutionPlan>, kind: FenceKind) -> Self {
        let required = if kind.requires_order {
            input
                .properties()
                .output_ordering()
                .cloned()
                .map(OrderingRequirements::from)
        } else {
            None
        };
        Self {
            input,
            kind,
            required,
        }
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
        vec![self.kind.keeps_order]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        vec![self.required.clone()]
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
            return internal_err!("Fence has one child, got {}", children.len());
        }
        Ok(Arc::new(Self {
            input: children.swap_remove(0),
            kind: self.kind,
            required: self.required.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}
