//! [`SqlType`]: the SQL types a Wasm function can take and return.

use std::fmt;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::sql::sqlparser::ast::{DataType as AstType, ExactNumberInfo, TimezoneInfo};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Precision of every decimal a Wasm function sees: `numeric(38, scale)`.
pub const DECIMAL_PRECISION: u8 = 38;

/// A SQL type of a Wasm function's argument or result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlType {
    Boolean,
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Text,
    Bytea,
    Date,
    /// `timestamp without time zone`, microseconds.
    Timestamp,
    /// `numeric(38, scale)`.
    Decimal {
        scale: u8,
    },
    /// PostgreSQL's `anyelement`: any of the types above; the function says
    /// what it returns for the actual argument types.
    AnyElement,
}

impl SqlType {
    /// The type a SQL type name in `CREATE FUNCTION` / `DROP FUNCTION` means.
    pub fn from_ast(data_type: &AstType) -> Result<Self> {
        let unsupported = || Error::UnsupportedType(data_type.to_string());
        Ok(match data_type {
            AstType::Boolean | AstType::Bool => Self::Boolean,
            AstType::TinyInt(_) => Self::Int8,
            AstType::SmallInt(_) | AstType::Int2(_) => Self::Int16,
            AstType::Int(_) | AstType::Integer(_) | AstType::Int4(_) => Self::Int32,
            AstType::BigInt(_) | AstType::Int8(_) => Self::Int64,
            AstType::Real | AstType::Float4 => Self::Float32,
            AstType::DoublePrecision | AstType::Double(_) | AstType::Float8 => Self::Float64,
            AstType::Float(_) => Self::Float64,
            AstType::Text
            | AstType::Varchar(_)
            | AstType::CharacterVarying(_)
            | AstType::String(_) => Self::Text,
            AstType::Bytea => Self::Bytea,
            AstType::Date => Self::Date,
            AstType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
                Self::Timestamp
            }
            AstType::Numeric(info) | AstType::Decimal(info) | AstType::Dec(info) => {
                let scale = match info {
                    ExactNumberInfo::None | ExactNumberInfo::Precision(_) => 0,
                    ExactNumberInfo::PrecisionAndScale(_, scale) => u8::try_from(*scale)
                        .ok()
                        .filter(|s| *s <= DECIMAL_PRECISION)
                        .ok_or_else(unsupported)?,
                };
                Self::Decimal { scale }
            }
            AstType::Custom(name, modifiers)
                if modifiers.is_empty() && name.to_string().eq_ignore_ascii_case("anyelement") =>
            {
                Self::AnyElement
            }
            _ => return Err(unsupported()),
        })
    }

    /// The Arrow type of this SQL type (`None` for `anyelement`).
    pub fn data_type(&self) -> Option<DataType> {
        Some(match self {
            Self::Boolean => DataType::Boolean,
            Self::Int8 => DataType::Int8,
            Self::Int16 => DataType::Int16,
            Self::Int32 => DataType::Int32,
            Self::Int64 => DataType::Int64,
            Self::Float32 => DataType::Float32,
            Self::Float64 => DataType::Float64,
            Self::Text => DataType::Utf8,
            Self::Bytea => DataType::Binary,
            Self::Date => DataType::Date32,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Self::Decimal { scale } => DataType::Decimal128(DECIMAL_PRECISION, *scale as i8),
            Self::AnyElement => return None,
        })
    }

    /// The SQL type of values of an Arrow type, if a Wasm function can take them.
    pub fn from_data_type(data_type: &DataType) -> Option<Self> {
        Some(match data_type {
            DataType::Boolean => Self::Boolean,
            DataType::Int8 => Self::Int8,
            DataType::Int16 => Self::Int16,
            DataType::Int32 => Self::Int32,
            DataType::Int64 => Self::Int64,
            DataType::Float32 => Self::Float32,
            DataType::Float64 => Self::Float64,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Self::Text,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Self::Bytea,
            DataType::Date32 => Self::Date,
            DataType::Timestamp(_, None) => Self::Timestamp,
            DataType::Decimal128(_, scale) if (0..=DECIMAL_PRECISION as i8).contains(scale) => {
                Self::Decimal {
                    scale: *scale as u8,
                }
            }
            _ => return None,
        })
    }

    /// The PostgreSQL name of the type, as `\df` and error messages show it.
    pub fn pg_name(&self) -> String {
        match self {
            Self::Boolean => "boolean".into(),
            Self::Int8 => "tinyint".into(),
            Self::Int16 => "smallint".into(),
            Self::Int32 => "integer".into(),
            Self::Int64 => "bigint".into(),
            Self::Float32 => "real".into(),
            Self::Float64 => "double precision".into(),
            Self::Text => "text".into(),
            Self::Bytea => "bytea".into(),
            Self::Date => "date".into(),
            Self::Timestamp => "timestamp without time zone".into(),
            Self::Decimal { scale } => format!("numeric({DECIMAL_PRECISION},{scale})"),
            Self::AnyElement => "anyelement".into(),
        }
    }

    /// Whether the type is a number (integer, float or decimal).
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            Self::Int8
                | Self::Int16
                | Self::Int32
                | Self::Int64
                | Self::Float32
                | Self::Float64
                | Self::Decimal { .. }
        )
    }

    /// Whether a core (non-component) module can take or return the type:
    /// core modules speak only i32, i64, f32 and f64.
    pub fn core_value_type(&self) -> Option<wasmtime::ValType> {
        Some(match self {
            Self::Boolean | Self::Int8 | Self::Int16 | Self::Int32 => wasmtime::ValType::I32,
            Self::Int64 => wasmtime::ValType::I64,
            Self::Float32 => wasmtime::ValType::F32,
            Self::Float64 => wasmtime::ValType::F64,
            _ => return None,
        })
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pg_name())
    }
}

/// `name(type, type)`: how PostgreSQL names one overload of a function.
pub fn signature(name: &str, args: &[SqlType]) -> String {
    let args: Vec<String> = args.iter().map(SqlType::pg_name).collect();
    format!("{name}({})", args.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_concrete_type_round_trips_through_arrow() {
        for t in [
            SqlType::Boolean,
            SqlType::Int8,
            SqlType::Int16,
            SqlType::Int32,
            SqlType::Int64,
            SqlType::Float32,
            SqlType::Float64,
            SqlType::Text,
            SqlType::Bytea,
            SqlType::Date,
            SqlType::Timestamp,
            SqlType::Decimal { scale: 2 },
        ] {
            let arrow = t.data_type().expect("concrete");
            assert_eq!(SqlType::from_data_type(&arrow), Some(t));
        }
        assert_eq!(SqlType::AnyElement.data_type(), None);
        assert_eq!(
            signature("f", &[SqlType::Int64, SqlType::Text]),
            "f(bigint, text)"
        );
    }
}
