use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// Errors of Wasm function registration and execution.
///
/// The frontend maps each variant to a SQLSTATE. When a Ballista job fails
/// the error reaches the frontend only as text, so the messages of the
/// execution variants keep stable wording (see `crates/sql-frontend/src/error.rs`).
#[derive(thiserror::Error)]
pub enum Error {
    /// The module, or its fit with the SQL signature, is not acceptable (42P13).
    #[error("{0}")]
    InvalidFunction(String),
    /// A function's own limit above the server's (22023).
    #[error("{0}")]
    LimitAboveCap(String),
    /// A type `CREATE FUNCTION` cannot use (42P13 in PostgreSQL as well).
    #[error("type {0} is not supported by Wasm functions")]
    UnsupportedType(String),
    /// `CREATE FUNCTION` of a signature that exists (42723).
    #[error("function {0} already exists with same argument types")]
    FunctionExists(String),
    /// `DROP FUNCTION` of something that is not there (42883).
    #[error("function {0} does not exist")]
    FunctionNotFound(String),
    /// `DROP FUNCTION name` without argument types when there are overloads (42725).
    #[error("function name \"{0}\" is not unique")]
    AmbiguousFunction(String),
    /// Dropping something another object depends on (2BP01).
    #[error("{0}")]
    DependentObjects(String),
    /// The statement's kind of routine does not match the function's (42809).
    #[error("{0}")]
    WrongKind(String),
    /// A polymorphic function refused the argument types of a call (42804).
    #[error("{0}")]
    ArgumentTypes(String),
    /// The guest trapped or reported a row error (38000).
    #[error("Wasm function {function} failed{}: {message}", row.map(|r| format!(" at row {r}")).unwrap_or_default())]
    Trap {
        function: String,
        row: Option<u64>,
        message: String,
    },
    /// A call ran past its time limit (57014).
    #[error("Wasm function {function} exceeded its time limit of {limit_ms} ms")]
    TimeLimit { function: String, limit_ms: u64 },
    /// The call's session was cancelled while it ran (57014).
    #[error("canceling statement due to user request (in Wasm function {function})")]
    Cancelled { function: String },
    /// The guest tried to grow its memory past its limit (53200).
    #[error("Wasm function {function} exceeded its memory limit of {limit_bytes} bytes")]
    MemoryLimit { function: String, limit_bytes: u64 },
    /// The guest recursed past the stack Wasm code may use (54001).
    #[error("Wasm function {function} exceeded the stack depth limit")]
    StackOverflow { function: String },
    /// A module file could not be read.
    #[error("could not read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The module directory (a local directory or an object store's
    /// prefix) could not be read or written.
    #[error("module directory {location}: {message}")]
    Store { location: String, message: String },
    /// The metadata store failed.
    #[error(transparent)]
    Catalog(#[from] quiver_catalog::Error),
    /// A stored definition could not be decoded.
    #[error("corrupt function entry {key:?}: {message}")]
    Corrupt { key: String, message: String },
    /// wasmtime failed in a way that is not the guest's fault.
    #[error("Wasm runtime error: {0}")]
    Runtime(String),
}

// Debug shows the message: errors travel through Ballista as Debug text.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Result of registry operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        DataFusionError::External(Box::new(e))
    }
}
