//! The OID types (`oid`, `regtype`, `regclass`, ... and their arrays) of
//! result columns and parameters.
//!
//! In Arrow an OID is an `Int32`; the system catalog marks its OID columns
//! with `pg.oid_alias` field metadata, and `arrow-pg` describes such a column
//! as `oid` instead of `integer`. DataFusion drops that metadata wherever a
//! value is computed — `array_agg(atttypid)`, a `CASE` over an OID column, a
//! scalar subquery — and a cast to `oid` carries none, so PostgreSQL's
//! `oid[]` comes out as `integer[]`. Clients notice: asyncpg decodes its own
//! type-introspection query only when that query's `oid[]` parameter and
//! result column are described as `oid[]`. This module follows result
//! columns back through the plan to the column they come from, and takes a
//! parameter's OID type from the SQL cast applied to it.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow_pg::datatypes::{PG_OID_ALIAS_KEY, pg_type_for_alias_kind};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{
    self, DataType as SqlType, ObjectNamePart, Value, ValueWithSpan, Visit,
};
use pgwire::api::Type;

use crate::lineage::{Mark, traced};

/// Whether a field is marked as holding OIDs (of any alias: `oid`, `regtype`, ...).
fn marked(field: &Field) -> bool {
    field.metadata().contains_key(PG_OID_ALIAS_KEY)
}

fn mark(field: &Field) -> Field {
    let mut metadata = field.metadata().clone();
    metadata.insert(PG_OID_ALIAS_KEY.to_string(), "oid".to_string());
    field.clone().with_metadata(metadata)
}

/// The type a result column of OIDs is described with: `oid`, or `oid[]`
/// for a list of them; `None` for every other column, which `arrow-pg`
/// describes itself.
///
/// Always `oid`, also for a column the catalog marks `regtype` or
/// `regclass` (which helps it resolve `atttypid = 'int4'`): Quiver sends
/// every OID as a number, and a client told `regtype` expects a type name in
/// the text format and has no decoder for `regtype[]` (asyncpg). A marked
/// column that is not `Int32` is a cast of an OID (`atttypid::text`), whose
/// field DataFusion derives from the OID's, marker and all: it is described by
/// its own type.
pub fn result_type(field: &Field) -> Option<Type> {
    match field.data_type() {
        DataType::Int32 if marked(field) => Some(Type::OID),
        DataType::List(element) if element.data_type() == &DataType::Int32 && marked(element) => {
            Some(Type::OID_ARRAY)
        }
        other if marked(field) => arrow_pg::datatypes::into_pg_type(other).ok(),
        _ => None,
    }
}

/// The type a parameter the statement casts to an OID type is described
/// with (`oid`, `oid[]`); `None` for other parameters.
pub fn parameter_type(data_type: &DataType) -> Option<Type> {
    match data_type {
        DataType::Int32 => Some(Type::OID),
        DataType::List(element) if element.data_type() == &DataType::Int32 => Some(Type::OID_ARRAY),
        _ => None,
    }
}

/// `schema` (the output of `plan`) with each `Int32` column, or list of
/// them, whose values come from a marked column marked too.
pub fn mark_columns(plan: &LogicalPlan, schema: Schema) -> Schema {
    if schema.fields().len() != plan.schema().fields().len() {
        return schema;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let field = field.as_ref();
            match field.data_type() {
                DataType::Int32 if !marked(field) && holds_oids(plan, i) => mark(field),
                DataType::List(element)
                    if element.data_type() == &DataType::Int32
                        && !marked(element)
                        && holds_oids(plan, i) =>
                {
                    let element = Arc::new(mark(element));
                    field.clone().with_data_type(DataType::List(element))
                }
                _ => field.clone(),
            }
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// Values marked as OIDs, or lists of them.
struct Oids;

impl Mark for Oids {
    type Value = ();

    fn of(&self, field: &Field) -> Option<()> {
        let element = match field.data_type() {
            DataType::List(element) => element.as_ref(),
            _ => field,
        };
        marked(element).then_some(())
    }

    fn any_source(&self) -> bool {
        true
    }
}

/// Whether the `index`th output column of `plan` holds OIDs: followed back
/// to the column its values come from, that one is marked.
fn holds_oids(plan: &LogicalPlan, index: usize) -> bool {
    traced(&Oids, plan, index).is_some()
}

/// The `n` of each `$n` that `statement` casts to an OID type (`$1::oid[]`,
/// `CAST($2 AS regclass)`).
pub fn oid_parameters(statement: &ast::Statement) -> HashSet<usize> {
    let mut parameters = HashSet::new();
    let _ = statement.visit(&mut ParameterCasts(&mut parameters));
    parameters
}

struct ParameterCasts<'a>(&'a mut HashSet<usize>);

impl ast::Visitor for ParameterCasts<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &ast::Expr) -> ControlFlow<()> {
        if let ast::Expr::Cast {
            expr, data_type, ..
        } = expr
            && let ast::Expr::Value(ValueWithSpan {
                value: Value::Placeholder(id),
                ..
            }) = expr.as_ref()
            && let Some(n) = id.strip_prefix('$').and_then(|n| n.parse().ok())
            && names_oid_type(data_type)
        {
            self.0.insert(n);
        }
        ControlFlow::Continue(())
    }
}

/// Whether a SQL type (or array of it) is an OID type.
fn names_oid_type(data_type: &SqlType) -> bool {
    match data_type {
        SqlType::Array(ast::ArrayElemTypeDef::SquareBracket(element, _))
        | SqlType::Array(ast::ArrayElemTypeDef::AngleBracket(element)) => names_oid_type(element),
        SqlType::Regclass => true,
        SqlType::Custom(name, args) if args.is_empty() => match name.0.last() {
            Some(ObjectNamePart::Identifier(ident)) => {
                pg_type_for_alias_kind(&ident.value.to_lowercase()).is_some()
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    #[test]
    fn casts_give_parameters_their_oid_kind() {
        let sql = "SELECT * FROM t WHERE a = any($1::oid[]) AND b = $2::regtype AND c = $3::int";
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        assert_eq!(oid_parameters(&statement), HashSet::from([1, 2]));
        let list = DataType::new_list(DataType::Int32, true);
        assert_eq!(parameter_type(&list), Some(Type::OID_ARRAY));
        assert_eq!(parameter_type(&DataType::Int32), Some(Type::OID));
        assert_eq!(parameter_type(&DataType::Int64), None);
    }
}
