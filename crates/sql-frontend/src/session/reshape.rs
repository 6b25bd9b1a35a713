//! `ALTER TABLE` forms that change what a table's files hold: `RENAME
//! COLUMN`, `ALTER COLUMN ... TYPE`, `ADD COLUMN` with a default the rows
//! there are take, and `SET NOT NULL` / `DROP NOT NULL`.
//!
//! A managed table's Parquet files are read by column name and type, so
//! renaming or retyping a column, or giving the rows there are a value of a
//! new column, rewrites the table (as PostgreSQL rewrites it to retype a
//! column): every file is read and written anew with the new columns,
//! through the same rewrite an `UPDATE` makes (see `quiver_catalog::Rewrite`),
//! and the new columns are stored with them, in one transaction block (the
//! statement's own outside one). The files are put in place before the
//! columns are stored (see `SessionCatalog::commit`), so the new files must
//! read right under the old columns too: a renamed column's values are
//! written under both names (the old one is then a dropped column's: left
//! unread, and out of files compaction merges), a retyped column's values
//! read cast back, and a new column is one the old columns do not read.
//! Files other statements write meanwhile have the old columns: then the
//! block fails with a serialization failure (40001) and changes nothing.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Column, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{Cast, Expr};
use datafusion::sql::sqlparser::ast::{ColumnDef, DataType as SqlType, Expr as SqlExpr, Ident};
use quiver_catalog::{COLUMN_COMMENT, COLUMN_DEFAULT, QualifiedName, TableKind, Target};

use super::Session;
use crate::{Error, Result};

/// A column of a table's new files: its field, and its values in terms of
/// the table's present columns.
type NewColumn = (Field, Expr);

impl Session {
    /// `ALTER TABLE name RENAME [COLUMN] column TO new`.
    pub(super) async fn rename_column(
        &self,
        name: &QualifiedName,
        column: &str,
        new: &str,
    ) -> Result<()> {
        let present = self.columns_of(name).await?;
        if present.column_with_name(column).is_none() {
            return Err(Error::UndefinedColumn(column.to_string()));
        }
        if present.column_with_name(new).is_some() {
            return Err(Error::Catalog(quiver_catalog::Error::DuplicateColumn(
                format!(
                    "column \"{new}\" of relation \"{}\" already exists",
                    name.name
                ),
            )));
        }
        self.atomically(async {
            self.rewrite_columns(name, |_| {
                let mut files: Vec<NewColumn> = present
                    .fields()
                    .iter()
                    .map(|f| {
                        let values = column_expr(f.name());
                        match f.name() == column {
                            true => (f.as_ref().clone().with_name(new), values),
                            false => (f.as_ref().clone(), values),
                        }
                    })
                    .collect();
                // Under its old name too, for the old columns to read.
                let old = present.field_with_name(column)?;
                files.push((old.clone().with_nullable(true), column_expr(column)));
                Ok(files)
            })
            .await?;
            Ok(self.relations.rename_column(name, column, new).await?)
        })
        .await
    }

    /// `ALTER [COLUMN] column [SET DATA] TYPE data_type [USING using]`: the
    /// values cast to the new type, or `using` computed from the row. As in
    /// PostgreSQL, text does not become another type without `USING`.
    pub(super) async fn set_column_type(
        &self,
        name: &QualifiedName,
        column: &str,
        data_type: &SqlType,
        using: Option<&SqlExpr>,
    ) -> Result<()> {
        let present = self.columns_of(name).await?;
        let old = present
            .field_with_name(column)
            .map_err(|_| Error::UndefinedColumn(column.to_string()))?
            .clone();
        let declared = self
            .declared_field(&ColumnDef {
                name: Ident::new(column),
                data_type: data_type.clone(),
                options: Vec::new(),
            })
            .await?;
        if using.is_none() && !assignable(old.data_type(), declared.data_type()) {
            let type_name = crate::info_schema::type_name(&declared);
            return Err(Error::DatatypeMismatch(format!(
                "column \"{column}\" cannot be cast automatically to type {type_name}: specify USING {column}::{type_name}"
            )));
        }
        // Its default, comment and NOT NULL stay; its type is the new one.
        let mut metadata = declared.metadata().clone();
        for key in [COLUMN_DEFAULT, COLUMN_COMMENT] {
            if let Some(value) = old.metadata().get(key) {
                metadata.insert(key.to_string(), value.clone());
            }
        }
        let retyped = declared
            .with_nullable(old.is_nullable())
            .with_metadata(metadata);
        let columns = with_field(&present, column, |_| retyped.clone());
        let using = using.map(ToString::to_string);
        self.rewritten_as(name, columns, using.map(|using| (column, using)))
            .await
    }

    /// `ADD COLUMN` of `field`, whose default (`COLUMN_DEFAULT`) the rows
    /// there are take, to the stored table `name`: `columns` are the
    /// table's columns with it.
    pub(super) async fn add_column_with_default(
        &self,
        name: &QualifiedName,
        field: &Field,
        columns: Schema,
    ) -> Result<()> {
        let default = field
            .metadata()
            .get(COLUMN_DEFAULT)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("column {} has no default", field.name())))?;
        self.rewritten_as(name, columns, Some((field.name(), default)))
            .await
    }

    /// `ALTER [COLUMN] column SET NOT NULL` (`not_null`), once no row has a
    /// NULL there, or `DROP NOT NULL`, unless the column is in the
    /// table's primary key. Neither changes the table's files.
    pub(super) async fn set_not_null(
        &self,
        name: &QualifiedName,
        column: &str,
        not_null: bool,
    ) -> Result<()> {
        let present = self.columns_of(name).await?;
        if present.column_with_name(column).is_none() {
            return Err(Error::UndefinedColumn(column.to_string()));
        }
        let entry = self
            .relations
            .entry(name)
            .ok_or_else(|| Error::UndefinedTable(name.to_string()))?;
        let in_primary_key = entry
            .indexes
            .iter()
            .any(|i| i.constraint_type() == Some("p") && i.keys.iter().any(|k| k == column));
        if !not_null && in_primary_key {
            return Err(Error::InvalidTableDefinition(format!(
                "column \"{column}\" is in a primary key"
            )));
        }
        self.atomically(async {
            let nulls = Some(column_expr(column).is_null());
            if not_null && self.has_rows(name, nulls).await? {
                return Err(Error::NotNullViolationOfColumn(format!(
                    "column \"{column}\" of relation \"{}\" contains null values",
                    name.name
                )));
            }
            let columns = with_field(&present, column, |f| f.clone().with_nullable(!not_null));
            Ok(self
                .relations
                .alter_columns(name, |_| Ok(columns.clone()))
                .await?)
        })
        .await
    }

    /// The present columns of the stored managed table `name`.
    async fn columns_of(&self, name: &QualifiedName) -> Result<SchemaRef> {
        let entry = self
            .relations
            .entry(name)
            .ok_or_else(|| Error::UndefinedTable(name.to_string()))?;
        if !matches!(entry.kind, TableKind::Managed { .. }) {
            return Err(Error::FeatureNotSupported(format!(
                "only the columns of a table Quiver manages can change, not \"{}\"'s",
                name.name
            )));
        }
        let reference = TableReference::partial(name.schema.clone(), name.name.clone());
        Ok(self.ctx.table_provider(reference).await?.schema())
    }

    /// Rewrites the stored table `name` with the columns `columns` and
    /// stores them: each column's values are its present ones (cast to its
    /// type), but for `computed` (a column, and the SQL expression over the
    /// present columns that gives its values).
    async fn rewritten_as(
        &self,
        name: &QualifiedName,
        columns: Schema,
        computed: Option<(&str, String)>,
    ) -> Result<()> {
        self.atomically(async {
            self.rewrite_columns(name, |table| {
                columns
                    .fields()
                    .iter()
                    .map(|f| {
                        let values = match &computed {
                            Some((column, sql)) if f.name() == column => {
                                table.parse_sql_expr(sql)?
                            }
                            _ => column_expr(f.name()),
                        };
                        Ok((f.as_ref().clone(), values))
                    })
                    .collect()
            })
            .await?;
            Ok(self
                .relations
                .alter_columns(name, |_| Ok(columns.clone()))
                .await?)
        })
        .await
    }

    /// Rewrites every file of the stored table `name` with the columns
    /// `columns` gives from a scan of the table as it is (see the module
    /// documentation).
    async fn rewrite_columns(
        &self,
        name: &QualifiedName,
        columns: impl FnOnce(&DataFrame) -> datafusion::common::Result<Vec<NewColumn>>,
    ) -> Result<()> {
        let target = Target::Stored(name.clone());
        let mut rewrite = self.relations.begin_rewrite(&target).await?;
        let table = self.ctx.read_table(rewrite.source().clone())?;
        let columns = columns(&table)?;
        let fields: Vec<Field> = columns.iter().map(|(f, _)| f.clone()).collect();
        let values: Vec<Expr> = columns
            .into_iter()
            .map(|(field, values)| {
                Expr::Cast(Cast::new(Box::new(values), field.data_type().clone()))
                    .alias(field.name())
            })
            .collect();
        let files = Schema::new(fields);
        let rows = table.select(values)?.into_unoptimized_plan();
        let rows = crate::sized_text::assign(rows, &files)?;
        rewrite.reshape(Arc::new(files))?;
        let reference = TableReference::partial(name.schema.clone(), name.name.clone());
        self.write(&rewrite, &reference, rows).await?;
        rewrite.finish().await?;
        Ok(())
    }
}

/// `columns` with the column `column` as `change` makes it of its field.
fn with_field(columns: &Schema, column: &str, change: impl Fn(&Field) -> Field) -> Schema {
    let fields: Vec<Field> = columns
        .fields()
        .iter()
        .map(|f| match f.name() == column {
            true => change(f),
            false => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, columns.metadata().clone())
}

/// The column `name` of the table, unqualified.
fn column_expr(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// Whether PostgreSQL casts values of type `from` to `to` in an
/// assignment, as `ALTER COLUMN ... TYPE` without `USING` does: anything
/// becomes text, but text becomes nothing else, and booleans only text.
fn assignable(from: &DataType, to: &DataType) -> bool {
    let text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    match (from, to) {
        (_, to) if text(to) => true,
        (from, _) if text(from) => false,
        (DataType::Boolean, to) => *to == DataType::Boolean,
        (_, DataType::Boolean) => false,
        _ => true,
    }
}
