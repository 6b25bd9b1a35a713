//! Joins with `USING`, answered as PostgreSQL answers them.
//!
//! In PostgreSQL the column a `USING` join merges is the side's that keeps
//! all its rows: `l.c` after an inner or `LEFT` join, `r.c` after a
//! `RIGHT` join, `COALESCE(l.c, r.c)` after a `FULL` join. A row only the
//! right side has shows its key. DataFusion resolves the merged column to
//! the left side's, so such a row showed NULL (and a filter on the key
//! could not find it). It also lost the merged column inside `OR EXISTS
//! (...)` ("ambiguous reference"), and put it where the left table has it
//! in `SELECT *`, where PostgreSQL puts the merged columns first.
//!
//! [`merge_using_joins`] rewrites such a join before DataFusion plans it:
//! `l FULL JOIN r USING (c)` becomes `l FULL JOIN r ON l.c = r.c`, and in
//! the select that reads it each unqualified `c` becomes the merged column
//! (`COALESCE(l.c, r.c)`, `r.c` or `l.c`: after a right join, `GROUP BY
//! ROLLUP (c, r.c)` groups by one column twice, as in PostgreSQL) and `*`
//! becomes the merged columns followed by `l.* EXCLUDE (c), r.* EXCLUDE
//! (c)`. `l.c` and `r.c` keep meaning each side's own column.
//!
//! The rewrite needs to know what an unqualified `c` means, so it leaves
//! alone the forms where that takes the catalog: a side that is itself a
//! join or has no name, another `USING` or `NATURAL` join in the same
//! `FROM` item, or a subquery of the select that names `c` unqualified.
//! Inner and left joins of those forms are DataFusion's to plan; `FULL`
//! and `RIGHT` ones, and `NATURAL FULL JOIN`, fail with 0A000
//! ([`refuse_outer_using`]): an answer that differs silently is worse than
//! none.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::common::JoinType;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{JoinConstraint as PlanConstraint, LogicalPlan};
use datafusion::sql::sqlparser::ast::{
    Distinct, ExcludeSelectItem, Expr, GroupByExpr, Ident, JoinConstraint, JoinOperator,
    ObjectName, OrderByKind, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
    Statement, TableFactor, TableWithJoins, Visit, VisitMut, Visitor, VisitorMut,
    WildcardAdditionalOptions,
};

use crate::error::{Error, Result};
use crate::names::{folded, unique_alias};
use crate::rewrite::parse_expr;

/// Rewrites every join with `USING` of `statement` that it can (see the
/// module docs) into an `ON` join with merged columns.
pub(crate) fn merge_using_joins(statement: &mut Statement) {
    let _ = statement.visit(&mut UsingJoins);
}

struct UsingJoins;

impl VisitorMut for UsingJoins {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        match query.body.as_mut() {
            SetExpr::Select(select) => {
                if let Some((merged, outputs)) = merge_select(select) {
                    // ORDER BY reads the select's output names first: a
                    // bare name that is one stays; others are input columns
                    // (a merged column selected bare is its COALESCE too).
                    if let Some(OrderByKind::Expressions(order)) =
                        query.order_by.as_mut().map(|o| &mut o.kind)
                    {
                        for item in order {
                            let is_output = matches!(&item.expr, Expr::Identifier(ident)
                                if outputs.contains(&folded(ident)));
                            if !is_output {
                                replace_columns(&mut item.expr, &merged);
                            }
                        }
                    }
                }
            }
            SetExpr::SetOperation { .. } => {
                let mut branches = vec![query.body.as_mut()];
                while let Some(branch) = branches.pop() {
                    match branch {
                        SetExpr::Select(select) => {
                            merge_select(select);
                        }
                        SetExpr::SetOperation { left, right, .. } => {
                            branches.push(left.as_mut());
                            branches.push(right.as_mut());
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// The merged columns of one select, by folded name (`COALESCE(l.c,
/// r.c)`, `l.c` or `r.c`).
type Merged = HashMap<String, Expr>;

/// A join with `USING`: its columns, and the qualifiers of its two sides.
struct UsingJoin {
    columns: Vec<Ident>,
    left: ObjectName,
    right: ObjectName,
    /// The side whose rows the join keeps, which a merged column is read
    /// from.
    kept: Kept,
}

/// The rows a join keeps all of, whichever side they come from.
#[derive(Clone, Copy)]
enum Kept {
    /// Inner and `LEFT` joins: the merged column is `l.c`.
    Left,
    /// `RIGHT` joins: `r.c`.
    Right,
    /// `FULL` joins: `COALESCE(l.c, r.c)`.
    Both,
}

impl UsingJoin {
    /// The merged column `column`, as SQL.
    fn merged(&self, column: &Ident) -> Option<Expr> {
        parse_expr(&match self.kept {
            Kept::Both => format!("COALESCE({}.{column}, {}.{column})", self.left, self.right),
            Kept::Right => format!("{}.{column}", self.right),
            Kept::Left => format!("{}.{column}", self.left),
        })
    }
}

/// Rewrites the `USING` joins of `select`; the merged columns and the
/// names of the other output columns, or `None` when there was no join to
/// rewrite (or one that cannot be).
fn merge_select(select: &mut Select) -> Option<(Merged, Vec<String>)> {
    let joins: Vec<Option<UsingJoin>> = select.from.iter().map(using_join).collect();
    if joins.iter().all(Option::is_none) {
        return None;
    }
    let mut merged = Merged::new();
    for join in joins.iter().flatten() {
        for column in &join.columns {
            if merged
                .insert(folded(column), join.merged(column)?)
                .is_some()
            {
                return None; // two joins merge one name: which is meant?
            }
        }
    }
    if subqueries_name(select, &merged) {
        return None;
    }
    let projection = expand_wildcards(&select.projection, &select.from, &joins)?;
    let outputs = output_names(&select.projection)
        .into_iter()
        .filter(|name| !merged.contains_key(name))
        .collect();
    for (table, join) in select.from.iter_mut().zip(&joins) {
        if let Some(join) = join {
            let condition = join
                .columns
                .iter()
                .map(|c| format!("{}.{c} = {}.{c}", join.left, join.right))
                .collect::<Vec<_>>()
                .join(" AND ");
            let constraint = JoinConstraint::On(parse_expr(&condition)?);
            *constraint_mut(&mut table.joins[0].join_operator)? = constraint;
        }
        for join in table.joins.iter_mut().skip(1) {
            if let Some(JoinConstraint::On(on)) = constraint_mut(&mut join.join_operator) {
                replace_columns(on, &merged);
            }
        }
    }
    select.projection = projection;
    for (position, item) in select.projection.iter_mut().enumerate() {
        match item {
            // Named uniquely: DataFusion refuses `name` beside `l.name`.
            SelectItem::UnnamedExpr(Expr::Identifier(ident))
                if merged.contains_key(&folded(ident)) =>
            {
                let name = folded(ident);
                *item = unique_alias(merged[&name].clone(), &name, position);
            }
            SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                replace_columns(expr, &merged)
            }
            _ => {}
        }
    }
    for expr in select
        .selection
        .iter_mut()
        .chain(&mut select.having)
        .chain(&mut select.qualify)
    {
        replace_columns(expr, &merged);
    }
    if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
        exprs.iter_mut().for_each(|e| replace_columns(e, &merged));
    }
    if let Some(Distinct::On(exprs)) = &mut select.distinct {
        exprs.iter_mut().for_each(|e| replace_columns(e, &merged));
    }
    Some((merged, outputs))
}

/// The `USING` join that starts `table` (`l FULL JOIN r USING (...)` with
/// named sides and no other `USING` or `NATURAL` join after it).
fn using_join(table: &TableWithJoins) -> Option<UsingJoin> {
    let first = table.joins.first()?;
    let (kept, columns) = match &first.join_operator {
        JoinOperator::FullOuter(JoinConstraint::Using(columns)) => (Kept::Both, columns),
        JoinOperator::Right(JoinConstraint::Using(columns))
        | JoinOperator::RightOuter(JoinConstraint::Using(columns)) => (Kept::Right, columns),
        JoinOperator::Join(JoinConstraint::Using(columns))
        | JoinOperator::Inner(JoinConstraint::Using(columns))
        | JoinOperator::Left(JoinConstraint::Using(columns))
        | JoinOperator::LeftOuter(JoinConstraint::Using(columns)) => (Kept::Left, columns),
        _ => return None,
    };
    let later_merge = table.joins[1..].iter().any(|join| {
        matches!(
            constraint_mut(&mut join.join_operator.clone()),
            Some(JoinConstraint::Using(_) | JoinConstraint::Natural)
        )
    });
    if later_merge {
        return None;
    }
    let columns = columns
        .iter()
        .map(|name| match name.0.as_slice() {
            [part] => part.as_ident().cloned(),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(UsingJoin {
        columns,
        left: qualifier(&table.relation)?,
        right: qualifier(&first.relation)?,
        kept,
    })
}

/// The name a table factor's columns are qualified by.
fn qualifier(factor: &TableFactor) -> Option<ObjectName> {
    match factor {
        TableFactor::Table {
            alias: Some(alias), ..
        }
        | TableFactor::Derived {
            alias: Some(alias), ..
        } => Some(ObjectName::from(vec![alias.name.clone()])),
        TableFactor::Table {
            name,
            alias: None,
            args: None,
            ..
        } => Some(name.clone()),
        _ => None,
    }
}

/// The constraint of a join that has one.
fn constraint_mut(operator: &mut JoinOperator) -> Option<&mut JoinConstraint> {
    match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c)
        | JoinOperator::StraightJoin(c)
        | JoinOperator::AsOf { constraint: c, .. } => Some(c),
        _ => None,
    }
}

/// `projection` with each plain `*` spelled out PostgreSQL's way; `None`
/// when a `*` cannot be (a `FROM` item without a name, or `*` options).
fn expand_wildcards(
    projection: &[SelectItem],
    from: &[TableWithJoins],
    joins: &[Option<UsingJoin>],
) -> Option<Vec<SelectItem>> {
    let mut expanded = Vec::with_capacity(projection.len());
    for item in projection {
        match item {
            SelectItem::Wildcard(options) if *options == WildcardAdditionalOptions::default() => {
                for (table, join) in from.iter().zip(joins) {
                    let mut factors = vec![&table.relation];
                    factors.extend(table.joins.iter().map(|j| &j.relation));
                    if let Some(join) = join {
                        for column in &join.columns {
                            expanded.push(SelectItem::ExprWithAlias {
                                expr: join.merged(column)?,
                                alias: column.clone(),
                            });
                        }
                        let exclude = ExcludeSelectItem::Multiple(
                            join.columns
                                .iter()
                                .map(|c| ObjectName::from(vec![c.clone()]))
                                .collect(),
                        );
                        for side in [&join.left, &join.right] {
                            expanded.push(qualified_wildcard(side.clone(), Some(exclude.clone())));
                        }
                        factors.drain(..2);
                    }
                    for factor in factors {
                        expanded.push(qualified_wildcard(qualifier(factor)?, None));
                    }
                }
            }
            SelectItem::Wildcard(_) => return None,
            other => expanded.push(other.clone()),
        }
    }
    Some(expanded)
}

fn qualified_wildcard(name: ObjectName, exclude: Option<ExcludeSelectItem>) -> SelectItem {
    SelectItem::QualifiedWildcard(
        SelectItemQualifiedWildcardKind::ObjectName(name),
        WildcardAdditionalOptions {
            opt_exclude: exclude,
            ..Default::default()
        },
    )
}

/// The names the select items give their columns, folded.
fn output_names(projection: &[SelectItem]) -> Vec<String> {
    projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(folded(alias)),
            SelectItem::UnnamedExpr(Expr::Identifier(ident)) => Some(folded(ident)),
            _ => None,
        })
        .collect()
}

/// Replaces the unqualified merged columns in `expr`, outside subqueries.
fn replace_columns(expr: &mut Expr, merged: &Merged) {
    struct Replace<'a> {
        merged: &'a Merged,
        depth: usize,
    }
    impl VisitorMut for Replace<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if self.depth == 0
                && let Expr::Identifier(ident) = expr
                && let Some(merged) = self.merged.get(&folded(ident))
            {
                *expr = merged.clone();
            }
            ControlFlow::Continue(())
        }
    }
    let _ = expr.visit(&mut Replace { merged, depth: 0 });
}

/// Whether a subquery inside `select` names a merged column unqualified:
/// without the catalog, whether it means the merged column or one of the
/// subquery's own cannot be told.
fn subqueries_name(select: &Select, merged: &Merged) -> bool {
    struct Names<'a> {
        merged: &'a Merged,
        depth: usize,
    }
    impl Visitor for Names<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Identifier(ident)
                    if self.depth > 0 && self.merged.contains_key(&folded(ident)) =>
                {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    select.visit(&mut Names { merged, depth: 0 }).is_break()
}

/// Fails with 0A000 if `plan` still has a `FULL` or `RIGHT` join with
/// `USING` (one [`merge_using_joins`] left alone).
pub fn refuse_outer_using(plan: &LogicalPlan) -> Result<()> {
    let mut refused = None;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Join(join) = node
            && join.join_constraint == PlanConstraint::Using
            && matches!(join.join_type, JoinType::Full | JoinType::Right)
        {
            refused = Some(join.join_type);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match refused {
        Some(join_type) => Err(Error::FeatureNotSupported(format!(
            "this {} JOIN ... USING (or NATURAL {0} JOIN) is not supported yet: a side that \
             is itself a join, a second USING join in the same FROM item, or a subquery \
             naming the merged column; write ON l.c = r.c and COALESCE(l.c, r.c) instead",
            if join_type == JoinType::Full {
                "FULL"
            } else {
                "RIGHT"
            }
        ))),
        None => Ok(()),
    }
}
