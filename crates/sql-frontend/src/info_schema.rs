//! `information_schema` tables as PostgreSQL fills them, where DataFusion's
//! differ: `columns` with PostgreSQL's type names (`bigint`, `character
//! varying`, `timestamp without time zone`, not Arrow's `Int64`, `Utf8`,
//! `Timestamp(ns)`) and `udt_name`, which BI tools (Grafana, Metabase)
//! and ORMs read; `table_constraints`, `key_column_usage` and
//! `referential_constraints` (tables' `PRIMARY KEY`, `UNIQUE` and `FOREIGN
//! KEY` constraints); `views` with PostgreSQL's
//! columns (`view_definition`: the view's query). A query naming
//! `information_schema.<table>` for one of these reads Quiver's (served
//! under the `quiver` schema, see `crate::rewrite`); the rest of
//! `information_schema` is DataFusion's.
//!
//! `columns` lists what the reading session sees — its temporary tables
//! and its transaction block's DDL too — as it is when the query runs.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int32Builder, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session as CatalogSession, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr as DfExpr;
use datafusion::physical_plan::ExecutionPlan;

/// The `information_schema` tables Quiver serves itself.
pub(crate) const TABLES: [&str; 5] = [
    "columns",
    "table_constraints",
    "key_column_usage",
    "referential_constraints",
    "views",
];

/// The `pg_catalog` views Quiver serves itself: `datafusion-pg-catalog`'s
/// `pg_tables` lists views as tables, and its `pg_views` is empty (dbt
/// tells a view from a table by them); its `pg_settings` has one row.
/// Quiver's `pg_settings` lists each parameter with its default; a query
/// reads each session's own values through `current_setting` (see
/// `crate::rewrite`).
pub(crate) const PG_CATALOG_TABLES: [&str; 3] = ["pg_tables", "pg_views", "pg_settings"];

/// The table of [`TABLES`] or [`PG_CATALOG_TABLES`] named `name`, as a
/// provider.
pub(crate) fn table(name: &str) -> Option<Arc<dyn TableProvider>> {
    let kind = match name {
        "columns" => Kind::Columns,
        "table_constraints" => Kind::TableConstraints,
        "key_column_usage" => Kind::KeyColumnUsage,
        "referential_constraints" => Kind::ReferentialConstraints,
        "views" => Kind::Views,
        "pg_tables" => Kind::PgTables,
        "pg_views" => Kind::PgViews,
        "pg_settings" => Kind::PgSettings,
        _ => return None,
    };
    Some(Arc::new(InfoSchemaTable {
        schema: kind.schema(),
        kind,
    }))
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Columns,
    TableConstraints,
    KeyColumnUsage,
    ReferentialConstraints,
    PgSettings,
    Views,
    PgTables,
    PgViews,
}

const PG_TABLES_COLUMNS: [&str; 8] = [
    "schemaname",
    "tablename",
    "tableowner",
    "tablespace",
    "hasindexes",
    "hasrules",
    "hastriggers",
    "rowsecurity",
];

const PG_VIEWS_COLUMNS: [&str; 4] = ["schemaname", "viewname", "viewowner", "definition"];

/// `pg_settings`' columns, as PostgreSQL has them.
pub(crate) const PG_SETTINGS_COLUMNS: [&str; 17] = [
    "name",
    "setting",
    "unit",
    "category",
    "short_desc",
    "extra_desc",
    "context",
    "vartype",
    "source",
    "min_val",
    "max_val",
    "enumvals",
    "boot_val",
    "reset_val",
    "sourcefile",
    "sourceline",
    "pending_restart",
];

const VIEWS_COLUMNS: [&str; 10] = [
    "table_catalog",
    "table_schema",
    "table_name",
    "view_definition",
    "check_option",
    "is_updatable",
    "is_insertable_into",
    "is_trigger_updatable",
    "is_trigger_deletable",
    "is_trigger_insertable_into",
];

/// The columns of `columns` that are numbers; the rest are text.
const COLUMNS_NUMBERS: [&str; 7] = [
    "ordinal_position",
    "character_maximum_length",
    "character_octet_length",
    "numeric_precision",
    "numeric_precision_radix",
    "numeric_scale",
    "datetime_precision",
];

const COLUMNS_COLUMNS: [&str; 23] = [
    "table_catalog",
    "table_schema",
    "table_name",
    "column_name",
    "ordinal_position",
    "column_default",
    "is_nullable",
    "data_type",
    "character_maximum_length",
    "character_octet_length",
    "numeric_precision",
    "numeric_precision_radix",
    "numeric_scale",
    "datetime_precision",
    "interval_type",
    "udt_catalog",
    "udt_schema",
    "udt_name",
    "is_identity",
    "identity_generation",
    "is_generated",
    "generation_expression",
    "is_updatable",
];

impl Kind {
    fn schema(self) -> SchemaRef {
        let names: &[&str] = match self {
            Kind::Columns => &COLUMNS_COLUMNS,
            Kind::TableConstraints => &[
                "constraint_catalog",
                "constraint_schema",
                "constraint_name",
                "table_catalog",
                "table_schema",
                "table_name",
                "constraint_type",
                "is_deferrable",
                "initially_deferred",
                "enforced",
                "nulls_distinct",
            ],
            Kind::Views => &VIEWS_COLUMNS,
            Kind::PgTables => &PG_TABLES_COLUMNS,
            Kind::PgViews => &PG_VIEWS_COLUMNS,
            Kind::PgSettings => &PG_SETTINGS_COLUMNS,
            Kind::KeyColumnUsage => &[
                "constraint_catalog",
                "constraint_schema",
                "constraint_name",
                "table_catalog",
                "table_schema",
                "table_name",
                "column_name",
                "ordinal_position",
                "position_in_unique_constraint",
            ],
            Kind::ReferentialConstraints => &[
                "constraint_catalog",
                "constraint_schema",
                "constraint_name",
                "unique_constraint_catalog",
                "unique_constraint_schema",
                "unique_constraint_name",
                "match_option",
                "update_rule",
                "delete_rule",
            ],
        };
        let numbers: &[&str] = match self {
            Kind::Columns => &COLUMNS_NUMBERS,
            Kind::TableConstraints
            | Kind::ReferentialConstraints
            | Kind::Views
            | Kind::PgTables
            | Kind::PgViews => &[],
            Kind::PgSettings => &["sourceline"],
            Kind::KeyColumnUsage => &["ordinal_position", "position_in_unique_constraint"],
        };
        Arc::new(Schema::new(
            names
                .iter()
                .map(|name| {
                    let data_type = if numbers.contains(name) {
                        DataType::Int32
                    } else if name.starts_with("has")
                        || *name == "rowsecurity"
                        || *name == "pending_restart"
                    {
                        DataType::Boolean
                    } else {
                        DataType::Utf8
                    };
                    Field::new(*name, data_type, true)
                })
                .collect::<Vec<_>>(),
        ))
    }
}

#[derive(Debug)]
struct InfoSchemaTable {
    kind: Kind,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for InfoSchemaTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        _filters: &[DfExpr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let session = || {
            state
                .as_any()
                .downcast_ref::<SessionState>()
                .ok_or_else(|| {
                    DataFusionError::Internal("information_schema needs a session".into())
                })
        };
        let batch = match self.kind {
            Kind::Columns => columns(session()?, &self.schema).await?,
            Kind::Views => views(session()?, &self.schema).await?,
            Kind::PgTables | Kind::PgViews => {
                pg_relations(session()?, &self.schema, matches!(self.kind, Kind::PgViews)).await?
            }
            Kind::TableConstraints | Kind::KeyColumnUsage | Kind::ReferentialConstraints => {
                constraints(session()?, &self.schema, self.kind).await?
            }
            Kind::PgSettings => settings(&self.schema)?,
        };
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

/// The rows of `pg_settings`: each parameter with its default.
fn settings(schema: &SchemaRef) -> DfResult<RecordBatch> {
    let parameters: Vec<_> = crate::settings::parameters().collect();
    let arrays: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| -> ArrayRef {
            let rows = parameters.iter();
            match field.name().as_str() {
                "name" => Arc::new(
                    rows.map(|(name, _, _)| Some(*name))
                        .collect::<StringArray>(),
                ),
                "setting" | "boot_val" | "reset_val" => Arc::new(
                    rows.map(|(_, value, _)| Some(value.as_str()))
                        .collect::<StringArray>(),
                ),
                "context" => Arc::new(
                    rows.map(|(_, _, settable)| Some(if *settable { "user" } else { "internal" }))
                        .collect::<StringArray>(),
                ),
                "vartype" => Arc::new(rows.map(|_| Some("string")).collect::<StringArray>()),
                "source" => Arc::new(rows.map(|_| Some("default")).collect::<StringArray>()),
                "pending_restart" => Arc::new(rows.map(|_| Some(false)).collect::<BooleanArray>()),
                _ => datafusion::arrow::array::new_null_array(field.data_type(), parameters.len()),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// A relation a session sees, with the schema that holds it.
struct Relation {
    catalog_name: String,
    schema_name: String,
    table_name: String,
    schema: Arc<dyn SchemaProvider>,
}

/// Every relation `state` sees, by catalog, schema and name.
fn relations(state: &SessionState) -> Vec<Relation> {
    let catalogs = state.catalog_list();
    let mut relations = Vec::new();
    for catalog_name in catalogs.catalog_names() {
        let Some(catalog) = catalogs.catalog(&catalog_name) else {
            continue;
        };
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            for table_name in schema.table_names() {
                relations.push(Relation {
                    catalog_name: catalog_name.clone(),
                    schema_name: schema_name.clone(),
                    table_name,
                    schema: schema.clone(),
                });
            }
        }
    }
    relations
}

/// The rows of `table_constraints` (`kind`), a row per `PRIMARY KEY`,
/// `UNIQUE` and `FOREIGN KEY` constraint of a stored table `state` sees;
/// of `key_column_usage`, a row per column of one; of
/// `referential_constraints`, a row per foreign key.
async fn constraints(
    state: &SessionState,
    schema: &SchemaRef,
    kind: Kind,
) -> DfResult<RecordBatch> {
    let mut texts: Vec<StringBuilder> = schema
        .fields()
        .iter()
        .filter(|f| f.data_type() == &DataType::Utf8)
        .map(|_| StringBuilder::new())
        .collect();
    let mut positions = Int32Builder::new();
    let mut unique_positions = Int32Builder::new();
    let entries: Vec<(String, String, String, quiver_catalog::TableEntry)> = relations(state)
        .into_iter()
        .filter_map(|relation| {
            let entry = relation
                .schema
                .downcast_ref::<quiver_catalog::SessionSchema>()?
                .entry(&relation.table_name)?;
            Some((
                relation.catalog_name,
                relation.schema_name,
                relation.table_name,
                entry,
            ))
        })
        .collect();
    for (catalog_name, schema_name, table_name, entry) in &entries {
        // Each constraint: its name, type, deferral, columns and (of a
        // foreign key) the unique key it references.
        let mut keys: Vec<Constraint<'_>> = Vec::new();
        for index in &entry.indexes {
            let Some(contype) = index.constraint_type() else {
                continue;
            };
            keys.push(Constraint {
                name: &index.name,
                kind: if contype == "p" {
                    "PRIMARY KEY"
                } else {
                    "UNIQUE"
                },
                deferrable: false,
                deferred: false,
                columns: &index.keys,
                references: None,
            });
        }
        for key in &entry.foreign_keys {
            let referenced = entries
                .iter()
                .find(|(_, schema, table, _)| *schema == key.schema && *table == key.table)
                .and_then(|(_, _, _, referenced)| {
                    let mut wanted = key.referenced.clone();
                    wanted.sort();
                    referenced.indexes.iter().find(|i| {
                        let mut keys = i.keys.clone();
                        keys.sort();
                        i.is_unique() && keys == wanted
                    })
                });
            keys.push(Constraint {
                name: &key.name,
                kind: "FOREIGN KEY",
                deferrable: key.deferrable,
                deferred: key.deferred,
                columns: &key.columns,
                references: Some((key, referenced)),
            });
        }
        for key in keys {
            let named = [
                catalog_name.as_str(),
                schema_name.as_str(),
                key.name,
                catalog_name.as_str(),
                schema_name.as_str(),
                table_name.as_str(),
            ];
            let yes_no = |b: bool| if b { "YES" } else { "NO" };
            match kind {
                Kind::TableConstraints => {
                    let values = named.into_iter().chain([
                        key.kind,
                        yes_no(key.deferrable),
                        yes_no(key.deferred),
                        "YES",
                    ]);
                    for (builder, value) in texts.iter_mut().zip(values) {
                        builder.append_value(value);
                    }
                    // `nulls_distinct`: of `UNIQUE` constraints only.
                    match key.kind {
                        "UNIQUE" => texts[10].append_value("YES"),
                        _ => texts[10].append_null(),
                    }
                }
                Kind::ReferentialConstraints => {
                    let Some((foreign, referenced)) = key.references else {
                        continue;
                    };
                    let values = [
                        Some(catalog_name.as_str()),
                        Some(schema_name.as_str()),
                        Some(key.name),
                        Some(catalog_name.as_str()),
                        referenced.map(|_| foreign.schema.as_str()),
                        referenced.map(|i| i.name.as_str()),
                        Some("NONE"),
                        Some(foreign.on_update.sql()),
                        Some(foreign.on_delete.sql()),
                    ];
                    for (builder, value) in texts.iter_mut().zip(values) {
                        builder.append_option(value);
                    }
                }
                _ => {
                    for (position, column) in key.columns.iter().enumerate() {
                        let values = named.into_iter().chain([column.as_str()]);
                        for (builder, value) in texts.iter_mut().zip(values) {
                            builder.append_value(value);
                        }
                        positions.append_value(i32::try_from(position + 1).unwrap_or(i32::MAX));
                        // Of a foreign key's column: where the column it
                        // references is in the unique key.
                        let in_unique = key.references.and_then(|(foreign, referenced)| {
                            let their = foreign.referenced.get(position)?;
                            let index = referenced?.keys.iter().position(|k| k == their)?;
                            i32::try_from(index + 1).ok()
                        });
                        unique_positions.append_option(in_unique);
                    }
                }
            }
        }
    }
    let mut texts = texts.into_iter();
    let arrays: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| match field.name().as_str() {
            "ordinal_position" => Arc::new(positions.finish()) as ArrayRef,
            "position_in_unique_constraint" => Arc::new(unique_positions.finish()) as ArrayRef,
            _ => match texts.next() {
                Some(mut builder) => Arc::new(builder.finish()) as ArrayRef,
                None => datafusion::arrow::array::new_null_array(field.data_type(), 0),
            },
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// A constraint of a table, as `information_schema` lists it.
struct Constraint<'a> {
    name: &'a str,
    /// `PRIMARY KEY`, `UNIQUE` or `FOREIGN KEY`.
    kind: &'static str,
    deferrable: bool,
    deferred: bool,
    columns: &'a [String],
    /// Of a foreign key: it, and the unique key it references.
    references: Option<(
        &'a quiver_catalog::ForeignKey,
        Option<&'a quiver_catalog::IndexEntry>,
    )>,
}

/// The rows of `columns`: every column of every relation `state` sees.
async fn columns(state: &SessionState, schema: &SchemaRef) -> DfResult<RecordBatch> {
    let mut text: Vec<StringBuilder> = COLUMNS_COLUMNS
        .iter()
        .filter(|c| !COLUMNS_NUMBERS.contains(c))
        .map(|_| StringBuilder::new())
        .collect();
    let mut numbers: Vec<Int32Builder> = COLUMNS_NUMBERS
        .iter()
        .map(|_| Int32Builder::new())
        .collect();
    for Relation {
        catalog_name,
        schema_name,
        table_name,
        schema: holder,
    } in relations(state)
    {
        // A relation that cannot be read now (a view whose table is
        // gone) has no columns to list.
        let Ok(Some(table)) = holder.table(&table_name).await else {
            continue;
        };
        for (position, field) in table.schema().fields().iter().enumerate() {
            let column = ColumnType::of(field);
            let position = i32::try_from(position + 1).unwrap_or(i32::MAX);
            let default = field
                .metadata()
                .get(quiver_catalog::COLUMN_DEFAULT)
                .map(|sql| column_default(sql));
            let texts = [
                Some(catalog_name.as_str()),
                Some(schema_name.as_str()),
                Some(table_name.as_str()),
                Some(field.name().as_str()),
                default.as_deref(),
                Some(if field.is_nullable() { "YES" } else { "NO" }),
                Some(column.data_type),
                None,
                Some(catalog_name.as_str()),
                Some("pg_catalog"),
                Some(column.udt_name.as_str()),
                Some("NO"),
                None,
                Some("NEVER"),
                None,
                Some(if table.table_type() == TableType::View {
                    "NO"
                } else {
                    "YES"
                }),
            ];
            for (builder, value) in text.iter_mut().zip(texts) {
                builder.append_option(value);
            }
            let values = [
                Some(position),
                column.character_maximum_length,
                column.character_maximum_length.map(|n| n.saturating_mul(4)),
                column.numeric_precision,
                column.numeric_precision.map(|_| column.radix),
                column.numeric_scale,
                column.datetime_precision,
            ];
            for (builder, value) in numbers.iter_mut().zip(values) {
                builder.append_option(value);
            }
        }
    }
    let mut text = text
        .into_iter()
        .map(|mut builder| Arc::new(builder.finish()) as ArrayRef);
    let mut numbers = numbers
        .into_iter()
        .map(|mut builder| Arc::new(builder.finish()) as ArrayRef);
    let arrays: Vec<ArrayRef> = COLUMNS_COLUMNS
        .iter()
        .filter_map(|name| match COLUMNS_NUMBERS.contains(name) {
            true => numbers.next(),
            false => text.next(),
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// A column's `DEFAULT` as PostgreSQL shows it: a sequence a `SERIAL`
/// column counts is named as a `regclass` (`nextval('t_id_seq'::regclass)`).
fn column_default(sql: &str) -> String {
    match sql
        .strip_prefix("nextval('")
        .and_then(|rest| rest.strip_suffix("')"))
    {
        Some(sequence) if !sequence.contains('\'') => format!("nextval('{sequence}'::regclass)"),
        _ => sql.to_string(),
    }
}

/// The rows of `views`: every view `state` sees, with its query.
async fn views(state: &SessionState, schema: &SchemaRef) -> DfResult<RecordBatch> {
    let mut columns: Vec<StringBuilder> =
        VIEWS_COLUMNS.iter().map(|_| StringBuilder::new()).collect();
    for Relation {
        catalog_name,
        schema_name,
        table_name,
        schema: holder,
    } in relations(state)
    {
        if !matches!(
            holder.table_type(&table_name).await,
            Ok(Some(TableType::View))
        ) {
            continue;
        }
        let definition = match holder.table(&table_name).await {
            Ok(Some(view)) => view.get_table_definition().and_then(view_query),
            _ => None,
        };
        let values = [
            Some(catalog_name.as_str()),
            Some(schema_name.as_str()),
            Some(table_name.as_str()),
            definition.as_deref(),
            Some("NONE"),
            Some("NO"),
            Some("NO"),
            Some("NO"),
            Some("NO"),
            Some("NO"),
        ];
        for (builder, value) in columns.iter_mut().zip(values) {
            builder.append_option(value);
        }
    }
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|mut builder| Arc::new(builder.finish()) as ArrayRef)
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// The rows of `pg_tables` (`views` false) or of `pg_views`: every table
/// or view `state` sees, with its owner.
async fn pg_relations(
    state: &SessionState,
    schema: &SchemaRef,
    views: bool,
) -> DfResult<RecordBatch> {
    let (mut names, mut owners, mut flags) = (
        [StringBuilder::new(), StringBuilder::new()],
        StringBuilder::new(),
        Vec::new(),
    );
    let mut definitions = StringBuilder::new();
    for Relation {
        schema_name,
        table_name,
        schema: holder,
        ..
    } in relations(state)
    {
        let is_view = matches!(
            holder.table_type(&table_name).await,
            Ok(Some(TableType::View))
        );
        if is_view != views {
            continue;
        }
        let entry = holder
            .downcast_ref::<quiver_catalog::SessionSchema>()
            .and_then(|schema| schema.entry(&table_name));
        names[0].append_value(&schema_name);
        names[1].append_value(&table_name);
        owners.append_option(entry.as_ref().and_then(|e| e.acl.owner.clone()));
        flags.push(entry.is_some_and(|e| !e.indexes.is_empty()));
        if views {
            let definition = match holder.table(&table_name).await {
                Ok(Some(view)) => view.get_table_definition().and_then(view_query),
                _ => None,
            };
            definitions.append_option(definition);
        }
    }
    let [mut schemas, mut tables] = names;
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(schemas.finish()),
        Arc::new(tables.finish()),
        Arc::new(owners.finish()),
    ];
    if views {
        arrays.push(Arc::new(definitions.finish()));
    } else {
        let rows = flags.len();
        arrays.push(Arc::new(StringArray::new_null(rows)));
        arrays.push(Arc::new(BooleanArray::from(flags)));
        for _ in 0..3 {
            arrays.push(Arc::new(BooleanArray::from(vec![false; rows])));
        }
    }
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// The query of a view's definition (its `CREATE VIEW` statement).
fn view_query(definition: &str) -> Option<String> {
    view_statement_query(definition).map(|query| query.to_string())
}

/// The query of a view's definition, parsed.
pub(crate) fn view_statement_query(
    definition: &str,
) -> Option<Box<datafusion::sql::sqlparser::ast::Query>> {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    match Parser::parse_sql(&PostgreSqlDialect {}, definition)
        .ok()?
        .pop()?
    {
        Statement::CreateView(view) => Some(view.query),
        _ => None,
    }
}

/// A column's type as `information_schema.columns` describes it.
struct ColumnType {
    /// The SQL standard's name (`character varying`, `ARRAY`).
    data_type: &'static str,
    /// PostgreSQL's internal name (`varchar`, `_int4`).
    udt_name: String,
    character_maximum_length: Option<i32>,
    numeric_precision: Option<i32>,
    /// 2 for binary precisions (integers, floats), 10 for `numeric`.
    radix: i32,
    numeric_scale: Option<i32>,
    datetime_precision: Option<i32>,
}

impl ColumnType {
    fn of(field: &Field) -> Self {
        let mut column = ColumnType {
            data_type: "USER-DEFINED",
            udt_name: field.data_type().to_string(),
            character_maximum_length: None,
            numeric_precision: None,
            radix: 2,
            numeric_scale: None,
            datetime_precision: None,
        };
        if let Some(sized) = quiver_udf_registry::SizedText::of(field) {
            column.udt_name = if sized.padded { "bpchar" } else { "varchar" }.into();
            column.character_maximum_length = i32::try_from(sized.length).ok();
        } else if let Ok(pg) = arrow_pg::datatypes::into_pg_type(field.data_type()) {
            column.udt_name = pg.name().to_string();
        }
        column.data_type = standard_name(&column.udt_name);
        match field.data_type() {
            DataType::Int16 | DataType::UInt8 | DataType::Int8 => {
                column.numeric_precision = Some(16)
            }
            DataType::Int32 | DataType::UInt16 => column.numeric_precision = Some(32),
            DataType::Int64 | DataType::UInt32 => column.numeric_precision = Some(64),
            DataType::Float32 => column.numeric_precision = Some(24),
            DataType::Float64 => column.numeric_precision = Some(53),
            DataType::Decimal128(precision, scale) | DataType::Decimal256(precision, scale) => {
                column.numeric_precision = Some(i32::from(*precision));
                column.numeric_scale = Some(i32::from(*scale));
                column.radix = 10;
            }
            DataType::Timestamp(unit, _) | DataType::Time64(unit) => {
                use datafusion::arrow::datatypes::TimeUnit;
                column.datetime_precision = Some(match unit {
                    TimeUnit::Second => 0,
                    TimeUnit::Millisecond => 3,
                    TimeUnit::Microsecond | TimeUnit::Nanosecond => 6,
                });
            }
            DataType::Date32 | DataType::Date64 => column.datetime_precision = Some(0),
            _ => {}
        }
        if matches!(
            field.data_type(),
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
        ) {
            column.numeric_scale = Some(0);
        }
        column
    }
}

/// The name of the type of `field`'s values, as `information_schema`
/// (and PostgreSQL's messages) give it: `integer`, `text`.
pub(crate) fn type_name(field: &Field) -> &'static str {
    ColumnType::of(field).data_type
}

/// The SQL standard's name of the PostgreSQL type `udt_name`, as
/// `information_schema.columns.data_type` gives it.
fn standard_name(udt_name: &str) -> &'static str {
    match udt_name {
        "bool" => "boolean",
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "numeric" => "numeric",
        "text" => "text",
        "varchar" => "character varying",
        "bpchar" => "character",
        "char" => "\"char\"",
        "name" => "name",
        "bytea" => "bytea",
        "date" => "date",
        "time" => "time without time zone",
        "timetz" => "time with time zone",
        "timestamp" => "timestamp without time zone",
        "timestamptz" => "timestamp with time zone",
        "interval" => "interval",
        "json" => "json",
        "jsonb" => "jsonb",
        "uuid" => "uuid",
        "oid" => "oid",
        array if array.starts_with('_') => "ARRAY",
        _ => "USER-DEFINED",
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::TimeUnit;

    use super::*;

    #[test]
    fn columns_have_postgresql_type_names() {
        let cases = [
            (DataType::Int64, "bigint", "int8"),
            (DataType::Int32, "integer", "int4"),
            (DataType::Utf8, "text", "text"),
            (DataType::Float64, "double precision", "float8"),
            (DataType::Boolean, "boolean", "bool"),
            (
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                "timestamp without time zone",
                "timestamp",
            ),
            (DataType::Decimal128(10, 2), "numeric", "numeric"),
        ];
        for (arrow, data_type, udt_name) in cases {
            let column = ColumnType::of(&Field::new("c", arrow.clone(), true));
            assert_eq!(
                (column.data_type, column.udt_name.as_str()),
                (data_type, udt_name),
                "{arrow}"
            );
        }
    }
}
