//! SQL that DataFusion reads, but not as PostgreSQL does, rewritten into
//! forms that DataFusion answers as PostgreSQL would:
//! - a window that names another (`OVER (w ROWS ...)` with `WINDOW w AS
//!   (ORDER BY k)`) takes its partitioning and order from it; DataFusion
//!   dropped them, so the frame ran over unordered rows;
//! - `generate_series(...)` as a select item returns rows, not one array;
//! - `CAST(x AS char(n))` and `CAST(x AS varchar(n))` cut to `n`
//!   characters and mark the value with its type (see `crate::sized_text`);
//!   DataFusion ignored the length;
//! - an integer literal too big for `bigint` is `numeric`, not a float
//!   that drops digits;
//! - `ROLLUP`/`CUBE` that repeat a key are spelled out as the grouping sets
//!   they mean (DataFusion refused the repeated column);
//! - `CAST(x AS "char")` is a cast to `text` (DataFusion has no such type);
//! - `character(n)` and `character varying(n)` (pg_dump's names) are
//!   `char(n)` and `varchar(n)`, which DataFusion reads;
//! - an interval literal with a time (`interval '2 days 03:04'`, `'1:30'::
//!   interval`) or in ISO 8601 (`'P1DT2H'`) is spelled in units, which
//!   Arrow's interval parser reads (it failed on both).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AlterTableOperation, ColumnDef, DataType, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, NamedWindowDefinition, NamedWindowExpr, ObjectNamePart, Query,
    SelectItem, SetExpr, Statement, TypedString, Value, ValueWithSpan, VisitMut, VisitorMut,
    WindowSpec, WindowType, visit_expressions_mut,
};

use crate::rewrite::parse_expr;

/// Applies the rewrites of the module docs to `statement`.
pub(crate) fn rewrite(statement: &mut Statement) {
    let _ = statement.visit(&mut PostgresMeaning);
}

/// `character(n)` as `char(n)` and `character varying(n)` as
/// `varchar(n)` (the names pg_dump writes), which DataFusion reads only so.
fn standard_character_type(data_type: &mut DataType) {
    match data_type {
        DataType::Character(length) => *data_type = DataType::Char(length.take()),
        DataType::CharacterVarying(length) | DataType::CharVarying(length) => {
            *data_type = DataType::Varchar(length.take())
        }
        DataType::Array(
            datafusion::sql::sqlparser::ast::ArrayElemTypeDef::SquareBracket(element, _)
            | datafusion::sql::sqlparser::ast::ArrayElemTypeDef::AngleBracket(element)
            | datafusion::sql::sqlparser::ast::ArrayElemTypeDef::Parenthesis(element),
        ) => standard_character_type(element),
        _ => {}
    }
}

/// Whether `data_type` is PostgreSQL's one-byte `"char"` (the type of the
/// catalogs' kind columns, `relkind`), which Quiver's catalogs hold as
/// text.
fn is_single_char(data_type: &DataType) -> bool {
    let DataType::Custom(name, args) = data_type else {
        return false;
    };
    let parts: Vec<_> = name.0.iter().filter_map(ObjectNamePart::as_ident).collect();
    let last = match parts.as_slice() {
        [last] => last,
        [schema, last] if schema.value.eq_ignore_ascii_case("pg_catalog") => last,
        _ => return false,
    };
    args.is_empty() && last.value == "char" && last.quote_style == Some('"')
}

struct PostgresMeaning;

impl VisitorMut for PostgresMeaning {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            if !select.named_window.is_empty() {
                let definitions = select.named_window.clone();
                let _ = visit_expressions_mut(&mut select.projection, |expr| {
                    inherit_named_window(expr, &definitions);
                    ControlFlow::<()>::Continue(())
                });
            }
            for item in &mut select.projection {
                expand_series(item);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, statement: &mut Statement) -> ControlFlow<()> {
        let columns: Vec<&mut ColumnDef> = match statement {
            Statement::CreateTable(create) => create.columns.iter_mut().collect(),
            Statement::AlterTable(alter) => alter
                .operations
                .iter_mut()
                .filter_map(|operation| match operation {
                    AlterTableOperation::AddColumn { column_def, .. } => Some(column_def),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        for column in columns {
            standard_character_type(&mut column.data_type);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Cast { data_type, .. } = expr {
            if is_single_char(data_type) {
                *data_type = DataType::Text;
            }
            standard_character_type(data_type);
        }
        let rewritten = match expr {
            Expr::Interval(interval) if interval.leading_field.is_none() => {
                interval_literal(&mut interval.value);
                None
            }
            Expr::Cast {
                expr: inner,
                data_type: DataType::Interval { fields: None, .. },
                ..
            } => {
                interval_literal(inner);
                None
            }
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } => sized_text_cast(inner, data_type),
            Expr::Value(value) => match &value.value {
                Value::Number(digits, _) => big_integer(digits),
                _ => None,
            },
            Expr::Rollup(elements) => repeated_keys(elements, rollup_sets(elements.len())),
            Expr::Cube(elements) if elements.len() <= 8 => {
                repeated_keys(elements, cube_sets(elements.len()))
            }
            _ => None,
        };
        if let Some(rewritten) = rewritten {
            *expr = rewritten;
        }
        ControlFlow::Continue(())
    }
}

/// An interval literal PostgreSQL reads and Arrow does not, spelled in
/// units Arrow reads: a time (`'2 days 03:04:05.5'`, `'1:30'`) as hours,
/// minutes and seconds, an ISO 8601 duration (`'P1DT2H'`) as its parts.
fn interval_literal(value: &mut Expr) {
    if let Expr::Value(ValueWithSpan {
        value: Value::SingleQuotedString(text),
        ..
    }) = value
        && let Some(units) = interval_units(text)
    {
        *text = units;
    }
}

/// `text` in units (see [`interval_literal`]), if it needs them.
fn interval_units(text: &str) -> Option<String> {
    let trimmed = text.trim();
    if let Some(iso) = trimmed.strip_prefix('P') {
        return iso_duration_units(iso);
    }
    let mut changed = false;
    let words: Vec<String> = trimmed
        .split_whitespace()
        .map(|word| match time_units(word) {
            Some(units) => {
                changed = true;
                units
            }
            None => word.to_string(),
        })
        .collect();
    changed.then(|| words.join(" "))
}

/// `[-]H:MM[:SS[.f]]` as `H hours M minutes S seconds`, each with the
/// time's sign.
fn time_units(word: &str) -> Option<String> {
    let (sign, time) = match word.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", word.strip_prefix('+').unwrap_or(word)),
    };
    let parts: Vec<&str> = time.split(':').collect();
    let number = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '.');
    if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| number(p)) {
        return None;
    }
    if parts[..parts.len() - 1].iter().any(|p| p.contains('.')) {
        return None;
    }
    let mut units = format!("{sign}{} hours {sign}{} minutes", parts[0], parts[1]);
    if let Some(seconds) = parts.get(2) {
        units.push_str(&format!(" {sign}{seconds} seconds"));
    }
    Some(units)
}

/// The part of an ISO 8601 duration after its `P` (`1Y2M3DT4H5M6.5S`,
/// `2W`) in units.
fn iso_duration_units(iso: &str) -> Option<String> {
    let (date, time) = iso.split_once('T').unwrap_or((iso, ""));
    let mut units = Vec::new();
    for (part, names) in [
        (
            date,
            &[
                ('Y', "years"),
                ('M', "months"),
                ('W', "weeks"),
                ('D', "days"),
            ][..],
        ),
        (
            time,
            &[('H', "hours"), ('M', "minutes"), ('S', "seconds")][..],
        ),
    ] {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == '-' {
                number.push(c);
                continue;
            }
            let (_, name) = names.iter().find(|(designator, _)| *designator == c)?;
            if number.is_empty() {
                return None;
            }
            units.push(format!("{number} {name}"));
            number.clear();
        }
        if !number.is_empty() {
            return None;
        }
    }
    (!units.is_empty()).then(|| units.join(" "))
}

/// `ROLLUP` or `CUBE` of `elements` that repeat a key (`ROLLUP (a, a)`) as
/// the grouping sets they mean, each set's keys once: DataFusion refused
/// the repeated key (a duplicate column), where PostgreSQL groups by the
/// sets, keeping a set that comes up twice twice. `sets` are the indexes of
/// the elements in each set.
fn repeated_keys(elements: &[Vec<Expr>], sets: Vec<Vec<usize>>) -> Option<Expr> {
    let keys: Vec<String> = elements
        .iter()
        .flatten()
        .map(|e| e.to_string().to_lowercase())
        .collect();
    let distinct: std::collections::HashSet<&String> = keys.iter().collect();
    if distinct.len() == keys.len() {
        return None;
    }
    let sets = sets
        .into_iter()
        .map(|set| {
            let mut seen = std::collections::HashSet::new();
            set.into_iter()
                .flat_map(|i| elements[i].iter())
                .filter(|e| seen.insert(e.to_string().to_lowercase()))
                .cloned()
                .collect()
        })
        .collect();
    Some(Expr::GroupingSets(sets))
}

/// The sets of `ROLLUP` over `n` elements: every prefix, longest first.
fn rollup_sets(n: usize) -> Vec<Vec<usize>> {
    (0..=n).rev().map(|k| (0..k).collect()).collect()
}

/// The sets of `CUBE` over `n` elements: every subset.
fn cube_sets(n: usize) -> Vec<Vec<usize>> {
    (0..1usize << n)
        .rev()
        .map(|mask| (0..n).filter(|i| mask & (1 << (n - 1 - i)) != 0).collect())
        .collect()
}

/// `spec` with what the window it names gives it, PostgreSQL's way: its
/// partitioning, its order unless `spec` has one, its frame unless `spec`
/// has one.
fn inherit(spec: &mut WindowSpec, definitions: &[NamedWindowDefinition], depth: usize) {
    let Some(name) = spec.window_name.take() else {
        return;
    };
    let found = definitions.iter().find(|d| d.0.value == name.value);
    let Some(NamedWindowDefinition(_, NamedWindowExpr::WindowSpec(base))) = found else {
        // Unknown, or named by name only: DataFusion reports it.
        spec.window_name = Some(name);
        return;
    };
    let mut base = base.clone();
    if depth < 8 {
        inherit(&mut base, definitions, depth + 1);
    }
    if spec.partition_by.is_empty() {
        spec.partition_by = base.partition_by;
    }
    if spec.order_by.is_empty() {
        spec.order_by = base.order_by;
    }
    if spec.window_frame.is_none() {
        spec.window_frame = base.window_frame;
    }
}

fn inherit_named_window(expr: &mut Expr, definitions: &[NamedWindowDefinition]) {
    if let Expr::Function(Function {
        over: Some(WindowType::WindowSpec(spec)),
        ..
    }) = expr
    {
        inherit(spec, definitions, 0);
    }
}

/// `generate_series(...)` as a whole select item: its rows
/// (`unnest(generate_series(...)) AS generate_series`).
fn expand_series(item: &mut SelectItem) {
    let (expr, alias) = match item {
        SelectItem::UnnamedExpr(expr) => (expr, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
        _ => return,
    };
    let Expr::Function(function) = expr else {
        return;
    };
    let name = function.name.to_string().to_ascii_lowercase();
    if !matches!(
        name.as_str(),
        "generate_series" | "pg_catalog.generate_series"
    ) || function.over.is_some()
    {
        return;
    }
    let Some(rows) = parse_expr(&format!("unnest({function})")) else {
        return;
    };
    *item = SelectItem::ExprWithAlias {
        expr: rows,
        alias: alias.unwrap_or_else(|| Ident::new("generate_series")),
    };
}

/// `CAST(inner AS char(n))` and `CAST(inner AS varchar(n))` as calls of
/// PostgreSQL's length coercions, `bpchar(text, n, true)` and
/// `varchar(text, n, true)` (see `quiver_udf_registry::SizedTextCast`),
/// which name the column as PostgreSQL does. `char` alone is `char(1)`.
fn sized_text_cast(inner: &Expr, data_type: &DataType) -> Option<Expr> {
    let (padded, length) = crate::sized_text::written_type(data_type)?;
    let function = if padded { "bpchar" } else { "varchar" };
    parse_expr(&format!(
        "{function}(CAST({inner} AS text), {length}, true)"
    ))
}

/// The `x` of a `CAST(x AS char(n))` or `CAST(x AS varchar(n))` that
/// [`sized_text_cast`] rewrote into `function`, and PostgreSQL's name of the
/// type (`bpchar`, `varchar`).
pub(crate) fn sized_cast_source(function: &Function) -> Option<(&Expr, &'static str)> {
    let [ObjectNamePart::Identifier(name)] = function.name.0.as_slice() else {
        return None;
    };
    let type_name = match name.value.as_str() {
        "bpchar" => "bpchar",
        "varchar" => "varchar",
        _ => return None,
    };
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    let [value, _, explicit] = list.args.as_slice() else {
        return None;
    };
    fn unnamed(arg: &FunctionArg) -> Option<&Expr> {
        match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Some(expr),
            _ => None,
        }
    }
    match (unnamed(value)?, unnamed(explicit)?) {
        (
            Expr::Cast {
                expr,
                data_type: DataType::Text,
                ..
            },
            Expr::Value(ValueWithSpan {
                value: Value::Boolean(true),
                ..
            }),
        ) => Some((expr, type_name)),
        _ => None,
    }
}

/// An integer literal beyond `bigint`'s range, as `numeric` (up to the 38
/// digits Quiver's numerics hold).
fn big_integer(digits: &str) -> Option<Expr> {
    if digits.is_empty()
        || digits.len() > 38
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.parse::<i64>().is_ok()
    {
        return None;
    }
    // A typed string rather than a cast: the column is named `?column?`, as
    // PostgreSQL names a literal, not `numeric`.
    let Expr::Cast {
        expr, data_type, ..
    } = parse_expr(&format!("CAST('{digits}' AS numeric(38, 0))"))?
    else {
        return None;
    };
    let Expr::Value(value) = *expr else {
        return None;
    };
    Some(Expr::TypedString(TypedString {
        data_type,
        value,
        uses_odbc_syntax: false,
    }))
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        super::rewrite(&mut statements[0]);
        statements[0].to_string()
    }

    #[test]
    fn postgresql_meanings() {
        assert_eq!(
            rewritten(
                "SELECT sum(k) OVER (w ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) FROM t WINDOW w AS (PARTITION BY a ORDER BY k)"
            ),
            "SELECT sum(k) OVER (PARTITION BY a ORDER BY k ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) FROM t WINDOW w AS (PARTITION BY a ORDER BY k)"
        );
        assert_eq!(
            rewritten("SELECT generate_series(1, 3), x FROM t"),
            "SELECT unnest(generate_series(1, 3)) AS generate_series, x FROM t"
        );
        assert_eq!(
            rewritten("SELECT CAST('abcdef' AS char(4)), 'abcdef'::varchar(2)"),
            "SELECT bpchar(CAST('abcdef' AS TEXT), 4, true), varchar(CAST('abcdef' AS TEXT), 2, true)"
        );
        assert_eq!(
            rewritten("SELECT 123456789012345678901234567890, 5"),
            "SELECT NUMERIC(38,0) '123456789012345678901234567890', 5"
        );
        assert_eq!(
            rewritten(
                "SELECT INTERVAL '2 days 03:04', '-1:30:00.5'::interval, INTERVAL 'P1Y2M3DT4H5M6.5S', INTERVAL '1 day'"
            ),
            "SELECT INTERVAL '2 days 03 hours 04 minutes', '-1 hours -30 minutes -00.5 seconds'::INTERVAL, INTERVAL '1 years 2 months 3 days 4 hours 5 minutes 6.5 seconds', INTERVAL '1 day'"
        );
    }
}
