//! Where a result column's values come from: a column followed back
//! through the plan to the fields that hold its values.
//!
//! Some of what PostgreSQL's type of a column says is, in Quiver, field
//! metadata (an OID column's `pg.oid_alias`, a `character(n)` column's
//! `quiver.pg_type`), and DataFusion drops field metadata wherever a value
//! passes through a function: `max(c)`, `CASE WHEN ... THEN c END`,
//! `coalesce(oid, 0)`, `array_agg(atttypid)`. Their values are still the
//! marked column's, and so is their PostgreSQL type.

use datafusion::arrow::datatypes::Field;
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan};
use datafusion::scalar::ScalarValue;

/// What a column's values are, read from a field's metadata, and how the
/// marks of values with several sources (`CASE` branches, `coalesce`'s
/// arguments, `UNION` inputs) combine.
pub(crate) trait Mark {
    type Value: PartialEq;

    /// The mark of the values of `field`, if it has one.
    fn of(&self, field: &Field) -> Option<Self::Value>;

    /// Whether one marked source marks the whole value; otherwise every
    /// source that is not `NULL` must have the same mark.
    fn any_source(&self) -> bool;
}

/// The mark of the values of the `index`th output column of `plan`.
pub(crate) fn traced<M: Mark>(mark: &M, plan: &LogicalPlan, index: usize) -> Option<M::Value> {
    let field = plan.schema().fields().get(index)?;
    if let Some(value) = mark.of(field) {
        return Some(value);
    }
    match plan {
        LogicalPlan::Projection(p) => computed(mark, p.expr.get(index)?, &p.input),
        LogicalPlan::Aggregate(a) => {
            // Grouping sets add columns of their own; leave them unmarked.
            if a.group_expr
                .iter()
                .any(|e| matches!(e, Expr::GroupingSet(_)))
            {
                return None;
            }
            let expr = match index.checked_sub(a.group_expr.len()) {
                None => a.group_expr.get(index),
                Some(i) => a.aggr_expr.get(i),
            };
            computed(mark, expr?, &a.input)
        }
        LogicalPlan::Window(w) => match index.checked_sub(w.input.schema().fields().len()) {
            None => traced(mark, &w.input, index),
            Some(i) => computed(mark, w.window_expr.get(i)?, &w.input),
        },
        LogicalPlan::Join(j) => {
            let left = j.left.schema().fields().len();
            match j.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
                    traced(mark, &j.left, index)
                }
                JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => {
                    traced(mark, &j.right, index)
                }
                _ if index < left => traced(mark, &j.left, index),
                _ => traced(mark, &j.right, index - left),
            }
        }
        LogicalPlan::RecursiveQuery(r) => traced(mark, &r.static_term, index),
        LogicalPlan::Union(u) => combined(
            mark,
            u.inputs
                .iter()
                .map(|input| Some(traced(mark, input, index))),
        ),
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Distinct(_)
        | LogicalPlan::Repartition(_) => traced(mark, plan.inputs().first()?, index),
        _ => None,
    }
}

/// The mark of the values of `expr`, evaluated over `input`.
fn computed<M: Mark>(mark: &M, expr: &Expr, input: &LogicalPlan) -> Option<M::Value> {
    match expr {
        Expr::Column(column) => traced(mark, input, input.schema().index_of_column(column).ok()?),
        Expr::Alias(alias) => computed(mark, &alias.expr, input),
        Expr::ScalarSubquery(subquery) => traced(mark, &subquery.subquery, 0),
        Expr::Case(case) => combined(
            mark,
            case.when_then_expr
                .iter()
                .map(|(_, then)| then.as_ref())
                .chain(case.else_expr.as_deref())
                .map(|e| sourced(mark, e, input)),
        ),
        // The aggregates whose result is (an array of) their argument's values.
        Expr::AggregateFunction(f)
            if matches!(
                f.func.name(),
                "array_agg" | "min" | "max" | "first_value" | "last_value"
            ) =>
        {
            computed(mark, f.params.args.first()?, input)
        }
        Expr::ScalarFunction(f) if matches!(f.name(), "coalesce" | "nullif") => {
            let args = match f.name() {
                // `nullif(a, b)` is `a` or NULL.
                "nullif" => &f.args[..1.min(f.args.len())],
                _ => &f.args[..],
            };
            combined(mark, args.iter().map(|e| sourced(mark, e, input)))
        }
        _ => None,
    }
}

/// One source of a value with several: `None` for a `NULL`, which adds no
/// values; otherwise its mark.
fn sourced<M: Mark>(mark: &M, expr: &Expr, input: &LogicalPlan) -> Option<Option<M::Value>> {
    match expr {
        Expr::Literal(value, _) if value.is_null() => None,
        Expr::Cast(cast) if matches!(cast.expr.as_ref(), Expr::Literal(ScalarValue::Null, _)) => {
            None
        }
        expr => Some(computed(mark, expr, input)),
    }
}

/// The marks of a value's sources (`None` for a `NULL` source) combined as
/// [`Mark::any_source`] says.
fn combined<M: Mark>(
    mark: &M,
    sources: impl Iterator<Item = Option<Option<M::Value>>>,
) -> Option<M::Value> {
    let mut marks = sources.flatten();
    if mark.any_source() {
        return marks.flatten().next();
    }
    let first = marks.next()??;
    for other in marks {
        if other? != first {
            return None;
        }
    }
    Some(first)
}
