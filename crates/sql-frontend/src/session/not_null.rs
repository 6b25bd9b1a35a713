//! PostgreSQL's message for a NULL written to a `NOT NULL` column.
//!
//! Arrow and DataFusion refuse such a row where they meet it, in their own
//! words and naming what they see: a `VALUES` list's column (`Column
//! 'column2' is declared as non-nullable ...`) or the written batch's
//! position (`Invalid batch column at '1' has null ...`). The statement
//! knows the table and the columns it writes, so the error is renamed
//! here, once, for every statement that writes rows.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::Schema;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{ObjectName, Statement, TableFactor, TableObject};

use super::Session;
use super::defaults::target_columns;
use crate::error::is_not_null_violation;
use crate::{Error, Result, parse};

/// 23502 for the first `NOT NULL` column of `schema` that `columns` (its
/// values, in order) give a NULL, with PostgreSQL's message: for rows Quiver
/// holds itself before they are written (`COPY`, an `UPDATE`'s new rows).
pub(crate) fn refuse_nulls(schema: &Schema, columns: &[ArrayRef], table: &str) -> Result<()> {
    match schema
        .fields()
        .iter()
        .zip(columns)
        .find(|(field, column)| !field.is_nullable() && column.null_count() > 0)
    {
        Some((field, _)) => Err(Error::NotNullViolation(field.name().clone(), table.into())),
        None => Ok(()),
    }
}

impl Session {
    /// `result` of running `statement`, with a NULL written to a `NOT
    /// NULL` column reported as PostgreSQL reports it. `written` is
    /// [`written_table`] of the statement.
    pub(crate) async fn naming_not_null_column<T>(
        &self,
        written: Option<(&ObjectName, &[ObjectName])>,
        result: Result<T>,
    ) -> Result<T> {
        match (result, written) {
            (Err(error), Some((table, columns))) => {
                Err(self.name_not_null_column(error, table, columns).await)
            }
            (result, _) => result,
        }
    }

    /// `error`, if it is a NULL written to a `NOT NULL` column of `table`
    /// by a statement writing `columns` (all, if none), as PostgreSQL says
    /// it: `null value in column "b" of relation "t" violates not-null
    /// constraint`.
    async fn name_not_null_column(
        &self,
        error: Error,
        table: &ObjectName,
        columns: &[ObjectName],
    ) -> Error {
        let Error::DataFusion(inner) = &error else {
            return error;
        };
        let message = inner.to_string();
        if !is_not_null_violation(&message) {
            return error;
        }
        let reference = crate::names::table_reference(table);
        let Ok(provider) = self.ctx.table_provider(reference.clone()).await else {
            return error;
        };
        let schema = provider.schema();
        let field = if let Some(position) = quoted_after(&message, "at '") {
            // The batch written: the table's columns in order.
            position
                .parse::<usize>()
                .ok()
                .and_then(|i| schema.fields().get(i))
                .map(AsRef::as_ref)
        } else if let Some(name) = quoted_after(&message, "Column '") {
            match schema.field_with_name(name) {
                Ok(field) => Some(field),
                // `VALUES`' own name for its n-th column: the n-th written.
                Err(_) => name
                    .strip_prefix("column")
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|n| target_columns(&schema, columns).ok()?.get(n).copied())
                    .map(|i| schema.field(i)),
            }
        } else {
            None
        };
        match field {
            Some(field) => Error::NotNullViolation(field.name().clone(), reference.table().into()),
            None => error,
        }
    }
}

/// The table an `INSERT` or `UPDATE` writes, and the columns it names.
pub(crate) fn written_table(statement: &parse::Statement) -> Option<(&ObjectName, &[ObjectName])> {
    let parse::Statement::Sql(DfStatement::Statement(statement)) = statement else {
        return None;
    };
    match statement.as_ref() {
        Statement::Insert(insert) => match &insert.table {
            TableObject::TableName(name) => Some((name, &insert.columns)),
            _ => None,
        },
        Statement::Update(update) => match &update.table.relation {
            TableFactor::Table { name, .. } => Some((name, &[])),
            _ => None,
        },
        _ => None,
    }
}

/// The text between `prefix` and the next `'` in `message`.
fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let start = message.find(prefix)? + prefix.len();
    let len = message[start..].find('\'')?;
    Some(&message[start..start + len])
}
