//! Wasm functions in `pg_catalog.pg_proc`, and the catalog functions psql's
//! `\df` calls on them (`pg_function_is_visible`,
//! `pg_get_function_result`, `pg_get_function_arguments`,
//! `pg_get_function_identity_arguments`).
//!
//! `datafusion-pg-catalog` serves PostgreSQL's own functions from a static
//! `pg_proc`; [`PgProc`] (which `crate::pg_catalog` serves in its place) also
//! has one row per Wasm function overload, in schema `public`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Float32Array, Int16Array, Int32Array, RecordBatch,
    StringArray, new_null_array,
};
use datafusion::arrow::datatypes::{DataType, Int32Type, SchemaRef};
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::{ColumnarValue, Expr, Volatility, create_udf};
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::SessionContext;
use quiver_catalog::{Catalog, DEFAULT_SCHEMA, Object};

use crate::pg_acl::{WASM_LANGUAGE_OID, acl_items};
use crate::pg_roles::{owner_name, role_oid};
use quiver_udf_registry::{FunctionDef, FunctionRegistry, SqlType};

/// Installs the `\df` functions in `ctx`.
pub(crate) fn install(ctx: &SessionContext, registry: Arc<FunctionRegistry>) {
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
        // The arguments that identify it (pg_dump): Wasm functions have no
        // argument names, modes or defaults, so the same.
        ("pg_get_function_identity_arguments", arguments_of),
        // psql's `\sf`: the CREATE statement, SET clauses included.
        ("pg_get_functiondef", definition_of),
    ] {
        let registry = registry.clone();
        ctx.register_udf(crate::pg_functions::oid_text(
            name,
            move || registry.definitions(),
            move |defs, oid| defs.iter().find(|d| function_oid(d) == oid).map(describe),
        ));
    }
}

fn result_of(def: &FunctionDef) -> String {
    def.result_text()
}

fn arguments_of(def: &FunctionDef) -> String {
    def.declared_args()
}

/// `CREATE OR REPLACE FUNCTION` of `def` as PostgreSQL's
/// `pg_get_functiondef` writes a function in C (the module by its hash, as
/// `pg_proc.probin` names it, and the symbol); empty for an aggregate,
/// which PostgreSQL refuses to write this way.
fn definition_of(def: &FunctionDef) -> String {
    use quiver_udf_registry::{Kind, Volatility, quote_ident, quote_literal};
    if matches!(def.kind, Kind::Aggregate | Kind::Folded(_)) {
        return String::new();
    }
    let mut text = format!(
        "CREATE OR REPLACE FUNCTION {}.{}({})\n RETURNS {}\n LANGUAGE wasm\n",
        quote_ident(DEFAULT_SCHEMA),
        quote_ident(&def.name),
        arguments_of(def),
        result_of(def),
    );
    let volatility = match def.volatility {
        Volatility::Immutable => " IMMUTABLE",
        Volatility::Stable => " STABLE",
        Volatility::Volatile => "",
    };
    let strict = if def.strict { " STRICT" } else { "" };
    text.push_str(&format!("{volatility}{strict} PARALLEL SAFE\n"));
    for (name, value) in def.settings() {
        text.push_str(&format!(
            " SET {} TO {}\n",
            quote_ident(&name),
            quote_literal(&value)
        ));
    }
    text.push_str(&format!(
        "AS {}, {}\n",
        quote_literal(&format!("sha256:{}", def.module_sha256)),
        quote_literal(&def.symbol)
    ));
    text
}

/// A stable oid for a function overload, derived from its signature, above
/// the range PostgreSQL's own objects and the catalog's schemas use.
fn function_oid(def: &FunctionDef) -> i32 {
    let mut hasher = DefaultHasher::new();
    def.signature().hash(&mut hasher);
    (1 << 30) | (hasher.finish() as i32 & 0x3fff_ffff)
}

/// PostgreSQL's `record` pseudo-type.
const RECORD_OID: i32 = 2249;

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

/// `pg_proc`: PostgreSQL's functions, then one row per Wasm overload, with
/// its owner and privileges.
#[derive(Debug)]
pub(crate) struct PgProc {
    pub(crate) inner: Arc<dyn TableProvider>,
    pub(crate) namespaces: Option<Arc<dyn TableProvider>>,
    pub(crate) registry: Arc<FunctionRegistry>,
    pub(crate) catalog: Arc<Catalog>,
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
                    ("proacl", _) => crate::pg_acl::text_lists(
                        acls.iter().map(|(function, acl)| acl_items(function, acl)),
                    ),
                    ("prolang", DataType::Int32) => int(&|_| WASM_LANGUAGE_OID),
                    // A transform returns rows of columns decided per
                    // query: `record`, as PostgreSQL's RETURNS SETOF record.
                    ("prorettype", DataType::Int32) => int(&|d| match d.kind {
                        quiver_udf_registry::Kind::Transform => RECORD_OID,
                        _ => type_oid(&d.returns),
                    }),
                    ("prokind", DataType::Utf8) => text(&|d| match d.kind {
                        quiver_udf_registry::Kind::Aggregate
                        | quiver_udf_registry::Kind::Folded(_) => "a".into(),
                        _ => "f".into(),
                    }),
                    ("provolatile", DataType::Utf8) => text(&|d| d.volatility.code().into()),
                    ("proparallel", DataType::Utf8) => text(&|_| "s".into()),
                    ("proisstrict", DataType::Boolean) => boolean(&|d| d.strict),
                    ("proretset", DataType::Boolean) => boolean(&|d| {
                        matches!(
                            d.kind,
                            quiver_udf_registry::Kind::Table { .. }
                                | quiver_udf_registry::Kind::Transform
                        )
                    }),
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
                    // PostgreSQL's default for a function not in C (which
                    // pg_dump leaves out of the CREATE FUNCTION it writes).
                    ("procost", DataType::Float32) => {
                        Arc::new(Float32Array::from_iter_values(defs.iter().map(|_| 100.0)))
                    }
                    ("prorows", DataType::Float32) => {
                        Arc::new(Float32Array::from_iter_values(defs.iter().map(|_| 0.0)))
                    }
                    ("provariadic", DataType::Int32) => int(&|_| 0),
                    ("prosupport", DataType::Utf8) => text(&|_| "-".into()),
                    // Its SET clauses, `name=value`, as PostgreSQL keeps
                    // them: pg_dump writes them back.
                    ("proconfig", DataType::List(_)) => {
                        crate::pg_acl::text_lists(defs.iter().map(|d| {
                            let settings = d.settings();
                            (!settings.is_empty()).then(|| {
                                settings
                                    .into_iter()
                                    .map(|(name, value)| format!("{name}={value}"))
                                    .collect()
                            })
                        }))
                    }
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
