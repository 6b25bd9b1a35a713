//! `FOREIGN KEY` constraints: declared in `CREATE TABLE` (of a column:
//! `REFERENCES t [(c)]`, or of the table: `FOREIGN KEY (a) REFERENCES t
//! (c)`) or added with `ALTER TABLE ... ADD [CONSTRAINT name] FOREIGN KEY`,
//! dropped with `ALTER TABLE ... DROP CONSTRAINT`, and enforced by the
//! catalog (see `quiver_catalog::keys`) on writes to either table, as
//! PostgreSQL's `NO ACTION` and `RESTRICT` keys are (`23503`). `ON DELETE
//! CASCADE` and `SET NULL` are statements the `DELETE` runs after it, in its
//! block ([`Session::cascade_deletes`]); `SET DEFAULT` and `ON UPDATE`
//! actions other than those two fail with `0A000`.
//!
//! DataFusion plans no foreign keys: `CREATE TABLE` is planned without
//! them and they are added to the new table in the statement's own
//! transaction block, so a key that cannot be made leaves no table behind.

use datafusion::arrow::datatypes::DataType;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    ColumnOption, ConstraintReferenceMatchKind, CreateTable, DeferrableInitial,
    ForeignKeyConstraint, ObjectName, ObjectType, ReferentialAction, Statement, TableConstraint,
};
use quiver_catalog::{ForeignKey, KeyAction, QualifiedName, TableKind, Target};

use super::{Completion, Outcome, Session};
use crate::names::folded;
use crate::{Error, Result};

/// Takes the foreign keys out of `create` (of its columns too, with the
/// column as theirs), to add once the table is made.
pub(super) fn take_declared(create: &mut CreateTable) -> Vec<ForeignKeyConstraint> {
    let mut keys = Vec::new();
    for column in &mut create.columns {
        column.options.retain(|option| match &option.option {
            ColumnOption::ForeignKey(key) => {
                let mut key = key.clone();
                key.columns = vec![column.name.clone()];
                key.name = key.name.or_else(|| option.name.clone());
                keys.push(key);
                false
            }
            _ => true,
        });
    }
    create.constraints.retain(|constraint| match constraint {
        TableConstraint::ForeignKey(key) => {
            keys.push(key.clone());
            false
        }
        _ => true,
    });
    keys
}

impl Session {
    /// Adds the foreign key `declared` to the stored table `name`, as
    /// PostgreSQL makes one: the referenced columns (the referenced table's
    /// primary key if none are named) must be a unique key of it, of types
    /// comparable with the referencing columns', and the rows there are
    /// must reference keys there are.
    pub(super) async fn add_foreign_key(
        &self,
        name: &QualifiedName,
        declared: &ForeignKeyConstraint,
    ) -> Result<()> {
        let entry = self
            .relations
            .entry(name)
            .ok_or_else(|| Error::UndefinedTable(name.to_string()))?;
        let reference = crate::names::table_reference(&declared.foreign_table);
        let referenced_name = match self.target(&reference)? {
            Target::Stored(referenced) => referenced,
            Target::Temp(_) => {
                return Err(Error::FeatureNotSupported(format!(
                    "a foreign key referencing the temporary table \"{reference}\" is not supported yet"
                )));
            }
        };
        let referenced = match referenced_name == *name {
            true => entry.clone(),
            false => self
                .relations
                .entry(&referenced_name)
                .ok_or_else(|| Error::UndefinedTable(reference.to_string()))?,
        };
        let (
            TableKind::Managed { columns: mine, .. },
            TableKind::Managed {
                columns: theirs, ..
            },
        ) = (&entry.kind, &referenced.kind)
        else {
            return Err(Error::FeatureNotSupported(format!(
                "a foreign key of \"{}\" referencing \"{}\": only tables Quiver manages can have them",
                name.name, referenced_name.name
            )));
        };
        let columns: Vec<String> = declared.columns.iter().map(folded).collect();
        let mut referenced_columns: Vec<String> =
            declared.referred_columns.iter().map(folded).collect();
        if referenced_columns.is_empty() {
            referenced_columns = referenced
                .indexes
                .iter()
                .find(|i| i.constraint_type() == Some("p"))
                .map(|i| i.keys.clone())
                .ok_or_else(|| {
                    Error::InvalidForeignKey(format!(
                        "there is no primary key for referenced table \"{}\"",
                        referenced_name.name
                    ))
                })?;
        }
        if columns.len() != referenced_columns.len() {
            return Err(Error::InvalidForeignKey(
                "number of referencing and referenced columns for foreign key disagree".into(),
            ));
        }
        let type_of = |columns: &[quiver_catalog::ColumnEntry], column: &str| {
            let found = columns.iter().find(|c| c.name == column).ok_or_else(|| {
                Error::Catalog(quiver_catalog::Error::UndefinedColumn(format!(
                    "column \"{column}\" referenced in foreign key constraint does not exist"
                )))
            });
            found.map(|c| c.data_type.parse::<DataType>().ok())
        };
        for (mine_column, their_column) in columns.iter().zip(&referenced_columns) {
            let (a, b) = (type_of(mine, mine_column)?, type_of(theirs, their_column)?);
            if let (Some(a), Some(b)) = (a, b)
                && !comparable(&a, &b)
            {
                return Err(Error::DatatypeMismatch(format!(
                    "foreign key constraint cannot be implemented: key columns \"{mine_column}\" and \"{their_column}\" are of incompatible types"
                )));
            }
        }
        let sorted = |keys: &[String]| {
            let mut keys = keys.to_vec();
            keys.sort();
            keys
        };
        if !referenced
            .indexes
            .iter()
            .any(|i| i.is_unique() && sorted(&i.keys) == sorted(&referenced_columns))
        {
            return Err(Error::InvalidForeignKey(format!(
                "there is no unique constraint matching given keys for referenced table \"{}\"",
                referenced_name.name
            )));
        }
        let action = |action: &Option<ReferentialAction>, event: &str| match action {
            None | Some(ReferentialAction::NoAction) => Ok(KeyAction::NoAction),
            Some(ReferentialAction::Restrict) => Ok(KeyAction::Restrict),
            Some(ReferentialAction::Cascade) if event == "DELETE" => Ok(KeyAction::Cascade),
            Some(ReferentialAction::SetNull) if event == "DELETE" => Ok(KeyAction::SetNull),
            Some(other) => Err(Error::FeatureNotSupported(format!(
                "foreign keys ON {event} {other} are not supported yet (ON DELETE: NO ACTION, RESTRICT, CASCADE and SET NULL; ON UPDATE: NO ACTION and RESTRICT)"
            ))),
        };
        let on_delete = action(&declared.on_delete, "DELETE")?;
        let on_update = action(&declared.on_update, "UPDATE")?;

        if let Some(kind) = &declared.match_kind
            && *kind != ConstraintReferenceMatchKind::Simple
        {
            return Err(Error::FeatureNotSupported(format!(
                "foreign keys {kind} are not supported yet (only MATCH SIMPLE)"
            )));
        }
        let characteristics = declared.characteristics.unwrap_or_default();
        if characteristics.enforced == Some(false) {
            return Err(Error::FeatureNotSupported(
                "foreign keys NOT ENFORCED are not supported".into(),
            ));
        }
        let deferred = characteristics.initially == Some(DeferrableInitial::Deferred);
        let taken: Vec<&str> = entry
            .indexes
            .iter()
            .map(|i| i.name.as_str())
            .chain(entry.foreign_keys.iter().map(|k| k.name.as_str()))
            .collect();
        let key_name = match &declared.name {
            Some(given) => {
                let given = folded(given);
                if taken.contains(&given.as_str()) {
                    return Err(Error::DuplicateObject(format!(
                        "constraint \"{given}\" for relation \"{}\" already exists",
                        name.name
                    )));
                }
                given
            }
            None => {
                let made = format!("{}_{}_fkey", name.name, columns.join("_"));
                (0..)
                    .map(|n| match n {
                        0 => made.clone(),
                        n => format!("{made}{n}"),
                    })
                    .find(|candidate| !taken.contains(&candidate.as_str()))
                    .unwrap_or(made)
            }
        };
        let key = ForeignKey {
            name: key_name,
            columns,
            schema: referenced_name.schema.clone(),
            table: referenced_name.name.clone(),
            referenced: referenced_columns,
            on_delete,
            on_update,
            deferrable: characteristics.deferrable == Some(true) || deferred,
            deferred,
        };
        Ok(self.relations.add_foreign_key(name, key).await?)
    }
}

impl Session {
    /// After a `DELETE` from the stored table `name`: what its foreign keys
    /// `ON DELETE CASCADE` and `SET NULL` do to the rows referencing keys
    /// it no longer has — deleted, or their keys set to NULL — as
    /// statements of the same block (which cascade in turn). A key `NO
    /// ACTION` or `RESTRICT` is checked instead (see
    /// `quiver_catalog::keys`).
    pub(super) async fn cascade_deletes(&self, name: &QualifiedName) -> Result<()> {
        use quiver_udf_registry::quote_ident;
        let qualified = |name: &QualifiedName| {
            format!("{}.{}", quote_ident(&name.schema), quote_ident(&name.name))
        };
        for (child, key) in self.relations.referencing(name) {
            if !matches!(key.on_delete, KeyAction::Cascade | KeyAction::SetNull) {
                continue;
            }
            let child_name = qualified(&child.qualified());
            // Its rows whose key (of no NULL) the table no longer has.
            let present: Vec<String> = key
                .columns
                .iter()
                .map(|c| format!("{child_name}.{} IS NOT NULL", quote_ident(c)))
                .collect();
            let equal: Vec<String> = key
                .columns
                .iter()
                .zip(&key.referenced)
                .map(|(c, r)| {
                    format!(
                        "__quiver_referenced.{} = {child_name}.{}",
                        quote_ident(r),
                        quote_ident(c)
                    )
                })
                .collect();
            let orphaned = format!(
                "{} AND NOT EXISTS (SELECT 1 FROM {} AS __quiver_referenced WHERE {})",
                present.join(" AND "),
                qualified(name),
                equal.join(" AND ")
            );
            let sql = match key.on_delete {
                KeyAction::Cascade => format!("DELETE FROM {child_name} WHERE {orphaned}"),
                _ => {
                    let nulls: Vec<String> = key
                        .columns
                        .iter()
                        .map(|c| format!("{} = NULL", quote_ident(c)))
                        .collect();
                    format!(
                        "UPDATE {child_name} SET {} WHERE {orphaned}",
                        nulls.join(", ")
                    )
                }
            };
            let statement = self
                .ctx
                .state()
                .sql_to_statement(&sql, &datafusion::config::Dialect::PostgreSQL)?;
            Box::pin(self.plan_and_run(statement)).await?;
        }
        Ok(())
    }

    /// `DROP TABLE names CASCADE`: the foreign keys of other tables that
    /// reference them go first (a notice names each), as PostgreSQL drops
    /// what depends on a table; all or nothing.
    pub(super) async fn drop_tables_cascading(
        &self,
        names: &[ObjectName],
        if_exists: bool,
    ) -> Result<Outcome> {
        self.atomically(async {
            let mut notices = Vec::new();
            for object in names {
                let reference = crate::names::table_reference(object);
                if let Target::Stored(name) = self.target(&reference)?
                    && self.relations.entry(&name).is_some()
                {
                    self.check_owner(&name)?;
                    for (constraint, table) in self.relations.drop_references_to(&name).await? {
                        notices.push(format!(
                            "drop cascades to constraint {constraint} on table {table}"
                        ));
                    }
                }
                let drop = Statement::Drop {
                    object_type: ObjectType::Table,
                    if_exists,
                    names: vec![object.clone()],
                    cascade: false,
                    restrict: false,
                    purge: false,
                    temporary: false,
                    table: None,
                };
                let outcome = self
                    .plan_and_run(DfStatement::Statement(Box::new(drop)))
                    .await?;
                if let Outcome::Command(done) = outcome
                    && let Some(notice) = done.notice
                {
                    notices.push(notice);
                }
            }
            Ok(Completion::tag("DROP TABLE")
                .with_notice((!notices.is_empty()).then(|| notices.join("\n")))
                .into())
        })
        .await
    }
}

/// Whether keys of types `a` and `b` can be compared, as a foreign key's
/// columns and the columns they reference must be.
fn comparable(a: &DataType, b: &DataType) -> bool {
    let text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    a == b || (a.is_numeric() && b.is_numeric()) || (text(a) && text(b))
}
