//! Quiver's `pg_catalog` schema: `datafusion-pg-catalog`'s, wrapped, so
//! that its tables list what Quiver has as PostgreSQL lists it:
//! - Wasm functions in `pg_proc` (`crate::pg_proc`);
//! - stored relations in `pg_class`, `pg_attribute`, `pg_attrdef`,
//!   `pg_index`, `pg_constraint`, `pg_sequence`, `pg_depend` and
//!   `pg_description` (`crate::pg_relations`);
//! - owners and privileges in `pg_namespace` and `pg_language`
//!   (`crate::pg_acl`), roles in `pg_roles` and `pg_auth_members`
//!   (`crate::pg_roles`);
//! - `pg_rewrite` empty (its views are no rules), `pg_transform` and `pg_seclabels`,
//!   which `datafusion-pg-catalog` lacks, empty;
//! - columns in PostgreSQL's types where clients read them so (arrays,
//!   `int2vector`), and every catalog row's `tableoid`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session as CatalogSession, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::datasource::{MemTable, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::prelude::SessionContext;
use quiver_catalog::Catalog;

use crate::auth::Roles;
use crate::pg_acl::{Amendment, Privileged};
use crate::pg_proc::PgProc;
use crate::pg_relations::{Listing, RelationTable, Sources};
use crate::pg_roles::{PgAuthMembers, PgRoles, RoleList, pg_get_userbyid};
use crate::system::SystemTable;
use quiver_udf_registry::FunctionRegistry;

/// Installs the wrapped `pg_catalog` schema, and the catalog functions
/// over what Quiver has, in `ctx`.
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
        Arc::new(PgCatalog {
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
    crate::pg_proc::install(ctx, registry);
    Ok(())
}

#[derive(Debug)]
struct PgCatalog {
    inner: Arc<dyn SchemaProvider>,
    registry: Arc<FunctionRegistry>,
    catalog: Arc<Catalog>,
    roles: RoleList,
}

impl PgCatalog {
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

/// `table`, the catalog table `name`, with a `tableoid` column: each row
/// says which catalog it is in (pg_dump reads it).
fn with_table_oid(name: &str, table: Arc<dyn TableProvider>) -> Arc<dyn TableProvider> {
    match crate::pg_relations::catalog_table_oid(name) {
        Some(oid) if table.schema().index_of("tableoid").is_err() => Arc::new(
            WithConstantColumns::new(table, vec![("tableoid", ScalarValue::Int32(Some(oid)))]),
        ),
        _ => table,
    }
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
impl SchemaProvider for PgCatalog {
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
        if let Some(listing) = Listing::of(name) {
            // Read with `datafusion-pg-catalog`'s oids of relations and
            // schemas at hand.
            let sources = Sources {
                classes: self.inner_table("pg_class").await?,
                namespaces: self.inner_table("pg_namespace").await?,
                catalog: self.catalog.clone(),
            };
            let inner: Arc<dyn TableProvider> = match listing {
                // Privileges and storage options: filled in, and none.
                Listing::Class => {
                    Arc::new(WithConstantColumns::nulls(table, &["relacl", "reloptions"]))
                }
                // Column privileges and options: none in Quiver.
                Listing::Attribute => Arc::new(WithConstantColumns::nulls(
                    table,
                    &["attacl", "attoptions", "attfdwoptions"],
                )),
                Listing::Index | Listing::Constraint => none_with_arrays(table)?,
                _ => table,
            };
            return Ok(Some(with_table_oid(
                name,
                Arc::new(RelationTable::new(inner, listing, sources)),
            )));
        }
        let nulls: Vec<_> = null_columns(name).collect();
        let table: Arc<dyn TableProvider> = match name {
            "pg_proc" => Arc::new(PgProc {
                // Privileges and SET clauses: NULL for PostgreSQL's functions; transforms
                // (an array pg_dump reads with array_to_string): none.
                inner: Arc::new(WithConstantColumns::nulls(
                    table,
                    &["proacl", "protrftypes", "proconfig"],
                )),
                namespaces: self.inner.table("pg_namespace").await?,
                registry: self.registry.clone(),
                catalog: self.catalog.clone(),
            }),
            // Rules: none in Quiver (its views are no rules); the static
            // catalog's are about PostgreSQL's views, which it lacks.
            "pg_rewrite" => Arc::new(MemTable::try_new(table.schema(), vec![vec![]])?),
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
            _ if !nulls.is_empty() => Arc::new(WithConstantColumns::new(table, nulls)),
            _ => table,
        };
        Ok(Some(with_table_oid(name, table)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name) || MISSING_TABLES.contains(&name)
    }
}

/// `table` (`pg_index` or `pg_constraint`) without its rows, which are
/// about PostgreSQL's system tables (Quiver's indexes and constraints are
/// added by `crate::pg_relations`). Its vector columns
/// (`int2vector`, `oidvector`, `smallint[]`, `oid[]`) are text there; here
/// they are arrays, as in PostgreSQL, so that client queries which unnest
/// them (SQLAlchemy's key and index reflection) plan, and `pg_index`'s
/// vectors are written as PostgreSQL writes them (`1 2`, see
/// `crate::encode::VECTOR`).
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
