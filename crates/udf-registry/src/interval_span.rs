//! Intervals compared as PostgreSQL compares them: by the time they span,
//! a month counted as 30 days and a day as 24 hours.
//!
//! Arrow compares its month-day-nanosecond intervals field by field, so
//! `interval '25 hours' > interval '1 day'` was false, `interval '36
//! hours' = interval '1 day 12 hours'` too, and so was `now() - t >
//! interval '1 day'` for a `t` a week ago (a timestamp difference has no
//! days, only nanoseconds). The frontend's analyzer compares the
//! [`IntervalSpan`] of each side instead; it travels in plans through
//! Quiver's codecs.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, AsArray, Decimal128Array};
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNanoType};
use datafusion::common::{Result, ScalarValue, exec_err};

use crate::datetime_input::named_as_argument;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

const NANOS_PER_DAY: i128 = 86_400_000_000_000;

/// An interval's span in nanoseconds (`numeric(38, 0)`), the key
/// PostgreSQL compares intervals by.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IntervalSpan {
    signature: Signature,
}

impl IntervalSpan {
    /// The one instance.
    pub fn udf() -> Arc<ScalarUDF> {
        static FUNCTION: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| {
            Arc::new(ScalarUDF::from(IntervalSpan {
                signature: Signature::exact(
                    vec![DataType::Interval(
                        datafusion::arrow::datatypes::IntervalUnit::MonthDayNano,
                    )],
                    Volatility::Immutable,
                ),
            }))
        });
        FUNCTION.clone()
    }
}

impl ScalarUDFImpl for IntervalSpan {
    fn name(&self) -> &str {
        "quiver_interval_span"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Named as the interval it measures.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        named_as_argument(self.name(), args)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Decimal128(38, 0))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return exec_err!("{} takes one argument", self.name());
        };
        let scalar = matches!(value, ColumnarValue::Scalar(_));
        let intervals = value.to_array(args.number_rows)?;
        let spans: Decimal128Array = intervals
            .as_primitive::<IntervalMonthDayNanoType>()
            .iter()
            .map(|v| {
                v.map(|v| {
                    (i128::from(v.months) * 30 + i128::from(v.days)) * NANOS_PER_DAY
                        + i128::from(v.nanoseconds)
                })
            })
            .collect();
        let spans: ArrayRef = Arc::new(spans.with_precision_and_scale(38, 0)?);
        if scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &spans, 0,
            )?));
        }
        Ok(ColumnarValue::Array(spans))
    }
}
