//! PostgreSQL's names for unaliased result columns.
//!
//! DataFusion names `SELECT count(*), 1 + 1` as `count(*)` and
//! `Int64(1) + Int64(1)`; PostgreSQL says `count` and `?column?`, and clients
//! that read results by column name (pandas, SQLAlchemy, JDBC) expect that.
//! These rules follow PostgreSQL's `FigureColname`.
//!
//! PostgreSQL also allows two result columns of one name (`SELECT a, a`,
//! `SELECT b, CAST(b AS text)`); DataFusion refuses a projection whose
//! expressions share a name, and a set operation whose branches name their
//! columns alike in other positions. [`make_names_unique`] gives such
//! columns aliases that carry their PostgreSQL name, which
//! [`result_names`] reads back.

use datafusion::common::TableReference;
use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectName, Query, SelectItem, SetExpr, VisitMut, VisitorMut,
    visit_expressions_mut,
};

/// Separates the PostgreSQL name in an alias made by [`make_names_unique`]
/// from the position that makes it unique; no SQL identifier a user types
/// contains it.
const UNIQUE_MARK: char = '\u{1f}';

/// Gives the unaliased result columns of `query`, and of every query inside
/// it (a CTE, a derived table, a subquery), that DataFusion would name alike
/// unique aliases (see the module docs): in its first select, every
/// column but the first of a name (and in a set operation every computed
/// one); the other branches of a set operation take the first's names
/// (PostgreSQL takes names from the first).
pub fn make_names_unique(query: &mut Query) {
    struct EveryQuery;
    impl VisitorMut for EveryQuery {
        type Break = ();
        fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            unique_names(query);
            ControlFlow::Continue(())
        }
    }
    let _ = query.visit(&mut EveryQuery);
}

fn unique_names(query: &mut Query) {
    let is_set_operation = matches!(query.body.as_ref(), SetExpr::SetOperation { .. });
    let mut body = query.body.as_mut();
    let mut others = Vec::new();
    // The first select's column names as DataFusion sees them, which the
    // other branches take (`None` where a `*` hides them).
    let names: Option<Vec<Ident>> = loop {
        match body {
            SetExpr::Select(select) => {
                let mut seen = HashSet::new();
                for (position, item) in select.projection.iter_mut().enumerate() {
                    match item {
                        SelectItem::UnnamedExpr(expr)
                            if !seen.insert(datafusion_name(expr))
                                || is_set_operation && !is_column(expr) =>
                        {
                            let name = figure(expr).unwrap_or_else(|| column_name(expr));
                            *item = unique_alias(expr.clone(), &name, position);
                        }
                        // `SELECT 1 AS x, 2 AS x`: PostgreSQL names both x.
                        SelectItem::ExprWithAlias { expr, alias }
                            if !seen.insert(folded(alias)) =>
                        {
                            let name = folded(alias);
                            *item = unique_alias(expr.clone(), &name, position);
                        }
                        _ => {}
                    }
                }
                break select
                    .projection
                    .iter()
                    .map(|item| match item {
                        SelectItem::UnnamedExpr(expr) => {
                            Some(Ident::with_quote('"', column_name(expr)))
                        }
                        SelectItem::ExprWithAlias { alias, .. } => Some(alias.clone()),
                        _ => None,
                    })
                    .collect();
            }
            SetExpr::SetOperation { left, right, .. } => {
                others.push(right.as_mut());
                body = left.as_mut();
            }
            SetExpr::Query(inner) => body = inner.body.as_mut(),
            _ => break None,
        }
    };
    while let Some(other) = others.pop() {
        match other {
            SetExpr::Select(select) => {
                for (position, item) in select.projection.iter_mut().enumerate() {
                    let (SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. }) =
                        item
                    else {
                        continue;
                    };
                    // The first branch's name: a branch a plan drops (`LIMIT
                    // 0`) leaves the others' names to the result.
                    *item = match names.as_ref().and_then(|names| names.get(position)) {
                        Some(name) => SelectItem::ExprWithAlias {
                            expr: expr.clone(),
                            alias: name.clone(),
                        },
                        None => unique_alias(expr.clone(), "", position),
                    };
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                others.push(left.as_mut());
                others.push(right.as_mut());
            }
            SetExpr::Query(inner) => others.push(inner.body.as_mut()),
            _ => {}
        }
    }
}

/// Whether `expr` is a plain column reference (named after the column).
fn is_column(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
}

/// `expr` under an alias that DataFusion sees as unique and that
/// [`result_names`] reads back as `name`.
pub(crate) fn unique_alias(expr: Expr, name: &str, position: usize) -> SelectItem {
    SelectItem::ExprWithAlias {
        expr,
        alias: Ident::with_quote('"', format!("{name}{UNIQUE_MARK}{position}")),
    }
}

/// A key equal for expressions DataFusion names alike: casts are
/// transparent (at any depth: `round(2.5::float8)` is named as
/// `round(2.5)`), and a column is named without its qualifier.
fn datafusion_name(expr: &Expr) -> String {
    match expr {
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => datafusion_name(inner),
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => column_name(expr),
        // DataFusion names a subquery `<subquery>`, whatever it holds, and
        // `x = ANY (subquery)` as `x IN (subquery)`.
        Expr::Subquery(_) => "(<subquery>)".into(),
        Expr::Exists { negated, .. } => {
            format!("{}exists (<subquery>)", if *negated { "not " } else { "" })
        }
        Expr::InSubquery { expr, negated, .. } => format!(
            "{} {}in (<subquery>)",
            datafusion_name(expr),
            if *negated { "not " } else { "" }
        ),
        Expr::AnyOp {
            left,
            compare_op: datafusion::sql::sqlparser::ast::BinaryOperator::Eq,
            right,
            ..
        } if matches!(right.as_ref(), Expr::Subquery(_)) => {
            format!("{} in (<subquery>)", datafusion_name(left))
        }
        other => {
            let mut other = other.clone();
            let _ = visit_expressions_mut(&mut other, |e| {
                while let Expr::Nested(inner) | Expr::Cast { expr: inner, .. } = e {
                    let inner = (**inner).clone();
                    *e = inner;
                }
                ControlFlow::<()>::Continue(())
            });
            other.to_string().to_lowercase()
        }
    }
}

/// An identifier as PostgreSQL (and DataFusion) folds it: unquoted ones
/// to lower case.
pub(crate) fn folded(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// The parts of a dotted name as a statement writes it, each folded as
/// PostgreSQL folds identifiers (`Analytics."T"` is `analytics`, `T`).
pub(crate) fn folded_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|part| part.as_ident().map_or_else(|| part.to_string(), folded))
        .collect()
}

/// A relation's name as a statement writes it, folded as PostgreSQL
/// folds identifiers (`Analytics."T"` is `analytics.T`).
pub(crate) fn table_reference(name: &ObjectName) -> TableReference {
    match folded_parts(name).as_slice() {
        [table] => TableReference::bare(table.as_str()),
        [schema, table] => TableReference::partial(schema.as_str(), table.as_str()),
        [catalog, schema, table] => {
            TableReference::full(catalog.as_str(), schema.as_str(), table.as_str())
        }
        _ => TableReference::bare(name.to_string()),
    }
}

/// A role's name as PostgreSQL folds it (`CREATE ROLE Alice` makes
/// `alice`; `"Alice"` keeps its case).
pub(crate) fn role_name(name: &ObjectName) -> String {
    folded_parts(name).join(".")
}

/// The name of a column reference as DataFusion resolves it (unquoted
/// names fold to lower case), or `?column?`.
fn column_name(expr: &Expr) -> String {
    let ident = match expr {
        Expr::Identifier(ident) => Some(ident),
        Expr::CompoundIdentifier(parts) => parts.last(),
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => return column_name(inner),
        _ => None,
    };
    ident.map_or_else(|| "?column?".into(), folded)
}

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
                        SelectItem::ExprWithAlias { alias, .. } => Some(
                            alias
                                .value
                                .split_once(UNIQUE_MARK)
                                .map(|(name, _)| name.to_string()),
                        ),
                        SelectItem::ExprWithAliases { .. } => Some(None),
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

/// `schema` with the fields renamed by `names` (from [`result_names`]),
/// where they line up with the fields; a field not named there that has an
/// alias of [`make_names_unique`] (a column of a subquery, `SELECT * FROM
/// (SELECT a, a FROM t) s`) gets its PostgreSQL name back.
pub fn rename(schema: &Schema, names: Option<Vec<Option<String>>>) -> Schema {
    let names = names.filter(|n| n.len() == schema.fields().len());
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let name = match names.as_ref().and_then(|names| names[i].clone()) {
                Some(name) => name,
                None => match field.name().split_once(UNIQUE_MARK) {
                    Some((name, _)) => name.to_string(),
                    None => return field.as_ref().clone(),
                },
            };
            field.as_ref().clone().with_name(name)
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// `None` keeps DataFusion's name (plain column references: DataFusion has
/// already resolved their case and quoting).
fn figure(expr: &Expr) -> Option<String> {
    let name = match expr {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => return None,
        Expr::Nested(inner) => return figure(inner),
        Expr::Function(f)
            if let Some((source, type_name)) = crate::pg_semantics::sized_cast_source(f) =>
        {
            // A `CAST(x AS char(n))` as `crate::pg_semantics` wrote it:
            // named as the cast.
            match source {
                Expr::Identifier(ident) => folded(ident),
                Expr::CompoundIdentifier(parts) => {
                    parts.last().map_or_else(|| type_name.into(), folded)
                }
                Expr::Function(_) => return figure(source),
                _ => type_name.into(),
            }
        }
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
            // Named as the column (DataFusion drops a cast to the type the
            // column has, and names the column with its table then).
            Expr::Identifier(ident) => folded(ident),
            Expr::CompoundIdentifier(parts) => match parts.last() {
                Some(last) => folded(last),
                None => return None,
            },
            Expr::Function(_) => return figure(expr),
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
        "character" | "char" => "bpchar",
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
            // Named as the column, also where DataFusion drops the cast.
            Some("x"),
            Some("case"),
            Some("upper"),
        ];
        assert_eq!(
            got,
            Some(want.iter().map(|n| n.map(str::to_string)).collect())
        );
    }

    #[test]
    fn columns_named_alike_get_unique_aliases_and_keep_their_names() {
        let mut statements = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT a, t.a, CAST(a AS text), b, count(*), count(*) FROM t UNION SELECT x, x, x, x, x, x FROM u",
        )
        .expect("parses");
        let Statement::Query(query) = &mut statements[0] else {
            panic!("a query")
        };
        make_names_unique(query);
        assert_eq!(
            query.to_string(),
            "SELECT a, t.a AS \"a\u{1f}1\", CAST(a AS TEXT) AS \"a\u{1f}2\", b, \
             count(*) AS \"count\u{1f}4\", count(*) AS \"count\u{1f}5\" FROM t UNION SELECT \
             x AS \"a\", x AS \"a\u{1f}1\", x AS \"a\u{1f}2\", x AS \"b\", \
             x AS \"count\u{1f}4\", x AS \"count\u{1f}5\" FROM u"
        );
        let want = [
            None,
            Some("a"),
            Some("a"),
            None,
            Some("count"),
            Some("count"),
        ];
        assert_eq!(
            result_names(query),
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
