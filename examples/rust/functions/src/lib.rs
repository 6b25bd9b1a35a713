//! Example Quiver functions: each is an ordinary Rust function.

use quiver_udf::{Column, ColumnBuilder, Date, Decimal, RawFunction, RowError, SqlType, Timestamp};
use sha2::{Digest, Sha256};

quiver_udf::functions! {
    /// Greatest common divisor (numeric).
    fn gcd(a: i64, b: i64) -> i64 {
        let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a as i64
    }

    /// Upper-cases text; null stays null (string, nullable).
    fn upper(s: Option<&str>) -> Option<String> {
        s.map(str::to_uppercase)
    }

    /// Null becomes zero: called for null rows too (nullable argument).
    fn zero_if_null(x: Option<f64>) -> f64 {
        x.unwrap_or(0.0)
    }

    /// Integer division that reports a row error for a zero divisor.
    fn checked_div(a: i64, b: i64) -> Result<i64, String> {
        a.checked_div(b).ok_or_else(|| format!("cannot divide {a} by {b}"))
    }

    /// SHA-256 of text, hex encoded (heavier work per row).
    fn sha256_hex(s: &str) -> String {
        let digest = Sha256::digest(s.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push(char::from_digit((byte >> 4) as u32, 16).unwrap_or('0'));
            hex.push(char::from_digit((byte & 15) as u32, 16).unwrap_or('0'));
        }
        hex
    }

    /// x + 1 over double precision (for the benchmark).
    fn add_one(x: f64) -> f64 {
        x + 1.0
    }

    /// x * 2 + 1 over bigint (for the benchmark).
    fn mul2_add1(x: i64) -> i64 {
        x.wrapping_mul(2).wrapping_add(1)
    }

    /// Every other type, one function each.
    fn negate_bool(b: bool) -> bool {
        !b
    }
    fn tiny_double(x: i8) -> i8 {
        x.wrapping_mul(2)
    }
    fn small_double(x: i16) -> i16 {
        x.wrapping_mul(2)
    }
    fn int_double(x: i32) -> i32 {
        x.wrapping_mul(2)
    }
    fn real_half(x: f32) -> f32 {
        x / 2.0
    }
    fn bytes_reversed(b: &[u8]) -> Vec<u8> {
        b.iter().rev().copied().collect()
    }
    fn next_day(d: Date) -> Date {
        Date(d.0 + 1)
    }
    fn plus_hour(t: Timestamp) -> Timestamp {
        Timestamp(t.0 + 3_600_000_000)
    }
    fn add_cent(x: Decimal<2>) -> Decimal<2> {
        Decimal(x.0 + 1)
    }

    @raw first_non_null = FirstNonNull;
}

/// `first_non_null(anyelement, anyelement) -> anyelement`: the first argument
/// unless it is null, for arguments of any one type (polymorphic).
struct FirstNonNull;

impl RawFunction for FirstNonNull {
    fn return_type(args: &[SqlType]) -> Result<SqlType, String> {
        match args {
            [a, b] if a == b => Ok(*a),
            [a, b] => Err(format!("arguments must have one type, not {a:?} and {b:?}")),
            _ => Err("takes two arguments".into()),
        }
    }

    fn call(args: &[Column], rows: usize) -> Result<Column, RowError> {
        let [a, b] = args else {
            return Err(RowError { row: 0, message: "takes two arguments".into() });
        };
        let t = type_of(a);
        let mut out = ColumnBuilder::new(t, rows);
        for row in 0..rows {
            match a.value(row).or_else(|| b.value(row)) {
                Some(v) => out
                    .push(v)
                    .map_err(|message| RowError { row: row as u32, message })?,
                None => out.push_null(),
            }
        }
        Ok(out.finish())
    }
}

fn type_of(c: &Column) -> SqlType {
    use quiver_udf::Values;
    match &c.values {
        Values::Boolean(_) => SqlType::Boolean,
        Values::Int8(_) => SqlType::Int8,
        Values::Int16(_) => SqlType::Int16,
        Values::Int32(_) => SqlType::Int32,
        Values::Int64(_) => SqlType::Int64,
        Values::Float32(_) => SqlType::Float32,
        Values::Float64(_) => SqlType::Float64,
        Values::Text(_) => SqlType::Text,
        Values::Bytea(_) => SqlType::Bytea,
        Values::Date(_) => SqlType::Date,
        Values::Timestamp(_) => SqlType::Timestamp,
        // The scale is the caller's: the host knows it from the declared type.
        Values::Decimal(_) => SqlType::Decimal(0),
    }
}
