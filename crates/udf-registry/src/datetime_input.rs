//! Text to `timestamp` and `date` as PostgreSQL reads them.
//!
//! Arrow's cast reads ISO 8601 only, with seconds: `'2024-05-17 10:00'`,
//! `'May 17 2024'`, `'05/17/2024'` and `'2024-05-17 10:00+02'`, which
//! PostgreSQL reads, failed — in `WHERE t > '2024-05-17 10:00'` too. The
//! frontend's analyzer puts [`DateTimeInput`] in place of such casts; it
//! tries Arrow's cast first (every value it reads, it reads as PostgreSQL
//! does) and reads the values it refuses as PostgreSQL would: a time
//! without seconds, one-digit hours, `T` or a space between date and time,
//! `AM`/`PM`, month names (`May 17 2024`, `17 May 2024`, `May 17, 2024`),
//! `MM/DD/YYYY` (PostgreSQL's default `DateStyle`, MDY), `YYYY/MM/DD`, a
//! zone offset of hours only (`+02`), `epoch`, blanks around and between.
//! It travels in plans through Quiver's codecs.

use std::sync::Arc;

use crate::datetime_template::DATETIME_OUT_OF_RANGE;
use chrono::format::ParseErrorKind;
use chrono::{NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, StringArray, TimestampNanosecondArray,
};
use datafusion::arrow::compute::{CastOptions, cast, cast_with_options};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// In the message of a text that is no date or time (SQLSTATE 22007), as
/// PostgreSQL's: `invalid input syntax for type timestamp: "x"`.
pub const INVALID_DATETIME_SYNTAX: &str = "invalid input syntax for type ";

/// Arrow's cast as SQL's: a value it cannot read is an error, not a null.
const STRICT: CastOptions = CastOptions {
    safe: false,
    format_options: datafusion::arrow::util::display::FormatOptions::new(),
};

/// A cast of text to `target`, a `date` or a `timestamp`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateTimeInput {
    target: DataType,
    signature: Signature,
}

impl DateTimeInput {
    /// Whether casts to `target` are read this way.
    pub fn reads(target: &DataType) -> bool {
        matches!(target, DataType::Date32 | DataType::Timestamp(..))
    }

    /// The cast to `target` (see [`DateTimeInput::reads`]).
    pub fn udf(target: DataType) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::from(DateTimeInput {
            target,
            signature: Signature::any(1, Volatility::Immutable),
        }))
    }

    /// Its target written for the codec: `date`, or a timestamp's unit
    /// and zone (`ns`, `us|+00:00`).
    pub fn encode_target(&self) -> String {
        match &self.target {
            DataType::Timestamp(unit, zone) => {
                let unit = match unit {
                    TimeUnit::Second => "s",
                    TimeUnit::Millisecond => "ms",
                    TimeUnit::Microsecond => "us",
                    TimeUnit::Nanosecond => "ns",
                };
                match zone {
                    Some(zone) => format!("{unit}|{zone}"),
                    None => unit.to_string(),
                }
            }
            _ => "date".to_string(),
        }
    }

    /// The function whose [`DateTimeInput::encode_target`] is `encoded`.
    pub fn decode_target(encoded: &str) -> Option<Arc<ScalarUDF>> {
        let (unit, zone) = match encoded.split_once('|') {
            Some((unit, zone)) => (unit, Some(Arc::from(zone))),
            None => (encoded, None),
        };
        let unit = match unit {
            "date" => return Some(Self::udf(DataType::Date32)),
            "s" => TimeUnit::Second,
            "ms" => TimeUnit::Millisecond,
            "us" => TimeUnit::Microsecond,
            "ns" => TimeUnit::Nanosecond,
            _ => return None,
        };
        Some(Self::udf(DataType::Timestamp(unit, zone)))
    }

    fn type_name(&self) -> &'static str {
        match &self.target {
            DataType::Date32 => "date",
            DataType::Timestamp(_, None) => "timestamp",
            _ => "timestamp with time zone",
        }
    }

    /// The value of `text`, PostgreSQL's way: nanoseconds since the epoch
    /// in UTC (days for a date).
    fn read(&self, text: &str) -> Result<i64> {
        let (local, offset) = read_datetime(text).map_err(|out_of_range| {
            DataFusionError::Execution(if out_of_range {
                format!("{DATETIME_OUT_OF_RANGE}: \"{text}\"")
            } else {
                format!("{INVALID_DATETIME_SYNTAX}{}: \"{text}\"", self.type_name())
            })
        })?;
        if self.target == DataType::Date32 {
            return Ok((local.date() - NaiveDate::default()).num_days());
        }
        // A zone given is taken off, as Arrow's cast does for every
        // timestamp (Quiver's `timestamptz` has no zone of its own: UTC).
        local
            .checked_sub_signed(chrono::Duration::seconds(i64::from(offset.unwrap_or(0))))
            .and_then(|utc| utc.and_utc().timestamp_nanos_opt())
            .ok_or_else(|| {
                DataFusionError::Execution(format!("{DATETIME_OUT_OF_RANGE}: \"{text}\""))
            })
    }
}

impl ScalarUDFImpl for DateTimeInput {
    fn name(&self) -> &str {
        "quiver_datetime_input"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Named as the cast it replaces.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        named_as_argument(self.name(), args)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.target.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args.as_slice(), [ColumnarValue::Scalar(_)]);
        let [value] = args.args.as_slice() else {
            return exec_err!("{} takes one argument", self.name());
        };
        let values = value.to_array(args.number_rows)?;
        let result = match cast_with_options(&values, &self.target, &STRICT) {
            Ok(cast) => cast,
            // Some value Arrow does not read: each, PostgreSQL's way.
            Err(_) => self.read_each(&values)?,
        };
        if scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

impl DateTimeInput {
    fn read_each(&self, values: &ArrayRef) -> Result<ArrayRef> {
        let text = cast(values, &DataType::Utf8)?;
        let text: &StringArray = text.as_string::<i32>();
        let one = |value: &str| -> Result<i64> {
            match self.read(value) {
                Ok(v) => Ok(v),
                // What Arrow reads and the forms above do not (RFC 3339
                // with a named zone, say): Arrow's answer.
                Err(e) => {
                    let single: ArrayRef = Arc::new(StringArray::from(vec![value]));
                    let target = match &self.target {
                        DataType::Timestamp(_, zone) => {
                            DataType::Timestamp(TimeUnit::Nanosecond, zone.clone())
                        }
                        other => other.clone(),
                    };
                    let Ok(cast) = cast_with_options(&single, &target, &STRICT) else {
                        return Err(e);
                    };
                    Ok(match cast.data_type() {
                        DataType::Date32 => i64::from(
                            cast.as_primitive::<datafusion::arrow::datatypes::Date32Type>()
                                .value(0),
                        ),
                        _ => cast
                            .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>()
                            .value(0),
                    })
                }
            }
        };
        let read: Vec<Option<i64>> = text
            .iter()
            .map(|value| value.map(one).transpose())
            .collect::<Result<_>>()?;
        let array: ArrayRef = match &self.target {
            DataType::Date32 => Arc::new(
                read.into_iter()
                    .map(|v| v.map(|days| days as i32))
                    .collect::<Date32Array>(),
            ),
            DataType::Timestamp(_, zone) => Arc::new(
                read.into_iter()
                    .collect::<TimestampNanosecondArray>()
                    .with_timezone_opt(zone.clone()),
            ),
            other => return exec_err!("cannot read text as {other}"),
        };
        Ok(cast(&array, &self.target)?)
    }
}

/// The name of a one-argument function that stands in for an operation
/// whose name is its argument's (a cast): the argument's, so that the
/// columns a plan's nodes refer to by name keep their names.
pub(crate) fn named_as_argument(function: &str, args: &[Expr]) -> Result<String> {
    let [arg] = args else {
        return exec_err!("{function} takes one argument");
    };
    Ok(arg.schema_name().to_string())
}

/// Dates PostgreSQL reads (with its default `DateStyle`, ISO, MDY).
const DATES: &[&str] = &[
    "%Y-%m-%d",
    "%m/%d/%Y",
    "%Y/%m/%d",
    "%Y%m%d",
    "%B %d %Y",
    "%b %d %Y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%d %B %Y",
    "%d %b %Y",
    "%d-%b-%Y",
    "%Y-%b-%d",
];

/// Times after a date, and none.
const TIMES: &[&str] = &[
    "",
    " %H:%M",
    " %H:%M:%S",
    " %H:%M:%S%.f",
    "T%H:%M",
    "T%H:%M:%S",
    "T%H:%M:%S%.f",
    " %I:%M %p",
    " %I:%M:%S %p",
    " %I:%M:%S%.f %p",
    " %I %p",
];

/// `text` as a local date and time, and the zone offset it names (seconds
/// east of UTC); `Err(true)` for a date or time that does not exist, as
/// February 30th, `Err(false)` for text that is no date.
fn read_datetime(text: &str) -> std::result::Result<(NaiveDateTime, Option<i32>), bool> {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.eq_ignore_ascii_case("epoch") {
        return Ok((NaiveDateTime::default(), Some(0)));
    }
    let (text, offset) = split_zone(&text);
    let mut out_of_range = false;
    for date in DATES {
        for time in TIMES {
            let format = format!("{date}{time}");
            let parsed = if time.is_empty() {
                NaiveDate::parse_from_str(text, &format).map(|d| d.and_time(chrono::NaiveTime::MIN))
            } else {
                NaiveDateTime::parse_from_str(text, &format)
            };
            match parsed {
                Ok(parsed) => return Ok((parsed, offset)),
                Err(e)
                    if matches!(
                        e.kind(),
                        ParseErrorKind::OutOfRange | ParseErrorKind::Impossible
                    ) =>
                {
                    out_of_range = true
                }
                Err(_) => {}
            }
        }
    }
    Err(out_of_range)
}

/// `text` without the zone at its end (`+02`, `-05:30`, `+0530`, `Z`,
/// `UTC`), and that zone's offset in seconds east of UTC.
fn split_zone(text: &str) -> (&str, Option<i32>) {
    for suffix in [" UTC", "UTC", "Z", "z", " GMT"] {
        if let Some(rest) = text.strip_suffix(suffix)
            && rest.contains(':')
        {
            return (rest.trim_end(), Some(0));
        }
    }
    let Some(at) = text.rfind(['+', '-']) else {
        return (text, None);
    };
    let (rest, zone) = (&text[..at], &text[at + 1..]);
    if !rest.contains(':') {
        return (text, None);
    }
    let digits: String = zone.chars().filter(char::is_ascii_digit).collect();
    let valid = !zone.is_empty()
        && zone.chars().all(|c| c.is_ascii_digit() || c == ':')
        && matches!(digits.len(), 1 | 2 | 4);
    if !valid {
        return (text, None);
    }
    let (hours, minutes) = if digits.len() == 4 {
        (&digits[..2], &digits[2..])
    } else {
        (digits.as_str(), "0")
    };
    let (Ok(hours), Ok(minutes)) = (hours.parse::<i32>(), minutes.parse::<i32>()) else {
        return (text, None);
    };
    let sign = if text.as_bytes()[at] == b'-' { -1 } else { 1 };
    (rest.trim_end(), Some(sign * (hours * 3600 + minutes * 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    // As PostgreSQL 15 reads them.
    #[test]
    fn reads_what_postgresql_reads() {
        for (text, expected) in [
            ("2024-05-17 10:00", "2024-05-17 10:00:00"),
            ("2024-05-17T10:00", "2024-05-17 10:00:00"),
            ("May 17 2024", "2024-05-17 00:00:00"),
            ("17 May 2024 10:00", "2024-05-17 10:00:00"),
            ("05/17/2024", "2024-05-17 00:00:00"),
            ("2024-05-17 1:02:03", "2024-05-17 01:02:03"),
            ("  2024-05-17   10:00:00 ", "2024-05-17 10:00:00"),
            ("May 17, 2024 3:04 PM", "2024-05-17 15:04:00"),
        ] {
            assert_eq!(read_datetime(text).unwrap().0, at(expected), "{text}");
        }
        assert_eq!(
            read_datetime("2024-05-17 10:00+02").unwrap(),
            (at("2024-05-17 10:00:00"), Some(7200))
        );
        assert_eq!(
            read_datetime("2024-05-17 10:00:00-05:30").unwrap(),
            (at("2024-05-17 10:00:00"), Some(-19800))
        );
        assert_eq!(read_datetime("2024-02-30"), Err(true));
        assert_eq!(read_datetime("yesterday-ish"), Err(false));
    }
}
