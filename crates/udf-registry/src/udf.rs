//! [`WasmScalarUdf`]: a Wasm function name, with all its overloads, as a
//! DataFusion scalar function.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
};

use crate::definition::{Kind, Volatility};
use crate::function::WasmFunction;
use crate::module_dir::ModuleDir;
use crate::types::SqlType;

/// Every overload of one Wasm function name. DataFusion knows functions by
/// name only, so overloads are resolved here: at planning (`coerce_types`,
/// `return_type`) and again per batch (`invoke_with_args`).
#[derive(Debug)]
pub struct WasmScalarUdf {
    name: String,
    overloads: Vec<Arc<WasmFunction>>,
    /// Where other processes read the modules (travels with the plan).
    modules: Option<ModuleDir>,
    signature: Signature,
}

impl WasmScalarUdf {
    /// The DataFusion function for `overloads` (all of one name), whose
    /// modules other processes read from `modules`.
    pub fn new_udf(
        name: &str,
        overloads: Vec<Arc<WasmFunction>>,
        modules: Option<ModuleDir>,
    ) -> ScalarUDF {
        let volatility = volatility(&overloads);
        ScalarUDF::new_from_impl(Self {
            name: name.to_string(),
            signature: Signature::new(TypeSignature::UserDefined, volatility.datafusion()),
            overloads,
            modules,
        })
    }

    /// Where other processes read the modules.
    pub fn module_dir(&self) -> Option<&ModuleDir> {
        self.modules.as_ref()
    }

    /// The overloads, in signature order.
    pub fn overloads(&self) -> &[Arc<WasmFunction>] {
        &self.overloads
    }

    fn resolve(&self, arg_types: &[DataType]) -> Result<(&Arc<WasmFunction>, Vec<SqlType>)> {
        resolve(&self.name, &self.overloads, arg_types)
    }
}

/// The overload a call with arguments of these types calls, as planning
/// resolves it (see [`resolve`]); `None` when none fits.
pub fn called_overload<'a>(
    overloads: &'a [Arc<WasmFunction>],
    arg_types: &[DataType],
) -> Option<&'a Arc<WasmFunction>> {
    resolve("", overloads, arg_types).ok().map(|(f, _)| f)
}

/// The volatility a name with these overloads has: the most volatile one's.
pub(crate) fn volatility(overloads: &[Arc<WasmFunction>]) -> Volatility {
    overloads
        .iter()
        .map(|f| f.def().volatility)
        .max_by_key(|v| match v {
            Volatility::Immutable => 0,
            Volatility::Stable => 1,
            Volatility::Volatile => 2,
        })
        .unwrap_or_default()
}

/// The overload of `name` for arguments of these types, and the SQL types
/// the arguments are converted to. Tried in order: an exact match, then
/// PostgreSQL's implicit (widening) conversions, then any numeric
/// conversion (SQL literals such as `21` and `2.5` arrive as bigint and
/// double precision; an out-of-range value is then an error).
pub(crate) fn resolve<'a>(
    name: &str,
    overloads: &'a [Arc<WasmFunction>],
    arg_types: &[DataType],
) -> Result<(&'a Arc<WasmFunction>, Vec<SqlType>)> {
    for pass in [Pass::Exact, Pass::Implicit, Pass::Numeric] {
        for f in overloads {
            if let Some(types) = fits(&f.def().args, arg_types, pass) {
                return Ok((f, types));
            }
        }
    }
    // A transform's table argument is not among `arg_types`: name it as
    // `\df` and `CREATE FUNCTION` do.
    let transform = overloads
        .first()
        .is_some_and(|f| f.def().kind == Kind::Transform);
    let have: Vec<String> = transform
        .then(|| "TABLE".to_string())
        .into_iter()
        .chain(
            arg_types
                .iter()
                .map(|t| SqlType::from_data_type(t).map_or_else(|| t.to_string(), |s| s.pg_name())),
        )
        .collect();
    let candidates: Vec<String> = overloads
        .iter()
        .map(|f| format!("{}({})", f.def().name, f.def().declared_args()))
        .collect();
    plan_err!(
        "function {}({}) does not exist; candidates: {}",
        name,
        have.join(", "),
        candidates.join(", ")
    )
}

/// The Arrow types arguments are converted to for the overload they call.
pub(crate) fn coerce(
    name: &str,
    overloads: &[Arc<WasmFunction>],
    arg_types: &[DataType],
) -> Result<Vec<DataType>> {
    let (_, types) = resolve(name, overloads, arg_types)?;
    types
        .iter()
        .map(|t| match t.data_type() {
            Some(t) => Ok(t),
            None => plan_err!("{name}: anyelement needs a concrete argument type"),
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Pass {
    Exact,
    Implicit,
    Numeric,
}

/// The SQL types arguments of `actual` types take for a function declared
/// with `declared`, if they fit in this pass. `anyelement` positions all
/// take one type: the first non-null argument's (text if all are null).
fn fits(declared: &[SqlType], actual: &[DataType], pass: Pass) -> Option<Vec<SqlType>> {
    if declared.len() != actual.len() {
        return None;
    }
    let any_type = declared
        .iter()
        .zip(actual)
        .filter(|(d, a)| **d == SqlType::AnyElement && !a.is_null())
        .map(|(_, a)| SqlType::from_data_type(a))
        .next()
        .unwrap_or(Some(SqlType::Text))?;
    declared
        .iter()
        .zip(actual)
        .map(|(want, have)| {
            let want = if *want == SqlType::AnyElement {
                any_type
            } else {
                *want
            };
            let same = SqlType::from_data_type(have) == Some(want);
            let ok = match pass {
                Pass::Exact => same,
                Pass::Implicit => same || implicitly_coercible(have, &want),
                Pass::Numeric => {
                    same || implicitly_coercible(have, &want)
                        || (is_numeric(have) && want.is_numeric())
                }
            };
            ok.then_some(want)
        })
        .collect()
}

fn is_numeric(t: &DataType) -> bool {
    t.is_integer() || t.is_floating() || matches!(t, DataType::Decimal128(..))
}

/// Whether PostgreSQL would convert a value of type `from` to `to` without
/// a cast: widening numbers, any text to text, any binary to bytea, date to
/// timestamp, and NULL to anything.
fn implicitly_coercible(from: &DataType, to: &SqlType) -> bool {
    use DataType as D;
    let rank = |t: &DataType| match t {
        D::Int8 | D::UInt8 => Some(1),
        D::Int16 | D::UInt16 => Some(2),
        D::Int32 | D::UInt32 => Some(3),
        D::Int64 => Some(4),
        _ => None,
    };
    match (from, to) {
        (D::Null, _) => true,
        (_, SqlType::Int8) => rank(from).is_some_and(|r| r <= 1),
        (_, SqlType::Int16) => rank(from).is_some_and(|r| r <= 2),
        (_, SqlType::Int32) => rank(from).is_some_and(|r| r <= 3),
        (_, SqlType::Int64) => rank(from).is_some(),
        (_, SqlType::Float32) => rank(from).is_some(),
        (_, SqlType::Float64) => {
            rank(from).is_some() || matches!(from, D::Float16 | D::Float32 | D::Decimal128(..))
        }
        (_, SqlType::Decimal { .. }) => rank(from).is_some() || matches!(from, D::Decimal128(..)),
        (_, SqlType::Text) => matches!(from, D::Utf8 | D::LargeUtf8 | D::Utf8View),
        (_, SqlType::Bytea) => matches!(from, D::Binary | D::LargeBinary | D::BinaryView),
        (_, SqlType::Timestamp) => matches!(from, D::Date32 | D::Timestamp(_, None)),
        _ => false,
    }
}

/// Whether two sets of overloads are the same definitions (same versions).
pub(crate) fn same_overloads(a: &[Arc<WasmFunction>], b: &[Arc<WasmFunction>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.def() == b.def())
}

/// Hashes overloads by their definitions, as [`same_overloads`] compares them.
pub(crate) fn hash_overloads<H: Hasher>(overloads: &[Arc<WasmFunction>], state: &mut H) {
    for f in overloads {
        f.def().hash(state);
    }
}

/// The Arrow type `name` returns for arguments of these types.
pub(crate) fn return_data_type(
    name: &str,
    overloads: &[Arc<WasmFunction>],
    arg_types: &[DataType],
) -> Result<DataType> {
    let (f, types) = resolve(name, overloads, arg_types)?;
    match f.return_type(&types)?.data_type() {
        Some(t) => Ok(t),
        None => plan_err!("{name} returned anyelement as a concrete type"),
    }
}

impl PartialEq for WasmScalarUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && same_overloads(&self.overloads, &other.overloads)
    }
}

impl Eq for WasmScalarUdf {}

impl Hash for WasmScalarUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        hash_overloads(&self.overloads, state);
    }
}

impl ScalarUDFImpl for WasmScalarUdf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(&self.name, &self.overloads, arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        return_data_type(&self.name, &self.overloads, arg_types)
    }

    fn is_strict(&self) -> bool {
        self.overloads.iter().all(|f| f.def().strict)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let (f, sql_types) = self.resolve(&types)?;
        let constant = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        if constant && f.def().volatility != Volatility::Volatile {
            // Same arguments for every row: compute once.
            let arrays = ColumnarValue::values_to_arrays(&args.args)?;
            let started = Instant::now();
            let result = f.invoke(&arrays, &sql_types, 1)?;
            crate::metrics::record(&self.name, 1, started.elapsed());
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?));
        }
        let rows = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<Vec<_>>>()?;
        let started = Instant::now();
        let result = f.invoke(&arrays, &sql_types, rows)?;
        crate::metrics::record(&self.name, rows, started.elapsed());
        Ok(ColumnarValue::Array(result))
    }
}
