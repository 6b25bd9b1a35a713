//! Integer arithmetic that fails on overflow, as PostgreSQL's does.
//!
//! DataFusion's `+`, `-` and `*` wrap around: `9223372036854775807 + 1` is
//! `-9223372036854775808`. PostgreSQL fails instead, with `bigint out of
//! range` (SQLSTATE 22003), and so must Quiver. DataFusion's physical
//! `BinaryExpr` has a checked mode, but it is lost when a plan is serialized
//! for Ballista, and the optimizer folds constants with the wrapping kernels
//! before a physical plan exists. So the frontend replaces integer `+`, `-`
//! and `*` in the logical plan with [`CheckedArithmetic`], whose kernels
//! are arrow's checked ones.
//!
//! Like the scalar-subquery functions, it is not a Wasm function, but it
//! travels in plans to the scheduler and executors like one.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray, new_null_array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{ArrowPrimitiveType, DataType, Int16Type, Int32Type, Int64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::physical_expr_common::datum::apply;

/// An integer `+`, `-` or `*` that fails with `<type> out of range` when
/// the result does not fit its type. Both arguments have the same integer
/// type (type coercion has run), and so has the result.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CheckedArithmetic {
    op: Operator,
    signature: Signature,
}

impl CheckedArithmetic {
    /// The checked function for `op`, if `op` can overflow an integer this way.
    pub fn udf(op: Operator) -> Option<Arc<ScalarUDF>> {
        static FUNCTIONS: LazyLock<[Arc<ScalarUDF>; 3]> = LazyLock::new(|| {
            [Operator::Plus, Operator::Minus, Operator::Multiply].map(|op| {
                Arc::new(ScalarUDF::from(CheckedArithmetic {
                    op,
                    signature: Signature::any(2, Volatility::Immutable),
                }))
            })
        });
        let index = match op {
            Operator::Plus => 0,
            Operator::Minus => 1,
            Operator::Multiply => 2,
            _ => return None,
        };
        Some(FUNCTIONS[index].clone())
    }

    /// The operator this function checks.
    pub fn op(&self) -> Operator {
        self.op
    }
}

/// PostgreSQL's name for an integer type, as its range errors use it.
fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        other => other.to_string(),
    }
}

impl ScalarUDFImpl for CheckedArithmetic {
    fn name(&self) -> &str {
        match self.op {
            Operator::Plus => "checked_add",
            Operator::Minus => "checked_sub",
            _ => "checked_mul",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Named as the operator it replaces (`t.a + Int32(1)`), so that the
    /// columns a plan's nodes refer to by name keep their names.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        let [left, right] = args else {
            return exec_err!("{} takes two arguments", self.name());
        };
        Ok(format!(
            "{} {} {}",
            left.schema_name(),
            self.op,
            right.schema_name()
        ))
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [left, right] if left == right && left.is_integer() => Ok(left.clone()),
            _ => exec_err!(
                "{} takes two integers of one type, not {arg_types:?}",
                self.name()
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [left, right] = args.args.as_slice() else {
            return exec_err!("{} takes two arguments", self.name());
        };
        let out_of_range = || {
            DataFusionError::ArrowError(
                Box::new(ArrowError::ArithmeticOverflow(format!(
                    "{} out of range",
                    type_name(args.return_field.data_type())
                ))),
                None,
            )
        };
        let fast = match left.data_type() {
            DataType::Int16 => self.columns::<Int16Type>(left, right, args.number_rows),
            DataType::Int32 => self.columns::<Int32Type>(left, right, args.number_rows),
            DataType::Int64 => self.columns::<Int64Type>(left, right, args.number_rows),
            _ => None,
        };
        match fast {
            Some(Ok(result)) => return Ok(ColumnarValue::Array(result)),
            Some(Err(Overflow)) => return Err(out_of_range()),
            None => {}
        }
        let kernel = match self.op {
            Operator::Plus => numeric::add,
            Operator::Minus => numeric::sub,
            _ => numeric::mul,
        };
        apply(left, right, kernel).map_err(|e| match e {
            DataFusionError::ArrowError(error, _)
                if matches!(*error, ArrowError::ArithmeticOverflow(_)) =>
            {
                out_of_range()
            }
            other => other,
        })
    }
}

/// A result that does not fit its type, in a row that is not NULL.
struct Overflow;

/// One side of an operation over columns.
enum Side<'a, N> {
    Values(&'a [N]),
    Constant(N),
}

impl CheckedArithmetic {
    /// The operation over `left` and `right`, of which one at least is a
    /// column of `T`: every row computed with wrapping arithmetic, which
    /// vectorizes, while the rows' overflow flags are OR-ed together
    /// without a branch; only when one is set are the rows looked at one by
    /// one, for one that is not NULL (a NULL row's slot holds any value).
    /// arrow's checked kernels test and branch on every row instead, which
    /// made `x * 2 + 1` 2.5 times as slow as DataFusion's wrapping `*` and
    /// `+` (bench/README.md, "Checked integer arithmetic"). `None` for two
    /// constants, left to arrow.
    fn columns<T>(
        &self,
        left: &ColumnarValue,
        right: &ColumnarValue,
        rows: usize,
    ) -> Option<std::result::Result<ArrayRef, Overflow>>
    where
        T: ArrowPrimitiveType,
        T::Native: Overflowing,
    {
        if matches!(
            (left, right),
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_))
        ) {
            return None;
        }
        let ((l, l_nulls), (r, r_nulls)) = (side::<T>(left)?, side::<T>(right)?);
        let (Some(l), Some(r)) = (l, r) else {
            // A NULL constant: every row is NULL.
            return Some(Ok(new_null_array(&T::DATA_TYPE, rows)));
        };
        let nulls = NullBuffer::union(l_nulls.as_ref(), r_nulls.as_ref());
        let nulls_ref = nulls.as_ref();
        let values = match self.op {
            Operator::Plus => compute(&l, &r, nulls_ref, <T::Native as Overflowing>::add),
            Operator::Minus => compute(&l, &r, nulls_ref, <T::Native as Overflowing>::sub),
            _ => compute(&l, &r, nulls_ref, <T::Native as Overflowing>::mul),
        }?;
        let values = match values {
            Ok(values) => values,
            Err(overflow) => return Some(Err(overflow)),
        };
        Some(Ok(Arc::new(PrimitiveArray::<T>::new(values.into(), nulls))))
    }
}

/// `value` as one side of an operation over columns of `T`, with its NULLs;
/// no side for a NULL constant, and `None` for a value not of `T`.
#[expect(clippy::type_complexity, reason = "a side and its NULLs")]
fn side<T: ArrowPrimitiveType>(
    value: &ColumnarValue,
) -> Option<(Option<Side<'_, T::Native>>, Option<NullBuffer>)> {
    match value {
        ColumnarValue::Array(array) => {
            let array = array.as_primitive_opt::<T>()?;
            Some((Some(Side::Values(array.values())), array.nulls().cloned()))
        }
        ColumnarValue::Scalar(scalar) => {
            let constant = scalar.to_array().ok()?;
            let constant = constant.as_primitive_opt::<T>()?;
            Some((
                (!constant.is_null(0)).then(|| Side::Constant(constant.value(0))),
                None,
            ))
        }
    }
}

/// `op` over the rows of `l` and `r` (see [`CheckedArithmetic::columns`]);
/// `None` for two constants.
fn compute<N: Overflowing>(
    l: &Side<'_, N>,
    r: &Side<'_, N>,
    nulls: Option<&NullBuffer>,
    op: impl Fn(N, N) -> (N, N),
) -> Option<std::result::Result<Vec<N>, Overflow>> {
    let (values, flags) = match (l, r) {
        (Side::Values(a), Side::Values(b)) => wrapping(a.iter().zip(b.iter()), |(a, b)| op(*a, *b)),
        (Side::Values(a), Side::Constant(b)) => wrapping(a.iter(), |a| op(*a, *b)),
        (Side::Constant(a), Side::Values(b)) => wrapping(b.iter(), |b| op(*a, *b)),
        (Side::Constant(_), Side::Constant(_)) => return None,
    };
    if flags.overflowed() {
        let at = |i: usize| match (l, r) {
            (Side::Values(a), Side::Values(b)) => op(a[i], b[i]),
            (Side::Values(a), Side::Constant(b)) => op(a[i], *b),
            (Side::Constant(a), Side::Values(b)) => op(*a, b[i]),
            (Side::Constant(a), Side::Constant(b)) => op(*a, *b),
        };
        let valid = |i: usize| nulls.is_none_or(|n| n.is_valid(i));
        if (0..values.len()).any(|i| at(i).1.overflowed() && valid(i)) {
            return Some(Err(Overflow));
        }
    }
    Some(Ok(values))
}

/// `f` over `rows`: the values, and their overflow flags OR-ed together
/// (see [`Overflowing`]). Integer operations only, with no branch, so the
/// loop vectorizes.
fn wrapping<I: Iterator, N: Overflowing>(rows: I, f: impl Fn(I::Item) -> (N, N)) -> (Vec<N>, N) {
    let mut flags = N::default();
    let values = rows
        .map(|row| {
            let (value, flag) = f(row);
            flags = flags | flag;
            value
        })
        .collect();
    (values, flags)
}

/// Integer arithmetic that wraps, with a flag that is negative where the
/// result overflowed: for `+` and `-` the sign bit of PostgreSQL's
/// (and Hacker's Delight's) overflow test, computed without a branch.
trait Overflowing: Copy + Default + std::ops::BitOr<Output = Self> {
    fn add(self, other: Self) -> (Self, Self);
    fn sub(self, other: Self) -> (Self, Self);
    fn mul(self, other: Self) -> (Self, Self);
    fn overflowed(self) -> bool;
}

macro_rules! overflowing {
    ($($t:ty),*) => {$(
        impl Overflowing for $t {
            fn add(self, other: Self) -> (Self, Self) {
                let sum = self.wrapping_add(other);
                // Both operands' signs differ from the sum's.
                (sum, (self ^ sum) & (other ^ sum))
            }
            fn sub(self, other: Self) -> (Self, Self) {
                let difference = self.wrapping_sub(other);
                // The operands' signs differ, and the first's from the result's.
                (difference, (self ^ other) & (self ^ difference))
            }
            fn mul(self, other: Self) -> (Self, Self) {
                let (product, overflow) = self.overflowing_mul(other);
                (product, -<$t>::from(overflow))
            }
            fn overflowed(self) -> bool {
                self < 0
            }
        }
    )*};
}

overflowing!(i16, i32, i64);

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int16Array, Int32Array, Int64Array};
    use datafusion::arrow::datatypes::Field;
    use datafusion::common::ScalarValue;
    use datafusion::config::ConfigOptions;

    fn call(op: Operator, left: ColumnarValue, right: ColumnarValue) -> Result<ColumnarValue> {
        let data_type = left.data_type();
        let field = Arc::new(Field::new("x", data_type.clone(), true));
        CheckedArithmetic::udf(op)
            .unwrap()
            .invoke_with_args(ScalarFunctionArgs {
                args: vec![left, right],
                arg_fields: vec![field.clone(), field.clone()],
                number_rows: 2,
                return_field: field,
                config_options: Arc::new(ConfigOptions::default()),
            })
    }

    #[test]
    fn results_in_range_are_computed() {
        let left = ColumnarValue::Array(Arc::new(Int32Array::from(vec![Some(2), None])));
        let right = ColumnarValue::Scalar(ScalarValue::Int32(Some(3)));
        let ColumnarValue::Array(result) = call(Operator::Multiply, left, right).unwrap() else {
            panic!("an array in gives an array out");
        };
        let expected: ArrayRef = Arc::new(Int32Array::from(vec![Some(6), None]));
        assert_eq!(&result, &expected);
    }

    #[test]
    fn overflow_is_an_error_naming_the_type() {
        let big = |v| ColumnarValue::Scalar(ScalarValue::Int64(Some(v)));
        let e = call(Operator::Plus, big(i64::MAX), big(1)).unwrap_err();
        assert!(e.to_string().contains("bigint out of range"), "{e}");
        let small = ColumnarValue::Array(Arc::new(Int32Array::from(vec![i32::MIN, 0])));
        let one = ColumnarValue::Scalar(ScalarValue::Int32(Some(1)));
        let e = call(Operator::Minus, small, one).unwrap_err();
        assert!(e.to_string().contains("integer out of range"), "{e}");
        let wide = ColumnarValue::Array(Arc::new(Int64Array::from(vec![1, 2])));
        assert!(call(Operator::Plus, wide.clone(), wide).is_ok());
    }

    #[test]
    fn a_null_rows_value_never_overflows() {
        // The slot under a NULL holds a value; it is not the row's.
        let values = Int64Array::new(
            vec![i64::MAX, 1].into(),
            Some(NullBuffer::from(vec![false, true])),
        );
        let left = ColumnarValue::Array(Arc::new(values));
        let one = ColumnarValue::Scalar(ScalarValue::Int64(Some(1)));
        let ColumnarValue::Array(sum) = call(Operator::Plus, left.clone(), one.clone()).unwrap()
        else {
            panic!("an array in gives an array out");
        };
        let expected: ArrayRef = Arc::new(Int64Array::from(vec![None, Some(2)]));
        assert_eq!(&sum, &expected);
        // ... but the same value in a row that is not NULL does.
        let both = ColumnarValue::Array(Arc::new(Int64Array::from(vec![i64::MAX, 1])));
        let e = call(Operator::Plus, both, one).unwrap_err();
        assert!(e.to_string().contains("bigint out of range"), "{e}");
    }

    #[test]
    fn columns_and_constants_combine_either_way() {
        let column = |v: Vec<Option<i16>>| ColumnarValue::Array(Arc::new(Int16Array::from(v)));
        let constant = |v| ColumnarValue::Scalar(ScalarValue::Int16(v));
        let array = |c: ColumnarValue| match c {
            ColumnarValue::Array(a) => a,
            ColumnarValue::Scalar(_) => panic!("an array in gives an array out"),
        };
        let difference = call(
            Operator::Minus,
            constant(Some(10)),
            column(vec![Some(1), None, Some(3)]),
        )
        .unwrap();
        let expected: ArrayRef = Arc::new(Int16Array::from(vec![Some(9), None, Some(7)]));
        assert_eq!(&array(difference), &expected);
        let product = call(
            Operator::Multiply,
            column(vec![Some(2), Some(3)]),
            column(vec![Some(4), None]),
        )
        .unwrap();
        let expected: ArrayRef = Arc::new(Int16Array::from(vec![Some(8), None]));
        assert_eq!(&array(product), &expected);
        let nothing = call(
            Operator::Plus,
            column(vec![Some(1), Some(2)]),
            constant(None),
        );
        let expected: ArrayRef = Arc::new(Int16Array::from(vec![None, None]));
        assert_eq!(&array(nothing.unwrap()), &expected);
        let e = call(
            Operator::Multiply,
            column(vec![Some(300)]),
            constant(Some(300)),
        );
        assert!(e.unwrap_err().to_string().contains("smallint out of range"));
    }

    #[test]
    fn overflow_flags_agree_with_checked_arithmetic() {
        let edges: Vec<i16> = vec![
            i16::MIN,
            i16::MIN + 1,
            -182,
            -181,
            -2,
            -1,
            0,
            1,
            2,
            181,
            182,
            i16::MAX - 1,
            i16::MAX,
        ];
        for &a in &edges {
            for &b in &edges {
                let cases = [
                    (Overflowing::add(a, b), a.checked_add(b)),
                    (Overflowing::sub(a, b), a.checked_sub(b)),
                    (Overflowing::mul(a, b), a.checked_mul(b)),
                ];
                for ((value, flag), checked) in cases {
                    assert_eq!(flag.overflowed(), checked.is_none(), "{a}, {b}");
                    if let Some(checked) = checked {
                        assert_eq!(value, checked, "{a}, {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn only_overflowing_operators_have_a_checked_function() {
        assert!(CheckedArithmetic::udf(Operator::Divide).is_none());
        assert!(CheckedArithmetic::udf(Operator::Eq).is_none());
    }
}
