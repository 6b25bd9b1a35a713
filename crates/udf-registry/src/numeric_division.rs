//! `numeric` division as PostgreSQL divides.
//!
//! PostgreSQL's `numeric` has a scale per value: a quotient gets at least
//! 16 significant digits and no fewer decimals than either operand
//! (`select_div_scale` in PostgreSQL's `numeric.c`), rounded half away from
//! zero. `1::numeric / 3` is `0.33333333333333333333`, `10::numeric / 4`
//! is `2.5000000000000000`, and `avg` divides this way too. DataFusion
//! gives a quotient of decimals a fixed scale (four more than the
//! dividend's) and truncates, so `avg` of `numeric(10,2)` values answered
//! `2.226666` for PostgreSQL's `2.2266666666666667`.
//!
//! [`NumericDivision`] computes each quotient at PostgreSQL's scale for
//! those operands, rounded PostgreSQL's way. An Arrow decimal column has one
//! scale, so the result column has [`QUOTIENT_SCALE`] (or the operands'
//! larger scale) and the value is exact in it; the field's
//! [`MIN_DISPLAY_SCALE`] metadata lets the wire encoder print each value
//! with PostgreSQL's digits (see [`quotient_text`]).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Int64Type, i256};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

/// The scale of a quotient's column, unless an operand has a larger one:
/// PostgreSQL's scale for quotients from 0.0001 up to 1 (16 significant
/// digits from the fourth decimal), leaving 18 digits before the point.
pub const QUOTIENT_SCALE: i8 = 20;

/// The largest scale of a quotient's column: at least 6 digits before the
/// point.
const MAX_SCALE: i8 = 32;

/// Field metadata on a quotient column: the fewest decimals any of its
/// values shows (the operands' larger scale).
pub const MIN_DISPLAY_SCALE: &str = "quiver.numeric.min_display_scale";

/// PostgreSQL's minimum significant digits of a quotient
/// (`NUMERIC_MIN_SIG_DIGITS`).
const MIN_SIG_DIGITS: i32 = 16;

/// Divides two `numeric`s (or a `numeric` and an integer) PostgreSQL's way
/// (see the module docs); named as the `/` it replaces.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NumericDivision {
    signature: Signature,
}

impl NumericDivision {
    /// The one instance.
    pub fn udf() -> Arc<ScalarUDF> {
        static FUNCTION: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| {
            Arc::new(ScalarUDF::from(NumericDivision {
                signature: Signature::user_defined(Volatility::Immutable),
            }))
        });
        FUNCTION.clone()
    }

    /// Whether a quotient of these operand types is `numeric` in
    /// PostgreSQL and this function computes it: a decimal divided by a
    /// decimal or an integer, or an integer by a decimal.
    pub fn divides(left: &DataType, right: &DataType) -> bool {
        let operand = |t: &DataType| t.is_integer() || matches!(t, DataType::Decimal128(..));
        operand(left)
            && operand(right)
            && (matches!(left, DataType::Decimal128(..))
                || matches!(right, DataType::Decimal128(..)))
    }

    /// The operands of `avg`, which is `numeric` for integers too.
    pub fn averages(data_type: &DataType) -> bool {
        data_type.is_integer() || matches!(data_type, DataType::Decimal128(..))
    }
}

/// The scale of an operand's values.
fn scale_of(data_type: &DataType) -> i8 {
    match data_type {
        DataType::Decimal128(_, scale) => *scale,
        _ => 0,
    }
}

fn result_scale(left: &DataType, right: &DataType) -> i8 {
    scale_of(left)
        .max(scale_of(right))
        .clamp(QUOTIENT_SCALE, MAX_SCALE)
}

impl ScalarUDFImpl for NumericDivision {
    fn name(&self) -> &str {
        "numeric_div"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        let [left, right] = args else {
            return exec_err!("{} takes two arguments", self.name());
        };
        Ok(format!("{} / {}", left.schema_name(), right.schema_name()))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let operand = |t: &DataType| match t {
            DataType::Decimal128(..) => Ok(t.clone()),
            DataType::Null => Ok(DataType::Int64),
            t if t.is_integer() => Ok(DataType::Int64),
            other => exec_err!("{} takes numeric operands, not {other}", self.name()),
        };
        match arg_types {
            [left, right] => Ok(vec![operand(left)?, operand(right)?]),
            _ => exec_err!("{} takes two arguments", self.name()),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [left, right] => Ok(DataType::Decimal128(38, result_scale(left, right))),
            _ => exec_err!("{} takes two arguments", self.name()),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let [left, right] = args.arg_fields else {
            return exec_err!("{} takes two arguments", self.name());
        };
        let (left, right) = (left.data_type(), right.data_type());
        let min_display = scale_of(left).max(scale_of(right)).max(0);
        Ok(Arc::new(
            Field::new(
                self.name(),
                DataType::Decimal128(38, result_scale(left, right)),
                true,
            )
            .with_metadata(HashMap::from([(
                MIN_DISPLAY_SCALE.to_string(),
                min_display.to_string(),
            )])),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [left, right] = args.args.as_slice() else {
            return exec_err!("{} takes two arguments", self.name());
        };
        let (left_type, right_type) = (left.data_type(), right.data_type());
        let scale = result_scale(&left_type, &right_type);
        let rows = args.number_rows;
        let is_scalar = matches!(
            (left, right),
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_))
        );
        let (left, right) = (operand(left, rows)?, operand(right, rows)?);
        let operands = Operands {
            left_scale: scale_of(&left_type),
            right_scale: scale_of(&right_type),
            scale,
        };
        let quotients = left
            .iter()
            .zip(right.iter())
            .map(|(l, r)| match (l, r) {
                (Some(l), Some(r)) => operands.divide(l, r).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Decimal128Array, ArrowError>>()?
            .with_precision_and_scale(38, scale)?;
        let array: ArrayRef = Arc::new(quotients);
        Ok(if is_scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
        } else {
            ColumnarValue::Array(array)
        })
    }
}

/// An operand's unscaled values, as decimals at its scale.
fn operand(value: &ColumnarValue, rows: usize) -> Result<Decimal128Array> {
    let array = value.to_array(rows)?;
    Ok(match array.data_type() {
        DataType::Decimal128(..) => array.as_primitive::<Decimal128Type>().clone(),
        DataType::Int64 => array
            .as_primitive::<Int64Type>()
            .unary::<_, Decimal128Type>(i128::from),
        other => return exec_err!("numeric_div takes numeric operands, not {other}"),
    })
}

/// The scales of one division.
struct Operands {
    left_scale: i8,
    right_scale: i8,
    /// The result column's.
    scale: i8,
}

impl Operands {
    /// `left / right` (unscaled, at the operands' scales) at PostgreSQL's
    /// scale for them, rounded half away from zero, unscaled at
    /// `self.scale`.
    fn divide(&self, left: i128, right: i128) -> Result<i128, ArrowError> {
        if right == 0 {
            return Err(ArrowError::DivideByZero);
        }
        let rscale = postgres_scale(left, self.left_scale, right, self.right_scale)
            .min(i32::from(self.scale));
        let overflow = || ArrowError::ArithmeticOverflow("numeric field overflow".into());
        // left / right * 10^rscale = left * 10^k / right.
        let k = i32::from(self.right_scale) - i32::from(self.left_scale) + rscale;
        let ten = |power: i32| {
            i256::from_i128(10)
                .checked_pow(power as u32)
                .ok_or_else(overflow)
        };
        let (mut numerator, mut denominator) = (i256::from_i128(left), i256::from_i128(right));
        if k >= 0 {
            numerator = numerator.checked_mul(ten(k)?).ok_or_else(overflow)?;
        } else {
            denominator = denominator.checked_mul(ten(-k)?).ok_or_else(overflow)?;
        }
        let mut quotient = numerator.wrapping_div(denominator);
        let remainder = numerator.wrapping_rem(denominator);
        let twice = remainder.wrapping_abs().wrapping_mul(i256::from_i128(2));
        if twice >= denominator.wrapping_abs() {
            let away = if (numerator < i256::ZERO) == (denominator < i256::ZERO) {
                i256::ONE
            } else {
                i256::MINUS_ONE
            };
            quotient = quotient.wrapping_add(away);
        }
        let value = quotient
            .checked_mul(ten(i32::from(self.scale) - rscale)?)
            .and_then(|v| v.to_i128())
            .ok_or_else(overflow)?;
        if value.unsigned_abs() >= 10u128.pow(38) {
            return Err(overflow());
        }
        Ok(value)
    }
}

/// A nonzero value's weight in base 10000 (PostgreSQL's digits) and its
/// first base-10000 digit; `(0, 0)` for zero, as PostgreSQL takes them.
fn weight_and_first_digit(unscaled: i128, scale: i8) -> (i32, u128) {
    let magnitude = unscaled.unsigned_abs();
    if magnitude == 0 {
        return (0, 0);
    }
    let exponent = magnitude.ilog10() as i32 - i32::from(scale);
    let weight = exponent.div_euclid(4);
    let shift = i32::from(scale) + 4 * weight;
    let first = if shift >= 0 {
        magnitude / 10u128.pow(shift as u32)
    } else {
        magnitude * 10u128.pow((-shift) as u32)
    };
    (weight, first)
}

/// PostgreSQL's scale for `left / right` (`select_div_scale`).
fn postgres_scale(left: i128, left_scale: i8, right: i128, right_scale: i8) -> i32 {
    let (weight1, first1) = weight_and_first_digit(left, left_scale);
    let (weight2, first2) = weight_and_first_digit(right, right_scale);
    let mut qweight = weight1 - weight2;
    if first1 <= first2 {
        qweight -= 1;
    }
    (MIN_SIG_DIGITS - qweight * 4)
        .max(i32::from(left_scale))
        .max(i32::from(right_scale))
        .max(0)
}

/// A quotient `unscaled` (at `scale`, from operands of at most
/// `min_scale` decimals) as PostgreSQL writes it: with PostgreSQL's scale
/// for a quotient of its size, or more where the value has more digits.
/// PostgreSQL decides the scale from the operands: where they begin with
/// the same base-10000 digit (`3 / 3`, `2.25 / 2`) it shows four more
/// decimals, which here show only when they are not zero. The value is the
/// same either way.
pub fn quotient_text(unscaled: i128, scale: i8, min_scale: i8) -> String {
    let (weight, _) = weight_and_first_digit(unscaled, scale);
    let size_scale = if unscaled == 0 {
        // 0 / x, over a divisor of weight 0.
        MIN_SIG_DIGITS + 4
    } else {
        MIN_SIG_DIGITS - weight * 4
    };
    let scale = i32::from(scale.max(0));
    let mut significant = scale;
    while significant > 0 && unscaled % 10i128.pow((scale - significant + 1) as u32) == 0 {
        significant -= 1;
    }
    let shown = size_scale
        .max(significant)
        .clamp(i32::from(min_scale.max(0)).min(scale), scale);
    let digits = (unscaled / 10i128.pow((scale - shown) as u32)).unsigned_abs();
    let digits = format!("{digits:0>width$}", width = shown as usize + 1);
    let (whole, fraction) = digits.split_at(digits.len() - shown as usize);
    let sign = if unscaled < 0 { "-" } else { "" };
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `left / right` of decimals at these scales, as text.
    fn divide(left: i128, left_scale: i8, right: i128, right_scale: i8) -> String {
        let scale = result_scale(
            &DataType::Decimal128(38, left_scale),
            &DataType::Decimal128(38, right_scale),
        );
        let operands = Operands {
            left_scale,
            right_scale,
            scale,
        };
        let value = operands.divide(left, right).unwrap();
        quotient_text(value, scale, left_scale.max(right_scale))
    }

    /// Each expected value is PostgreSQL 15's.
    #[test]
    fn quotients_are_postgresql_s() {
        assert_eq!(divide(1, 0, 3, 0), "0.33333333333333333333");
        assert_eq!(divide(10, 0, 4, 0), "2.5000000000000000");
        assert_eq!(divide(668, 2, 3, 0), "2.2266666666666667");
        assert_eq!(divide(-668, 2, 3, 0), "-2.2266666666666667");
        assert_eq!(divide(2, 0, 3, 0), "0.66666666666666666667");
        assert_eq!(divide(100000, 0, 3, 0), "33333.333333333333");
        assert_eq!(divide(-1, 0, 7, 0), "-0.14285714285714285714");
        assert_eq!(divide(12345, 0, 1, 1), "123450.000000000000");
        assert_eq!(divide(7, 0, 2, 0), "3.5000000000000000");
    }

    /// Where PostgreSQL's scale depends on more than the quotient's size
    /// (operands that begin with the same base-10000 digit), the value is
    /// still PostgreSQL's; only trailing zeros differ: `3::numeric / 3` is
    /// `1.00000000000000000000` there, `1.0000000000000000` here.
    #[test]
    fn quotients_of_like_operands_are_exact() {
        assert_eq!(divide(3, 0, 3, 0), "1.0000000000000000");
        assert_eq!(divide(110, 2, 1, 0), "1.1000000000000000");
        assert_eq!(divide(0, 0, 3, 0), "0.00000000000000000000");
    }

    /// A quotient below 0.0001 has PostgreSQL's value to 20 decimals (the
    /// column's scale), where PostgreSQL keeps 16 significant digits:
    /// `0.000033333333333333333333` there.
    #[test]
    fn tiny_quotients_have_the_column_s_scale() {
        assert_eq!(divide(1, 0, 30000, 0), "0.00003333333333333333");
    }

    #[test]
    fn division_by_zero_is_an_error() {
        let operands = Operands {
            left_scale: 0,
            right_scale: 0,
            scale: QUOTIENT_SCALE,
        };
        assert!(matches!(
            operands.divide(1, 0),
            Err(ArrowError::DivideByZero)
        ));
    }
}
