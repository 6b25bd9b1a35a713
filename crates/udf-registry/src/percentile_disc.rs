//! `percentile_disc(f) WITHIN GROUP (ORDER BY x)`: PostgreSQL's discrete
//! percentile, the first value (in the group's order) whose position in the
//! ordered non-NULL values reaches the fraction `f` of them — a value of
//! the input, of any type that orders (numbers, text, dates, ...). DataFusion
//! has `percentile_cont` only. The frontend registers it; it travels in
//! plans through Quiver's codecs, so a cluster's executors aggregate their
//! partitions' values and the states merge.

use std::cmp::Ordering;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Signature, Volatility,
};

/// The start of the error for a fraction outside [0, 1] (SQLSTATE 22003).
pub const PERCENTILE_OUT_OF_RANGE: &str = "percentile value";

/// `percentile_disc`: the ordered values, then the fraction.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PercentileDisc {
    signature: Signature,
}

impl PercentileDisc {
    /// The one instance.
    pub fn udaf() -> Arc<AggregateUDF> {
        static FUNCTION: LazyLock<Arc<AggregateUDF>> = LazyLock::new(|| {
            Arc::new(AggregateUDF::from(PercentileDisc {
                signature: Signature::any(2, Volatility::Immutable),
            }))
        });
        FUNCTION.clone()
    }
}

impl AggregateUDFImpl for PercentileDisc {
    fn name(&self) -> &str {
        "percentile_disc"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let values = Field::new_list_field(args.input_fields[0].data_type().clone(), true);
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "percentile_disc"),
            DataType::List(Arc::new(values)),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        // A constant: evaluated without rows.
        let constant =
            || DataFusionError::Plan("percentile_disc's fraction must be a constant".into());
        let fraction = args.exprs.get(1).ok_or_else(constant)?;
        let fraction = match fraction.evaluate(&RecordBatch::new_empty(Arc::new(Schema::empty()))) {
            Ok(ColumnarValue::Scalar(fraction)) => fraction,
            _ => return Err(constant()),
        };
        let fraction = match fraction.cast_to(&DataType::Float64)? {
            ScalarValue::Float64(Some(f)) if (0.0..=1.0).contains(&f) => Some(f),
            ScalarValue::Float64(None) => None,
            other => {
                return Err(DataFusionError::Execution(format!(
                    "{PERCENTILE_OUT_OF_RANGE} {other} is not between 0 and 1"
                )));
            }
        };
        let descending = args
            .order_bys
            .first()
            .is_some_and(|sort| sort.options.descending);
        Ok(Box::new(DiscAccumulator {
            data_type: args.expr_fields[0].data_type().clone(),
            fraction,
            descending,
            values: Vec::new(),
        }))
    }

    fn supports_within_group_clause(&self) -> bool {
        true
    }
}

/// One group's values.
#[derive(Debug)]
struct DiscAccumulator {
    data_type: DataType,
    /// `None`: a NULL fraction, which makes the result NULL.
    fraction: Option<f64>,
    descending: bool,
    values: Vec<ScalarValue>,
}

impl DiscAccumulator {
    fn add(&mut self, values: &ArrayRef) -> Result<()> {
        for i in 0..values.len() {
            if values.is_valid(i) {
                self.values.push(ScalarValue::try_from_array(values, i)?);
            }
        }
        Ok(())
    }
}

impl Accumulator for DiscAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for list in lists.iter().flatten() {
            self.add(&list)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = ScalarValue::new_list_nullable(&self.values, &self.data_type);
        Ok(vec![ScalarValue::List(values)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let null = ScalarValue::try_from(&self.data_type)?;
        let Some(fraction) = self.fraction else {
            return Ok(null);
        };
        if self.values.is_empty() {
            return Ok(null);
        }
        let descending = self.descending;
        self.values.sort_by(|a, b| {
            let order = a.partial_cmp(b).unwrap_or(Ordering::Equal);
            if descending { order.reverse() } else { order }
        });
        // PostgreSQL: the first value whose cumulative share reaches the
        // fraction.
        let n = self.values.len();
        let position = ((fraction * n as f64).ceil() as usize).clamp(1, n);
        Ok(self.values[position - 1].clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + ScalarValue::size_of_vec(&self.values)
    }
}
