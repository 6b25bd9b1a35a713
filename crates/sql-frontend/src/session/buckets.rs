//! `CREATE BUCKET`, `DROP BUCKET` and `COPY BUCKET ... FROM STDIN`: the
//! key-value buckets Wasm functions reach through `wasi:keyvalue` (see
//! [`quiver_catalog::Buckets`]).
//!
//! A bucket belongs to the role that created it. Only its owner (or a
//! superuser) loads it, drops it, or creates a function that may open it;
//! a function opens only the buckets its definition names.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BinaryArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::sql::sqlparser::ast::{CopySource, CopyTarget, Statement};
use quiver_catalog::{BucketWrite, Buckets, DEFAULT_SCHEMA, Object, Privilege};
use quiver_udf_registry::Grants;

use super::{Completion, Outcome, Session};
use crate::copy::{CopyIn, CopyOptions};
use crate::{Error, Result};

/// The columns a bucket's rows have in `COPY BUCKET` and
/// `quiver.bucket('name')`.
pub(crate) fn bucket_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, false),
    ]))
}

impl Session {
    /// The server's buckets.
    pub(crate) fn buckets(&self) -> Result<&Arc<Buckets>> {
        self.functions
            .registry
            .loader()
            .buckets()
            .buckets()
            .ok_or_else(|| Error::Internal("this process has no catalog of buckets".into()))
    }

    /// Fails with 42501 unless the session's role owns bucket `name` (or
    /// is a superuser); with 42704 if there is no such bucket.
    pub(super) fn check_bucket_owner(&self, name: &str) -> Result<()> {
        let entry = self
            .buckets()?
            .entry(name)?
            .ok_or_else(|| Error::UndefinedObject(format!("bucket \"{name}\" does not exist")))?;
        if self.is_superuser() || self.user().as_deref() == Some(entry.owner.as_str()) {
            return Ok(());
        }
        Err(Error::InsufficientPrivilege(format!(
            "must be owner of bucket {name}"
        )))
    }

    /// A function may be granted only buckets that exist and that the
    /// session's role owns, and the server's log only by a superuser.
    pub(super) fn check_grants(&self, grants: &Grants) -> Result<()> {
        // Writing to the server's log is a superuser's to allow, as
        // PostgreSQL's logging parameters are.
        if grants.log && !self.is_superuser() {
            return Err(Error::InsufficientPrivilege(
                "permission denied to set quiver.wasm.log: only a superuser lets a function write to the server's log".into(),
            ));
        }
        grants
            .keyvalue
            .iter()
            .try_for_each(|grant| self.check_bucket_owner(&grant.bucket))
    }

    /// `CREATE BUCKET [IF NOT EXISTS] name`: needs `CREATE` on the schema,
    /// as a table does.
    pub(super) fn create_bucket(&self, name: &str, if_not_exists: bool) -> Result<Outcome> {
        // What a grant can name, and safe in a file name (published
        // snapshots are named after their bucket).
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Error::InvalidName(format!(
                "invalid bucket name \"{name}\": a bucket's name has lower-case letters, digits and underscores"
            )));
        }
        self.check_object(&Object::Schema(DEFAULT_SCHEMA.into()), Privilege::Create)?;
        let owner = self.user().unwrap_or_default();
        let done = Completion::tag("CREATE BUCKET");
        if self.buckets()?.create(name, &owner)? {
            return Ok(done.into());
        }
        if if_not_exists {
            let notice = format!("bucket \"{name}\" already exists, skipping");
            return Ok(done.with_notice(Some(notice)).into());
        }
        Err(Error::DuplicateObject(format!(
            "bucket \"{name}\" already exists"
        )))
    }

    /// `DROP BUCKET [IF EXISTS] name [, ...]`: refused (2BP01) while a
    /// function may open one of them.
    pub(super) fn drop_buckets(&self, names: &[String], if_exists: bool) -> Result<Outcome> {
        let buckets = self.buckets()?;
        let mut notices = Vec::new();
        let mut dropping = Vec::new();
        for name in names {
            if buckets.entry(name)?.is_none() {
                if if_exists {
                    notices.push(format!("bucket \"{name}\" does not exist, skipping"));
                    continue;
                }
                return Err(Error::UndefinedObject(format!(
                    "bucket \"{name}\" does not exist"
                )));
            }
            self.check_bucket_owner(name)?;
            let users: Vec<String> = self
                .functions
                .registry
                .definitions()
                .iter()
                .filter(|def| def.grants.keyvalue.iter().any(|g| &g.bucket == name))
                .map(|def| def.signature())
                .collect();
            if !users.is_empty() {
                return Err(Error::DependentObjects(format!(
                    "cannot drop bucket {name} because other objects depend on it: \
                     function {} may open it (drop or replace the functions first)",
                    users.join(", function ")
                )));
            }
            dropping.push(name);
        }
        for name in dropping {
            buckets.remove(name)?;
        }
        let notice = (!notices.is_empty()).then(|| notices.join("\n"));
        Ok(Completion::tag("DROP BUCKET").with_notice(notice).into())
    }

    /// `COPY BUCKET name FROM STDIN ...`: starts reading `key,value` rows
    /// (the value's bytes are the field's text) into the bucket, which its
    /// owner loads. The rows are written when the copy ends, all at once.
    pub(super) fn copy_bucket(&self, copy: Statement) -> Result<Outcome> {
        let Statement::Copy {
            source:
                CopySource::Table {
                    table_name,
                    columns,
                },
            to: false,
            target: CopyTarget::Stdin,
            options,
            legacy_options,
            ..
        } = copy
        else {
            return Err(Error::FeatureNotSupported(
                "COPY BUCKET reads only FROM STDIN, into a bucket".into(),
            ));
        };
        if !columns.is_empty() {
            return Err(Error::FeatureNotSupported(
                "COPY BUCKET takes no column list: its rows are key, value".into(),
            ));
        }
        let name = match table_name.0.as_slice() {
            [part] => part
                .as_ident()
                .map(crate::names::folded)
                .unwrap_or_else(|| part.to_string()),
            _ => {
                return Err(Error::Syntax(format!(
                    "a bucket's name has one part: {table_name}"
                )));
            }
        };
        self.check_bucket_owner(&name)?;
        if self.in_block() {
            return Err(Error::FeatureNotSupported(
                "COPY BUCKET cannot run inside a transaction block: buckets are not transactional"
                    .into(),
            ));
        }
        let options = CopyOptions::parse(&options, &legacy_options)?;
        let provider: Arc<dyn TableProvider> = Arc::new(
            MemTable::try_new(bucket_schema(), vec![vec![]])
                .map_err(|e| Error::Internal(e.to_string()))?,
        );
        let copy = CopyIn::new(format!("bucket {name}"), provider, &[], &options)?;
        *self.copy_slot() = Some((copy, super::CopyDestination::Bucket(name)));
        Ok(Outcome::CopyIn {
            columns: 2,
            binary: options.binary,
        })
    }
}

/// The rows of a `COPY BUCKET`, as writes in order (a later row of a key
/// replaces an earlier one).
pub(super) fn bucket_writes(batches: &[RecordBatch]) -> Result<Vec<BucketWrite>> {
    let mut writes = Vec::new();
    for batch in batches {
        let keys = batch.column(0).as_any().downcast_ref::<StringArray>();
        let values = batch.column(1).as_any().downcast_ref::<BinaryArray>();
        let (Some(keys), Some(values)) = (keys, values) else {
            return Err(Error::Internal("bucket rows are not key, value".into()));
        };
        for row in 0..batch.num_rows() {
            if keys.is_null(row) || values.is_null(row) {
                return Err(Error::BadCopyData(
                    "a bucket's keys and values cannot be null".into(),
                ));
            }
            writes.push(BucketWrite::Set(
                keys.value(row).to_string(),
                values.value(row).to_vec(),
            ));
        }
    }
    Ok(writes)
}
