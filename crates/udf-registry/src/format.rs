//! `format(formatstr, ...)`: PostgreSQL's `sprintf`-like formatting, with
//! `%s` (a value as text; NULL as nothing), `%I` (an identifier, quoted when
//! it must be), `%L` (a literal, quoted; NULL as `NULL`) and `%%`, each with
//! an optional argument position (`%2$s`), `-` flag and width (a number,
//! `*` or `*n$`). The frontend registers it; it travels in plans through
//! Quiver's codecs, as `json_build_object` does.
//!
//! Values are written as PostgreSQL writes their text: booleans `t`/`f`,
//! timestamps with a space before the time; other types as Arrow casts
//! them to text.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// In each of `format()`'s errors about its format string or arguments
/// (SQLSTATE 22023, invalid parameter value), which say what PostgreSQL's
/// say.
pub const FORMAT_ERROR: &str = "format()";

/// `%I` of NULL (SQLSTATE 22004).
pub const NULL_IDENTIFIER: &str = "null values cannot be formatted as an SQL identifier";

/// `format`: a format string and any values.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Format {
    signature: Signature,
}

impl Format {
    /// The one instance.
    pub fn udf() -> Arc<ScalarUDF> {
        static FUNCTION: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| {
            Arc::new(ScalarUDF::from(Format {
                signature: Signature::variadic_any(Volatility::Stable),
            }))
        });
        FUNCTION.clone()
    }
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some((format, values)) = arrays.split_first() else {
            return Err(DataFusionError::Plan(
                "function format() requires at least one argument".into(),
            ));
        };
        let format = cast(format, &DataType::Utf8)?;
        let format = format
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| DataFusionError::Internal("format string as text".into()))?;
        let values = values.iter().map(text_of).collect::<Result<Vec<_>>>()?;
        let rows = (0..format.len())
            .map(|row| {
                if format.is_null(row) {
                    return Ok(None);
                }
                let args: Vec<Option<&str>> = values
                    .iter()
                    .map(|v| (!v.is_null(row)).then(|| v.value(row)))
                    .collect();
                format_row(format.value(row), &args)
                    .map(Some)
                    .map_err(DataFusionError::Execution)
            })
            .collect::<Result<StringArray>>()?;
        Ok(ColumnarValue::Array(Arc::new(rows) as ArrayRef))
    }
}

/// `values` as PostgreSQL writes them as text (see the module docs).
fn text_of(values: &ArrayRef) -> Result<StringArray> {
    let text = match values.data_type() {
        DataType::Boolean => {
            let booleans = values
                .as_any()
                .downcast_ref::<datafusion::arrow::array::BooleanArray>()
                .ok_or_else(|| DataFusionError::Internal("booleans".into()))?;
            return Ok(booleans
                .iter()
                .map(|b| b.map(|b| if b { "t" } else { "f" }))
                .collect());
        }
        DataType::Null => return Ok(StringArray::new_null(values.len())),
        _ => cast(values, &DataType::Utf8)?,
    };
    let text = text
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| DataFusionError::Internal("values as text".into()))?
        .clone();
    if matches!(values.data_type(), DataType::Timestamp(..)) {
        return Ok(text
            .iter()
            .map(|t| t.map(|t| t.replacen('T', " ", 1)))
            .collect());
    }
    Ok(text)
}

/// One row's `format(format, args...)`.
fn format_row(format: &str, args: &[Option<&str>]) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    // The argument the next specifier without a position takes.
    let mut next = 0usize;
    let unterminated = || "unterminated format() type specifier".to_string();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.next_if_eq(&'%').is_some() {
            out.push('%');
            continue;
        }
        // [n$][-][width|*|*n$]type
        let mut position = None;
        let digits = take_number(&mut chars);
        if let Some(n) = digits {
            if chars.next_if_eq(&'$').is_some() {
                position = Some(n);
            } else {
                // A width, not a position.
                let value = specifier(&mut chars, args, &mut next, None, false, Some(n))?;
                out.push_str(&value);
                continue;
            }
        }
        let mut left = chars.next_if_eq(&'-').is_some();
        let width = if chars.next_if_eq(&'*').is_some() {
            let index = match take_number(&mut chars) {
                Some(n) if chars.next_if_eq(&'$').is_some() => {
                    n.checked_sub(1).ok_or_else(|| {
                        "format() specifies argument 0, but arguments are numbered from 1"
                            .to_string()
                    })?
                }
                Some(_) => return Err(unterminated()),
                None => {
                    next += 1;
                    next - 1
                }
            };
            let width = args
                .get(index)
                .ok_or_else(|| "too few arguments for format()".to_string())?
                .map(|w| w.trim().parse::<i64>())
                .transpose()
                .map_err(|_| "a width in format() must be an integer".to_string())?
                .unwrap_or(0);
            // A negative width left-justifies, as the `-` flag does.
            left |= width < 0;
            usize::try_from(width.unsigned_abs()).ok()
        } else {
            take_number(&mut chars)
        };
        let value = specifier(&mut chars, args, &mut next, position, left, width)?;
        out.push_str(&value);
    }
    Ok(out)
}

/// The rest of a specifier, from its type on: the argument (at `position`,
/// from 1, or the next one) formatted and padded to `width`.
fn specifier(
    chars: &mut std::iter::Peekable<std::str::Chars>,
    args: &[Option<&str>],
    next: &mut usize,
    position: Option<usize>,
    left: bool,
    width: Option<usize>,
) -> std::result::Result<String, String> {
    let kind = chars
        .next()
        .ok_or_else(|| "unterminated format() type specifier".to_string())?;
    if !matches!(kind, 's' | 'I' | 'L') {
        return Err(format!("unrecognized format() type specifier \"{kind}\""));
    }
    let index = match position {
        Some(0) => {
            return Err(
                "format() specifies argument 0, but arguments are numbered from 1".to_string(),
            );
        }
        Some(n) => n - 1,
        None => *next,
    };
    *next = index + 1;
    let value = *args
        .get(index)
        .ok_or_else(|| "too few arguments for format()".to_string())?;
    let text = match (kind, value) {
        ('s', value) => value.unwrap_or_default().to_string(),
        ('I', Some(value)) => quote_ident(value),
        ('I', None) => return Err(NULL_IDENTIFIER.to_string()),
        (_, Some(value)) => quote_literal(value),
        (_, None) => "NULL".to_string(),
    };
    let pad = width.unwrap_or(0).saturating_sub(text.chars().count());
    Ok(match left {
        true => format!("{text}{}", " ".repeat(pad)),
        false => format!("{}{text}", " ".repeat(pad)),
    })
}

fn take_number(chars: &mut std::iter::Peekable<std::str::Chars>) -> Option<usize> {
    let mut number: Option<usize> = None;
    while let Some(d) = chars.next_if(char::is_ascii_digit) {
        let digit = d.to_digit(10).unwrap_or(0) as usize;
        number = Some(number.unwrap_or(0).saturating_mul(10).saturating_add(digit));
    }
    number
}

/// PostgreSQL's reserved key words, which an identifier must be quoted to be.
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "some",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// `name` as PostgreSQL's `quote_ident` writes it: as it is if it is a
/// lower-case name that is no reserved word, else in double quotes.
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !RESERVED.contains(&name);
    match plain {
        true => name.to_string(),
        false => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// `text` as PostgreSQL's `quote_literal` writes it: in single quotes, an
/// `E` before them when it has a backslash.
pub fn quote_literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    match text.contains('\\') {
        true => format!("E'{}'", quoted.replace('\\', "\\\\")),
        false => format!("'{quoted}'"),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::common::ScalarValue;

    use super::*;

    fn format(format: &str, args: &[Option<&str>]) -> std::result::Result<String, String> {
        format_row(format, args)
    }

    /// `format` of constant values, as the function computes it.
    fn apply(format: &str, args: &[ScalarValue]) -> Result<Option<String>> {
        let udf = Format::udf();
        let mut all = vec![ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            format.into(),
        )))];
        all.extend(args.iter().cloned().map(ColumnarValue::Scalar));
        let fields = all
            .iter()
            .map(|a| {
                Arc::new(datafusion::arrow::datatypes::Field::new(
                    "a",
                    a.data_type(),
                    true,
                ))
            })
            .collect();
        let result = udf.invoke_with_args(ScalarFunctionArgs {
            args: all,
            arg_fields: fields,
            number_rows: 1,
            return_field: Arc::new(datafusion::arrow::datatypes::Field::new(
                "format",
                DataType::Utf8,
                true,
            )),
            config_options: Arc::default(),
        })?;
        let array = result.into_array(1)?;
        let text = array
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| DataFusionError::Internal("format's result".into()))?;
        Ok((!text.is_null(0)).then(|| text.value(0).to_string()))
    }

    #[test]
    fn specifiers_format_as_in_postgresql() {
        assert_eq!(format("Hello %s", &[Some("World")]).unwrap(), "Hello World");
        assert_eq!(
            format(
                "INSERT INTO %I VALUES(%L)",
                &[Some("Foo bar"), Some("O'Reilly")]
            )
            .unwrap(),
            "INSERT INTO \"Foo bar\" VALUES('O''Reilly')"
        );
        assert_eq!(
            format("%I.%I", &[Some("public"), Some("select")]).unwrap(),
            "public.\"select\""
        );
        assert_eq!(format("%L %s|", &[None, None]).unwrap(), "NULL |");
        assert_eq!(format("%L", &[Some("C:\\dir")]).unwrap(), "E'C:\\\\dir'");
        assert_eq!(
            format("|%10s|%-10s|", &[Some("foo"), Some("bar")]).unwrap(),
            "|       foo|bar       |"
        );
        assert_eq!(
            format("|%*s|", &[Some("5"), Some("ab")]).unwrap(),
            "|   ab|"
        );
        assert_eq!(
            format("%2$s %1$s %s", &[Some("a"), Some("b")]).unwrap(),
            "b a b"
        );
        assert_eq!(format("100%%", &[]).unwrap(), "100%");
        assert!(
            format("%s %s", &[Some("one")])
                .unwrap_err()
                .contains("too few arguments")
        );
        assert!(
            format("%x", &[Some("1")])
                .unwrap_err()
                .contains("unrecognized")
        );
        assert!(format("%", &[]).unwrap_err().contains("unterminated"));
        assert_eq!(format("%I", &[None]).unwrap_err(), NULL_IDENTIFIER);
    }

    #[test]
    fn values_are_written_as_postgresql_writes_them() {
        let text = apply(
            "%s %s %s",
            &[
                ScalarValue::Boolean(Some(true)),
                ScalarValue::Int64(Some(42)),
                ScalarValue::TimestampMicrosecond(Some(1_704_067_323_000_000), None),
            ],
        )
        .unwrap();
        assert_eq!(text.as_deref(), Some("t 42 2024-01-01 00:02:03"));
    }
}
