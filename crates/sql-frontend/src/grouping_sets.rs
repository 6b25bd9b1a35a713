//! `GROUP BY GROUPING SETS (())`: one group of every row, as in PostgreSQL.
//!
//! DataFusion plans the empty grouping set as a grouping-set aggregate with
//! no grouping expressions. `datafusion-proto` 55 writes its grouping sets
//! as one flag per expression and set — none at all here — and reads that
//! back as an aggregate with no groups, so a distributed query answered no
//! rows where PostgreSQL answers one. [`EmptyGroupingSet`] plans it as the
//! aggregate without `GROUP BY` it means, with the grouping id (always 0)
//! beside it so the plan's columns stay the same.

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{Aggregate, Expr, GroupingSet, LogicalPlan, Projection, lit};
use datafusion::optimizer::AnalyzerRule;

/// Plans `GROUPING SETS (())` as an aggregate without grouping (see the
/// module docs).
#[derive(Debug, Default)]
pub struct EmptyGroupingSet;

/// Whether `group_expr` is exactly one empty grouping set.
fn only_the_empty_set(group_expr: &[Expr]) -> bool {
    matches!(
        group_expr,
        [Expr::GroupingSet(GroupingSet::GroupingSets(sets))] if matches!(sets.as_slice(), [set] if set.is_empty())
    )
}

impl AnalyzerRule for EmptyGroupingSet {
    fn name(&self) -> &str {
        "quiver_empty_grouping_set"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::Aggregate(aggregate) = &node else {
                return Ok(Transformed::no(node));
            };
            if !only_the_empty_set(&aggregate.group_expr) {
                return Ok(Transformed::no(node));
            }
            let schema = aggregate.schema.clone();
            let ungrouped =
                Aggregate::try_new(aggregate.input.clone(), vec![], aggregate.aggr_expr.clone())?;
            let ungrouped_schema = ungrouped.schema.clone();
            // The grouping id first, then the aggregates, named as before.
            let (_, id_field) = schema.qualified_field(0);
            let mut columns =
                vec![lit(ScalarValue::new_zero(id_field.data_type())?).alias(id_field.name())];
            for i in 0..ungrouped_schema.fields().len() {
                let (qualifier, field) = ungrouped_schema.qualified_field(i);
                let (to_qualifier, to_field) = schema.qualified_field(i + 1);
                let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
                columns.push(column.alias_qualified(to_qualifier.cloned(), to_field.name()));
            }
            let projection =
                Projection::try_new(columns, Arc::new(LogicalPlan::Aggregate(ungrouped)))?;
            Ok(Transformed::yes(LogicalPlan::Projection(projection)))
        })
        .map(|transformed| transformed.data)
    }
}
