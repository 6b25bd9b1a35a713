//! Quiver's own rewrites of PostgreSQL syntax DataFusion does not plan,
//! after `datafusion-pg-catalog`'s (see [`crate::parse`]).
//!
//! - `ARRAY(SELECT e FROM ... [ORDER BY ...])` — an array of a subquery's
//!   rows, which psql's `\du` uses — becomes the scalar subquery
//!   `(SELECT array_agg(e [ORDER BY ...]) FROM ...)`. (An empty subquery
//!   gives NULL rather than PostgreSQL's empty array.)
//! - `generate_subscripts(a, d)` — the subscripts of an array, a set
//!   returning function SQLAlchemy's key reflection uses — becomes
//!   `unnest(generate_series(1, array_length(a, d)))`.
//! - `x = ANY (subquery)` becomes `x IN (subquery)`, `x <> ALL (subquery)`
//!   `x NOT IN (subquery)` (the compatibility parser took `ANY` for one of
//!   an array), in [`shield_subqueries`].
//! - A subquery in the select list of a user query is shielded from the
//!   compatibility parser's rules ([`shield_subqueries`]), one of which
//!   would replace it with NULL whenever it is correlated: `SELECT a,
//!   (SELECT max(b) FROM u WHERE u.k = t.k) FROM t` would silently answer
//!   NULL. DataFusion plans such subqueries itself (see [`crate::subquery`]).
//!   Queries of the system catalogs keep the rule: clients' catalog queries
//!   have correlated subqueries DataFusion cannot decorrelate (psql's `\d`
//!   compares a collation with `<>`), and a NULL there only leaves out a
//!   detail Quiver does not have (a column default, a collation).
//! - `information_schema._pg_expandarray(a)` — the elements of an array
//!   with their positions, records `(x, n)`, as a set-returning function
//!   pgjdbc's `getPrimaryKeys` and `getIndexInfo` call — becomes
//!   `unnest(_pg_expandarray(a))` (a list of such records, see
//!   [`crate::pg_functions`]), and `(record).field` becomes
//!   `record['field']`, as DataFusion reads a field of a struct.
//! - `pg_settings` becomes a query of Quiver's list of parameters with the
//!   session's value of each (`current_setting`).
//! - `generate_series(...)` and `unnest(a)` in FROM get a column alias:
//!   their table alias, or their own name without one, as PostgreSQL names
//!   the column of a function returning a scalar.
//! - `ARRAY(SELECT ... FROM pg_policy ...)` (psql's `\dp`) becomes NULL:
//!   Quiver has no row security policies.
//! - `DELETE FROM t USING u, ... WHERE c` becomes `DELETE FROM t WHERE
//!   EXISTS (SELECT 1 FROM u, ... WHERE c)`: DataFusion plans no `USING`.
//!   `DELETE FROM t AS x` loses its alias, which DataFusion ignores: `x.a`
//!   becomes `t.a` (in subqueries too, where an alias `x` of their own would
//!   be taken for the table's).
//! - `TRUNCATE` loses `RESTART`/`CONTINUE IDENTITY` and `ONLY`: Quiver has
//!   no identity columns or inheritance for them to be about.
//! - In a query of the system catalogs, `typreceive != 0` (a `regproc`
//!   column compared with the OID 0: no function) becomes `typreceive <>
//!   '-'`: the catalogs hold such columns as the text PostgreSQL prints,
//!   `-` for none (ADBC's PostgreSQL driver asks so at connection); its
//!   cast to `oid` is NULL (pg_dump reads `oprcode::oid`), and
//!   `pg_options_to_table(...)` a table of no rows (Quiver's objects have
//!   no options).
//! - In a query of the system catalogs, a correlated scalar subquery over a
//!   recursive CTE becomes NULL: DataFusion cannot decorrelate a recursive
//!   query, and the one clients send (asyncpg's type introspection) walks a
//!   domain's base types, which Quiver does not have. So does one over
//!   `pg_partition_ancestors(...)` (psql's `\d` of a table with triggers):
//!   Quiver has no partitions.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, DataType, Expr, FromTable, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, Statement,
    Subscript, TableAlias, TableAliasColumnDef, TableFactor, Value, Visit, VisitMut, Visitor,
    VisitorMut, visit_expressions, visit_expressions_mut, visit_relations,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Applies Quiver's rewrites to `statement`.
pub(crate) fn rewrite(statement: &mut Statement) {
    delete_using(statement);
    crate::update_from::rewrite_update_from(statement);
    if let Statement::Truncate(truncate) = statement {
        // Quiver has no identity columns or inheritance for these to be
        // about (`CASCADE` is the session's: see `Session::truncate_tables`).
        truncate.identity = None;
        for target in &mut truncate.table_names {
            target.only = false;
        }
    }
    let _ = statement.visit(&mut PostgresForms);
    let _ = statement.visit(&mut RegclassAlongSearchPath);
    let _ = statement.visit(&mut SelectListSubqueries::Unshield);
    if reads_system_catalog(statement) {
        let _ = statement.visit(&mut CorrelatedRecursiveSubqueries);
        let _ = statement.visit(&mut NothingToCompute);
        let _ = statement.visit(&mut CatalogForms);
    }
    // Merged columns first: `ROLLUP (c, l.c)` repeats a key once `c` is
    // `l.c`, which PostgreSQL's forms then spell out.
    crate::using_joins::merge_using_joins(statement);
    crate::pg_semantics::rewrite(statement);
    if let Statement::Query(query) = statement {
        crate::names::make_names_unique(query);
    }
}

/// `DELETE ... USING u WHERE c` as `DELETE ... WHERE EXISTS (SELECT 1 FROM
/// u WHERE c)`, and `DELETE FROM t AS x` as `DELETE FROM t` (see the module
/// docs).
fn delete_using(statement: &mut Statement) {
    let Statement::Delete(delete) = statement else {
        return;
    };
    let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &mut delete.from;
    if let [target] = from.as_mut_slice()
        && let TableFactor::Table { name, alias, .. } = &mut target.relation
        && let Some(TableAlias {
            name: alias,
            columns,
            ..
        }) = alias.take()
    {
        let table = name.0.last().and_then(|part| part.as_ident()).cloned();
        if let (Some(table), true) = (table, columns.is_empty()) {
            let mut requalify = |expr: &mut Expr| {
                if let Expr::CompoundIdentifier(parts) = expr
                    && let [qualifier, _] = parts.as_mut_slice()
                    && qualifier.value == alias.value
                {
                    *qualifier = table.clone();
                }
                ControlFlow::<()>::Continue(())
            };
            let _ = visit_expressions_mut(&mut delete.selection, &mut requalify);
            let _ = visit_expressions_mut(&mut delete.using, &mut requalify);
        }
    }
    let Some(using) = delete.using.take() else {
        return;
    };
    let from = using
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let filter = match &delete.selection {
        Some(selection) => format!(" WHERE {selection}"),
        None => String::new(),
    };
    match parse_expr(&format!("EXISTS (SELECT 1 FROM {from}{filter})")) {
        Some(exists) => delete.selection = Some(exists),
        // Left for DataFusion to refuse.
        None => delete.using = Some(using),
    }
}

/// The `regproc` columns of the system catalogs: a function, by name.
const REGPROC_COLUMNS: &[&str] = &[
    "typinput",
    "typoutput",
    "typreceive",
    "typsend",
    "typmodin",
    "typmodout",
    "typanalyze",
    "typsubscript",
    "aggtransfn",
    "aggfinalfn",
    "oprcode",
];

/// `e` if it is a text literal of an array (`'{}'`, `'{0}'`), as an array.
fn array_literal(e: &Expr) -> Option<Expr> {
    let Expr::Value(value) = e else {
        return None;
    };
    let Value::SingleQuotedString(text) = &value.value else {
        return None;
    };
    let items = text.strip_prefix('{')?.strip_suffix('}')?;
    if items.is_empty() {
        // The empty ACL (of `aclitem[]`, which Quiver holds as text).
        return parse_expr("acldefault('-', 0)");
    }
    let numbers = items
        .split(',')
        .all(|item| item.trim().parse::<i64>().is_ok());
    numbers.then(|| parse_expr(&format!("make_array({items})")))?
}

/// Whether `e` calls the function `name`.
fn is_call(e: &Expr, name: &str) -> bool {
    matches!(e, Expr::Function(f) if f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| i.value.eq_ignore_ascii_case(name)))
}

/// Whether `e` is a column named one of `names` (lower case), qualified or
/// not.
fn is_column_among(e: &Expr, names: &[&str]) -> bool {
    let name = match e {
        Expr::Identifier(ident) => ident,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(last) => last,
            None => return false,
        },
        _ => return false,
    };
    names.contains(&name.value.to_ascii_lowercase().as_str())
}

/// Whether `e` is one of `pg_proc`'s vectors of type oids.
fn oid_vector_column(e: &Expr) -> bool {
    is_column_among(e, &["proargtypes", "proallargtypes"])
}

/// Whether `e` is a `regproc` column.
fn regproc_column(e: &Expr) -> bool {
    is_column_among(e, REGPROC_COLUMNS)
}

/// Compares `regproc` columns with `'-'` where a query compares them with
/// the OID 0, and takes their cast to `oid` as NULL (see the module docs);
/// `pg_options_to_table(...)` is a table of no rows.
struct CatalogForms;

impl VisitorMut for CatalogForms {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        regclass_columns_as_names(&mut query.body);
        name_constraint_definitions(&mut query.body);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        // Catalog tables the compatibility parser does not know are in
        // `pg_catalog` (which PostgreSQL searches first).
        if let TableFactor::Table {
            name, args: None, ..
        } = factor
            && let [ObjectNamePart::Identifier(table)] = name.0.as_slice()
            && crate::pg_catalog::MISSING_TABLES.contains(&table.value.as_str())
        {
            name.0
                .insert(0, ObjectNamePart::Identifier(Ident::new("pg_catalog")));
        }
        // DataFusion's `generate_series` takes constants only: bounds
        // computed from a row's columns are the catalogs' vectors, NULL in
        // Quiver (pg_dump: `generate_series(0, array_upper(prattrs, 1))`).
        if let TableFactor::Table {
            name,
            args: Some(args),
            ..
        } = factor
            && name
                .0
                .last()
                .and_then(|part| part.as_ident())
                .is_some_and(|ident| ident.value.eq_ignore_ascii_case("generate_series"))
        {
            for arg in &mut args.args {
                if let FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) = arg
                    && reads_columns(expr)
                {
                    *expr = Expr::Value(Value::Null.into());
                }
            }
        }
        // Quiver's objects have no options: `pg_options_to_table(...)`, and
        // `unnest` of an options column (psql's `\d+`: `unnest(tc.reloptions)
        // x`), are tables of no rows.
        let no_options = match factor {
            TableFactor::Table {
                name,
                args: Some(args),
                alias,
                ..
            } => {
                let function = name.0.last().and_then(|part| part.as_ident());
                let function = function.map(|ident| ident.value.to_ascii_lowercase());
                let of_options = matches!(args.args.as_slice(),
                    [FunctionArg::Unnamed(FunctionArgExpr::Expr(
                        Expr::Identifier(column),
                    ))] if column.value.ends_with("options"))
                    || matches!(args.args.as_slice(),
                    [FunctionArg::Unnamed(FunctionArgExpr::Expr(
                        Expr::CompoundIdentifier(parts),
                    ))] if parts.last().is_some_and(|column| column.value.ends_with("options")));
                match function.as_deref() {
                    Some("pg_options_to_table") => Some(
                        "SELECT CAST(NULL AS text) AS option_name, \
                         CAST(NULL AS text) AS option_value WHERE false"
                            .to_string(),
                    ),
                    Some("unnest") if of_options => {
                        let column = alias
                            .as_ref()
                            .map(|alias| match alias.columns.first() {
                                Some(column) => column.name.to_string(),
                                None => alias.name.to_string(),
                            })
                            .unwrap_or_else(|| "unnest".to_string());
                        Some(format!("SELECT CAST(NULL AS text) AS {column} WHERE false"))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(empty) = no_options
            && let TableFactor::Table { alias, .. } = factor
            && let Some(subquery) = parse_query(&empty)
        {
            *factor = TableFactor::Derived {
                lateral: false,
                subquery: Box::new(subquery),
                alias: alias.take(),
                sample: None,
            };
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        // `pg_get_constraintdef(oid [, pretty])` is told the session's search
        // path, which says where a referenced table's name is written bare.
        if let Expr::Function(call) = expr
            && is_constraint_definition(call)
            && let FunctionArguments::List(list) = &mut call.args
            && list.args.len() < 3
        {
            if list.args.len() == 1 {
                list.args
                    .push(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(
                        Value::Boolean(false).into(),
                    ))));
            }
            if let Some(path) = parse_expr("current_setting('search_path')") {
                list.args
                    .push(FunctionArg::Unnamed(FunctionArgExpr::Expr(path)));
            }
            return ControlFlow::Continue(());
        }
        // `typname[0]`: a `name`'s first character.
        if let Expr::CompoundFieldAccess { root, access_chain } = expr
            && let [AccessExpr::Subscript(Subscript::Index { index })] = access_chain.as_slice()
            && matches!(index, Expr::Value(v) if v.value == Value::Number("0".into(), false))
            && matches!(root.as_ref(), Expr::Identifier(i) if i.value == "typname")
            && let Some(first) = parse_expr(&format!("substr({root}, 1, 1)"))
        {
            *expr = first;
            return ControlFlow::Continue(());
        }
        // An array written as text beside an array: `polroles = '{0}'`,
        // `CASE ... THEN acldefault(...) ELSE '{}' END`.
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = expr
            && matches!(
                left.as_ref(),
                Expr::Identifier(_) | Expr::CompoundIdentifier(_)
            )
            && let Some(array) = array_literal(right)
        {
            **right = array;
        }
        if let Expr::Case {
            conditions,
            else_result: Some(else_result),
            ..
        } = expr
            && conditions
                .iter()
                .any(|when| is_call(&when.result, "acldefault"))
            && let Some(array) = array_literal(else_result)
        {
            **else_result = array;
        }
        // `pg_proc`'s vectors of type oids (text here) as arrays: pgcli's
        // `COALESCE(proallargtypes::regtype[], proargtypes::regtype[])`.
        if let Expr::Cast {
            expr: inner,
            data_type: DataType::Array(_),
            ..
        } = expr
            && oid_vector_column(inner)
            && let Some(vector) = parse_expr(&format!("quiver_oid_vector({inner})"))
        {
            *expr = vector;
            return ControlFlow::Continue(());
        }
        // A function named in a catalog, as its oid: none.
        if let Expr::Cast {
            expr: inner,
            data_type: DataType::Custom(type_name, _),
            ..
        } = expr
            && regproc_column(inner)
            && type_name
                .0
                .last()
                .and_then(|part| part.as_ident())
                .is_some_and(|ident| ident.value.eq_ignore_ascii_case("oid"))
        {
            **inner = Expr::Value(Value::Null.into());
            return ControlFlow::Continue(());
        }
        let Expr::BinaryOp { left, op, right } = expr else {
            return ControlFlow::Continue(());
        };
        if !matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq) {
            return ControlFlow::Continue(());
        }
        let regproc = regproc_column;
        let zero =
            |e: &Expr| matches!(e, Expr::Value(v) if v.value == Value::Number("0".into(), false));
        let none = Expr::Value(Value::SingleQuotedString("-".into()).into());
        if regproc(left) && zero(right) {
            **right = none;
        } else if zero(left) && regproc(right) {
            **left = none;
        }
        ControlFlow::Continue(())
    }
}

/// How the compatibility parser writes `'name'::regclass`: a query of
/// `pg_class` (see [`RegclassAlongSearchPath`]).
const REGCLASS_LOOKUP: &str = "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid CROSS JOIN (SELECT parse_ident(";

/// The rest of that query, after the name.
const REGCLASS_LOOKUP_END: &str = "::TEXT) AS parts) WHERE array_length(parts, 1) IN (1, 2) AND ((array_length(parts, 1) = 1 AND n.nspname = current_schema() AND c.relname = parts[1]) OR (array_length(parts, 1) = 2 AND n.nspname = parts[1] AND c.relname = parts[2]))";

/// The function a `'name'::regclass` lookup is wrapped in: the OID found,
/// or `42P01` for a name that names no relation (see
/// [`crate::pg_functions`]).
pub(crate) const REGCLASS_FOUND: &str = "quiver_regclass_found";

/// `expr` with each `'name'::regclass` (as written, or as the compatibility
/// parser rewrote it) the name it casts: what a column `DEFAULT` keeps
/// (`nextval('s'::regclass)`, as pg_dump writes it, is `nextval('s')`,
/// whose sequence is found when the default is used).
pub(crate) fn regclass_as_text(expr: &mut Expr) {
    let _ = visit_expressions_mut(expr, |e: &mut Expr| {
        let found = is_call(e, REGCLASS_FOUND);
        let name = match e {
            Expr::Subquery(query) => regclass_argument(query),
            Expr::Function(call) if found => match &call.args {
                FunctionArguments::List(list) => match list.args.get(1) {
                    Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(name))) => Some(name.clone()),
                    _ => None,
                },
                _ => None,
            },
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } if is_regclass(data_type) => Some(inner.as_ref().clone()),
            _ => None,
        };
        if let Some(name) = name {
            *e = name;
        }
        ControlFlow::<()>::Continue(())
    });
}

fn is_regclass(data_type: &DataType) -> bool {
    match data_type {
        DataType::Regclass => true,
        DataType::Custom(name, args) => {
            args.is_empty()
                && name
                    .0
                    .last()
                    .and_then(|part| part.as_ident())
                    .is_some_and(|ident| ident.value.eq_ignore_ascii_case("regclass"))
        }
        _ => false,
    }
}

/// The name a regclass lookup (see [`REGCLASS_LOOKUP`]) looks up.
fn regclass_argument(query: &Query) -> Option<Expr> {
    let text = query.to_string();
    let rest = text.strip_prefix(REGCLASS_LOOKUP)?;
    let end = rest.find("::TEXT) AS parts)")?;
    parse_expr(&rest[..end])
}

/// The compatibility parser finds an unqualified `'name'::regclass` in
/// `current_schema()` only; PostgreSQL looks along the search path, with
/// `pg_catalog` first (pg_dump, whose search path is empty, writes
/// `'pg_class'::regclass`). Its lookup is made to take the first schema of
/// `current_schemas(true)` that has the relation, and a name it does not
/// find is an error, as in PostgreSQL ([`REGCLASS_FOUND`]; it was NULL).
/// `to_regclass(name)` is the same lookup, NULL where nothing is found.
struct RegclassAlongSearchPath;

impl VisitorMut for RegclassAlongSearchPath {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(name) = to_regclass_argument(expr) {
            let lookup = format!("{REGCLASS_LOOKUP}{name}{REGCLASS_LOOKUP_END}");
            if let Some(query) = parse_query(&lookup).and_then(|q| along_search_path(&q)) {
                *expr = Expr::Subquery(Box::new(query));
            }
            return ControlFlow::Continue(());
        }
        let Expr::Subquery(query) = expr else {
            return ControlFlow::Continue(());
        };
        let (Some(rewritten), Some(name)) = (along_search_path(query), regclass_argument(query))
        else {
            return ControlFlow::Continue(());
        };
        let lookup = Expr::Subquery(Box::new(rewritten));
        if let Some(found) = parse_expr(&format!("{REGCLASS_FOUND}({lookup}, {name})")) {
            *expr = found;
        }
        ControlFlow::Continue(())
    }
}

/// The compatibility parser's `regclass` lookup `query`, made to look along
/// the search path; `None` for any other query (and one already made so).
fn along_search_path(query: &Query) -> Option<Query> {
    let text = query.to_string();
    if !text.starts_with(REGCLASS_LOOKUP) || text.contains("current_schemas(true)") {
        return None;
    }
    // The compatibility parser ends a lookup in a select list with `LIMIT 1`.
    let text = text.strip_suffix(" LIMIT 1").unwrap_or(&text);
    let along_path = text.replace(
        "n.nspname = current_schema()",
        "array_has(current_schemas(true), n.nspname)",
    );
    parse_query(&format!(
        "{along_path} ORDER BY array_position(current_schemas(true), n.nspname) LIMIT 1"
    ))
}

/// The argument of `to_regclass(argument)`, if `e` is such a call with a
/// constant or parameter argument.
fn to_regclass_argument(e: &Expr) -> Option<&Expr> {
    let Expr::Function(call) = e else {
        return None;
    };
    if !is_call(e, "to_regclass") {
        return None;
    }
    let FunctionArguments::List(list) = &call.args else {
        return None;
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(argument @ Expr::Value(_)))] => Some(argument),
        _ => None,
    }
}

/// Catalog tables that are always empty in Quiver, which has no event
/// triggers, row security policies or publications.
const EMPTY_CATALOGS: [&str; 3] = ["pg_event_trigger", "pg_policy", "pg_publication_rel"];

/// Replaces the subqueries in the select list of a query of one of
/// [`EMPTY_CATALOGS`] with NULL: there is no row to compute them for, and
/// DataFusion cannot plan those clients send, which unnest a column of the
/// outer row (pg_dump's `array(select quote_literal(x) from unnest(evttags))`).
struct NothingToCompute;

impl VisitorMut for NothingToCompute {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let empty = |factor: &TableFactor| {
            matches!(factor, TableFactor::Table { name, .. }
                if name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| EMPTY_CATALOGS.contains(&i.value.as_str())))
        };
        let reads_empty = select.from.iter().any(|from| {
            empty(&from.relation) || from.joins.iter().any(|join| empty(&join.relation))
        });
        if !reads_empty {
            return ControlFlow::Continue(());
        }
        for item in &mut select.projection {
            let (SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. }) = item
            else {
                continue;
            };
            let _ = visit_expressions_mut(expr, |e: &mut Expr| {
                if matches!(e, Expr::Subquery(_) | Expr::Function(_) if has_subquery(e)) {
                    *e = Expr::Value(Value::Null.into());
                }
                ControlFlow::<()>::Continue(())
            });
        }
        ControlFlow::Continue(())
    }
}

/// Whether `e` reads a column (of a row, not a constant).
fn reads_columns(e: &Expr) -> bool {
    visit_expressions(e, |e: &Expr| match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// Whether `e` is or holds a subquery.
fn has_subquery(e: &Expr) -> bool {
    visit_expressions(e, |e: &Expr| match e {
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// Replaces each correlated scalar subquery over a recursive CTE with NULL
/// (of type `oid`, which is what the one clients send returns).
struct CorrelatedRecursiveSubqueries;

impl VisitorMut for CorrelatedRecursiveSubqueries {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Subquery(query) = expr
            && (query.with.as_ref().is_some_and(|with| with.recursive)
                || reads_partition_ancestors(query))
            && is_correlated(query)
            && let Some(null) = parse_expr("CAST(NULL AS oid)")
        {
            *expr = null;
        }
        ControlFlow::Continue(())
    }
}

/// In the select lists of `body`, each column `x::regclass AS name` (psql's
/// `\d`: `conrelid::pg_catalog.regclass AS ontable`) as the relation's
/// name, as PostgreSQL prints a `regclass`: `quiver_regclass_name(x)`.
/// (Quiver sends an OID column as a number.)
fn regclass_columns_as_names(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for item in &mut select.projection {
                // Named: a column it would be named after may be read
                // beside it (`ORDER BY c.oid::regclass::text`).
                let SelectItem::ExprWithAlias { expr, alias } = item else {
                    continue;
                };
                let Expr::Cast {
                    expr: inner,
                    data_type,
                    ..
                } = expr
                else {
                    continue;
                };
                if !is_regclass(data_type) || matches!(inner.as_ref(), Expr::Value(_)) {
                    continue;
                }
                if let Some(call) = parse_expr(&format!("quiver_regclass_name({inner})")) {
                    *item = SelectItem::ExprWithAlias {
                        expr: call,
                        alias: alias.clone(),
                    };
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            regclass_columns_as_names(left);
            regclass_columns_as_names(right);
        }
        _ => {}
    }
}

/// Whether `call` is of `pg_get_constraintdef`.
fn is_constraint_definition(call: &datafusion::sql::sqlparser::ast::Function) -> bool {
    call.name
        .0
        .last()
        .and_then(|part| part.as_ident())
        .is_some_and(|ident| ident.value.eq_ignore_ascii_case("pg_get_constraintdef"))
}

/// In the select lists of `body`, an unnamed `pg_get_constraintdef(...)`
/// named so, as PostgreSQL names it: a third argument is added to it
/// (see `CatalogForms`), which would show in the name DataFusion gives it.
fn name_constraint_definitions(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(Expr::Function(call)) = item
                    && is_constraint_definition(call)
                {
                    *item = SelectItem::ExprWithAlias {
                        expr: Expr::Function(call.clone()),
                        alias: Ident::new("pg_get_constraintdef"),
                    };
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            name_constraint_definitions(left);
            name_constraint_definitions(right);
        }
        _ => {}
    }
}

/// Whether `query` reads `pg_partition_ancestors(...)` as a table: psql's
/// `\d` asks so for the partition a trigger is inherited from, of a
/// table with triggers (one with foreign keys: see `crate::pg_relations`).
/// Quiver has no partitions.
fn reads_partition_ancestors(query: &Query) -> bool {
    struct Finds;
    impl Visitor for Finds {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            match factor {
                TableFactor::Function { name, .. } | TableFactor::Table { name, .. }
                    if name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| {
                        i.value.eq_ignore_ascii_case("pg_partition_ancestors")
                    }) =>
                {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    query.visit(&mut Finds).is_break()
}

/// Whether `query` names a column by a qualifier (`t.oid`) that none of its
/// own relations, aliases or CTEs answers to: a column of an outer query.
fn is_correlated(query: &Query) -> bool {
    struct Names(HashSet<String>);
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            let alias = match factor {
                TableFactor::Table { name, alias, .. } => {
                    if let Some(last) = name.0.last().and_then(|part| part.as_ident()) {
                        self.0.insert(last.value.to_ascii_lowercase());
                    }
                    alias
                }
                TableFactor::Derived { alias, .. } | TableFactor::Function { alias, .. } => alias,
                _ => &None,
            };
            if let Some(alias) = alias {
                self.0.insert(alias.name.value.to_ascii_lowercase());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            for cte in query.with.iter().flat_map(|with| &with.cte_tables) {
                self.0.insert(cte.alias.name.value.to_ascii_lowercase());
            }
            ControlFlow::Continue(())
        }
    }
    struct Outer<'a>(&'a HashSet<String>);
    impl Visitor for Outer<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::CompoundIdentifier(parts)
                    if parts.len() > 1
                        && !self.0.contains(&parts[0].value.to_ascii_lowercase()) =>
                {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    let mut names = Names(HashSet::new());
    let _ = query.visit(&mut names);
    query.visit(&mut Outer(&names.0)).is_break()
}

/// Wraps each subquery of a user query's select list in parentheses, which
/// the compatibility parser's `RemoveSubqueryFromProjection` does not look
/// through ([`rewrite`] takes them off again); and turns `= ANY` and `<>
/// ALL` of a subquery into `IN`, before the compatibility parser reads them
/// as of an array (`array_has`).
pub(crate) fn shield_subqueries(statement: &mut Statement) {
    if !reads_system_catalog(statement) {
        let _ = statement.visit(&mut SelectListSubqueries::Shield);
        let _ = visit_expressions_mut(statement, |expr| {
            if let Some(membership) = subquery_membership(expr) {
                *expr = membership;
            }
            ControlFlow::<()>::Continue(())
        });
    }
}

/// Replaces each correlated subquery that reads a column's default from
/// `pg_attrdef` — psql's `\d`: `(SELECT pg_get_expr(d.adbin, d.adrelid,
/// true) FROM pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum =
/// a.attnum AND a.atthasdef)` — with `quiver_column_default(a.attrelid,
/// a.attnum)` (see `crate::pg_relations`). The compatibility parser would
/// replace the subquery with NULL, as it does every subquery of a catalog
/// query's select list; so this comes before it (see `crate::parse`).
pub(crate) fn column_defaults(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Subquery(query) = expr
            && let Some(call) = column_default_call(query)
        {
            *expr = call;
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Whether [`column_defaults`] changes `statement`.
pub(crate) fn reads_column_defaults(statement: &Statement) -> bool {
    visit_expressions(statement, |expr| match expr {
        Expr::Subquery(query) if column_default_call(query).is_some() => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// `quiver_column_default(relid, attnum)` for `query` if it reads the
/// default of the column `attnum` of the relation `relid` (its outer
/// query's) from `pg_attrdef` (see [`column_defaults`]).
fn column_default_call(query: &Query) -> Option<Expr> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let [
        SelectItem::UnnamedExpr(projected)
        | SelectItem::ExprWithAlias {
            expr: projected, ..
        },
    ] = select.projection.as_slice()
    else {
        return None;
    };
    let [from] = select.from.as_slice() else {
        return None;
    };
    let TableFactor::Table { name, alias, .. } = &from.relation else {
        return None;
    };
    let table = name.0.last().and_then(|part| part.as_ident())?;
    if !is_call(projected, "pg_get_expr")
        || !from.joins.is_empty()
        || !table.value.eq_ignore_ascii_case("pg_attrdef")
    {
        return None;
    }
    let qualifier = alias
        .as_ref()
        .map_or(&table.value, |alias| &alias.name.value);
    // The attrdef column `column` on one side of `a = b`, the other side.
    let other_side = |condition: &Expr, column: &str| -> Option<Expr> {
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = condition
        else {
            return None;
        };
        let is_column = |e: &Expr| match e {
            Expr::CompoundIdentifier(parts) => {
                matches!(parts.as_slice(), [q, c] if q.value == *qualifier && c.value == column)
            }
            Expr::Identifier(c) => c.value == column,
            _ => false,
        };
        match (is_column(left), is_column(right)) {
            (true, false) => Some(right.as_ref().clone()),
            (false, true) => Some(left.as_ref().clone()),
            _ => None,
        }
    };
    let conditions = conjuncts(select.selection.as_ref()?);
    let relation = conditions.iter().find_map(|c| other_side(c, "adrelid"))?;
    let attnum = conditions.iter().find_map(|c| other_side(c, "adnum"))?;
    parse_expr(&format!("quiver_column_default({relation}, {attnum})"))
}

/// The terms of `e`, a conjunction.
fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut terms = conjuncts(left);
            terms.extend(conjuncts(right));
            terms
        }
        Expr::Nested(inner) => conjuncts(inner),
        other => vec![other],
    }
}

/// Whether `statement` is a user query that [`shield_subqueries`] changes.
pub(crate) fn needs_shielding(statement: &Statement) -> bool {
    !reads_system_catalog(statement)
        && (statement.visit(&mut FindSelectListSubquery).is_break()
            || visit_expressions(statement, |expr| match subquery_membership(expr) {
                Some(_) => ControlFlow::Break(()),
                None => ControlFlow::Continue(()),
            })
            .is_break())
}

/// Whether `query` reads `pg_policy`.
fn reads_policies(query: &Query) -> bool {
    visit_relations(query, |name| {
        let last = name.0.last().and_then(|part| part.as_ident());
        if last.is_some_and(|ident| ident.value.eq_ignore_ascii_case("pg_policy")) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

/// Whether `statement` reads `pg_catalog` or `information_schema` (by
/// qualified name, or a `pg_` table by its bare name, as clients write).
fn reads_system_catalog(statement: &Statement) -> bool {
    visit_relations(statement, |name| {
        let first = name.0.first().and_then(|part| part.as_ident());
        let system = first.is_some_and(|ident| {
            let ident = ident.value.to_ascii_lowercase();
            ident == "pg_catalog"
                || ident == "information_schema"
                || (name.0.len() == 1 && ident.starts_with("pg_"))
        });
        if system {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

/// The expressions of `query`'s select list, when its body is a `SELECT`:
/// what the compatibility parser's rule looks at.
fn select_list(query: &Query) -> impl Iterator<Item = &Expr> {
    let items = match query.body.as_ref() {
        SetExpr::Select(select) => &select.projection[..],
        _ => &[],
    };
    items.iter().filter_map(|item| match item {
        SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => Some(expr),
        _ => None,
    })
}

struct FindSelectListSubquery;

impl Visitor for FindSelectListSubquery {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if select_list(query).any(|expr| matches!(expr, Expr::Subquery(_))) {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// Shields or unshields the subqueries of select lists.
enum SelectListSubqueries {
    Shield,
    Unshield,
}

impl VisitorMut for SelectListSubqueries {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        for item in &mut select.projection {
            let (SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. }) = item
            else {
                continue;
            };
            match (&*self, &*expr) {
                (Self::Shield, Expr::Subquery(_)) => {
                    let subquery = std::mem::replace(expr, Expr::value(Value::Null));
                    *expr = Expr::Nested(Box::new(subquery));
                }
                (Self::Unshield, Expr::Nested(inner)) if matches!(**inner, Expr::Subquery(_)) => {
                    let Expr::Nested(inner) = std::mem::replace(expr, Expr::value(Value::Null))
                    else {
                        unreachable!("matched above");
                    };
                    *expr = *inner;
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }
}

/// Function calls PostgreSQL has and DataFusion does not, in forms it has.
struct PostgresForms;

impl VisitorMut for PostgresForms {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        // DataFusion's information_schema has no table_privileges, and its
        // columns has Arrow's type names; datafusion-pg-catalog's pg_tables
        // and pg_views do not tell views from tables: Quiver serves these
        // among its system tables (see `crate::info_schema`).
        let served = |schema: Option<&String>, table: &String| match schema.map(String::as_str) {
            Some("information_schema") => {
                table == "table_privileges" || crate::info_schema::TABLES.contains(&table.as_str())
            }
            Some("pg_catalog") | None => {
                crate::info_schema::PG_CATALOG_TABLES.contains(&table.as_str())
            }
            Some(_) => false,
        };
        if let Some(parts) = folded_name(relation)
            && let Some((table, path)) = parts.split_last()
            && served(path.last(), table)
        {
            *relation = ObjectName::from(vec![
                Ident::new(crate::server::SYSTEM_SCHEMA),
                Ident::new(table),
            ]);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        // `pg_settings` with the session's own values.
        if let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
            && is_pg_settings(name)
            && let Some(subquery) = parse_query(&settings_query())
        {
            *factor = derived(alias.take(), subquery, "pg_settings");
            return ControlFlow::Continue(());
        }
        // A set-returning function of one column in FROM names its column
        // after its alias, or after itself without one, as PostgreSQL names
        // the column of a function returning a scalar type: `FROM
        // generate_series(1, 3) g` has a column `g`, `FROM unnest(a)` one
        // named `unnest` (DataFusion's are `value` and an internal name).
        let (alias, function) = match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                alias,
                ..
            } if name
                .0
                .last()
                .and_then(|part| part.as_ident())
                .is_some_and(|f| f.value.eq_ignore_ascii_case("generate_series")) =>
            {
                (alias, "generate_series")
            }
            TableFactor::UNNEST {
                alias,
                array_exprs,
                with_offset: false,
                with_ordinality: false,
                ..
            } if array_exprs.len() == 1 => (alias, "unnest"),
            _ => return ControlFlow::Continue(()),
        };
        let alias = alias.get_or_insert_with(|| TableAlias {
            explicit: true,
            name: Ident::new(function),
            columns: vec![],
            at: None,
        });
        if alias.columns.is_empty() {
            alias.columns = vec![TableAliasColumnDef {
                name: alias.name.clone(),
                data_type: None,
            }];
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        // `user` and `current_role` are reserved words that name functions,
        // like `current_user` (which sqlparser parses as one already).
        if let Expr::Identifier(ident) = expr
            && ident.quote_style.is_none()
            && ["user", "current_role"].contains(&ident.value.to_ascii_lowercase().as_str())
            && let Some(call) = parse_expr(&format!("{}()", ident.value.to_ascii_lowercase()))
        {
            *expr = call;
            return ControlFlow::Continue(());
        }
        // `(record).field`: a field of a composite value, which DataFusion
        // reads as `record['field']`.
        if let Expr::CompoundFieldAccess { root, access_chain } = expr
            && matches!(root.as_ref(), Expr::Nested(_))
        {
            for access in access_chain.iter_mut() {
                if let AccessExpr::Dot(Expr::Identifier(field)) = access
                    && let Some(index) = parse_expr(&format!(
                        "'{}'",
                        crate::names::folded(field).replace('\'', "''")
                    ))
                {
                    *access = AccessExpr::Subscript(Subscript::Index { index });
                }
            }
            return ControlFlow::Continue(());
        }
        let Expr::Function(function) = expr else {
            return ControlFlow::Continue(());
        };
        let name = function.name.to_string().to_ascii_lowercase();
        let rewritten = match (name.as_str(), &function.args) {
            // Quiver has no row security policies (psql's `\dp` lists them
            // by `oid = ANY (polroles)`, which the empty table's text
            // columns cannot answer).
            ("array", FunctionArguments::Subquery(query)) if reads_policies(query) => {
                parse_expr("CAST(NULL AS text[])")
            }
            ("array", FunctionArguments::Subquery(query)) => aggregate(query),
            (
                "generate_subscripts" | "pg_catalog.generate_subscripts",
                FunctionArguments::List(list),
            ) if list.args.len() == 2 => {
                let [array, dimension] = &list.args[..] else {
                    unreachable!("two arguments");
                };
                parse_expr(&format!(
                    "unnest(generate_series(1, array_length({array}, {dimension})))"
                ))
            }
            // PostgreSQL's set-returning function of an array's elements
            // (`x`) and their positions (`n`), which pgjdbc's key and index
            // queries call: a list of such records, unnested.
            (
                "information_schema._pg_expandarray" | "_pg_expandarray",
                FunctionArguments::List(list),
            ) if list.args.len() == 1 => {
                parse_expr(&format!("unnest(_pg_expandarray({}))", list.args[0]))
            }
            _ => None,
        };
        if let Some(rewritten) = rewritten {
            *expr = rewritten;
        }
        ControlFlow::Continue(())
    }
}

/// The parts of `name` in lower case, if each is an identifier.
fn folded_name(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|part| part.as_ident().map(|i| i.value.to_ascii_lowercase()))
        .collect()
}

/// A relation replaced by `subquery`: a derived table under the relation's
/// alias, or named `name` without one.
fn derived(alias: Option<TableAlias>, subquery: Query, name: &str) -> TableFactor {
    let alias = alias.unwrap_or(TableAlias {
        explicit: true,
        name: Ident::new(name),
        columns: vec![],
        at: None,
    });
    TableFactor::Derived {
        lateral: false,
        subquery: Box::new(subquery),
        alias: Some(alias),
        sample: None,
    }
}

/// Whether `name` is `pg_settings` or `pg_catalog.pg_settings`.
fn is_pg_settings(name: &ObjectName) -> bool {
    folded_name(name).is_some_and(|parts| {
        matches!(
            parts.iter().map(String::as_str).collect::<Vec<_>>()[..],
            ["pg_settings"] | ["pg_catalog", "pg_settings"]
        )
    })
}

/// `pg_settings` as the session sees it: Quiver's list of parameters (see
/// `crate::info_schema`), each with the session's value.
fn settings_query() -> String {
    let columns: Vec<String> = crate::info_schema::PG_SETTINGS_COLUMNS
        .iter()
        .map(|column| match *column {
            "setting" => "current_setting(name) AS setting".to_string(),
            other => other.to_string(),
        })
        .collect();
    format!(
        "SELECT {} FROM {}.pg_settings",
        columns.join(", "),
        crate::server::SYSTEM_SCHEMA
    )
}

/// `x = ANY (subquery)` as `x IN (subquery)`, and `x <> ALL (subquery)` as
/// `x NOT IN (subquery)`: the same test, NULLs and all, which DataFusion
/// plans (it reads `ANY`/`ALL` of a subquery as of an array, and failed).
fn subquery_membership(expr: &Expr) -> Option<Expr> {
    let (left, right, negated) = match expr {
        Expr::AnyOp {
            left,
            compare_op: BinaryOperator::Eq,
            right,
            ..
        } => (left, right, false),
        Expr::AllOp {
            left,
            compare_op: BinaryOperator::NotEq,
            right,
        } => (left, right, true),
        _ => return None,
    };
    let mut right = right.as_ref();
    while let Expr::Nested(inner) = right {
        right = inner;
    }
    let Expr::Subquery(subquery) = right else {
        return None;
    };
    Some(Expr::InSubquery {
        expr: left.clone(),
        subquery: subquery.clone(),
        negated,
    })
}

/// `quiver.bucket('rates')` in FROM as a view of `quiver.bucket_values`:
/// the keys and values of one bucket, in key order. Before the
/// compatibility parser's rules, which drop the qualifier of every table
/// function.
pub(crate) fn bucket_function(statement: &mut Statement) {
    let _ = statement.visit(&mut BucketFunction);
}

struct BucketFunction;

impl VisitorMut for BucketFunction {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            alias,
            args: Some(args),
            ..
        } = factor
            && is_bucket_function(name)
            && let [FunctionArg::Unnamed(FunctionArgExpr::Expr(bucket))] = args.args.as_slice()
            && let Some(subquery) = parse_query(&format!(
                "SELECT key, value FROM {}.bucket_values WHERE bucket = CAST({bucket} AS text) ORDER BY key",
                crate::server::SYSTEM_SCHEMA
            ))
        {
            *factor = derived(alias.take(), subquery, "bucket");
        }
        ControlFlow::Continue(())
    }
}

/// Whether `name` is `quiver.bucket`.
fn is_bucket_function(name: &ObjectName) -> bool {
    folded_name(name).is_some_and(|parts| parts == [crate::server::SYSTEM_SCHEMA, "bucket"])
}

fn parse_query(sql: &str) -> Option<Query> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_query())
        .ok()
        .map(|query| *query)
}

pub(crate) fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .ok()
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
    let call = parse_expr(&format!("array_agg({item}{order})"))?;
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

    #[test]
    fn generate_subscripts_becomes_an_unnested_series() {
        assert_eq!(
            rewritten("SELECT generate_subscripts(i.indkey, 1) AS ord FROM i"),
            "SELECT unnest(generate_series(1, array_length(i.indkey, 1))) AS ord FROM i"
        );
    }

    #[test]
    fn pgjdbc_key_queries_take_datafusion_forms() {
        assert_eq!(
            rewritten(
                "SELECT (information_schema._pg_expandarray(i.indkey)).n AS k FROM pg_index i"
            ),
            "SELECT (unnest(_pg_expandarray(i.indkey)))['n'] AS k FROM pg_index i"
        );
        assert_eq!(
            rewritten("SELECT r.a FROM r WHERE r.b = (r.keys).X"),
            "SELECT r.a FROM r WHERE r.b = (r.keys)['x']"
        );
        // Left alone: a name with dots.
        assert_eq!(rewritten("SELECT s.t.c FROM s.t"), "SELECT s.t.c FROM s.t");
    }

    #[test]
    fn psql_column_defaults_become_a_function_of_the_column() {
        let mut statements = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT a.attname, (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) \
             FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum \
             AND a.atthasdef) FROM pg_catalog.pg_attribute a",
        )
        .unwrap();
        assert!(reads_column_defaults(&statements[0]));
        column_defaults(&mut statements[0]);
        assert_eq!(
            statements[0].to_string(),
            "SELECT a.attname, quiver_column_default(a.attrelid, a.attnum) FROM pg_catalog.pg_attribute a"
        );
        // Another subquery over pg_attrdef is left alone.
        let other = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT (SELECT count(*) FROM pg_attrdef d WHERE d.adrelid = a.attrelid) FROM pg_attribute a",
        )
        .unwrap();
        assert!(!reads_column_defaults(&other[0]));
    }

    #[test]
    fn catalog_queries_take_postgresql_forms() {
        // pg_dump's forms.
        assert_eq!(
            rewritten("SELECT oprcode::oid AS oprcode FROM pg_operator"),
            "SELECT NULL::oid AS oprcode FROM pg_operator"
        );
        assert_eq!(
            rewritten("SELECT typname[0] = '_' FROM pg_type WHERE typacl = '{}'"),
            "SELECT SUBSTR(typname, 1, 1) = '_' FROM pg_type WHERE typacl = acldefault('-', 0)"
        );
        assert_eq!(
            rewritten("SELECT x FROM pg_policy, pg_options_to_table(o) AS t WHERE r = '{0}'"),
            "SELECT x FROM pg_policy, (SELECT CAST(NULL AS TEXT) AS option_name, \
             CAST(NULL AS TEXT) AS option_value WHERE false) AS t WHERE r = make_array(0)"
        );
        // Bounds read from a row are the catalogs' (NULL) vectors; constant
        // ones stay (Grafana's).
        assert_eq!(
            rewritten("SELECT s FROM pg_attribute, generate_series(0, array_upper(a.v, 1)) AS s"),
            "SELECT s FROM pg_attribute, generate_series(0, NULL) AS s (s)"
        );
        let constant = "SELECT s FROM pg_attribute, generate_series(1, array_upper(string_to_array(current_setting('search_path'), ','), 1)) AS s";
        assert_eq!(rewritten(constant), format!("{constant} (s)"));
    }

    #[test]
    fn regclass_names_are_kept_as_text_in_defaults() {
        let mut expr = parse_expr("nextval('s.t_id_seq'::regclass)").unwrap();
        regclass_as_text(&mut expr);
        assert_eq!(expr.to_string(), "nextval('s.t_id_seq')");
        let lookup = format!("nextval(({REGCLASS_LOOKUP}'t_id_seq'::TEXT) AS parts)))");
        let mut expr = parse_expr(&lookup).unwrap();
        regclass_as_text(&mut expr);
        assert_eq!(expr.to_string(), "nextval('t_id_seq')");
    }

    #[test]
    fn correlated_recursive_subqueries_of_catalog_queries_become_null() {
        let recursive = "(WITH RECURSIVE b (oid) AS (SELECT t2.typbasetype FROM pg_type AS t2 \
            WHERE t2.oid = t.oid UNION ALL SELECT t2.typbasetype FROM pg_type AS t2, b \
            WHERE b.oid = t2.oid) SELECT oid FROM b)";
        assert_eq!(
            rewritten(&format!(
                "SELECT t.oid, {recursive} AS base FROM pg_type AS t"
            )),
            "SELECT t.oid, CAST(NULL AS oid) AS base FROM pg_type AS t"
        );
        // Uncorrelated, or in a user query: left to DataFusion (the second
        // branch's columns take the first's names, as in every set
        // operation).
        let unique = |sql: &str| {
            sql.replace(
                "UNION ALL SELECT t2.typbasetype FROM",
                "UNION ALL SELECT t2.typbasetype AS \"typbasetype\" FROM",
            )
        };
        let uncorrelated = recursive.replace("t.oid", "t2.typbasetype");
        let sql = format!("SELECT t.oid, {uncorrelated} AS base FROM pg_type AS t");
        assert_eq!(rewritten(&sql), unique(&sql));
        let user = recursive.replace("pg_type", "types");
        let sql = format!("SELECT t.oid, {user} AS base FROM types AS t");
        assert_eq!(rewritten(&sql), unique(&sql));
    }

    #[test]
    fn select_list_subqueries_survive_the_compatibility_rules() {
        let sql = "SELECT k, (SELECT v FROM u WHERE u.k = t.k) AS v FROM t";
        let statements = crate::parse::SqlParser::default().parse(sql).unwrap();
        let [crate::parse::Statement::Sql(statement)] = &statements[..] else {
            panic!("one statement: {statements:?}");
        };
        assert_eq!(statement.to_string(), sql);
    }
}
