//! Roles where clients look for them: `pg_roles` and `pg_auth_members`
//! (psql's `\du`), role oids in the catalogs' owner columns, and
//! `pg_get_userbyid`, which names them (psql's "Owner" columns).
//!
//! A role's oid is derived from its name, so that every catalog gives a
//! role the same one. Objects no role owns (the schema `public`,
//! the language `wasm`, tables made before tables had owners) belong to the
//! superusers: they show as owned by `pg_database_owner`, as PostgreSQL
//! 15's `public` schema does, and so do PostgreSQL's own objects: their
//! owner in the static catalogs, oid 10, is `pg_database_owner`'s oid here
//! (pg_dump looks every owner up in `pg_roles`). Under trust authentication, a user name
//! no role has logs in as a superuser; those that own objects are listed
//! as superusers too.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray, new_null_array,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::ScalarUDF;
use quiver_catalog::{Acl, Catalog};

use crate::auth::{
    Attributes, ListedRole, PREDEFINED, READ_SERVER_FILES, Roles, WRITE_SERVER_FILES,
};
use crate::system::SystemRows;

/// The owner of what no role owns: the superusers.
pub(crate) const DATABASE_OWNER: &str = "pg_database_owner";

/// PostgreSQL's bootstrap superuser, the owner of its own objects.
const BOOTSTRAP_OID: i32 = 10;

/// Oids PostgreSQL itself assigns from here on.
const FIRST_NORMAL_OID: i32 = 16384;

/// The oid of role `name`: PostgreSQL's for its predefined roles, else
/// one derived from the name.
pub(crate) fn role_oid(name: &str) -> i32 {
    match name {
        // PostgreSQL's own objects' owner in the static catalogs.
        DATABASE_OWNER => BOOTSTRAP_OID,
        READ_SERVER_FILES => 4569,
        WRITE_SERVER_FILES => 4570,
        _ => {
            let mut hasher = DefaultHasher::new();
            name.hash(&mut hasher);
            FIRST_NORMAL_OID + (hasher.finish() % (i32::MAX - FIRST_NORMAL_OID) as u64) as i32
        }
    }
}

/// The role that owns an object with `acl`.
pub(crate) fn owner_name(acl: &Acl) -> &str {
    acl.owner.as_deref().unwrap_or(DATABASE_OWNER)
}

/// The roles the catalogs list: the server's roles, PostgreSQL's
/// predefined roles Quiver has, and (under trust) owners that are no role.
#[derive(Debug, Clone)]
pub(crate) struct RoleList {
    roles: Arc<Roles>,
    catalog: Arc<Catalog>,
}

impl RoleList {
    pub(crate) fn new(roles: Arc<Roles>, catalog: Arc<Catalog>) -> Self {
        Self { roles, catalog }
    }

    pub(crate) fn list(&self) -> Vec<ListedRole> {
        let mut listed: BTreeMap<String, ListedRole> = self
            .roles
            .list()
            .into_iter()
            .map(|role| (role.name.clone(), role))
            .collect();
        let predefined = PREDEFINED.iter().chain([&DATABASE_OWNER]);
        for name in predefined {
            listed
                .entry(name.to_string())
                .or_insert_with(|| ListedRole {
                    name: name.to_string(),
                    attributes: Attributes {
                        superuser: false,
                        login: false,
                    },
                    member_of: Vec::new(),
                });
        }
        let tables = self.catalog.entries().into_iter().map(|entry| entry.acl);
        let owners: BTreeSet<String> = tables
            .chain(self.catalog.acls().into_values())
            .filter_map(|acl| acl.owner)
            .collect();
        for owner in owners {
            listed.entry(owner.clone()).or_insert_with(|| ListedRole {
                name: owner,
                attributes: Attributes {
                    superuser: true,
                    login: true,
                },
                member_of: Vec::new(),
            });
        }
        listed.into_values().collect()
    }

    /// The name of the role with `oid`, as `pg_get_userbyid` gives it.
    pub(crate) fn name_of(&self, oid: i32, listed: &[ListedRole]) -> String {
        listed
            .iter()
            .find(|role| role_oid(&role.name) == oid)
            .map(|role| role.name.clone())
            .unwrap_or_else(|| format!("unknown (OID={oid})"))
    }
}

/// `pg_get_userbyid(oid)`: the name of a role (PostgreSQL's wording for an
/// oid no role has).
pub(crate) fn pg_get_userbyid(roles: RoleList) -> ScalarUDF {
    let names = roles.clone();
    crate::pg_functions::oid_text(
        "pg_get_userbyid",
        move || roles.list(),
        move |listed, oid| Some(names.name_of(oid, listed)),
    )
}

/// Columns of `schema` by name: those `column` gives, the rest `NULL`.
pub(crate) fn batch_by_name(
    schema: &SchemaRef,
    rows: usize,
    column: impl Fn(&str) -> Option<ArrayRef>,
) -> DfResult<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            column(field.name())
                .filter(|array| array.data_type() == field.data_type())
                .unwrap_or_else(|| new_null_array(field.data_type(), rows))
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// `pg_roles`, in the columns of `datafusion-pg-catalog`'s (PostgreSQL's).
#[derive(Debug)]
pub(crate) struct PgRoles {
    pub schema: SchemaRef,
    pub roles: RoleList,
}

#[async_trait]
impl SystemRows for PgRoles {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn rows(&self) -> DfResult<RecordBatch> {
        let listed = self.roles.list();
        let flag = |f: &dyn Fn(&ListedRole) -> bool| -> Option<ArrayRef> {
            Some(Arc::new(BooleanArray::from_iter(
                listed.iter().map(|r| Some(f(r))),
            )))
        };
        batch_by_name(&self.schema, listed.len(), |name| match name {
            "oid" => Some(Arc::new(Int32Array::from_iter_values(
                listed.iter().map(|r| role_oid(&r.name)),
            ))),
            "rolname" => Some(Arc::new(StringArray::from_iter_values(
                listed.iter().map(|r| r.name.as_str()),
            ))),
            "rolsuper" | "rolcreaterole" | "rolcreatedb" | "rolreplication" | "rolbypassrls" => {
                flag(&|r| r.attributes.superuser)
            }
            "rolinherit" => flag(&|_| true),
            "rolcanlogin" => flag(&|r| r.attributes.login),
            "rolconnlimit" => Some(Arc::new(Int32Array::from_iter_values(
                listed.iter().map(|_| -1),
            ))),
            "rolpassword" => Some(Arc::new(StringArray::from_iter_values(
                listed.iter().map(|_| "********"),
            ))),
            _ => None,
        })
    }
}

/// `pg_auth_members`: which role was granted which predefined role.
#[derive(Debug)]
pub(crate) struct PgAuthMembers {
    pub schema: SchemaRef,
    pub roles: RoleList,
}

#[async_trait]
impl SystemRows for PgAuthMembers {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn rows(&self) -> DfResult<RecordBatch> {
        let pairs: Vec<(i32, i32)> = self
            .roles
            .list()
            .iter()
            .flat_map(|role| {
                let member = role_oid(&role.name);
                role.member_of
                    .iter()
                    .map(move |group| (role_oid(group), member))
            })
            .collect();
        let int = |f: &dyn Fn(&(i32, i32)) -> i32| -> Option<ArrayRef> {
            Some(Arc::new(Int32Array::from_iter_values(pairs.iter().map(f))))
        };
        let flag = |value: bool| -> Option<ArrayRef> {
            Some(Arc::new(BooleanArray::from_iter(
                pairs.iter().map(|_| Some(value)),
            )))
        };
        batch_by_name(&self.schema, pairs.len(), |name| match name {
            "oid" => int(&|(group, member)| group ^ member),
            "roleid" => int(&|(group, _)| *group),
            "member" => int(&|(_, member)| *member),
            "grantor" => int(&|_| BOOTSTRAP_OID),
            "admin_option" => flag(false),
            "inherit_option" | "set_option" => flag(true),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_oids_are_stable_and_above_postgresql_own() {
        assert_eq!(role_oid(READ_SERVER_FILES), 4569);
        assert_eq!(role_oid(DATABASE_OWNER), BOOTSTRAP_OID);
        let alice = role_oid("alice");
        assert_eq!(alice, role_oid("alice"));
        assert!(alice >= FIRST_NORMAL_OID);
        assert_ne!(alice, role_oid("bob"));
    }
}
