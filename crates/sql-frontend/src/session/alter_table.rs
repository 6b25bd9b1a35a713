//! `ALTER TABLE`: `RENAME TO`, as dbt renames a model's new table into
//! place of the old one. Other forms fail with 0A000, naming the form.

use datafusion::sql::sqlparser::ast::{AlterTable, AlterTableOperation, RenameTableNameKind};

use quiver_catalog::Target;

use super::{Completion, Outcome, Session};
use crate::names::folded;
use crate::{Error, Result};

impl Session {
    /// `ALTER TABLE [IF EXISTS] name RENAME TO new_name`: of the session's
    /// temporary table of that name if there is one, as names resolve;
    /// by the table's owner (or a superuser).
    pub(super) async fn alter_table(&self, alter: AlterTable) -> Result<Outcome> {
        let reference = crate::names::table_reference(&alter.name);
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
        let name = match self.target(&reference)? {
            Target::Temp(name) => {
                self.relations.rename_temp_table(&name, &new_name)?;
                return Ok(Completion::tag("ALTER TABLE").into());
            }
            Target::Stored(name) => name,
        };
        if self.relations.entry(&name).is_none() && alter.if_exists {
            return Ok(Completion::tag("ALTER TABLE")
                .with_notice(Some(format!(
                    "relation \"{reference}\" does not exist, skipping"
                )))
                .into());
        }
        self.check_owner(&name)?;
        self.relations.rename_table(&name, &new_name).await?;
        Ok(Completion::tag("ALTER TABLE").into())
    }
}
