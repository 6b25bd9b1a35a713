//! How Rust argument and result types map to SQL types.

use std::fmt::Display;
use std::marker::PhantomData;

use crate::column::{slot, valid};
use crate::{Column, ColumnBuilder, SqlType, ValueRef, Values, VarBinary};

/// A `date`: days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub i32);

/// A `timestamp` (without time zone): microseconds since 1970-01-01 00:00:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// A `numeric(38, S)`: the unscaled value (`12345` is 123.45 when S = 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal<const S: u8>(pub i128);

/// A Rust type a function can take as an argument.
pub trait Arg<'a>: Sized {
    /// What is taken out of the column once per batch (a typed slice).
    type Values: Copy;
    /// Whether a column of type `t` can be read as this type.
    fn accepts(t: &SqlType) -> bool;
    /// Whether a null argument is passed (as `None`) rather than skipping the row.
    const NULLABLE: bool = false;
    /// The column's values, once per batch.
    fn values(column: &'a Column) -> Self::Values;
    /// `values` cut to exactly `rows` values, so that reading row
    /// `0..rows` needs no bounds check (the loop over a batch then compiles
    /// to straight-line, vectorizable code); `None` if there are fewer.
    #[inline]
    fn narrow(values: Self::Values, _rows: usize) -> Option<Self::Values> {
        Some(values)
    }
    /// The value of row `row` (not null unless `NULLABLE`).
    fn read(values: Self::Values, column: &'a Column, row: usize) -> Self;
}

/// Reads one argument column as `T`.
pub struct ArgReader<'a, T: Arg<'a>> {
    column: &'a Column,
    values: T::Values,
    nulls: bool,
    _t: PhantomData<T>,
}

impl<'a, T: Arg<'a>> Clone for ArgReader<'a, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<'a, T: Arg<'a>> Copy for ArgReader<'a, T> {}

impl<'a, T: Arg<'a>> ArgReader<'a, T> {
    pub fn new(column: &'a Column) -> Self {
        Self {
            column,
            values: T::values(column),
            nulls: column.validity.is_some(),
            _t: PhantomData,
        }
    }

    /// This reader with its values cut to `rows` rows (see [`Arg::narrow`]).
    #[inline]
    pub fn narrow(self, rows: usize) -> Option<Self> {
        Some(Self {
            values: T::narrow(self.values, rows)?,
            ..self
        })
    }

    /// The validity bitmap of the column when its nulls make the result
    /// null (`T` cannot take null), else `None`.
    pub fn required(&self) -> Option<&'a [u8]> {
        if T::NULLABLE {
            None
        } else {
            self.column.validity.as_deref()
        }
    }

    /// Whether the row is null and `T` cannot take null: the result is null.
    #[inline]
    pub fn skips(&self, row: usize) -> bool {
        !T::NULLABLE && self.nulls && self.column.is_null(row)
    }

    #[inline]
    pub fn get(&self, row: usize) -> T {
        T::read(self.values, self.column, row)
    }
}

/// `Arg` for a type read from a fixed-width column: `$t` built by `$make`
/// from the column's `$native` values.
macro_rules! fixed_arg {
    ($t:ty, $native:ty, $variant:ident, $sql:pat, |$v:ident| $make:expr) => {
        impl<'a> Arg<'a> for $t {
            type Values = &'a [$native];
            fn accepts(t: &SqlType) -> bool {
                matches!(t, $sql)
            }
            fn values(column: &'a Column) -> Self::Values {
                match &column.values {
                    Values::$variant(v) => v,
                    _ => &[],
                }
            }
            #[inline]
            fn narrow(values: Self::Values, rows: usize) -> Option<Self::Values> {
                values.get(..rows)
            }
            #[inline]
            fn read(values: Self::Values, _: &'a Column, row: usize) -> Self {
                let $v = values.get(row).copied().unwrap_or_default();
                $make
            }
        }
    };
}

fixed_arg!(bool, bool, Boolean, SqlType::Boolean, |v| v);
fixed_arg!(i8, i8, Int8, SqlType::Int8, |v| v);
fixed_arg!(i16, i16, Int16, SqlType::Int16, |v| v);
fixed_arg!(i32, i32, Int32, SqlType::Int32, |v| v);
fixed_arg!(i64, i64, Int64, SqlType::Int64, |v| v);
fixed_arg!(f32, f32, Float32, SqlType::Float32, |v| v);
fixed_arg!(f64, f64, Float64, SqlType::Float64, |v| v);
fixed_arg!(Date, i32, Date, SqlType::Date, |v| Date(v));
fixed_arg!(Timestamp, i64, Timestamp, SqlType::Timestamp, |v| Timestamp(v));

impl<'a, const S: u8> Arg<'a> for Decimal<S> {
    type Values = ();
    fn accepts(t: &SqlType) -> bool {
        matches!(t, SqlType::Decimal(s) if *s == S)
    }
    fn values(_: &'a Column) -> Self::Values {}
    fn read(_: (), column: &'a Column, row: usize) -> Self {
        match column.value(row) {
            Some(ValueRef::Decimal(v)) => Decimal(v),
            _ => Decimal(0),
        }
    }
}

fn var_binary(column: &Column) -> Option<&VarBinary> {
    match &column.values {
        Values::Text(v) | Values::Bytea(v) => Some(v),
        _ => None,
    }
}

impl<'a> Arg<'a> for &'a str {
    /// The whole batch's text, checked to be UTF-8 once, and its offsets.
    type Values = Option<(&'a str, &'a [u32])>;
    fn accepts(t: &SqlType) -> bool {
        matches!(t, SqlType::Text)
    }
    fn values(column: &'a Column) -> Self::Values {
        // The host sends only valid UTF-8, so this check cannot fail; it
        // runs once per batch, and a row is then a slice at two char
        // boundaries, which needs no check of its own.
        let v = var_binary(column)?;
        Some((std::str::from_utf8(&v.data).ok()?, &v.offsets))
    }
    #[inline]
    fn read(values: Self::Values, _: &'a Column, row: usize) -> Self {
        values
            .and_then(|(data, offsets)| {
                data.get(*offsets.get(row)? as usize..*offsets.get(row + 1)? as usize)
            })
            .unwrap_or_default()
    }
}

impl<'a> Arg<'a> for &'a [u8] {
    type Values = Option<&'a VarBinary>;
    fn accepts(t: &SqlType) -> bool {
        matches!(t, SqlType::Bytea)
    }
    fn values(column: &'a Column) -> Self::Values {
        var_binary(column)
    }
    #[inline]
    fn read(values: Self::Values, _: &'a Column, row: usize) -> Self {
        values.map(|v| slot(v, row)).unwrap_or_default()
    }
}

impl<'a, T: Arg<'a>> Arg<'a> for Option<T> {
    type Values = T::Values;
    const NULLABLE: bool = true;
    fn accepts(t: &SqlType) -> bool {
        T::accepts(t)
    }
    fn values(column: &'a Column) -> Self::Values {
        T::values(column)
    }
    #[inline]
    fn narrow(values: Self::Values, rows: usize) -> Option<Self::Values> {
        T::narrow(values, rows)
    }
    #[inline]
    fn read(values: Self::Values, column: &'a Column, row: usize) -> Self {
        (!column.is_null(row)).then(|| T::read(values, column, row))
    }
}

/// A Rust type a function can return.
pub trait Ret {
    /// The SQL type of the result.
    fn sql_type() -> SqlType;
    /// Appends the value to the result; `Err` is a row error.
    fn push(self, out: &mut ColumnBuilder) -> Result<(), String>;
    /// Whether [`collect`](Self::collect) builds columns of this type.
    #[doc(hidden)]
    const DENSE: bool = false;
    /// The column of `f(row)` for rows `0..rows`, computed in one loop
    /// straight into the column's values, for a fixed-width type that is
    /// never null or an error by itself. `f` is called only for rows that
    /// `validity` (an Arrow bitmap, `None`: every row) says are valid; the
    /// others hold zero. `None` for other types.
    #[doc(hidden)]
    #[inline]
    fn collect(
        _rows: usize,
        _validity: Option<Vec<u8>>,
        _f: impl FnMut(usize) -> Self,
    ) -> Option<Column>
    where
        Self: Sized,
    {
        None
    }
}

/// `Ret` for `$t`, pushed as the `ValueRef` `$value` makes of it, with any
/// further items after a `;`.
macro_rules! ret {
    ($t:ty, $sql:expr, |$v:ident| $value:expr $(; $($items:tt)*)?) => {
        impl Ret for $t {
            fn sql_type() -> SqlType {
                $sql
            }
            #[inline]
            fn push(self, out: &mut ColumnBuilder) -> Result<(), String> {
                let $v = self;
                out.push($value)
            }
            $($($items)*)?
        }
    };
}

/// `Ret` for a fixed-width type stored as `Values::$variant` of the values
/// `$native` makes of it.
macro_rules! fixed_ret {
    ($t:ty, $variant:ident, $sql:expr, |$v:ident| $native:expr) => {
        ret!($t, $sql, |$v| ValueRef::$variant($native);
            const DENSE: bool = true;
            #[inline]
            fn collect(
                rows: usize,
                validity: Option<Vec<u8>>,
                mut f: impl FnMut(usize) -> Self,
            ) -> Option<Column> {
                let values = match &validity {
                    None => (0..rows)
                        .map(|row| {
                            let $v = f(row);
                            $native
                        })
                        .collect(),
                    Some(bits) => (0..rows)
                        .map(|row| {
                            if valid(bits, row) {
                                let $v = f(row);
                                $native
                            } else {
                                Default::default()
                            }
                        })
                        .collect(),
                };
                Some(Column {
                    validity,
                    values: Values::$variant(values),
                })
            }
        );
    };
}

fixed_ret!(bool, Boolean, SqlType::Boolean, |v| v);
fixed_ret!(i8, Int8, SqlType::Int8, |v| v);
fixed_ret!(i16, Int16, SqlType::Int16, |v| v);
fixed_ret!(i32, Int32, SqlType::Int32, |v| v);
fixed_ret!(i64, Int64, SqlType::Int64, |v| v);
fixed_ret!(f32, Float32, SqlType::Float32, |v| v);
fixed_ret!(f64, Float64, SqlType::Float64, |v| v);
fixed_ret!(Date, Date, SqlType::Date, |v| v.0);
fixed_ret!(Timestamp, Timestamp, SqlType::Timestamp, |v| v.0);
ret!(String, SqlType::Text, |v| ValueRef::Text(&v));
ret!(&str, SqlType::Text, |v| ValueRef::Text(v));
ret!(Vec<u8>, SqlType::Bytea, |v| ValueRef::Bytea(&v));

impl<const S: u8> Ret for Decimal<S> {
    fn sql_type() -> SqlType {
        SqlType::Decimal(S)
    }
    fn push(self, out: &mut ColumnBuilder) -> Result<(), String> {
        out.push(ValueRef::Decimal(self.0))
    }
}

impl<T: Ret> Ret for Option<T> {
    fn sql_type() -> SqlType {
        T::sql_type()
    }
    #[inline]
    fn push(self, out: &mut ColumnBuilder) -> Result<(), String> {
        match self {
            Some(v) => v.push(out),
            None => {
                out.push_null();
                Ok(())
            }
        }
    }
}

impl<T: Ret, E: Display> Ret for Result<T, E> {
    fn sql_type() -> SqlType {
        T::sql_type()
    }
    #[inline]
    fn push(self, out: &mut ColumnBuilder) -> Result<(), String> {
        match self {
            Ok(v) => v.push(out),
            Err(e) => Err(e.to_string()),
        }
    }
}
