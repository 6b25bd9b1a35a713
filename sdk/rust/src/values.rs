//! How Rust argument and result types map to SQL types.

use std::fmt::Display;
use std::marker::PhantomData;

use crate::column::slot;
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

impl<'a, T: Arg<'a>> ArgReader<'a, T> {
    pub fn new(column: &'a Column) -> Self {
        Self {
            column,
            values: T::values(column),
            nulls: column.validity.is_some(),
            _t: PhantomData,
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
    type Values = Option<&'a VarBinary>;
    fn accepts(t: &SqlType) -> bool {
        matches!(t, SqlType::Text)
    }
    fn values(column: &'a Column) -> Self::Values {
        var_binary(column)
    }
    #[inline]
    fn read(values: Self::Values, _: &'a Column, row: usize) -> Self {
        // The host sends only valid UTF-8; this check cannot fail.
        values
            .and_then(|v| std::str::from_utf8(slot(v, row)).ok())
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
}

macro_rules! ret {
    ($t:ty, $sql:expr, |$v:ident| $value:expr) => {
        impl Ret for $t {
            fn sql_type() -> SqlType {
                $sql
            }
            #[inline]
            fn push(self, out: &mut ColumnBuilder) -> Result<(), String> {
                let $v = self;
                out.push($value)
            }
        }
    };
}

ret!(bool, SqlType::Boolean, |v| ValueRef::Boolean(v));
ret!(i8, SqlType::Int8, |v| ValueRef::Int8(v));
ret!(i16, SqlType::Int16, |v| ValueRef::Int16(v));
ret!(i32, SqlType::Int32, |v| ValueRef::Int32(v));
ret!(i64, SqlType::Int64, |v| ValueRef::Int64(v));
ret!(f32, SqlType::Float32, |v| ValueRef::Float32(v));
ret!(f64, SqlType::Float64, |v| ValueRef::Float64(v));
ret!(String, SqlType::Text, |v| ValueRef::Text(&v));
ret!(&str, SqlType::Text, |v| ValueRef::Text(v));
ret!(Vec<u8>, SqlType::Bytea, |v| ValueRef::Bytea(&v));
ret!(Date, SqlType::Date, |v| ValueRef::Date(v.0));
ret!(Timestamp, SqlType::Timestamp, |v| ValueRef::Timestamp(v.0));

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
