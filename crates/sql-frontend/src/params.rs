//! Decoding a bound parameter value, text or binary, to the Arrow type the
//! plan expects for it — arrays included, from PostgreSQL's array literal
//! (`{1,2,NULL}`) or its binary array format.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use fallible_iterator::FallibleIterator;
use pgwire::api::Type;
use pgwire::api::results::FieldFormat;
use postgres_types::{FromSql, Kind};

type Result<T> = std::result::Result<T, String>;

/// Decodes one parameter value to `expected` (the type the plan inferred),
/// else to the type the client `declared`, else to text.
pub(crate) fn decode(
    bytes: Option<&[u8]>,
    format: FieldFormat,
    declared: Option<Type>,
    expected: Option<DataType>,
) -> Result<ScalarValue> {
    let declared = declared.filter(|t| *t != Type::UNKNOWN);
    let target = expected
        .or_else(|| declared.as_ref().map(arrow_type))
        .unwrap_or(DataType::Utf8);
    let Some(bytes) = bytes else {
        return ScalarValue::try_from(&target).map_err(|e| e.to_string());
    };
    match format {
        FieldFormat::Text => text(
            std::str::from_utf8(bytes).map_err(|e| e.to_string())?,
            &target,
        ),
        FieldFormat::Binary => {
            let t = declared.unwrap_or_else(|| {
                arrow_pg::datatypes::into_pg_type(&target).unwrap_or(Type::BYTEA)
            });
            binary(&t, bytes, &target)
        }
    }
}

/// The Arrow type a client's declared parameter type stands for.
/// The Arrow type a declared parameter type decodes to (`None`: unknown).
pub(crate) fn arrow_type_of(t: &Type) -> Option<DataType> {
    (*t != Type::UNKNOWN).then(|| arrow_type(t))
}

fn arrow_type(t: &Type) -> DataType {
    if let Kind::Array(member) = t.kind() {
        return DataType::new_list(arrow_type(member), true);
    }
    match *t {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::DATE => DataType::Date32,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::BYTEA => DataType::Binary,
        _ => DataType::Utf8,
    }
}

/// The element type of a list type.
fn element_type(t: &DataType) -> Option<&DataType> {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            Some(f.data_type())
        }
        _ => None,
    }
}

fn cast(value: ScalarValue, target: &DataType) -> Result<ScalarValue> {
    value.cast_to(target).map_err(|e| e.to_string())
}

/// A list value of `elements`, each already of type `element`, cast to `target`.
fn list(elements: &[ScalarValue], element: &DataType, target: &DataType) -> Result<ScalarValue> {
    cast(
        ScalarValue::List(ScalarValue::new_list(elements, element, true)),
        target,
    )
}

/// A text value: through Arrow's cast from text, or, for an array, element
/// by element from the array literal.
fn text(text: &str, target: &DataType) -> Result<ScalarValue> {
    if element_type(target).is_none() {
        return cast(ScalarValue::Utf8(Some(text.to_string())), target);
    }
    let literal =
        ArrayLiteral::parse(text).map_err(|e| format!("malformed array literal {text:?}: {e}"))?;
    literal.value(target)
}

/// A binary value, read with the binary format of the client's type `t`.
pub(crate) fn binary(t: &Type, bytes: &[u8], target: &DataType) -> Result<ScalarValue> {
    if let Kind::Array(_) = t.kind() {
        return binary_array(bytes, target);
    }
    fn read<'a, T: FromSql<'a>>(t: &Type, bytes: &'a [u8]) -> Result<T> {
        T::from_sql(t, bytes).map_err(|e| e.to_string())
    }
    let value = match *t {
        Type::BOOL => ScalarValue::Boolean(Some(read(t, bytes)?)),
        Type::INT2 => ScalarValue::Int16(Some(read(t, bytes)?)),
        Type::INT4 => ScalarValue::Int32(Some(read(t, bytes)?)),
        Type::INT8 => ScalarValue::Int64(Some(read(t, bytes)?)),
        Type::OID => ScalarValue::UInt32(Some(read(t, bytes)?)),
        Type::FLOAT4 => ScalarValue::Float32(Some(read(t, bytes)?)),
        Type::FLOAT8 => ScalarValue::Float64(Some(read(t, bytes)?)),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            ScalarValue::Utf8(Some(read(t, bytes)?))
        }
        Type::BYTEA => ScalarValue::Binary(Some(read(t, bytes)?)),
        // As text, which casts to the decimal type the plan expects.
        Type::NUMERIC => {
            ScalarValue::Utf8(Some(read::<rust_decimal::Decimal>(t, bytes)?.to_string()))
        }
        Type::DATE => {
            let date: NaiveDate = read(t, bytes)?;
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).ok_or("calendar")?;
            ScalarValue::Date32(Some((date - epoch).num_days() as i32))
        }
        Type::TIMESTAMP => {
            let ts: NaiveDateTime = read(t, bytes)?;
            ScalarValue::TimestampMicrosecond(Some(ts.and_utc().timestamp_micros()), None)
        }
        Type::TIMESTAMPTZ => {
            let ts: DateTime<Utc> = read(t, bytes)?;
            ScalarValue::TimestampMicrosecond(Some(ts.timestamp_micros()), Some("UTC".into()))
        }
        ref other => {
            return Err(format!(
                "binary parameters of type {other} are not supported; send them as text"
            ));
        }
    };
    cast(value, target)
}

/// PostgreSQL's binary array: dimensions, element type, then the elements
/// in row-major order.
fn binary_array(bytes: &[u8], target: &DataType) -> Result<ScalarValue> {
    let array = postgres_protocol::types::array_from_sql(bytes).map_err(|e| e.to_string())?;
    let element = Type::from_oid(array.element_type())
        .ok_or_else(|| format!("unknown array element type {}", array.element_type()))?;
    let lengths: Vec<usize> = array
        .dimensions()
        .map_err(|e| e.to_string())
        .map(|d| usize::try_from(d.len).map_err(|_| "negative array dimension".into()))
        .collect()?;
    let mut leaf = target;
    for _ in 0..lengths.len().max(1) {
        leaf = element_type(leaf).ok_or_else(|| {
            format!(
                "a {}-dimensional array does not fit {target}; cast the parameter to an array type with as many dimensions (bigint[][])",
                lengths.len()
            )
        })?;
    }
    let elements: Vec<ScalarValue> = array
        .values()
        .map_err(|e| e.to_string())
        .map(|value| match value {
            Some(bytes) => binary(&element, bytes, leaf),
            None => ScalarValue::try_from(leaf).map_err(|e| e.to_string()),
        })
        .collect()?;
    nest(&elements, &lengths, target)
}

/// Builds the nested lists of a `lengths`-shaped array from its elements in
/// row-major order.
fn nest(elements: &[ScalarValue], lengths: &[usize], target: &DataType) -> Result<ScalarValue> {
    let element = element_type(target).ok_or_else(|| format!("an array does not fit {target}"))?;
    let Some((outer, inner)) = lengths.split_first().filter(|(_, inner)| !inner.is_empty()) else {
        return list(elements, element, target);
    };
    let stride = inner.iter().product::<usize>();
    if stride * outer != elements.len() {
        return Err("array dimensions do not match its element count".into());
    }
    let rows = elements
        .chunks(stride.max(1))
        .take(*outer)
        .map(|row| nest(row, inner, element))
        .collect::<Result<Vec<_>>>()?;
    list(&rows, element, target)
}

/// A PostgreSQL array literal: `{1,2,NULL}`, `{"a b","c\"d"}`, `{{1,2},{3,4}}`.
#[derive(Debug, PartialEq)]
enum ArrayLiteral {
    Null,
    Item(String),
    Array(Vec<ArrayLiteral>),
}

impl ArrayLiteral {
    fn parse(text: &str) -> Result<Self> {
        let mut text = text.trim_start();
        // Explicit bounds (`[0:1]={1,2}`) do not change the elements.
        if text.starts_with('[') {
            let (_, rest) = text.split_once('=').ok_or("bounds without \"=\"")?;
            text = rest.trim_start();
        }
        let mut chars = text.chars().peekable();
        let array = Self::array(&mut chars)?;
        match chars.find(|c| !c.is_whitespace()) {
            Some(c) => Err(format!("junk after closing right brace: {c:?}")),
            None => Ok(array),
        }
    }

    fn array(chars: &mut std::iter::Peekable<std::str::Chars>) -> Result<Self> {
        if chars.next() != Some('{') {
            return Err("array value must start with \"{\" or dimension information".into());
        }
        let mut items = vec![];
        skip_whitespace(chars);
        if chars.next_if_eq(&'}').is_some() {
            return Ok(Self::Array(items));
        }
        loop {
            skip_whitespace(chars);
            let item = match chars.peek() {
                Some('{') => Self::array(chars)?,
                Some('"') => {
                    chars.next();
                    let mut item = String::new();
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some('\\') => item.push(chars.next().ok_or("unexpected end")?),
                            Some(c) => item.push(c),
                            None => return Err("unterminated quoted element".into()),
                        }
                    }
                    Self::Item(item)
                }
                _ => {
                    let (mut item, mut escaped) = (String::new(), false);
                    while let Some(c) = chars.next_if(|c| *c != ',' && *c != '}') {
                        match c {
                            '{' | '"' => return Err(format!("unexpected {c:?}")),
                            '\\' => {
                                escaped = true;
                                item.push(chars.next().ok_or("unexpected end")?);
                            }
                            c => item.push(c),
                        }
                    }
                    let item = item.trim_end().to_string();
                    match item.as_str() {
                        "" => return Err("empty element".into()),
                        s if !escaped && s.eq_ignore_ascii_case("null") => Self::Null,
                        _ => Self::Item(item),
                    }
                }
            };
            items.push(item);
            skip_whitespace(chars);
            match chars.next() {
                Some(',') => continue,
                Some('}') => return Ok(Self::Array(items)),
                Some(c) => return Err(format!("unexpected {c:?}")),
                None => return Err("unexpected end".into()),
            }
        }
    }

    /// The value of this literal as `target`.
    fn value(&self, target: &DataType) -> Result<ScalarValue> {
        match (self, element_type(target)) {
            (Self::Null, _) => ScalarValue::try_from(target).map_err(|e| e.to_string()),
            (Self::Item(item), None) => cast(ScalarValue::Utf8(Some(item.clone())), target),
            (Self::Array(items), Some(element)) => {
                let elements = items
                    .iter()
                    .map(|item| item.value(element))
                    .collect::<Result<Vec<_>>>()?;
                list(&elements, element, target)
            }
            (Self::Item(_), Some(_)) => Err("expected a sub-array".into()),
            (Self::Array(_), None) => Err(format!(
                "a multidimensional array does not fit {target}; cast the parameter to an array type with as many dimensions (bigint[][])"
            )),
        }
    }
}

fn skip_whitespace(chars: &mut std::iter::Peekable<std::str::Chars>) {
    while chars.next_if(|c| c.is_whitespace()).is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_list(values: &[Option<i64>]) -> ScalarValue {
        let values: Vec<_> = values.iter().map(|v| ScalarValue::Int64(*v)).collect();
        ScalarValue::List(ScalarValue::new_list(&values, &DataType::Int64, true))
    }

    #[test]
    fn text_and_binary_parameters_decode_to_the_expected_type() {
        let v = decode(Some(b"42"), FieldFormat::Text, None, Some(DataType::Int64)).unwrap();
        assert_eq!(v, ScalarValue::Int64(Some(42)));
        let v = decode(
            Some(&7i32.to_be_bytes()),
            FieldFormat::Binary,
            Some(Type::INT4),
            Some(DataType::Int64),
        )
        .unwrap();
        assert_eq!(v, ScalarValue::Int64(Some(7)));
        let v = decode(None, FieldFormat::Text, None, Some(DataType::Utf8)).unwrap();
        assert_eq!(v, ScalarValue::Utf8(None));
        assert!(decode(Some(b"x1"), FieldFormat::Text, None, Some(DataType::Int32)).is_err());
    }

    #[test]
    fn array_literals_parse_as_postgresql_writes_them() {
        use ArrayLiteral::*;
        let item = |s: &str| Item(s.to_string());
        assert_eq!(ArrayLiteral::parse("{}").unwrap(), Array(vec![]));
        assert_eq!(
            ArrayLiteral::parse(r#" { a , "b, c" ,NULL,"NULL", \N, "q\"x" } "#).unwrap(),
            Array(vec![
                item("a"),
                item("b, c"),
                Null,
                item("NULL"),
                item("N"),
                item("q\"x")
            ])
        );
        assert_eq!(
            ArrayLiteral::parse("[0:1][1:1]={{1},{2}}").unwrap(),
            Array(vec![Array(vec![item("1")]), Array(vec![item("2")])])
        );
        for bad in ["", "1,2", "{1,2", "{1,,2}", "{1} x", "{\"a}", "{a\"b}"] {
            assert!(ArrayLiteral::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn array_parameters_decode_from_text_and_binary() {
        let target = DataType::new_list(DataType::Int64, true);
        let v = decode(
            Some(b"{1,NULL,3}"),
            FieldFormat::Text,
            None,
            Some(target.clone()),
        );
        assert_eq!(v.unwrap(), int_list(&[Some(1), None, Some(3)]));

        let mut bytes = bytes::BytesMut::new();
        postgres_types::ToSql::to_sql(&vec![Some(1i32), None], &Type::INT4_ARRAY, &mut bytes)
            .unwrap();
        let v = decode(
            Some(&bytes),
            FieldFormat::Binary,
            Some(Type::INT4_ARRAY),
            Some(target.clone()),
        );
        assert_eq!(v.unwrap(), int_list(&[Some(1), None]));

        let nested = DataType::new_list(target.clone(), true);
        let v = decode(
            Some(b"{{1,2},{3,4}}"),
            FieldFormat::Text,
            None,
            Some(nested),
        )
        .unwrap();
        let rows = [int_list(&[Some(1), Some(2)]), int_list(&[Some(3), Some(4)])];
        assert_eq!(
            v,
            ScalarValue::List(ScalarValue::new_list(&rows, &target, true))
        );
        // The client's declared type when the plan has none.
        let v = decode(
            Some(b"{a}"),
            FieldFormat::Text,
            Some(Type::TEXT_ARRAY),
            None,
        )
        .unwrap();
        assert_eq!(v.data_type(), DataType::new_list(DataType::Utf8, true));
        assert!(decode(Some(b"{{1}}"), FieldFormat::Text, None, Some(target)).is_err());
    }
}
