//! A scalar function in `FROM` (`FROM string_to_array('a,b', ',') s`,
//! which Grafana's table list sends): PostgreSQL reads it as a table of one
//! row, its one column named after the alias (or the function). DataFusion
//! looks only for table functions there; Quiver rewrites such a call of a
//! function that is not a table function as a subquery,
//! `(SELECT f(args) AS s) AS s`.

use std::ops::ControlFlow;

use datafusion::execution::SessionState;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    SetExpr, Statement, TableFactor, TableWithJoins, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Rewrites the scalar functions in `FROM` of `statement` (see the module
/// docs), as `state` knows its functions.
pub(super) fn scalar_functions_in_from(statement: &mut DfStatement, state: &SessionState) {
    match statement {
        DfStatement::Statement(s) => {
            let _ = s.visit(&mut ScalarFunctionsInFrom { state });
        }
        DfStatement::Explain(explain) => scalar_functions_in_from(&mut explain.statement, state),
        _ => {}
    }
}

struct ScalarFunctionsInFrom<'a> {
    state: &'a SessionState,
}

impl VisitorMut for ScalarFunctionsInFrom<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            args: Some(args),
            alias,
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let [part] = name.0.as_slice() else {
            return ControlFlow::Continue(());
        };
        let Some(function) = part.as_ident().map(|i| i.value.to_ascii_lowercase()) else {
            return ControlFlow::Continue(());
        };
        if self.state.table_functions().contains_key(&function)
            || !self.state.scalar_functions().contains_key(&function)
        {
            return ControlFlow::Continue(());
        }
        let table = alias
            .as_ref()
            .map_or(function.clone(), |a| a.name.to_string());
        let column = alias
            .as_ref()
            .and_then(|a| a.columns.first())
            .map_or(table.clone(), |c| c.name.to_string());
        let args: Vec<String> = args.args.iter().map(ToString::to_string).collect();
        let sql = format!(
            "SELECT * FROM (SELECT {function}({}) AS {column}) AS {table}",
            args.join(", ")
        );
        if let Some(derived) = only_relation(&sql) {
            *factor = derived;
        }
        ControlFlow::Continue(())
    }
}

/// The one relation of the query `sql`'s `FROM`.
fn only_relation(sql: &str) -> Option<TableFactor> {
    let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?.pop()?;
    let Statement::Query(query) = statement else {
        return None;
    };
    let SetExpr::Select(select) = *query.body else {
        return None;
    };
    let [TableWithJoins { relation, .. }] = <[TableWithJoins; 1]>::try_from(select.from).ok()?;
    Some(relation)
}
