//! Column `DEFAULT`s: what `CREATE TABLE` declares, and the `DEFAULT`
//! keyword of `INSERT`.
//!
//! A column's default is kept as SQL text in its field's metadata (see
//! [`quiver_catalog::COLUMN_DEFAULT`]); each session plans it into the
//! table's provider, and DataFusion's `INSERT` fills the columns a
//! statement does not name from there. DataFusion knows no `DEFAULT` in a
//! `VALUES` row nor `INSERT ... DEFAULT VALUES`: [`Session::insert_defaults`]
//! writes the defaults into the statement in their place.

use std::collections::HashMap;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    ColumnDef, ColumnOption, Expr, Ident, ObjectName, Query, SetExpr, Statement, TableObject, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use quiver_catalog::COLUMN_DEFAULT;

use super::Session;
use crate::names::folded;
use crate::{Error, Result};

/// The `DEFAULT` expressions `CREATE TABLE` gives its columns, as SQL
/// text, by column name.
pub(super) fn declared_defaults(columns: &[ColumnDef]) -> HashMap<String, String> {
    columns
        .iter()
        .filter_map(|column| {
            column
                .options
                .iter()
                .find_map(|option| match &option.option {
                    ColumnOption::Default(expr) => Some((folded(&column.name), stored(expr))),
                    _ => None,
                })
        })
        .collect()
}

/// A `DEFAULT` expression as a column keeps it (see
/// [`crate::rewrite::regclass_as_text`]).
pub(super) fn stored(expr: &Expr) -> String {
    let mut expr = expr.clone();
    crate::rewrite::regclass_as_text(&mut expr);
    expr.to_string()
}

/// `field` with its column's `DEFAULT` (SQL text), if `defaults` has one.
pub(super) fn with_default(field: Field, defaults: &HashMap<String, String>) -> Field {
    match defaults.get(field.name()) {
        Some(sql) => {
            let mut metadata = field.metadata().clone();
            metadata.insert(COLUMN_DEFAULT.to_string(), sql.clone());
            field.with_metadata(metadata)
        }
        None => field,
    }
}

/// Whether `expr` is the keyword `DEFAULT` in a `VALUES` row.
fn is_default(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(ident)
        if ident.quote_style.is_none() && ident.value.eq_ignore_ascii_case("default"))
}

/// The default of `field` as an expression: `NULL` if it has none.
fn default_of(field: &Field) -> Result<Expr> {
    let Some(sql) = field.metadata().get(COLUMN_DEFAULT) else {
        return Ok(Expr::Value(Value::Null.into()));
    };
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_expr())
        .map_err(|e| Error::Internal(format!("the stored default {sql}: {e}")))
}

impl Session {
    /// `statement` with the defaults of its table's columns where an
    /// `INSERT` says `DEFAULT` (in a `VALUES` row, or `DEFAULT VALUES`).
    pub(super) async fn insert_defaults(&self, statement: DfStatement) -> Result<DfStatement> {
        let DfStatement::Statement(mut boxed) = statement else {
            return Ok(statement);
        };
        let Statement::Insert(insert) = boxed.as_mut() else {
            return Ok(DfStatement::Statement(boxed));
        };
        let default_values = insert.source.is_none() && insert.columns.is_empty();
        let has_default = insert.source.as_ref().is_some_and(|source| {
            matches!(source.body.as_ref(), SetExpr::Values(values)
                if values.rows.iter().flat_map(|row| &row.content).any(is_default))
        });
        // The width of a VALUES list given without a column list.
        let width = match insert.source.as_deref().map(|source| source.body.as_ref()) {
            Some(SetExpr::Values(values)) if insert.columns.is_empty() => {
                values.rows.first().map(|row| row.content.len())
            }
            _ => None,
        };
        if !default_values && !has_default && width.is_none() {
            return Ok(DfStatement::Statement(boxed));
        }
        let TableObject::TableName(name) = &insert.table else {
            return Ok(DfStatement::Statement(boxed));
        };
        let reference = crate::names::table_reference(name);
        let Some(table) = self.ctx.table_provider(reference.clone()).await.ok() else {
            // The planner reports the missing table.
            return Ok(DfStatement::Statement(boxed));
        };
        let schema = table.schema();
        // Fewer values than columns: the first columns get them, the rest
        // their defaults, as in PostgreSQL.
        if let Some(width) = width
            && width < schema.fields().len()
        {
            insert.columns = schema
                .fields()
                .iter()
                .take(width)
                .map(|f| ObjectName::from(vec![Ident::with_quote('"', f.name())]))
                .collect();
        }
        if !default_values && !has_default {
            return Ok(DfStatement::Statement(boxed));
        }
        if default_values {
            // Every column with a default gets it, the rest NULL.
            let fields: Vec<&Field> = schema
                .fields()
                .iter()
                .map(AsRef::as_ref)
                .filter(|f| f.metadata().contains_key(COLUMN_DEFAULT))
                .collect();
            let fields = match fields.is_empty() {
                true => schema.fields().iter().take(1).map(AsRef::as_ref).collect(),
                false => fields,
            };
            insert.columns = fields
                .iter()
                .map(|f| ObjectName::from(vec![Ident::with_quote('"', f.name())]))
                .collect();
            let row = fields
                .iter()
                .map(|f| default_of(f))
                .collect::<Result<Vec<_>>>()?;
            insert.source = Some(Box::new(values_query(&row)?));
            return Ok(DfStatement::Statement(boxed));
        }
        let targets = target_columns(&schema, &insert.columns)?;
        if let Some(source) = &mut insert.source
            && let SetExpr::Values(values) = source.body.as_mut()
        {
            for row in &mut values.rows {
                for (position, value) in row.content.iter_mut().enumerate() {
                    if is_default(value) {
                        let column = targets.get(position).ok_or_else(|| {
                            Error::Syntax("INSERT has more expressions than target columns".into())
                        })?;
                        *value = default_of(schema.field(*column))?;
                    }
                }
            }
        }
        Ok(DfStatement::Statement(boxed))
    }
}

/// The positions in `schema` of the columns an `INSERT` naming `columns`
/// (all, if none) writes, in order; 42703 for one `schema` has not.
pub(super) fn target_columns(schema: &Schema, columns: &[ObjectName]) -> Result<Vec<usize>> {
    if columns.is_empty() {
        return Ok((0..schema.fields().len()).collect());
    }
    columns
        .iter()
        .map(|column| {
            let name = column
                .0
                .last()
                .and_then(|part| part.as_ident())
                .map(folded)
                .unwrap_or_default();
            schema
                .index_of(&name)
                .map_err(|_| Error::UndefinedColumn(name))
        })
        .collect()
}

/// `VALUES (row)` as a query.
fn values_query(row: &[Expr]) -> Result<Query> {
    let values: Vec<String> = row.iter().map(ToString::to_string).collect();
    let sql = format!("VALUES ({})", values.join(", "));
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&sql)
        .and_then(|mut parser| parser.parse_query())
        .map(|query| *query)
        .map_err(|e| Error::Internal(format!("{sql}: {e}")))
}
