//! `INSERT ... SELECT` whose query reads a `VALUES` list.
//!
//! DataFusion plans an `INSERT`'s query with the target's columns as the
//! schema of every `VALUES` list in it, which is right for `INSERT ...
//! VALUES` (the values take the columns' types) but not for a list inside
//! the query: `INSERT INTO t (name) SELECT p0 FROM (VALUES ('a', 0), ('b',
//! 1)) AS v(p0, n) ORDER BY n` — what SQLAlchemy sends to insert several
//! ORM objects and get their keys back — fails ("got 2 values in row 0 but
//! expected 1"). Quiver plans such an `INSERT` itself: the query as a
//! query, then its columns cast to the target's, and the columns it does
//! not name filled with their defaults, as DataFusion's `INSERT` does.
//! The same planning serves an `INSERT ... SELECT` without a column list
//! whose query gives fewer columns than the table has (the first ones get
//! them, as in PostgreSQL), which DataFusion refuses.

use std::sync::Arc;

use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    DmlStatement, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, WriteOp,
};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Insert, SetExpr, Statement, TableObject};

use super::Session;
use crate::{Error, Result};

/// Whether Quiver plans `insert` itself: its rows come from a query (not
/// a `VALUES` list) that reads a `VALUES` list.
pub(super) fn reads_values_list(insert: &Insert) -> bool {
    plain_insert_select(insert)
        && insert
            .source
            .as_ref()
            .is_some_and(|source| source.to_string().to_ascii_uppercase().contains("VALUES"))
}

/// Whether `insert` is one Quiver can plan itself: rows from a query (not
/// a `VALUES` list) into a table, without `ON CONFLICT` or `RETURNING`.
fn plain_insert_select(insert: &Insert) -> bool {
    insert
        .source
        .as_ref()
        .is_some_and(|source| !matches!(source.body.as_ref(), SetExpr::Values(_)))
        && insert.on.is_none()
        && insert.returning.is_none()
        && matches!(insert.table, TableObject::TableName(_))
}

/// Whether `insert`'s query may give fewer columns than its table has
/// with no column list named: PostgreSQL fills the rest with their
/// defaults, DataFusion's `INSERT` refuses ([`is_column_count_mismatch`]),
/// and Quiver then plans it itself.
pub(super) fn may_name_fewer(insert: &Insert) -> bool {
    insert.columns.is_empty() && plain_insert_select(insert)
}

/// DataFusion's refusal of an `INSERT` whose query gives more or fewer
/// columns than its table has.
pub(super) fn is_column_count_mismatch(error: &DataFusionError) -> bool {
    error
        .to_string()
        .contains("Column count doesn't match insert query")
}

impl Session {
    /// Plans `insert` (see [`reads_values_list`]).
    pub(super) async fn plan_insert_select(&self, insert: Insert) -> Result<LogicalPlan> {
        let (TableObject::TableName(name), Some(source)) = (&insert.table, insert.source) else {
            return Err(Error::Internal(
                "INSERT ... SELECT without its table or query".into(),
            ));
        };
        let reference = crate::names::table_reference(name);
        let provider = self.ctx.table_provider(reference.clone()).await?;
        let state = self.ctx.state();
        let query = DfStatement::Statement(Box::new(Statement::Query(source)));
        let rows = state.statement_to_plan(query).await?;
        let table = provider.schema();
        let mut written = super::defaults::target_columns(&table, &insert.columns)?;
        let given = rows.schema().fields().len();
        if insert.columns.is_empty() {
            // No column list: the query's columns are the first ones.
            written.truncate(given);
        }
        if given != written.len() {
            let more = if given > written.len() {
                "more expressions than target columns"
            } else {
                "more target columns than expressions"
            };
            return Err(Error::Syntax(format!("INSERT has {more}")));
        }
        let empty = DFSchema::empty();
        let values = table
            .fields()
            .iter()
            .enumerate()
            .map(|(index, field)| {
                let value = match written.iter().position(|&w| w == index) {
                    Some(from) => Expr::Column(Column::from(rows.schema().qualified_field(from)))
                        .cast_to(field.data_type(), rows.schema())?,
                    None => provider
                        .get_column_default(field.name())
                        .cloned()
                        .unwrap_or(Expr::Literal(ScalarValue::Null, None))
                        .cast_to(field.data_type(), &empty)?,
                };
                Ok(value.alias(field.name()))
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = LogicalPlanBuilder::from(rows).project(values)?.build()?;
        Ok(LogicalPlan::Dml(DmlStatement::new(
            reference,
            provider_as_source(provider),
            WriteOp::Insert(InsertOp::Append),
            Arc::new(rows),
        )))
    }
}
