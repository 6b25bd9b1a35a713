//! Random SQL queries over the differential test's tables, as values that
//! can be printed and made smaller.
//!
//! Every query reads `t1`, `t2` and `t3` (`a int, b int, c text`, with NULLs
//! and duplicates) and uses only SQL that PostgreSQL and Quiver both
//! accept: joins of every kind, grouping sets, window functions, set
//! operations, subqueries, `CASE`, casts (to `char(n)` and `varchar(n)`
//! too), `DISTINCT`, and `ORDER BY` with
//! `LIMIT`/`OFFSET`.

use std::fmt;

use rand::Rng;
use rand::seq::IndexedRandom;

/// The tables, each `(a int, b int, c text)`.
pub const TABLES: [&str; 3] = ["t1", "t2", "t3"];

/// A query: a select, or two combined by a set operation.
#[derive(Clone, Debug)]
pub enum Query {
    Select(Select),
    SetOp {
        op: &'static str,
        all: bool,
        left: Box<Select>,
        right: Box<Select>,
        /// `ORDER BY` every column, then `LIMIT`/`OFFSET`.
        limit: Option<Limit>,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct Limit {
    /// `ORDER BY ... DESC` rather than ascending.
    pub descending: bool,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct Select {
    pub distinct: bool,
    pub items: Vec<String>,
    pub from: From,
    pub filter: Option<String>,
    pub group_by: Option<String>,
    pub having: Option<String>,
    /// `ORDER BY` every output column (so the rows kept are determined),
    /// then `LIMIT`/`OFFSET`.
    pub limit: Option<Limit>,
}

#[derive(Clone, Debug)]
pub enum From {
    Table(&'static str),
    /// `left x <kind> JOIN right y [constraint]`: `ON ...` or `USING (...)`.
    Join {
        kind: &'static str,
        left: &'static str,
        right: &'static str,
        on: Option<String>,
    },
    /// `(SELECT ...) x`, whose columns are `a`, `b`, `c`.
    Derived(Box<Select>),
}

impl Query {
    /// Whether the query orders its output (`ORDER BY` every column).
    pub fn ordered(&self) -> bool {
        match self {
            Query::Select(select) => select.limit.is_some(),
            Query::SetOp { limit, .. } => limit.is_some(),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(limit) = self.limit {
            write!(f, " LIMIT {limit}")?;
        }
        if let Some(offset) = self.offset {
            write!(f, " OFFSET {offset}")?;
        }
        Ok(())
    }
}

/// ` ORDER BY 1, 2, ..., n` for `n` output columns, then `limit`.
fn order_all(f: &mut fmt::Formatter<'_>, n: usize, limit: &Limit) -> fmt::Result {
    let direction = if limit.descending { " DESC" } else { "" };
    let positions: Vec<String> = (1..=n).map(|i| format!("{i}{direction}")).collect();
    write!(f, " ORDER BY {}{limit}", positions.join(", "))
}

impl fmt::Display for Select {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SELECT ")?;
        if self.distinct {
            write!(f, "DISTINCT ")?;
        }
        write!(f, "{} FROM {}", self.items.join(", "), self.from)?;
        if let Some(filter) = &self.filter {
            write!(f, " WHERE {filter}")?;
        }
        if let Some(group_by) = &self.group_by {
            write!(f, " GROUP BY {group_by}")?;
        }
        if let Some(having) = &self.having {
            write!(f, " HAVING {having}")?;
        }
        if let Some(limit) = &self.limit {
            order_all(f, self.items.len(), limit)?;
        }
        Ok(())
    }
}

impl fmt::Display for From {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            From::Table(table) => write!(f, "{table} x"),
            From::Join {
                kind,
                left,
                right,
                on,
            } => {
                write!(f, "{left} x {kind} JOIN {right} y")?;
                match on {
                    Some(on) => write!(f, " {on}"),
                    None => Ok(()),
                }
            }
            From::Derived(select) => write!(f, "({select}) x"),
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Query::Select(select) => write!(f, "{select}"),
            Query::SetOp {
                op,
                all,
                left,
                right,
                limit,
            } => {
                let all = if *all { " ALL" } else { "" };
                write!(f, "({left}) {op}{all} ({right})")?;
                if let Some(limit) = limit {
                    order_all(f, left.items.len(), limit)?;
                }
                Ok(())
            }
        }
    }
}

/// The columns a select's expressions may use.
struct Scope {
    ints: Vec<String>,
    texts: Vec<String>,
}

impl Scope {
    /// The columns of tables `aliases` (each `a int, b int, c text`).
    fn aliased(aliases: &[&str]) -> Self {
        Scope {
            ints: aliases
                .iter()
                .flat_map(|t| [format!("{t}.a"), format!("{t}.b")])
                .collect(),
            texts: aliases.iter().map(|t| format!("{t}.c")).collect(),
        }
    }

    fn of(from: &From) -> Self {
        let aliases: &[&str] = match from {
            From::Join { .. } => &["x", "y"],
            _ => &["x"],
        };
        let mut scope = Scope::aliased(aliases);
        // A USING join's merged column, unqualified.
        if let From::Join { on: Some(on), .. } = from
            && let Some(column) = on.strip_prefix("USING (").and_then(|c| c.strip_suffix(')'))
        {
            match column {
                "c" => scope.texts.push(column.to_string()),
                _ => scope.ints.push(column.to_string()),
            }
        }
        scope
    }
}

/// Generates queries from one random source.
pub struct Generator<R> {
    rng: R,
}

impl<R: Rng> Generator<R> {
    pub fn new(rng: R) -> Self {
        Self { rng }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items.choose(&mut self.rng).expect("non-empty").clone()
    }

    fn table(&mut self) -> &'static str {
        self.pick(&TABLES)
    }

    /// Which of `count` ways of planning the next query runs under: the
    /// first (Quiver's defaults) half of the time.
    pub fn plan_settings(&mut self, count: usize) -> usize {
        if count < 2 || self.chance(0.5) {
            0
        } else {
            self.rng.random_range(1..count)
        }
    }

    /// A query of one of the shapes the module docs list.
    pub fn query(&mut self) -> Query {
        match self.rng.random_range(0..10) {
            0..=1 => {
                let columns = self.rng.random_range(1..=3);
                let left = self.plain_select(columns, 0);
                let right = self.plain_select(columns, 0);
                let op = self.pick(&["UNION", "INTERSECT", "EXCEPT"]);
                let all = self.chance(0.5);
                let limit = self.chance(0.3).then(|| self.limit());
                Query::SetOp {
                    op,
                    all,
                    left: Box::new(left),
                    right: Box::new(right),
                    limit,
                }
            }
            2..=3 => Query::Select(self.grouped_select()),
            4..=5 => Query::Select(self.window_select()),
            _ => {
                let columns = self.rng.random_range(1..=4);
                Query::Select(self.plain_select(columns, 1))
            }
        }
    }

    /// A statement that changes the rows of `table` (`a int, b int, c
    /// text`, aliased `x`): `UPDATE` or `DELETE` with the conditions
    /// queries filter by (subqueries too), `DELETE ... USING` one of the
    /// query tables, rows added from one, or `TRUNCATE`.
    pub fn change(&mut self, table: &str) -> String {
        let scope = Scope::aliased(&["x"]);
        match self.rng.random_range(0..20) {
            0..=5 => format!(
                "DELETE FROM {table} AS x WHERE {}",
                self.predicate(&scope, 0)
            ),
            6..=7 => {
                let using = self.table();
                let joined = Scope::aliased(&["x", "y"]);
                let on = self.join_condition(true);
                let extra = match self.chance(0.4) {
                    true => format!(" AND {}", self.simple_predicate(&joined)),
                    false => String::new(),
                };
                format!("DELETE FROM {table} AS x USING {using} AS y WHERE {on}{extra}")
            }
            8..=14 => {
                let mut sets = Vec::new();
                if self.chance(0.7) {
                    sets.push(format!("a = {}", self.int_expr(&scope, 2)));
                }
                if self.chance(0.4) {
                    sets.push(format!("b = {}", self.int_expr(&scope, 1)));
                }
                if sets.is_empty() || self.chance(0.4) {
                    sets.push(format!("c = {}", self.text_expr(&scope)));
                }
                let filter = match self.chance(0.85) {
                    true => format!(" WHERE {}", self.predicate(&scope, 0)),
                    false => String::new(),
                };
                format!("UPDATE {table} AS x SET {}{filter}", sets.join(", "))
            }
            15..=18 => {
                let from = self.table();
                format!("INSERT INTO {table} SELECT a, b, c FROM {from}")
            }
            _ => format!("TRUNCATE {table}"),
        }
    }

    fn limit(&mut self) -> Limit {
        Limit {
            descending: self.chance(0.3),
            limit: self.chance(0.7).then(|| self.rng.random_range(0..6)),
            offset: self.chance(0.5).then(|| self.rng.random_range(0..6)),
        }
    }

    fn from(&mut self, depth: u32) -> From {
        match self.rng.random_range(0..10) {
            0..=3 => From::Table(self.table()),
            4..=8 => {
                let kind = self.pick(&["INNER", "LEFT", "RIGHT", "FULL", "CROSS"]);
                let (left, right) = (self.table(), self.table());
                // PostgreSQL runs a FULL JOIN only on an equality it can
                // merge or hash by.
                let on = (kind != "CROSS").then(|| {
                    if self.chance(0.3) {
                        format!("USING ({})", self.pick(&["a", "b", "c"]))
                    } else {
                        format!("ON {}", self.join_condition(kind != "FULL"))
                    }
                });
                From::Join {
                    kind,
                    left,
                    right,
                    on,
                }
            }
            _ if depth < 1 => {
                let mut inner = self.plain_select(3, depth + 1);
                inner.items = vec![
                    format!("{} AS a", inner.items[0]),
                    format!("{} AS b", inner.items[1]),
                    format!("{} AS c", self.text_expr(&Scope::of(&inner.from))),
                ];
                From::Derived(Box::new(inner))
            }
            _ => From::Table(self.table()),
        }
    }

    fn join_condition(&mut self, any: bool) -> String {
        let column = self.pick(&["a", "b"]);
        let mut on = format!("x.{column} = y.{column}");
        match self.rng.random_range(0..6) {
            0 => on.push_str(" AND y.b > 0"),
            1 => on.push_str(" AND NOT (y.a > 2)"),
            2 if any => on.push_str(" OR x.b = y.a"),
            3 if any => on = "x.a < y.b".to_string(),
            _ => {}
        }
        on
    }

    /// `SELECT` of `columns` expressions, int ones first.
    fn plain_select(&mut self, columns: usize, depth: u32) -> Select {
        let from = self.from(depth);
        let scope = Scope::of(&from);
        let items = (0..columns)
            .map(|i| {
                // Int columns first, so that two selects of the same width
                // can be combined by a set operation.
                if i < 2 {
                    self.int_expr(&scope, 2)
                } else {
                    self.text_expr(&scope)
                }
            })
            .collect();
        let filter = self.chance(0.6).then(|| self.predicate(&scope, depth));
        Select {
            distinct: self.chance(0.15),
            items,
            from,
            filter,
            group_by: None,
            having: None,
            limit: self.chance(0.2).then(|| self.limit()),
        }
    }

    fn grouped_select(&mut self) -> Select {
        let from = self.from(0);
        let scope = Scope::of(&from);
        let keys: Vec<String> = (0..self.rng.random_range(1..=2))
            .map(|_| {
                if self.chance(0.8) {
                    self.pick(&scope.ints)
                } else {
                    self.pick(&scope.texts)
                }
            })
            .collect();
        let group_by = match self.rng.random_range(0..8) {
            0 => format!("GROUPING SETS (({}), ())", keys.join(", ")),
            1 => format!("ROLLUP ({})", keys.join(", ")),
            2 => format!("CUBE ({})", keys.join(", ")),
            3 => "GROUPING SETS (())".to_string(),
            _ => keys.join(", "),
        };
        let mut items: Vec<String> = if group_by.starts_with("GROUPING SETS (())") {
            vec![]
        } else {
            keys.clone()
        };
        for _ in 0..self.rng.random_range(1..=3) {
            items.push(self.aggregate(&scope));
        }
        let filter = self.chance(0.4).then(|| self.predicate(&scope, 1));
        let having = self
            .chance(0.25)
            .then(|| format!("count(*) > {}", self.rng.random_range(0..3)));
        Select {
            distinct: false,
            items,
            from,
            filter,
            group_by: Some(group_by),
            having,
            limit: self.chance(0.2).then(|| self.limit()),
        }
    }

    fn aggregate(&mut self, scope: &Scope) -> String {
        let int = self.pick(&scope.ints);
        match self.rng.random_range(0..8) {
            0 => "count(*)".to_string(),
            1 => format!("count({int})"),
            2 => format!("count(DISTINCT {int})"),
            3 => format!("sum({int})"),
            4 => format!("min({})", self.int_expr(scope, 1)),
            5 => format!("max({})", self.pick(&scope.texts)),
            6 => format!("avg({int})"),
            _ => format!("sum(CASE WHEN {int} > 1 THEN 1 ELSE 0 END)"),
        }
    }

    fn window_select(&mut self) -> Select {
        let from = From::Table(self.table());
        let scope = Scope::of(&from);
        let mut items = vec!["x.a".to_string(), "x.b".to_string(), "x.c".to_string()];
        // Tables hold identical rows, which a window orders either way:
        // with two windows, only the first may tell such rows apart
        // (`row_number`, `lag`, a `ROWS` frame), or the pairing of the two
        // windows' values would be the engine's choice.
        items.push(self.window_call(&scope, false));
        if self.chance(0.5) {
            items.push(self.window_call(&scope, true));
        }
        Select {
            distinct: false,
            items,
            from,
            filter: self.chance(0.3).then(|| self.predicate(&scope, 1)),
            group_by: None,
            having: None,
            limit: self.chance(0.2).then(|| self.limit()),
        }
    }

    /// A window function call; with `peers_alike`, one that gives rows
    /// equal in the window's order the same value.
    fn window_call(&mut self, scope: &Scope, peers_alike: bool) -> String {
        // Every window orders by all columns, so each row's value is
        // determined up to identical rows.
        let direction = self.pick(&["", " DESC"]);
        let order = format!("x.a{direction}, x.b, x.c");
        let partition = if self.chance(0.5) {
            format!("PARTITION BY {} ", self.pick(&["x.a", "x.b", "x.c"]))
        } else {
            String::new()
        };
        let int = self.pick(&scope.ints);
        let choice = if peers_alike {
            self.pick(&[1, 2, 6, 7, 8])
        } else {
            self.rng.random_range(0..9)
        };
        let function = match choice {
            0 => "row_number()".to_string(),
            1 => "rank()".to_string(),
            2 => "dense_rank()".to_string(),
            3 => format!("lag({int})"),
            4 => format!("lead({int}, 2)"),
            5 => format!("first_value({int})"),
            6 => format!("sum({int})"),
            7 => format!("count({int})"),
            _ => format!("max({int})"),
        };
        let frame = match if peers_alike {
            5
        } else {
            self.rng.random_range(0..6)
        } {
            0 if function.starts_with("sum") || function.starts_with("max") => {
                " ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING"
            }
            1 if function.starts_with("sum") || function.starts_with("count") => {
                " ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING"
            }
            _ => "",
        };
        format!("{function} OVER ({partition}ORDER BY {order}{frame})")
    }

    fn int_expr(&mut self, scope: &Scope, depth: u32) -> String {
        let column = self.pick(&scope.ints);
        if depth == 0 {
            return column;
        }
        match self.rng.random_range(0..12) {
            0 => format!("{column} + {}", self.int_expr(scope, depth - 1)),
            1 => format!("{column} * {}", self.rng.random_range(-2..4)),
            2 => format!("{column} - {}", self.int_expr(scope, depth - 1)),
            3 => format!(
                "CASE WHEN {} THEN {column} ELSE {} END",
                self.simple_predicate(scope),
                self.int_expr(scope, depth - 1)
            ),
            4 => format!("COALESCE({column}, {})", self.rng.random_range(-1..3)),
            5 => format!("NULLIF({column}, {})", self.rng.random_range(0..3)),
            6 => format!("abs({column})"),
            7 => format!("-{column}"),
            8 => format!("length({})", self.pick(&scope.texts)),
            9 => format!("octet_length(CAST({} AS char(4)))", self.pick(&scope.texts)),
            _ => column,
        }
    }

    fn text_expr(&mut self, scope: &Scope) -> String {
        let column = self.pick(&scope.texts);
        match self.rng.random_range(0..8) {
            0 => format!("upper({column})"),
            1 => format!("{column} || 'z'"),
            2 => format!("COALESCE({column}, 'none')"),
            3 => format!("CAST({} AS text)", self.pick(&scope.ints)),
            // A char(n) value as text (its padding does not count), not
            // as a column of its own: mixed with text columns in a UNION or
            // COALESCE, PostgreSQL pads each value to its own length, which
            // Quiver does not (README).
            4 => format!("CAST({column} AS char(3)) || 'z'"),
            5 => format!("CAST({column} AS varchar(2))"),
            _ => column,
        }
    }

    fn simple_predicate(&mut self, scope: &Scope) -> String {
        let column = self.pick(&scope.ints);
        match self.rng.random_range(0..8) {
            0 => format!("{column} IS NULL"),
            1 => format!("{column} IS NOT NULL"),
            2 => format!("{column} > {}", self.rng.random_range(-1..4)),
            3 => format!("{column} = {}", self.pick(&scope.ints)),
            4 => format!("{column} BETWEEN 0 AND 2"),
            5 => format!("{} LIKE 'a%'", self.pick(&scope.texts)),
            6 => format!("CAST({} AS char(3)) = 'a  '", self.pick(&scope.texts)),
            _ => format!("{column} IN (1, 3, NULL)"),
        }
    }

    fn predicate(&mut self, scope: &Scope, depth: u32) -> String {
        match self.rng.random_range(0..10) {
            0 | 1 if depth < 2 => self.subquery_predicate(scope),
            2 => format!(
                "({} OR {})",
                self.simple_predicate(scope),
                self.predicate(scope, depth + 1)
            ),
            3 => format!(
                "{} AND {}",
                self.simple_predicate(scope),
                self.simple_predicate(scope)
            ),
            4 => format!("NOT ({})", self.simple_predicate(scope)),
            _ => self.simple_predicate(scope),
        }
    }

    fn subquery_predicate(&mut self, scope: &Scope) -> String {
        let table = self.table();
        // Qualified: inside the subquery, a bare `a` would be `s.a`.
        let qualified: Vec<String> = scope
            .ints
            .iter()
            .filter(|c| c.contains('.'))
            .cloned()
            .collect();
        let outer = self.pick(&qualified);
        let column = self.pick(&["a", "b"]);
        match self.rng.random_range(0..6) {
            0 => format!("EXISTS (SELECT 1 FROM {table} s WHERE s.{column} = {outer})"),
            1 => format!("NOT EXISTS (SELECT 1 FROM {table} s WHERE s.{column} = {outer})"),
            2 => format!("{outer} IN (SELECT s.{column} FROM {table} s)"),
            3 => format!(
                "({} OR EXISTS (SELECT 1 FROM {table} s WHERE s.{column} = {outer}))",
                self.simple_predicate(scope)
            ),
            4 => format!("{outer} > (SELECT min(s.{column}) FROM {table} s)"),
            _ => format!("{outer} = (SELECT max(s.{column}) FROM {table} s WHERE s.a = {outer})"),
        }
    }
}

/// Smaller variants of `query`, for reducing a disagreement to its core.
pub fn smaller(query: &Query) -> Vec<Query> {
    match query {
        Query::Select(select) => smaller_selects(select)
            .into_iter()
            .map(Query::Select)
            .collect(),
        Query::SetOp {
            op,
            all,
            left,
            right,
            limit,
        } => {
            let mut out = vec![
                Query::Select((**left).clone()),
                Query::Select((**right).clone()),
            ];
            if limit.is_some() {
                out.push(Query::SetOp {
                    op,
                    all: *all,
                    left: left.clone(),
                    right: right.clone(),
                    limit: None,
                });
            }
            for l in smaller_selects(left) {
                out.push(Query::SetOp {
                    op,
                    all: *all,
                    left: Box::new(l),
                    right: right.clone(),
                    limit: *limit,
                });
            }
            for r in smaller_selects(right) {
                out.push(Query::SetOp {
                    op,
                    all: *all,
                    left: left.clone(),
                    right: Box::new(r),
                    limit: *limit,
                });
            }
            out
        }
    }
}

fn smaller_selects(select: &Select) -> Vec<Select> {
    let mut out = Vec::new();
    let mut with = |change: &dyn Fn(&mut Select)| {
        let mut s = select.clone();
        change(&mut s);
        out.push(s);
    };
    if select.filter.is_some() {
        with(&|s| s.filter = None);
    }
    if select.having.is_some() {
        with(&|s| s.having = None);
    }
    if select.distinct {
        with(&|s| s.distinct = false);
    }
    if let Some(limit) = select.limit {
        with(&|s| s.limit = None);
        if limit.limit.is_some() && limit.offset.is_some() {
            with(&|s| {
                s.limit = Some(Limit {
                    limit: None,
                    ..limit
                })
            });
            with(&|s| {
                s.limit = Some(Limit {
                    offset: None,
                    ..limit
                })
            });
        }
    }
    if select.items.len() > 1 {
        for i in 0..select.items.len() {
            with(&|s| {
                s.items.remove(i);
            });
        }
    }
    match &select.from {
        From::Join {
            left, right, on, ..
        } => {
            let (left, right) = (*left, *right);
            with(&|s| s.from = From::Table(left));
            if on.is_some() {
                with(&|s| {
                    if let From::Join { kind, .. } = &mut s.from {
                        *kind = "INNER";
                    }
                });
            }
            let _ = right;
        }
        From::Derived(inner) => {
            for smaller in smaller_selects(inner) {
                let smaller = Box::new(smaller);
                with(&|s| s.from = From::Derived(smaller.clone()));
            }
        }
        From::Table(_) => {}
    }
    out
}
