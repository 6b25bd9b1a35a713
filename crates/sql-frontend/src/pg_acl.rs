//! Privileges where clients look for them, in PostgreSQL's ACL form:
//! `pg_class.relacl` (psql's `\dp`), `pg_namespace.nspacl` (`\dn+`),
//! `pg_language.lanacl` (`\dL+`), `pg_proc.proacl` (`\df+`), and
//! `information_schema.table_privileges`; with the owners' oids next to
//! them (`relowner`, `nspowner`, `lanowner`, `proowner`).
//!
//! An ACL item is `grantee=privileges/grantor` (`=r/alice` for `PUBLIC`),
//! the privileges as letters (`r` SELECT, `a` INSERT, `w` UPDATE, `d`
//! DELETE, `D` TRUNCATE, `X` EXECUTE, `U` USAGE, `C` CREATE). As in
//! PostgreSQL, an object whose privileges are still its kind's default has
//! no ACL (`NULL`), but for the schema `public`, whose ACL PostgreSQL 15
//! spells out; once it has, the owner's own item comes first.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Int32Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarUDF, Signature, SimpleScalarUDF, Volatility,
};
use datafusion::physical_plan::ExecutionPlan;
use quiver_catalog::{Acl, Catalog, DEFAULT_SCHEMA, Object, PUBLIC, Privilege, WASM_LANGUAGE};

use crate::DATABASE;
use crate::pg_relations::{read_whole, texts};
use crate::pg_roles::{DATABASE_OWNER, RoleList, batch_by_name, owner_name, role_oid};
use crate::system::SystemRows;

/// The oid of the language `wasm` in `pg_language` (and `pg_proc.prolang`):
/// below PostgreSQL's first oid for user objects, as the language is built
/// into the server (pg_dump leaves it out, as it leaves out `plpgsql`).
pub(crate) const WASM_LANGUAGE_OID: i32 = 16000;

/// The oid `information_schema` has in `datafusion-pg-catalog`'s static
/// catalogs (`pg_type`, `pg_proc`).
const INFORMATION_SCHEMA_OID: i32 = 13283;

/// The call handler `pg_language` names for `wasm`.
const WASM_HANDLER_OID: i32 = WASM_LANGUAGE_OID + 1;

/// `pg_language`'s own oid, which its rows carry as `tableoid` (psql's
/// `\dL` joins descriptions on it).
const PG_LANGUAGE_OID: i32 = 2612;

/// The ACL items of `object`, whose ACL is `acl`; `None` while they are
/// its kind's default.
pub(crate) fn acl_items(object: &Object, acl: &Acl) -> Option<Vec<String>> {
    let default = object.default_acl(acl.owner.as_deref());
    if acl.grants == default.grants && !matches!(object, Object::Schema(_)) {
        return None;
    }
    Some(spelled_out(object, acl))
}

/// The ACL items of `object`, whose ACL is `acl`, the owner's first.
fn spelled_out(object: &Object, acl: &Acl) -> Vec<String> {
    let owner = owner_name(acl);
    let letters = |privileges: &mut dyn Iterator<Item = &Privilege>| -> String {
        privileges.map(|p| p.letter()).collect()
    };
    let mut items = vec![format!(
        "{owner}={}/{owner}",
        letters(&mut object.privileges().iter())
    )];
    for (grantee, privileges) in &acl.grants {
        let grantee = if grantee == PUBLIC { "" } else { grantee };
        let granted = letters(&mut privileges.iter());
        items.push(format!("{grantee}={granted}/{owner}"));
    }
    items
}

/// `acldefault(kind, owner)`: the ACL an object of `kind` (`r` a table,
/// `n` a schema, `f` a function, `l` a language, ...) owned by the role
/// with oid `owner` has before any `GRANT` or `REVOKE`, as Quiver grants
/// (pg_dump writes the difference from it as `GRANT`s and `REVOKE`s).
/// Kinds of object Quiver has no privileges on have PostgreSQL's.
pub(crate) fn acldefault(roles: RoleList) -> ScalarUDF {
    let udf = move |args: &[ColumnarValue]| -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let kinds = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let owners = datafusion::arrow::compute::cast(&arrays[1], &DataType::Int32)?;
        let listed = roles.list();
        let items = kinds
            .as_string::<i32>()
            .iter()
            .zip(owners.as_primitive::<datafusion::arrow::datatypes::Int32Type>())
            .map(|(kind, owner)| {
                let owner = roles.name_of(owner?, &listed);
                let object = match kind? {
                    "r" => Object::Table(String::new()),
                    "f" => Object::Function(String::new()),
                    "l" => Object::Language(String::new()),
                    // PostgreSQL's: Quiver's schemas grant nothing to
                    // others when made (`public` is spelled out).
                    "n" => return Some(vec![format!("{owner}=UC/{owner}")]),
                    "s" => return Some(vec![format!("{owner}=rwU/{owner}")]),
                    "T" => return Some(vec![format!("=U/{owner}"), format!("{owner}=U/{owner}")]),
                    "F" | "S" => return Some(vec![format!("{owner}=U/{owner}")]),
                    _ => return Some(vec![]),
                };
                let acl = object.default_acl(Some(&owner));
                Some(spelled_out(&object, &acl))
            })
            .collect::<Vec<_>>();
        Ok(ColumnarValue::Array(text_lists(items.into_iter())))
    };
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        "acldefault",
        Signature::any(2, Volatility::Stable),
        acl_type(),
        Arc::new(udf),
    ))
}

/// A column of text arrays, NULL where `None`: ACLs (`aclitem[]`, as lists
/// of text), a function's SET clauses (`proconfig`).
pub(crate) fn text_lists<'a>(acls: impl Iterator<Item = Option<Vec<String>>> + 'a) -> ArrayRef {
    let mut column = ListBuilder::new(StringBuilder::new());
    for acl in acls {
        match acl {
            Some(items) => {
                for item in items {
                    column.values().append_value(item);
                }
                column.append(true);
            }
            None => column.append(false),
        }
    }
    Arc::new(column.finish())
}

fn acl_type() -> DataType {
    DataType::new_list(DataType::Utf8, true)
}

/// `batch` with column `name` (if it has one) replaced by `column`.
fn with_column(batch: &RecordBatch, name: &str, column: ArrayRef) -> DfResult<RecordBatch> {
    let Ok(position) = batch.schema().index_of(name) else {
        return Ok(batch.clone());
    };
    let mut fields = batch.schema().fields().to_vec();
    fields[position] = Arc::new(Field::new(name, column.data_type().clone(), true));
    let mut columns = batch.columns().to_vec();
    columns[position] = column;
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// What a [`Privileged`] table shows of the catalog's owners and ACLs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Amendment {
    /// `pg_namespace`: the schema `public`'s.
    Namespace,
    /// `pg_language`: the language `wasm`, a row of its own.
    Language,
}

impl Amendment {
    /// The ACL column it fills in.
    fn acl_column(self) -> &'static str {
        match self {
            Amendment::Namespace => "nspacl",
            Amendment::Language => "lanacl",
        }
    }
}

/// A small `pg_catalog` table of `datafusion-pg-catalog`'s, read whole,
/// with the owners and ACLs of Quiver's objects filled in.
#[derive(Debug)]
pub(crate) struct Privileged {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
    amendment: Amendment,
    catalog: Arc<Catalog>,
}

impl Privileged {
    /// `inner` with its ACL column a list of text (and, for
    /// `pg_language`, a `tableoid` column).
    pub(crate) fn new(
        inner: Arc<dyn TableProvider>,
        amendment: Amendment,
        catalog: Arc<Catalog>,
    ) -> Self {
        let acl = amendment.acl_column();
        let mut fields: Vec<Field> = inner
            .schema()
            .fields()
            .iter()
            .map(|field| match field.name() == acl {
                true => Field::new(acl, acl_type(), true),
                false => field.as_ref().clone(),
            })
            .collect();
        if matches!(amendment, Amendment::Language) {
            fields.push(Field::new("tableoid", DataType::Int32, false));
        }
        Self {
            inner,
            schema: Arc::new(Schema::new(fields)),
            amendment,
            catalog,
        }
    }

    fn amend(&self, batch: RecordBatch) -> DfResult<RecordBatch> {
        let catalog = &self.catalog;
        match self.amendment {
            Amendment::Namespace => {
                // The stored schemas' (the others are Quiver's own).
                let schemas: Vec<Option<(Object, Acl)>> = texts(&batch, "nspname")
                    .into_iter()
                    .map(|name| {
                        let name = name?;
                        let stored = name == DEFAULT_SCHEMA || catalog.schema_entry(name).is_some();
                        let schema = Object::Schema(name.to_string());
                        stored.then(|| {
                            let acl = catalog.acl(&schema);
                            (schema, acl)
                        })
                    })
                    .collect();
                let acls = schemas.iter().map(|schema| {
                    let (schema, acl) = schema.as_ref()?;
                    acl_items(schema, acl)
                });
                let batch = with_column(&batch, "nspacl", text_lists(acls))?;
                let owners = owners_where(&batch, "nspowner", |i| match &schemas[i] {
                    Some((_, acl)) => Some(owner_name(acl).to_string()),
                    None => Some(DATABASE_OWNER.to_string()),
                });
                let batch = with_column(&batch, "nspowner", owners)?;
                // PostgreSQL's `information_schema`, which the static
                // catalogs' rows name by this oid.
                let row = batch_by_name(&batch.schema(), 1, |name| match name {
                    "oid" => Some(Arc::new(Int32Array::from_iter_values([
                        INFORMATION_SCHEMA_OID,
                    ]))),
                    "nspname" => Some(Arc::new(StringArray::from_iter_values([
                        "information_schema",
                    ]))),
                    "nspowner" => Some(Arc::new(Int32Array::from_iter_values([role_oid(
                        DATABASE_OWNER,
                    )]))),
                    _ => None,
                })?;
                // Quiver's own schema is not listed (see
                // `crate::pg_relations`: nor are its tables).
                let keep: datafusion::arrow::array::BooleanArray = texts(&batch, "nspname")
                    .into_iter()
                    .map(|name| Some(name != Some(crate::server::SYSTEM_SCHEMA)))
                    .collect();
                let batch = datafusion::arrow::compute::filter_record_batch(&batch, &keep)?;
                Ok(concat_batches(&batch.schema(), &[batch, row])?)
            }
            Amendment::Language => {
                // PostgreSQL's languages: no ACLs (the inner `lanacl`, of
                // another type, comes out NULL).
                let rows = batch.num_rows();
                let batch = batch_by_name(&self.schema, rows, |name| match name {
                    "tableoid" => Some(Arc::new(Int32Array::from_iter_values(
                        (0..rows).map(|_| PG_LANGUAGE_OID),
                    ))),
                    name => batch.column_by_name(name).cloned(),
                })?;
                let wasm = Object::Language(WASM_LANGUAGE.to_string());
                let acl = catalog.acl(&wasm);
                let int = |value: i32| -> Option<ArrayRef> {
                    Some(Arc::new(Int32Array::from_iter_values([value])))
                };
                let flag = |value: bool| -> Option<ArrayRef> {
                    Some(Arc::new(BooleanArray::from_iter([Some(value)])))
                };
                let row = batch_by_name(&self.schema, 1, |name| match name {
                    "oid" => int(WASM_LANGUAGE_OID),
                    "lanname" => Some(Arc::new(StringArray::from_iter_values([WASM_LANGUAGE]))),
                    "lanowner" => int(role_oid(owner_name(&acl))),
                    // A procedural language, untrusted: its functions run
                    // code the server loads.
                    "lanispl" => flag(true),
                    "lanpltrusted" => flag(false),
                    // Its handler is the server's Wasm runtime, which has
                    // no row in pg_proc; psql's `\dL` lists languages with
                    // a handler.
                    "lanplcallfoid" => int(WASM_HANDLER_OID),
                    "laninline" | "lanvalidator" => int(0),
                    "lanacl" => Some(text_lists([acl_items(&wasm, &acl)].into_iter())),
                    "tableoid" => int(PG_LANGUAGE_OID),
                    _ => None,
                })?;
                Ok(concat_batches(&self.schema, &[batch, row])?)
            }
        }
    }
}

/// Column `name` of `batch` (an owner's oid), with the owner `owner(row)`
/// gives (by name) where it gives one.
fn owners_where(
    batch: &RecordBatch,
    name: &str,
    owner: impl Fn(usize) -> Option<String>,
) -> ArrayRef {
    let current = batch.column_by_name(name).and_then(|c| {
        c.as_primitive_opt::<datafusion::arrow::datatypes::Int32Type>()
            .cloned()
    });
    let owners: Int32Array = (0..batch.num_rows())
        .map(|i| {
            owner(i)
                .map(|owner| role_oid(&owner))
                .or_else(|| current.as_ref().map(|c| c.value(i)))
        })
        .collect();
    Arc::new(owners)
}

#[async_trait]
impl TableProvider for Privileged {
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
        // These tables are small: read whole, amend, project.
        let whole = read_whole(&self.inner, state).await?;
        // In the columns (and their nullability) it declares.
        let amended = RecordBatch::try_new(self.schema(), self.amend(whole)?.columns().to_vec())?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![amended]],
            self.schema(),
            projection.cloned(),
        )?)
    }
}

/// `information_schema.table_privileges` (served as
/// `quiver.table_privileges`, which [`crate::rewrite`] puts in its place):
/// one row per privilege a role holds on a stored table, its owner's own
/// among them, as PostgreSQL lists them.
#[derive(Debug)]
pub(crate) struct TablePrivilegesTable {
    catalog: Arc<Catalog>,
    schema: SchemaRef,
}

impl TablePrivilegesTable {
    pub(crate) fn new(catalog: Arc<Catalog>) -> Self {
        let columns = [
            "grantor",
            "grantee",
            "table_catalog",
            "table_schema",
            "table_name",
            "privilege_type",
            "is_grantable",
            "with_hierarchy",
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|name| Field::new(*name, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        );
        Self {
            catalog,
            schema: Arc::new(schema),
        }
    }
}

#[async_trait]
impl SystemRows for TablePrivilegesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn rows(&self) -> DfResult<RecordBatch> {
        let mut columns: Vec<StringBuilder> = (0..self.schema.fields().len())
            .map(|_| StringBuilder::new())
            .collect();
        for entry in self.catalog.entries() {
            let table = Object::Table(entry.qualified().to_string());
            let owner = owner_name(&entry.acl).to_string();
            // The owner holds every privilege, and may grant it.
            let owners = Some((
                owner.clone(),
                table.privileges().iter().collect::<Vec<_>>(),
                "YES",
            ));
            let granted = entry.acl.grants.iter().map(|(grantee, privileges)| {
                let grantee = if grantee == PUBLIC { "PUBLIC" } else { grantee };
                (grantee.to_string(), privileges.iter().collect(), "NO")
            });
            for (grantee, privileges, grantable) in owners.into_iter().chain(granted) {
                for privilege in privileges {
                    let hierarchy = if *privilege == Privilege::Select {
                        "YES"
                    } else {
                        "NO"
                    };
                    let row = [
                        owner.as_str(),
                        grantee.as_str(),
                        DATABASE,
                        entry.schema.as_str(),
                        entry.name.as_str(),
                        &privilege.to_string(),
                        grantable,
                        hierarchy,
                    ];
                    for (column, value) in columns.iter_mut().zip(row) {
                        column.append_value(value);
                    }
                }
            }
        }
        let columns = columns
            .iter_mut()
            .map(|c| Arc::new(c.finish()) as ArrayRef)
            .collect();
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acls_are_written_as_postgresql_writes_them() {
        let table = Object::Table("t".into());
        let mut entry = Acl::owned_by("quiver");
        assert_eq!(acl_items(&table, &entry), None);
        entry.change("alice", &[Privilege::Select, Privilege::Insert], true);
        entry.change(PUBLIC, &[Privilege::Select], true);
        assert_eq!(
            acl_items(&table, &entry).unwrap(),
            ["quiver=arwdD/quiver", "alice=ar/quiver", "=r/quiver"]
        );
        let schema = Object::Schema("public".into());
        assert_eq!(
            acl_items(&schema, &schema.default_acl(None)).unwrap(),
            [
                "pg_database_owner=UC/pg_database_owner",
                "=U/pg_database_owner"
            ]
        );
        let function = Object::Function("f(bigint)".into());
        let mut acl = function.default_acl(Some("alice"));
        assert_eq!(acl_items(&function, &acl), None);
        acl.change(PUBLIC, &[Privilege::Execute], false);
        assert_eq!(acl_items(&function, &acl).unwrap(), ["alice=X/alice"]);
    }
}
