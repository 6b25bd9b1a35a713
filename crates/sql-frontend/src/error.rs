//! The frontend's error type and the one place where errors become SQLSTATEs.

use ballista_core::error::BallistaError;
use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use pgwire::error::{ErrorInfo, PgWireError};

/// Errors a statement can end with. Every variant maps to one SQLSTATE in
/// [`Error::sqlstate`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Planning or execution failed inside DataFusion or Ballista.
    #[error("{}", datafusion_message(.0))]
    DataFusion(#[from] DataFusionError),
    /// The durable catalog refused or failed.
    #[error(transparent)]
    Catalog(#[from] quiver_catalog::Error),
    /// A Wasm function could not be registered, dropped or run.
    #[error(transparent)]
    Function(#[from] quiver_udf_registry::Error),
    /// `CREATE FUNCTION` of a name that is taken.
    #[error("{0}")]
    DuplicateFunction(String),
    /// A `CREATE FUNCTION` statement that does not define a function.
    #[error("{0}")]
    InvalidFunctionDefinition(String),
    /// The statement could not be parsed.
    #[error("{0}")]
    Syntax(String),
    /// A name an object of its kind cannot have (a bucket's).
    #[error("{0}")]
    InvalidName(String),
    /// A value larger than PostgreSQL allows.
    #[error("{0}")]
    ProgramLimitExceeded(String),
    /// A statement nested deeper than Quiver plans.
    #[error("{0}")]
    TooComplex(String),
    /// A statement or option Quiver does not implement.
    #[error("{0}")]
    FeatureNotSupported(String),
    /// `SET`/`SHOW` of a parameter that does not exist.
    #[error("unrecognized configuration parameter \"{0}\"")]
    UndefinedParameter(String),
    /// A parameter value or statement option that is not valid.
    #[error("{0}")]
    InvalidParameterValue(String),
    /// An object (a role) that already exists.
    #[error("{0}")]
    DuplicateObject(String),
    /// An object (a role) that does not exist.
    #[error("{0}")]
    UndefinedObject(String),
    /// A relation a statement names does not exist.
    #[error("relation \"{0}\" does not exist")]
    UndefinedTable(String),
    /// `PREPARE` of a name a prepared statement has.
    #[error("prepared statement \"{0}\" already exists")]
    DuplicatePreparedStatement(String),
    /// `EXECUTE` or `DEALLOCATE` of a name no prepared statement has.
    #[error("prepared statement \"{0}\" does not exist")]
    UndefinedPreparedStatement(String),
    /// A column a statement names does not exist.
    #[error("column \"{0}\" does not exist")]
    UndefinedColumn(String),
    /// Data sent with `COPY FROM STDIN` could not be read.
    #[error("{0}")]
    BadCopyData(String),
    /// Something the role may not do or reach.
    #[error("{0}")]
    InsufficientPrivilege(String),
    /// A privilege the object does not have (`GRANT EXECUTE ON TABLE`).
    #[error("{0}")]
    InvalidGrantOperation(String),
    /// A schema that does not exist.
    #[error("schema \"{0}\" does not exist")]
    InvalidSchemaName(String),
    /// A name reserved for the system's objects (`pg_...` schemas).
    #[error("{0}")]
    ReservedName(String),
    /// A role that may not log in (`NOLOGIN`).
    #[error("{0}")]
    InvalidAuthorization(String),
    /// An object in use that cannot be changed (the session's own role).
    #[error("{0}")]
    ObjectInUse(String),
    /// An object others depend on (a role that owns tables).
    #[error("{0}")]
    DependentObjects(String),
    /// A table definition PostgreSQL refuses (two primary keys).
    #[error("{0}")]
    InvalidTableDefinition(String),
    /// A column reference that names nothing fit (an `ON CONFLICT` target
    /// no unique index matches).
    #[error("{0}")]
    InvalidColumnReference(String),
    /// Values of one type that do not become another without being told
    /// how (`ALTER COLUMN ... TYPE` of text to a number).
    #[error("{0}")]
    DatatypeMismatch(String),
    /// A foreign key that cannot be made as declared (the columns it
    /// references are no unique key).
    #[error("{0}")]
    InvalidForeignKey(String),
    /// A statement that would touch one row twice.
    #[error("{0}")]
    CardinalityViolation(String),
    /// A message that breaks the wire protocol's rules.
    #[error("{0}")]
    Protocol(String),
    /// A statement in a transaction block that an error aborted.
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    InFailedTransaction,
    /// A statement that needs a transaction block, outside one.
    #[error("{0}")]
    NoActiveTransaction(String),
    /// `RELEASE` of a savepoint that does not exist.
    /// A NULL for a `NOT NULL` column: (column, table).
    #[error("null value in column \"{0}\" of relation \"{1}\" violates not-null constraint")]
    NotNullViolation(String, String),
    /// A column that would hold NULLs made `NOT NULL` (`ALTER TABLE`).
    #[error("{0}")]
    NotNullViolationOfColumn(String),
    /// A function asked for what the session has not set up
    /// (`currval` before `nextval`).
    #[error("{0}")]
    ObjectNotInPrerequisiteState(String),
    #[error("savepoint \"{0}\" does not exist")]
    UndefinedSavepoint(String),
    /// The client cancelled the statement (CancelRequest, psql's Ctrl-C).
    #[error("canceling statement due to user request")]
    QueryCanceled,
    /// A distributed query no executor is left to run.
    #[error("{0}")]
    NoExecutors(String),
    /// A broken invariant of Quiver itself.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result of frontend operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The PostgreSQL SQLSTATE for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::DataFusion(e) => datafusion_sqlstate(e),
            Error::Catalog(e) => catalog_sqlstate(e),
            Error::Function(e) => function_sqlstate(e),
            Error::DuplicateFunction(_) => "42723",
            Error::InvalidFunctionDefinition(_) => "42P13",
            Error::Syntax(_) => "42601",
            Error::InvalidName(_) => "42602",
            Error::ProgramLimitExceeded(_) => "54000",
            Error::TooComplex(_) => "54001",
            Error::FeatureNotSupported(_) => "0A000",
            Error::UndefinedParameter(_) => "42704",
            Error::InvalidParameterValue(_) => "22023",
            Error::DuplicateObject(_) => "42710",
            Error::UndefinedObject(_) => "42704",
            Error::UndefinedTable(_) => "42P01",
            Error::DuplicatePreparedStatement(_) => "42P05",
            Error::UndefinedPreparedStatement(_) => "26000",
            Error::UndefinedColumn(_) => "42703",
            Error::BadCopyData(_) => "22P04",
            Error::Protocol(_) => "08P01",
            Error::InsufficientPrivilege(_) => "42501",
            Error::InvalidGrantOperation(_) => "0LP01",
            Error::InvalidSchemaName(_) => "3F000",
            Error::ReservedName(_) => "42939",
            Error::InvalidAuthorization(_) => "28000",
            Error::ObjectInUse(_) => "55006",
            Error::DependentObjects(_) => "2BP01",
            Error::InvalidTableDefinition(_) => "42P16",
            Error::InvalidColumnReference(_) => "42P10",
            Error::CardinalityViolation(_) => "21000",
            Error::DatatypeMismatch(_) => "42804",
            Error::InvalidForeignKey(_) => "42830",
            Error::QueryCanceled => "57014",
            Error::InFailedTransaction => "25P02",
            Error::NoActiveTransaction(_) => "25P01",
            Error::UndefinedSavepoint(_) => "3B001",
            Error::ObjectNotInPrerequisiteState(_) => "55000",
            Error::NotNullViolation(..) | Error::NotNullViolationOfColumn(_) => "23502",
            Error::NoExecutors(_) => "57P03",
            Error::Internal(_) => "XX000",
        }
    }

    /// The error as the wire protocol carries it.
    pub fn to_error_info(&self) -> ErrorInfo {
        let mut info = ErrorInfo::new(
            "ERROR".to_string(),
            self.sqlstate().to_string(),
            self.to_string(),
        );
        info.detail = self.detail();
        info
    }

    /// What the error's `DETAIL` field says, if anything.
    fn detail(&self) -> Option<String> {
        let catalog = match self {
            Error::Catalog(e) => Some(e),
            Error::DataFusion(e) => match root(e) {
                DataFusionError::External(source) => source.downcast_ref::<quiver_catalog::Error>(),
                _ => None,
            },
            _ => None,
        };
        match catalog {
            Some(
                quiver_catalog::Error::UniqueViolation { detail, .. }
                | quiver_catalog::Error::DuplicatedKeys { detail, .. }
                | quiver_catalog::Error::ForeignKeyViolation { detail, .. },
            ) => Some(detail.clone()),
            _ => None,
        }
    }
}

impl From<Error> for PgWireError {
    fn from(e: Error) -> Self {
        PgWireError::UserError(Box::new(e.to_error_info()))
    }
}

fn catalog_sqlstate(e: &quiver_catalog::Error) -> &'static str {
    use quiver_catalog::Error as C;
    match e {
        C::TableExists(_) => "42P07",
        C::SchemaExists(_) => "42P06",
        C::DuplicateColumn(_) => "42701",
        C::UndefinedColumn(_) => "42703",
        C::SchemaNotFound(_) | C::NoSchemaSelected => "3F000",
        C::TableNotFound(_) | C::ViewNotFound(_) | C::SequenceNotFound(_) => "42P01",
        C::SequenceLimit(_) => "2200H",
        C::DependentObjects(_) => "2BP01",
        C::OutOfRange(_) => "22003",
        C::InvalidParameter(_) => "22023",
        C::IndexNotFound(_) | C::BucketNotFound(_) => "42704",
        C::WrongObjectType(_) => "42809",
        C::Unsupported(_) => "0A000",
        C::SerializationFailure(_) => "40001",
        C::UniqueViolation { .. } | C::DuplicatedKeys { .. } => "23505",
        C::ForeignKeyViolation { .. } => "23503",
        C::LockNotAvailable(_) => "55P03",
        C::DataFusion(e) => datafusion_sqlstate(e),
        C::Storage(_) | C::Io { .. } | C::Files { .. } | C::Backup(_) => "58030",
        C::Corrupt { .. } => "XX001",
    }
}

fn function_sqlstate(e: &quiver_udf_registry::Error) -> &'static str {
    use quiver_udf_registry::Error as F;
    match e {
        F::InvalidFunction(_) => "42P13",
        F::UnsupportedType(_) => "0A000",
        F::LimitAboveCap(_) => "22023",
        F::FunctionExists(_) => "42723",
        F::FunctionNotFound(_) => "42883",
        F::AmbiguousFunction(_) => "42725",
        F::ArgumentTypes(_) => "42804",
        F::WrongKind(_) => "42809",
        F::DependentObjects(_) => "2BP01",
        F::Trap { .. } => "38000",
        F::TimeLimit { .. } | F::Cancelled { .. } => "57014",
        F::MemoryLimit { .. } => "53200",
        F::StackOverflow { .. } => "54001",
        F::Io { .. } | F::Store { .. } => "58030",
        F::Catalog(e) => catalog_sqlstate(e),
        F::Corrupt { .. } => "XX001",
        F::Runtime(_) => "XX000",
    }
}

/// Strips DataFusion's context wrappers down to the error that caused it.
fn root(e: &DataFusionError) -> &DataFusionError {
    match e {
        DataFusionError::Context(_, inner) => root(inner),
        DataFusionError::Diagnostic(_, inner) => root(inner),
        DataFusionError::Shared(inner) => root(inner),
        DataFusionError::ArrowError(inner, _) => match inner.as_ref() {
            ArrowError::ExternalError(source) => match source.downcast_ref::<DataFusionError>() {
                Some(inner) => root(inner),
                None => e,
            },
            _ => e,
        },
        DataFusionError::External(source) => {
            if let Some(inner) = source.downcast_ref::<DataFusionError>() {
                root(inner)
            } else if let Some(BallistaError::DataFusionError(inner)) =
                source.downcast_ref::<BallistaError>()
            {
                root(inner)
            } else {
                e
            }
        }
        _ => e,
    }
}

fn datafusion_sqlstate(e: &DataFusionError) -> &'static str {
    let e = root(e);
    match e {
        DataFusionError::SQL(_, _) => "42601",
        DataFusionError::SchemaError(error, _) => match error.as_ref() {
            SchemaError::FieldNotFound { .. } => "42703",
            SchemaError::DuplicateQualifiedField { .. }
            | SchemaError::DuplicateUnqualifiedField { .. } => "42701",
            SchemaError::AmbiguousReference { .. } => "42702",
        },
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::ArrowError(error, _) => arrow_sqlstate(error),
        DataFusionError::Plan(message) => plan_sqlstate(message),
        DataFusionError::Execution(message) => match ballista_job_failure(message) {
            Some((code, _)) => code,
            None => execution_sqlstate(message),
        },
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => "58030",
        DataFusionError::ParquetError(_) => "XX001",
        DataFusionError::Configuration(_) => "22023",
        DataFusionError::External(source) => {
            if let Some(own) = source.downcast_ref::<Error>() {
                own.sqlstate()
            } else if let Some(catalog) = source.downcast_ref::<quiver_catalog::Error>() {
                catalog_sqlstate(catalog)
            } else if let Some(function) = source.downcast_ref::<quiver_udf_registry::Error>() {
                function_sqlstate(function)
            } else if let Some(arrow) = source.downcast_ref::<ArrowError>() {
                arrow_sqlstate(arrow)
            } else {
                execution_sqlstate(&source.to_string())
            }
        }
        _ => "XX000",
    }
}

fn arrow_sqlstate(e: &ArrowError) -> &'static str {
    match e {
        ArrowError::DivideByZero => "22012",
        ArrowError::ArithmeticOverflow(_) => "22003",
        ArrowError::CastError(_) | ArrowError::ParseError(_) => "22P02",
        ArrowError::MemoryError(_) => "53200",
        ArrowError::IoError(_, _) => "58030",
        ArrowError::ExternalError(source) => execution_sqlstate(&source.to_string()),
        ArrowError::InvalidArgumentError(message) if is_not_null_violation(message) => "23502",
        _ => "22000",
    }
}

/// DataFusion reports most planning errors as text; these are the ones a
/// PostgreSQL client distinguishes by code.
fn plan_sqlstate(message: &str) -> &'static str {
    let lower = message.to_ascii_lowercase();
    if lower.starts_with("table '") && lower.ends_with("not found") {
        "42P01"
    } else if lower.contains("coerce")
        || lower.contains("common type")
        || lower.contains("common argument type")
        || lower.contains("type_coercion")
        || lower.contains("cannot be cast")
        || lower.contains("invalid function 'to_")
    {
        "42804"
    } else if lower.contains("invalid function")
        || lower.contains("no function matches")
        || (lower.starts_with("function ") && lower.contains(" does not exist"))
    {
        "42883"
    } else if lower.contains("no field named") {
        "42703"
    } else if lower.contains("not supported")
        || lower.contains("not yet supported")
        || lower.contains("not currently supported")
        || lower.starts_with("unsupported")
    {
        // `INSERT ... RETURNING`, `CHECK` and `FOREIGN KEY` constraints,
        // and the other SQL DataFusion plans none of.
        "0A000"
    } else if lower.contains("inconsistent data length across values list") {
        // PostgreSQL: "VALUES lists must all be the same length", "INSERT
        // has more expressions than target columns".
        "42601"
    } else {
        "42000"
    }
}

/// Whether `message` says a NULL was to be written to a `NOT NULL`
/// column (as Arrow or DataFusion's insert says it).
pub(crate) fn is_not_null_violation(message: &str) -> bool {
    message.contains("is declared as non-nullable but contains null values")
        || message.contains("has null but schema specifies non-nullable")
}

fn execution_sqlstate(message: &str) -> &'static str {
    let lower = message.to_ascii_lowercase();
    if message.contains(quiver_udf_registry::MORE_THAN_ONE_ROW) {
        "21000"
    } else if message.contains(quiver_udf_registry::VALUE_TOO_LONG) {
        "22001"
    } else if message.contains(quiver_udf_registry::FORMAT_ERROR) {
        "22023"
    } else if message.contains(quiver_udf_registry::NULL_IDENTIFIER) {
        "22004"
    } else if message.contains(quiver_udf_registry::INVALID_DATETIME_VALUE)
        || message.contains(quiver_udf_registry::TWELVE_HOUR_CLOCK)
        || message.contains(quiver_udf_registry::INVALID_DATETIME_SYNTAX)
    {
        "22007"
    } else if message.contains(quiver_udf_registry::DATETIME_OUT_OF_RANGE) {
        "22008"
    } else if message.contains(quiver_udf_registry::PERCENTILE_OUT_OF_RANGE) {
        "22003"
    } else if lower.contains("divide by zero") || lower.contains("division by zero") {
        "22012"
    } else if is_not_null_violation(message) {
        "23502"
    } else if lower.contains("overflow") {
        "22003"
    } else if lower.contains("cannot cast") || lower.contains("cast error") {
        "22P02"
    } else {
        "22000"
    }
}

/// A failed Ballista job reaches the client as text only
/// (`Job <id> failed: ... runtime execution error: <error as Debug>`): the
/// error's type does not cross the scheduler's gRPC status. This recovers the
/// SQLSTATE and a PostgreSQL-style message from that text.
fn ballista_job_failure(message: &str) -> Option<(&'static str, String)> {
    if message.starts_with("tonic::transport::Error") {
        // The frontend could not reach the scheduler (it is down, or not
        // started yet): try again once it is up.
        let reason = message
            .split_once("message: \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map_or("the connection failed", |(reason, _)| reason);
        return Some((
            "57P03",
            format!("cannot reach the Ballista scheduler: {reason}"),
        ));
    }
    let (_, cause) = message.strip_prefix("Job ")?.split_once(" failed: ")?;
    let cause = cause
        .split_once("execution error: ")
        .map_or(cause, |(_, c)| c);
    const KNOWN: &[(&str, &str, Option<&str>)] = &[
        ("DivideByZero", "22012", Some("division by zero")),
        ("ArithmeticOverflow", "22003", None),
        ("CastError", "22P02", None),
        ("ParseError", "22P02", None),
        ("ResourcesExhausted", "53200", None),
        (quiver_udf_registry::MORE_THAN_ONE_ROW, "21000", None),
        (quiver_udf_registry::VALUE_TOO_LONG, "22001", None),
        (quiver_udf_registry::INVALID_DATETIME_VALUE, "22007", None),
        (quiver_udf_registry::TWELVE_HOUR_CLOCK, "22007", None),
        (quiver_udf_registry::INVALID_DATETIME_SYNTAX, "22007", None),
        (quiver_udf_registry::DATETIME_OUT_OF_RANGE, "22008", None),
        // quiver_udf_registry::Error's execution variants (their wording is stable).
        ("exceeded its time limit", "57014", None),
        ("canceling statement due to user request", "57014", None),
        ("exceeded its memory limit", "53200", None),
        ("exceeded the stack depth limit", "54001", None),
        ("Wasm function ", "38000", None),
        // Every executor was lost and none joined within the grace period:
        // retry once one is back.
        ("no executors remain", "57P03", None),
    ];
    let (code, text) = KNOWN
        .iter()
        .find(|(marker, _, _)| cause.contains(marker))
        // Otherwise as the same error is classed when it happens here.
        .map_or((execution_sqlstate(cause), None), |(_, code, text)| {
            (*code, *text)
        });
    Some((
        code,
        text.map_or_else(|| innermost_text(cause), str::to_string),
    ))
}

/// The message inside a Debug-printed error: `Execution("msg")` → `msg`,
/// `DataFusionError(Shared(External(msg)))` → `msg`.
fn innermost_text(cause: &str) -> String {
    let mut text = cause.trim();
    while let Some(open) = text.find('(') {
        let wrapper = &text[..open];
        if wrapper.is_empty()
            || !wrapper
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || !text.ends_with(')')
        {
            break;
        }
        text = text[open + 1..text.len() - 1].trim();
    }
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\\\"", "\""),
        None => text.to_string(),
    }
}

/// The reason inside DataFusion's "Function 'f' user-defined coercion failed
/// with: Error during planning: <reason>. No function matches ..." wrapper.
fn coercion_message(message: &str) -> Option<String> {
    let (_, reason) = message.split_once("coercion failed with: ")?;
    let reason = reason
        .strip_prefix("Error during planning: ")
        .unwrap_or(reason);
    let reason = reason
        .split(". No function matches")
        .next()
        .unwrap_or(reason);
    Some(reason.trim().to_string())
}

/// DataFusion's messages carry a kind prefix ("Error during planning: ...");
/// PostgreSQL clients expect the bare message.
fn datafusion_message(e: &DataFusionError) -> String {
    let e = root(e);
    match e {
        DataFusionError::Execution(m) => match ballista_job_failure(m) {
            Some((_, message)) => message,
            None => coercion_message(m).unwrap_or_else(|| m.clone()),
        },
        DataFusionError::Plan(m) if missing_table(m).is_some() => {
            format!(
                "relation \"{}\" does not exist",
                missing_table(m).unwrap_or_default()
            )
        }
        DataFusionError::Plan(m)
        | DataFusionError::NotImplemented(m)
        | DataFusionError::Configuration(m)
        | DataFusionError::ResourcesExhausted(m) => m.clone(),
        DataFusionError::SQL(parser, _) => parser.to_string().replace("sql parser error: ", ""),
        DataFusionError::External(source) => source.to_string(),
        DataFusionError::ArrowError(a, _) => match a.as_ref() {
            ArrowError::DivideByZero => "division by zero".to_string(),
            ArrowError::ArithmeticOverflow(m) => m.clone(),
            _ => e.strip_backtrace(),
        },
        other => other.strip_backtrace(),
    }
}

/// The relation DataFusion's "table 'quiver.public.t' not found" names,
/// as the statement wrote it: without the database, or the search path
/// an unqualified name was looked up in (see [`quiver_catalog::SEARCH_PATH`]).
fn missing_table(message: &str) -> Option<&str> {
    let name = message
        .strip_prefix("table '")?
        .strip_suffix("' not found")?;
    let name = name
        .strip_prefix(crate::server::DATABASE)
        .and_then(|n| n.strip_prefix('.'))
        .unwrap_or(name);
    Some(
        name.strip_prefix(quiver_catalog::SEARCH_PATH)
            .and_then(|n| n.strip_prefix('.'))
            .unwrap_or(name),
    )
}

/// The message of a parser error, without DataFusion's prefixes.
pub(crate) fn syntax_message(e: &DataFusionError) -> String {
    datafusion_message(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_survive_context_wrapping() {
        let e = DataFusionError::Context(
            "while planning".into(),
            Box::new(DataFusionError::ArrowError(
                Box::new(ArrowError::DivideByZero),
                None,
            )),
        );
        assert_eq!(Error::from(e).sqlstate(), "22012");
        let e = DataFusionError::Plan("table 'quiver.public.nope' not found".into());
        let e = Error::from(e);
        assert_eq!(e.sqlstate(), "42P01");
        assert_eq!(e.to_string(), "relation \"public.nope\" does not exist");
        let e = DataFusionError::Plan("table 'quiver.$search_path.nope' not found".into());
        assert_eq!(
            Error::from(e).to_string(),
            "relation \"nope\" does not exist"
        );
    }

    #[test]
    fn failed_ballista_jobs_keep_their_codes() {
        let e = DataFusionError::Execution(
            "Job 0A failed: Job failed due to stage 0 failed: Task failed due to runtime execution error: DataFusionError(Shared(External(ArrowError(DivideByZero))))".into(),
        );
        let e = Error::from(e);
        assert_eq!(
            (e.sqlstate(), e.to_string().as_str()),
            ("22012", "division by zero")
        );
        let e = DataFusionError::Execution(
            "Job 0B failed: Task failed due to runtime execution error: DataFusionError(Execution(\"guest \\\"f\\\" trapped\"))".into(),
        );
        assert_eq!(Error::from(e).to_string(), "guest \"f\" trapped");
        let (code, message) = ballista_job_failure(
            r#"tonic::transport::Error(Transport, ConnectError(ConnectError("tcp connect error", 127.0.0.1:1, Os { code: 111, kind: ConnectionRefused, message: "Connection refused" })))"#,
        )
        .expect("an unreachable scheduler");
        assert_eq!(code, "57P03");
        assert_eq!(
            message,
            "cannot reach the Ballista scheduler: Connection refused"
        );
        let (code, message) = ballista_job_failure(
            "Job 0C failed: Task failed due to runtime execution error: DataFusionError(Shared(External(DataFusionError(External(Wasm function f(bigint) failed at row 3: cannot divide 1 by 0)))))",
        )
        .expect("a job failure");
        assert_eq!(code, "38000");
        assert_eq!(
            message,
            "Wasm function f(bigint) failed at row 3: cannot divide 1 by 0"
        );
    }

    #[test]
    fn catalog_errors_keep_their_codes_through_datafusion() {
        let e: DataFusionError = quiver_catalog::Error::TableExists("t".into()).into();
        assert_eq!(Error::from(e).sqlstate(), "42P07");
    }
}
