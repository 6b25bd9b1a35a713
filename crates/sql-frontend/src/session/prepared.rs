//! `PREPARE name [(types)] AS statement`, `EXECUTE name [(values)]` and
//! `DEALLOCATE [PREPARE] name | ALL`: statements a session keeps by name,
//! run with the values an `EXECUTE` gives for their parameters (`$1`,
//! `$2`, ..., each cast to the type `PREPARE` declared for it). pg_dump
//! prepares its per-object queries so.
//!
//! The extended protocol's statements (Parse, Bind) are kept apart, by the
//! connection (see `crate::extended`); `DEALLOCATE` of a name no `PREPARE`
//! gave succeeds, since drivers (psycopg) free protocol-level statements
//! with it.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    DataType, Expr, Ident, Statement, Value, VisitMut, visit_expressions_mut,
};

use super::{Completion, Outcome, Session};
use crate::{Error, Result};

/// A statement `PREPARE` kept.
#[derive(Debug, Clone)]
pub(super) struct PreparedSql {
    statement: Statement,
    types: Vec<DataType>,
}

/// The statements a session's `PREPARE`s kept, by name.
pub(super) type PreparedStatements = std::sync::Mutex<HashMap<String, PreparedSql>>;

impl Session {
    pub(super) fn prepare(
        &self,
        name: &Ident,
        types: Vec<DataType>,
        statement: Statement,
    ) -> Result<Outcome> {
        let mut prepared = self.prepared_sql();
        if prepared.contains_key(&name.value) {
            return Err(Error::DuplicatePreparedStatement(name.value.clone()));
        }
        prepared.insert(name.value.clone(), PreparedSql { statement, types });
        Ok(Completion::tag("PREPARE").into())
    }

    /// The statement `name` names, with `values` in place of its
    /// parameters, to run.
    pub(super) fn bound(&self, name: &str, values: Vec<Expr>) -> Result<DfStatement> {
        let PreparedSql {
            mut statement,
            types,
        } = self
            .prepared_sql()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UndefinedPreparedStatement(name.to_string()))?;
        let expected = types.len().max(highest(&statement));
        if values.len() != expected {
            return Err(Error::Syntax(format!(
                "wrong number of parameters for prepared statement \"{name}\": expected {expected}, got {}",
                values.len()
            )));
        }
        let values: Vec<Expr> = values
            .into_iter()
            .enumerate()
            .map(|(i, value)| match types.get(i) {
                Some(data_type) => Expr::Cast {
                    kind: datafusion::sql::sqlparser::ast::CastKind::DoubleColon,
                    expr: Box::new(value),
                    data_type: data_type.clone(),
                    array: false,
                    format: None,
                },
                None => value,
            })
            .collect();
        let _ = statement.visit(&mut Binder(&values));
        Ok(DfStatement::Statement(Box::new(statement)))
    }

    pub(super) fn deallocate(&self, name: &Ident) -> Result<Outcome> {
        let mut prepared = self.prepared_sql();
        if name.value.eq_ignore_ascii_case("all") && name.quote_style.is_none() {
            prepared.clear();
            return Ok(Completion::tag("DEALLOCATE ALL").into());
        }
        prepared.remove(&name.value);
        Ok(Completion::tag("DEALLOCATE").into())
    }

    fn prepared_sql(&self) -> std::sync::MutexGuard<'_, HashMap<String, PreparedSql>> {
        self.prepared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The number of the highest parameter `statement` has (`$3`: 3).
fn highest(statement: &Statement) -> usize {
    let mut statement = statement.clone();
    let mut highest = 0;
    let _ = visit_expressions_mut(&mut statement, |expr: &mut Expr| {
        if let Some(n) = parameter(expr) {
            highest = highest.max(n);
        }
        ControlFlow::<()>::Continue(())
    });
    highest
}

/// The number of the parameter `expr` is (`$2`: 2).
fn parameter(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// Puts each value in place of its parameter.
struct Binder<'a>(&'a [Expr]);

impl datafusion::sql::sqlparser::ast::VisitorMut for Binder<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(value) = parameter(expr).and_then(|n| self.0.get(n.checked_sub(1)?)) {
            *expr = Expr::Nested(Box::new(value.clone()));
        }
        ControlFlow::Continue(())
    }
}
