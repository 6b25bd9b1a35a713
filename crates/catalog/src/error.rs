use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// Errors of the durable catalog.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `CREATE TABLE` of a name that is taken.
    #[error("relation \"{0}\" already exists")]
    TableExists(String),
    /// `DROP TABLE` (or another DDL statement) naming a table that is not there.
    #[error("table \"{0}\" does not exist")]
    TableNotFound(String),
    /// `CREATE SCHEMA` of a name that is taken.
    #[error("schema \"{0}\" already exists")]
    SchemaExists(String),
    /// A statement naming a schema that is not there.
    #[error("schema \"{0}\" does not exist")]
    SchemaNotFound(String),
    /// `CREATE` of an unqualified name when no schema of the search path exists.
    #[error("no schema has been selected to create in")]
    NoSchemaSelected,
    /// `ALTER TABLE ... ADD COLUMN` of a name a column has.
    #[error("{0}")]
    DuplicateColumn(String),
    /// A statement naming a column the table does not have.
    #[error("{0}")]
    UndefinedColumn(String),
    /// `DROP VIEW` naming a view that is not there.
    #[error("view \"{0}\" does not exist")]
    ViewNotFound(String),
    /// A statement naming a sequence that is not there.
    #[error("sequence \"{0}\" does not exist")]
    SequenceNotFound(String),
    /// A relation others depend on (a sequence a column's default uses).
    #[error("{0}")]
    DependentObjects(String),
    /// `nextval` past the end of a sequence that does not cycle.
    #[error("{0}")]
    SequenceLimit(String),
    /// A value outside what may be stored (`setval` outside the sequence's bounds).
    #[error("{0}")]
    OutOfRange(String),
    /// An option with a value it cannot take (`INCREMENT 0`).
    #[error("{0}")]
    InvalidParameter(String),
    /// A statement or function naming a bucket that is not there.
    #[error("bucket \"{0}\" does not exist")]
    BucketNotFound(String),
    /// `DROP INDEX` naming an index that is not there.
    #[error("index \"{0}\" does not exist")]
    IndexNotFound(String),
    /// A statement for one kind of relation naming another (`DROP TABLE`
    /// of a view).
    #[error("{0}")]
    WrongObjectType(String),
    /// A statement the catalog cannot store (for example a table outside `public`).
    #[error("{0}")]
    Unsupported(String),
    /// Another statement changed the files a statement was to replace.
    #[error("{0}")]
    SerializationFailure(String),
    /// A table's files could not be had to themselves in time.
    #[error("{0}")]
    LockNotAvailable(String),
    /// Two rows with equal keys of a unique index (or constraint).
    #[error("duplicate key value violates unique constraint \"{constraint}\"")]
    UniqueViolation { constraint: String, detail: String },
    /// A row referencing a key no row has, or a row referenced no more
    /// (`FOREIGN KEY`): `message` says which, as PostgreSQL does.
    #[error("{message}")]
    ForeignKeyViolation { message: String, detail: String },
    /// A unique index (or constraint) added to a table whose rows do not
    /// keep it.
    #[error("could not create unique index \"{index}\"")]
    DuplicatedKeys { index: String, detail: String },
    /// RocksDB failed.
    #[error("catalog storage error: {0}")]
    Storage(#[from] rocksdb::Error),
    /// A file-system operation on the data directory failed.
    #[error("catalog I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The object store holding the tables' files failed.
    #[error("I/O error on {location}: {message}")]
    Files { location: String, message: String },
    /// A backup could not be taken or restored (`quiver backup`,
    /// `quiver restore`).
    #[error("{0}")]
    Backup(String),
    /// A stored entry could not be decoded.
    #[error("corrupt catalog entry {key:?}: {message}")]
    Corrupt { key: String, message: String },
    /// DataFusion failed while building a table.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

/// Result of catalog operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        match e {
            Error::DataFusion(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}
