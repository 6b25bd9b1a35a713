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

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use futures::{Stream, StreamExt, stream};
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;
use pgwire::messages::data::DataRow;
use pgwire_arrow_pg as pgwire041;
use quiver_udf_registry::{MIN_DISPLAY_SCALE, SizedText};

use crate::Error;

/// The row description of `schema` in both pgwire versions: 0.41 to encode
/// values with, 0.42 to send.
#[derive(Clone)]
pub struct RowDescription {
    encode: Arc<Vec<pgwire041::api::results::FieldInfo>>,
    send: Arc<Vec<FieldInfo>>,
    /// How each column's values are written; batches lose the field
    /// metadata this comes from.
    styles: Arc<Vec<ColumnStyle>>,
}

/// How the values of one result column are written.
#[derive(Debug, Clone, Copy)]
struct ColumnStyle {
    /// Sent in the text format.
    text: bool,
    /// A column of quotients: the fewest decimals its values show (see
    /// [`MIN_DISPLAY_SCALE`]).
    min_scale: Option<i8>,
    /// A `character(n)` column: its values padded with spaces to `n`
    /// characters (see `quiver_udf_registry::SizedText`).
    padded_to: Option<usize>,
    /// An `int2vector` or `oidvector` column (see [`VECTOR`]): written as
    /// its numbers separated by spaces.
    vector: bool,
}

/// The key of a list field's metadata that says it is one of PostgreSQL's
/// vector types (`int2vector`, `oidvector`: `pg_index.indkey`), which are
/// arrays written `1 2`, not `{1,2}` (pg_dump parses them so).
pub(crate) const VECTOR: &str = "quiver.vector";

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
        let schema = &wire_schema(schema);
        let encode = arrow_pg::datatypes::arrow_schema_to_pg_fields(schema, &format, None)
            .map_err(|e| Error::FeatureNotSupported(e.to_string()))?
            .into_iter()
            .zip(schema.fields())
            .map(|(info, field)| match result_type(field) {
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
        // A vector's text (`2 1`) is encoded as text: pgwire quotes a
        // string of an array type as it would an element of one (`"2 1"`,
        // which pg_dump cannot parse).
        let encode: Vec<_> = encode
            .into_iter()
            .zip(schema.fields())
            .map(|(info, field)| {
                let text = info.format() == pgwire041::api::results::FieldFormat::Text;
                match text && field.metadata().contains_key(VECTOR) {
                    true => pgwire041::api::results::FieldInfo::new(
                        info.name().to_string(),
                        info.table_id(),
                        info.column_id(),
                        pgwire041::api::Type::TEXT,
                        info.format(),
                    ),
                    false => info,
                }
            })
            .collect();
        let styles = encode
            .iter()
            .zip(schema.fields())
            .map(|(info, field)| ColumnStyle {
                text: info.format() == pgwire041::api::results::FieldFormat::Text,
                min_scale: field
                    .metadata()
                    .get(MIN_DISPLAY_SCALE)
                    .and_then(|scale| scale.parse().ok()),
                padded_to: SizedText::of(field)
                    .filter(|sized| sized.padded)
                    .map(|sized| sized.length),
                vector: field.metadata().contains_key(VECTOR),
            })
            .collect();
        Ok(Self {
            encode: Arc::new(encode),
            send: Arc::new(send),
            styles: Arc::new(styles),
        })
    }

    /// The fields to send in `RowDescription`.
    pub fn fields(&self) -> Arc<Vec<FieldInfo>> {
        self.send.clone()
    }

    /// Encodes one batch into `DataRow` messages.
    pub fn data_rows(&self, batch: RecordBatch) -> Vec<PgWireResult<DataRow>> {
        let batch = match postgres_values(&batch, &self.styles) {
            Ok(batch) => batch,
            Err(e) => return vec![Err(e)],
        };
        let mut rows = Vec::with_capacity(batch.num_rows());
        for row in arrow_pg::datatypes::encode_recordbatch(self.encode.clone(), batch) {
            let failed = row.is_err();
            rows.push(
                row.map(|r| DataRow::new(r.data, r.field_count))
                    .map_err(bridge_error),
            );
            // arrow-pg 0.16's row iterator does not move past a value it
            // cannot encode (a numeric of more than 28 digits, a type it
            // does not know): it yields that error forever, and collecting
            // them took all the memory there was.
            if failed {
                break;
            }
        }
        rows
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
    let styles = description.styles.clone();
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
        let batch = batch
            .map_err(|e| Error::from(e).into())
            .and_then(|batch| postgres_values(&batch, &styles));
        let rows: Vec<PgWireResult<CopyData>> = match batch {
            Ok(batch) => encode_copy_rows(&mut encoder, &fields, &batch),
            Err(e) => vec![Err(e)],
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

/// The type a column of `data_type` travels as: PostgreSQL has no half
/// float (`real` holds every one) and no fixed-size binary (`bytea` holds
/// it). arrow-pg writes both as debug text.
fn wire_type(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Float16 => Some(DataType::Float32),
        DataType::FixedSizeBinary(_) => Some(DataType::Binary),
        _ => None,
    }
}

/// `schema` with each field of the type it travels as ([`wire_type`]).
fn wire_schema(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .map(|field| match wire_type(field.data_type()) {
                Some(data_type) => Arc::new(field.as_ref().clone().with_data_type(data_type)),
                None => field.clone(),
            })
            .collect::<Vec<_>>(),
    )
}

/// `batch` as arrow-pg can encode it the way PostgreSQL writes it, each
/// column as its `styles` entry says:
/// - columns of types PostgreSQL lacks cast to the type they travel as
///   ([`wire_type`]);
/// - columns sent as text of floating-point types turned into text columns
///   holding PostgreSQL's output for them, which arrow-pg's (pgwire's) is
///   not: `Infinity` rather than `inf` (which JDBC and others cannot read),
///   `12` rather than `12.0`, `1e+20` rather than `1e20`;
/// - and of decimal types turned into their exact digits: arrow-pg goes
///   through `rust_decimal`, which holds 28 digits, and a `numeric(38)`
///   value of 30 digits failed; a quotient's with PostgreSQL's scale for it
///   (see `quiver_udf_registry::quotient_text`);
/// - of timestamp (without time zone), time, duration and interval types
///   turned into PostgreSQL's text: `2024-05-17 10:00:00`, `10:00:00.5`,
///   `1 day 00:00:01.5` (pgwire writes six fraction digits always),
///   `30 days 14:00:00` for a duration (pgwire: `734:00:00`);
/// - `character(n)` values padded to `n` characters, in either format.
///
/// The row description keeps the types.
fn postgres_values(batch: &RecordBatch, styles: &[ColumnStyle]) -> PgWireResult<RecordBatch> {
    use chrono::Timelike;
    use datafusion::arrow::array::{Array, AsArray, StringArray};
    use datafusion::arrow::datatypes::{
        Decimal128Type, DurationNanosecondType, Field, Float32Type, Float64Type,
        IntervalMonthDayNanoType, IntervalUnit, Time64MicrosecondType, TimeUnit,
        TimestampMicrosecondType,
    };
    use datafusion::arrow::temporal_conversions::{as_datetime, as_time};
    use quiver_udf_registry::quotient_text;
    let schema = batch.schema();
    let style = |column: usize| {
        styles.get(column).copied().unwrap_or(ColumnStyle {
            text: true,
            min_scale: None,
            padded_to: None,
            vector: false,
        })
    };
    let converted = |column: usize| {
        let data_type = schema.field(column).data_type();
        let style = style(column);
        wire_type(data_type).is_some()
            || style.padded_to.is_some()
            || style.text && style.vector
            || style.text
                && matches!(
                    data_type,
                    DataType::Float32
                        | DataType::Float64
                        | DataType::Decimal128(..)
                        | DataType::Decimal256(..)
                        | DataType::Timestamp(_, None)
                        | DataType::Time32(_)
                        | DataType::Time64(_)
                        | DataType::Duration(_)
                        | DataType::Interval(IntervalUnit::MonthDayNano)
                )
    };
    if !(0..batch.num_columns()).any(converted) {
        return Ok(batch.clone());
    }
    let cast = |array: &Arc<dyn Array>, to: &DataType| {
        datafusion::arrow::compute::cast(array, to).map_err(|e| {
            PgWireError::from(Error::Internal(format!("could not encode a value: {e}")))
        })
    };
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (column, (field, array)) in schema.fields().iter().zip(batch.columns()).enumerate() {
        let style = style(column);
        let array = &match wire_type(array.data_type()) {
            Some(to) => cast(array, &to)?,
            None => array.clone(),
        };
        let as_text: Option<StringArray> = match (array.data_type(), style) {
            (
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8,
                ColumnStyle {
                    padded_to: Some(length),
                    ..
                },
            ) => Some(
                cast(array, &DataType::Utf8)?
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(|v| format!("{v:<length$}")))
                    .collect(),
            ),
            (_, ColumnStyle { text: false, .. }) => None,
            (DataType::List(_), ColumnStyle { vector: true, .. }) => {
                let lists = array.as_list::<i32>();
                let mut texts = Vec::with_capacity(lists.len());
                for i in 0..lists.len() {
                    if lists.is_null(i) {
                        texts.push(None);
                        continue;
                    }
                    let items = cast(&lists.value(i), &DataType::Utf8)?;
                    let items: Vec<&str> = items.as_string::<i32>().iter().flatten().collect();
                    texts.push(Some(items.join(" ")));
                }
                Some(texts.into_iter().collect())
            }
            (
                DataType::Decimal128(_, scale),
                ColumnStyle {
                    min_scale: Some(min_scale),
                    ..
                },
            ) => Some(
                array
                    .as_primitive::<Decimal128Type>()
                    .iter()
                    .map(|v| v.map(|v| quotient_text(v, *scale, min_scale)))
                    .collect(),
            ),
            (DataType::Decimal128(..) | DataType::Decimal256(..), _) => {
                Some(cast(array, &DataType::Utf8)?.as_string::<i32>().clone())
            }
            (DataType::Float64, _) => Some(
                array
                    .as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.map(|v| float_text(&format!("{v:e}"), 15)))
                    .collect(),
            ),
            (DataType::Float32, _) => Some(
                array
                    .as_primitive::<Float32Type>()
                    .iter()
                    .map(|v| v.map(|v| float_text(&format!("{v:e}"), 6)))
                    .collect(),
            ),
            (DataType::Timestamp(_, None), _) => Some(
                cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?
                    .as_primitive::<TimestampMicrosecondType>()
                    .iter()
                    .map(|v| {
                        let t = as_datetime::<TimestampMicrosecondType>(v?)?;
                        Some(clock_text(t.format("%Y-%m-%d %H:%M:%S"), t.nanosecond()))
                    })
                    .collect(),
            ),
            (DataType::Time32(_) | DataType::Time64(_), _) => Some(
                cast(array, &DataType::Time64(TimeUnit::Microsecond))?
                    .as_primitive::<Time64MicrosecondType>()
                    .iter()
                    .map(|v| {
                        let t = as_time::<Time64MicrosecondType>(v?)?;
                        Some(clock_text(t.format("%H:%M:%S"), t.nanosecond()))
                    })
                    .collect(),
            ),
            (DataType::Duration(_), _) => {
                let nanos = cast(array, &DataType::Duration(TimeUnit::Nanosecond))?;
                Some(
                    nanos
                        .as_primitive::<DurationNanosecondType>()
                        .iter()
                        .map(|v| v.map(duration_text))
                        .collect(),
                )
            }
            (DataType::Interval(IntervalUnit::MonthDayNano), _) => Some(
                array
                    .as_primitive::<IntervalMonthDayNanoType>()
                    .iter()
                    .map(|v| v.map(|v| interval_text(v.months, i64::from(v.days), v.nanoseconds)))
                    .collect(),
            ),
            _ => None,
        };
        match as_text {
            Some(strings) => {
                fields.push(Arc::new(Field::new(
                    field.name(),
                    DataType::Utf8,
                    field.is_nullable(),
                )));
                columns.push(Arc::new(strings) as Arc<dyn Array>);
            }
            None => {
                fields.push(Arc::new(
                    field
                        .as_ref()
                        .clone()
                        .with_data_type(array.data_type().clone()),
                ));
                columns.push(array.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::Internal(format!("could not encode a value: {e}")).into())
}

/// The type a result column is described with where arrow-pg's would be
/// wrong: OIDs (see [`crate::oid_types`]), `character(n)` and `character
/// varying(n)` (which Arrow holds as plain strings).
fn result_type(field: &Field) -> Option<pgwire::api::Type> {
    match field.metadata().get(VECTOR).map(String::as_str) {
        Some("int2vector") => return Some(pgwire::api::Type::INT2_VECTOR),
        Some(_) => return Some(pgwire::api::Type::OID_VECTOR),
        None => {}
    }
    match SizedText::of(field) {
        Some(SizedText { padded: true, .. }) => Some(pgwire::api::Type::BPCHAR),
        Some(SizedText { padded: false, .. }) => Some(pgwire::api::Type::VARCHAR),
        None => crate::oid_types::result_type(field),
    }
}

/// `produced` (the schema of a result's batches) with the field metadata
/// the encoder reads taken from `plan`, which still has it: DataFusion
/// drops it where a value passes through an operator or a plan is sent to
/// an executor. A quotient's scale is kept where the type is the planned
/// one; a sized text type where the column holds strings, and also where
/// the values are a marked column's (see [`crate::sized_text::result_type`]).
pub(crate) fn display_metadata(plan: &LogicalPlan, produced: Schema) -> Schema {
    let planned = plan.schema();
    if planned.fields().len() != produced.fields().len() {
        return produced;
    }
    let fields: Vec<Field> = produced
        .fields()
        .iter()
        .zip(planned.fields())
        .enumerate()
        .map(|(index, (field, planned))| {
            let mut field = field.as_ref().clone();
            for key in [MIN_DISPLAY_SCALE, VECTOR] {
                if let Some(value) = planned.metadata().get(key)
                    && field.data_type() == planned.data_type()
                {
                    let mut metadata = field.metadata().clone();
                    metadata.insert(key.to_string(), value.clone());
                    field = field.with_metadata(metadata);
                }
            }
            match crate::sized_text::result_type(plan, index) {
                Some(sized) => sized.mark(field),
                None => field,
            }
        })
        .collect();
    Schema::new_with_metadata(fields, produced.metadata().clone())
}

/// A time of day written to the second (`whole`), then its fraction as
/// PostgreSQL writes it.
fn clock_text(whole: impl std::fmt::Display, nanos: u32) -> String {
    format!("{whole}{}", fraction_text(nanos))
}

/// The fraction of a second as PostgreSQL writes it after the seconds:
/// microseconds without their trailing zeros (`.5`, `.000123`), nothing
/// for none.
fn fraction_text(nanos: u32) -> String {
    let micros = nanos.min(999_999_999) / 1000;
    if micros == 0 {
        return String::new();
    }
    format!(".{micros:06}").trim_end_matches('0').to_string()
}

/// A duration (a timestamp minus a timestamp) as PostgreSQL writes the
/// interval it makes: whole days, then the time (`30 days 14:00:00`);
/// pgwire wrote hours only (`734:00:00`).
fn duration_text(nanos: i64) -> String {
    const NANOS_PER_DAY: i64 = 86_400_000_000_000;
    interval_text(0, nanos / NANOS_PER_DAY, nanos % NANOS_PER_DAY)
}

/// An interval as PostgreSQL writes it (`IntervalStyle` postgres): years,
/// months and days that are not zero, then the time if it is not zero or
/// nothing came before it (`1 year 2 mons -3 days 04:05:06.5`,
/// `-1 days -02:30:00`, `00:00:00`); pgwire wrote six fraction digits.
fn interval_text(months: i32, days: i64, nanos: i64) -> String {
    let mut parts = Vec::new();
    let mut unit = |n: i64, name: &str| {
        if n != 0 {
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
        }
    };
    unit(i64::from(months / 12), "year");
    unit(i64::from(months % 12), "mon");
    unit(days, "day");
    if nanos != 0 || parts.is_empty() {
        let sign = if nanos < 0 { "-" } else { "" };
        let nanos = nanos.unsigned_abs();
        let seconds = nanos / 1_000_000_000;
        parts.push(format!(
            "{sign}{:02}:{:02}:{:02}{}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60,
            fraction_text((nanos % 1_000_000_000) as u32)
        ));
    }
    parts.join(" ")
}

/// PostgreSQL's text for a float given in Rust's shortest scientific form
/// (`{:e}`: the fewest digits that read back as the same value), as
/// `float8out` and `float4out` write it: positional unless the decimal
/// exponent is below -4 or at least `precision` (15 for double precision,
/// 6 for real), then `d.ddde+XX` with at least two exponent digits.
fn float_text(shortest: &str, precision: i32) -> String {
    match shortest {
        "inf" => return "Infinity".into(),
        "-inf" => return "-Infinity".into(),
        "NaN" => return "NaN".into(),
        _ => {}
    }
    let (mantissa, exponent) = shortest.split_once('e').unwrap_or((shortest, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::from(sign);
    if exponent < -4 || exponent >= precision {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        out.push_str(&format!("e{exponent_sign}{:02}", exponent.abs()));
    } else if exponent < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
        out.push_str(&digits);
    } else {
        let whole = exponent as usize + 1;
        if digits.len() <= whole {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', whole - digits.len()));
        } else {
            out.push_str(&digits[..whole]);
            out.push('.');
            out.push_str(&digits[whole..]);
        }
    }
    out
}

fn bridge_error(e: pgwire041::error::PgWireError) -> PgWireError {
    Error::Internal(format!("could not encode a value: {e}")).into()
}

#[cfg(test)]
mod tests {
    use super::{duration_text, float_text, interval_text};

    // As PostgreSQL 15 writes `timestamp - timestamp`.
    #[test]
    fn durations_are_written_as_postgresql_writes_them() {
        const HOUR: i64 = 3_600_000_000_000;
        assert_eq!(duration_text(734 * HOUR), "30 days 14:00:00");
        assert_eq!(duration_text(-734 * HOUR), "-30 days -14:00:00");
        assert_eq!(duration_text(24 * HOUR), "1 day");
        assert_eq!(duration_text(0), "00:00:00");
        assert_eq!(duration_text(1_500_000_000), "00:00:01.5");
        assert_eq!(duration_text(-HOUR / 2), "-00:30:00");
        assert_eq!(
            interval_text(14, 1, 4 * HOUR + 5 * 60_000_000_000 + 6_500_000_000),
            "1 year 2 mons 1 day 04:05:06.5"
        );
        assert_eq!(interval_text(-25, -3, 0), "-2 years -1 mons -3 days");
    }

    fn double(v: f64) -> String {
        float_text(&format!("{v:e}"), 15)
    }

    fn real(v: f32) -> String {
        float_text(&format!("{v:e}"), 6)
    }

    #[test]
    fn floats_are_written_as_postgresql_writes_them() {
        // Each pair as PostgreSQL 16 prints it (extra_float_digits = 1).
        for (value, text) in [
            (12.0, "12"),
            (1.5, "1.5"),
            (-0.25, "-0.25"),
            (0.0, "0"),
            (-0.0, "-0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e20, "1e+20"),
            (1e-7, "1e-07"),
            (0.0001, "0.0001"),
            (0.00001234, "1.234e-05"),
            (123456789012345.0, "123456789012345"),
            (1234567890123456.0, "1.234567890123456e+15"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(double(value), text, "{value:e}");
        }
        for (value, text) in [
            (0.1f32, "0.1"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (f32::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(real(value), text, "{value:e}");
        }
    }
}
