//! `CREATE FUNCTION ... LANGUAGE wasm`, `DROP FUNCTION`, the `quiver.functions`
//! system table, and keeping each session's function registry current.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result as DfResult;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    self, CreateFunctionBody, DropFunction, Expr, FunctionBehavior, FunctionCalledOnNull,
    FunctionDesc, FunctionReturnType, FunctionSetValue, ObjectName, OperateFunctionArg, Value,
};
use quiver_udf_registry::{
    BucketGrant, CreateFolded, CreateFunction, FileGrant, FoldedAggregateUdf, FunctionDef,
    FunctionRegistry, Grants, Kind, Limits, ModuleSource, SqlType, TableColumn, Volatility,
    WasmAggregateUdf, WasmScalarUdf, WasmTableFunction,
};

use quiver_catalog::Usage;

use crate::names::folded;
use crate::parse::{AggregateOption, CreateAggregate, DropAggregate};
use crate::session::Completion;
use crate::system::SystemRows;
use crate::{Error, Result};

/// What a session checks before a function `name(args)` with `grants` is
/// created or replaced (privileges): fails to stop it.
pub(crate) type MayCreate<'a> = &'a (dyn Fn(&str, &[SqlType], &Grants) -> Result<()> + Sync);

/// What a session checks before a function is dropped.
pub(crate) type MayDrop<'a> = &'a (dyn Fn(&FunctionDef) -> Result<()> + Sync);

/// The Wasm functions every session of a server shares.
pub(crate) struct Functions {
    pub(crate) registry: Arc<FunctionRegistry>,
    /// Names of DataFusion's own functions: a Wasm function may not hide one.
    builtins: HashSet<String>,
}

impl Functions {
    pub(crate) fn new(registry: Arc<FunctionRegistry>, builtins: HashSet<String>) -> Self {
        Self { registry, builtins }
    }

    /// `CREATE [OR REPLACE] FUNCTION ... LANGUAGE wasm`, once `may_create`
    /// allows it. Returns the stored definition.
    pub(crate) async fn create(
        &self,
        statement: ast::CreateFunction,
        may_create: MayCreate<'_>,
    ) -> Result<(Completion, FunctionDef)> {
        let create = translate_create(statement)?;
        may_create(&create.name, &create.args, &create.grants)?;
        let def = self.register(create).await?;
        Ok((Completion::tag("CREATE FUNCTION"), def))
    }

    /// `CREATE [OR REPLACE] AGGREGATE name(types) (MODULE = 'file.wasm' ...)`
    /// or `(SFUNC = ..., STYPE = ..., ...)`, once `may_create` allows it.
    /// Returns the stored definition.
    pub(crate) async fn create_aggregate(
        &self,
        statement: CreateAggregate,
        may_create: MayCreate<'_>,
    ) -> Result<(Completion, FunctionDef)> {
        let classic = statement
            .options
            .iter()
            .any(|(o, _)| o == "sfunc" || o == "stype");
        let def = if classic {
            let create = translate_folded(statement)?;
            may_create(&create.name, &create.args, &Grants::default())?;
            self.check_not_builtin(&create.name)?;
            self.registry.create_folded(create)?
        } else {
            let create = translate_aggregate(statement)?;
            may_create(&create.name, &create.args, &create.grants)?;
            self.register(create).await?
        };
        Ok((Completion::tag("CREATE AGGREGATE"), def))
    }

    async fn register(&self, create: CreateFunction) -> Result<FunctionDef> {
        self.check_not_builtin(&create.name)?;
        let registry = self.registry.clone();
        // Compiling a module is CPU work: keep it off the connection's task.
        let created = tokio::task::spawn_blocking(move || registry.create(create))
            .await
            .map_err(|e| Error::Internal(format!("function creation panicked: {e}")))?;
        Ok(created?)
    }

    /// A Wasm function may not hide one of DataFusion's (42723).
    fn check_not_builtin(&self, name: &str) -> Result<()> {
        if self.builtins.contains(name) {
            return Err(Error::DuplicateFunction(format!(
                "function {name} already exists as a built-in function; choose another name"
            )));
        }
        Ok(())
    }

    /// `DROP AGGREGATE [IF EXISTS] name(types), ...`, each once `may_drop`
    /// allows it. Returns the dropped definitions.
    pub(crate) fn drop_aggregates(
        &self,
        statement: DropAggregate,
        may_drop: MayDrop<'_>,
    ) -> Result<(Completion, Vec<FunctionDef>)> {
        if statement.cascade {
            return Err(Error::FeatureNotSupported(
                "DROP AGGREGATE ... CASCADE is not supported: nothing depends on aggregates".into(),
            ));
        }
        let aggregates = statement
            .aggregates
            .iter()
            .map(|(name, args)| Ok((function_name(name)?, Some(sql_types(args)?))))
            .collect::<Result<Vec<_>>>()?;
        let (notices, dropped) = self.drop_each(aggregates, statement.if_exists, true, may_drop)?;
        Ok((
            Completion::tag("DROP AGGREGATE").with_notice(notices),
            dropped,
        ))
    }

    /// `DROP FUNCTION [IF EXISTS] name[(types)], ...`, each once `may_drop`
    /// allows it. Returns the dropped definitions.
    pub(crate) fn drop_functions(
        &self,
        statement: DropFunction,
        may_drop: MayDrop<'_>,
    ) -> Result<(Completion, Vec<FunctionDef>)> {
        if matches!(statement.drop_behavior, Some(ast::DropBehavior::Cascade)) {
            return Err(Error::FeatureNotSupported(
                "DROP FUNCTION ... CASCADE is not supported: nothing depends on functions".into(),
            ));
        }
        let functions = statement
            .func_desc
            .iter()
            .map(|FunctionDesc { name, args }| {
                // A transform's table is not part of its signature.
                let args = args
                    .as_ref()
                    .map(|args| {
                        args.iter()
                            .filter(|a| !is_table_argument(a))
                            .map(argument_type)
                            .collect::<Result<Vec<_>>>()
                    })
                    .transpose()?;
                Ok((function_name(name)?, args))
            })
            .collect::<Result<Vec<_>>>()?;
        let (notices, dropped) = self.drop_each(functions, statement.if_exists, false, may_drop)?;
        Ok((
            Completion::tag("DROP FUNCTION").with_notice(notices),
            dropped,
        ))
    }

    /// Drops each `name[(types)]` (aggregates with `DROP AGGREGATE`, other
    /// functions otherwise) that `may_drop` allows; returns the notices for
    /// those that did not exist with `IF EXISTS`, and the dropped
    /// definitions.
    fn drop_each(
        &self,
        items: Vec<(String, Option<Vec<SqlType>>)>,
        if_exists: bool,
        aggregate: bool,
        may_drop: MayDrop<'_>,
    ) -> Result<(Option<String>, Vec<FunctionDef>)> {
        let what = if aggregate { "aggregate" } else { "function" };
        let mut notices = Vec::new();
        let mut dropped = Vec::new();
        for (name, args) in items {
            let described = match &args {
                Some(args) => quiver_udf_registry::signature(&name, args),
                None => name.clone(),
            };
            if let Some(def) = self.registry.find(&name, args.as_deref())? {
                may_drop(&def)?;
            }
            match self
                .registry
                .drop_function(&name, args.as_deref(), aggregate)?
            {
                Some(def) => dropped.push(def),
                None if if_exists => {
                    notices.push(format!("{what} {described} does not exist, skipping"));
                }
                None => return Err(quiver_udf_registry::Error::FunctionNotFound(described).into()),
            }
        }
        Ok(((!notices.is_empty()).then(|| notices.join("\n")), dropped))
    }
}

/// The module form of `CREATE AGGREGATE`: PostgreSQL's option list, with
/// the accumulator in a component instead of SFUNC and friends.
fn translate_aggregate(statement: CreateAggregate) -> Result<CreateFunction> {
    let name = function_name(&statement.name)?;
    let args = sql_types(&statement.args)?;
    let (mut module, mut symbol, mut limits) = (None, None, Limits::default());
    let mut grants = Grants::default();
    for (option, value) in &statement.options {
        let text = || match value {
            AggregateOption::Text(text) => Ok(text.clone()),
            _ => Err(Error::InvalidFunctionDefinition(format!(
                "aggregate attribute \"{option}\" takes a string"
            ))),
        };
        match option.as_str() {
            "module" => module = Some(text()?),
            "symbol" => symbol = Some(text()?),
            "max_memory" => limits.max_memory = Some(parse_bytes(&text()?)?),
            "time_limit" => limits.time_limit_ms = Some(parse_millis(&text()?)?),
            "keyvalue" => grants.keyvalue = parse_bucket_grants(&text()?)?,
            "files" => grants.files = parse_file_grants(&text()?)?,
            "log" => grants.log = parse_log_grant(&text()?)?,
            // Every Wasm aggregate runs in parallel stages.
            "parallel" => {}
            "combinefunc" | "finalfunc" | "initcond" => {
                return Err(Error::InvalidFunctionDefinition(format!(
                    "{} belongs to the SFUNC form: give SFUNC and STYPE too, or only MODULE",
                    option.to_uppercase()
                )));
            }
            other => {
                return Err(Error::Syntax(format!(
                    "aggregate attribute \"{other}\" not recognized"
                )));
            }
        }
    }
    let Some(module) = module else {
        return Err(Error::InvalidFunctionDefinition(
            "CREATE AGGREGATE needs MODULE = 'file.wasm': the component implementing the aggregate"
                .into(),
        ));
    };
    Ok(CreateFunction {
        name,
        kind: Kind::Aggregate,
        args,
        returns: None,
        module: if module.ends_with(".wasm") {
            ModuleSource::File(module)
        } else {
            ModuleSource::Inline(module)
        },
        symbol,
        volatility: Volatility::Immutable,
        strict: None,
        limits,
        grants,
        or_replace: statement.or_replace,
    })
}

/// The buckets of `quiver.wasm.keyvalue = 'rates:read, hits:read-write'`
/// (`name` alone is read-only); empty text grants none.
fn parse_bucket_grants(text: &str) -> Result<Vec<BucketGrant>> {
    let mut grants: Vec<BucketGrant> = Vec::new();
    for item in text.split(',').filter(|item| !item.trim().is_empty()) {
        let grant = BucketGrant::parse(item).ok_or_else(|| {
            Error::InvalidParameterValue(format!(
                "invalid value for parameter \"quiver.wasm.keyvalue\": \"{}\" \
                 (give bucket:read or bucket:read-write, separated by commas)",
                item.trim()
            ))
        })?;
        match grants.iter_mut().find(|g| g.bucket == grant.bucket) {
            Some(same) => same.write |= grant.write,
            None => grants.push(grant),
        }
    }
    Ok(grants)
}

/// `quiver.wasm.log = on`: whether the guest's stdout and stderr go to the
/// server's log (PostgreSQL's spellings of a boolean).
fn parse_log_grant(text: &str) -> Result<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(Error::InvalidParameterValue(format!(
            "parameter \"quiver.wasm.log\" requires a Boolean value, not \"{text}\""
        ))),
    }
}

/// The directories of `quiver.wasm.files = 'lookup, models'`: names of the
/// server's `--wasm-files` (their paths are filled in by the registry).
fn parse_file_grants(text: &str) -> Result<Vec<FileGrant>> {
    let mut grants: Vec<FileGrant> = Vec::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let valid = item
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(Error::InvalidParameterValue(format!(
                "invalid value for parameter \"quiver.wasm.files\": \"{item}\" (give names of the server's --wasm-files directories, separated by commas)"
            )));
        }
        if !grants.iter().any(|g| g.name == item) {
            grants.push(FileGrant {
                name: item.to_string(),
                path: Default::default(),
            });
        }
    }
    Ok(grants)
}

/// PostgreSQL's classic form of `CREATE AGGREGATE`, over Wasm functions.
fn translate_folded(statement: CreateAggregate) -> Result<CreateFolded> {
    let name = function_name(&statement.name)?;
    let args = sql_types(&statement.args)?;
    let (mut stype, mut sfunc, mut combinefunc, mut finalfunc, mut initcond) =
        (None, None, None, None, None);
    for (option, value) in &statement.options {
        match (option.as_str(), value) {
            ("stype", AggregateOption::Type(t)) => stype = Some(SqlType::from_ast(t)?),
            ("sfunc", AggregateOption::Function(f)) => sfunc = Some(function_name(f)?),
            ("combinefunc", AggregateOption::Function(f)) => {
                combinefunc = Some(function_name(f)?);
            }
            ("finalfunc", AggregateOption::Function(f)) => finalfunc = Some(function_name(f)?),
            ("initcond", AggregateOption::Text(t)) => initcond = Some(t.clone()),
            ("parallel", _) => {}
            (
                "module" | "symbol" | "max_memory" | "time_limit" | "keyvalue" | "files" | "log",
                _,
            ) => {
                return Err(Error::InvalidFunctionDefinition(format!(
                    "{} belongs to the MODULE form; the SFUNC form runs its functions with their own settings",
                    option.to_uppercase()
                )));
            }
            (other, _) => {
                return Err(Error::Syntax(format!(
                    "aggregate attribute \"{other}\" not recognized"
                )));
            }
        }
    }
    let (Some(stype), Some(sfunc)) = (stype, sfunc) else {
        return Err(Error::InvalidFunctionDefinition(
            "aggregate stype and sfunc must both be specified".into(),
        ));
    };
    Ok(CreateFolded {
        name,
        args,
        stype,
        sfunc,
        combinefunc,
        finalfunc,
        initcond,
        or_replace: statement.or_replace,
    })
}

fn translate_create(statement: ast::CreateFunction) -> Result<CreateFunction> {
    let unsupported = |what: &str| {
        Err(Error::FeatureNotSupported(format!(
            "{what} is not supported for Wasm functions"
        )))
    };
    match &statement.language {
        Some(language)
            if language
                .value
                .eq_ignore_ascii_case(quiver_catalog::WASM_LANGUAGE) => {}
        Some(language) => {
            return Err(Error::FeatureNotSupported(format!(
                "language \"{}\" is not supported: Quiver functions are LANGUAGE wasm",
                language.value
            )));
        }
        None => {
            return Err(Error::InvalidFunctionDefinition(
                "no language specified: Quiver functions are LANGUAGE wasm".into(),
            ));
        }
    }
    if statement.temporary {
        return unsupported("CREATE TEMPORARY FUNCTION");
    }
    if statement.or_alter {
        return unsupported("CREATE OR ALTER");
    }
    if statement.options.is_some()
        || statement.using.is_some()
        || statement.remote_connection.is_some()
    {
        return unsupported("OPTIONS, USING and REMOTE");
    }
    let name = function_name(&statement.name)?;
    let declared = statement.args.as_deref().unwrap_or_default();
    // `f(TABLE, ...)`: a transform, its table first.
    let transform = declared.first().is_some_and(is_table_argument);
    if declared.iter().skip(1).any(is_table_argument) {
        return unsupported("a TABLE argument after the first");
    }
    let args = declared
        .iter()
        .skip(usize::from(transform))
        .map(argument)
        .collect::<Result<Vec<_>>>()?;
    let (kind, returns) = match &statement.return_type {
        Some(FunctionReturnType::DataType(ast::DataType::Table(None))) if transform => {
            (Kind::Transform, None)
        }
        _ if transform => {
            return Err(Error::InvalidFunctionDefinition(
                "a function taking a TABLE returns TABLE: its columns are described by the component for each query".into(),
            ));
        }
        Some(FunctionReturnType::DataType(ast::DataType::Table(None))) => {
            return Err(Error::InvalidFunctionDefinition(
                "RETURNS TABLE without columns is for transforms, which take a TABLE first; a table function declares its columns: RETURNS TABLE (name type, ...)".into(),
            ));
        }
        Some(FunctionReturnType::DataType(ast::DataType::Table(Some(columns)))) => {
            let columns = columns
                .iter()
                .map(|c| {
                    Ok(TableColumn {
                        name: folded(&c.name),
                        ty: SqlType::from_ast(&c.data_type)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            (Kind::Table { columns }, None)
        }
        Some(FunctionReturnType::DataType(t)) => (Kind::Scalar, Some(SqlType::from_ast(t)?)),
        Some(FunctionReturnType::SetOf(_)) => {
            return unsupported("RETURNS SETOF (use RETURNS TABLE (...))");
        }
        None => {
            return Err(Error::InvalidFunctionDefinition(
                "function result type must be specified".into(),
            ));
        }
    };
    let (module, symbol) = match statement.function_body {
        Some(CreateFunctionBody::AsBeforeOptions { body, link_symbol }) => {
            let body = string_literal(&body, "the module")?;
            match link_symbol {
                Some(symbol) => (
                    // A stored module by its hash, as pg_dump writes it
                    // (`pg_proc.probin`), or a file.
                    match body.strip_prefix("sha256:") {
                        Some(sha256) => ModuleSource::Stored(sha256.to_ascii_lowercase()),
                        None => ModuleSource::File(body),
                    },
                    Some(string_literal(
                        &symbol,
                        "the function's name in the module",
                    )?),
                ),
                None => (ModuleSource::Inline(body), None),
            }
        }
        Some(CreateFunctionBody::AsAfterOptions(body)) => (
            ModuleSource::Inline(string_literal(&body, "the module")?),
            None,
        ),
        Some(_) => return unsupported("a SQL function body"),
        None => {
            return Err(Error::InvalidFunctionDefinition(
                "no function body specified: give the module with AS '...'".into(),
            ));
        }
    };
    let volatility = match statement.behavior {
        Some(FunctionBehavior::Immutable) => Volatility::Immutable,
        Some(FunctionBehavior::Stable) => Volatility::Stable,
        Some(FunctionBehavior::Volatile) | None => Volatility::Volatile,
    };
    let strict = statement.called_on_null.map(|c| match c {
        FunctionCalledOnNull::Strict | FunctionCalledOnNull::ReturnsNullOnNullInput => true,
        FunctionCalledOnNull::CalledOnNullInput => false,
    });
    let mut limits = Limits::default();
    let mut grants = Grants::default();
    for param in &statement.set_params {
        // `quiver.wasm.keyvalue`, or `"quiver.wasm.keyvalue"` as pg_dump
        // quotes it.
        let option = param
            .name
            .0
            .iter()
            .map(|part| {
                part.as_ident()
                    .map_or_else(|| part.to_string(), |i| i.value.clone())
            })
            .collect::<Vec<_>>()
            .join(".")
            .to_ascii_lowercase();
        let value = match &param.value {
            FunctionSetValue::Values(values) if values.len() == 1 => {
                Some(string_literal(&values[0], &option)?)
            }
            FunctionSetValue::Default => None,
            _ => {
                return Err(Error::InvalidParameterValue(format!(
                    "{option} takes one value"
                )));
            }
        };
        match option.as_str() {
            "quiver.wasm.max_memory" => {
                limits.max_memory = value.as_deref().map(parse_bytes).transpose()?;
            }
            "quiver.wasm.time_limit" => {
                limits.time_limit_ms = value.as_deref().map(parse_millis).transpose()?;
            }
            "quiver.wasm.keyvalue" => {
                grants.keyvalue = parse_bucket_grants(value.as_deref().unwrap_or_default())?;
            }
            "quiver.wasm.files" => {
                grants.files = parse_file_grants(value.as_deref().unwrap_or_default())?;
            }
            "quiver.wasm.log" => {
                grants.log = parse_log_grant(value.as_deref().unwrap_or("off"))?;
            }
            other => {
                // Known: quiver.wasm.max_memory, quiver.wasm.time_limit,
                // quiver.wasm.keyvalue, quiver.wasm.files and quiver.wasm.log.
                return Err(Error::UndefinedParameter(other.to_string()));
            }
        }
    }
    Ok(CreateFunction {
        name,
        kind,
        args,
        returns,
        module,
        symbol,
        volatility,
        strict,
        limits,
        grants,
        or_replace: statement.or_replace,
    })
}

/// A function name as PostgreSQL folds it: unquoted names are lower-cased;
/// `public.f` is `f`.
pub(crate) fn function_name(name: &ObjectName) -> Result<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => folded(ident),
            None => part.to_string(),
        })
        .collect();
    match parts.as_slice() {
        [name] => Ok(name.clone()),
        [schema, name] if schema == quiver_catalog::DEFAULT_SCHEMA => Ok(name.clone()),
        _ => Err(Error::FeatureNotSupported(format!(
            "functions live in schema {}: {name} is not supported",
            quiver_catalog::DEFAULT_SCHEMA
        ))),
    }
}

fn argument(arg: &OperateFunctionArg) -> Result<SqlType> {
    if matches!(arg.mode, Some(ast::ArgMode::Out | ast::ArgMode::InOut)) {
        return Err(Error::FeatureNotSupported(
            "OUT and INOUT arguments are not supported for Wasm functions".into(),
        ));
    }
    if arg.default_expr.is_some() {
        return Err(Error::FeatureNotSupported(
            "argument defaults are not supported for Wasm functions".into(),
        ));
    }
    argument_type(arg)
}

/// The SQL types of an aggregate's signature.
pub(crate) fn sql_types(types: &[ast::DataType]) -> Result<Vec<SqlType>> {
    types.iter().map(|t| Ok(SqlType::from_ast(t)?)).collect()
}

/// Whether `arg` is a transform's `TABLE` argument.
fn is_table_argument(arg: &OperateFunctionArg) -> bool {
    matches!(arg.data_type, ast::DataType::Table(None))
}

fn argument_type(arg: &OperateFunctionArg) -> Result<SqlType> {
    Ok(SqlType::from_ast(&arg.data_type)?)
}

fn string_literal(expr: &Expr, what: &str) -> Result<String> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::NationalStringLiteral(s) => Ok(s.clone()),
            Value::DollarQuotedString(s) => Ok(s.value.clone()),
            Value::Number(n, _) => Ok(n.clone()),
            _ => Err(Error::InvalidFunctionDefinition(format!(
                "{what} must be a string literal"
            ))),
        },
        Expr::Identifier(ident) => Ok(ident.value.clone()),
        _ => Err(Error::InvalidFunctionDefinition(format!(
            "{what} must be a string literal"
        ))),
    }
}

/// A unit of a quantity option and its factor to the smallest unit.
struct Units {
    units: &'static [(&'static str, u64)],
    /// Memory units are accepted in any case (`64mb`); time units are not.
    any_case: bool,
}

/// Memory units; a bare number is bytes.
const MEMORY_UNITS: Units = Units {
    units: &[
        ("", 1),
        ("b", 1),
        ("kb", 1 << 10),
        ("mb", 1 << 20),
        ("gb", 1 << 30),
    ],
    any_case: true,
};
/// Time units as PostgreSQL writes them; a bare number is milliseconds.
const TIME_UNITS: Units = Units {
    units: &[
        ("", 1),
        ("ms", 1),
        ("s", 1000),
        ("min", 60_000),
        ("h", 3_600_000),
    ],
    any_case: false,
};

/// A memory size: `64MB`, `512kB`, `1GB`, or a number of bytes.
fn parse_bytes(text: &str) -> Result<u64> {
    parse_quantity(
        text,
        &MEMORY_UNITS,
        "quiver.wasm.max_memory",
        "a size such as '64MB'",
    )
}

/// A duration in milliseconds: `500ms`, `2s`, `1min`, or a number of milliseconds.
fn parse_millis(text: &str) -> Result<u64> {
    parse_quantity(
        text,
        &TIME_UNITS,
        "quiver.wasm.time_limit",
        "a duration such as '500ms' or '2s'",
    )
}

/// A positive number with one of `units`, in the smallest unit.
fn parse_quantity(text: &str, units: &Units, option: &str, example: &str) -> Result<u64> {
    let (number, unit) = split_unit(text);
    units
        .units
        .iter()
        .find(|(name, _)| *name == unit || (units.any_case && name.eq_ignore_ascii_case(unit)))
        .and_then(|(_, factor)| {
            number
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .and_then(|n| n.checked_mul(*factor))
        })
        .ok_or_else(|| {
            Error::InvalidParameterValue(format!(
                "invalid value for {option}: \"{text}\" (use {example})"
            ))
        })
}

fn split_unit(text: &str) -> (&str, &str) {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    (&text[..split], text[split..].trim())
}

/// Keeps one session's DataFusion function registry in step with the
/// server's Wasm functions.
#[derive(Default)]
pub(crate) struct SessionFunctions {
    /// The registry generation last applied, and the names it registered.
    applied: Mutex<(u64, HashSet<String>)>,
}

impl SessionFunctions {
    /// Registers every Wasm function in `ctx` (and deregisters dropped
    /// ones) if the registry changed since the last call.
    pub(crate) fn refresh(&self, ctx: &SessionContext, registry: &FunctionRegistry) {
        let generation = registry.generation();
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        if applied.0 == generation {
            return;
        }
        let functions = registry.functions();
        for gone in applied.1.iter() {
            // Dropped, or maybe now of another kind: forget every kind.
            ctx.deregister_udf(gone);
            ctx.deregister_udaf(gone);
            ctx.deregister_udtf(gone);
        }
        let modules = registry.module_dir().cloned();
        for (name, overloads) in &functions {
            match overloads.first().map(|f| &f.def().kind) {
                Some(Kind::Aggregate) => ctx.register_udaf(WasmAggregateUdf::new_udaf(
                    name,
                    overloads.clone(),
                    modules.clone(),
                )),
                Some(Kind::Table { .. }) => ctx.register_udtf(
                    name,
                    Arc::new(WasmTableFunction::new(
                        name,
                        overloads.clone(),
                        modules.clone(),
                    )),
                ),
                // Planned by `WasmTransforms`, from the registry.
                Some(Kind::Transform) => {}
                Some(Kind::Folded(_)) => {
                    let parts = overloads
                        .iter()
                        .map(|f| registry.folded_parts(f.def()))
                        .collect::<quiver_udf_registry::Result<Vec<_>>>();
                    match parts {
                        Ok(parts) => ctx.register_udaf(FoldedAggregateUdf::new_udaf(
                            name,
                            parts,
                            overloads.clone(),
                            modules.clone(),
                        )),
                        Err(e) => {
                            tracing::error!(aggregate = %name, error = %e, "aggregate left out");
                        }
                    }
                }
                Some(Kind::Scalar) | None => ctx.register_udf(WasmScalarUdf::new_udf(
                    name,
                    overloads.clone(),
                    modules.clone(),
                )),
            }
        }
        *applied = (generation, functions.into_keys().collect());
    }
}

/// `quiver.functions`: one row per Wasm function overload.
#[derive(Debug)]
pub(crate) struct FunctionsTable {
    registry: Arc<FunctionRegistry>,
    schema: SchemaRef,
}

impl FunctionsTable {
    pub(crate) fn new(registry: Arc<FunctionRegistry>) -> Self {
        let text = |name: &str| Field::new(name, DataType::Utf8, false);
        let schema = Arc::new(Schema::new(vec![
            text("name"),
            text("kind"),
            text("abi"),
            text("arguments"),
            text("returns"),
            text("symbol"),
            text("module_sha256"),
            Field::new("module_size", DataType::Int64, false),
            text("volatility"),
            Field::new("strict", DataType::Boolean, false),
            Field::new("max_memory", DataType::Int64, false),
            Field::new("time_limit_ms", DataType::Int64, false),
            Field::new("version", DataType::Int64, false),
            text("created_at"),
            // What it may reach beyond its arguments: `keyvalue=rates:read,...`.
            text("grants"),
        ]));
        Self { registry, schema }
    }

    fn batch(&self) -> DfResult<RecordBatch> {
        let defs = self.registry.definitions();
        let runtime = self.registry.runtime();
        let text = |f: &dyn Fn(&quiver_udf_registry::FunctionDef) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(defs.iter().map(f)))
        };
        let int = |f: &dyn Fn(&quiver_udf_registry::FunctionDef) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(defs.iter().map(f)))
        };
        let columns = vec![
            text(&|d| d.name.clone()),
            text(&|d| d.kind.name().into()),
            text(&|d| d.abi.name().into()),
            text(&|d| {
                d.args
                    .iter()
                    .map(|t| t.pg_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            text(&|d| d.result_text()),
            text(&|d| d.symbol.clone()),
            text(&|d| d.module_sha256.clone()),
            int(&|d| d.module_size as i64),
            text(&|d| format!("{:?}", d.volatility).to_lowercase()),
            Arc::new(BooleanArray::from_iter(defs.iter().map(|d| Some(d.strict)))),
            int(&|d| runtime.limits(&d.limits).max_memory as i64),
            int(&|d| runtime.limits(&d.limits).time_limit_ms as i64),
            int(&|d| d.version as i64),
            text(&|d| d.created_at.clone()),
            text(&|d| d.grants.text()),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[async_trait]
impl SystemRows for FunctionsTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn rows(&self) -> DfResult<RecordBatch> {
        self.batch()
    }
}

/// `quiver.function_stats`: what each Wasm function overload did, summed
/// over every process that ran it (see `quiver_udf_registry::usage`), like
/// PostgreSQL's `pg_stat_user_functions`. Executors of a cluster report
/// about once a second, so their calls show up to a second late.
#[derive(Debug)]
pub(crate) struct FunctionStatsTable {
    registry: Arc<FunctionRegistry>,
    schema: SchemaRef,
}

impl FunctionStatsTable {
    pub(crate) fn new(registry: Arc<FunctionRegistry>) -> Self {
        let text = |name: &str| Field::new(name, DataType::Utf8, false);
        let int = |name: &str| Field::new(name, DataType::Int64, false);
        let schema = Arc::new(Schema::new(vec![
            text("name"),
            text("arguments"),
            int("calls"),
            int("rows"),
            int("errors"),
            Field::new("total_time_ms", DataType::Float64, false),
            int("bucket_reads"),
            int("bucket_writes"),
        ]));
        Self { registry, schema }
    }
}

#[async_trait]
impl SystemRows for FunctionStatsTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn rows(&self) -> DfResult<RecordBatch> {
        let totals = self
            .registry
            .usage()
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let defs = self.registry.definitions();
        let usage: Vec<Usage> = defs
            .iter()
            .map(|d| totals.get(&d.signature()).copied().unwrap_or_default())
            .collect();
        let int = |f: &dyn Fn(&Usage) -> u64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                usage
                    .iter()
                    .map(|u| i64::try_from(f(u)).unwrap_or(i64::MAX)),
            ))
        };
        let columns = vec![
            Arc::new(StringArray::from_iter_values(
                defs.iter().map(|d| d.name.clone()),
            )) as ArrayRef,
            Arc::new(StringArray::from_iter_values(defs.iter().map(|d| {
                d.args
                    .iter()
                    .map(|t| t.pg_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            }))),
            int(&|u| u.calls),
            int(&|u| u.rows),
            int(&|u| u.errors),
            Arc::new(Float64Array::from_iter_values(
                usage.iter().map(|u| u.time_ns as f64 / 1e6),
            )),
            int(&|u| u.bucket_reads),
            int(&|u| u.bucket_writes),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse_the_postgresql_way() {
        assert_eq!(parse_bytes("64MB").ok(), Some(64 << 20));
        assert_eq!(parse_bytes("512kB").ok(), Some(512 << 10));
        assert_eq!(parse_bytes("1000").ok(), Some(1000));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("0").is_err());
        assert_eq!(parse_millis("500ms").ok(), Some(500));
        assert_eq!(parse_millis("2s").ok(), Some(2000));
        assert_eq!(parse_millis("250").ok(), Some(250));
        assert!(parse_millis("2 fortnights").is_err());
        // Memory units in any case; time units as PostgreSQL spells them.
        assert_eq!(parse_bytes("64mb").ok(), Some(64 << 20));
        assert!(parse_millis("2S").is_err());
    }
}
