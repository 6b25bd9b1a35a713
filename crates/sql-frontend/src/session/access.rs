//! Who a session is and what it may do: the role it logged in as (or acts
//! as, after `SET SESSION AUTHORIZATION`), the statements that manage roles
//! and privileges, and the checks a statement passes before it runs (see
//! [`crate::auth`] for roles and [`crate::privileges`] for tables).

use datafusion::common::TableReference;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{
    AlterRoleOperation, CreateRole, Expr, Ident, ObjectName, Password, RoleOption, Value,
};
use quiver_catalog::{
    DEFAULT_SCHEMA, Object, PUBLIC, Privilege, QualifiedName, TableKind, Target, WASM_LANGUAGE,
};
use quiver_udf_registry::{FunctionDef, Grants, SqlType};

use super::{Completion, Outcome, Session};
use crate::auth::{RoleOptions, WRITE_SERVER_FILES};
use crate::names::{folded, role_name};
use crate::parse::RoleGrant;
use crate::privileges::{Grant, Objects};
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
            let name = role_name(name);
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
            let name = role_name(name);
            if Some(&name) == self.user().as_ref() {
                return Err(Error::ObjectInUse("current user cannot be dropped".into()));
            }
            let mut depending: Vec<String> = self
                .catalog
                .entries()
                .into_iter()
                .filter(|e| e.acl.mentions(&name))
                .map(|e| format!("table {}", e.name))
                .collect();
            depending.extend(
                self.catalog
                    .acls()
                    .into_iter()
                    .filter(|(_, acl)| acl.mentions(&name))
                    .map(|(object, _)| object),
            );
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
        let name = folded(name);
        let own_password = Some(&name) == self.user().as_ref()
            && changes.superuser.is_none()
            && changes.login.is_none();
        if !own_password {
            self.require_superuser("permission denied to alter role")?;
        }
        self.roles.define(&name, changes, false, false)?;
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
        // `$user` on the search path is the session's role.
        self.relations.set_role(user);
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
    /// to the stored tables it reads and writes (see [`crate::privileges`])
    /// and to the Wasm functions it calls.
    pub(super) fn check_privileges(&self, plan: &LogicalPlan) -> Result<()> {
        if self.is_superuser() {
            return Ok(());
        }
        for (table, privilege) in crate::privileges::needed(plan) {
            self.check_table(&table, privilege)?;
        }
        let registry = &self.functions.registry;
        for signature in crate::privileges::called(plan, |name| registry.overloads(name)) {
            self.check_object(&Object::Function(signature), Privilege::Execute)?;
        }
        Ok(())
    }

    /// Fails with 42501 unless the session's role may do `privilege` to the
    /// stored table `table` names (a temporary table of the session is its
    /// own; the schemas Quiver serves itself are everyone's to read).
    pub(super) fn check_table(&self, table: &TableReference, privilege: Privilege) -> Result<()> {
        if self.is_superuser() {
            return Ok(());
        }
        // Every name DataFusion resolves in a stored schema or along the
        // search path (written as a schema too: `"$search_path".t`).
        let stored = table.schema().is_none_or(|schema| {
            schema == quiver_catalog::SEARCH_PATH || self.relations.schema_exists(schema)
        });
        if !stored {
            return Ok(());
        }
        let Target::Stored(name) = self.target(table)? else {
            return Ok(());
        };
        let role = self.user().unwrap_or_default();
        match self.relations.entry(&name) {
            Some(entry) => {
                self.check_object(&Object::Schema(name.schema.clone()), Privilege::Usage)?;
                if !entry.acl.allows(&role, privilege) {
                    return Err(crate::privileges::denied(&name.to_string()));
                }
                if matches!(entry.kind, TableKind::External { .. })
                    && privilege != Privilege::Select
                {
                    self.check_member(WRITE_SERVER_FILES, || {
                        format!("permission denied to write external table {name}: only superusers and roles granted {WRITE_SERVER_FILES} may write the server's files")
                    })?;
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Fails with 42501 (`denied`) unless the session's role is a superuser
    /// or was granted the predefined role `group`.
    pub(crate) fn check_member(&self, group: &str, denied: impl FnOnce() -> String) -> Result<()> {
        if self.is_superuser()
            || self
                .roles
                .is_member(&self.user().unwrap_or_default(), group)
        {
            Ok(())
        } else {
            Err(Error::InsufficientPrivilege(denied()))
        }
    }

    /// `GRANT role TO member` (or `REVOKE`), by a superuser, of the
    /// predefined roles (see [`crate::auth::PREDEFINED`]).
    pub(super) fn grant_roles(&self, grant: RoleGrant) -> Result<Outcome> {
        self.require_superuser("permission denied to grant role")?;
        for role in &grant.roles {
            for member in &grant.members {
                self.roles.set_membership(member, role, grant.give)?;
            }
        }
        Ok(Completion::tag(if grant.give {
            "GRANT ROLE"
        } else {
            "REVOKE ROLE"
        })
        .into())
    }

    /// Fails with 42501 unless the session's role may do `privilege` to
    /// `object` (not a table: see [`Session::check_table`]).
    pub(super) fn check_object(&self, object: &Object, privilege: Privilege) -> Result<()> {
        if self.is_superuser()
            || self
                .catalog
                .acl(object)
                .allows(&self.user().unwrap_or_default(), privilege)
        {
            Ok(())
        } else {
            Err(Error::InsufficientPrivilege(format!(
                "permission denied for {}",
                object.describe()
            )))
        }
    }

    /// Fails with 42501 unless the session's role may create the function
    /// `name(args)`: it needs `USAGE` on the `wasm` language (superusers
    /// only, unless granted: a function runs code the server loads) and
    /// `CREATE` on the schema, must own the function it replaces, and must
    /// own every bucket `grants` name.
    pub(super) fn may_create_function(
        &self,
        name: &str,
        args: &[SqlType],
        grants: &Grants,
    ) -> Result<()> {
        self.check_object(&Object::Language(WASM_LANGUAGE.into()), Privilege::Usage)?;
        self.check_object(&Object::Schema(DEFAULT_SCHEMA.into()), Privilege::Create)?;
        self.check_grants(grants)?;
        match self.functions.registry.find(name, Some(args))? {
            Some(existing) => self.check_function_owner(&existing),
            None => Ok(()),
        }
    }

    /// Fails with 42501 unless the session's role owns the function `def`
    /// or is a superuser.
    pub(super) fn check_function_owner(&self, def: &FunctionDef) -> Result<()> {
        self.check_owns(&Object::Function(def.signature()))
    }

    /// Fails with 42501 unless the session's role owns `object` (not a
    /// table: see [`Session::check_owner`]) or is a superuser.
    pub(super) fn check_owns(&self, object: &Object) -> Result<()> {
        if self.is_superuser()
            || self
                .catalog
                .acl(object)
                .is_owner(&self.user().unwrap_or_default())
        {
            Ok(())
        } else {
            Err(Error::InsufficientPrivilege(format!(
                "must be owner of {}",
                object.describe()
            )))
        }
    }

    /// A function `def` was created or replaced: a new one is the session
    /// role's, and every role may call it (PostgreSQL's default); a
    /// replaced one keeps its owner and grants.
    pub(super) fn created_function(&self, def: &FunctionDef) -> Result<()> {
        if def.version > 1 {
            return Ok(());
        }
        let function = Object::Function(def.signature());
        let acl = function.default_acl(Some(&self.user().unwrap_or_default()));
        Ok(self.catalog.set_acl(&function, Some(acl))?)
    }

    /// `ALTER FUNCTION | AGGREGATE name[(types)] OWNER TO role` (pg_dump
    /// writes one after each function), by the function's owner; other
    /// forms fail with 0A000.
    pub(super) fn alter_function(
        &self,
        alter: &datafusion::sql::sqlparser::ast::AlterFunction,
    ) -> Result<Outcome> {
        use datafusion::sql::sqlparser::ast::{AlterFunctionKind, AlterFunctionOperation};
        let tag = match alter.kind {
            AlterFunctionKind::Function => "ALTER FUNCTION",
            AlterFunctionKind::Aggregate => "ALTER AGGREGATE",
        };
        let AlterFunctionOperation::OwnerTo(owner) = &alter.operation else {
            return Err(Error::FeatureNotSupported(format!(
                "{tag} ... {} is not supported yet (only OWNER TO)",
                alter.operation
            )));
        };
        let name = crate::functions::function_name(&alter.function.name)?;
        let args = alter
            .function
            .args
            .as_ref()
            .map(|args| {
                args.iter()
                    .map(|arg| Ok(SqlType::from_ast(&arg.data_type)?))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let def = self
            .functions
            .registry
            .find(&name, args.as_deref())?
            .ok_or_else(|| {
                quiver_udf_registry::Error::FunctionNotFound(alter.function.to_string())
            })?;
        let function = Object::Function(def.signature());
        self.check_owns(&function)?;
        let owner = self.new_owner(owner)?;
        let mut acl = self.catalog.acl(&function);
        acl.owner = Some(owner);
        self.catalog.set_acl(&function, Some(acl))?;
        Ok(Completion::tag(tag).into())
    }

    /// The functions `dropped` are gone, and so are their privileges.
    pub(super) fn dropped_functions(&self, dropped: &[FunctionDef]) -> Result<()> {
        for def in dropped {
            self.catalog
                .set_acl(&Object::Function(def.signature()), None)?;
        }
        Ok(())
    }

    /// Fails with 42501 unless the session's role owns the stored table
    /// `name` or is a superuser.
    pub(super) fn check_owner(&self, name: &QualifiedName) -> Result<()> {
        let role = self.user().unwrap_or_default();
        match self.relations.entry(name) {
            Some(entry) if !self.is_superuser() && !entry.acl.is_owner(&role) => Err(
                Error::InsufficientPrivilege(format!("must be owner of table {name}")),
            ),
            _ => Ok(()),
        }
    }

    /// `GRANT` (`give`) or `REVOKE` of privileges, to roles that exist or
    /// `PUBLIC`: on tables and functions by their owner, on the schema and
    /// the language by a superuser (who owns them), or by a superuser.
    pub(super) async fn grant(&self, grant: Grant, give: bool) -> Result<Outcome> {
        for grantee in &grant.grantees {
            if grantee != PUBLIC && self.roles.attributes(grantee).is_none() {
                return Err(Error::UndefinedObject(format!(
                    "role \"{grantee}\" does not exist"
                )));
            }
        }
        let objects = self.grant_objects(grant.objects)?;
        for (object, table) in &objects {
            match (object, table) {
                (_, Some(table)) => self.check_owner(table)?,
                (Object::Schema(name), _) if self.catalog.schema_entry(name).is_some() => {
                    self.check_owns(object)?
                }
                (Object::Function(_), _) => self.check_owns(object)?,
                _ => {
                    self.require_superuser(&format!("permission denied for {}", object.describe()))?
                }
            }
        }
        for (object, table) in &objects {
            let privileges = grant.privileges.as_deref().unwrap_or(object.privileges());
            for grantee in &grant.grantees {
                match table {
                    Some(table) => {
                        self.relations
                            .set_privileges(table, grantee, privileges, give)
                            .await?
                    }
                    None => {
                        let mut acl = self.catalog.acl(object);
                        acl.change(grantee, privileges, give);
                        self.catalog.set_acl(object, Some(acl))?;
                    }
                }
            }
        }
        Ok(Completion::tag(if give { "GRANT" } else { "REVOKE" }).into())
    }

    /// The objects a `GRANT` or `REVOKE` names, each checked to exist,
    /// with a stored table's name.
    fn grant_objects(&self, objects: Objects) -> Result<Vec<(Object, Option<QualifiedName>)>> {
        let table = |name: QualifiedName| (Object::Table(name.to_string()), Some(name));
        let others = |objects: Vec<Object>| objects.into_iter().map(|o| (o, None)).collect();
        Ok(match objects {
            Objects::Tables(references) => {
                let mut names = Vec::new();
                for reference in &references {
                    let name = self.stored_name(reference)?;
                    if self.relations.entry(&name).is_none() {
                        return Err(Error::UndefinedTable(reference.to_string()));
                    }
                    names.push(table(name));
                }
                names
            }
            Objects::AllTables(schemas) => {
                for schema in &schemas {
                    if !self.relations.schema_exists(schema) {
                        return Err(Error::InvalidSchemaName(schema.clone()));
                    }
                }
                self.relations
                    .entries()
                    .iter()
                    .filter(|e| schemas.contains(&e.schema))
                    .map(|e| table(e.qualified()))
                    .collect()
            }
            Objects::Schemas(names) => others(
                names
                    .into_iter()
                    .map(|name| match self.relations.schema_exists(&name) {
                        true => Ok(Object::Schema(name)),
                        false => Err(Error::InvalidSchemaName(name)),
                    })
                    .collect::<Result<_>>()?,
            ),
            Objects::Languages(names) => others(
                names
                    .into_iter()
                    .map(|name| match name.as_str() {
                        WASM_LANGUAGE => Ok(Object::Language(name)),
                        _ => Err(Error::UndefinedObject(format!(
                            "language \"{name}\" does not exist"
                        ))),
                    })
                    .collect::<Result<_>>()?,
            ),
            Objects::Functions(functions) => others(
                functions
                    .into_iter()
                    .map(|(name, args)| {
                        let name = crate::functions::function_name(&name)?;
                        let args = args
                            .map(|args| crate::functions::sql_types(&args))
                            .transpose()?;
                        let described = match &args {
                            Some(args) => quiver_udf_registry::signature(&name, args),
                            None => name.clone(),
                        };
                        match self.functions.registry.find(&name, args.as_deref())? {
                            Some(def) => Ok(Object::Function(def.signature())),
                            None => {
                                Err(quiver_udf_registry::Error::FunctionNotFound(described).into())
                            }
                        }
                    })
                    .collect::<Result<_>>()?,
            ),
        })
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
