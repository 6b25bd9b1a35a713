//! Schemas: `CREATE SCHEMA`, `DROP SCHEMA`, `ALTER SCHEMA ... OWNER TO`,
//! the search path, and how a
//! statement's names resolve to the stored relations (see
//! [`quiver_catalog::SessionCatalog`]).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{DataFusionError, ScalarValue, TableReference};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::sql::sqlparser::ast::{AlterSchema, AlterSchemaOperation, ObjectName, SchemaName};
use quiver_catalog::{Object, Privilege, QualifiedName, SessionCatalog, Target};

use super::{Completion, Outcome, Session};
use crate::names::folded;
use crate::server;
use crate::{Error, Result};

impl Session {
    /// What `reference` names: the session's temporary table, or the
    /// stored relation the search path finds (or a `CREATE` would make).
    pub(super) fn target(&self, reference: &TableReference) -> Result<Target> {
        Ok(self
            .relations
            .target(reference.schema(), reference.table())?)
    }

    /// The stored relation `reference` names, found along the search path.
    pub(super) fn stored_name(&self, reference: &TableReference) -> Result<QualifiedName> {
        Ok(self
            .relations
            .resolve(reference.schema(), reference.table())?)
    }

    /// The name a `CREATE` of the stored relation `reference` gives it,
    /// checked: the session's role may create in its schema.
    pub(super) fn creation_name(&self, reference: &TableReference) -> Result<QualifiedName> {
        let name = self
            .relations
            .creation_name(reference.schema(), reference.table())?;
        self.check_object(&Object::Schema(name.schema.clone()), Privilege::Create)?;
        Ok(name)
    }

    /// `CREATE SCHEMA [IF NOT EXISTS] name [AUTHORIZATION role]` (or
    /// `CREATE SCHEMA AUTHORIZATION role`, named for the role): by a
    /// superuser (PostgreSQL's `CREATE` on the database, which its owner
    /// has and no one else until granted; Quiver's one database is the
    /// superusers').
    pub(super) async fn create_schema(
        &self,
        schema: &SchemaName,
        if_not_exists: bool,
    ) -> Result<Outcome> {
        self.require_superuser(&format!(
            "permission denied for database {}",
            crate::server::DATABASE
        ))?;
        let user = self.user().unwrap_or_default();
        let (name, owner) = match schema {
            SchemaName::Simple(name) => (schema_name(name)?, user.clone()),
            SchemaName::UnnamedAuthorization(role) => (folded(role), folded(role)),
            SchemaName::NamedAuthorization(name, role) => (schema_name(name)?, folded(role)),
        };
        if owner != user && self.roles.attributes(&owner).is_none() {
            return Err(Error::UndefinedObject(format!(
                "role \"{owner}\" does not exist"
            )));
        }
        if name.starts_with("pg_") {
            return Err(Error::ReservedName(format!(
                "unacceptable schema name \"{name}\": the prefix \"pg_\" is reserved for system schemas"
            )));
        }
        if crate::server::is_system_schema(&name) {
            return Err(quiver_catalog::Error::SchemaExists(name).into());
        }
        let created = self
            .relations
            .create_schema(&name, if_not_exists, &owner)
            .await?;
        Ok(Completion::tag("CREATE SCHEMA")
            .with_notice((!created).then(|| format!("schema \"{name}\" already exists, skipping")))
            .into())
    }

    /// `DROP SCHEMA [IF EXISTS] name, ... [CASCADE]`, by each one's owner
    /// (`CASCADE`: with the relations in it).
    pub(super) async fn drop_schemas(
        &self,
        names: &[ObjectName],
        if_exists: bool,
        cascade: bool,
    ) -> Result<Outcome> {
        let mut notices = Vec::new();
        for name in names {
            let name = schema_name(name)?;
            if crate::server::is_system_schema(&name) {
                return Err(Error::FeatureNotSupported(format!(
                    "cannot drop schema {name}: Quiver serves it itself"
                )));
            }
            if let Some(schema) = self.relations.schema_entry(&name)
                && !self.is_superuser()
                && !schema.acl.is_owner(&self.user().unwrap_or_default())
            {
                return Err(Error::InsufficientPrivilege(format!(
                    "must be owner of schema {name}"
                )));
            }
            if !self
                .relations
                .drop_schema(&name, if_exists, cascade)
                .await?
            {
                notices.push(format!("schema \"{name}\" does not exist, skipping"));
            }
            self.catalog.set_comment(&Object::Schema(name), None)?;
        }
        Ok(Completion::tag("DROP SCHEMA")
            .with_notice((!notices.is_empty()).then(|| notices.join("\n")))
            .into())
    }
}

/// A schema's name as a statement writes it: one identifier, or the
/// database's name and one.
fn schema_name(name: &ObjectName) -> Result<String> {
    let parts = crate::names::folded_parts(name);
    match parts.as_slice() {
        [schema] => Ok(schema.clone()),
        [database, schema] if database == crate::server::DATABASE => Ok(schema.clone()),
        _ => Err(Error::FeatureNotSupported(format!(
            "cross-database references are not implemented: {name}"
        ))),
    }
}

impl Session {
    /// `ALTER SCHEMA [IF EXISTS] name OWNER TO role`, by the schema's owner
    /// (or a superuser). Other forms are not supported yet (0A000).
    pub(super) fn alter_schema(&self, alter: &AlterSchema) -> Result<Outcome> {
        let name = schema_name(&alter.name)?;
        if !self.relations.schema_exists(&name) || server::is_system_schema(&name) {
            if alter.if_exists {
                return Ok(Completion::tag("ALTER SCHEMA").into());
            }
            return Err(Error::Catalog(quiver_catalog::Error::SchemaNotFound(name)));
        }
        let schema = Object::Schema(name);
        for operation in &alter.operations {
            let AlterSchemaOperation::OwnerTo { owner } = operation else {
                return Err(Error::FeatureNotSupported(format!(
                    "ALTER SCHEMA ... {operation} is not supported yet (only OWNER TO)"
                )));
            };
            self.check_owns(&schema)?;
            let owner = self.new_owner(owner)?;
            let mut acl = self.catalog.acl(&schema);
            acl.owner = Some(owner);
            self.catalog.set_acl(&schema, Some(acl))?;
        }
        Ok(Completion::tag("ALTER SCHEMA").into())
    }
}

/// `current_schema()` and `current_schemas(implicit)`, of the session
/// whose catalog `relations` is (held weakly, as the sequence functions
/// hold it): the schemas of its search path that exist.
pub(super) fn functions(relations: &Arc<SessionCatalog>) -> Vec<ScalarUDF> {
    let session = Arc::downgrade(relations);
    let path = move || -> DfResult<Vec<String>> {
        let session = session.upgrade().ok_or_else(|| {
            DataFusionError::Execution("the session calling the function has ended".into())
        })?;
        Ok(session.search_path())
    };
    let first = path.clone();
    let current_schema = move |_: &[ColumnarValue]| {
        let schema = first()?.into_iter().next();
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(schema)))
    };
    let current_schemas = move |args: &[ColumnarValue]| {
        let implicit = match args.first() {
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(implicit))) => *implicit,
            _ => {
                return Err(DataFusionError::NotImplemented(
                    "current_schemas of a column".into(),
                ));
            }
        };
        let Some(implicit) = implicit else {
            let list = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from(list)?));
        };
        // PostgreSQL searches `pg_catalog` first unless the path names it.
        let mut schemas = path()?;
        if implicit && !schemas.iter().any(|s| s == "pg_catalog") {
            schemas.insert(0, "pg_catalog".to_string());
        }
        let values: Vec<ScalarValue> = schemas
            .into_iter()
            .map(|s| ScalarValue::Utf8(Some(s)))
            .collect();
        Ok(ColumnarValue::Scalar(ScalarValue::List(
            ScalarValue::new_list_nullable(&values, &DataType::Utf8),
        )))
    };
    vec![
        create_udf(
            "current_schema",
            vec![],
            DataType::Utf8,
            Volatility::Stable,
            Arc::new(current_schema),
        ),
        create_udf(
            "current_schemas",
            vec![DataType::Boolean],
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            Volatility::Stable,
            Arc::new(current_schemas),
        ),
    ]
}
