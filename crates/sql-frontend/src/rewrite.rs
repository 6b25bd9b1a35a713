//! Quiver's own rewrites of PostgreSQL syntax DataFusion does not plan,
//! after `datafusion-pg-catalog`'s (see [`crate::parse`]).
//!
//! - `ARRAY(SELECT e FROM ... [ORDER BY ...])` — an array of a subquery's
//!   rows, which psql's `\du` uses — becomes the scalar subquery
//!   `(SELECT array_agg(e [ORDER BY ...]) FROM ...)`. (An empty subquery
//!   gives NULL rather than PostgreSQL's empty array.)

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArguments, Query, SelectItem, SetExpr, Statement, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Applies Quiver's rewrites to `statement`.
pub(crate) fn rewrite(statement: &mut Statement) {
    let _ = statement.visit(&mut ArraySubqueries);
}

struct ArraySubqueries;

impl VisitorMut for ArraySubqueries {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(function) = expr
            && function.name.to_string().eq_ignore_ascii_case("array")
            && let FunctionArguments::Subquery(query) = &function.args
            && let Some(aggregated) = aggregate(query)
        {
            *expr = aggregated;
        }
        ControlFlow::Continue(())
    }
}

/// `query`'s one column, aggregated into an array, as a scalar subquery;
/// `None` for a query this does not fit (several columns, a LIMIT, a set
/// operation).
fn aggregate(query: &Query) -> Option<Expr> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if query.limit_clause.is_some() || query.fetch.is_some() || select.projection.len() != 1 {
        return None;
    }
    let item = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return None,
    };
    let order = query
        .order_by
        .as_ref()
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    let call = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&format!("array_agg({item}{order})"))
        .and_then(|mut p| p.parse_expr())
        .ok()?;
    let mut aggregated = query.clone();
    aggregated.order_by = None;
    if let SetExpr::Select(select) = aggregated.body.as_mut() {
        select.projection = vec![SelectItem::UnnamedExpr(call)];
    }
    Some(Expr::Subquery(Box::new(aggregated)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        rewrite(&mut statements[0]);
        statements[0].to_string()
    }

    #[test]
    fn array_of_a_subquery_becomes_array_agg() {
        assert_eq!(
            rewritten("SELECT ARRAY(SELECT b.x FROM b WHERE b.y = a.y ORDER BY 1) AS xs FROM a"),
            "SELECT (SELECT array_agg(b.x ORDER BY 1) FROM b WHERE b.y = a.y) AS xs FROM a"
        );
        // Left alone: an array literal, and a subquery with a LIMIT.
        assert_eq!(rewritten("SELECT ARRAY[1, 2]"), "SELECT ARRAY[1, 2]");
        assert_eq!(
            rewritten("SELECT ARRAY(SELECT x FROM b LIMIT 1)"),
            "SELECT ARRAY(SELECT x FROM b LIMIT 1)"
        );
    }
}
