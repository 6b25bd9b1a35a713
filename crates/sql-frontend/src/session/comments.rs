//! `COMMENT ON TABLE|VIEW|SEQUENCE|COLUMN|SCHEMA name IS 'text' | NULL`, by
//! the object's owner: a relation's comment is kept in its entry, a
//! column's with the column (so both go with them when renamed or
//! dropped), a schema's in the catalog. `pg_description`,
//! `obj_description` and `col_description` show them (psql's `\d+`,
//! `\dt+`; pg_dump), see `crate::pg_relations`.

use datafusion::sql::sqlparser::ast::{CommentObject, ObjectName};
use quiver_catalog::{COLUMN_COMMENT, Object, QualifiedName};

use super::{Completion, Outcome, Session};
use crate::names::folded_parts;
use crate::{Error, Result};

impl Session {
    pub(super) async fn comment_on(
        &self,
        object_type: CommentObject,
        name: &ObjectName,
        comment: Option<String>,
        if_exists: bool,
    ) -> Result<Outcome> {
        let done = || Ok(Completion::tag("COMMENT").into());
        match object_type {
            CommentObject::Table | CommentObject::View | CommentObject::Sequence => {
                let reference = crate::names::table_reference(name);
                let relation = self.stored_name(&reference)?;
                if self.relations.entry(&relation).is_none() {
                    if if_exists {
                        return done();
                    }
                    return Err(Error::UndefinedTable(reference.to_string()));
                }
                self.check_owner(&relation)?;
                self.relations.set_comment(&relation, comment).await?;
            }
            CommentObject::Column => {
                let mut parts = folded_parts(name);
                let (Some(column), false) = (parts.pop(), parts.is_empty()) else {
                    return Err(Error::Syntax(format!(
                        "column name must be qualified: {name}"
                    )));
                };
                let table = ObjectName::from(
                    parts
                        .iter()
                        .map(|part| datafusion::sql::sqlparser::ast::Ident::with_quote('"', part))
                        .collect::<Vec<_>>(),
                );
                let reference = crate::names::table_reference(&table);
                let relation: QualifiedName = self.stored_name(&reference)?;
                if self.relations.entry(&relation).is_none() {
                    return Err(Error::UndefinedTable(reference.to_string()));
                }
                self.check_owner(&relation)?;
                self.set_column_metadata(&relation, &column, COLUMN_COMMENT, comment)
                    .await?;
            }
            CommentObject::Schema => {
                let [schema] = folded_parts(name).try_into().map_err(|_| {
                    Error::Syntax(format!("schema name must be one identifier: {name}"))
                })?;
                if !self.relations.schema_exists(&schema) {
                    if if_exists {
                        return done();
                    }
                    return Err(Error::Catalog(quiver_catalog::Error::SchemaNotFound(
                        schema,
                    )));
                }
                let object = Object::Schema(schema);
                self.check_owns(&object)?;
                self.catalog.set_comment(&object, comment)?;
            }
            other => {
                return Err(Error::FeatureNotSupported(format!(
                    "COMMENT ON {other} is not supported yet (only TABLE, VIEW, SEQUENCE, COLUMN and SCHEMA)"
                )));
            }
        }
        done()
    }
}
