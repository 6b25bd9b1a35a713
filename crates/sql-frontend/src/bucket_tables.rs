//! `quiver.buckets` and `quiver.bucket_values`: the key-value buckets Wasm
//! functions read through `wasi:keyvalue`, and what they hold.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::{DataFusionError, Result as DfResult};
use quiver_catalog::Buckets;

use crate::system::SystemRows;

/// `quiver.buckets`: one row per bucket (name, owner, version, keys,
/// bytes of values).
#[derive(Debug)]
pub(crate) struct BucketsTable {
    buckets: Arc<Buckets>,
    schema: SchemaRef,
}

impl BucketsTable {
    pub(crate) fn new(buckets: Arc<Buckets>) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("owner", DataType::Utf8, false),
            Field::new("version", DataType::Int64, false),
            Field::new("keys", DataType::Int64, false),
            Field::new("bytes", DataType::Int64, false),
        ]));
        Self { buckets, schema }
    }
}

fn external(e: quiver_catalog::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl SystemRows for BucketsTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn rows(&self) -> DfResult<RecordBatch> {
        let entries = self.buckets.entries().map_err(external)?;
        let sizes = entries
            .iter()
            .map(|e| self.buckets.size(&e.name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(external)?;
        let text = |f: &dyn Fn(usize) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values((0..entries.len()).map(f)))
        };
        let int = |f: &dyn Fn(usize) -> u64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                (0..entries.len()).map(|i| f(i) as i64),
            ))
        };
        let columns = vec![
            text(&|i| entries[i].name.clone()),
            text(&|i| entries[i].owner.clone()),
            int(&|i| entries[i].version),
            int(&|i| sizes[i].0),
            int(&|i| sizes[i].1),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// `quiver.bucket_values`: every key of every bucket (bucket, key, value),
/// in bucket and key order.
#[derive(Debug)]
pub(crate) struct BucketValuesTable {
    buckets: Arc<Buckets>,
    schema: SchemaRef,
}

impl BucketValuesTable {
    pub(crate) fn new(buckets: Arc<Buckets>) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("bucket", DataType::Utf8, false),
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Binary, false),
        ]));
        Self { buckets, schema }
    }
}

#[async_trait]
impl SystemRows for BucketValuesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn rows(&self) -> DfResult<RecordBatch> {
        let (mut names, mut keys, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for entry in self.buckets.entries().map_err(external)? {
            let snapshot = self.buckets.snapshot(&entry.name).map_err(external)?;
            for (key, value) in snapshot.values {
                names.push(entry.name.clone());
                keys.push(key);
                values.push(value);
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(names)),
            Arc::new(StringArray::from(keys)),
            Arc::new(BinaryArray::from_iter_values(values)),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}
