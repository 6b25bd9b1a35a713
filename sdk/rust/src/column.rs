//! Reading columns and building the result column.

use crate::{Column, SqlType, Values, VarBinary};

impl Column {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match &self.values {
            Values::Boolean(v) => v.len(),
            Values::Int8(v) => v.len(),
            Values::Int16(v) => v.len(),
            Values::Int32(v) | Values::Date(v) => v.len(),
            Values::Int64(v) | Values::Timestamp(v) => v.len(),
            Values::Float32(v) => v.len(),
            Values::Float64(v) => v.len(),
            Values::Text(v) | Values::Bytea(v) => v.offsets.len().saturating_sub(1),
            Values::Decimal(v) => v.len() / 16,
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether row `row` is null.
    pub fn is_null(&self, row: usize) -> bool {
        match &self.validity {
            None => false,
            Some(bits) => !valid(bits, row),
        }
    }

    /// The value of row `row` (`None` when null).
    pub fn value(&self, row: usize) -> Option<ValueRef<'_>> {
        if self.is_null(row) {
            return None;
        }
        Some(match &self.values {
            Values::Boolean(v) => ValueRef::Boolean(v[row]),
            Values::Int8(v) => ValueRef::Int8(v[row]),
            Values::Int16(v) => ValueRef::Int16(v[row]),
            Values::Int32(v) => ValueRef::Int32(v[row]),
            Values::Int64(v) => ValueRef::Int64(v[row]),
            Values::Float32(v) => ValueRef::Float32(v[row]),
            Values::Float64(v) => ValueRef::Float64(v[row]),
            Values::Text(v) => {
                ValueRef::Text(std::str::from_utf8(slot(v, row)).unwrap_or_default())
            }
            Values::Bytea(v) => ValueRef::Bytea(slot(v, row)),
            Values::Date(v) => ValueRef::Date(v[row]),
            Values::Timestamp(v) => ValueRef::Timestamp(v[row]),
            Values::Decimal(v) => {
                let mut le = [0u8; 16];
                le.copy_from_slice(&v[row * 16..row * 16 + 16]);
                ValueRef::Decimal(i128::from_le_bytes(le))
            }
        })
    }
}

/// Whether bit `row` of an Arrow validity bitmap is set (a bit past its end
/// is not).
#[inline]
pub(crate) fn valid(bits: &[u8], row: usize) -> bool {
    bits.get(row / 8).is_some_and(|b| b & (1 << (row % 8)) != 0)
}

pub(crate) fn slot(v: &VarBinary, row: usize) -> &[u8] {
    &v.data[v.offsets[row] as usize..v.offsets[row + 1] as usize]
}

/// One value of any type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Boolean(bool),
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    Text(&'a str),
    Bytea(&'a [u8]),
    Date(i32),
    Timestamp(i64),
    Decimal(i128),
}

/// Builds a result column of one type, row by row. The validity bitmap is
/// only built once a null arrives.
#[derive(Debug)]
pub struct ColumnBuilder {
    values: Values,
    validity: Option<Vec<u8>>,
    len: usize,
}

impl ColumnBuilder {
    /// An empty column of type `t`, with room for `rows` rows.
    pub fn new(t: SqlType, rows: usize) -> Self {
        let var = || VarBinary {
            offsets: {
                let mut o = Vec::with_capacity(rows + 1);
                o.push(0);
                o
            },
            data: Vec::new(),
        };
        let values = match t {
            SqlType::Boolean => Values::Boolean(Vec::with_capacity(rows)),
            SqlType::Int8 => Values::Int8(Vec::with_capacity(rows)),
            SqlType::Int16 => Values::Int16(Vec::with_capacity(rows)),
            SqlType::Int32 => Values::Int32(Vec::with_capacity(rows)),
            SqlType::Int64 => Values::Int64(Vec::with_capacity(rows)),
            SqlType::Float32 => Values::Float32(Vec::with_capacity(rows)),
            SqlType::Float64 => Values::Float64(Vec::with_capacity(rows)),
            SqlType::Text => Values::Text(var()),
            SqlType::Bytea => Values::Bytea(var()),
            SqlType::Date => Values::Date(Vec::with_capacity(rows)),
            SqlType::Timestamp => Values::Timestamp(Vec::with_capacity(rows)),
            SqlType::Decimal(_) => Values::Decimal(Vec::with_capacity(rows * 16)),
        };
        Self {
            values,
            validity: None,
            len: 0,
        }
    }

    #[inline]
    fn mark(&mut self, valid: bool) {
        let row = self.len;
        self.len += 1;
        if valid && self.validity.is_none() {
            return;
        }
        let bits = self.validity.get_or_insert_with(|| {
            // Every row so far was valid.
            let mut bits = vec![0xff; row.div_ceil(8)];
            if row % 8 != 0 {
                if let Some(last) = bits.last_mut() {
                    *last = (1u8 << (row % 8)) - 1;
                }
            }
            bits
        });
        if row % 8 == 0 {
            bits.push(0);
        }
        if valid {
            if let Some(last) = bits.last_mut() {
                *last |= 1 << (row % 8);
            }
        }
    }

    /// Appends a null.
    pub fn push_null(&mut self) {
        match &mut self.values {
            Values::Boolean(v) => v.push(false),
            Values::Int8(v) => v.push(0),
            Values::Int16(v) => v.push(0),
            Values::Int32(v) | Values::Date(v) => v.push(0),
            Values::Int64(v) | Values::Timestamp(v) => v.push(0),
            Values::Float32(v) => v.push(0.0),
            Values::Float64(v) => v.push(0.0),
            Values::Text(v) | Values::Bytea(v) => v.offsets.push(v.data.len() as u32),
            Values::Decimal(v) => v.extend_from_slice(&[0; 16]),
        }
        self.mark(false);
    }

    /// Appends a value; an error if it is not of the column's type.
    #[inline]
    pub fn push(&mut self, value: ValueRef<'_>) -> Result<(), String> {
        match (&mut self.values, value) {
            (Values::Boolean(v), ValueRef::Boolean(x)) => v.push(x),
            (Values::Int8(v), ValueRef::Int8(x)) => v.push(x),
            (Values::Int16(v), ValueRef::Int16(x)) => v.push(x),
            (Values::Int32(v), ValueRef::Int32(x)) | (Values::Date(v), ValueRef::Date(x)) => {
                v.push(x)
            }
            (Values::Int64(v), ValueRef::Int64(x))
            | (Values::Timestamp(v), ValueRef::Timestamp(x)) => v.push(x),
            (Values::Float32(v), ValueRef::Float32(x)) => v.push(x),
            (Values::Float64(v), ValueRef::Float64(x)) => v.push(x),
            (Values::Text(v), ValueRef::Text(x)) => {
                v.data.extend_from_slice(x.as_bytes());
                v.offsets.push(v.data.len() as u32);
            }
            (Values::Bytea(v), ValueRef::Bytea(x)) => {
                v.data.extend_from_slice(x);
                v.offsets.push(v.data.len() as u32);
            }
            (Values::Decimal(v), ValueRef::Decimal(x)) => v.extend_from_slice(&x.to_le_bytes()),
            (_, value) => return Err(format!("cannot store {value:?} in this column")),
        }
        self.mark(true);
        Ok(())
    }

    /// The finished column.
    pub fn finish(self) -> Column {
        Column {
            validity: self.validity,
            values: self.values,
        }
    }
}

/// The rows valid in every one of `bitmaps` (Arrow validity bitmaps of
/// `rows` rows; a short bitmap's missing bits are nulls), or `None` when
/// none is given: every row is valid.
#[doc(hidden)]
pub fn valid_rows(bitmaps: &[Option<&[u8]>], rows: usize) -> Option<Vec<u8>> {
    let mut all: Option<Vec<u8>> = None;
    for bits in bitmaps.iter().flatten() {
        let all = all.get_or_insert_with(|| vec![0xff; rows.div_ceil(8)]);
        for (i, byte) in all.iter_mut().enumerate() {
            *byte &= bits.get(i).copied().unwrap_or(0);
        }
    }
    all
}
