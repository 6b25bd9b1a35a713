//! [`FunctionDef`]: what `CREATE FUNCTION ... LANGUAGE wasm` stores.

use serde::{Deserialize, Serialize};

use crate::keyvalue::BucketGrant;
use crate::types::{SqlType, signature};

/// How the host calls a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Abi {
    /// A component exporting `quiver:udf` interfaces, called once per batch.
    Component,
    /// A core module exporting a function of numbers, called once per row.
    Core,
}

impl Abi {
    /// The name `quiver.functions` shows.
    pub fn name(&self) -> &'static str {
        match self {
            Abi::Component => "component",
            Abi::Core => "core",
        }
    }
}

/// PostgreSQL's function volatility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Volatility {
    Immutable,
    Stable,
    #[default]
    Volatile,
}

impl Volatility {
    pub(crate) fn datafusion(&self) -> datafusion::logical_expr::Volatility {
        match self {
            Volatility::Immutable => datafusion::logical_expr::Volatility::Immutable,
            Volatility::Stable => datafusion::logical_expr::Volatility::Stable,
            Volatility::Volatile => datafusion::logical_expr::Volatility::Volatile,
        }
    }

    /// `pg_proc.provolatile`: `i`, `s` or `v`.
    pub fn code(&self) -> &'static str {
        match self {
            Volatility::Immutable => "i",
            Volatility::Stable => "s",
            Volatility::Volatile => "v",
        }
    }
}

/// Per-function sandbox limits; `None` takes the server's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Limits {
    /// Largest linear memory of one instance, in bytes.
    pub max_memory: Option<u64>,
    /// Longest one call (one batch) may run, in milliseconds.
    pub time_limit_ms: Option<u64>,
}

/// What a function may reach beyond its arguments, each named by its
/// definition (`SET quiver.wasm.keyvalue = '...'`, `SET quiver.wasm.files =
/// '...'`, `SET quiver.wasm.log = on`); nothing by default.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Grants {
    /// Buckets it may open through `wasi:keyvalue`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keyvalue: Vec<BucketGrant>,
    /// Directories it may read, through `wasi:filesystem`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileGrant>,
    /// Whether what it writes to stdout and stderr goes to the server's log
    /// (always kept for error messages either way).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log: bool,
}

/// A directory of the server's `--wasm-files NAME=DIR` a function may read:
/// the guest sees it, read-only, as `/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileGrant {
    pub name: String,
    /// Where it is on the server (filled in from the server's directories
    /// when the function is created; every process reads it there).
    pub path: std::path::PathBuf,
}

impl Grants {
    pub fn is_empty(&self) -> bool {
        self.keyvalue.is_empty() && self.files.is_empty() && !self.log
    }

    /// Whether a call may write somewhere (so it must run where writes
    /// are made once: on the frontend).
    pub fn writes(&self) -> bool {
        self.keyvalue.iter().any(|g| g.write)
    }

    /// Each grant as the name of its `quiver.wasm.NAME` setting and its
    /// value: `("keyvalue", "rates:read,hits:read-write")`.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let mut settings = Vec::new();
        if !self.keyvalue.is_empty() {
            let buckets: Vec<String> = self.keyvalue.iter().map(BucketGrant::text).collect();
            settings.push(("keyvalue", buckets.join(",")));
        }
        if !self.files.is_empty() {
            let dirs: Vec<&str> = self.files.iter().map(|f| f.name.as_str()).collect();
            settings.push(("files", dirs.join(",")));
        }
        if self.log {
            settings.push(("log", "on".into()));
        }
        settings
    }

    /// `keyvalue=rates:read,hits:read-write; files=lookup; log=on`, as
    /// `quiver.functions` shows them (empty: none).
    pub fn text(&self) -> String {
        let settings: Vec<String> = self
            .settings()
            .into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        settings.join("; ")
    }
}

/// One column a table function produces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableColumn {
    pub name: String,
    pub ty: SqlType,
}

/// What kind of function a definition is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `CREATE FUNCTION ... RETURNS type`: one value per row.
    #[default]
    Scalar,
    /// `CREATE AGGREGATE ... (MODULE = ...)`: an accumulator of the component.
    Aggregate,
    /// `CREATE FUNCTION ... RETURNS TABLE (...)`: a stream of rows.
    Table { columns: Vec<TableColumn> },
    /// `CREATE FUNCTION f(TABLE, ...) RETURNS TABLE`: a relation in, a
    /// relation out, whose columns the component describes when a query is
    /// planned. Its `args` are those after the table.
    Transform,
    /// `CREATE AGGREGATE ... (SFUNC = ..., STYPE = ...)`: PostgreSQL's
    /// classic form, folding rows with Wasm scalar functions. The module
    /// fields of its definition are its SFUNC's.
    Folded(Folded),
}

/// The parts of a classic aggregate: scalar Wasm functions, by signature
/// (so replacing one with `CREATE OR REPLACE FUNCTION` changes the
/// aggregate too, as in PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Folded {
    /// The state's type.
    pub stype: SqlType,
    /// `sfunc(state, args...) -> state`, once per row.
    pub sfunc: String,
    /// `combinefunc(state, state) -> state`: merges partial states.
    pub combinefunc: String,
    /// `finalfunc(state) -> result`; without one, the state is the result.
    pub finalfunc: Option<String>,
    /// The initial state as text (null when absent).
    pub initcond: Option<String>,
}

impl Kind {
    /// The name `quiver.functions` shows.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Scalar => "scalar",
            Kind::Aggregate | Kind::Folded(_) => "aggregate",
            Kind::Table { .. } => "table",
            Kind::Transform => "transform",
        }
    }
}

/// A stored Wasm function: one overload of one name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    /// Scalar, aggregate or table function (scalar in definitions stored
    /// before aggregates existed).
    #[serde(default)]
    pub kind: Kind,
    pub args: Vec<SqlType>,
    /// What a call returns: the result type of a scalar function or an
    /// aggregate (the component's answer for `args`), the type of the first
    /// column of a table function.
    pub returns: SqlType,
    pub abi: Abi,
    /// The export (core) or function name (component) inside the module.
    pub symbol: String,
    /// SHA-256 of the module bytes, lower-case hex.
    pub module_sha256: String,
    pub module_size: u64,
    pub volatility: Volatility,
    /// `STRICT`: a null argument gives a null result without a call.
    pub strict: bool,
    pub limits: Limits,
    /// What it may reach beyond its arguments (absent in definitions stored
    /// before grants existed: nothing).
    #[serde(default, skip_serializing_if = "Grants::is_empty")]
    pub grants: Grants,
    /// When this version was created (RFC 3339).
    pub created_at: String,
    /// 1 at `CREATE`, one more at each `CREATE OR REPLACE`.
    pub version: u64,
}

impl FunctionDef {
    /// `name(type, ...)`, also the definition's key in the store.
    pub fn signature(&self) -> String {
        signature(&self.name, &self.args)
    }

    /// Its arguments as `CREATE FUNCTION` declares them: a transform's
    /// table first.
    pub fn declared_args(&self) -> String {
        let args = self.args.iter().map(SqlType::pg_name);
        let args: Vec<String> = match self.kind {
            Kind::Transform => std::iter::once("TABLE".to_string()).chain(args).collect(),
            _ => args.collect(),
        };
        args.join(", ")
    }

    /// The `SET name = value` clauses of its definition (limits, then
    /// grants), as `pg_proc.proconfig` holds them and pg_dump writes them.
    pub fn settings(&self) -> Vec<(String, String)> {
        let mut settings = Vec::new();
        if let Some(bytes) = self.limits.max_memory {
            let value = if bytes % (1 << 20) == 0 {
                format!("{}MB", bytes >> 20)
            } else {
                bytes.to_string()
            };
            settings.push(("max_memory", value));
        }
        if let Some(ms) = self.limits.time_limit_ms {
            settings.push(("time_limit", format!("{ms}ms")));
        }
        settings.extend(self.grants.settings());
        settings
            .into_iter()
            .map(|(name, value)| (format!("quiver.wasm.{name}"), value))
            .collect()
    }

    /// What it returns as PostgreSQL shows it: a type, or `TABLE(name type, ...)`.
    pub fn result_text(&self) -> String {
        match &self.kind {
            Kind::Table { columns } => format!(
                "TABLE({})",
                columns
                    .iter()
                    .map(|c| format!("{} {}", c.name, c.ty.pg_name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Kind::Transform => "TABLE".into(),
            _ => self.returns.pg_name(),
        }
    }
}
