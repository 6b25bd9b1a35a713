//! Table privileges, PostgreSQL's way, for what Quiver has: a table's owner
//! (the role that created it) and superusers may do anything to it; other
//! roles need a privilege granted to them or to `PUBLIC` (`GRANT SELECT,
//! INSERT ON t TO alice`). A statement needs `SELECT` on every stored table
//! it reads and `INSERT` (`UPDATE`, `DELETE`) on the one it writes; `DROP
//! TABLE` and `GRANT` need the owner. Temporary tables belong to their
//! session, and the system catalogs are open to every role.

use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{LogicalPlan, WriteOp};
use datafusion::sql::sqlparser::ast::{
    Action, GrantObjects, Grantee, GranteeName, GranteesType, Privileges,
};
use quiver_catalog::{DEFAULT_SCHEMA, PUBLIC, Privilege};

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

/// The name of `table` if it is in the schema stored tables live in.
pub(crate) fn stored_name(table: &TableReference) -> Option<&str> {
    match table.schema() {
        None | Some(DEFAULT_SCHEMA) => Some(table.table()),
        Some(_) => None,
    }
}

/// The error for a role that lacks a privilege on `table`.
pub(crate) fn denied(table: &str) -> Error {
    Error::InsufficientPrivilege(format!("permission denied for table {table}"))
}

/// What a `GRANT` or `REVOKE` names.
pub(crate) struct Grant {
    pub privileges: Vec<Privilege>,
    pub tables: Tables,
    /// Role names, or [`PUBLIC`].
    pub grantees: Vec<String>,
}

/// The tables a `GRANT` or `REVOKE` is about.
pub(crate) enum Tables {
    Named(Vec<String>),
    /// `ALL TABLES IN SCHEMA public`.
    All,
}

impl Grant {
    /// Reads the parts of a `GRANT`/`REVOKE` statement Quiver supports:
    /// table privileges (or `ALL`) on tables (or `ALL TABLES IN SCHEMA
    /// public`) to roles or `PUBLIC`.
    pub(crate) fn new(
        privileges: &Privileges,
        objects: Option<&GrantObjects>,
        grantees: &[Grantee],
    ) -> Result<Self> {
        let privileges = match privileges {
            Privileges::All { .. } => Privilege::ALL.to_vec(),
            Privileges::Actions(actions) => {
                actions.iter().map(privilege).collect::<Result<Vec<_>>>()?
            }
        };
        let tables = match objects {
            Some(GrantObjects::Tables(names)) => Tables::Named(
                names
                    .iter()
                    .map(|name| {
                        let name = crate::session::object_name(name);
                        let reference = TableReference::from(name.as_str());
                        stored_name(&reference)
                            .map(str::to_string)
                            .ok_or_else(|| Error::UndefinedTable(name.clone()))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(GrantObjects::AllTablesInSchema { schemas })
                if schemas
                    .iter()
                    .all(|s| crate::session::object_name(s) == DEFAULT_SCHEMA) =>
            {
                Tables::All
            }
            Some(other) => {
                return Err(Error::FeatureNotSupported(format!(
                    "privileges on {other} are not supported: only on tables"
                )));
            }
            None => {
                return Err(Error::FeatureNotSupported(
                    "granting roles to roles is not supported".into(),
                ));
            }
        };
        let grantees = grantees
            .iter()
            .map(|grantee| match (&grantee.grantee_type, &grantee.name) {
                (GranteesType::Public, _) => Ok(PUBLIC.to_string()),
                (_, Some(GranteeName::ObjectName(name))) => Ok(crate::session::object_name(name)),
                _ => Err(Error::FeatureNotSupported(format!(
                    "grantee {grantee} is not supported"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            privileges,
            tables,
            grantees,
        })
    }
}

fn privilege(action: &Action) -> Result<Privilege> {
    match action {
        Action::Select { columns: None } => Ok(Privilege::Select),
        Action::Insert { columns: None } => Ok(Privilege::Insert),
        Action::Update { columns: None } => Ok(Privilege::Update),
        Action::Delete => Ok(Privilege::Delete),
        Action::Truncate => Ok(Privilege::Truncate),
        Action::Select { .. } | Action::Insert { .. } | Action::Update { .. } => Err(
            Error::FeatureNotSupported("column privileges are not supported".into()),
        ),
        other => Err(Error::FeatureNotSupported(format!(
            "privilege {other} is not supported on tables"
        ))),
    }
}
