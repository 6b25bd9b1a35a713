//! Wasm functions in `pg_catalog.pg_proc`, and the catalog functions psql's
//! `\df` calls on them (`pg_function_is_visible`,
//! `pg_get_function_result`, `pg_get_function_arguments`).
//!
//! `datafusion-pg-catalog` serves PostgreSQL's own functions from a static
//! `pg_proc`; this wraps its `pg_catalog` schema so that `pg_proc` also has
//! one row per Wasm function overload, in schema `public`. The wrapper also
//! serves `pg_index` and `pg_constraint` as what they are in Quiver: empty,
//! and `pg_class` with the columns clients read that it lacks.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Float32Array, Int16Array, Int32Array, RecordBatch,
    StringArray, new_null_array,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session as CatalogSession, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{MemTable, TableType};
use datafusion::logical_expr::{ColumnarValue, Expr, Volatility, create_udf};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::SessionContext;
use quiver_catalog::{Catalog, DEFAULT_SCHEMA, Object};

use crate::auth::Roles;
use crate::pg_acl::{Amendment, Privileged, WASM_LANGUAGE_OID, acl_items};
use crate::pg_relations::{Listing, RelationTable, Sources};
use crate::pg_roles::{PgAuthMembers, PgRoles, RoleList, owner_name, pg_get_userbyid, role_oid};
use crate::system::SystemTable;
use quiver_udf_registry::{FunctionDef, FunctionRegistry, SqlType};

/// Installs the wrapped `pg_catalog` schema and the `\df` functions in `ctx`.
pub(crate) fn install(
    ctx: &SessionContext,
    database: &str,
    registry: Arc<FunctionRegistry>,
    tables: Arc<Catalog>,
    roles: Arc<Roles>,
) -> DfResult<()> {
    let catalog = ctx
        .catalog(database)
        .ok_or_else(|| DataFusionError::Configuration(format!("no catalog {database}")))?;
    let inner = catalog
        .schema("pg_catalog")
        .ok_or_else(|| DataFusionError::Configuration("no pg_catalog schema".into()))?;
    catalog.register_schema(
        "pg_catalog",
        Arc::new(PgCatalogWithFunctions {
            inner,
            registry: registry.clone(),
            catalog: tables.clone(),
            roles: RoleList::new(roles.clone(), tables.clone()),
        }),
    )?;
    ctx.register_udf(pg_get_userbyid(RoleList::new(
        roles.clone(),
        tables.clone(),
    )));
    ctx.register_udf(crate::pg_acl::acldefault(RoleList::new(
        roles,
        tables.clone(),
    )));
    for function in crate::pg_relations::functions(tables) {
        ctx.register_udf(function);
    }

    ctx.register_udf(create_udf(
        "pg_function_is_visible",
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|args| {
            let oids = args[0].to_array(1)?;
            let visible: BooleanArray = oids
                .as_primitive::<Int32Type>()
                .iter()
                .map(|o| o.map(|_| true))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(visible)))
        }),
    ));
    for (name, describe) in [
        (
            "pg_get_function_result",
            result_of as fn(&FunctionDef) -> String,
        ),
        ("pg_get_function_arguments", arguments_of),
    ] {
        let registry = registry.clone();
        ctx.register_udf(crate::pg_functions::oid_text(
            name,
            move || registry.definitions(),
            move |defs, oid| defs.iter().find(|d| function_oid(d) == oid).map(describe),
        ));
    }
    Ok(())
}

fn result_of(def: &FunctionDef) -> String {
    def.result_text()
}

fn arguments_of(def: &FunctionDef) -> String {
    def.args
        .iter()
        .map(SqlType::pg_name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stable oid for a function overload, derived from its signature, above
/// the range PostgreSQL's own objects and the catalog's schemas use.
fn function_oid(def: &FunctionDef) -> i32 {
    let mut hasher = DefaultHasher::new();
    def.signature().hash(&mut hasher);
    (1 << 30) | (hasher.finish() as i32 & 0x3fff_ffff)
}

fn type_oid(t: &SqlType) -> i32 {
    match t {
        SqlType::Boolean => 16,
        SqlType::Int8 | SqlType::Int16 => 21,
        SqlType::Int32 => 23,
        SqlType::Int64 => 20,
        SqlType::Float32 => 700,
        SqlType::Float64 => 701,
        SqlType::Text => 25,
        SqlType::Bytea => 17,
        SqlType::Date => 1082,
        SqlType::Timestamp => 1114,
        SqlType::Decimal { .. } => 1700,
        SqlType::AnyElement => 2283,
    }
}

#[derive(Debug)]
struct PgCatalogWithFunctions {
    inner: Arc<dyn SchemaProvider>,
    registry: Arc<FunctionRegistry>,
    catalog: Arc<Catalog>,
    roles: RoleList,
}

impl PgCatalogWithFunctions {
    /// `datafusion-pg-catalog`'s table `name`, as it lists it.
    async fn inner_table(&self, name: &str) -> DfResult<Arc<dyn TableProvider>> {
        let table = self.inner.table(name).await?;
        table.ok_or_else(|| DataFusionError::Configuration(format!("no pg_catalog.{name}")))
    }
}

/// The columns of `datafusion-pg-catalog`'s table `table` that are NULL
/// in Quiver, in PostgreSQL's types where its are others: arrays it gives
/// as text (privileges, options, roles, attribute numbers), and functions it
/// names (`regproc`) which queries cast to `oid` (pg_dump: `amhandler::oid`;
/// see also `crate::rewrite`).
/// These tables are empty or about PostgreSQL's own objects, which have
/// no privileges, options or handlers for these to be about.
fn null_columns(table: &str) -> impl Iterator<Item = (&'static str, ScalarValue)> {
    let list = |item: DataType| {
        ScalarValue::try_from(DataType::new_list(item, true)).unwrap_or(ScalarValue::Null)
    };
    let oid = || ScalarValue::Int32(None);
    let columns: Vec<(&'static str, ScalarValue)> = match table {
        "pg_am" => vec![("amhandler", oid())],
        "pg_ts_parser" => [
            "prsstart",
            "prstoken",
            "prsend",
            "prsheadline",
            "prslextype",
        ]
        .into_iter()
        .map(|c| (c, oid()))
        .collect(),
        "pg_ts_template" => vec![("tmplinit", oid()), ("tmpllexize", oid())],
        "pg_init_privs" => vec![("initprivs", list(DataType::Utf8))],
        "pg_event_trigger" => vec![("evttags", list(DataType::Utf8))],
        "pg_policy" => vec![("polroles", list(DataType::Int32))],
        "pg_publication_rel" => vec![("prattrs", list(DataType::Int16))],
        "pg_foreign_data_wrapper" => vec![
            ("fdwhandler", oid()),
            ("fdwvalidator", oid()),
            ("fdwacl", list(DataType::Utf8)),
            ("fdwoptions", list(DataType::Utf8)),
        ],
        "pg_foreign_server" => vec![
            ("srvacl", list(DataType::Utf8)),
            ("srvoptions", list(DataType::Utf8)),
        ],
        "pg_default_acl" => vec![("defaclacl", list(DataType::Utf8))],
        "pg_type" => vec![("typacl", list(DataType::Utf8))],
        _ => vec![],
    };
    columns.into_iter()
}

/// The catalog tables PostgreSQL has and `datafusion-pg-catalog` lacks.
pub(crate) const MISSING_TABLES: [&str; 2] = ["pg_transform", "pg_seclabels"];

/// A catalog table PostgreSQL has and `datafusion-pg-catalog` lacks, empty
/// in Quiver too: `pg_transform`, and the view `pg_seclabels`.
fn missing_table(name: &str) -> DfResult<Arc<dyn TableProvider>> {
    let oid = |name: &str| Field::new(name, DataType::Int32, true);
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let fields = match name {
        "pg_transform" => vec![
            oid("oid"),
            oid("trftype"),
            oid("trflang"),
            oid("trffromsql"),
            oid("trftosql"),
        ],
        _ => vec![
            oid("objoid"),
            oid("classoid"),
            oid("objsubid"),
            text("objtype"),
            oid("objnamespace"),
            text("objname"),
            text("provider"),
            text("label"),
        ],
    };
    Ok(Arc::new(MemTable::try_new(
        Arc::new(Schema::new(fields)),
        vec![vec![]],
    )?))
}

#[async_trait]
impl SchemaProvider for PgCatalogWithFunctions {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.extend(MISSING_TABLES.iter().map(|name| name.to_string()));
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let table = match self.inner.table(name).await? {
            Some(table) => table,
            None if MISSING_TABLES.contains(&name) => missing_table(name)?,
            None => return Ok(None),
        };
        let sources = Sources {
            classes: self.inner_table("pg_class").await?,
            namespaces: self.inner_table("pg_namespace").await?,
            catalog: self.catalog.clone(),
        };
        let relations = |table: Arc<dyn TableProvider>, listing| -> DfResult<_> {
            Ok(
                Arc::new(RelationTable::new(table, listing, sources.clone()))
                    as Arc<dyn TableProvider>,
            )
        };
        let table = match name {
            "pg_proc" => Arc::new(PgProc {
                // Privileges: NULL for PostgreSQL's functions.
                inner: Arc::new(WithConstantColumns::nulls(table, &["proacl"])),
                namespaces: self.inner.table("pg_namespace").await?,
                registry: self.registry.clone(),
                catalog: self.catalog.clone(),
            }),
            "pg_constraint" => none_with_arrays(table)?,
            // Rules: none in Quiver (its views are no rules); the static
            // catalog's are about PostgreSQL's views, which it lacks.
            "pg_rewrite" => Arc::new(MemTable::try_new(table.schema(), vec![vec![]])?),
            "pg_am"
            | "pg_ts_parser"
            | "pg_ts_template"
            | "pg_init_privs"
            | "pg_event_trigger"
            | "pg_policy"
            | "pg_publication_rel"
            | "pg_foreign_data_wrapper"
            | "pg_foreign_server"
            | "pg_default_acl"
            | "pg_type" => Arc::new(WithConstantColumns::new(
                table,
                null_columns(name).collect(),
            )),
            "pg_index" => relations(none_with_arrays(table)?, Listing::Index)?,
            // Storage options: none in Quiver.
            "pg_class" => relations(
                Arc::new(WithConstantColumns::nulls(table, &["relacl", "reloptions"])),
                Listing::Class,
            )?,
            "pg_attrdef" => relations(table, Listing::Attrdef)?,
            "pg_sequence" => relations(table, Listing::Sequence)?,
            "pg_depend" => relations(table, Listing::Depend)?,
            "pg_description" => relations(table, Listing::Description)?,
            "pg_namespace" => Arc::new(Privileged::new(
                table,
                Amendment::Namespace,
                self.catalog.clone(),
            )),
            "pg_language" => Arc::new(Privileged::new(
                table,
                Amendment::Language,
                self.catalog.clone(),
            )),
            "pg_roles" => Arc::new(SystemTable(PgRoles {
                schema: table.schema(),
                roles: self.roles.clone(),
            })),
            "pg_auth_members" => Arc::new(SystemTable(PgAuthMembers {
                schema: table.schema(),
                roles: self.roles.clone(),
            })),
            // Column privileges: none in Quiver.
            "pg_attribute" => relations(
                Arc::new(WithConstantColumns::nulls(
                    table,
                    &["attacl", "attoptions", "attfdwoptions"],
                )),
                Listing::Attribute,
            )?,
            _ => table,
        };
        // Each row of a catalog table says which it is in (pg_dump reads it).
        Ok(Some(match crate::pg_relations::catalog_table_oid(name) {
            Some(oid) if table.schema().index_of("tableoid").is_err() => Arc::new(
                WithConstantColumns::new(table, vec![("tableoid", ScalarValue::Int32(Some(oid)))]),
            ),
            _ => table,
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name) || MISSING_TABLES.contains(&name)
    }
}

/// Quiver has no indexes and no constraints, so `pg_index` and
/// `pg_constraint` are empty (`datafusion-pg-catalog` serves PostgreSQL's
/// own, about system tables Quiver does not have). Their vector columns
/// (`int2vector`, `oidvector`, `smallint[]`, `oid[]`) are text there; here
/// they are arrays, as in PostgreSQL, so that client queries which unnest
/// them (SQLAlchemy's key and index reflection) plan.
fn none_with_arrays(table: Arc<dyn TableProvider>) -> DfResult<Arc<dyn TableProvider>> {
    const ARRAYS: &[(&str, DataType)] = &[
        ("indkey", DataType::Int16),
        ("indoption", DataType::Int16),
        ("indcollation", DataType::Int32),
        ("indclass", DataType::Int32),
        ("conkey", DataType::Int16),
        ("confkey", DataType::Int16),
        ("confdelsetcols", DataType::Int16),
        ("conpfeqop", DataType::Int32),
        ("conppeqop", DataType::Int32),
        ("conffeqop", DataType::Int32),
        ("conexclop", DataType::Int32),
    ];
    let schema = table.schema();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(
            |field| match ARRAYS.iter().find(|(name, _)| field.name() == name) {
                Some((name, item)) => {
                    let field =
                        Field::new(field.name(), DataType::new_list(item.clone(), true), true);
                    // `pg_index`'s vectors (its other arrays are arrays).
                    match *name {
                        "indkey" | "indoption" => field.with_metadata(vector("int2vector")),
                        "indcollation" | "indclass" => field.with_metadata(vector("oidvector")),
                        _ => field,
                    }
                }
                None => field.as_ref().clone(),
            },
        )
        .collect();
    Ok(Arc::new(MemTable::try_new(
        Arc::new(Schema::new(fields)),
        vec![vec![]],
    )?))
}

fn vector(kind: &str) -> std::collections::HashMap<String, String> {
    [(crate::encode::VECTOR.to_string(), kind.to_string())].into()
}

/// A `pg_catalog` table with columns of one value each that
/// `datafusion-pg-catalog` leaves out or types otherwise: text-array
/// columns PostgreSQL's clients select, all NULL, and `tableoid`.
#[derive(Debug)]
struct WithConstantColumns {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
    /// The columns of one value, and their values.
    constants: Vec<(String, ScalarValue)>,
}

impl WithConstantColumns {
    /// `inner` with the columns `constants`: in its place if `inner` has
    /// such a column (of another type), else at the end.
    fn new(inner: Arc<dyn TableProvider>, constants: Vec<(&str, ScalarValue)>) -> Self {
        let field = |name: &str, value: &ScalarValue| {
            Arc::new(Field::new(name, value.data_type(), value.is_null()))
        };
        let inner_schema = inner.schema();
        let replaced = inner_schema.fields().iter().map(|existing| {
            match constants.iter().find(|(name, _)| name == existing.name()) {
                Some((name, value)) => field(name, value),
                None => existing.clone(),
            }
        });
        let extra = constants
            .iter()
            .filter(|(name, _)| inner_schema.index_of(name).is_err())
            .map(|(name, value)| field(name, value));
        let fields: Vec<_> = replaced.chain(extra).collect();
        Self {
            inner,
            schema: Arc::new(Schema::new(fields)),
            constants: constants
                .into_iter()
                .map(|(name, value)| (name.to_string(), value))
                .collect(),
        }
    }

    /// `inner` with the columns `names` as null lists of text.
    fn nulls(inner: Arc<dyn TableProvider>, names: &[&str]) -> Self {
        let list = DataType::new_list(DataType::Utf8, true);
        let null = ScalarValue::try_from(&list).expect("a list has a null");
        Self::new(
            inner,
            names.iter().map(|name| (*name, null.clone())).collect(),
        )
    }

    fn constant(&self, name: &str) -> Option<&ScalarValue> {
        self.constants
            .iter()
            .find(|(constant, _)| constant == name)
            .map(|(_, value)| value)
    }
}

#[async_trait]
impl TableProvider for WithConstantColumns {
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
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let known = self.inner.schema().fields().len();
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let from_inner: Vec<usize> = wanted
            .iter()
            .copied()
            .filter(|&i| i < known && self.constant(self.schema.field(i).name()).is_none())
            .collect();
        let input = self
            .inner
            .scan(state, Some(&from_inner), &[], limit)
            .await?;
        let exprs = wanted.iter().map(|&i| {
            let field = self.schema.field(i);
            let expr: Arc<dyn PhysicalExpr> = match from_inner.iter().position(|&j| j == i) {
                Some(position) => Arc::new(Column::new(field.name(), position)),
                None => Arc::new(Literal::new(match self.constant(field.name()) {
                    Some(value) => value.clone(),
                    None => ScalarValue::try_from(field.data_type())?,
                })),
            };
            Ok(ProjectionExpr::new(expr, field.name()))
        });
        Ok(Arc::new(ProjectionExec::try_new(
            exprs.collect::<DfResult<Vec<_>>>()?,
            input,
        )?))
    }
}

/// `pg_proc`: PostgreSQL's functions, then one row per Wasm overload, with
/// its owner and privileges.
#[derive(Debug)]
struct PgProc {
    inner: Arc<dyn TableProvider>,
    namespaces: Option<Arc<dyn TableProvider>>,
    registry: Arc<FunctionRegistry>,
    catalog: Arc<Catalog>,
}

impl PgProc {
    /// The oid `pg_namespace` gives schema `public`.
    async fn public_oid(&self, state: &dyn CatalogSession) -> DfResult<i32> {
        let Some(namespaces) = &self.namespaces else {
            return Ok(2200);
        };
        let plan = namespaces.scan(state, None, &[], None).await?;
        for batch in collect(plan, state.task_ctx()).await? {
            let (Some(oids), Some(names)) =
                (batch.column_by_name("oid"), batch.column_by_name("nspname"))
            else {
                continue;
            };
            let (Some(oids), Some(names)) = (
                oids.as_primitive_opt::<Int32Type>(),
                names.as_string_opt::<i32>(),
            ) else {
                continue;
            };
            if let Some(i) = names.iter().position(|n| n == Some(DEFAULT_SCHEMA)) {
                return Ok(oids.value(i));
            }
        }
        Ok(2200)
    }

    fn wasm_rows(&self, namespace: i32) -> DfResult<RecordBatch> {
        let schema = self.inner.schema();
        let defs = self.registry.definitions();
        let n = defs.len();
        let acls: Vec<_> = defs
            .iter()
            .map(|d| {
                let function = Object::Function(d.signature());
                let acl = self.catalog.acl(&function);
                (function, acl)
            })
            .collect();
        let columns = schema
            .fields()
            .iter()
            .map(|field| -> ArrayRef {
                let text = |f: &dyn Fn(&FunctionDef) -> String| -> ArrayRef {
                    Arc::new(StringArray::from_iter_values(defs.iter().map(f)))
                };
                let int = |f: &dyn Fn(&FunctionDef) -> i32| -> ArrayRef {
                    Arc::new(Int32Array::from_iter_values(defs.iter().map(f)))
                };
                let boolean = |f: &dyn Fn(&FunctionDef) -> bool| -> ArrayRef {
                    Arc::new(BooleanArray::from_iter(defs.iter().map(|d| Some(f(d)))))
                };
                match (field.name().as_str(), field.data_type()) {
                    ("oid", DataType::Int32) => int(&function_oid),
                    ("proname", DataType::Utf8) => text(&|d| d.name.clone()),
                    ("pronamespace", DataType::Int32) => int(&|_| namespace),
                    ("proowner", DataType::Int32) => Arc::new(Int32Array::from_iter_values(
                        acls.iter().map(|(_, acl)| role_oid(owner_name(acl))),
                    )),
                    ("proacl", _) => crate::pg_acl::acl_column(
                        acls.iter().map(|(function, acl)| acl_items(function, acl)),
                    ),
                    ("prolang", DataType::Int32) => int(&|_| WASM_LANGUAGE_OID),
                    ("prorettype", DataType::Int32) => int(&|d| type_oid(&d.returns)),
                    ("prokind", DataType::Utf8) => text(&|d| match d.kind {
                        quiver_udf_registry::Kind::Aggregate
                        | quiver_udf_registry::Kind::Folded(_) => "a".into(),
                        _ => "f".into(),
                    }),
                    ("provolatile", DataType::Utf8) => text(&|d| d.volatility.code().into()),
                    ("proparallel", DataType::Utf8) => text(&|_| "s".into()),
                    ("proisstrict", DataType::Boolean) => boolean(&|d| d.strict),
                    ("proretset", DataType::Boolean) => {
                        boolean(&|d| matches!(d.kind, quiver_udf_registry::Kind::Table { .. }))
                    }
                    ("prosecdef" | "proleakproof", DataType::Boolean) => boolean(&|_| false),
                    ("proargtypes", DataType::Utf8) => text(&|d| {
                        d.args
                            .iter()
                            .map(|t| type_oid(t).to_string())
                            .collect::<Vec<_>>()
                            .join(" ")
                    }),
                    ("pronargs", DataType::Int16) => Arc::new(Int16Array::from_iter_values(
                        defs.iter().map(|d| d.args.len() as i16),
                    )),
                    ("pronargdefaults", DataType::Int16) => {
                        Arc::new(Int16Array::from_iter_values(defs.iter().map(|_| 0)))
                    }
                    ("procost", DataType::Float32) => {
                        Arc::new(Float32Array::from_iter_values(defs.iter().map(|_| 1.0)))
                    }
                    ("prorows", DataType::Float32) => {
                        Arc::new(Float32Array::from_iter_values(defs.iter().map(|_| 0.0)))
                    }
                    ("provariadic", DataType::Int32) => int(&|_| 0),
                    ("prosupport", DataType::Utf8) => text(&|_| "-".into()),
                    ("prosrc", DataType::Utf8) => text(&|d| d.symbol.clone()),
                    ("probin", DataType::Utf8) => text(&|d| format!("sha256:{}", d.module_sha256)),
                    (_, data_type) => new_null_array(data_type, n),
                }
            })
            .collect();
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

#[async_trait]
impl TableProvider for PgProc {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
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
        let builtin = self.inner.scan(state, projection, &[], None).await?;
        let wasm = MemorySourceConfig::try_new_exec(
            &[vec![self.wasm_rows(self.public_oid(state).await?)?]],
            self.schema(),
            projection.cloned(),
        )?;
        Ok(UnionExec::try_new(vec![builtin, wasm])?)
    }
}
