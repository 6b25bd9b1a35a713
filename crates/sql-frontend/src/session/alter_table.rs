//! `ALTER TABLE`: `RENAME TO`, as dbt renames a model's new table into
//! place of the old one. Other forms fail with 0A000, naming the form.

use datafusion::common::TableReference;
use datafusion::sql::sqlparser::ast::{AlterTable, AlterTableOperation, RenameTableNameKind};

use super::{Completion, Outcome, Session, object_name};
use crate::names::folded;
use crate::{Error, Result};

impl Session {
    /// `ALTER TABLE [IF EXISTS] name RENAME TO new_name`: of the session's
    /// temporary table of that name if there is one, as names resolve;
    /// by the table's owner (or a superuser).
    pub(super) async fn alter_table(&self, alter: AlterTable) -> Result<Outcome> {
        let reference = TableReference::from(object_name(&alter.name));
        let name = self.catalog.table_name(&reference)?;
        let new_name = match alter.operations.as_slice() {
            [
                AlterTableOperation::RenameTable {
                    table_name: RenameTableNameKind::To(new) | RenameTableNameKind::As(new),
                },
            ] => match new.0.as_slice() {
                [part] => part.as_ident().map(folded),
                _ => None,
            }
            .ok_or_else(|| {
                Error::Syntax(format!(
                    "RENAME TO takes a table name without a schema, not {new}"
                ))
            })?,
            operations => {
                let what: Vec<String> = operations.iter().map(ToString::to_string).collect();
                return Err(Error::FeatureNotSupported(format!(
                    "ALTER TABLE ... {} is not supported yet (only RENAME TO)",
                    what.join(", ")
                )));
            }
        };
        if self.schema.rename_temp_table(&name, &new_name)? {
            return Ok(Completion::tag("ALTER TABLE").into());
        }
        if self.schema.entry(&name).is_none() && alter.if_exists {
            return Ok(Completion::tag("ALTER TABLE")
                .with_notice(Some(format!(
                    "relation \"{name}\" does not exist, skipping"
                )))
                .into());
        }
        self.check_owner(&name)?;
        self.schema.rename_table(&name, &new_name).await?;
        Ok(Completion::tag("ALTER TABLE").into())
    }
}
