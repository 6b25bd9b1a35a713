//! `COPY ... FROM STDIN` and `COPY ... TO STDOUT`.
//!
//! Incoming data is split into fields by Arrow's CSV decoder (incrementally, as
//! `CopyData` messages arrive), every field read as text, and each column then
//! converted to the table's type with Arrow's cast kernel — the same rules
//! PostgreSQL's input functions follow for the common types (`t`/`f`,
//! ISO dates and timestamps, decimals). Rows are appended only when the client
//! ends the copy and every row converted: a bad row appends nothing.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::csv::reader::{Decoder, ReaderBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::FormatOptions;
use datafusion::catalog::TableProvider;
use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption};

use crate::encode::CopyOutFormat;
use crate::{Error, Result};

/// The options of one `COPY` statement, with PostgreSQL's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub csv: bool,
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
        let mut csv = false;
        let (mut header, mut delimiter, mut null, mut quote, mut escape) =
            (false, None, None, None, None);
        for option in options {
            match option {
                CopyOption::Format(format) => match format.value.to_ascii_lowercase().as_str() {
                    "csv" => csv = true,
                    "text" => csv = false,
                    "binary" => return Err(unsupported("COPY in binary format")),
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
                CopyLegacyOption::Binary => return Err(unsupported("COPY in binary format")),
                other => return Err(unsupported(&format!("COPY option {other}"))),
            }
        }
        if header && !csv {
            return Err(unsupported("COPY HEADER in text format"));
        }
        let quote = quote.unwrap_or('"');
        Ok(Self {
            csv,
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
        if self.csv {
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
    decoder: Decoder,
    batches: Vec<RecordBatch>,
    /// The first error; later data is discarded until the client ends the copy.
    error: Option<Error>,
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
            decoder: builder.build_decoder(),
            batches: Vec::new(),
            error: None,
        })
    }

    /// Feeds one `CopyData` message.
    pub fn feed(&mut self, mut data: &[u8]) {
        if self.error.is_some() {
            return;
        }
        while !data.is_empty() {
            match self.decoder.decode(data) {
                Ok(read) => data = &data[read..],
                Err(e) => return self.fail(e.to_string()),
            }
            if self.decoder.capacity() == 0 {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        match self.decoder.flush() {
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
        if self.error.is_none() {
            // An empty read tells the decoder the input ended (a last line
            // without a newline is complete).
            if let Err(e) = self.decoder.decode(&[]) {
                self.fail(e.to_string());
            }
            self.flush();
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
    RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| Error::BadCopyData(format!("COPY {table}: {e}")))
}
