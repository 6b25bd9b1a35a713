//! `quiver.executors`: the cluster's executors, as the scheduler sees them.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Int32Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::{DataFusionError, Result as DfResult};

use crate::system::SystemRows;

/// Heartbeats older than this mark an executor `silent` (it is lost once
/// the scheduler's executor timeout passes).
const SILENT_AFTER_MS: i64 = 5_000;

#[derive(Debug)]
pub(crate) struct ExecutorsTable {
    scheduler: String,
    schema: SchemaRef,
}

impl ExecutorsTable {
    pub(crate) fn new(scheduler: String) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("host", DataType::Utf8, false),
            Field::new("port", DataType::Int32, false),
            Field::new("slots", DataType::Int32, false),
            Field::new(
                "last_heartbeat",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("state", DataType::Utf8, false),
        ]));
        Self { scheduler, schema }
    }

    async fn batch(&self) -> DfResult<RecordBatch> {
        let mut executors = quiver_scheduler::executors(&self.scheduler)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        executors.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
        let now = chrono::Utc::now().timestamp_millis();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                executors.iter().map(|e| &e.id),
            )),
            Arc::new(StringArray::from_iter_values(
                executors.iter().map(|e| &e.host),
            )),
            Arc::new(Int32Array::from_iter_values(
                executors.iter().map(|e| i32::from(e.port)),
            )),
            Arc::new(Int32Array::from_iter_values(
                executors.iter().map(|e| e.slots as i32),
            )),
            Arc::new(
                TimestampMillisecondArray::from_iter(
                    executors.iter().map(|e| e.last_seen_ms.map(|ms| ms as i64)),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(executors.iter().map(
                |e| match e.last_seen_ms {
                    Some(ms) if now - (ms as i64) <= SILENT_AFTER_MS => "active",
                    _ => "silent",
                },
            ))),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[async_trait]
impl SystemRows for ExecutorsTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn rows(&self) -> DfResult<RecordBatch> {
        self.batch().await
    }
}
