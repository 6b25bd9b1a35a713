//! `character(n)` and `character varying(n)`: text of at most `n`
//! characters, as PostgreSQL keeps them.
//!
//! Arrow has one string type, so the declared type travels as field
//! metadata ([`PG_TYPE`]) on a column of a table, and on the result of a
//! cast ([`SizedTextCast`], named as PostgreSQL's length-coercion functions
//! `bpchar` and `varchar`).
//!
//! PostgreSQL pads a `character(n)` value with spaces to `n` characters but
//! ignores those spaces wherever the value is compared, measured or turned
//! into `text` (`'ab'::char(4) = 'ab'`, `length(...)` is 2, `|| '|'` gives
//! `ab|`); only its output and a few functions (`octet_length`, `LIKE`,
//! `concat`) see them. Quiver therefore stores a `character(n)` value
//! without its trailing spaces, so that DataFusion's text operations give
//! PostgreSQL's answers as they are, and pads it to `n` where it is written
//! to a client and where those few functions read it.
//!
//! A value too long for its type is cut by an explicit cast and refused
//! (SQLSTATE 22001) when it is stored, unless all it loses is spaces.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

/// Field metadata naming a text column's declared PostgreSQL type, as
/// PostgreSQL's `format_type` writes it: `character(4)`, `character
/// varying(3)`.
pub const PG_TYPE: &str = "quiver.pg_type";

/// The start of the message of a value too long for its column (SQLSTATE
/// 22001).
pub const VALUE_TOO_LONG: &str = "value too long for type";

/// The longest length a sized text type may declare (PostgreSQL's).
pub const MAX_LENGTH: usize = 10_485_760;

/// A text type with a length: `character(n)` (padded) or `character
/// varying(n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SizedText {
    /// `character(n)`: padded with spaces to `length`.
    pub padded: bool,
    /// At most this many characters (at least 1).
    pub length: usize,
}

impl SizedText {
    /// The sized type `field` is declared with, if it is a string column
    /// marked with one.
    pub fn of(field: &Field) -> Option<Self> {
        if !matches!(
            field.data_type(),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
        ) {
            return None;
        }
        let name = field.metadata().get(PG_TYPE)?;
        let (padded, rest) = if let Some(rest) = name.strip_prefix("character varying(") {
            (false, rest)
        } else {
            (true, name.strip_prefix("character(")?)
        };
        let length = rest.strip_suffix(')')?.parse().ok().filter(|n| *n > 0)?;
        Some(Self { padded, length })
    }

    /// PostgreSQL's name of the type.
    pub fn name(&self) -> String {
        let base = if self.padded {
            "character"
        } else {
            "character varying"
        };
        format!("{base}({})", self.length)
    }

    /// `field` marked as of this type.
    pub fn mark(&self, field: Field) -> Field {
        let mut metadata = field.metadata().clone();
        metadata.insert(PG_TYPE.to_string(), self.name());
        field.with_metadata(metadata)
    }

    /// `value` as this type keeps it: at most `length` characters, and a
    /// padded type's without trailing spaces. An explicit cast cuts a longer
    /// value; storing one fails unless only spaces are cut.
    pub fn coerce<'a>(&self, value: &'a str, explicit: bool) -> Result<&'a str> {
        let kept = match value.char_indices().nth(self.length) {
            None => value,
            Some((end, _)) if explicit || value[end..].bytes().all(|b| b == b' ') => &value[..end],
            Some(_) => return exec_err!("{VALUE_TOO_LONG} {}", self.name()),
        };
        Ok(if self.padded {
            kept.trim_end_matches(' ')
        } else {
            kept
        })
    }

    /// Each value of a string array coerced ([`SizedText::coerce`]).
    pub fn coerce_array(&self, values: &ArrayRef, explicit: bool) -> Result<ArrayRef> {
        fn each<'a>(
            values: impl Iterator<Item = Option<&'a str>>,
            coerce: impl Fn(&'a str) -> Result<&'a str>,
        ) -> Result<StringArray> {
            values.map(|v| v.map(&coerce).transpose()).collect()
        }
        let coerce = |v| self.coerce(v, explicit);
        let strings = match values.data_type() {
            DataType::Utf8 => each(values.as_string::<i32>().iter(), coerce)?,
            DataType::LargeUtf8 => each(values.as_string::<i64>().iter(), coerce)?,
            DataType::Utf8View => each(values.as_string_view().iter(), coerce)?,
            other => return exec_err!("{} holds text, not {other}", self.name()),
        };
        Ok(Arc::new(strings))
    }
}

/// `bpchar(text, n, explicit)` and `varchar(text, n, explicit)`: a value
/// as `character(n)` or `character varying(n)` keeps it (see
/// [`SizedText::coerce`]); the result column is marked with the type.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SizedTextCast {
    padded: bool,
    signature: Signature,
}

impl SizedTextCast {
    /// The function for `character(n)` (`padded`) or `character varying(n)`.
    pub fn udf(padded: bool) -> Arc<ScalarUDF> {
        static FUNCTIONS: LazyLock<[Arc<ScalarUDF>; 2]> = LazyLock::new(|| {
            [false, true].map(|padded| {
                Arc::new(ScalarUDF::from(SizedTextCast {
                    padded,
                    signature: Signature::user_defined(Volatility::Immutable),
                }))
            })
        });
        FUNCTIONS[usize::from(padded)].clone()
    }

    /// Whether this is the `character(n)` function.
    pub fn padded(&self) -> bool {
        self.padded
    }

    fn sized(&self, length: Option<&ScalarValue>) -> Result<SizedText> {
        let length = match length.map(|n| n.cast_to(&DataType::Int64)) {
            Some(Ok(ScalarValue::Int64(Some(n)))) => n,
            _ => return plan_err!("{} takes a constant length", self.name()),
        };
        match usize::try_from(length) {
            Ok(length) if (1..=MAX_LENGTH).contains(&length) => Ok(SizedText {
                padded: self.padded,
                length,
            }),
            _ => plan_err!(
                "length for type {} must be between 1 and {MAX_LENGTH}, not {length}",
                self.name()
            ),
        }
    }
}

impl ScalarUDFImpl for SizedTextCast {
    fn name(&self) -> &str {
        if self.padded { "bpchar" } else { "varchar" }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Text, and the length as the integer it is written as: a cast of the
    /// literal would hide its value from [`Self::return_field_from_args`].
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [_, length, _] if length.is_integer() => {
                Ok(vec![DataType::Utf8, length.clone(), DataType::Boolean])
            }
            _ => plan_err!(
                "{} takes text, a length and whether the cast is explicit",
                self.name()
            ),
        }
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let [value, _, _] = args.arg_fields else {
            return exec_err!("{} takes three arguments", self.name());
        };
        let sized = self.sized(args.scalar_arguments[1])?;
        Ok(Arc::new(sized.mark(Field::new(
            self.name(),
            DataType::Utf8,
            value.is_nullable(),
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value, length, explicit] = args.args.as_slice() else {
            return exec_err!("{} takes three arguments", self.name());
        };
        let (ColumnarValue::Scalar(length), ColumnarValue::Scalar(explicit)) = (length, explicit)
        else {
            return exec_err!("{} takes a constant length", self.name());
        };
        let sized = self.sized(Some(length))?;
        let explicit = matches!(explicit, ScalarValue::Boolean(Some(true)));
        let strings = sized.coerce_array(&value.to_array(args.number_rows)?, explicit)?;
        Ok(match value {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&strings, 0)?)
            }
            ColumnarValue::Array(_) => ColumnarValue::Array(strings),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAR4: SizedText = SizedText {
        padded: true,
        length: 4,
    };
    const VARCHAR3: SizedText = SizedText {
        padded: false,
        length: 3,
    };

    #[test]
    fn values_keep_postgresql_lengths() {
        assert_eq!(CHAR4.coerce("ab", false).unwrap(), "ab");
        assert_eq!(CHAR4.coerce("ab  ", false).unwrap(), "ab");
        assert_eq!(CHAR4.coerce("abcd   ", false).unwrap(), "abcd");
        assert_eq!(CHAR4.coerce("abcdef", true).unwrap(), "abcd");
        assert_eq!(CHAR4.coerce("ab cd", true).unwrap(), "ab c");
        assert_eq!(CHAR4.coerce("ééééé", true).unwrap(), "éééé");
        assert!(
            CHAR4
                .coerce("abcdef", false)
                .unwrap_err()
                .to_string()
                .contains("value too long for type character(4)")
        );
        assert_eq!(VARCHAR3.coerce("x  ", false).unwrap(), "x  ");
        assert_eq!(VARCHAR3.coerce("xy    ", false).unwrap(), "xy ");
        assert!(VARCHAR3.coerce("xyzw", false).is_err());
        assert_eq!(VARCHAR3.coerce("xyzw", true).unwrap(), "xyz");
    }

    #[test]
    fn types_round_trip_through_metadata() {
        for sized in [CHAR4, VARCHAR3] {
            let field = sized.mark(Field::new("c", DataType::Utf8, true));
            assert_eq!(SizedText::of(&field), Some(sized));
        }
        let number = CHAR4.mark(Field::new("c", DataType::Int32, true));
        assert_eq!(SizedText::of(&number), None);
    }
}
