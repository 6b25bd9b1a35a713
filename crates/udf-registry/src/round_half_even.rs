//! Rounding of `double precision` and `real` as PostgreSQL rounds them.
//!
//! PostgreSQL rounds a float to an integer half to even (`rint`):
//! `round(2.5::float8)` is `2`, `CAST(-0.5::float8 AS int)` is `-0`, then
//! `0`. DataFusion's `round` rounds half away from zero, and its cast to an
//! integer truncates. [`RoundHalfEven`] is the rounding the frontend puts
//! in their place; like the checked arithmetic, it travels in plans to the
//! scheduler and executors through Quiver's codecs.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Rounds a `Float32` or `Float64` to the nearest integer, ties to even;
/// the result has the argument's type.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RoundHalfEven {
    signature: Signature,
}

impl RoundHalfEven {
    /// The one instance.
    pub fn udf() -> Arc<ScalarUDF> {
        static FUNCTION: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| {
            Arc::new(ScalarUDF::from(RoundHalfEven {
                signature: Signature::uniform(
                    1,
                    vec![DataType::Float32, DataType::Float64],
                    Volatility::Immutable,
                ),
            }))
        });
        FUNCTION.clone()
    }
}

impl ScalarUDFImpl for RoundHalfEven {
    fn name(&self) -> &str {
        "round_half_even"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Named as the `round` call it replaces, so that the columns a plan's
    /// nodes refer to by name keep their names.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        let [arg] = args else {
            return exec_err!("{} takes one argument", self.name());
        };
        Ok(format!("round({})", arg.schema_name()))
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t @ (DataType::Float32 | DataType::Float64)] => Ok(t.clone()),
            _ => exec_err!("{} takes a float, not {arg_types:?}", self.name()),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return exec_err!("{} takes one argument", self.name());
        };
        Ok(match arg {
            ColumnarValue::Scalar(ScalarValue::Float64(v)) => {
                ColumnarValue::Scalar(ScalarValue::Float64(v.map(f64::round_ties_even)))
            }
            ColumnarValue::Scalar(ScalarValue::Float32(v)) => {
                ColumnarValue::Scalar(ScalarValue::Float32(v.map(f32::round_ties_even)))
            }
            ColumnarValue::Array(array) => {
                let rounded: ArrayRef = match array.data_type() {
                    DataType::Float64 => Arc::new(
                        array
                            .as_primitive::<Float64Type>()
                            .unary::<_, Float64Type>(f64::round_ties_even),
                    ),
                    DataType::Float32 => Arc::new(
                        array
                            .as_primitive::<Float32Type>()
                            .unary::<_, Float32Type>(f32::round_ties_even),
                    ),
                    other => return exec_err!("{} takes a float, not {other}", self.name()),
                };
                ColumnarValue::Array(rounded)
            }
            ColumnarValue::Scalar(other) => {
                return exec_err!("{} takes a float, not {}", self.name(), other.data_type());
            }
        })
    }
}
