//! `COPY ... FROM STDIN` and `COPY ... TO STDOUT`.
//!
//! Incoming text and CSV data is split into fields by Arrow's CSV decoder
//! (incrementally, as `CopyData` messages arrive), every field read as text,
//! and each column then converted to the table's type with Arrow's cast kernel
//! — the same rules PostgreSQL's input functions follow for the common types
//! (`t`/`f`, ISO dates and timestamps, decimals). Binary data (PostgreSQL's
//! `PGCOPY` format, which asyncpg's `copy_records_to_table` sends) is read
//! field by field with each column type's binary format. Rows are appended
//! only when the client ends the copy and every row converted: a bad row
//! appends nothing.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::csv::reader::{Decoder, ReaderBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::FormatOptions;
use datafusion::catalog::TableProvider;
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption};

use crate::encode::CopyOutFormat;
use crate::{Error, Result};

/// The options of one `COPY` statement, with PostgreSQL's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub csv: bool,
    /// PostgreSQL's binary format (`FORMAT binary`).
    pub binary: bool,
    pub header: bool,
    pub delimiter: char,
    pub null: String,
    pub quote: char,
    pub escape: char,
}

impl CopyOptions {
    /// Reads `WITH (...)` options and the pre-9.0 forms psql's `\copy` sends
    /// (`CSV HEADER`, `DELIMITER ','`, ...).
    pub fn parse(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<Self> {
        let (mut csv, mut binary) = (false, false);
        let (mut header, mut delimiter, mut null, mut quote, mut escape) =
            (false, None, None, None, None);
        for option in options {
            match option {
                CopyOption::Format(format) => match format.value.to_ascii_lowercase().as_str() {
                    "csv" => (csv, binary) = (true, false),
                    "text" => (csv, binary) = (false, false),
                    "binary" => (csv, binary) = (false, true),
                    other => {
                        return Err(Error::InvalidParameterValue(format!(
                            "COPY format \"{other}\" not recognized"
                        )));
                    }
                },
                CopyOption::Header(h) => header = *h,
                CopyOption::Delimiter(d) => delimiter = Some(*d),
                CopyOption::Null(n) => null = Some(n.clone()),
                CopyOption::Quote(q) => quote = Some(*q),
                CopyOption::Escape(e) => escape = Some(*e),
                CopyOption::Encoding(e)
                    if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
                other => return Err(unsupported(&format!("COPY option {other}"))),
            }
        }
        for option in legacy {
            match option {
                CopyLegacyOption::Csv(csv_options) => {
                    csv = true;
                    for o in csv_options {
                        match o {
                            CopyLegacyCsvOption::Header => header = true,
                            CopyLegacyCsvOption::Quote(q) => quote = Some(*q),
                            CopyLegacyCsvOption::Escape(e) => escape = Some(*e),
                            other => return Err(unsupported(&format!("COPY option {other}"))),
                        }
                    }
                }
                CopyLegacyOption::Header => header = true,
                CopyLegacyOption::Delimiter(d) => delimiter = Some(*d),
                CopyLegacyOption::Null(n) => null = Some(n.clone()),
                CopyLegacyOption::Binary => binary = true,
                other => return Err(unsupported(&format!("COPY option {other}"))),
            }
        }
        if header && !csv {
            return Err(unsupported("COPY HEADER in text or binary format"));
        }
        if binary && (delimiter.is_some() || null.is_some() || quote.is_some()) {
            return Err(Error::Syntax(
                "cannot specify DELIMITER, NULL or QUOTE in BINARY mode".into(),
            ));
        }
        let quote = quote.unwrap_or('"');
        Ok(Self {
            csv,
            binary,
            header,
            delimiter: delimiter.unwrap_or(if csv { ',' } else { '\t' }),
            null: null.unwrap_or_else(|| {
                if csv {
                    String::new()
                } else {
                    "\\N".to_string()
                }
            }),
            quote,
            escape: escape.unwrap_or(quote),
        })
    }

    /// How `COPY ... TO STDOUT` writes rows.
    pub fn out_format(&self) -> CopyOutFormat {
        if self.binary {
            CopyOutFormat::Binary
        } else if self.csv {
            CopyOutFormat::Csv {
                delimiter: self.delimiter.to_string(),
                quote: self.quote.to_string(),
                escape: self.escape.to_string(),
                null: self.null.clone(),
            }
        } else {
            CopyOutFormat::Text {
                delimiter: self.delimiter.to_string(),
                null: self.null.clone(),
            }
        }
    }

    /// The header line of `COPY ... TO STDOUT (HEADER)`.
    pub fn header_line(&self, schema: &Schema) -> Option<String> {
        self.header.then(|| {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            format!("{}\n", names.join(&self.delimiter.to_string()))
        })
    }
}

fn unsupported(what: &str) -> Error {
    Error::FeatureNotSupported(format!("{what} is not supported"))
}

fn single_byte(what: &str, c: char) -> Result<u8> {
    u8::try_from(c).ok().filter(u8::is_ascii).ok_or_else(|| {
        Error::InvalidParameterValue(format!("COPY {what} must be a single one-byte character"))
    })
}

/// A `COPY ... FROM STDIN` in progress.
pub struct CopyIn {
    /// The table rows are appended to.
    pub table: String,
    pub provider: Arc<dyn TableProvider>,
    /// Positions in the table schema of the columns the data carries.
    columns: Vec<usize>,
    input: Input,
    batches: Vec<RecordBatch>,
    /// The first error; later data is discarded until the client ends the copy.
    error: Option<Error>,
    /// Text or CSV: the data so far ends a line (or there is none).
    at_line_start: bool,
    /// Text or CSV: the end-of-data marker came; later data is ignored.
    ended: bool,
}

impl CopyIn {
    /// Prepares to read rows for `columns` (all columns when empty) of a table.
    pub fn new(
        table: String,
        provider: Arc<dyn TableProvider>,
        columns: &[String],
        options: &CopyOptions,
    ) -> Result<Self> {
        let schema = provider.schema();
        let columns = if columns.is_empty() {
            (0..schema.fields().len()).collect()
        } else {
            columns
                .iter()
                .map(|c| {
                    schema
                        .index_of(c)
                        .map_err(|_| Error::UndefinedColumn(c.clone()))
                })
                .collect::<Result<Vec<_>>>()?
        };
        if options.binary {
            let fields = columns.iter().map(|&i| schema.field(i).clone()).collect();
            return Ok(Self {
                table,
                provider,
                columns,
                input: Input::Binary(BinaryRows::new(fields)?),
                batches: Vec::new(),
                error: None,
                at_line_start: true,
                ended: false,
            });
        }
        // Every field is read as text; `finish` converts to the column types.
        let text_schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|&i| Field::new(schema.field(i).name(), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let null = regex::Regex::new(&format!("^{}$", regex::escape(&options.null)))
            .map_err(|e| Error::InvalidParameterValue(e.to_string()))?;
        let mut builder = ReaderBuilder::new(text_schema)
            .with_header(options.header)
            .with_delimiter(single_byte("delimiter", options.delimiter)?)
            .with_null_regex(null);
        builder = if options.csv {
            builder
                .with_quote(single_byte("quote", options.quote)?)
                .with_escape(single_byte("escape", options.escape)?)
        } else {
            // Text format has no quoting: a double quote is an ordinary character.
            builder.with_quote(0)
        };
        Ok(Self {
            table,
            provider,
            columns,
            input: Input::Text(Box::new(builder.build_decoder())),
            batches: Vec::new(),
            error: None,
            at_line_start: true,
            ended: false,
        })
    }

    /// Feeds one `CopyData` message.
    pub fn feed(&mut self, mut data: &[u8]) {
        if self.error.is_some() || self.ended {
            return;
        }
        if let Input::Binary(rows) = &mut self.input {
            let read = rows.feed(data, &mut self.batches);
            return read.unwrap_or_else(|e| self.fail(e));
        }
        (data, self.ended) = before_end_marker(data, self.at_line_start);
        if let Some(last) = data.last() {
            self.at_line_start = *last == b'\n';
        }
        while !data.is_empty() {
            let Input::Text(decoder) = &mut self.input else {
                return;
            };
            let read = decoder.decode(data);
            let full = decoder.capacity() == 0;
            match read {
                Ok(read) => data = &data[read..],
                Err(e) => return self.fail(e.to_string()),
            }
            if full {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        let Input::Text(decoder) = &mut self.input else {
            return;
        };
        match decoder.flush() {
            Ok(Some(batch)) => self.batches.push(batch),
            Ok(None) => {}
            Err(e) => self.fail(e.to_string()),
        }
    }

    fn fail(&mut self, message: String) {
        self.error.get_or_insert(Error::BadCopyData(format!(
            "COPY {}: {message}",
            self.table
        )));
    }

    /// Ends the input and converts every row to the table's types.
    pub fn finish(mut self) -> Result<(Arc<dyn TableProvider>, Vec<RecordBatch>)> {
        match &mut self.input {
            _ if self.error.is_some() => {}
            Input::Text(decoder) => {
                // An empty read tells the decoder the input ended (a last
                // line without a newline is complete).
                if let Err(e) = decoder.decode(&[]) {
                    self.fail(e.to_string());
                }
                self.flush();
            }
            Input::Binary(rows) => {
                if let Err(e) = rows.finish(&mut self.batches) {
                    self.fail(e);
                }
            }
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        let schema = self.provider.schema();
        let batches = self
            .batches
            .iter()
            .map(|batch| convert(&schema, &self.columns, batch, &self.table))
            .collect::<Result<Vec<_>>>()?;
        Ok((self.provider, batches))
    }
}

/// The part of `data` before PostgreSQL's end-of-data marker, a line
/// holding only `\.` (which psql sends after a script's inline data), and
/// whether the marker is in it; `at_line_start` says whether `data` begins
/// a line.
fn before_end_marker(data: &[u8], at_line_start: bool) -> (&[u8], bool) {
    let line_starts = at_line_start.then_some(0).into_iter().chain(
        data.iter()
            .enumerate()
            .filter(|(_, byte)| **byte == b'\n')
            .map(|(at, _)| at + 1),
    );
    for start in line_starts {
        if let Some(after) = data[start..].strip_prefix(b"\\.")
            && (after.is_empty() || after.starts_with(b"\n") || after.starts_with(b"\r\n"))
        {
            return (&data[..start], true);
        }
    }
    (data, false)
}

/// How the data of a `COPY ... FROM STDIN` is read.
enum Input {
    /// Text or CSV: split into text fields.
    Text(Box<Decoder>),
    /// PostgreSQL's binary format.
    Binary(BinaryRows),
}

/// Rows of `PGCOPY` data: a signature, flags and a header extension, then per
/// row a 16-bit field count and each field as a 32-bit length (-1: NULL) and
/// that many bytes in its type's binary format, then a field count of -1.
struct BinaryRows {
    /// The columns the data carries, with the wire type each is read as.
    fields: Vec<(Field, pgwire::api::Type)>,
    /// Received bytes not yet read (a row split across messages).
    pending: Vec<u8>,
    header_read: bool,
    ended: bool,
    /// Values read, by column, since the last batch.
    values: Vec<Vec<ScalarValue>>,
}

const PGCOPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
const ROWS_PER_BATCH: usize = 8192;

impl BinaryRows {
    fn new(fields: Vec<Field>) -> Result<Self> {
        let fields = fields
            .into_iter()
            .map(|field| {
                let wire = arrow_pg::datatypes::into_pg_type(field.data_type())
                    .map_err(|e| Error::FeatureNotSupported(e.to_string()))?;
                Ok((field, wire))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            values: vec![Vec::new(); fields.len()],
            fields,
            pending: Vec::new(),
            header_read: false,
            ended: false,
        })
    }

    /// Reads the complete rows of the data received so far.
    fn feed(
        &mut self,
        data: &[u8],
        batches: &mut Vec<RecordBatch>,
    ) -> std::result::Result<(), String> {
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(data);
        let mut at = 0;
        if !self.header_read {
            if pending.len() >= PGCOPY_SIGNATURE.len() && !pending.starts_with(PGCOPY_SIGNATURE) {
                return Err("COPY file signature not recognized".into());
            }
            let Some(extension) = read_i32(&pending, PGCOPY_SIGNATURE.len() + 4) else {
                self.pending = pending;
                return Ok(());
            };
            let extension = usize::try_from(extension).map_err(|_| "invalid COPY file header")?;
            at = PGCOPY_SIGNATURE.len() + 8 + extension;
            if pending.len() < at {
                self.pending = pending;
                return Ok(());
            }
            self.header_read = true;
        }
        while at < pending.len() {
            if self.ended {
                return Err("data after the end-of-data marker".into());
            }
            let Some(read) = self.row(&pending[at..])? else {
                break;
            };
            at += read;
            if self.rows() >= ROWS_PER_BATCH {
                batches.push(self.batch()?);
            }
        }
        pending.drain(..at);
        self.pending = pending;
        Ok(())
    }

    /// How many rows were read since the last batch.
    fn rows(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }

    /// Reads one row from the start of `data`: the bytes it took, or `None`
    /// when `data` does not hold all of it yet.
    fn row(&mut self, data: &[u8]) -> std::result::Result<Option<usize>, String> {
        let Some(count) = data.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]])) else {
            return Ok(None);
        };
        if count == -1 {
            self.ended = true;
            return Ok(Some(2));
        }
        if usize::try_from(count).ok() != Some(self.fields.len()) {
            return Err(format!(
                "row field count is {count}, expected {}",
                self.fields.len()
            ));
        }
        // Find every field's bytes before decoding any, so a partial row
        // leaves no values behind.
        let mut at = 2;
        let mut fields = Vec::with_capacity(self.fields.len());
        for _ in &self.fields {
            let Some(length) = read_i32(data, at) else {
                return Ok(None);
            };
            at += 4;
            if length < 0 {
                fields.push(None);
                continue;
            }
            let end = at + length as usize;
            let Some(bytes) = data.get(at..end) else {
                return Ok(None);
            };
            fields.push(Some(bytes));
            at = end;
        }
        for (((field, wire), values), bytes) in self.fields.iter().zip(&mut self.values).zip(fields)
        {
            let value = match bytes {
                None => ScalarValue::try_from(field.data_type()).map_err(|e| e.to_string())?,
                Some(bytes) => crate::params::binary(wire, bytes, field.data_type())
                    .map_err(|e| format!("column {}: {e}", field.name()))?,
            };
            values.push(value);
        }
        Ok(Some(at))
    }

    /// The values read since the last batch, as one.
    fn batch(&mut self) -> std::result::Result<RecordBatch, String> {
        let schema = Arc::new(Schema::new(
            self.fields
                .iter()
                .map(|(f, _)| f.clone())
                .collect::<Vec<_>>(),
        ));
        let columns = self
            .values
            .iter_mut()
            .zip(&self.fields)
            .map(|(values, (field, _))| {
                ScalarValue::iter_to_array(std::mem::take(values))
                    .or_else(|_| Ok(new_null_array(field.data_type(), 0)))
            })
            .collect::<std::result::Result<Vec<ArrayRef>, datafusion::error::DataFusionError>>()
            .map_err(|e| e.to_string())?;
        RecordBatch::try_new(schema, columns).map_err(|e| e.to_string())
    }

    /// The input ended: the last rows, which must be whole. As in
    /// PostgreSQL, the data may end without the trailer (ADBC's driver
    /// sends none), but not without the header or inside a row.
    fn finish(&mut self, batches: &mut Vec<RecordBatch>) -> std::result::Result<(), String> {
        if !self.header_read || !self.pending.is_empty() {
            return Err("unexpected EOF in COPY data".into());
        }
        if self.rows() > 0 {
            batches.push(self.batch()?);
        }
        Ok(())
    }
}

fn read_i32(data: &[u8], at: usize) -> Option<i32> {
    let bytes = data.get(at..at + 4)?;
    Some(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Casts text columns to `schema`'s types, filling absent columns with nulls.
fn convert(
    schema: &SchemaRef,
    columns: &[usize],
    batch: &RecordBatch,
    table: &str,
) -> Result<RecordBatch> {
    let options = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    let arrays = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| match columns.iter().position(|&c| c == i) {
            Some(position) => {
                cast_with_options(batch.column(position), field.data_type(), &options).map_err(
                    |e| Error::BadCopyData(format!("COPY {table}, column {}: {e}", field.name())),
                )
            }
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    crate::session::refuse_nulls(schema, &arrays, table)?;
    RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| Error::BadCopyData(format!("COPY {table}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::before_end_marker;

    #[test]
    fn data_ends_at_the_end_marker() {
        assert_eq!(
            before_end_marker(b"a\tb\n\\.\n", true),
            (&b"a\tb\n"[..], true)
        );
        assert_eq!(before_end_marker(b"\\.\r\n", true), (&b""[..], true));
        assert_eq!(before_end_marker(b"\\.", true), (&b""[..], true));
        // Not at the start of a line, or more on the line: data.
        assert_eq!(before_end_marker(b"\\.\n", false), (&b"\\.\n"[..], false));
        assert_eq!(
            before_end_marker(b"x\n\\.x\n", true),
            (&b"x\n\\.x\n"[..], false)
        );
    }
}
