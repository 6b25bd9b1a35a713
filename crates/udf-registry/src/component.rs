//! The component ABI: bindings generated from `wit/udf.wit`, and the
//! conversion of Arrow arrays to and from its columns.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Decimal128Array, StringArray,
};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimestampMicrosecondType,
};

use crate::types::{DECIMAL_PRECISION, SqlType};
use crate::{Error, Result};

/// The host side of each kind of function: a world per kind, so a
/// component needs to export only the interfaces it implements.
pub(crate) mod scalars {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "scalars",
    });
}

pub(crate) mod aggregates {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "aggregates",
        with: { "quiver:udf/types": super::scalars::quiver::udf::types },
    });
}

pub(crate) mod tables {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "tables",
        with: { "quiver:udf/types": super::scalars::quiver::udf::types },
    });
}

pub(crate) mod transforms {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "transforms",
        with: { "quiver:udf/types": super::scalars::quiver::udf::types },
    });
}

pub(crate) use scalars::quiver::udf::types::{
    Column, RowError, SqlType as WitType, Values, VarBinary,
};

impl From<SqlType> for WitType {
    fn from(t: SqlType) -> Self {
        match t {
            SqlType::Boolean => WitType::Boolean,
            SqlType::Int8 => WitType::Int8,
            SqlType::Int16 => WitType::Int16,
            SqlType::Int32 => WitType::Int32,
            SqlType::Int64 => WitType::Int64,
            SqlType::Float32 => WitType::Float32,
            SqlType::Float64 => WitType::Float64,
            // `anyelement` never reaches a guest: calls carry actual types.
            SqlType::Text | SqlType::AnyElement => WitType::Text,
            SqlType::Bytea => WitType::Bytea,
            SqlType::Date => WitType::Date,
            SqlType::Timestamp => WitType::Timestamp,
            SqlType::Decimal { scale } => WitType::Decimal(scale),
        }
    }
}

impl From<WitType> for SqlType {
    fn from(t: WitType) -> Self {
        match t {
            WitType::Boolean => SqlType::Boolean,
            WitType::Int8 => SqlType::Int8,
            WitType::Int16 => SqlType::Int16,
            WitType::Int32 => SqlType::Int32,
            WitType::Int64 => SqlType::Int64,
            WitType::Float32 => SqlType::Float32,
            WitType::Float64 => SqlType::Float64,
            WitType::Text => SqlType::Text,
            WitType::Bytea => SqlType::Bytea,
            WitType::Date => SqlType::Date,
            WitType::Timestamp => SqlType::Timestamp,
            WitType::Decimal(scale) => SqlType::Decimal {
                scale: scale.min(DECIMAL_PRECISION),
            },
        }
    }
}

/// The column a guest receives for `array`, whose SQL type is `ty`.
pub(crate) fn to_column(array: &ArrayRef, ty: SqlType) -> Result<Column> {
    let target = ty
        .data_type()
        .ok_or_else(|| Error::Runtime("anyelement has no values".into()))?;
    let array = if array.data_type() == &target {
        array.clone()
    } else {
        cast(array, &target).map_err(|e| Error::Runtime(format!("cannot pass {ty}: {e}")))?
    };
    let validity = array
        .nulls()
        .filter(|n| n.null_count() > 0)
        .map(|n| n.inner().sliced().as_slice().to_vec());
    let values = match ty {
        SqlType::Boolean => Values::Boolean(array.as_boolean().values().iter().collect()),
        SqlType::Int8 => Values::Int8(array.as_primitive::<Int8Type>().values().to_vec()),
        SqlType::Int16 => Values::Int16(array.as_primitive::<Int16Type>().values().to_vec()),
        SqlType::Int32 => Values::Int32(array.as_primitive::<Int32Type>().values().to_vec()),
        SqlType::Int64 => Values::Int64(array.as_primitive::<Int64Type>().values().to_vec()),
        SqlType::Float32 => Values::Float32(array.as_primitive::<Float32Type>().values().to_vec()),
        SqlType::Float64 => Values::Float64(array.as_primitive::<Float64Type>().values().to_vec()),
        SqlType::Text => {
            let a = array.as_string::<i32>();
            Values::Text(var_binary(a.value_offsets(), a.value_data()))
        }
        SqlType::Bytea => {
            let a = array.as_binary::<i32>();
            Values::Bytea(var_binary(a.value_offsets(), a.value_data()))
        }
        SqlType::Date => Values::Date(array.as_primitive::<Date32Type>().values().to_vec()),
        SqlType::Timestamp => Values::Timestamp(
            array
                .as_primitive::<TimestampMicrosecondType>()
                .values()
                .to_vec(),
        ),
        SqlType::Decimal { .. } => Values::Decimal(
            array
                .as_primitive::<Decimal128Type>()
                .values()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        SqlType::AnyElement => return Err(Error::Runtime("anyelement has no values".into())),
    };
    Ok(Column { validity, values })
}

pub(crate) fn var_binary(offsets: &[i32], data: &[u8]) -> VarBinary {
    let first = offsets.first().copied().unwrap_or(0);
    let last = offsets.last().copied().unwrap_or(0);
    VarBinary {
        offsets: offsets.iter().map(|o| (o - first) as u32).collect(),
        data: data[first as usize..last as usize].to_vec(),
    }
}

/// The Arrow array for a guest's result column, checked against the type the
/// function promised and the number of rows.
pub(crate) fn from_column(column: Column, ty: SqlType, rows: usize) -> Result<ArrayRef> {
    let bad = |what: String| Error::Runtime(format!("the function returned {what}"));
    let nulls = match column.validity {
        None => None,
        Some(bits) => {
            if bits.len() * 8 < rows {
                return Err(bad(format!(
                    "a validity bitmap of {} bytes for {rows} rows",
                    bits.len()
                )));
            }
            Some(NullBuffer::new(BooleanBuffer::new(
                Buffer::from_vec(bits),
                0,
                rows,
            )))
        }
    };
    fn check<T>(values: Vec<T>, rows: usize) -> Result<Vec<T>> {
        if values.len() == rows {
            Ok(values)
        } else {
            Err(Error::Runtime(format!(
                "the function returned {} values for {rows} rows",
                values.len()
            )))
        }
    }
    fn primitive<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
        values: Vec<T::Native>,
        rows: usize,
        nulls: Option<NullBuffer>,
    ) -> Result<datafusion::arrow::array::PrimitiveArray<T>> {
        Ok(datafusion::arrow::array::PrimitiveArray::<T>::new(
            ScalarBuffer::from(check(values, rows)?),
            nulls,
        ))
    }
    let array: ArrayRef = match (ty, column.values) {
        (SqlType::Boolean, Values::Boolean(v)) => {
            let v = check(v, rows)?;
            Arc::new(BooleanArray::new(BooleanBuffer::from(v), nulls))
        }
        (SqlType::Int8, Values::Int8(v)) => {
            Arc::new(primitive::<Int8Type>(v, rows, nulls)?) as ArrayRef
        }
        (SqlType::Int16, Values::Int16(v)) => Arc::new(primitive::<Int16Type>(v, rows, nulls)?),
        (SqlType::Int32, Values::Int32(v)) => Arc::new(primitive::<Int32Type>(v, rows, nulls)?),
        (SqlType::Int64, Values::Int64(v)) => Arc::new(primitive::<Int64Type>(v, rows, nulls)?),
        (SqlType::Float32, Values::Float32(v)) => {
            Arc::new(primitive::<Float32Type>(v, rows, nulls)?)
        }
        (SqlType::Float64, Values::Float64(v)) => {
            Arc::new(primitive::<Float64Type>(v, rows, nulls)?)
        }
        (SqlType::Date, Values::Date(v)) => Arc::new(primitive::<Date32Type>(v, rows, nulls)?),
        (SqlType::Timestamp, Values::Timestamp(v)) => {
            Arc::new(primitive::<TimestampMicrosecondType>(v, rows, nulls)?)
        }
        (SqlType::Text, Values::Text(v)) => {
            let offsets = offsets(v.offsets, v.data.len(), rows)?;
            Arc::new(
                StringArray::try_new(offsets, Buffer::from_vec(v.data), nulls)
                    .map_err(|e| bad(format!("invalid text: {e}")))?,
            )
        }
        (SqlType::Bytea, Values::Bytea(v)) => {
            let offsets = offsets(v.offsets, v.data.len(), rows)?;
            Arc::new(
                BinaryArray::try_new(offsets, Buffer::from_vec(v.data), nulls)
                    .map_err(|e| bad(format!("invalid bytea: {e}")))?,
            )
        }
        (SqlType::Decimal { scale }, Values::Decimal(bytes)) => {
            if bytes.len() != rows * 16 {
                return Err(bad(format!(
                    "{} decimal bytes for {rows} rows",
                    bytes.len()
                )));
            }
            let values: Vec<i128> = bytes
                .chunks_exact(16)
                .map(|c| {
                    let mut le = [0u8; 16];
                    le.copy_from_slice(c);
                    i128::from_le_bytes(le)
                })
                .collect();
            Arc::new(
                Decimal128Array::new(ScalarBuffer::from(values), nulls)
                    .with_precision_and_scale(DECIMAL_PRECISION, scale as i8)
                    .map_err(|e| bad(format!("invalid decimals: {e}")))?,
            )
        }
        (expected, got) => {
            return Err(bad(format!(
                "{} values where {expected} was declared",
                SqlType::from(values_type(&got))
            )));
        }
    };
    Ok(array)
}

pub(crate) fn offsets(
    offsets: Vec<u32>,
    data_len: usize,
    rows: usize,
) -> Result<OffsetBuffer<i32>> {
    let bad = |what: &str| Error::Runtime(format!("the function returned {what}"));
    if offsets.len() != rows + 1 {
        return Err(bad("offsets whose count is not rows + 1"));
    }
    if offsets.last().is_some_and(|l| *l as usize > data_len) || data_len > i32::MAX as usize {
        return Err(bad("offsets past the end of the data"));
    }
    let offsets: Vec<i32> = offsets.into_iter().map(|o| o as i32).collect();
    if offsets.windows(2).any(|w| w[0] > w[1]) {
        return Err(bad("decreasing offsets"));
    }
    Ok(OffsetBuffer::new(ScalarBuffer::from(offsets)))
}

fn values_type(values: &Values) -> WitType {
    match values {
        Values::Boolean(_) => WitType::Boolean,
        Values::Int8(_) => WitType::Int8,
        Values::Int16(_) => WitType::Int16,
        Values::Int32(_) => WitType::Int32,
        Values::Int64(_) => WitType::Int64,
        Values::Float32(_) => WitType::Float32,
        Values::Float64(_) => WitType::Float64,
        Values::Text(_) => WitType::Text,
        Values::Bytea(_) => WitType::Bytea,
        Values::Date(_) => WitType::Date,
        Values::Timestamp(_) => WitType::Timestamp,
        Values::Decimal(_) => WitType::Decimal(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Date32Array, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
        TimestampMicrosecondArray,
    };

    #[test]
    fn every_type_survives_the_trip_to_a_column_and_back() {
        let arrays: Vec<(SqlType, ArrayRef)> = vec![
            (
                SqlType::Boolean,
                Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            ),
            (
                SqlType::Int8,
                Arc::new(Int8Array::from(vec![Some(1), None, Some(-3)])),
            ),
            (
                SqlType::Int16,
                Arc::new(Int16Array::from(vec![Some(1), None, Some(-3)])),
            ),
            (
                SqlType::Int32,
                Arc::new(Int32Array::from(vec![Some(1), None, Some(-3)])),
            ),
            (
                SqlType::Int64,
                Arc::new(Int64Array::from(vec![Some(1), None, Some(-3)])),
            ),
            (
                SqlType::Float32,
                Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-3.0)])),
            ),
            (
                SqlType::Float64,
                Arc::new(Float64Array::from(vec![Some(1.5), None, Some(-3.0)])),
            ),
            (
                SqlType::Text,
                Arc::new(StringArray::from(vec![Some("a"), None, Some("ünï")])),
            ),
            (
                SqlType::Bytea,
                Arc::new(BinaryArray::from(vec![
                    Some(&b"\x00\x01"[..]),
                    None,
                    Some(b""),
                ])),
            ),
            (
                SqlType::Date,
                Arc::new(Date32Array::from(vec![Some(19000), None, Some(-1)])),
            ),
            (
                SqlType::Timestamp,
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(1),
                    None,
                    Some(-1),
                ])),
            ),
            (
                SqlType::Decimal { scale: 2 },
                Arc::new(
                    Decimal128Array::from(vec![Some(12345), None, Some(-1)])
                        .with_precision_and_scale(38, 2)
                        .expect("decimal"),
                ),
            ),
        ];
        for (ty, array) in arrays {
            // A slice with an offset exercises the bitmap and offset rebasing.
            let sliced = array.slice(1, 2);
            let column = to_column(&sliced, ty).expect("to column");
            let back = from_column(column, ty, 2).expect("from column");
            assert_eq!(&back, &sliced, "{ty}");
        }
    }

    #[test]
    fn a_result_of_the_wrong_shape_is_an_error() {
        let column = Column {
            validity: None,
            values: Values::Int32(vec![1, 2]),
        };
        assert!(from_column(column.clone(), SqlType::Int64, 2).is_err());
        assert!(from_column(column, SqlType::Int32, 3).is_err());
        let text = Column {
            validity: None,
            values: Values::Text(VarBinary {
                offsets: vec![0, 5],
                data: b"ab".to_vec(),
            }),
        };
        assert!(from_column(text, SqlType::Text, 1).is_err());
    }
}
