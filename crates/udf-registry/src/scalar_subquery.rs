//! The value of a scalar subquery, as PostgreSQL gives it.
//!
//! PostgreSQL lets a scalar subquery return no row (its value is NULL) or one
//! row, and fails with `more than one row returned by a subquery used as an
//! expression` (SQLSTATE 21000) when an outer row's subquery has a second
//! row. DataFusion instead needs a correlated scalar subquery to be
//! *aggregated* before it plans it, and it turns an uncorrelated one into a
//! join that repeats the outer row once per subquery row.
//!
//! The frontend puts [`SubqueryRows`] on top of every scalar subquery that
//! is not one row already, and [`SubqueryValue`] around its use. The
//! aggregate keeps the first two rows of each group; DataFusion decorrelates
//! it like any aggregated subquery. The function turns those rows into the
//! value, or the error, when the outer row actually uses it — so a group no
//! outer row asks for does not fail the query, as in PostgreSQL.
//!
//! Neither is a Wasm function, but both travel in plans to the scheduler and
//! executors like one, so they live beside the codec that carries them.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, new_empty_array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

/// The message PostgreSQL gives when a scalar subquery has a second row.
pub const MORE_THAN_ONE_ROW: &str =
    "more than one row returned by a subquery used as an expression";

/// How many rows [`SubqueryRows`] keeps: enough to tell one from many.
const KEPT: usize = 2;

/// `subquery_rows(x)`: the first two values of `x` in the group, as a list.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SubqueryRows {
    signature: Signature,
}

impl SubqueryRows {
    /// The aggregate, shared.
    pub fn udaf() -> Arc<AggregateUDF> {
        static UDAF: LazyLock<Arc<AggregateUDF>> = LazyLock::new(|| {
            Arc::new(AggregateUDF::from(SubqueryRows {
                signature: Signature::any(1, Volatility::Immutable),
            }))
        });
        UDAF.clone()
    }
}

fn list_of(item: &DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item.clone(), true)))
}

impl AggregateUDFImpl for SubqueryRows {
    fn name(&self) -> &str {
        "subquery_rows"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(list_of(&arg_types[0]))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(FirstRows {
            rows: Vec::with_capacity(KEPT),
            item: args.expr_fields[0].data_type().clone(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "rows"),
            args.return_field.data_type().clone(),
            true,
        ))])
    }
}

#[derive(Debug)]
struct FirstRows {
    rows: Vec<ScalarValue>,
    item: DataType,
}

impl FirstRows {
    fn keep(&mut self, values: &ArrayRef) -> Result<()> {
        let wanted = (KEPT - self.rows.len()).min(values.len());
        for index in 0..wanted {
            self.rows.push(ScalarValue::try_from_array(values, index)?);
        }
        Ok(())
    }
}

impl Accumulator for FirstRows {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.keep(&values[0])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for index in 0..lists.len() {
            if lists.is_valid(index) {
                self.keep(&lists.value(index))?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::List(ScalarValue::new_list_nullable(
            &self.rows, &self.item,
        )))
    }

    fn size(&self) -> usize {
        size_of_val(self) + ScalarValue::size_of_vec(&self.rows) - size_of_val(&self.rows)
    }
}

/// `subquery_value(rows [, field])`: NULL for no row, the value of one row
/// (or, given a field name, that field of the row's struct), and
/// [`MORE_THAN_ONE_ROW`] for more.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SubqueryValue {
    signature: Signature,
}

impl SubqueryValue {
    /// The function, shared.
    pub fn udf() -> Arc<ScalarUDF> {
        static UDF: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| {
            Arc::new(ScalarUDF::from(SubqueryValue {
                signature: Signature::one_of(
                    vec![TypeSignature::Any(1), TypeSignature::Any(2)],
                    Volatility::Immutable,
                ),
            }))
        });
        UDF.clone()
    }
}

/// The type of a row's value, or of its field `field`.
fn value_type(rows: &DataType, field: Option<&str>) -> Result<DataType> {
    let DataType::List(item) = rows else {
        return exec_err!("subquery_value takes the list subquery_rows makes, not {rows}");
    };
    let Some(name) = field else {
        return Ok(item.data_type().clone());
    };
    match item.data_type() {
        DataType::Struct(fields) => match fields.find(name) {
            Some((_, field)) => Ok(field.data_type().clone()),
            None => exec_err!("subquery rows have no field {name}"),
        },
        other => exec_err!("subquery rows are not structs but {other}"),
    }
}

impl ScalarUDFImpl for SubqueryValue {
    fn name(&self) -> &str {
        "subquery_value"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [rows] => value_type(rows, None),
            _ => exec_err!("subquery_value with a field needs the field's name as a constant"),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let field = match args.scalar_arguments.get(1) {
            None => None,
            Some(Some(ScalarValue::Utf8(Some(name)))) => Some(name.as_str()),
            Some(_) => return exec_err!("subquery_value's field name must be a constant string"),
        };
        let data_type = value_type(args.arg_fields[0].data_type(), field)?;
        Ok(Arc::new(Field::new(self.name(), data_type, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let item = args.return_field.data_type();
        let field = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name)))) => Some(name.as_str()),
            _ => None,
        };
        let lists = args.args[0].to_array(args.number_rows)?;
        let lists = lists.as_list::<i32>();
        let values = (0..lists.len())
            .map(|index| {
                if lists.is_null(index) {
                    return ScalarValue::try_from(item);
                }
                let rows = lists.value(index);
                let rows = match field {
                    None => rows,
                    Some(name) => match rows.as_struct().column_by_name(name) {
                        Some(column) => column.clone(),
                        None => return exec_err!("subquery rows have no field {name}"),
                    },
                };
                match rows.len() {
                    0 => ScalarValue::try_from(item),
                    1 => ScalarValue::try_from_array(&rows, 0),
                    _ => exec_err!("{MORE_THAN_ONE_ROW}"),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        if values.is_empty() {
            return Ok(ColumnarValue::Array(new_empty_array(item)));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(values)?))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;
    use datafusion::config::ConfigOptions;

    use super::*;

    fn rows(batches: &[&[i64]]) -> ScalarValue {
        let mut accumulator = FirstRows {
            rows: vec![],
            item: DataType::Int64,
        };
        for batch in batches {
            accumulator
                .update_batch(&[Arc::new(Int64Array::from(batch.to_vec()))])
                .unwrap();
        }
        accumulator.evaluate().unwrap()
    }

    fn value(rows: ScalarValue) -> Result<ScalarValue> {
        let args = ScalarFunctionArgs {
            args: vec![ColumnarValue::Scalar(rows.clone())],
            arg_fields: vec![Arc::new(Field::new("rows", rows.data_type(), true))],
            number_rows: 1,
            return_field: Arc::new(Field::new("value", DataType::Int64, true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        match SubqueryValue::udf().invoke_with_args(args)? {
            ColumnarValue::Array(array) => ScalarValue::try_from_array(&array, 0),
            ColumnarValue::Scalar(scalar) => Ok(scalar),
        }
    }

    #[test]
    fn no_row_is_null_one_row_is_its_value_more_fail() {
        assert_eq!(value(rows(&[])).unwrap(), ScalarValue::Int64(None));
        assert_eq!(value(rows(&[&[7]])).unwrap(), ScalarValue::Int64(Some(7)));
        for many in [rows(&[&[1, 2, 3]]), rows(&[&[1], &[2]])] {
            let error = value(many).unwrap_err();
            assert!(error.to_string().contains(MORE_THAN_ONE_ROW), "{error}");
        }
    }

    #[test]
    fn partial_states_merge_keeping_two_rows() {
        let mut merged = FirstRows {
            rows: vec![],
            item: DataType::Int64,
        };
        let states = ScalarValue::iter_to_array([rows(&[]), rows(&[&[5]]), rows(&[&[6, 7]])]);
        merged.merge_batch(&[states.unwrap()]).unwrap();
        assert_eq!(merged.rows.len(), 2);
        assert!(value(merged.evaluate().unwrap()).is_err());
    }
}
