//! What the catalog stores about a table, and how a stored table becomes a
//! DataFusion `TableProvider` again.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::catalog::TableProvider;
use datafusion::config::TableParquetOptions;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{CreateExternalTable, DdlStatement, Expr, LogicalPlan, TableType};
use datafusion::physical_plan::ExecutionPlan;
use serde::{Deserialize, Serialize};

use crate::files::Dir;
use crate::{Acl, Error, Result, SequenceOptions};

/// One table as the catalog stores it (JSON in RocksDB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    /// The schema it is in (not stored for `public`: entries made before
    /// there were other schemas have none).
    #[serde(default = "public", skip_serializing_if = "is_public")]
    pub schema: String,
    /// Its name in its schema.
    pub name: String,
    /// Managed Parquet files or an external definition.
    pub kind: TableKind,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Its owner (the role that created it; `None` for a table made
    /// before tables had owners) and the privileges granted on it.
    #[serde(flatten)]
    pub acl: Acl,
    /// The indexes `CREATE INDEX` recorded on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexEntry>,
    /// What `COMMENT ON` says about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Its `FOREIGN KEY` constraints: rows it references in other tables
    /// (or in itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKey>,
}

/// A `FOREIGN KEY` constraint: every row whose `columns` are all non-NULL
/// has a row of the table `schema.table` whose `referenced` columns (a
/// unique key of it) are equal (`MATCH SIMPLE`). Enforced (see
/// [`crate::keys`]) on writes to either table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub schema: String,
    pub table: String,
    pub referenced: Vec<String>,
    /// What deleting a referenced row does to the rows referencing it.
    #[serde(default, skip_serializing_if = "KeyAction::is_no_action")]
    pub on_delete: KeyAction,
    /// What changing a referenced key does (`NO ACTION` or `RESTRICT`).
    #[serde(default, skip_serializing_if = "KeyAction::is_no_action")]
    pub on_update: KeyAction,
    /// `DEFERRABLE`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deferrable: bool,
    /// `INITIALLY DEFERRED`: inside a transaction block, checked at
    /// `COMMIT` only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deferred: bool,
}

/// A foreign key's referential action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyAction {
    /// The rows referencing it must be gone by the statement's end (or
    /// the block's, when the key is deferred).
    #[default]
    NoAction,
    /// As `NoAction`, never deferred.
    Restrict,
    /// The rows referencing it go too.
    Cascade,
    /// The rows referencing it lose their reference (their key columns
    /// are set to NULL).
    SetNull,
}

impl KeyAction {
    fn is_no_action(&self) -> bool {
        *self == KeyAction::NoAction
    }

    /// As `pg_constraint.confdeltype` says it: `a`, `r`, `c`, `n`.
    pub fn code(self) -> &'static str {
        match self {
            KeyAction::NoAction => "a",
            KeyAction::Restrict => "r",
            KeyAction::Cascade => "c",
            KeyAction::SetNull => "n",
        }
    }

    /// As SQL writes it: `NO ACTION`, `RESTRICT`, `CASCADE`, `SET NULL`.
    pub fn sql(self) -> &'static str {
        match self {
            KeyAction::NoAction => "NO ACTION",
            KeyAction::Restrict => "RESTRICT",
            KeyAction::Cascade => "CASCADE",
            KeyAction::SetNull => "SET NULL",
        }
    }
}

impl ForeignKey {
    /// The table it references.
    pub fn referenced_table(&self) -> QualifiedName {
        QualifiedName::new(self.schema.clone(), self.table.clone())
    }

    /// Whether it references the table `name`.
    pub fn references(&self, name: &QualifiedName) -> bool {
        self.schema == name.schema && self.table == name.name
    }
}

/// An index recorded on a table: by `CREATE INDEX`, or by a `PRIMARY
/// KEY` or `UNIQUE` constraint, which PostgreSQL backs with an index of
/// the constraint's name. No structure is kept: a managed table's rows are
/// in Parquet files that queries prune by the statistics in their
/// footers. A unique index is enforced (see [`crate::keys`]): every write
/// to the table is checked against its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub name: String,
    /// What it indexes, as written: column names or expressions (a
    /// unique index has column names only).
    pub keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Uniqueness::is_none")]
    pub unique: Uniqueness,
}

/// Whether an index's keys are unique, and what says so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Uniqueness {
    /// Any number of rows may have equal keys.
    #[default]
    None,
    /// `CREATE UNIQUE INDEX`.
    Index,
    /// A `UNIQUE` constraint (named as its index).
    Constraint,
    /// The `PRIMARY KEY` (its columns are `NOT NULL` too).
    PrimaryKey,
}

impl Uniqueness {
    fn is_none(&self) -> bool {
        *self == Uniqueness::None
    }
}

impl IndexEntry {
    /// Whether no two rows may have equal keys (rows with a NULL key
    /// excepted, as in PostgreSQL).
    pub fn is_unique(&self) -> bool {
        self.unique != Uniqueness::None
    }

    /// The constraint the index backs, as `pg_constraint.contype` says:
    /// `p` or `u`.
    pub fn constraint_type(&self) -> Option<&'static str> {
        match self.unique {
            Uniqueness::PrimaryKey => Some("p"),
            Uniqueness::Constraint => Some("u"),
            Uniqueness::None | Uniqueness::Index => None,
        }
    }
}

/// How a table's rows are found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TableKind {
    /// Parquet files in `<data-dir>/tables/<id>/`, owned by the catalog.
    Managed {
        /// Directory name under `<data-dir>/tables`.
        id: String,
        /// The table's columns.
        columns: Vec<ColumnEntry>,
    },
    /// Files the user owns, described by the `CREATE EXTERNAL TABLE` statement
    /// that created the table; it is replayed through DataFusion at start-up.
    External {
        /// The defining statement, as DataFusion's parser prints it.
        definition: String,
    },
    /// A sequence: a counter (see [`crate::sequences`]).
    Sequence {
        /// The key of its counter.
        id: String,
        options: SequenceOptions,
    },
    /// A view: no rows of its own, only the `CREATE VIEW` statement that
    /// defined it, planned again by every statement that reads it (which
    /// so reads the tables as they are then).
    View {
        /// The defining statement, as DataFusion's parser prints it.
        definition: String,
        /// Its columns when it was created, as catalogs list them.
        #[serde(default)]
        columns: Vec<ColumnEntry>,
    },
}

/// The key of a column's field metadata holding its `DEFAULT` expression,
/// as SQL text: a managed or temporary table's schema carries its
/// columns' defaults, and each session plans them anew (see
/// [`crate::RelationPlanner::plan_default`]).
pub const COLUMN_DEFAULT: &str = "quiver.default";

/// The key of a column's field metadata holding what `COMMENT ON COLUMN`
/// says about it.
pub const COLUMN_COMMENT: &str = "quiver.comment";

/// One column of a managed table. The type is Arrow's own text form of a
/// `DataType`, which Arrow parses back; the field's metadata says what
/// Arrow's type cannot (a `character(4)` column is a `Utf8` marked so).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnEntry {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl TableKind {
    pub(crate) fn managed(id: String, schema: &Schema) -> Self {
        TableKind::Managed {
            id,
            columns: columns_of(schema),
        }
    }
}

/// The columns of `schema`, as stored.
pub(crate) fn columns_of(schema: &Schema) -> Vec<ColumnEntry> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnEntry {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
            metadata: f.metadata().clone().into_iter().collect(),
        })
        .collect()
}

/// A view as the catalog lists it outside a session (in `pg_class`, say):
/// its columns as created. Reading it takes a session, which plans it
/// (see [`crate::RelationPlanner`]).
#[derive(Debug)]
pub(crate) struct ListedView {
    pub(crate) schema: SchemaRef,
}

#[async_trait::async_trait]
impl TableProvider for ListedView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        datafusion::common::plan_err!("a view is read in a session, which plans it")
    }
}

fn public() -> String {
    crate::DEFAULT_SCHEMA.to_string()
}

fn is_public(schema: &str) -> bool {
    schema == crate::DEFAULT_SCHEMA
}

/// A stored relation's name: its schema and its name there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// `name` in `public`.
    pub fn public(name: impl Into<String>) -> Self {
        Self::new(crate::DEFAULT_SCHEMA, name)
    }

    /// `name` in this one's schema.
    pub fn sibling(&self, name: impl Into<String>) -> Self {
        Self::new(self.schema.clone(), name)
    }

    /// The key of the relation's entry in the store: its bare name in
    /// `public` (as entries were keyed before there were other schemas),
    /// the schema and the name apart by a NUL otherwise.
    pub(crate) fn key(&self) -> String {
        match is_public(&self.schema) {
            true => self.name.clone(),
            false => format!("{}\0{}", self.schema, self.name),
        }
    }
}

/// As PostgreSQL names a relation in messages: bare in `public`,
/// qualified elsewhere.
impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match is_public(&self.schema) {
            true => f.write_str(&self.name),
            false => write!(f, "{}.{}", self.schema, self.name),
        }
    }
}

impl TableEntry {
    /// Its schema and name.
    pub fn qualified(&self) -> QualifiedName {
        QualifiedName::new(self.schema.clone(), self.name.clone())
    }

    /// The relation as a sequence, if it is one.
    pub fn sequence(&self) -> Option<crate::Sequence> {
        match &self.kind {
            TableKind::Sequence { id, options } => Some(crate::Sequence {
                name: self.name.clone(),
                id: id.clone(),
                options: options.clone(),
            }),
            _ => None,
        }
    }

    /// The columns of a managed table or a view (as it was created), as
    /// Arrow fields; `None` for other relations, and for columns stored
    /// unreadably.
    pub fn columns(&self) -> Option<SchemaRef> {
        match &self.kind {
            TableKind::Managed { columns, .. } | TableKind::View { columns, .. } => {
                self.managed_schema(columns).ok()
            }
            _ => None,
        }
    }

    /// The Arrow schema of a managed table.
    pub(crate) fn managed_schema(&self, columns: &[ColumnEntry]) -> Result<SchemaRef> {
        let fields = columns
            .iter()
            .map(|c| {
                let data_type = DataType::from_str(&c.data_type).map_err(|e| Error::Corrupt {
                    key: self.name.clone(),
                    message: format!("column {}: {e}", c.name),
                })?;
                Ok(Field::new(&c.name, data_type, c.nullable)
                    .with_metadata(c.metadata.clone().into_iter().collect()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }
}

/// A listing table of `urls` with `like`'s format and schema.
pub(crate) fn listing_like(
    like: &ListingTable,
    urls: Vec<ListingTableUrl>,
) -> Result<Arc<dyn TableProvider>> {
    listing_with_schema(like, urls, like.schema())
}

/// A listing table as `like` is but with the columns `schema`, over `urls`.
pub(crate) fn listing_with_schema(
    like: &ListingTable,
    urls: Vec<ListingTableUrl>,
    schema: SchemaRef,
) -> Result<Arc<dyn TableProvider>> {
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(like.options().clone())
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// The URLs a table provider reads, if it is a `ListingTable` (a managed
/// table, an external one, or a transaction block's view of a managed
/// table).
pub(crate) fn listing_urls(provider: &dyn TableProvider) -> Vec<&str> {
    provider
        .downcast_ref::<ListingTable>()
        .map(|listing| {
            listing
                .table_paths()
                .iter()
                .map(ListingTableUrl::as_str)
                .collect()
        })
        .unwrap_or_default()
}

/// A `ListingTable` over the Parquet files of a managed table's directory,
/// written with `parquet` (the session's Parquet options).
pub(crate) fn managed_table(
    dir: &Dir,
    schema: SchemaRef,
    parquet: &TableParquetOptions,
) -> Result<Arc<dyn TableProvider>> {
    // A trailing slash makes the URL a directory, which `INSERT` appends files to.
    let url = dir.url()?;
    let format = ParquetFormat::default().with_options(parquet.clone());
    let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// `provider` with the defaults its schema's fields carry
/// ([`COLUMN_DEFAULT`]) planned by `plan`, for `INSERT` to fill in the
/// columns it does not name; as it is if it has none.
pub(crate) fn with_defaults(
    provider: Arc<dyn TableProvider>,
    plan: impl Fn(&str) -> datafusion::error::Result<Expr>,
) -> datafusion::error::Result<Arc<dyn TableProvider>> {
    let schema = provider.schema();
    let defaults = schema
        .fields()
        .iter()
        .filter_map(|field| {
            let sql = field.metadata().get(COLUMN_DEFAULT)?;
            Some(plan(sql).map(|expr| (field.name().clone(), expr)))
        })
        .collect::<datafusion::error::Result<std::collections::HashMap<_, _>>>()?;
    let Some(listing) = provider.downcast_ref::<ListingTable>() else {
        return Ok(provider);
    };
    if defaults.is_empty() {
        return Ok(provider);
    }
    let config = ListingTableConfig::new_with_multi_paths(listing.table_paths().clone())
        .with_listing_options(listing.options().clone())
        .with_schema(schema);
    Ok(Arc::new(
        ListingTable::try_new(config)?.with_column_defaults(defaults),
    ))
}

/// Builds an external table the way DataFusion's own `CREATE EXTERNAL TABLE`
/// does: through the session's table factory for the file type.
pub(crate) async fn external_table(
    state: &SessionState,
    command: &CreateExternalTable,
) -> Result<Arc<dyn TableProvider>> {
    let file_type = command.file_type.to_uppercase();
    let factory = state
        .table_factories()
        .get(file_type.as_str())
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "unsupported file type \"{}\" for an external table",
                command.file_type
            ))
        })?;
    Ok(factory.create(state, command).await?)
}

/// Plans a stored `CREATE EXTERNAL TABLE` statement again.
pub(crate) async fn replay_external(
    state: &SessionState,
    definition: &str,
) -> Result<Arc<dyn TableProvider>> {
    match state.create_logical_plan(definition).await? {
        LogicalPlan::Ddl(DdlStatement::CreateExternalTable(command)) => {
            external_table(state, &command).await
        }
        other => Err(Error::Corrupt {
            key: definition.to_string(),
            message: format!("not a CREATE EXTERNAL TABLE statement: {}", other.display()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::TimeUnit;

    use super::*;

    #[test]
    fn managed_columns_round_trip_through_text() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new("d", DataType::Date32, true),
            Field::new("amount", DataType::Decimal128(38, 4), true),
            Field::new("b", DataType::Binary, true),
            Field::new("v", DataType::Utf8View, true),
            Field::new("c", DataType::Utf8, true)
                .with_metadata([("quiver.pg_type".to_string(), "character(4)".to_string())].into()),
        ]);
        let entry = TableEntry {
            schema: crate::DEFAULT_SCHEMA.to_string(),
            name: "t".to_string(),
            kind: TableKind::managed("x".to_string(), &schema),
            created_at_ms: 0,
            acl: Acl::default(),
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            comment: None,
        };
        let TableKind::Managed { columns, .. } = &entry.kind else {
            panic!("managed")
        };
        let back = entry.managed_schema(columns).expect("parses");
        assert_eq!(back.as_ref(), &schema);
    }

    #[test]
    fn entries_outside_public_say_their_schema_and_older_ones_are_in_public() {
        let old = r#"{"name":"t","kind":{"kind":"view","definition":"CREATE VIEW t AS SELECT 1"},"created_at_ms":0}"#;
        let entry: TableEntry = serde_json::from_str(old).expect("an entry from before schemas");
        assert_eq!(entry.qualified(), QualifiedName::public("t"));
        assert_eq!(entry.qualified().key(), "t");
        assert!(!serde_json::to_string(&entry).unwrap().contains("schema"));

        let entry = TableEntry {
            schema: "analytics".to_string(),
            ..entry
        };
        let back: TableEntry =
            serde_json::from_str(&serde_json::to_string(&entry).unwrap()).unwrap();
        assert_eq!(back.qualified(), QualifiedName::new("analytics", "t"));
        assert_eq!(back.qualified().key(), "analytics\0t");
        assert_eq!(back.qualified().to_string(), "analytics.t");
    }
}
