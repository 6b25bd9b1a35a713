//! Arrow record batches to PostgreSQL wire values.
//!
//! The value encoding is `arrow-pg`'s (text and binary formats for every Arrow
//! type PostgreSQL has a counterpart for). `arrow-pg` 0.16 is built on pgwire
//! 0.41 while the server speaks pgwire 0.42.1 (for its authentication fixes), so
//! this module encodes with the 0.41 types and hands the finished message bytes
//! — whose layout both versions share — to 0.42. Delete the bridge when
//! `arrow-pg` moves to pgwire 0.42.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use futures::{Stream, StreamExt, stream};
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;
use pgwire::messages::data::DataRow;
use pgwire_arrow_pg as pgwire041;

use crate::Error;

/// The row description of `schema` in both pgwire versions: 0.41 to encode
/// values with, 0.42 to send.
#[derive(Clone)]
pub struct RowDescription {
    encode: Arc<Vec<pgwire041::api::results::FieldInfo>>,
    send: Arc<Vec<FieldInfo>>,
}

impl RowDescription {
    /// Describes `schema`; `formats` are the result format codes a client asked
    /// for (empty: all text).
    pub fn new(schema: &Schema, formats: &[i16]) -> Result<Self, Error> {
        use pgwire041::api::portal::Format;
        let format = match formats {
            [] => Format::UnifiedText,
            [one] => Format::from(*one),
            many => Format::Individual(many.to_vec()),
        };
        let encode = arrow_pg::datatypes::arrow_schema_to_pg_fields(schema, &format, None)
            .map_err(|e| Error::FeatureNotSupported(e.to_string()))?
            .into_iter()
            .zip(schema.fields())
            .map(|(info, field)| match crate::oid_types::result_type(field) {
                Some(oid_type) => pgwire041::api::results::FieldInfo::new(
                    info.name().to_string(),
                    info.table_id(),
                    info.column_id(),
                    oid_type,
                    info.format(),
                ),
                None => info,
            })
            .collect::<Vec<_>>();
        let send = encode
            .iter()
            .map(|f| {
                let format = match f.format() {
                    pgwire041::api::results::FieldFormat::Binary => FieldFormat::Binary,
                    pgwire041::api::results::FieldFormat::Text => FieldFormat::Text,
                };
                FieldInfo::new(
                    f.name().to_string(),
                    f.table_id(),
                    f.column_id(),
                    f.datatype().clone(),
                    format,
                )
            })
            .collect();
        Ok(Self {
            encode: Arc::new(encode),
            send: Arc::new(send),
        })
    }

    /// The fields to send in `RowDescription`.
    pub fn fields(&self) -> Arc<Vec<FieldInfo>> {
        self.send.clone()
    }

    /// Encodes one batch into `DataRow` messages.
    pub fn data_rows(&self, batch: RecordBatch) -> Vec<PgWireResult<DataRow>> {
        arrow_pg::datatypes::encode_recordbatch(self.encode.clone(), batch)
            .map(|row| {
                row.map(|r| DataRow::new(r.data, r.field_count))
                    .map_err(bridge_error)
            })
            .collect()
    }

    /// Streams the rows of `batches` as `DataRow` messages.
    pub fn row_stream(
        self,
        batches: SendableRecordBatchStream,
    ) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
        batches.flat_map(move |batch| match batch {
            Ok(batch) => stream::iter(self.data_rows(batch)),
            Err(e) => stream::iter(vec![Err(PgWireError::from(Error::from(e)))]),
        })
    }
}

/// Which text layout `COPY ... TO STDOUT` writes.
#[derive(Debug, Clone)]
pub enum CopyOutFormat {
    /// PostgreSQL's binary format (`PGCOPY`).
    Binary,
    /// PostgreSQL's text format.
    Text { delimiter: String, null: String },
    /// CSV.
    Csv {
        delimiter: String,
        quote: String,
        escape: String,
        null: String,
    },
}

/// Encodes the rows of `batches` as `CopyData` messages.
pub fn copy_stream(
    schema: &Schema,
    format: CopyOutFormat,
    header: Option<String>,
    batches: SendableRecordBatchStream,
) -> Result<impl Stream<Item = PgWireResult<CopyData>> + Send + 'static, Error> {
    use pgwire041::api::results::{CopyCsvOptions, CopyEncoder, CopyTextOptions};
    let binary = matches!(format, CopyOutFormat::Binary);
    let description = RowDescription::new(schema, if binary { &[1] } else { &[] })?;
    let fields = description.encode.clone();
    let mut encoder = match format {
        CopyOutFormat::Binary => CopyEncoder::new_binary(fields.clone()),
        CopyOutFormat::Text { delimiter, null } => CopyEncoder::new_text(
            fields.clone(),
            CopyTextOptions {
                delimiter: delimiter.as_str().into(),
                null_string: null.as_str().into(),
            },
        ),
        CopyOutFormat::Csv {
            delimiter,
            quote,
            escape,
            null,
        } => CopyEncoder::new_csv(
            fields.clone(),
            CopyCsvOptions {
                delimiter: delimiter.as_str().into(),
                quote: quote.as_str().into(),
                escape: escape.as_str().into(),
                null_string: null.as_str().into(),
                force_quote: vec![],
            },
        ),
    };
    let header = stream::iter(header.map(|h| Ok(CopyData::new(h.into_bytes().into()))));
    // The binary encoder writes the file header before the first row: with
    // no rows, it is written on its own (pgwire adds the trailer).
    let wrote_rows = Arc::new(AtomicBool::new(false));
    let wrote = wrote_rows.clone();
    let rows = batches.flat_map(move |batch| {
        let rows: Vec<PgWireResult<CopyData>> = match batch {
            Ok(batch) => encode_copy_rows(&mut encoder, &fields, &batch),
            Err(e) => vec![Err(Error::from(e).into())],
        };
        wrote.fetch_or(!rows.is_empty(), Ordering::Relaxed);
        stream::iter(rows)
    });
    let empty_file = stream::once(async move {
        let header = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
        (binary && !wrote_rows.load(Ordering::Relaxed))
            .then(|| Ok(CopyData::new(bytes::Bytes::from_static(header))))
    })
    .filter_map(futures::future::ready);
    Ok(header.chain(rows).chain(empty_file))
}

fn encode_copy_rows(
    encoder: &mut pgwire041::api::results::CopyEncoder,
    fields: &[pgwire041::api::results::FieldInfo],
    batch: &RecordBatch,
) -> Vec<PgWireResult<CopyData>> {
    use arrow_pg::encoder::Encoder;
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|row| {
            for (column, field) in fields.iter().enumerate() {
                arrow_pg::encoder::encode_value(
                    encoder,
                    batch.column(column),
                    row,
                    schema.field(column),
                    field,
                )
                .map_err(bridge_error)?;
            }
            let data = Encoder::take_row(encoder);
            Ok(CopyData::new(data.data))
        })
        .collect()
}

fn bridge_error(e: pgwire041::error::PgWireError) -> PgWireError {
    Error::Internal(format!("could not encode a value: {e}")).into()
}
