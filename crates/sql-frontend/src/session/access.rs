//! Who a session is and what it may do: the role it logged in as (or acts
//! as, after `SET SESSION AUTHORIZATION`), the statements that manage roles
//! and privileges, and the checks a statement passes before it runs (see
//! [`crate::auth`] for roles and [`crate::privileges`] for tables).

use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{
    AlterRoleOperation, CreateRole, Expr, Ident, ObjectName, Password, RoleOption, Value,
};
use quiver_catalog::{PUBLIC, Privilege};

use super::{Completion, Outcome, Session, object_name};
use crate::auth::RoleOptions;
use crate::privileges::{Grant, Tables};
use crate::{Error, Result};

/// The role a session logged in as.
#[derive(Debug)]
pub(super) struct Identity {
    user: String,
    /// Under `trust`, a name no role has: the bootstrap superuser.
    bootstrap: bool,
}

impl Session {
    /// `CREATE ROLE`, by a superuser.
    pub(super) fn create_role(&self, create: CreateRole) -> Result<Outcome> {
        self.require_superuser("permission denied to create role")?;
        let unsupported = [
            ("CREATEDB", create.create_db == Some(true)),
            ("CREATEROLE", create.create_role == Some(true)),
            ("REPLICATION", create.replication == Some(true)),
            ("BYPASSRLS", create.bypassrls == Some(true)),
            ("CONNECTION LIMIT", create.connection_limit.is_some()),
            ("VALID UNTIL", create.valid_until.is_some()),
            (
                "IN ROLE, ROLE, ADMIN",
                !(create.in_role.is_empty()
                    && create.in_group.is_empty()
                    && create.role.is_empty()
                    && create.user.is_empty()
                    && create.admin.is_empty()),
            ),
        ];
        if let Some((option, _)) = unsupported.iter().find(|(_, given)| *given) {
            return Err(Error::FeatureNotSupported(format!(
                "CREATE ROLE ... {option} is not supported: roles have SUPERUSER, LOGIN and PASSWORD"
            )));
        }
        let mut notice = None;
        for name in &create.names {
            let name = object_name(name);
            let options = RoleOptions {
                password: create.password.as_ref().map(role_password).transpose()?,
                superuser: create.superuser,
                login: create.login,
            };
            if !self
                .roles
                .define(&name, options, true, create.if_not_exists)?
            {
                notice = Some(format!("role \"{name}\" already exists, skipping"));
            }
        }
        Ok(Completion::tag("CREATE ROLE").with_notice(notice).into())
    }

    /// `DROP ROLE`, by a superuser, of roles that own nothing and were
    /// granted nothing.
    pub(super) fn drop_roles(&self, names: &[ObjectName], if_exists: bool) -> Result<Outcome> {
        self.require_superuser("permission denied to drop role")?;
        let mut notice = None;
        for name in names {
            let name = object_name(name);
            if Some(&name) == self.user().as_ref() {
                return Err(Error::ObjectInUse("current user cannot be dropped".into()));
            }
            let depending: Vec<String> = self
                .catalog
                .entries()
                .into_iter()
                .filter(|e| e.owner.as_ref() == Some(&name) || e.grants.contains_key(&name))
                .map(|e| e.name)
                .collect();
            if !depending.is_empty() {
                return Err(Error::DependentObjects(format!(
                    "role \"{name}\" cannot be dropped because some objects depend on it: it owns or has privileges on {}",
                    depending.join(", ")
                )));
            }
            if !self.roles.drop_role(&name, if_exists)? {
                notice = Some(format!("role \"{name}\" does not exist, skipping"));
            }
        }
        Ok(Completion::tag("DROP ROLE").with_notice(notice).into())
    }

    /// `ALTER ROLE name [WITH] option ...`: a superuser may change any role;
    /// another role only its own password.
    pub(super) fn alter_role(
        &self,
        name: &Ident,
        operation: AlterRoleOperation,
    ) -> Result<Outcome> {
        let AlterRoleOperation::WithOptions { options } = operation else {
            return Err(Error::FeatureNotSupported(
                "ALTER ROLE supports only [WITH] SUPERUSER, LOGIN and PASSWORD".into(),
            ));
        };
        let mut changes = RoleOptions::default();
        for option in &options {
            match option {
                RoleOption::Password(p) => changes.password = Some(role_password(p)?),
                RoleOption::SuperUser(on) => changes.superuser = Some(*on),
                RoleOption::Login(on) => changes.login = Some(*on),
                RoleOption::Inherit(_) => {}
                other => {
                    return Err(Error::FeatureNotSupported(format!(
                        "ALTER ROLE ... {other} is not supported: roles have SUPERUSER, LOGIN and PASSWORD"
                    )));
                }
            }
        }
        let own_password = Some(&name.value) == self.user().as_ref()
            && changes.superuser.is_none()
            && changes.login.is_none();
        if !own_password {
            self.require_superuser("permission denied to alter role")?;
        }
        self.roles.define(&name.value, changes, false, false)?;
        Ok(Completion::tag("ALTER ROLE").into())
    }

    /// The session has logged in as `user`: the functions that name the
    /// session's role name it. Fails with 28000 for a role without `LOGIN`.
    pub(crate) fn log_in(&self, user: &str) -> Result<()> {
        let attributes = self.roles.attributes(user);
        if attributes.is_some_and(|a| !a.login) {
            return Err(Error::InvalidAuthorization(format!(
                "role \"{user}\" is not permitted to log in"
            )));
        }
        let identity = Identity {
            user: user.to_string(),
            bootstrap: attributes.is_none(),
        };
        if self.identity.set(identity).is_err() {
            return Err(Error::Internal("the session logged in twice".into()));
        }
        self.name_user(user);
        Ok(())
    }

    /// Makes the functions that name the session's role name `user`.
    pub(super) fn name_user(&self, user: &str) {
        for function in crate::pg_functions::identity_functions(user) {
            self.ctx.register_udf(function);
        }
    }

    pub(super) fn acting(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.acting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session's role: the one that logged in, or the one `SET SESSION
    /// AUTHORIZATION` chose.
    pub(super) fn user(&self) -> Option<String> {
        self.acting()
            .clone()
            .or_else(|| self.identity.get().map(|i| i.user.clone()))
    }

    /// Whether the role that logged in is a superuser now.
    pub(super) fn logged_in_as_superuser(&self) -> bool {
        self.identity.get().is_some_and(|identity| {
            identity.bootstrap
                || self
                    .roles
                    .attributes(&identity.user)
                    .is_some_and(|a| a.superuser)
        })
    }

    /// Fails with 42501 (`denied`) unless the session's role is a superuser
    /// now (an `ALTER ROLE ... NOSUPERUSER` applies to its sessions at once).
    pub(crate) fn require_superuser(&self, denied: &str) -> Result<()> {
        if self.is_superuser() {
            Ok(())
        } else {
            Err(Error::InsufficientPrivilege(denied.to_string()))
        }
    }

    /// Whether the session's role is a superuser now.
    pub(super) fn is_superuser(&self) -> bool {
        let acting = self.acting().clone();
        match acting {
            Some(role) => self.roles.attributes(&role).is_some_and(|a| a.superuser),
            None => self.logged_in_as_superuser(),
        }
    }

    /// Fails with 42501 unless the session's role may do what `plan` does
    /// to the stored tables it reads and writes (see [`crate::privileges`]).
    pub(super) fn check_privileges(&self, plan: &LogicalPlan) -> Result<()> {
        if self.is_superuser() {
            return Ok(());
        }
        for (table, privilege) in crate::privileges::needed(plan) {
            if let Some(name) = crate::privileges::stored_name(&table) {
                self.check_table(name, privilege)?;
            }
        }
        Ok(())
    }

    /// Fails with 42501 unless the session's role may do `privilege` to the
    /// stored table `name` (a temporary table of the session is its own).
    pub(super) fn check_table(&self, name: &str, privilege: Privilege) -> Result<()> {
        if self.temp.contains(name) || self.is_superuser() {
            return Ok(());
        }
        let role = self.user().unwrap_or_default();
        match self.catalog.entry(name) {
            Some(entry) if !entry.allows(&role, privilege) => Err(crate::privileges::denied(name)),
            _ => Ok(()),
        }
    }

    /// Fails with 42501 unless the session's role owns the stored table
    /// `name` or is a superuser.
    pub(super) fn check_owner(&self, name: &str) -> Result<()> {
        let role = self.user().unwrap_or_default();
        match self.catalog.entry(name) {
            Some(entry) if !self.is_superuser() && entry.owner.as_deref() != Some(&role) => Err(
                Error::InsufficientPrivilege(format!("must be owner of table {name}")),
            ),
            _ => Ok(()),
        }
    }

    /// `GRANT` (`grant`) or `REVOKE` of table privileges: by the tables'
    /// owner or a superuser, to roles that exist or `PUBLIC`.
    pub(super) async fn grant(&self, grant: Grant, give: bool) -> Result<Outcome> {
        for grantee in &grant.grantees {
            if grantee != PUBLIC && self.roles.attributes(grantee).is_none() {
                return Err(Error::UndefinedObject(format!(
                    "role \"{grantee}\" does not exist"
                )));
            }
        }
        let tables = match grant.tables {
            Tables::Named(names) => names,
            Tables::All => self.catalog.entries().into_iter().map(|e| e.name).collect(),
        };
        for table in &tables {
            if self.catalog.entry(table).is_none() {
                return Err(Error::UndefinedTable(table.clone()));
            }
            self.check_owner(table)?;
        }
        for table in &tables {
            for grantee in &grant.grantees {
                self.catalog
                    .set_privileges(table, grantee, &grant.privileges, give)
                    .await?;
            }
        }
        Ok(Completion::tag(if give { "GRANT" } else { "REVOKE" }).into())
    }

    /// `SET SESSION AUTHORIZATION role | DEFAULT`: a session that a
    /// superuser logged in to acts as `role` (`DEFAULT`: as itself again),
    /// privileges and all, as in PostgreSQL.
    pub(super) fn set_session_authorization(&self, role: Option<String>) -> Result<Outcome> {
        if !self.logged_in_as_superuser() {
            return Err(Error::InsufficientPrivilege(
                "permission denied to set session authorization".into(),
            ));
        }
        let login = self
            .identity
            .get()
            .map(|i| i.user.clone())
            .ok_or_else(|| Error::Internal("no role logged in".into()))?;
        if let Some(role) = &role
            && self.roles.attributes(role).is_none()
            && role != &login
        {
            return Err(Error::UndefinedObject(format!(
                "role \"{role}\" does not exist"
            )));
        }
        let role = role.filter(|role| role != &login);
        let name = role.clone().unwrap_or(login);
        *self.acting() = role;
        self.name_user(&name);
        Ok(Completion {
            parameter: Some(("session_authorization".into(), name)),
            ..Completion::tag("SET")
        }
        .into())
    }
}

/// Why a role that is not a superuser may not create or drop functions:
/// `wasm` is, in PostgreSQL's terms, an untrusted language (a function runs
/// code the server loads from its `--function-dir`).
pub(super) const WASM_DENIED: &str = "permission denied for language wasm";

/// A role's `PASSWORD '...'` (`None`: `PASSWORD NULL`).
fn role_password(password: &Password) -> Result<Option<String>> {
    match password {
        Password::NullPassword => Ok(None),
        Password::Password(Expr::Value(v)) => match &v.value {
            Value::SingleQuotedString(s) => Ok(Some(s.clone())),
            Value::Null => Ok(None),
            other => Err(Error::Syntax(format!(
                "expected a quoted password, got {other}"
            ))),
        },
        Password::Password(other) => Err(Error::Syntax(format!(
            "expected a quoted password, got {other}"
        ))),
    }
}
