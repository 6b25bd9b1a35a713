//! `UPDATE t SET c = expr FROM other WHERE cond`, which DataFusion refuses
//! (apache/datafusion#19950), written as correlated subqueries it plans:
//!
//! ```sql
//! UPDATE t SET c = (SELECT expr FROM other WHERE cond)
//! WHERE EXISTS (SELECT 1 FROM other WHERE cond)
//! ```
//!
//! A row of `t` no row of `other` joins is left as it is, as in
//! PostgreSQL. One that several rows join: PostgreSQL takes one of them,
//! "not readily predictable" which; here the subquery fails with `21000`
//! (more than one row) rather than pick one silently.

use datafusion::sql::sqlparser::ast::{Expr, Statement, Update, UpdateTableFromKind};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::{Error, Result};

/// Rewrites `statement` if it is an `UPDATE ... FROM` (see the module's
/// docs); leaves any other statement alone.
pub(crate) fn rewrite_update_from(statement: &mut Statement) {
    let Statement::Update(update) = statement else {
        return;
    };
    if update.from.is_none() {
        return;
    }
    // A part that does not parse back leaves the statement as it was
    // (for DataFusion to refuse).
    let mut rewritten = update.clone();
    if subqueries(&mut rewritten).is_ok() {
        *update = rewritten;
    }
}

/// `update`'s `FROM` as subqueries.
fn subqueries(update: &mut Update) -> Result<()> {
    let Update {
        from,
        selection,
        assignments,
        ..
    } = update;
    let Some(UpdateTableFromKind::AfterSet(tables) | UpdateTableFromKind::BeforeSet(tables)) =
        from.take()
    else {
        return Ok(());
    };
    let from_list = tables
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let filter = match selection.as_ref() {
        Some(condition) => format!(" WHERE {condition}"),
        None => String::new(),
    };
    for assignment in assignments.iter_mut() {
        assignment.value = expr(&format!(
            "(SELECT {} FROM {from_list}{filter})",
            assignment.value
        ))?;
    }
    *selection = Some(expr(&format!(
        "EXISTS (SELECT 1 FROM {from_list}{filter})"
    ))?);
    Ok(())
}

/// `sql` parsed as an expression.
fn expr(sql: &str) -> Result<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_expr())
        .map_err(|e| Error::Syntax(format!("{e} (in {sql})")))
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::rewrite_update_from;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite_update_from(&mut statement);
        statement.to_string()
    }

    #[test]
    fn from_becomes_correlated_subqueries() {
        assert_eq!(
            rewritten("UPDATE t SET a = u.b + 1, c = 2 FROM u WHERE t.id = u.id AND u.ok"),
            "UPDATE t SET a = (SELECT u.b + 1 FROM u WHERE t.id = u.id AND u.ok), \
             c = (SELECT 2 FROM u WHERE t.id = u.id AND u.ok) \
             WHERE EXISTS (SELECT 1 FROM u WHERE t.id = u.id AND u.ok)"
        );
        assert_eq!(
            rewritten("UPDATE t SET a = 1 WHERE id = 2"),
            "UPDATE t SET a = 1 WHERE id = 2"
        );
    }
}
