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

use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
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
        let kernel = match self.op {
            Operator::Plus => numeric::add,
            Operator::Minus => numeric::sub,
            _ => numeric::mul,
        };
        apply(left, right, kernel).map_err(|e| match e {
            DataFusionError::ArrowError(error, _)
                if matches!(*error, ArrowError::ArithmeticOverflow(_)) =>
            {
                DataFusionError::ArrowError(
                    Box::new(ArrowError::ArithmeticOverflow(format!(
                        "{} out of range",
                        type_name(args.return_field.data_type())
                    ))),
                    None,
                )
            }
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array};
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
    fn only_overflowing_operators_have_a_checked_function() {
        assert!(CheckedArithmetic::udf(Operator::Divide).is_none());
        assert!(CheckedArithmetic::udf(Operator::Eq).is_none());
    }
}
