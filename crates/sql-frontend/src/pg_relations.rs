//! Quiver's stored relations in `pg_catalog` as PostgreSQL lists them, for
//! psql's `\d`, `\ds` and `\di` and for pg_dump:
//!
//! - Oids. `datafusion-pg-catalog` numbers the tables and views DataFusion
//!   sees with a counter of its own, afresh in every process. Here a stored
//!   relation's oid is derived from what it is (its files' directory, its
//!   counter, else its name), so every catalog table gives it the same one,
//!   a function can find it from the catalog alone, and it stays across
//!   restarts. PostgreSQL's catalog tables have PostgreSQL's oids
//!   (`'pg_class'::regclass` is 1259), and every row of one of them has
//!   that oid as its `tableoid`.
//! - `pg_class`: each stored relation's owner and privileges, whether it
//!   has indexes; sequences (`relkind` `S`) and indexes (`i`), which
//!   DataFusion does not list, are added.
//! - `pg_attribute`: the columns' types with their modifiers
//!   (`character varying(10)`, `numeric(10,2)`) and whether they have a
//!   default.
//! - `pg_attrdef` (the defaults), `pg_index`, `pg_sequence`, and in
//!   `pg_depend` the sequence a column owns and the relations a view reads.
//! - `pg_get_indexdef`, `pg_get_viewdef`, and the defaults `pg_get_expr`
//!   gives: their statements and expressions name relations with their
//!   schemas, as PostgreSQL's do under pg_dump's empty search path.
//!
//! Views name their tables (see the README): a view's dependencies and
//! its query here are its tables as found from the view's own schema, then
//! `public`.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::sql::sqlparser::ast::{Ident, ObjectName, ObjectNamePart, visit_relations_mut};
use quiver_catalog::{
    COLUMN_COMMENT, COLUMN_DEFAULT, Catalog, DEFAULT_SCHEMA, Object, TableEntry, TableKind,
};

use crate::pg_acl::{acl_items, text_lists};
use crate::pg_roles::{DATABASE_OWNER, owner_name, role_oid};

/// `pg_class`'s own oid: the `classid` of a relation in `pg_depend`.
const PG_CLASS: i32 = 1259;

/// `pg_namespace`'s own oid.
const PG_NAMESPACE: i32 = 2615;

/// `pg_attrdef`'s own oid.
const PG_ATTRDEF: i32 = 2604;

/// The access method of Quiver's indexes, as PostgreSQL's default.
const BTREE: i32 = 403;

/// PostgreSQL's catalog tables and their oids.
const CATALOG_TABLES: &[(&str, i32)] = &[
    ("pg_aggregate", 2600),
    ("pg_am", 2601),
    ("pg_amop", 2602),
    ("pg_amproc", 2603),
    ("pg_attrdef", PG_ATTRDEF),
    ("pg_attribute", 1249),
    ("pg_auth_members", 1261),
    ("pg_authid", 1260),
    ("pg_cast", 2605),
    ("pg_class", PG_CLASS),
    ("pg_collation", 3456),
    ("pg_constraint", 2606),
    ("pg_conversion", 2607),
    ("pg_database", 1262),
    ("pg_db_role_setting", 2964),
    ("pg_default_acl", 826),
    ("pg_depend", 2608),
    ("pg_description", 2609),
    ("pg_enum", 3501),
    ("pg_event_trigger", 3466),
    ("pg_extension", 3079),
    ("pg_foreign_data_wrapper", 2328),
    ("pg_foreign_server", 1417),
    ("pg_foreign_table", 3118),
    ("pg_index", 2610),
    ("pg_inherits", 2611),
    ("pg_init_privs", 3394),
    ("pg_language", 2612),
    ("pg_largeobject", 2613),
    ("pg_largeobject_metadata", 2995),
    ("pg_namespace", PG_NAMESPACE),
    ("pg_opclass", 2616),
    ("pg_operator", 2617),
    ("pg_opfamily", 2753),
    ("pg_partitioned_table", 3350),
    ("pg_policy", 3256),
    ("pg_proc", 1255),
    ("pg_publication", 6104),
    ("pg_publication_namespace", 6237),
    ("pg_publication_rel", 6106),
    ("pg_range", 3541),
    ("pg_replication_origin", 6000),
    ("pg_rewrite", 2618),
    ("pg_seclabel", 3596),
    ("pg_sequence", 2224),
    ("pg_shdepend", 1214),
    ("pg_shdescription", 2396),
    ("pg_shseclabel", 3592),
    ("pg_statistic", 2619),
    ("pg_statistic_ext", 3381),
    ("pg_statistic_ext_data", 3429),
    ("pg_subscription", 6100),
    ("pg_subscription_rel", 6102),
    ("pg_tablespace", 1213),
    ("pg_transform", 3576),
    ("pg_trigger", 2620),
    ("pg_ts_config", 3602),
    ("pg_ts_config_map", 3603),
    ("pg_ts_dict", 3600),
    ("pg_ts_parser", 3601),
    ("pg_ts_template", 3764),
    ("pg_type", 1247),
    ("pg_user_mapping", 1418),
];

/// The oid of PostgreSQL's catalog table `name` (in `pg_catalog`).
pub(crate) fn catalog_table_oid(name: &str) -> Option<i32> {
    CATALOG_TABLES
        .iter()
        .find(|(table, _)| *table == name)
        .map(|(_, oid)| *oid)
}

/// An oid derived from `parts`, in a range of its own: above the counter
/// `datafusion-pg-catalog` numbers from, below the Wasm functions'.
fn derived_oid(parts: &[&str]) -> i32 {
    let mut hasher = DefaultHasher::new();
    parts.hash(&mut hasher);
    (1 << 29) | (hasher.finish() as i32 & 0x0fff_ffff)
}

/// A stored relation's oid.
pub(crate) fn relation_oid(entry: &TableEntry) -> i32 {
    match &entry.kind {
        TableKind::Managed { id, .. } => derived_oid(&["table", id]),
        TableKind::Sequence { id, .. } => derived_oid(&["sequence", id]),
        _ => derived_oid(&["relation", &entry.schema, &entry.name]),
    }
}

/// The oid of the index `name` on `entry`.
fn index_oid(entry: &TableEntry, name: &str) -> i32 {
    derived_oid(&["index", &relation_oid(entry).to_string(), name])
}

/// The oid of the constraint `name` on `entry` (backed by its index of
/// that name).
fn constraint_oid(entry: &TableEntry, name: &str) -> i32 {
    derived_oid(&["constraint", &relation_oid(entry).to_string(), name])
}

/// The `DEFAULT` of the column `field` of `entry`: a table's (a view's
/// columns may carry their tables' defaults, which are not theirs).
fn default_of<'a>(entry: &TableEntry, field: &'a Field) -> Option<&'a String> {
    match entry.kind {
        TableKind::Managed { .. } => field.metadata().get(COLUMN_DEFAULT),
        _ => None,
    }
}

/// The oid of the default of column `attnum` of the relation `relation`.
fn default_oid(relation: i32, attnum: usize) -> i32 {
    derived_oid(&["default", &relation.to_string(), &attnum.to_string()])
}

/// The sequence (schema and name) a default counts (`nextval('s')`), if it
/// counts one; a sequence written without a schema is in `schema`.
fn default_sequence(sql: &str, schema: &str) -> Option<(String, String)> {
    let stored = stored_default(sql, schema);
    let sequence = stored
        .strip_prefix("nextval('")?
        .strip_suffix("'::regclass)")?;
    let (schema, name) = sequence.split_once('.')?;
    Some((schema.to_string(), name.to_string()))
}

/// A column's `DEFAULT` as PostgreSQL stores it: a sequence it counts is
/// named with its schema, as a `regclass` (`nextval('public.t_id_seq'::regclass)`).
fn stored_default(sql: &str, schema: &str) -> String {
    let sequence = sql.strip_prefix("nextval('").and_then(|rest| {
        rest.strip_suffix("')")
            .or_else(|| rest.strip_suffix("'::regclass)"))
    });
    match sequence {
        Some(sequence) if !sequence.contains('\'') => {
            let qualified = match sequence.contains('.') {
                true => sequence.to_string(),
                false => format!("{schema}.{sequence}"),
            };
            format!("nextval('{qualified}'::regclass)")
        }
        _ => sql.to_string(),
    }
}

/// The type oid and modifier PostgreSQL gives a column of `field`, where
/// they say more than `datafusion-pg-catalog`'s (a length, a precision).
fn type_with_modifier(field: &Field) -> Option<(i32, i32)> {
    if let Some(sized) = quiver_udf_registry::SizedText::of(field) {
        let oid = if sized.padded { 1042 } else { 1043 };
        return Some((oid, i32::try_from(sized.length).ok()? + 4));
    }
    match field.data_type() {
        DataType::Decimal128(precision, scale) | DataType::Decimal256(precision, scale) => {
            let modifier = (i32::from(*precision) << 16) | (i32::from(*scale) & 0xffff);
            Some((1700, modifier + 4))
        }
        _ => None,
    }
}

/// The relation a view's query names as `name` (written without a
/// schema): in the view's schema, else in `public`.
fn view_reads<'a>(
    entries: &'a [TableEntry],
    view: &TableEntry,
    name: &ObjectName,
) -> Option<&'a TableEntry> {
    let parts = crate::names::folded_parts(name);
    let candidates: Vec<(String, String)> = match parts.as_slice() {
        [name] => [view.schema.as_str(), quiver_catalog::DEFAULT_SCHEMA]
            .iter()
            .map(|schema| (schema.to_string(), name.clone()))
            .collect(),
        [schema, name] => vec![(schema.clone(), name.clone())],
        [_, schema, name] => vec![(schema.clone(), name.clone())],
        _ => vec![],
    };
    candidates.iter().find_map(|(schema, name)| {
        entries
            .iter()
            .find(|entry| &entry.schema == schema && &entry.name == name)
    })
}

/// A view's query with each relation it reads named with its schema,
/// as `pg_get_viewdef` gives it.
fn view_definition(entries: &[TableEntry], view: &TableEntry) -> Option<String> {
    let TableKind::View { definition, .. } = &view.kind else {
        return None;
    };
    let mut query = crate::info_schema::view_statement_query(definition)?;
    let _ = visit_relations_mut(&mut query, |name| {
        if let Some(read) = view_reads(entries, view, name) {
            *name = ObjectName(vec![
                ObjectNamePart::Identifier(ident(&read.schema)),
                ObjectNamePart::Identifier(ident(&read.name)),
            ]);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    Some(format!(" {query};"))
}

/// `name` as an identifier, quoted where PostgreSQL would quote it.
fn ident(name: &str) -> Ident {
    let quoted = quiver_udf_registry::quote_ident(name);
    match quoted.starts_with('"') {
        true => Ident::with_quote('"', name),
        false => Ident::new(name),
    }
}

/// The `CREATE INDEX` statement of the index `index` on `entry`, as
/// `pg_get_indexdef` gives it.
fn index_definition(entry: &TableEntry, index: &quiver_catalog::IndexEntry) -> String {
    use quiver_udf_registry::quote_ident;
    let columns = entry.columns();
    let keys: Vec<String> = index
        .keys
        .iter()
        .map(|key| {
            let is_column = columns
                .as_ref()
                .is_some_and(|c| c.field_with_name(key).is_ok());
            match is_column {
                true => quote_ident(key),
                false => format!("({key})"),
            }
        })
        .collect();
    format!(
        "CREATE {}INDEX {} ON {}.{} USING btree ({})",
        if index.is_unique() { "UNIQUE " } else { "" },
        quote_ident(&index.name),
        quote_ident(&entry.schema),
        quote_ident(&entry.name),
        keys.join(", ")
    )
}

/// A constraint as `pg_get_constraintdef` gives it: `PRIMARY KEY (id)`.
fn constraint_definition(index: &quiver_catalog::IndexEntry) -> Option<String> {
    let kind = match index.constraint_type()? {
        "p" => "PRIMARY KEY",
        _ => "UNIQUE",
    };
    let keys: Vec<String> = index
        .keys
        .iter()
        .map(|key| quiver_udf_registry::quote_ident(key))
        .collect();
    Some(format!("{kind} ({})", keys.join(", ")))
}

/// `pg_get_constraintdef(oid [, pretty [, search_path]])` over the stored
/// relations of `catalog`: a key's or a foreign key's definition. The
/// third argument, which `crate::rewrite` adds (`current_setting(
/// 'search_path')`), says in which schemas a referenced table's name is
/// written bare, as PostgreSQL writes names its search path finds (pg_dump
/// empties it, and so has every name qualified).
fn constraint_definitions(catalog: Arc<Catalog>) -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::array::StringArray;
    use datafusion::logical_expr::{
        ColumnarValue, ScalarUDF, Signature, SimpleScalarUDF, TypeSignature, Volatility,
    };
    let signature = Signature::one_of(
        (1..=3).map(TypeSignature::Any).collect(),
        Volatility::Stable,
    );
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        "pg_get_constraintdef",
        signature,
        DataType::Utf8,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let rows = arrays[0].len();
            let oids = datafusion::arrow::compute::cast(&arrays[0], &DataType::Int32)?;
            let oids = oids.as_primitive::<Int32Type>();
            let paths = arrays
                .get(2)
                .map(|path| datafusion::arrow::compute::cast(path, &DataType::Utf8))
                .transpose()?;
            let entries = catalog.entries();
            let texts: StringArray = (0..rows)
                .map(|i| {
                    if oids.is_null(i) {
                        return None;
                    }
                    let oid = oids.value(i);
                    let path = paths.as_ref().map(|p| p.as_string::<i32>()).and_then(|p| {
                        (!p.is_null(i)).then(|| quiver_catalog::parse_search_path(p.value(i), ""))
                    });
                    let visible = |schema: &str| match &path {
                        Some(path) => path.iter().any(|s| s == schema),
                        None => schema == quiver_catalog::DEFAULT_SCHEMA,
                    };
                    entries.iter().find_map(|entry| {
                        if let Some(key) = entry
                            .foreign_keys
                            .iter()
                            .find(|key| constraint_oid(entry, &key.name) == oid)
                        {
                            return Some(foreign_key_definition(key, &visible));
                        }
                        let index = entry
                            .indexes
                            .iter()
                            .find(|index| constraint_oid(entry, &index.name) == oid)?;
                        constraint_definition(index)
                    })
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(texts)))
        }),
    ))
}

/// A foreign key as `pg_get_constraintdef` gives it: `FOREIGN KEY (a)
/// REFERENCES t(id)`, the table qualified unless its schema is `visible`.
pub(crate) fn foreign_key_definition(
    key: &quiver_catalog::ForeignKey,
    visible: &dyn Fn(&str) -> bool,
) -> String {
    use quiver_udf_registry::quote_ident;
    let list = |names: &[String]| {
        names
            .iter()
            .map(|n| quote_ident(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let table = match visible(&key.schema) {
        true => quote_ident(&key.table),
        false => format!("{}.{}", quote_ident(&key.schema), quote_ident(&key.table)),
    };
    let mut definition = format!(
        "FOREIGN KEY ({}) REFERENCES {table}({})",
        list(&key.columns),
        list(&key.referenced)
    );
    use quiver_catalog::KeyAction;
    if key.on_update != KeyAction::NoAction {
        definition.push_str(&format!(" ON UPDATE {}", key.on_update.sql()));
    }
    if key.on_delete != KeyAction::NoAction {
        definition.push_str(&format!(" ON DELETE {}", key.on_delete.sql()));
    }
    if key.deferrable {
        definition.push_str(" DEFERRABLE");
    }
    if key.deferred {
        definition.push_str(" INITIALLY DEFERRED");
    }
    definition
}

/// `pg_get_indexdef(oid [, column, pretty])`, `pg_get_constraintdef(oid [,
/// pretty])`, `pg_get_viewdef(oid [,
/// pretty])`, `obj_description(oid [, catalog])`, `col_description(oid,
/// column)`, and `pg_table_size`, `pg_relation_size` and
/// `pg_total_relation_size` (psql's `\dt+`) over the stored relations of
/// `catalog`.
pub(crate) fn functions(catalog: Arc<Catalog>) -> Vec<datafusion::logical_expr::ScalarUDF> {
    use datafusion::logical_expr::{
        ColumnarValue, ScalarUDF, Signature, SimpleScalarUDF, TypeSignature, Volatility,
    };
    let describe = |name: &str,
                    arities: &[usize],
                    text: fn(&[TableEntry], i32, Option<i32>) -> Option<String>,
                    catalog: Arc<Catalog>| {
        let signature = Signature::one_of(
            arities.iter().map(|&n| TypeSignature::Any(n)).collect(),
            Volatility::Stable,
        );
        ScalarUDF::from(SimpleScalarUDF::new_with_signature(
            name,
            signature,
            DataType::Utf8,
            Arc::new(move |args: &[ColumnarValue]| {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let rows = arrays[0].len();
                let int = |array: &datafusion::arrow::array::ArrayRef| {
                    datafusion::arrow::compute::cast(array, &DataType::Int32)
                };
                let oids = int(&arrays[0])?;
                let seconds = arrays.get(1).map(int).transpose()?;
                let entries = catalog.entries();
                let texts: datafusion::arrow::array::StringArray = (0..rows)
                    .map(|i| {
                        let oids = oids.as_primitive::<Int32Type>();
                        let second = seconds.as_ref().and_then(|s| {
                            let s = s.as_primitive::<Int32Type>();
                            (!s.is_null(i)).then(|| s.value(i))
                        });
                        if oids.is_null(i) {
                            return None;
                        }
                        text(&entries, oids.value(i), second)
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(texts)))
            }),
        ))
    };
    // Sizes: a table's files; a view's, a sequence's and an index's none
    // (PostgreSQL's sequences take a page; Quiver's counters are in its
    // catalog).
    let sized = |name: &str, arities: &[usize], catalog: Arc<Catalog>| {
        let signature = Signature::one_of(
            arities.iter().map(|&n| TypeSignature::Any(n)).collect(),
            Volatility::Volatile,
        );
        ScalarUDF::from(SimpleScalarUDF::new_with_signature(
            name,
            signature,
            DataType::Int64,
            Arc::new(move |args: &[ColumnarValue]| {
                let rows = match &args[0] {
                    ColumnarValue::Array(array) => array.len(),
                    ColumnarValue::Scalar(_) => 1,
                };
                let oids =
                    datafusion::arrow::compute::cast(&args[0].to_array(rows)?, &DataType::Int32)?;
                let entries = catalog.entries();
                let sizes: datafusion::arrow::array::Int64Array = oids
                    .as_primitive::<Int32Type>()
                    .iter()
                    .map(|oid| {
                        let oid = oid?;
                        if let Some(entry) = entries.iter().find(|e| relation_oid(e) == oid) {
                            let size = catalog.table_size(entry).unwrap_or(0);
                            return Some(i64::try_from(size).unwrap_or(i64::MAX));
                        }
                        let index = entries.iter().any(|entry| {
                            entry
                                .indexes
                                .iter()
                                .any(|index| index_oid(entry, &index.name) == oid)
                        });
                        index.then_some(0)
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(sizes)))
            }),
        ))
    };
    let sizes = [
        ("pg_table_size", &[1][..]),
        ("pg_relation_size", &[1, 2]),
        ("pg_total_relation_size", &[1]),
    ]
    .map(|(name, arities)| sized(name, arities, catalog.clone()));
    let mut functions = vec![
        describe(
            "pg_get_indexdef",
            &[1, 3],
            // With a column number other than 0, that key only (pgjdbc's
            // getIndexInfo).
            |entries, oid, column| {
                entries.iter().find_map(|entry| {
                    let index = entry
                        .indexes
                        .iter()
                        .find(|index| index_oid(entry, &index.name) == oid)?;
                    match column.filter(|&c| c != 0) {
                        None => Some(index_definition(entry, index)),
                        Some(column) => {
                            let key = index.keys.get(usize::try_from(column).ok()? - 1)?;
                            Some(quiver_udf_registry::quote_ident(key))
                        }
                    }
                })
            },
            catalog.clone(),
        ),
        // The `DEFAULT` of a column, by table oid and column number: what
        // psql's `\d` reads from `pg_attrdef` in a correlated subquery,
        // which `crate::rewrite` turns into a call of this.
        describe(
            "quiver_column_default",
            &[2],
            |entries, oid, attnum| {
                let entry = entries.iter().find(|entry| relation_oid(entry) == oid)?;
                let attnum = usize::try_from(attnum?).ok()?;
                let (_, field) = numbered_columns(entry)
                    .into_iter()
                    .find(|(number, _)| *number == attnum)?;
                let sql = default_of(entry, &field)?;
                Some(stored_default(sql, &entry.schema))
            },
            catalog.clone(),
        ),
        // A relation's name as a `regclass` prints (see
        // `crate::rewrite`): qualified outside `public`; the OID itself
        // for a relation not stored (the system catalogs').
        describe(
            "quiver_regclass_name",
            &[1],
            |entries, oid, _| {
                use quiver_udf_registry::quote_ident;
                Some(
                    match entries.iter().find(|entry| relation_oid(entry) == oid) {
                        Some(entry) if entry.schema == quiver_catalog::DEFAULT_SCHEMA => {
                            quote_ident(&entry.name)
                        }
                        Some(entry) => format!(
                            "{}.{}",
                            quote_ident(&entry.schema),
                            quote_ident(&entry.name)
                        ),
                        None => oid.to_string(),
                    },
                )
            },
            catalog.clone(),
        ),
        constraint_definitions(catalog.clone()),
        describe(
            "col_description",
            &[2],
            |entries, oid, attnum| {
                let relation = entries.iter().find(|entry| relation_oid(entry) == oid)?;
                let position = usize::try_from(attnum?).ok()?.checked_sub(1)?;
                let columns = relation.columns()?;
                columns
                    .fields()
                    .get(position)?
                    .metadata()
                    .get(COLUMN_COMMENT)
                    .cloned()
            },
            catalog.clone(),
        ),
        describe(
            "obj_description",
            &[1, 2],
            |entries, oid, _| {
                let relation = entries.iter().find(|entry| relation_oid(entry) == oid)?;
                relation.comment.clone()
            },
            catalog.clone(),
        ),
        describe(
            "pg_get_viewdef",
            &[1, 2],
            |entries, oid, _| {
                let view = entries.iter().find(|entry| relation_oid(entry) == oid)?;
                view_definition(entries, view)
            },
            catalog.clone(),
        ),
    ];
    functions.extend(sizes);
    functions
}

/// Which `pg_catalog` table a [`RelationTable`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    Class,
    Attribute,
    Attrdef,
    Index,
    Sequence,
    Depend,
    Description,
    Constraint,
}

impl Listing {
    /// The listing of the catalog table `name`, if it is one of these.
    pub(crate) fn of(name: &str) -> Option<Self> {
        Some(match name {
            "pg_class" => Listing::Class,
            "pg_attribute" => Listing::Attribute,
            "pg_attrdef" => Listing::Attrdef,
            "pg_index" => Listing::Index,
            "pg_sequence" => Listing::Sequence,
            "pg_depend" => Listing::Depend,
            "pg_description" => Listing::Description,
            "pg_constraint" => Listing::Constraint,
            _ => return None,
        })
    }
}

/// What the tables of this module read besides the catalog:
/// `datafusion-pg-catalog`'s `pg_class` and `pg_namespace`, for the oids
/// it gave.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    pub(crate) classes: Arc<dyn TableProvider>,
    pub(crate) namespaces: Arc<dyn TableProvider>,
    pub(crate) catalog: Arc<Catalog>,
}

/// The stored relations as one scan of a catalog table sees them.
struct Relations {
    entries: Vec<TableEntry>,
    /// Each schema's oid, by name.
    namespaces: HashMap<String, i32>,
    /// `datafusion-pg-catalog`'s oid of a relation, and its oid here.
    renumbered: HashMap<i32, i32>,
    /// `datafusion-pg-catalog`'s oid of a stored relation, and its entry.
    stored: HashMap<i32, usize>,
}

impl Relations {
    async fn load(state: &dyn CatalogSession, sources: &Sources) -> DfResult<Self> {
        let entries = sources.catalog.entries();
        let namespaces_batch = read_whole(&sources.namespaces, state).await?;
        let namespaces: HashMap<String, i32> = texts(&namespaces_batch, "nspname")
            .into_iter()
            .zip(ints(&namespaces_batch, "oid"))
            .filter_map(|(name, oid)| Some((name?.to_string(), oid?)))
            .collect();
        let names: HashMap<i32, &str> = namespaces
            .iter()
            .map(|(name, oid)| (*oid, name.as_str()))
            .collect();
        let classes = read_whole(&sources.classes, state).await?;
        let mut renumbered = HashMap::new();
        let mut stored = HashMap::new();
        let rows = texts(&classes, "relname")
            .into_iter()
            .zip(ints(&classes, "oid"))
            .zip(ints(&classes, "relnamespace"));
        for ((name, oid), namespace) in rows {
            let (Some(name), Some(oid), Some(namespace)) = (name, oid, namespace) else {
                continue;
            };
            let Some(schema) = names.get(&namespace) else {
                continue;
            };
            if *schema == "pg_catalog"
                && let Some(catalog_oid) = catalog_table_oid(name)
            {
                renumbered.insert(oid, catalog_oid);
            } else if let Some(position) = entries
                .iter()
                .position(|entry| entry.schema == *schema && entry.name == name)
            {
                renumbered.insert(oid, relation_oid(&entries[position]));
                stored.insert(oid, position);
            }
        }
        Ok(Self {
            entries,
            namespaces,
            renumbered,
            stored,
        })
    }

    fn entry_of(&self, oid: Option<i32>) -> Option<&TableEntry> {
        self.stored.get(&oid?).map(|&i| &self.entries[i])
    }

    fn renumber(&self, oids: &[Option<i32>]) -> Vec<ScalarValue> {
        oids.iter()
            .map(|oid| ScalarValue::Int32(oid.map(|o| *self.renumbered.get(&o).unwrap_or(&o))))
            .collect()
    }

    fn namespace(&self, entry: &TableEntry) -> ScalarValue {
        ScalarValue::Int32(self.namespaces.get(&entry.schema).copied())
    }
}

/// A `pg_catalog` table of `datafusion-pg-catalog`'s, read whole, with
/// Quiver's relations as PostgreSQL lists them (every column nullable).
#[derive(Debug)]
pub(crate) struct RelationTable {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
    listing: Listing,
    sources: Sources,
}

impl RelationTable {
    pub(crate) fn new(inner: Arc<dyn TableProvider>, listing: Listing, sources: Sources) -> Self {
        let fields: Vec<Field> = inner
            .schema()
            .fields()
            .iter()
            .map(|field| field.as_ref().clone().with_nullable(true))
            .collect();
        Self {
            inner,
            schema: Arc::new(Schema::new(fields)),
            listing,
            sources,
        }
    }

    /// The rows Quiver adds.
    fn added(&self, relations: &Relations) -> Vec<Row> {
        let entries = &relations.entries;
        let mut rows: Vec<Row> = entries
            .iter()
            .flat_map(|entry| match self.listing {
                Listing::Class => class_rows(entry, relations),
                Listing::Attrdef => attrdef_rows(entry),
                Listing::Index => index_rows(entry),
                Listing::Sequence => sequence_rows(entry),
                Listing::Depend => depend_rows(entry, entries),
                Listing::Description => description_rows(entry),
                Listing::Constraint => constraint_rows(entry, relations),
                Listing::Attribute => Vec::new(),
            })
            .collect();
        if self.listing == Listing::Description {
            rows.extend(schema_descriptions(relations, &self.sources.catalog));
        }
        rows
    }

    /// The inner rows, as PostgreSQL lists them.
    fn amended(&self, batch: &RecordBatch, relations: &Relations) -> DfResult<RecordBatch> {
        let rows = batch.num_rows();
        let mut columns: HashMap<&str, Vec<ScalarValue>> = HashMap::new();
        match self.listing {
            Listing::Class => {
                let oids = ints(batch, "oid");
                let entries: Vec<_> = oids.iter().map(|oid| relations.entry_of(*oid)).collect();
                columns.insert("oid", relations.renumber(&oids));
                let owners = ints(batch, "relowner");
                columns.insert(
                    "relowner",
                    entries
                        .iter()
                        .zip(owners)
                        .map(|(entry, owner)| {
                            // `datafusion-pg-catalog` says 0 for its own
                            // tables': PostgreSQL's, the superusers'.
                            let owner = match entry {
                                Some(entry) => owner_name(&entry.acl),
                                None if owner.is_none_or(|o| o == 0) => DATABASE_OWNER,
                                None => return ScalarValue::Int32(owner),
                            };
                            ScalarValue::Int32(Some(role_oid(owner)))
                        })
                        .collect(),
                );
                let has_index = bools(batch, "relhasindex");
                columns.insert(
                    "relhasindex",
                    entries
                        .iter()
                        .zip(has_index)
                        .map(|(entry, has)| {
                            ScalarValue::Boolean(match entry {
                                Some(entry) => Some(!entry.indexes.is_empty()),
                                None => has,
                            })
                        })
                        .collect(),
                );
                // psql's `\d` lists foreign keys (and the tables
                // referencing one) of a table with triggers, which
                // PostgreSQL's foreign keys are made of.
                let has_triggers = bools(batch, "relhastriggers");
                columns.insert(
                    "relhastriggers",
                    entries
                        .iter()
                        .zip(has_triggers)
                        .map(|(entry, has)| {
                            ScalarValue::Boolean(match entry {
                                Some(entry) => Some(
                                    !entry.foreign_keys.is_empty()
                                        || relations.entries.iter().any(|other| {
                                            other
                                                .foreign_keys
                                                .iter()
                                                .any(|k| k.references(&entry.qualified()))
                                        }),
                                ),
                                None => has,
                            })
                        })
                        .collect(),
                );
                let acls = text_lists(entries.iter().map(|entry| {
                    let entry = entry.as_ref()?;
                    acl_items(&Object::Table(entry.qualified().to_string()), &entry.acl)
                }));
                let acls = (0..rows)
                    .map(|i| ScalarValue::try_from_array(&acls, i))
                    .collect::<DfResult<_>>()?;
                columns.insert("relacl", acls);
            }
            Listing::Attribute => {
                let relids = ints(batch, "attrelid");
                let numbers = ints(batch, "attnum");
                let mut types = ints(batch, "atttypid");
                let mut modifiers = ints(batch, "atttypmod");
                let mut defaults = bools(batch, "atthasdef");
                let mut schemas: HashMap<i32, Option<SchemaRef>> = HashMap::new();
                for i in 0..rows {
                    let (Some(relid), Some(number)) = (relids[i], numbers[i]) else {
                        continue;
                    };
                    let Some(entry) = relations.entry_of(Some(relid)) else {
                        continue;
                    };
                    let schema = schemas.entry(relid).or_insert_with(|| entry.columns());
                    let field = schema.as_ref().and_then(|s| {
                        let position = usize::try_from(number).ok()?.checked_sub(1)?;
                        s.fields().get(position).cloned()
                    });
                    let Some(field) = field else {
                        continue;
                    };
                    if let Some((oid, modifier)) = type_with_modifier(&field) {
                        types[i] = Some(oid);
                        modifiers[i] = Some(modifier);
                    }
                    defaults[i] = Some(default_of(entry, &field).is_some());
                }
                columns.insert("attrelid", relations.renumber(&relids));
                columns.insert(
                    "atttypid",
                    types.into_iter().map(ScalarValue::Int32).collect(),
                );
                columns.insert(
                    "atttypmod",
                    modifiers.into_iter().map(ScalarValue::Int32).collect(),
                );
                columns.insert(
                    "atthasdef",
                    defaults.into_iter().map(ScalarValue::Boolean).collect(),
                );
            }
            // PostgreSQL's own rows, about its catalogs, with the oids
            // those have here.
            Listing::Depend => {
                for column in ["objid", "refobjid"] {
                    columns.insert(column, relations.renumber(&ints(batch, column)));
                }
            }
            // PostgreSQL's own descriptions, of its objects.
            Listing::Description => return Ok(batch.clone()),
            // `datafusion-pg-catalog`'s rows are about its objects, which
            // Quiver does not list.
            Listing::Attrdef | Listing::Index | Listing::Sequence | Listing::Constraint => {
                return Ok(RecordBatch::new_empty(self.schema.clone()));
            }
        }
        let arrays = self
            .schema
            .fields()
            .iter()
            .map(|field| match columns.remove(field.name().as_str()) {
                Some(values) => typed(values, field.data_type(), rows),
                None => Ok(batch
                    .column_by_name(field.name())
                    .cloned()
                    .unwrap_or_else(|| {
                        datafusion::arrow::array::new_null_array(field.data_type(), rows)
                    })),
            })
            .collect::<DfResult<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }
}

fn int(value: i32) -> ScalarValue {
    ScalarValue::Int32(Some(value))
}

fn int16(value: usize) -> ScalarValue {
    ScalarValue::Int16(i16::try_from(value).ok())
}

fn text(value: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(value.to_string()))
}

fn flag(value: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(value))
}

/// The columns of `entry` (a table or view), numbered from 1.
fn numbered_columns(entry: &TableEntry) -> Vec<(usize, Field)> {
    let columns = entry.columns();
    let fields = columns.iter().flat_map(|c| c.fields().iter());
    fields
        .enumerate()
        .map(|(i, field)| (i + 1, field.as_ref().clone()))
        .collect()
}

/// The number of `entry`'s column `name` (0: none, an expression).
fn attnum(entry: &TableEntry, name: &str) -> usize {
    entry
        .columns()
        .and_then(|c| c.index_of(name).ok())
        .map_or(0, |i| i + 1)
}

/// `pg_class`: a sequence, and the indexes of a table (DataFusion lists
/// tables and views).
fn class_rows(entry: &TableEntry, relations: &Relations) -> Vec<Row> {
    let owner = int(role_oid(owner_name(&entry.acl)));
    let class = |oid: i32, name: &str, kind: &str, natts: usize| -> Row {
        vec![
            ("oid", int(oid)),
            ("relname", text(name)),
            ("relnamespace", relations.namespace(entry)),
            ("relowner", owner.clone()),
            ("relkind", text(kind)),
            ("relnatts", int16(natts)),
            ("relpersistence", text("p")),
            ("relam", int(if kind == "i" { BTREE } else { 0 })),
            ("relpages", int(0)),
            ("reltuples", ScalarValue::Float64(Some(-1.0))),
            ("relreplident", text("n")),
            ("relispopulated", flag(true)),
        ]
    };
    let mut rows = Vec::new();
    if entry.sequence().is_some() {
        rows.push(class(relation_oid(entry), &entry.name, "S", 3));
    }
    for index in &entry.indexes {
        let oid = index_oid(entry, &index.name);
        rows.push(class(oid, &index.name, "i", index.keys.len()));
    }
    rows
}

/// `pg_attrdef`: a table's column defaults.
fn attrdef_rows(entry: &TableEntry) -> Vec<Row> {
    let oid = relation_oid(entry);
    numbered_columns(entry)
        .into_iter()
        .filter_map(|(attnum, field)| {
            let sql = default_of(entry, &field)?;
            Some(vec![
                ("oid", int(default_oid(oid, attnum))),
                ("adrelid", int(oid)),
                ("adnum", int16(attnum)),
                ("adbin", text(&stored_default(sql, &entry.schema))),
            ])
        })
        .collect()
}

/// `pg_constraint`: a table's `PRIMARY KEY` and `UNIQUE` constraints.
fn constraint_rows(entry: &TableEntry, relations: &Relations) -> Vec<Row> {
    let mut rows = key_constraint_rows(entry, relations);
    for key in &entry.foreign_keys {
        let referenced = relations
            .entries
            .iter()
            .find(|e| key.references(&e.qualified()));
        let numbers = |table: Option<&TableEntry>, columns: &[String]| -> ScalarValue {
            let numbers: Vec<ScalarValue> = columns
                .iter()
                .map(|c| int16(table.map_or(0, |t| attnum(t, c))))
                .collect();
            list(&numbers, &DataType::Int16)
        };
        // The referenced table's unique index on the referenced columns.
        let index = referenced.and_then(|t| {
            let mut wanted = key.referenced.clone();
            wanted.sort();
            t.indexes.iter().find(|i| {
                let mut keys = i.keys.clone();
                keys.sort();
                i.is_unique() && keys == wanted
            })
        });
        rows.push(vec![
            ("oid", int(constraint_oid(entry, &key.name))),
            ("conname", text(&key.name)),
            ("connamespace", relations.namespace(entry)),
            ("contype", text("f")),
            ("condeferrable", flag(key.deferrable)),
            ("condeferred", flag(key.deferred)),
            ("convalidated", flag(true)),
            ("conrelid", int(relation_oid(entry))),
            ("contypid", int(0)),
            (
                "conindid",
                int(match (referenced, index) {
                    (Some(t), Some(i)) => index_oid(t, &i.name),
                    _ => 0,
                }),
            ),
            ("conparentid", int(0)),
            ("confrelid", int(referenced.map_or(0, relation_oid))),
            ("confupdtype", text(key.on_update.code())),
            ("confdeltype", text(key.on_delete.code())),
            ("confmatchtype", text("s")),
            ("conislocal", flag(true)),
            ("coninhcount", int16(0)),
            ("connoinherit", flag(true)),
            ("conkey", numbers(Some(entry), &key.columns)),
            ("confkey", numbers(referenced, &key.referenced)),
        ]);
    }
    rows
}

/// `pg_constraint`'s rows of the `PRIMARY KEY` and `UNIQUE` constraints
/// of `entry`.
fn key_constraint_rows(entry: &TableEntry, relations: &Relations) -> Vec<Row> {
    entry
        .indexes
        .iter()
        .filter_map(|index| {
            let contype = index.constraint_type()?;
            let keys: Vec<ScalarValue> = index
                .keys
                .iter()
                .map(|key| int16(attnum(entry, key)))
                .collect();
            Some(vec![
                ("oid", int(constraint_oid(entry, &index.name))),
                ("conname", text(&index.name)),
                ("connamespace", relations.namespace(entry)),
                ("contype", text(contype)),
                ("condeferrable", flag(false)),
                ("condeferred", flag(false)),
                ("convalidated", flag(true)),
                ("conrelid", int(relation_oid(entry))),
                ("contypid", int(0)),
                ("conindid", int(index_oid(entry, &index.name))),
                ("conparentid", int(0)),
                ("confrelid", int(0)),
                ("confupdtype", text(" ")),
                ("confdeltype", text(" ")),
                ("confmatchtype", text(" ")),
                ("conislocal", flag(true)),
                ("coninhcount", int16(0)),
                ("connoinherit", flag(true)),
                ("conkey", list(&keys, &DataType::Int16)),
            ])
        })
        .collect()
}

/// `pg_index`: a table's indexes (metadata only: see
/// `quiver_catalog::IndexEntry`).
fn index_rows(entry: &TableEntry) -> Vec<Row> {
    let zeros = |count: usize, item: DataType| {
        let values = vec![ScalarValue::Int32(Some(0)); count];
        list(&values, &item)
    };
    entry
        .indexes
        .iter()
        .map(|index| {
            let count = index.keys.len();
            let keys: Vec<ScalarValue> = index
                .keys
                .iter()
                .map(|key| int16(attnum(entry, key)))
                .collect();
            let expressions: Vec<&str> = index
                .keys
                .iter()
                .filter(|key| attnum(entry, key) == 0)
                .map(String::as_str)
                .collect();
            let expressions = match expressions.is_empty() {
                true => ScalarValue::Utf8(None),
                false => text(&expressions.join(", ")),
            };
            vec![
                ("indexrelid", int(index_oid(entry, &index.name))),
                ("indrelid", int(relation_oid(entry))),
                ("indnatts", int16(count)),
                ("indnkeyatts", int16(count)),
                ("indisunique", flag(index.is_unique())),
                ("indnullsnotdistinct", flag(false)),
                ("indisprimary", flag(index.constraint_type() == Some("p"))),
                ("indisexclusion", flag(false)),
                ("indimmediate", flag(true)),
                ("indisclustered", flag(false)),
                ("indisvalid", flag(true)),
                ("indcheckxmin", flag(false)),
                ("indisready", flag(true)),
                ("indislive", flag(true)),
                ("indisreplident", flag(false)),
                ("indkey", list(&keys, &DataType::Int16)),
                ("indcollation", zeros(count, DataType::Int32)),
                ("indclass", zeros(count, DataType::Int32)),
                ("indoption", zeros(count, DataType::Int16)),
                ("indexprs", expressions),
            ]
        })
        .collect()
}

/// `pg_sequence`: a sequence's options.
fn sequence_rows(entry: &TableEntry) -> Vec<Row> {
    let Some(sequence) = entry.sequence() else {
        return Vec::new();
    };
    let options = &sequence.options;
    let type_oid = match options.data_type.name() {
        "smallint" => 21,
        "integer" => 23,
        _ => 20,
    };
    let long = |v: i64| ScalarValue::Int64(Some(v));
    vec![vec![
        ("seqrelid", int(relation_oid(entry))),
        ("seqtypid", int(type_oid)),
        ("seqstart", long(options.start)),
        ("seqincrement", long(options.increment)),
        ("seqmax", long(options.max)),
        ("seqmin", long(options.min)),
        ("seqcache", long(1)),
        ("seqcycle", flag(options.cycle)),
    ]]
}

/// `pg_depend`: the column a sequence belongs to (`a`), the sequences a
/// table's defaults count (`n`), the relations a view reads (`n`).
fn depend_rows(entry: &TableEntry, entries: &[TableEntry]) -> Vec<Row> {
    let oid = relation_oid(entry);
    let depend = |classid: i32, objid: i32, refobjid: i32, refobjsubid: usize, deptype: &str| {
        vec![
            ("classid", int(classid)),
            ("objid", int(objid)),
            ("objsubid", int(0)),
            ("refclassid", int(PG_CLASS)),
            ("refobjid", int(refobjid)),
            ("refobjsubid", int16(refobjsubid)),
            ("deptype", text(deptype)),
        ]
    };
    let mut rows = Vec::new();
    if let Some(owned_by) = entry.sequence().and_then(|s| s.options.owned_by) {
        let owner = entries
            .iter()
            .find(|table| table.schema == entry.schema && table.name == owned_by.table);
        if let Some(owner) = owner {
            let column = attnum(owner, &owned_by.column);
            rows.push(depend(PG_CLASS, oid, relation_oid(owner), column, "a"));
        }
    }
    for (attnum, field) in numbered_columns(entry) {
        let Some((schema, name)) =
            default_of(entry, &field).and_then(|sql| default_sequence(sql, &entry.schema))
        else {
            continue;
        };
        let counted = entries
            .iter()
            .find(|s| s.sequence().is_some() && s.schema == schema && s.name == name);
        if let Some(counted) = counted {
            let default = default_oid(oid, attnum);
            rows.push(depend(PG_ATTRDEF, default, relation_oid(counted), 0, "n"));
        }
    }
    if let TableKind::View { definition, .. } = &entry.kind
        && let Some(mut query) = crate::info_schema::view_statement_query(definition)
    {
        let mut read = Vec::new();
        let _ = visit_relations_mut(&mut query, |name| {
            if let Some(table) = view_reads(entries, entry, name) {
                read.push(relation_oid(table));
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        read.sort_unstable();
        read.dedup();
        rows.extend(
            read.into_iter()
                .map(|table| depend(PG_CLASS, oid, table, 0, "n")),
        );
    }
    rows
}

/// `pg_description`: what `COMMENT ON` says about a relation and its
/// columns.
fn description_rows(entry: &TableEntry) -> Vec<Row> {
    let oid = relation_oid(entry);
    let description = |objsubid: usize, comment: &str| -> Row {
        vec![
            ("objoid", int(oid)),
            ("classoid", int(PG_CLASS)),
            ("objsubid", int16(objsubid)),
            ("description", text(comment)),
        ]
    };
    let relation = entry.comment.iter().map(|comment| description(0, comment));
    let columns = numbered_columns(entry)
        .into_iter()
        .filter_map(|(attnum, field)| {
            let comment = field.metadata().get(COLUMN_COMMENT)?;
            Some(description(attnum, comment))
        });
    relation.chain(columns).collect()
}

/// `pg_description` of the stored schemas (`public`'s is PostgreSQL's
/// until one is given).
fn schema_descriptions(relations: &Relations, catalog: &Catalog) -> Vec<Row> {
    let mut rows = Vec::new();
    for (schema, oid) in &relations.namespaces {
        let stored = schema == DEFAULT_SCHEMA || catalog.schema_entry(schema).is_some();
        let comment = match (stored, catalog.comment(&Object::Schema(schema.clone()))) {
            (true, Some(comment)) => comment,
            (true, None) if schema == DEFAULT_SCHEMA => "standard public schema".to_string(),
            _ => continue,
        };
        rows.push(vec![
            ("objoid", int(*oid)),
            ("classoid", int(PG_NAMESPACE)),
            ("objsubid", int(0)),
            ("description", text(&comment)),
        ]);
    }
    rows
}

/// One added row: its values by column; the columns it leaves out are NULL.
type Row = Vec<(&'static str, ScalarValue)>;

/// A list value of `values` (of `item`).
fn list(values: &[ScalarValue], item: &DataType) -> ScalarValue {
    ScalarValue::List(ScalarValue::new_list_nullable(values, item))
}

/// `values` as an array of `data_type` (`rows` NULLs if there are none).
fn typed(
    values: Vec<ScalarValue>,
    data_type: &DataType,
    rows: usize,
) -> DfResult<datafusion::arrow::array::ArrayRef> {
    if values.is_empty() {
        return Ok(datafusion::arrow::array::new_null_array(data_type, rows));
    }
    let array = ScalarValue::iter_to_array(values)?;
    Ok(datafusion::arrow::compute::cast(&array, data_type)?)
}

/// `rows` as a batch of `schema`.
fn rows_batch(schema: &SchemaRef, rows: &[Row]) -> DfResult<RecordBatch> {
    let arrays = schema
        .fields()
        .iter()
        .map(|field| {
            let null = ScalarValue::try_from(field.data_type())?;
            let values = rows.iter().map(|row| {
                row.iter()
                    .find(|(name, _)| *name == field.name())
                    .map(|(_, value)| value.clone())
                    .unwrap_or_else(|| null.clone())
            });
            let values: Vec<ScalarValue> = values
                .map(|value| match value.is_null() {
                    true => Ok(null.clone()),
                    false => value.cast_to(field.data_type()),
                })
                .collect::<DfResult<_>>()?;
            typed(values, field.data_type(), rows.len())
        })
        .collect::<DfResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

#[async_trait]
impl TableProvider for RelationTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let relations = Relations::load(state, &self.sources).await?;
        let inner = read_whole(&self.inner, state).await?;
        let mut amended = self.amended(&inner, &relations)?;
        // Quiver's own tables (`quiver.functions`, the `information_schema`
        // it serves) are not listed: tools that list relations would take
        // them for the user's (pg_dump dumps them, BI tools sync them).
        if self.listing == Listing::Class
            && let Some(system) = relations.namespaces.get(crate::server::SYSTEM_SCHEMA)
        {
            let keep: datafusion::arrow::array::BooleanArray = ints(&amended, "relnamespace")
                .into_iter()
                .map(|namespace| Some(namespace != Some(*system)))
                .collect();
            amended = datafusion::arrow::compute::filter_record_batch(&amended, &keep)?;
        }
        let added = rows_batch(&self.schema, &self.added(&relations))?;
        let whole = concat_batches(&self.schema, &[amended, added])?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![whole]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

/// All rows of a small table.
pub(crate) async fn read_whole(
    table: &Arc<dyn TableProvider>,
    state: &dyn CatalogSession,
) -> DfResult<RecordBatch> {
    let plan = table.scan(state, None, &[], None).await?;
    let batches = collect(plan, state.task_ctx()).await?;
    Ok(concat_batches(&table.schema(), &batches)?)
}

fn ints(batch: &RecordBatch, name: &str) -> Vec<Option<i32>> {
    batch
        .column_by_name(name)
        .and_then(|c| datafusion::arrow::compute::cast(c, &DataType::Int32).ok())
        .map(|c| c.as_primitive::<Int32Type>().iter().collect())
        .unwrap_or_else(|| vec![None; batch.num_rows()])
}

/// The text values of column `name`.
pub(crate) fn texts<'a>(batch: &'a RecordBatch, name: &str) -> Vec<Option<&'a str>> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .map(|c| c.iter().collect())
        .unwrap_or_else(|| vec![None; batch.num_rows()])
}

fn bools(batch: &RecordBatch, name: &str) -> Vec<Option<bool>> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_boolean_opt())
        .map(|c| c.iter().collect())
        .unwrap_or_else(|| vec![None; batch.num_rows()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_name_their_sequence_with_its_schema() {
        let stored = stored_default("nextval('t_id_seq')", "public");
        assert_eq!(stored, "nextval('public.t_id_seq'::regclass)");
        assert_eq!(
            stored_default("nextval('analytics.items_id_seq'::regclass)", "analytics"),
            "nextval('analytics.items_id_seq'::regclass)"
        );
        assert_eq!(stored_default("42", "public"), "42");
        assert_eq!(
            default_sequence("nextval('t_id_seq')", "public"),
            Some(("public".into(), "t_id_seq".into()))
        );
        assert_eq!(default_sequence("now()", "public"), None);
    }

    #[test]
    fn catalog_tables_have_postgresql_oids_and_relations_others() {
        assert_eq!(catalog_table_oid("pg_class"), Some(1259));
        assert_eq!(catalog_table_oid("pg_proc"), Some(1255));
        assert_eq!(catalog_table_oid("t"), None);
        let oid = derived_oid(&["table", "0f3c"]);
        assert!((1 << 29..1 << 30).contains(&oid));
        assert_eq!(oid, derived_oid(&["table", "0f3c"]));
    }
}
