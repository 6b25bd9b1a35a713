//! Privileges, PostgreSQL's way, for what Quiver has (see
//! [`quiver_catalog::Object`]): an object's owner (the role that created
//! it) and superusers may do anything to it; other roles need a privilege
//! granted to them or to `PUBLIC` (`GRANT SELECT, INSERT ON t TO alice`).
//! A statement needs `SELECT` on every stored table it reads, `INSERT`
//! (`UPDATE`, `DELETE`) on the one it writes, and `EXECUTE` on every Wasm
//! function it calls; `DROP` and `GRANT` need the owner. Temporary tables
//! belong to their session, and the system catalogs are open to every
//! role.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType as ArrowType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{
    AggregateUDF, Expr, ExprSchemable, LogicalPlan, ScalarUDFImpl, WindowFunctionDefinition,
    WriteOp,
};
use datafusion::sql::sqlparser::ast::{
    Action, DataType, GrantObjects, Grantee, GranteeName, GranteesType, ObjectName, Privileges,
};
use quiver_catalog::{Object, PUBLIC, Privilege};
use quiver_udf_registry::{
    FoldedAggregateUdf, WasmAggregateUdf, WasmFunction, WasmScalarUdf, WasmTableProvider,
    called_overload,
};

use crate::{Error, Result};

/// The tables `plan` reads or writes, each with what it does to it.
pub(crate) fn needed(plan: &LogicalPlan) -> Vec<(TableReference, Privilege)> {
    let mut needed = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                needed.push((scan.table_name.clone(), Privilege::Select));
            }
            LogicalPlan::Dml(dml) => {
                let privilege = match dml.op {
                    WriteOp::Insert(_) | WriteOp::Ctas => Privilege::Insert,
                    WriteOp::Delete => Privilege::Delete,
                    WriteOp::Truncate => Privilege::Truncate,
                    // Any other write changes rows in place.
                    _ => Privilege::Update,
                };
                needed.push((dml.table_name.clone(), privilege));
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    needed
}

/// The signatures of the Wasm functions `plan` calls (`overloads_of`: a
/// Wasm function's overloads, by its name): its scalar functions, aggregates and window
/// aggregates, each the overload planning resolves for its arguments'
/// types, and its table functions. A call whose argument types cannot be
/// told names every overload of its function.
pub(crate) fn called(
    plan: &LogicalPlan,
    overloads_of: impl Fn(&str) -> Vec<Arc<WasmFunction>>,
) -> BTreeSet<String> {
    let mut called = BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(table) = provider.downcast_ref::<WasmTableProvider>()
        {
            called.insert(table.function().def().signature());
        }
        let schema = input_schema(node);
        let _ = node.apply_expressions(|expr| {
            expr.apply(|expr| {
                let call = match expr {
                    Expr::ScalarFunction(f) if is::<WasmScalarUdf>(f.func.inner().as_ref()) => {
                        Some((f.func.name(), &f.args))
                    }
                    Expr::AggregateFunction(f) if is_wasm_aggregate(&f.func) => {
                        Some((f.func.name(), &f.params.args))
                    }
                    Expr::WindowFunction(f) => match &f.fun {
                        WindowFunctionDefinition::AggregateUDF(udaf) if is_wasm_aggregate(udaf) => {
                            Some((udaf.name(), &f.params.args))
                        }
                        _ => None,
                    },
                    _ => None,
                };
                if let Some((name, args)) = call
                    && let overloads = overloads_of(name)
                    && !overloads.is_empty()
                {
                    let types: Option<Vec<ArrowType>> =
                        args.iter().map(|a| a.get_type(&schema).ok()).collect();
                    match types.and_then(|types| called_overload(&overloads, &types)) {
                        Some(f) => {
                            called.insert(f.def().signature());
                        }
                        None => called.extend(overloads.iter().map(|f| f.def().signature())),
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        });
        Ok(TreeNodeRecursion::Continue)
    });
    called
}

fn is_wasm_aggregate(udaf: &AggregateUDF) -> bool {
    let inner: &dyn Any = udaf.inner().as_ref();
    inner.is::<WasmAggregateUdf>() || inner.is::<FoldedAggregateUdf>()
}

fn is<T: Any>(function: &dyn ScalarUDFImpl) -> bool {
    let function: &dyn Any = function;
    function.is::<T>()
}

/// The columns a node's expressions read: its inputs' (its own for a node
/// without inputs).
fn input_schema(node: &LogicalPlan) -> DFSchema {
    let inputs = node.inputs();
    if inputs.is_empty() {
        return node.schema().as_ref().clone();
    }
    let mut schema = DFSchema::empty();
    for input in inputs {
        schema.merge(input.schema());
    }
    schema
}

/// The error for a role that lacks a privilege on `table`.
pub(crate) fn denied(table: &str) -> Error {
    Error::InsufficientPrivilege(format!("permission denied for table {table}"))
}

/// What a `GRANT` or `REVOKE` names.
pub(crate) struct Grant {
    /// `None`: `ALL [PRIVILEGES]`, every privilege the objects have.
    pub privileges: Option<Vec<Privilege>>,
    pub objects: Objects,
    /// Role names, or [`PUBLIC`].
    pub grantees: Vec<String>,
}

/// The objects a `GRANT` or `REVOKE` is about.
pub(crate) enum Objects {
    Tables(Vec<TableReference>),
    /// `ALL TABLES IN SCHEMA name, ...`.
    AllTables(Vec<String>),
    /// `SCHEMA name, ...`.
    Schemas(Vec<String>),
    /// `LANGUAGE wasm`.
    Languages(Vec<String>),
    /// `FUNCTION name[(types)]`: names and, when given, argument types.
    Functions(Vec<(ObjectName, Option<Vec<DataType>>)>),
}

impl Grant {
    /// Reads the parts of a `GRANT`/`REVOKE` statement Quiver supports:
    /// privileges (or `ALL`) on tables (or `ALL TABLES IN SCHEMA public`),
    /// the schema or functions, to roles or `PUBLIC` (`GRANT ... ON
    /// LANGUAGE` is parsed by [`crate::parse`], which passes `languages`).
    pub(crate) fn new(
        privileges: &Privileges,
        objects: Option<&GrantObjects>,
        grantees: &[Grantee],
    ) -> Result<Self> {
        let objects = match objects {
            Some(GrantObjects::Tables(names)) => {
                Objects::Tables(names.iter().map(crate::names::table_reference).collect())
            }
            Some(GrantObjects::AllTablesInSchema { schemas }) => {
                Objects::AllTables(schemas.iter().map(crate::session::object_name).collect())
            }
            Some(GrantObjects::Schemas(schemas)) => {
                Objects::Schemas(schemas.iter().map(crate::session::object_name).collect())
            }
            Some(GrantObjects::Function { name, arg_types }) => {
                // sqlparser reads `f()` and `f` alike: without types, the
                // name must have one overload.
                let args = (!arg_types.is_empty()).then(|| arg_types.clone());
                Objects::Functions(vec![(name.clone(), args)])
            }
            Some(other) => {
                return Err(Error::FeatureNotSupported(format!(
                    "privileges on {other} are not supported: only on tables, functions, schemas and LANGUAGE wasm"
                )));
            }
            None => {
                return Err(Error::FeatureNotSupported(
                    "granting roles to roles is not supported".into(),
                ));
            }
        };
        Self::on(objects, privileges, grantees)
    }

    /// `privileges` on `objects` to (or from) `grantees`.
    pub(crate) fn on(
        objects: Objects,
        privileges: &Privileges,
        grantees: &[Grantee],
    ) -> Result<Self> {
        let privileges = match privileges {
            Privileges::All { .. } => None,
            Privileges::Actions(actions) => Some(
                actions
                    .iter()
                    .map(|action| privilege(action, &objects.sample()))
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        let grantees = grantees
            .iter()
            .map(|grantee| match (&grantee.grantee_type, &grantee.name) {
                (GranteesType::Public, _) => Ok(PUBLIC.to_string()),
                (_, Some(GranteeName::ObjectName(name))) => Ok(crate::names::role_name(name)),
                _ => Err(Error::FeatureNotSupported(format!(
                    "grantee {grantee} is not supported"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            privileges,
            objects,
            grantees,
        })
    }
}

impl Objects {
    /// An object of the kind these are (its name empty).
    fn sample(&self) -> Object {
        match self {
            Objects::Tables(_) | Objects::AllTables(_) => Object::Table(String::new()),
            Objects::Schemas(_) => Object::Schema(String::new()),
            Objects::Languages(_) => Object::Language(String::new()),
            Objects::Functions(_) => Object::Function(String::new()),
        }
    }
}

/// The privilege `action` names, if objects of `object`'s kind have it
/// (0LP01 otherwise, as in PostgreSQL).
fn privilege(action: &Action, object: &Object) -> Result<Privilege> {
    let kind = object.kind();
    let privilege = match action {
        Action::Select { columns: None } => Privilege::Select,
        Action::Insert { columns: None } => Privilege::Insert,
        Action::Update { columns: None } => Privilege::Update,
        Action::Delete => Privilege::Delete,
        Action::Truncate => Privilege::Truncate,
        Action::Execute { obj_type: None } => Privilege::Execute,
        Action::Usage => Privilege::Usage,
        Action::Create { obj_type: None } => Privilege::Create,
        Action::Select { .. } | Action::Insert { .. } | Action::Update { .. } => {
            return Err(Error::FeatureNotSupported(
                "column privileges are not supported".into(),
            ));
        }
        other => {
            return Err(Error::InvalidGrantOperation(format!(
                "invalid privilege type {other} for {kind}"
            )));
        }
    };
    if object.privileges().contains(&privilege) {
        Ok(privilege)
    } else {
        Err(Error::InvalidGrantOperation(format!(
            "invalid privilege type {privilege} for {kind}"
        )))
    }
}
