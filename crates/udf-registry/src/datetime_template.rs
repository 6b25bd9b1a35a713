//! PostgreSQL's date/time templates: `to_char(ts, 'YYYY-MM-DD HH24:MI')`,
//! `to_date('17 May 2024', 'DD Mon YYYY')`, `to_timestamp(text, template)`.
//!
//! DataFusion's functions of these names take chrono's `strftime` formats
//! (`%Y-%m-%d`): given a PostgreSQL template, `to_char` answered with the
//! template itself and `to_date` failed. [`TemplateFunction`] takes their
//! place in the frontend and travels in plans through Quiver's codecs, as
//! `format` does; calls PostgreSQL has no template form of (`to_timestamp`
//! of a number, `to_date` of one argument) go to DataFusion's own.
//!
//! The patterns are PostgreSQL's (its manual, "Data Type Formatting
//! Functions"), with the `FM` (no padding), `FX`/`TM` (accepted, no effect)
//! prefixes and the `TH`/`th` suffix; text in double quotes is written as
//! it is, any other character too. Not supported: Roman numerals (`RM`),
//! `IDDD`, `SP`; `TZ` writes `UTC` or the offset, not a zone's abbreviation.

use std::sync::{Arc, LazyLock};

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, StringArray, TimestampNanosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, TimeUnit, TimestampMicrosecondType};
use datafusion::arrow::temporal_conversions::as_datetime_with_timezone;
use datafusion::common::config::ConfigOptions;
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::type_coercion::functions::fields_with_udf;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// In the message of a value that does not fit its template (SQLSTATE
/// 22007, invalid_datetime_format), as PostgreSQL's: `invalid value "x"
/// for "MM"`.
pub const INVALID_DATETIME_VALUE: &str = "invalid value ";

/// In the message of an hour read by `HH12` outside 1 to 12 (SQLSTATE
/// 22007, as PostgreSQL's).
pub const TWELVE_HOUR_CLOCK: &str = "is invalid for the 12-hour clock";

/// In the message of a date or time that does not exist (SQLSTATE 22008,
/// datetime_field_overflow), as PostgreSQL's.
pub const DATETIME_OUT_OF_RANGE: &str = "date/time field value out of range";

/// Which of the three functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    /// `to_char(date | timestamp, template)`.
    ToChar,
    /// `to_date(text, template)`.
    ToDate,
    /// `to_timestamp(text, template)`.
    ToTimestamp,
}

impl Template {
    const ALL: [Template; 3] = [Template::ToChar, Template::ToDate, Template::ToTimestamp];

    fn name(self) -> &'static str {
        match self {
            Template::ToChar => "to_char",
            Template::ToDate => "to_date",
            Template::ToTimestamp => "to_timestamp",
        }
    }

    /// DataFusion's function of the same name, configured by `config`.
    fn datafusion(self, config: &ConfigOptions) -> ScalarUDF {
        use datafusion::functions::datetime;
        let function = match self {
            Template::ToChar => datetime::to_char(),
            Template::ToDate => datetime::to_date(),
            Template::ToTimestamp => datetime::to_timestamp(config),
        };
        function
            .inner()
            .with_updated_config(config)
            .unwrap_or_else(|| function.as_ref().clone())
    }
}

/// `to_char`, `to_date` or `to_timestamp` with PostgreSQL's templates.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TemplateFunction {
    template: Template,
    /// DataFusion's function of the same name: the argument types outside
    /// PostgreSQL's template forms, and `to_timestamp`'s result type (it
    /// follows the session's time zone).
    datafusion: ScalarUDF,
    signature: Signature,
}

impl TemplateFunction {
    /// The function, for a session with the default configuration.
    pub fn udf(template: Template) -> Arc<ScalarUDF> {
        static FUNCTIONS: LazyLock<Vec<Arc<ScalarUDF>>> = LazyLock::new(|| {
            Template::ALL
                .iter()
                .map(|t| Arc::new(TemplateFunction::configured(*t, &ConfigOptions::default())))
                .collect()
        });
        // `ALL` lists the templates in their declared order.
        FUNCTIONS[template as usize].clone()
    }

    /// All three, as the frontend registers them.
    pub fn udfs() -> impl Iterator<Item = Arc<ScalarUDF>> {
        Template::ALL.into_iter().map(Self::udf)
    }

    fn configured(template: Template, config: &ConfigOptions) -> ScalarUDF {
        ScalarUDF::from(TemplateFunction {
            template,
            datafusion: template.datafusion(config),
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }

    /// Which function this is (for the codec).
    pub fn template(&self) -> Template {
        self.template
    }

    /// Whether arguments of these types take a PostgreSQL template: a value
    /// (a date or timestamp for `to_char`, text otherwise) and a text.
    fn templated(&self, arg_types: &[DataType]) -> bool {
        let [value, template] = arg_types else {
            return false;
        };
        let text = |t: &DataType| {
            matches!(
                t,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
            )
        };
        text(template)
            && match self.template {
                Template::ToChar => true,
                Template::ToDate | Template::ToTimestamp => text(value),
            }
    }
}

impl ScalarUDFImpl for TemplateFunction {
    fn name(&self) -> &str {
        self.template.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if !self.templated(arg_types) {
            return match self.template {
                // PostgreSQL's to_char takes no other arguments than a
                // value and a template; DataFusion's takes chrono formats.
                Template::ToChar => plan_err!(
                    "function to_char({}) does not exist",
                    arg_types
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                // Coerced as DataFusion's own function coerces them.
                _ => {
                    let fields: Vec<_> = arg_types
                        .iter()
                        .map(|t| Arc::new(Field::new("", t.clone(), true)))
                        .collect();
                    Ok(fields_with_udf(&fields, &self.datafusion)?
                        .iter()
                        .map(|f| f.data_type().clone())
                        .collect())
                }
            };
        }
        let value = match (&self.template, &arg_types[0]) {
            (
                Template::ToChar,
                t @ (DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)),
            ) => t.clone(),
            (Template::ToChar, DataType::Null) => DataType::Timestamp(TimeUnit::Microsecond, None),
            (Template::ToChar, other) => {
                return plan_err!(
                    "to_char of {other} is not supported: a date or a timestamp only (cast numbers to text)"
                );
            }
            _ => DataType::Utf8,
        };
        Ok(vec![value, DataType::Utf8])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match self.template {
            Template::ToChar => Ok(DataType::Utf8),
            Template::ToDate => Ok(DataType::Date32),
            Template::ToTimestamp => self.datafusion.return_type(arg_types),
        }
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        Some(Self::configured(self.template, config))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let types: Vec<DataType> = args.args.iter().map(ColumnarValue::data_type).collect();
        if !self.templated(&types) {
            return self.datafusion.invoke_with_args(args);
        }
        let rows = args.number_rows;
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let [value, template] = args.args.as_slice() else {
            return exec_err!("{} takes two arguments", self.name());
        };
        let value = value.to_array(rows)?;
        let templates = text(&template.to_array(rows)?)?;
        // Usually one template for every row: parsed once.
        let constant = match template {
            ColumnarValue::Scalar(s) if !s.is_null() => Some(parse_template(templates.value(0))),
            _ => None,
        };
        let template_of = |row: usize| -> Option<std::borrow::Cow<'_, [Node]>> {
            if templates.is_null(row) {
                return None;
            }
            Some(match &constant {
                Some(nodes) => std::borrow::Cow::Borrowed(nodes.as_slice()),
                None => std::borrow::Cow::Owned(parse_template(templates.value(row))),
            })
        };
        let result: ArrayRef = match self.template {
            Template::ToChar => {
                let times = date_times(&value)?;
                let out = (0..value.len())
                    .map(|row| match (&times[row], template_of(row)) {
                        (Some((time, offset)), Some(nodes)) => {
                            Ok(Some(format(&nodes, time, *offset)?))
                        }
                        _ => Ok(None),
                    })
                    .collect::<Result<StringArray>>()?;
                Arc::new(out)
            }
            Template::ToDate | Template::ToTimestamp => {
                let input = text(&value)?;
                let parsed = (0..input.len())
                    .map(|row| match template_of(row) {
                        Some(nodes) if !input.is_null(row) => {
                            parse(&nodes, input.value(row), self.template).map(Some)
                        }
                        _ => Ok(None),
                    })
                    .collect::<Result<Vec<_>>>()?;
                if self.template == Template::ToDate {
                    Arc::new(
                        parsed
                            .into_iter()
                            .map(|t| t.map(|t| days_since_epoch(t.date())))
                            .collect::<Date32Array>(),
                    )
                } else {
                    let DataType::Timestamp(_, zone) = self.datafusion.return_type(&types)? else {
                        return exec_err!("to_timestamp returns a timestamp");
                    };
                    let nanos = parsed
                        .into_iter()
                        .map(|t| {
                            t.map(|t| {
                                t.and_utc().timestamp_nanos_opt().ok_or_else(|| {
                                    DataFusionError::Execution(format!(
                                        "{DATETIME_OUT_OF_RANGE}: timestamp {t} is out of range"
                                    ))
                                })
                            })
                            .transpose()
                        })
                        .collect::<Result<TimestampNanosecondArray>>()?;
                    Arc::new(nanos.with_timezone_opt(zone))
                }
            }
        };
        if scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

fn text(values: &ArrayRef) -> Result<StringArray> {
    Ok(cast(values, &DataType::Utf8)?.as_string::<i32>().clone())
}

fn days_since_epoch(date: NaiveDate) -> i32 {
    (date - NaiveDate::default()).num_days() as i32
}

/// A local date and time, and its zone's offset from UTC in seconds for a
/// timestamp with a time zone.
type LocalTime = (NaiveDateTime, Option<i32>);

/// Each value as a [`LocalTime`].
fn date_times(values: &ArrayRef) -> Result<Vec<Option<LocalTime>>> {
    match values.data_type() {
        DataType::Timestamp(_, Some(zone)) => {
            let micros = cast(
                values,
                &DataType::Timestamp(TimeUnit::Microsecond, Some(zone.clone())),
            )?;
            let micros = micros.as_primitive::<TimestampMicrosecondType>();
            let zone: datafusion::arrow::array::timezone::Tz = zone.parse()?;
            Ok(micros
                .iter()
                .map(|v| {
                    let local = as_datetime_with_timezone::<TimestampMicrosecondType>(v?, zone)?;
                    let offset = chrono::Offset::fix(local.offset()).local_minus_utc();
                    Some((local.naive_local(), Some(offset)))
                })
                .collect())
        }
        _ => {
            let micros = cast(values, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            let micros = micros.as_primitive::<TimestampMicrosecondType>();
            Ok((0..micros.len())
                .map(|row| {
                    if micros.is_null(row) {
                        None
                    } else {
                        micros.value_as_datetime(row).map(|t| (t, None))
                    }
                })
                .collect())
        }
    }
}

/// Upper case, capitalized or lower case, as the pattern is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Upper,
    Capital,
    Lower,
}

impl Case {
    fn apply(self, word: &str) -> String {
        match self {
            Case::Upper => word.to_uppercase(),
            Case::Lower => word.to_lowercase(),
            Case::Capital => word.to_string(),
        }
    }
}

/// One template pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// `Y,YYY`.
    YearWithComma,
    /// `YYYY`, `YYY`, `YY`, `Y`: the last this many digits.
    Year(u8),
    /// `IYYY` ... `I`: of the ISO 8601 week-numbering year.
    IsoYear(u8),
    /// `CC`.
    Century,
    /// `Q`.
    Quarter,
    /// `MM`.
    Month,
    /// `MONTH`, `Month`, `month` (`abbreviated`: `MON`, `Mon`, `mon`).
    MonthName { case: Case, abbreviated: bool },
    /// `WW`: 1 for the year's first seven days.
    Week,
    /// `IW`.
    IsoWeek,
    /// `W`: 1 for the month's first seven days.
    WeekOfMonth,
    /// `DDD`.
    DayOfYear,
    /// `DD`.
    Day,
    /// `D`: 1 for Sunday.
    DayOfWeek,
    /// `ID`: 1 for Monday.
    IsoDayOfWeek,
    /// `DAY`, `Day`, `day` (`abbreviated`: `DY`, `Dy`, `dy`).
    DayName { case: Case, abbreviated: bool },
    /// `HH24`.
    Hour24,
    /// `HH12`, `HH`.
    Hour12,
    /// `MI`.
    Minute,
    /// `SS`.
    Second,
    /// `MS` (3), `US` (6), `FF1` ... `FF6`: that many digits of the second.
    Fraction(u8),
    /// `SSSS`, `SSSSS`.
    SecondsOfDay,
    /// `AM`, `PM`, `am`, `pm`, `A.M.`, ...
    Meridiem { case: Case, dots: bool },
    /// `AD`, `BC`, `ad`, `bc`, `A.D.`, ...
    Era { case: Case, dots: bool },
    /// `J`: the Julian day.
    Julian,
    /// `TZ`, `tz`.
    ZoneName(Case),
    /// `OF`.
    ZoneOffset,
    /// `TZH`.
    ZoneHours,
    /// `TZM`.
    ZoneMinutes,
}

/// The patterns as written, longest first where one begins another.
const PATTERNS: &[(&str, Part)] = {
    use Case::*;
    use Part::*;
    &[
        ("Y,YYY", YearWithComma),
        ("y,yyy", YearWithComma),
        ("SSSSS", SecondsOfDay),
        ("sssss", SecondsOfDay),
        (
            "MONTH",
            MonthName {
                case: Upper,
                abbreviated: false,
            },
        ),
        (
            "Month",
            MonthName {
                case: Capital,
                abbreviated: false,
            },
        ),
        (
            "month",
            MonthName {
                case: Lower,
                abbreviated: false,
            },
        ),
        (
            "A.M.",
            Meridiem {
                case: Upper,
                dots: true,
            },
        ),
        (
            "P.M.",
            Meridiem {
                case: Upper,
                dots: true,
            },
        ),
        (
            "a.m.",
            Meridiem {
                case: Lower,
                dots: true,
            },
        ),
        (
            "p.m.",
            Meridiem {
                case: Lower,
                dots: true,
            },
        ),
        (
            "A.D.",
            Era {
                case: Upper,
                dots: true,
            },
        ),
        (
            "B.C.",
            Era {
                case: Upper,
                dots: true,
            },
        ),
        (
            "a.d.",
            Era {
                case: Lower,
                dots: true,
            },
        ),
        (
            "b.c.",
            Era {
                case: Lower,
                dots: true,
            },
        ),
        ("YYYY", Year(4)),
        ("yyyy", Year(4)),
        ("IYYY", IsoYear(4)),
        ("iyyy", IsoYear(4)),
        ("HH24", Hour24),
        ("hh24", Hour24),
        ("HH12", Hour12),
        ("hh12", Hour12),
        ("SSSS", SecondsOfDay),
        ("ssss", SecondsOfDay),
        ("YYY", Year(3)),
        ("yyy", Year(3)),
        ("IYY", IsoYear(3)),
        ("iyy", IsoYear(3)),
        (
            "MON",
            MonthName {
                case: Upper,
                abbreviated: true,
            },
        ),
        (
            "Mon",
            MonthName {
                case: Capital,
                abbreviated: true,
            },
        ),
        (
            "mon",
            MonthName {
                case: Lower,
                abbreviated: true,
            },
        ),
        (
            "DAY",
            DayName {
                case: Upper,
                abbreviated: false,
            },
        ),
        (
            "Day",
            DayName {
                case: Capital,
                abbreviated: false,
            },
        ),
        (
            "day",
            DayName {
                case: Lower,
                abbreviated: false,
            },
        ),
        ("DDD", DayOfYear),
        ("ddd", DayOfYear),
        ("FF1", Fraction(1)),
        ("FF2", Fraction(2)),
        ("FF3", Fraction(3)),
        ("FF4", Fraction(4)),
        ("FF5", Fraction(5)),
        ("FF6", Fraction(6)),
        ("ff1", Fraction(1)),
        ("ff2", Fraction(2)),
        ("ff3", Fraction(3)),
        ("ff4", Fraction(4)),
        ("ff5", Fraction(5)),
        ("ff6", Fraction(6)),
        ("TZH", ZoneHours),
        ("tzh", ZoneHours),
        ("TZM", ZoneMinutes),
        ("tzm", ZoneMinutes),
        ("YY", Year(2)),
        ("yy", Year(2)),
        ("IY", IsoYear(2)),
        ("iy", IsoYear(2)),
        ("IW", IsoWeek),
        ("iw", IsoWeek),
        ("ID", IsoDayOfWeek),
        ("id", IsoDayOfWeek),
        ("CC", Century),
        ("cc", Century),
        ("MM", Month),
        ("mm", Month),
        ("MI", Minute),
        ("mi", Minute),
        ("MS", Fraction(3)),
        ("ms", Fraction(3)),
        ("US", Fraction(6)),
        ("us", Fraction(6)),
        ("WW", Week),
        ("ww", Week),
        (
            "DY",
            DayName {
                case: Upper,
                abbreviated: true,
            },
        ),
        (
            "Dy",
            DayName {
                case: Capital,
                abbreviated: true,
            },
        ),
        (
            "dy",
            DayName {
                case: Lower,
                abbreviated: true,
            },
        ),
        ("DD", Day),
        ("dd", Day),
        ("HH", Hour12),
        ("hh", Hour12),
        ("SS", Second),
        ("ss", Second),
        (
            "AM",
            Meridiem {
                case: Upper,
                dots: false,
            },
        ),
        (
            "PM",
            Meridiem {
                case: Upper,
                dots: false,
            },
        ),
        (
            "am",
            Meridiem {
                case: Lower,
                dots: false,
            },
        ),
        (
            "pm",
            Meridiem {
                case: Lower,
                dots: false,
            },
        ),
        (
            "AD",
            Era {
                case: Upper,
                dots: false,
            },
        ),
        (
            "BC",
            Era {
                case: Upper,
                dots: false,
            },
        ),
        (
            "ad",
            Era {
                case: Lower,
                dots: false,
            },
        ),
        (
            "bc",
            Era {
                case: Lower,
                dots: false,
            },
        ),
        ("TZ", ZoneName(Upper)),
        ("tz", ZoneName(Lower)),
        ("OF", ZoneOffset),
        ("of", ZoneOffset),
        ("Y", Year(1)),
        ("y", Year(1)),
        ("I", IsoYear(1)),
        ("i", IsoYear(1)),
        ("Q", Quarter),
        ("q", Quarter),
        ("W", WeekOfMonth),
        ("w", WeekOfMonth),
        ("D", DayOfWeek),
        ("d", DayOfWeek),
        ("J", Julian),
        ("j", Julian),
    ]
};

/// A parsed template: patterns and the text between them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Pattern {
        field: Part,
        /// As written, for error messages.
        written: &'static str,
        /// `FM`: no padding.
        fill: bool,
        /// `TH` or `th`: an ordinal suffix.
        ordinal: Option<Case>,
    },
    /// A character written as it is; `quoted` if it was in double quotes.
    Text { ch: char, quoted: bool },
}

fn parse_template(template: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    let mut rest = template;
    let mut fill = false;
    while let Some(ch) = rest.chars().next() {
        if let Some(after) = ["FM", "fm"].iter().find_map(|p| rest.strip_prefix(p)) {
            fill = true;
            rest = after;
            continue;
        }
        if let Some(after) = ["FX", "fx", "TM", "tm"]
            .iter()
            .find_map(|p| rest.strip_prefix(p))
        {
            rest = after;
            continue;
        }
        if let Some((written, field)) = PATTERNS.iter().find(|(p, _)| rest.starts_with(p)) {
            rest = &rest[written.len()..];
            let ordinal = if let Some(after) = rest.strip_prefix("TH") {
                rest = after;
                Some(Case::Upper)
            } else if let Some(after) = rest.strip_prefix("th") {
                rest = after;
                Some(Case::Lower)
            } else {
                None
            };
            nodes.push(Node::Pattern {
                field: *field,
                written,
                fill,
                ordinal,
            });
            fill = false;
            continue;
        }
        rest = &rest[ch.len_utf8()..];
        match ch {
            '"' => {
                let mut chars = rest.char_indices();
                let mut end = rest.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                nodes.push(Node::Text {
                                    ch: escaped,
                                    quoted: true,
                                });
                            }
                        }
                        c => nodes.push(Node::Text {
                            ch: c,
                            quoted: true,
                        }),
                    }
                }
                rest = &rest[end..];
            }
            '\\' if rest.starts_with('"') => {
                nodes.push(Node::Text {
                    ch: '"',
                    quoted: false,
                });
                rest = &rest[1..];
            }
            ch => nodes.push(Node::Text { ch, quoted: false }),
        }
    }
    nodes
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// `to_char`: `time` written as `nodes` say; `offset` (seconds east of UTC)
/// for a timestamp with a time zone.
fn format(nodes: &[Node], time: &NaiveDateTime, offset: Option<i32>) -> Result<String> {
    let mut out = String::new();
    for node in nodes {
        let (field, fill, ordinal) = match node {
            Node::Text { ch, .. } => {
                out.push(*ch);
                continue;
            }
            Node::Pattern {
                field,
                fill,
                ordinal,
                ..
            } => (*field, *fill, *ordinal),
        };
        let name = |word: &str, case: Case, abbreviated: bool| {
            if abbreviated {
                case.apply(&word[..3])
            } else if fill {
                case.apply(word)
            } else {
                format!("{:<9}", case.apply(word))
            }
        };
        // A number, at least `width` digits unless `FM`.
        let mut number = |value: i64, width: usize| {
            if fill {
                out.push_str(&value.to_string());
            } else {
                out.push_str(&format!("{value:0width$}"));
            }
            if let Some(case) = ordinal {
                out.push_str(&case.apply(ordinal_suffix(value)));
            }
        };
        let year = i64::from(time.year());
        let micros = i64::from(time.nanosecond().min(999_999_999) / 1000);
        let hour12 = match time.hour() % 12 {
            0 => 12,
            h => i64::from(h),
        };
        match field {
            Part::YearWithComma => {
                out.push_str(&format!("{},{:03}", year / 1000, year % 1000));
            }
            Part::Year(digits) => number(last_digits(year, digits), usize::from(digits)),
            Part::IsoYear(digits) => number(
                last_digits(i64::from(time.iso_week().year()), digits),
                usize::from(digits),
            ),
            Part::Century => number((year + 99) / 100, 2),
            Part::Quarter => number(i64::from(time.month0() / 3 + 1), 1),
            Part::Month => number(i64::from(time.month()), 2),
            Part::Week => number(i64::from(time.ordinal0() / 7 + 1), 2),
            Part::IsoWeek => number(i64::from(time.iso_week().week()), 2),
            Part::WeekOfMonth => number(i64::from(time.day0() / 7 + 1), 1),
            Part::DayOfYear => number(i64::from(time.ordinal()), 3),
            Part::Day => number(i64::from(time.day()), 2),
            Part::DayOfWeek => number(i64::from(time.weekday().num_days_from_sunday() + 1), 1),
            Part::IsoDayOfWeek => number(i64::from(time.weekday().number_from_monday()), 1),
            Part::Hour24 => number(i64::from(time.hour()), 2),
            Part::Hour12 => number(hour12, 2),
            Part::Minute => number(i64::from(time.minute()), 2),
            Part::Second => number(i64::from(time.second()), 2),
            Part::Fraction(digits) => {
                let digits = u32::from(digits);
                number(micros / 10i64.pow(6 - digits), digits as usize)
            }
            Part::SecondsOfDay => number(i64::from(time.num_seconds_from_midnight()), 0),
            Part::Julian => number(i64::from(time.num_days_from_ce()) + 1_721_425, 0),
            Part::MonthName { case, abbreviated } => {
                out.push_str(&name(MONTHS[time.month0() as usize], case, abbreviated));
            }
            Part::DayName { case, abbreviated } => out.push_str(&name(
                DAYS[time.weekday().num_days_from_sunday() as usize],
                case,
                abbreviated,
            )),
            Part::Meridiem { case, dots } => {
                let word = match (time.hour() < 12, dots) {
                    (true, false) => "AM",
                    (false, false) => "PM",
                    (true, true) => "A.M.",
                    (false, true) => "P.M.",
                };
                out.push_str(&case.apply(word));
            }
            Part::Era { case, dots } => {
                let word = match (year > 0, dots) {
                    (true, false) => "AD",
                    (false, false) => "BC",
                    (true, true) => "A.D.",
                    (false, true) => "B.C.",
                };
                out.push_str(&case.apply(word));
            }
            Part::ZoneName(case) => {
                if let Some(offset) = offset {
                    let zone = if offset == 0 {
                        "UTC".to_string()
                    } else {
                        zone_offset(offset)
                    };
                    out.push_str(&case.apply(&zone));
                }
            }
            Part::ZoneOffset => out.push_str(&zone_offset(offset.unwrap_or(0))),
            Part::ZoneHours => {
                let offset = offset.unwrap_or(0);
                let sign = if offset < 0 { '-' } else { '+' };
                out.push_str(&format!("{sign}{:02}", offset.abs() / 3600));
            }
            Part::ZoneMinutes => {
                out.push_str(&format!("{:02}", offset.unwrap_or(0).abs() % 3600 / 60))
            }
        }
    }
    Ok(out)
}

fn last_digits(value: i64, digits: u8) -> i64 {
    if digits >= 4 {
        value
    } else {
        value.abs() % 10i64.pow(u32::from(digits))
    }
}

fn ordinal_suffix(value: i64) -> &'static str {
    match (value % 100, value % 10) {
        (11..=13, _) => "th",
        (_, 1) => "st",
        (_, 2) => "nd",
        (_, 3) => "rd",
        _ => "th",
    }
}

/// `+05`, `-03:30`: as PostgreSQL writes a zone's offset.
fn zone_offset(offset: i32) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let (hours, minutes) = (offset.abs() / 3600, offset.abs() % 3600 / 60);
    if minutes == 0 {
        format!("{sign}{hours:02}")
    } else {
        format!("{sign}{hours:02}:{minutes:02}")
    }
}

/// What a text gave for each part of a date and time.
#[derive(Default)]
struct Parts {
    year: Option<i64>,
    bc: bool,
    iso_year: Option<i64>,
    month: Option<i64>,
    day: Option<i64>,
    day_of_year: Option<i64>,
    iso_week: Option<i64>,
    iso_day_of_week: Option<i64>,
    hour: Option<i64>,
    /// The hour was read by `HH12`.
    hour12: bool,
    pm: Option<bool>,
    minute: Option<i64>,
    second: Option<i64>,
    micros: Option<i64>,
    seconds_of_day: Option<i64>,
    julian: Option<i64>,
    /// Seconds east of UTC (`TZH`, `TZM`).
    offset: Option<i64>,
}

/// `to_date`/`to_timestamp`: `input` read as `nodes` say. As PostgreSQL's:
/// blanks before a value are skipped, a separator in the template matches
/// any one separator of the input (or none), quoted text skips as many
/// characters, a number takes all its digits unless another pattern
/// follows it at once (`YYYYMMDD`), missing parts are the lowest (the year 1 BC), input
/// after the template is ignored.
fn parse(nodes: &[Node], input: &str, function: Template) -> Result<NaiveDateTime> {
    let mut parts = Parts::default();
    let mut rest = input;
    for (i, node) in nodes.iter().enumerate() {
        let (field, written) = match node {
            Node::Text { ch, quoted } => {
                let Some(next) = rest.chars().next() else {
                    break;
                };
                let separator = |c: char| !c.is_alphanumeric();
                if *quoted || !separator(*ch) {
                    rest = &rest[next.len_utf8()..];
                } else if separator(next) {
                    rest = &rest[next.len_utf8()..];
                    if ch.is_whitespace() {
                        rest = rest.trim_start();
                    }
                }
                continue;
            }
            Node::Pattern { field, written, .. } => (*field, *written),
        };
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        // A pattern right after this one: this one takes only its width.
        let bounded = matches!(nodes.get(i + 1), Some(Node::Pattern { .. }));
        let invalid = |rest: &str, detail: &str| {
            let value: String = rest.chars().take_while(|c| c.is_alphanumeric()).collect();
            let value = if value.is_empty() {
                rest.chars().next().map(String::from).unwrap_or_default()
            } else {
                value
            };
            DataFusionError::Execution(format!(
                "{INVALID_DATETIME_VALUE}\"{value}\" for \"{written}\": {detail}"
            ))
        };
        let read_number = |width: usize, rest: &mut &str| -> Result<(i64, usize)> {
            let limit = if bounded { width.max(1) } else { usize::MAX };
            let (sign, digits_from) = match rest.strip_prefix('-') {
                Some(after) if matches!(field, Part::Year(4) | Part::ZoneHours) => (-1, after),
                _ => (1, *rest),
            };
            let digits: String = digits_from
                .chars()
                .take_while(char::is_ascii_digit)
                .take(limit)
                .collect();
            if digits.is_empty() {
                return Err(invalid(rest, "Value must be an integer."));
            }
            let value: i64 = digits.parse().map_err(|_| {
                invalid(
                    rest,
                    "Value must be in the range -2147483648 to 2147483647.",
                )
            })?;
            *rest = &digits_from[digits.len()..];
            Ok((sign * value, digits.len()))
        };
        match field {
            Part::YearWithComma => {
                let (thousands, _) = read_number(1, &mut rest)?;
                rest = rest.strip_prefix(',').unwrap_or(rest);
                let (units, _) = read_number(3, &mut rest)?;
                parts.year = Some(thousands * 1000 + units);
            }
            Part::Year(digits) | Part::IsoYear(digits) => {
                let (value, read) = read_number(usize::from(digits), &mut rest)?;
                let value = if digits < 4 && read < 4 {
                    nearest_to_2020(value)
                } else {
                    value
                };
                if matches!(field, Part::Year(_)) {
                    parts.year = Some(value);
                } else {
                    parts.iso_year = Some(value);
                }
            }
            Part::Century => {
                read_number(2, &mut rest)?;
            }
            Part::Quarter | Part::Week | Part::WeekOfMonth | Part::DayOfWeek => {
                // Read and, as in PostgreSQL, not used.
                read_number(2, &mut rest)?;
            }
            Part::Month => parts.month = Some(read_number(2, &mut rest)?.0),
            Part::IsoWeek => parts.iso_week = Some(read_number(2, &mut rest)?.0),
            Part::DayOfYear => parts.day_of_year = Some(read_number(3, &mut rest)?.0),
            Part::Day => parts.day = Some(read_number(2, &mut rest)?.0),
            Part::IsoDayOfWeek => parts.iso_day_of_week = Some(read_number(1, &mut rest)?.0),
            Part::Hour24 => parts.hour = Some(read_number(2, &mut rest)?.0),
            Part::Hour12 => {
                parts.hour = Some(read_number(2, &mut rest)?.0);
                parts.hour12 = true;
            }
            Part::Minute => parts.minute = Some(read_number(2, &mut rest)?.0),
            Part::Second => parts.second = Some(read_number(2, &mut rest)?.0),
            Part::Fraction(digits) => {
                let (value, read) = read_number(usize::from(digits), &mut rest)?;
                if read > usize::from(digits) {
                    return Err(invalid(
                        input,
                        &format!("Field requires {digits} characters, but only {read} remain."),
                    ));
                }
                parts.micros = Some(value * 10i64.pow(6 - read as u32));
            }
            Part::SecondsOfDay => parts.seconds_of_day = Some(read_number(5, &mut rest)?.0),
            Part::Julian => parts.julian = Some(read_number(7, &mut rest)?.0),
            Part::MonthName { abbreviated, .. } => {
                let (month, after) = match_word(rest, &MONTHS, abbreviated).ok_or_else(|| {
                    invalid(
                        rest,
                        "The given value did not match any of the allowed values for this field.",
                    )
                })?;
                parts.month = Some(month as i64 + 1);
                rest = after;
            }
            Part::DayName { abbreviated, .. } => {
                let (_, after) = match_word(rest, &DAYS, abbreviated).ok_or_else(|| {
                    invalid(
                        rest,
                        "The given value did not match any of the allowed values for this field.",
                    )
                })?;
                rest = after;
            }
            Part::Meridiem { .. } | Part::Era { .. } => {
                let words: &[(&str, bool)] = if matches!(field, Part::Meridiem { .. }) {
                    &[("a.m.", false), ("p.m.", true), ("am", false), ("pm", true)]
                } else {
                    &[("a.d.", false), ("b.c.", true), ("ad", false), ("bc", true)]
                };
                let (word, flag) = words
                    .iter()
                    .find(|(w, _)| {
                        rest.get(..w.len())
                            .is_some_and(|r| r.eq_ignore_ascii_case(w))
                    })
                    .ok_or_else(|| {
                        invalid(
                            rest,
                            "The given value did not match any of the allowed values for this field.",
                        )
                    })?;
                rest = &rest[word.len()..];
                if matches!(field, Part::Meridiem { .. }) {
                    parts.pm = Some(*flag);
                } else {
                    parts.bc = *flag;
                }
            }
            Part::ZoneHours => {
                let plus = rest.strip_prefix('+');
                rest = plus.unwrap_or(rest);
                parts.offset = Some(read_number(2, &mut rest)?.0.saturating_mul(3600));
            }
            Part::ZoneMinutes => {
                // West of UTC, the minutes are west too.
                let hours = parts.offset.unwrap_or(0);
                let minutes = read_number(2, &mut rest)?.0.saturating_mul(60);
                parts.offset = Some(if hours < 0 {
                    hours.saturating_sub(minutes)
                } else {
                    hours.saturating_add(minutes)
                });
            }
            Part::ZoneName(_) | Part::ZoneOffset => {
                return Err(DataFusionError::NotImplemented(format!(
                    "formatting field \"{written}\" is only supported in to_char"
                )));
            }
        }
    }
    assemble(&parts, input, function)
}

/// A year written with fewer than four digits, nearest to 2020 (as
/// PostgreSQL's `adjust_partial_year_to_2020`).
fn nearest_to_2020(year: i64) -> i64 {
    match year {
        0..70 => year + 2000,
        70..100 => year + 1900,
        100..520 => year + 2000,
        520..1000 => year + 1000,
        _ => year,
    }
}

/// The word of `words` (or its first three letters) `text` begins with,
/// in any case; and the text after it.
fn match_word<'a>(text: &'a str, words: &[&str], abbreviated: bool) -> Option<(usize, &'a str)> {
    let begins = |word: &str| {
        text.get(..word.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(word))
    };
    if !abbreviated && let Some(i) = words.iter().position(|w| begins(w)) {
        return Some((i, &text[words[i].len()..]));
    }
    let i = words.iter().position(|w| begins(&w[..3]))?;
    Some((i, &text[3..]))
}

fn assemble(parts: &Parts, input: &str, function: Template) -> Result<NaiveDateTime> {
    let out_of_range =
        || DataFusionError::Execution(format!("{DATETIME_OUT_OF_RANGE}: \"{input}\""));
    let small = |v: i64| i32::try_from(v).map_err(|_| out_of_range());
    let year = parts.year.map(|y| if parts.bc { 1 - y } else { y });
    let date = if let Some(julian) = parts.julian {
        NaiveDate::from_num_days_from_ce_opt(small(julian - 1_721_425)?)
    } else if let (Some(iso_year), Some(week)) = (parts.iso_year, parts.iso_week) {
        // As PostgreSQL counts: from the Monday of the year's first week,
        // on past its last one if the week says so.
        NaiveDate::from_isoywd_opt(small(iso_year)?, 1, chrono::Weekday::Mon).and_then(|monday| {
            let days = week
                .checked_sub(1)?
                .checked_mul(7)?
                .checked_add(parts.iso_day_of_week.unwrap_or(1) - 1)?;
            monday.checked_add_signed(chrono::Duration::try_days(days)?)
        })
    } else if let (Some(day_of_year), None) = (parts.day_of_year, parts.month) {
        NaiveDate::from_yo_opt(
            small(year.unwrap_or(0))?,
            u32::try_from(day_of_year).unwrap_or(0),
        )
    } else {
        let month = u32::try_from(parts.month.unwrap_or(1)).unwrap_or(0);
        let day = u32::try_from(parts.day.unwrap_or(1)).unwrap_or(0);
        NaiveDate::from_ymd_opt(small(year.unwrap_or(0))?, month, day)
    }
    .ok_or_else(out_of_range)?;
    if function == Template::ToDate {
        return Ok(date.and_time(chrono::NaiveTime::MIN));
    }
    let (mut hour, mut minute, mut second) = (
        parts.hour.unwrap_or(0),
        parts.minute.unwrap_or(0),
        parts.second.unwrap_or(0),
    );
    if let Some(seconds) = parts.seconds_of_day {
        (hour, minute, second) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    }
    if parts.hour12 || parts.pm.is_some() {
        if !(1..=12).contains(&hour) {
            return Err(DataFusionError::Execution(format!(
                "hour \"{hour}\" {TWELVE_HOUR_CLOCK}"
            )));
        }
        hour = hour % 12 + if parts.pm == Some(true) { 12 } else { 0 };
    }
    let time = chrono::NaiveTime::from_hms_micro_opt(
        u32::try_from(hour).map_err(|_| out_of_range())?,
        u32::try_from(minute).map_err(|_| out_of_range())?,
        u32::try_from(second).map_err(|_| out_of_range())?,
        u32::try_from(parts.micros.unwrap_or(0)).map_err(|_| out_of_range())?,
    )
    .ok_or_else(out_of_range)?;
    // Read numbers may be anything: checked, never a panic.
    chrono::Duration::try_seconds(parts.offset.unwrap_or(0))
        .and_then(|offset| date.and_time(time).checked_sub_signed(offset))
        .ok_or_else(out_of_range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    fn written(time: &str, template: &str) -> String {
        format(&parse_template(template), &at(time), None).unwrap()
    }

    fn read(input: &str, template: &str) -> Result<NaiveDateTime> {
        parse(&parse_template(template), input, Template::ToTimestamp)
    }

    // Expected values are PostgreSQL 15's.
    #[test]
    fn writes_as_postgresql() {
        assert_eq!(
            written("2024-05-07 09:05:03.25", "YYYY-MM-DD HH24:MI:SS.MS"),
            "2024-05-07 09:05:03.250"
        );
        assert_eq!(
            written(
                "2024-05-07 21:05:03",
                "FMDD Mon YYYY, HH12:MI AM Day Dy Month"
            ),
            "7 May 2024, 09:05 PM Tuesday   Tue May      "
        );
        assert_eq!(
            written("2024-05-07 00:00:00", "YYYYMMDD \"week\" IW, Q, DDD, D"),
            "20240507 week 19, 2, 128, 3"
        );
        assert_eq!(
            written("2024-05-01 00:00:00", "FMDDth MONTH"),
            "1st MAY      "
        );
        assert_eq!(
            written("2000-01-01 12:00:00", "J CC a.m. Y,YYY"),
            "2451545 20 p.m. 2,000"
        );
    }

    #[test]
    fn reads_as_postgresql() {
        for (input, template, expected) in [
            ("2024-05-17", "YYYY-MM-DD", "2024-05-17 00:00:00"),
            (
                "17/05/2024 10:11",
                "DD/MM/YYYY HH24:MI",
                "2024-05-17 10:11:00",
            ),
            ("20240517", "YYYYMMDD", "2024-05-17 00:00:00"),
            ("05 dec 2000", "DD Mon YYYY", "2000-12-05 00:00:00"),
            ("1:05 pm 12.3", "HH12:MI AM SS.MS", "0000-01-01 13:05:12.3"),
            ("95-1-2", "YY-MM-DD", "1995-01-02 00:00:00"),
            ("2021-53-5", "IYYY-IW-ID", "2022-01-07 00:00:00"),
        ] {
            assert_eq!(read(input, template).unwrap(), at(expected), "{input}");
        }
        let error = read("2024-02-30", "YYYY-MM-DD").unwrap_err().to_string();
        assert!(error.contains(DATETIME_OUT_OF_RANGE), "{error}");
        let error = read("2024-xx-01", "YYYY-MM-DD").unwrap_err().to_string();
        assert!(error.contains("invalid value \"xx\" for \"MM\""), "{error}");
        // Numbers past every range are errors, not overflows.
        for (input, template) in [
            ("2021-999999999999999999", "IYYY-IW"),
            ("2024 +999999999999999999", "YYYY TZH"),
            ("2024 +10:999999999999999999", "YYYY TZH:TZM"),
            ("9999999999999999", "J"),
        ] {
            let error = read(input, template).unwrap_err().to_string();
            assert!(error.contains(DATETIME_OUT_OF_RANGE), "{input}: {error}");
        }
    }
}
