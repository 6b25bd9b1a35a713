//! PostgreSQL's names for unaliased result columns.
//!
//! DataFusion names `SELECT count(*), 1 + 1` as `count(*)` and
//! `Int64(1) + Int64(1)`; PostgreSQL says `count` and `?column?`, and clients
//! that read results by column name (pandas, SQLAlchemy, JDBC) expect that.
//! These rules follow PostgreSQL's `FigureColname`.

use datafusion::arrow::datatypes::Schema;
use datafusion::sql::sqlparser::ast::{Expr, Query, SelectItem, SetExpr};

/// The PostgreSQL name of each output column of `query`, where it differs
/// from DataFusion's (`None`: keep DataFusion's). `None` overall when the
/// columns cannot be matched to select items (a `*` expands to many).
pub fn result_names(query: &Query) -> Option<Vec<Option<String>>> {
    let mut body = query.body.as_ref();
    loop {
        match body {
            SetExpr::Select(select) => {
                return select
                    .projection
                    .iter()
                    .map(|item| match item {
                        SelectItem::UnnamedExpr(expr) => Some(figure(expr)),
                        SelectItem::ExprWithAlias { .. } | SelectItem::ExprWithAliases { .. } => {
                            Some(None)
                        }
                        _ => None,
                    })
                    .collect();
            }
            SetExpr::SetOperation { left, .. } => body = left.as_ref(),
            SetExpr::Query(inner) => body = inner.body.as_ref(),
            _ => return None,
        }
    }
}

/// [`result_names`] of a statement that is a query.
pub fn statement_names(
    statement: &datafusion::sql::parser::Statement,
) -> Option<Vec<Option<String>>> {
    match statement {
        datafusion::sql::parser::Statement::Statement(s) => match s.as_ref() {
            datafusion::sql::sqlparser::ast::Statement::Query(query) => result_names(query),
            _ => None,
        },
        _ => None,
    }
}

/// `schema` with the fields renamed by `names` (from [`result_names`]);
/// unchanged when the names do not line up with the fields.
pub fn rename(schema: &Schema, names: Option<Vec<Option<String>>>) -> Schema {
    match names.filter(|n| n.len() == schema.fields().len()) {
        None => schema.clone(),
        Some(names) => Schema::new(
            schema
                .fields()
                .iter()
                .zip(names)
                .map(|(field, name)| match name {
                    Some(name) => field.as_ref().clone().with_name(name),
                    None => field.as_ref().clone(),
                })
                .collect::<Vec<_>>(),
        ),
    }
}

/// `None` keeps DataFusion's name (plain column references: DataFusion has
/// already resolved their case and quoting).
fn figure(expr: &Expr) -> Option<String> {
    let name = match expr {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => return None,
        Expr::Nested(inner) => return figure(inner),
        Expr::Function(f) => f
            .name
            .0
            .last()
            .and_then(|part| part.as_ident())
            .map(|ident| ident.value.to_lowercase())
            .unwrap_or_else(|| "?column?".into()),
        Expr::Cast {
            expr, data_type, ..
        } => match expr.as_ref() {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Function(_) => {
                return figure(expr);
            }
            _ => type_name(&data_type.to_string()),
        },
        Expr::Case { .. } => "case".into(),
        Expr::Exists { .. } => "exists".into(),
        Expr::Array(_) => "array".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Substring { .. } => "substring".into(),
        Expr::Trim { .. } => "btrim".into(),
        Expr::Position { .. } => "position".into(),
        Expr::Subquery(query) => {
            return result_names(query).and_then(|names| names.into_iter().next().flatten());
        }
        _ => "?column?".into(),
    };
    Some(name)
}

/// PostgreSQL's internal name of a cast target type, as it names the column.
fn type_name(sql: &str) -> String {
    let lower = sql.to_ascii_lowercase();
    let base = lower.split('(').next().unwrap_or(&lower).trim();
    match base {
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "real" | "float4" => "float4",
        "double precision" | "float8" | "double" | "float" => "float8",
        "boolean" | "bool" => "bool",
        "decimal" | "numeric" => "numeric",
        "character varying" | "varchar" => "varchar",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "timestamptz" | "timestamp with time zone" => "timestamptz",
        other => other,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn names(sql: &str) -> Option<Vec<Option<String>>> {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        let Statement::Query(query) = &statements[0] else {
            panic!("a query")
        };
        result_names(query)
    }

    #[test]
    fn unaliased_columns_get_postgresql_names() {
        let got = names(
            "SELECT id, t.x, count(*), 1 + 1, x AS y, '1'::int, x::text, CASE WHEN true THEN 1 END, pg_catalog.upper(x) FROM t",
        );
        let want = [
            None,
            None,
            Some("count"),
            Some("?column?"),
            None,
            Some("int4"),
            None,
            Some("case"),
            Some("upper"),
        ];
        assert_eq!(
            got,
            Some(want.iter().map(|n| n.map(str::to_string)).collect())
        );
    }

    #[test]
    fn wildcards_keep_datafusion_names() {
        assert_eq!(names("SELECT *, count(*) FROM t"), None);
        assert_eq!(
            names("SELECT a FROM t UNION SELECT max(b) FROM u"),
            Some(vec![None])
        );
    }
}
