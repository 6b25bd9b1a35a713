//! `ALTER TABLE`: `RENAME TO` (as dbt renames a model's new table into
//! place of the old one), `OWNER TO` (of views and sequences too, as
//! pg_dump's scripts give them away), `ADD COLUMN`, `DROP COLUMN`, `ALTER
//! COLUMN ... SET DEFAULT` / `DROP DEFAULT`, keys (see `super::unique_keys`)
//! and the forms `super::reshape` makes — `RENAME COLUMN`, `ALTER COLUMN
//! ... TYPE`, `SET` / `DROP NOT NULL` — as Alembic migrations change tables
//! and undo the changes. Other forms fail with 0A000, naming the form.
//!
//! A column added without a default is missing from the files written
//! before, and scans read it there as NULL (DataFusion's schema
//! adaptation; compaction merges such files likewise); one added with a
//! default to a table with rows rewrites the table. A dropped column's
//! values stay in the files written before, unread (and left out as
//! compaction merges them); a column added under its name would read
//! them, so that is refused while any file holds them.

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::TableReference;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::sql::sqlparser::ast::{
    AlterColumnOperation, AlterTable, AlterTableOperation, ColumnDef, Owner, RenameTableNameKind,
    TableConstraint,
};
use quiver_catalog::{COLUMN_DEFAULT, QualifiedName, TableKind, Target};

use super::{Completion, DeclaredColumns, Outcome, Session, defaults};
use crate::names::folded;
use crate::{Error, Result};

impl Session {
    /// `ALTER TABLE [IF EXISTS] name operation, ...`: of the session's
    /// temporary table of that name if there is one (only `RENAME TO`), as
    /// names resolve; by the table's owner (or a superuser). Each operation
    /// is stored as it is made (all at once inside a transaction block).
    pub(super) async fn alter_table(&self, alter: AlterTable) -> Result<Outcome> {
        let reference = crate::names::table_reference(&alter.name);
        let target = self.target(&reference)?;
        if let Target::Stored(name) = &target
            && self.relations.entry(name).is_none()
        {
            if alter.if_exists {
                return Ok(Completion::tag("ALTER TABLE")
                    .with_notice(Some(format!(
                        "relation \"{reference}\" does not exist, skipping"
                    )))
                    .into());
            }
            return Err(Error::UndefinedTable(reference.to_string()));
        }
        if let Target::Stored(name) = &target {
            self.check_owner(name)?;
        }
        let mut notices = Vec::new();
        for operation in &alter.operations {
            match (operation, &target) {
                (
                    AlterTableOperation::RenameTable {
                        table_name: RenameTableNameKind::To(new) | RenameTableNameKind::As(new),
                    },
                    target,
                ) => {
                    let new_name = match new.0.as_slice() {
                        [part] => part.as_ident().map(folded),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        Error::Syntax(format!(
                            "RENAME TO takes a table name without a schema, not {new}"
                        ))
                    })?;
                    match target {
                        Target::Temp(name) => {
                            self.relations.rename_temp_table(name, &new_name)?;
                        }
                        Target::Stored(name) => {
                            self.relations.rename_table(name, &new_name).await?
                        }
                    }
                }
                (
                    AlterTableOperation::AddColumn {
                        if_not_exists,
                        column_def,
                        ..
                    },
                    Target::Stored(name),
                ) => notices.extend(self.add_column(name, column_def, *if_not_exists).await?),
                (
                    AlterTableOperation::RenameColumn {
                        old_column_name,
                        new_column_name,
                    },
                    Target::Stored(name),
                ) => {
                    let (old, new) = (folded(old_column_name), folded(new_column_name));
                    self.rename_column(name, &old, &new).await?;
                }
                (AlterTableOperation::AlterColumn { column_name, op }, Target::Stored(name))
                    if !matches!(op, AlterColumnOperation::AddGenerated { .. }) =>
                {
                    let column = folded(column_name);
                    match op {
                        AlterColumnOperation::SetDefault { value } => {
                            self.set_default(name, &column, Some(defaults::stored(value)))
                                .await?
                        }
                        AlterColumnOperation::DropDefault => {
                            self.set_default(name, &column, None).await?
                        }
                        AlterColumnOperation::SetNotNull => {
                            self.set_not_null(name, &column, true).await?
                        }
                        AlterColumnOperation::DropNotNull => {
                            self.set_not_null(name, &column, false).await?
                        }
                        AlterColumnOperation::SetDataType {
                            data_type, using, ..
                        } => {
                            self.set_column_type(name, &column, data_type, using.as_ref())
                                .await?
                        }
                        AlterColumnOperation::AddGenerated { .. } => {}
                    }
                }
                (
                    AlterTableOperation::DropColumn {
                        column_names,
                        if_exists,
                        ..
                    },
                    Target::Stored(name),
                ) => {
                    for column in column_names {
                        let column = folded(column);
                        if !self
                            .relations
                            .drop_column(name, &column, *if_exists)
                            .await?
                        {
                            notices.push(format!(
                                "column \"{column}\" of relation \"{}\" does not exist, skipping",
                                name.name
                            ));
                        }
                    }
                }
                (AlterTableOperation::AddConstraint { constraint, .. }, Target::Stored(name)) => {
                    match constraint {
                        TableConstraint::ForeignKey(key) => self.add_foreign_key(name, key).await?,
                        constraint => self.add_constraint(name, constraint).await?,
                    }
                }
                (
                    AlterTableOperation::DropConstraint {
                        if_exists, name: c, ..
                    },
                    Target::Stored(name),
                ) => {
                    if !self.drop_constraint(name, c, *if_exists).await? {
                        notices.push(format!(
                            "constraint \"{}\" of relation \"{}\" does not exist, skipping",
                            folded(c),
                            name.name
                        ));
                    }
                }
                (AlterTableOperation::OwnerTo { new_owner }, Target::Stored(name)) => {
                    let owner = self.new_owner(new_owner)?;
                    self.relations.set_owner(name, &owner).await?;
                }
                (operation, Target::Temp(_)) => {
                    return Err(Error::FeatureNotSupported(format!(
                        "ALTER TABLE ... {operation} of a temporary table is not supported yet (only RENAME TO)"
                    )));
                }
                (operation, Target::Stored(_)) => {
                    return Err(Error::FeatureNotSupported(format!(
                        "ALTER TABLE ... {operation} is not supported yet (only RENAME TO, RENAME COLUMN, OWNER TO, ADD COLUMN, DROP COLUMN, ALTER COLUMN ... SET DEFAULT / DROP DEFAULT / SET NOT NULL / DROP NOT NULL / TYPE, ADD PRIMARY KEY / UNIQUE / FOREIGN KEY and DROP CONSTRAINT)"
                    )));
                }
            }
        }
        Ok(Completion::tag("ALTER TABLE")
            .with_notice((!notices.is_empty()).then(|| notices.join("\n")))
            .into())
    }

    /// The role `OWNER TO` names, which must exist; only a superuser gives
    /// an object to another role (PostgreSQL lets a member of the role do
    /// so too; Quiver's roles have no members).
    pub(super) fn new_owner(&self, owner: &Owner) -> Result<String> {
        let role = self.user().unwrap_or_default();
        let named = match owner {
            Owner::Ident(ident) => folded(ident),
            Owner::CurrentRole | Owner::CurrentUser | Owner::SessionUser => role.clone(),
        };
        if named != role {
            self.require_superuser(&format!("must be able to SET ROLE \"{named}\""))?;
        }
        let predefined = named == crate::pg_roles::DATABASE_OWNER
            || crate::auth::PREDEFINED.contains(&named.as_str());
        if self.roles.attributes(&named).is_none() && named != role && !predefined {
            return Err(Error::UndefinedObject(format!(
                "role \"{named}\" does not exist"
            )));
        }
        Ok(named)
    }

    /// `ADD [COLUMN] [IF NOT EXISTS] column_def` to the stored table
    /// `name`: its type, `NOT NULL` and `DEFAULT` as `CREATE TABLE` reads
    /// them. A notice when it exists and `if_not_exists` is set.
    async fn add_column(
        &self,
        name: &QualifiedName,
        column: &ColumnDef,
        if_not_exists: bool,
    ) -> Result<Option<String>> {
        let field = self.declared_field(column).await?;
        let column_name = field.name().clone();
        let relation = name.name.clone();
        let present = self
            .relations
            .entry(name)
            .is_some_and(|entry| match entry.kind {
                TableKind::Managed { columns, .. } => columns.iter().any(|c| c.name == column_name),
                _ => false,
            });
        if present && if_not_exists {
            return Ok(Some(format!(
                "column \"{column_name}\" of relation \"{relation}\" already exists, skipping"
            )));
        }
        if !present && self.relations.stores_column(name, &column_name)? {
            return Err(Error::FeatureNotSupported(format!(
                "column \"{column_name}\" was dropped from \"{relation}\" and its values are still in the table's files: add the column under another name"
            )));
        }
        let with_column = |columns: &Schema| {
            if columns.column_with_name(&column_name).is_some() {
                return Err(quiver_catalog::Error::DuplicateColumn(format!(
                    "column \"{column_name}\" of relation \"{relation}\" already exists"
                )));
            }
            let mut fields: Vec<Field> = columns
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.push(field.clone());
            Ok(Schema::new_with_metadata(
                fields,
                columns.metadata().clone(),
            ))
        };
        // The rows there are take the default: the table is rewritten.
        let default = field.metadata().contains_key(COLUMN_DEFAULT);
        if !present && (default || !field.is_nullable()) && self.has_rows(name, None).await? {
            if !default {
                return Err(Error::NotNullViolationOfColumn(format!(
                    "column \"{column_name}\" of relation \"{relation}\" contains null values"
                )));
            }
            let reference = TableReference::partial(name.schema.clone(), name.name.clone());
            let present = self.ctx.table_provider(reference).await?.schema();
            self.add_column_with_default(name, &field, with_column(&present)?)
                .await?;
            return Ok(None);
        }
        self.relations.alter_columns(name, with_column).await?;
        Ok(None)
    }

    /// Whether the stored table `name` has a row (for which `condition`
    /// holds), as the session sees it.
    pub(super) async fn has_rows(
        &self,
        name: &QualifiedName,
        condition: Option<datafusion::logical_expr::Expr>,
    ) -> Result<bool> {
        let reference = TableReference::partial(name.schema.clone(), name.name.clone());
        let mut rows = self.ctx.table(reference).await?;
        if let Some(condition) = condition {
            rows = rows.filter(condition)?;
        }
        let batches = rows.limit(0, Some(1))?.collect().await?;
        Ok(batches.iter().any(|b| b.num_rows() > 0))
    }

    /// `ALTER [COLUMN] column SET DEFAULT expr` (`Some`) or `DROP DEFAULT`
    /// of the stored table `name`.
    async fn set_default(
        &self,
        name: &QualifiedName,
        column: &str,
        default: Option<String>,
    ) -> Result<()> {
        self.set_column_metadata(name, column, COLUMN_DEFAULT, default)
            .await
    }

    /// Sets (`Some`) or removes the field metadata `key` of the column
    /// `column` of the stored table `name`.
    pub(super) async fn set_column_metadata(
        &self,
        name: &QualifiedName,
        column: &str,
        key: &str,
        value: Option<String>,
    ) -> Result<()> {
        let relation = name.name.clone();
        self.relations
            .alter_columns(name, |columns| {
                let mut found = false;
                let fields: Vec<Field> = columns
                    .fields()
                    .iter()
                    .map(|f| {
                        let mut field = f.as_ref().clone();
                        if field.name() == column {
                            found = true;
                            let mut metadata = field.metadata().clone();
                            match &value {
                                Some(value) => metadata.insert(key.to_string(), value.clone()),
                                None => metadata.remove(key),
                            };
                            field = field.with_metadata(metadata);
                        }
                        field
                    })
                    .collect();
                if !found {
                    return Err(quiver_catalog::Error::UndefinedColumn(format!(
                        "column \"{column}\" of relation \"{relation}\" does not exist"
                    )));
                }
                Ok(Schema::new_with_metadata(
                    fields,
                    columns.metadata().clone(),
                ))
            })
            .await?;
        Ok(())
    }

    /// The column `column` declares, as `CREATE TABLE` would make it.
    pub(super) async fn declared_field(&self, column: &ColumnDef) -> Result<Field> {
        let sql = format!("CREATE TABLE quiver_added_column ({column})");
        let statement = self
            .ctx
            .state()
            .sql_to_statement(&sql, &datafusion::config::Dialect::PostgreSQL)?;
        let mut declared = DeclaredColumns::default();
        if let datafusion::sql::parser::Statement::Statement(s) = &statement
            && let datafusion::sql::sqlparser::ast::Statement::CreateTable(create) = s.as_ref()
        {
            declared.types = crate::sized_text::declared_types(&create.columns)?;
            declared.defaults = defaults::declared_defaults(&create.columns);
        }
        let plan = self.ctx.state().statement_to_plan(statement).await?;
        let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) = plan else {
            return Err(Error::Internal(format!("{sql} planned as {plan}")));
        };
        let (_, schema) = self.declared_schema(&create, &declared)?;
        Ok(schema.field(0).clone())
    }
}
