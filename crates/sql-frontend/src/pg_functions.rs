//! PostgreSQL system functions drivers call when they connect or look up
//! types, which neither DataFusion nor `datafusion-pg-catalog` provide:
//! `current_setting` (asyncpg, psycopg, JDBC), `set_config`, `to_regtype`,
//! `json_build_object`
//! (psycopg's `TypeInfo.fetch`, SQLAlchemy), `format` (scripts that build
//! statements or messages), `percentile_disc` (JupySQL's box plots),
//! `pg_collation_is_visible` (SQLAlchemy's reflection; Quiver has only
//! built-in collations),
//! `pg_get_expr` and `quote_literal` (pg_dump; the functions over Quiver's
//! relations are `crate::pg_relations`'), `pg_typeof`, which users
//! call to see how Quiver types a value, and `parse_ident` in place of
//! `datafusion-pg-catalog`'s, which keeps the blanks around a dot and the
//! case of unquoted names (`'"public" . "t"'::regclass`, which the
//! `regclass` cast is rewritten into and ADBC's driver sends, found no
//! table).
//!
//! All run on the frontend; they are stable, so DataFusion folds their
//! constant calls while planning. `pg_typeof` depends only on its argument's
//! type, so the planner replaces every call with its answer.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, ListBuilder, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarFunctionImplementation,
    ScalarUDF, ScalarUDFImpl, Signature, SimpleScalarUDF, TypeSignature, Volatility, create_udf,
};
use datafusion::prelude::SessionContext;

use crate::settings::Settings;

/// Registers the session-independent functions in `ctx`, which has
/// `datafusion-pg-catalog`'s functions already.
pub(crate) fn install(ctx: &SessionContext) -> DfResult<()> {
    ctx.register_udf(ScalarUDF::from(PgTypeof {
        signature: Signature::any(1, Volatility::Immutable),
        format_type: ctx.udf("format_type")?,
    }));
    ctx.register_udf(oid_vector());
    ctx.register_udf(ScalarUDF::from(ExpandArray {
        signature: Signature::any(1, Volatility::Immutable),
    }));
    ctx.register_udf(quiver_udf_registry::JsonBuildObject::udf().as_ref().clone());
    ctx.register_udf(quiver_udf_registry::Format::udf().as_ref().clone());
    // `to_char`, `to_date` and `to_timestamp` with PostgreSQL's templates, in
    // place of DataFusion's (which take chrono's; the server drops their
    // aliases, `drop_replaced_aliases`).
    for function in quiver_udf_registry::TemplateFunction::udfs() {
        ctx.register_udf(function.as_ref().clone());
    }
    ctx.register_udaf(quiver_udf_registry::PercentileDisc::udaf().as_ref().clone());
    // `bpchar(text, n, explicit)`, `varchar(...)`: what `CAST(x AS
    // char(n))` is rewritten into (`crate::pg_semantics`).
    for padded in [true, false] {
        ctx.register_udf(
            quiver_udf_registry::SizedTextCast::udf(padded)
                .as_ref()
                .clone(),
        );
    }
    ctx.register_udf(ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        "parse_ident",
        Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Utf8]),
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
            ],
            Volatility::Immutable,
        ),
        DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
        Arc::new(parse_ident_udf),
    )));
    // `pg_get_expr(expr, relation [, pretty])`: Quiver's catalogs hold
    // expressions (`pg_attrdef.adbin`) as PostgreSQL's text already
    // (`datafusion-pg-catalog`'s gives '').
    ctx.register_udf(ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        "pg_get_expr",
        Signature::one_of(
            vec![TypeSignature::Any(2), TypeSignature::Any(3)],
            Volatility::Stable,
        ),
        DataType::Utf8,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let texts = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
            Ok(ColumnarValue::Array(texts))
        }),
    )));
    ctx.register_udf(ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        "pg_size_pretty",
        Signature::any(1, Volatility::Immutable),
        DataType::Utf8,
        Arc::new(|args: &[ColumnarValue]| {
            let rows = match &args[0] {
                ColumnarValue::Array(array) => array.len(),
                ColumnarValue::Scalar(_) => 1,
            };
            let sizes =
                datafusion::arrow::compute::cast(&args[0].to_array(rows)?, &DataType::Int64)?;
            let texts: StringArray = sizes
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .iter()
                .map(|size| size.map(size_pretty))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(texts) as ArrayRef))
        }),
    )));
    ctx.register_udf(create_udf(
        "quote_literal",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let quoted: StringArray = arrays[0]
                .as_string::<i32>()
                .iter()
                .map(|text| text.map(quiver_udf_registry::quote_literal))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(quoted) as ArrayRef))
        }),
    ));
    // `'name'::regclass`: the OID its lookup found (`crate::rewrite`), or
    // PostgreSQL's error for a name that names no relation.
    ctx.register_udf(create_udf(
        crate::rewrite::REGCLASS_FOUND,
        vec![DataType::Int32, DataType::Utf8],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (oids, names) = (
                arrays[0].as_primitive::<Int32Type>(),
                arrays[1].as_string::<i32>(),
            );
            if let Some(missing) = (0..oids.len()).find(|&i| oids.is_null(i) && names.is_valid(i)) {
                let error = crate::Error::UndefinedTable(names.value(missing).to_string());
                return Err(DataFusionError::External(Box::new(error)));
            }
            Ok(ColumnarValue::Array(arrays[0].clone()))
        }),
    ));
    ctx.register_udf(create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            map_strings(args, |name| name.and_then(type_oid))
                .map(|oids| ColumnarValue::Array(Arc::new(oids) as ArrayRef))
        }),
    ));
    // Quiver has only PostgreSQL's built-in collations, all visible.
    ctx.register_udf(constant(
        "pg_collation_is_visible",
        &[1],
        ScalarValue::Boolean(Some(true)),
    ));
    // Nor triggers or SQL-standard function bodies.
    for (name, arities) in [
        ("pg_get_triggerdef", &[1, 2][..]),
        ("pg_get_function_sqlbody", &[1]),
    ] {
        ctx.register_udf(constant(name, arities, ScalarValue::Utf8(None)));
    }
    // A server that is never a standby, whose sessions see no temporary
    // schema of another (pg_dump and dbt ask).
    for (name, arities) in [
        ("pg_is_in_recovery", &[0][..]),
        ("pg_is_other_temp_schema", &[1]),
    ] {
        ctx.register_udf(constant(name, arities, ScalarValue::Boolean(Some(false))));
    }
    Ok(())
}

/// `pg_typeof(x)`: the name of the type of `x` as PostgreSQL writes it
/// (`integer`, `text[]`), by `datafusion-pg-catalog`'s `format_type`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgTypeof {
    signature: Signature,
    format_type: Arc<ScalarUDF>,
}

impl PgTypeof {
    /// The name of the type of a value of `field`: a sized text type by its
    /// marker (`character`, `character varying`, as PostgreSQL names them
    /// here, without the length), any other by its Arrow type.
    fn type_name(&self, field: &Field) -> DfResult<ScalarValue> {
        if let Some(sized) = quiver_udf_registry::SizedText::of(field) {
            let name = if sized.padded {
                "character"
            } else {
                "character varying"
            };
            return Ok(ScalarValue::Utf8(Some(name.to_string())));
        }
        let oid = arrow_pg::datatypes::into_pg_type(field.data_type())
            .map_err(|e| DataFusionError::NotImplemented(e.to_string()))?
            .oid();
        let int = Arc::new(Field::new("oid", DataType::Int32, true));
        let name = self.format_type.invoke_with_args(ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Scalar(ScalarValue::Int32(Some(oid as i32))),
                ColumnarValue::Scalar(ScalarValue::Int32(None)),
            ],
            arg_fields: vec![int.clone(), int],
            number_rows: 1,
            return_field: Arc::new(Field::new("name", DataType::Utf8, true)),
            config_options: Arc::new(ConfigOptions::default()),
        })?;
        match name {
            ColumnarValue::Scalar(name) => Ok(name),
            ColumnarValue::Array(names) => ScalarValue::try_from_array(&names, 0),
        }
    }
}

impl ScalarUDFImpl for PgTypeof {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        let (_, field) = args[0].to_field(info.schema())?;
        let name = self.type_name(&field)?;
        Ok(ExprSimplifyResult::Simplified(Expr::Literal(name, None)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.type_name(&args.arg_fields[0])?))
    }
}

/// `quiver_oid_vector(text)`: the oids a vector column of `pg_proc` holds
/// as text (`proargtypes`' `23 25`, `proallargtypes`' `[23, 25]` or
/// `{23,25}`), as an array; what `crate::rewrite` makes of their casts to
/// `regtype[]` or `oid[]` (pgcli's function completion).
fn oid_vector() -> ScalarUDF {
    create_udf(
        "quiver_oid_vector",
        vec![DataType::Utf8],
        DataType::new_list(DataType::Int32, true),
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let texts = args[0].to_array(1)?;
            let mut vectors = ListBuilder::new(datafusion::arrow::array::Int32Builder::new());
            for text in texts.as_string::<i32>() {
                match text {
                    None => vectors.append(false),
                    Some(text) => {
                        let oids = text
                            .split(|c: char| c == ',' || c.is_whitespace() || "[]{}".contains(c))
                            .filter(|part| !part.is_empty())
                            .map(|part| part.parse::<i32>().ok());
                        for oid in oids {
                            vectors.values().append_option(oid);
                        }
                        vectors.append(true);
                    }
                }
            }
            Ok(ColumnarValue::Array(Arc::new(vectors.finish())))
        }),
    )
}

/// `_pg_expandarray(a)`: the elements of the array `a` as records `(x, n)`,
/// each element with its position (from 1). PostgreSQL's is a
/// set-returning function; this one returns a list of the records, which
/// `crate::rewrite` unnests where a query calls it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArray {
    signature: Signature,
}

impl ExpandArray {
    /// The records' fields, for elements of type `element`.
    fn fields(element: &DataType) -> datafusion::arrow::datatypes::Fields {
        vec![
            Field::new("x", element.clone(), true),
            Field::new("n", DataType::Int32, false),
        ]
        .into()
    }
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        "_pg_expandarray"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        match &arg_types[0] {
            DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
                Ok(DataType::new_list(
                    DataType::Struct(Self::fields(item.data_type())),
                    true,
                ))
            }
            other => Err(DataFusionError::Plan(format!(
                "function _pg_expandarray takes an array, not {other}"
            ))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::array::{ListArray, StructArray};
        let array = args.args[0].to_array(args.number_rows)?;
        let (DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _)) =
            array.data_type()
        else {
            return Err(DataFusionError::Plan(
                "function _pg_expandarray takes an array".into(),
            ));
        };
        let list = datafusion::arrow::compute::cast(
            &array,
            &DataType::new_list(item.data_type().clone(), true),
        )?;
        let list = list.as_list::<i32>();
        let values = list.values();
        // Each element's position in its array.
        let mut positions = vec![0i32; values.len()];
        for window in list.offsets().windows(2) {
            let (start, end) = (window[0] as usize, window[1] as usize);
            for (position, slot) in positions[start..end].iter_mut().enumerate() {
                *slot = i32::try_from(position + 1).unwrap_or(i32::MAX);
            }
        }
        let fields = Self::fields(item.data_type());
        let records = StructArray::try_new(
            fields.clone(),
            vec![values.clone(), Arc::new(Int32Array::from(positions))],
            None,
        )?;
        let expanded = ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Struct(fields), true)),
            list.offsets().clone(),
            Arc::new(records),
            list.nulls().cloned(),
        )?;
        Ok(ColumnarValue::Array(Arc::new(expanded)))
    }
}

/// `bytes` as PostgreSQL's `pg_size_pretty` writes it: in bytes below 10
/// kB, else in the largest unit (kB, MB, GB, TB, PB) that leaves fewer than
/// 20480 of them, rounded half away from zero.
fn size_pretty(bytes: i64) -> String {
    // Each unit, the limit below which it is used, and whether it rounds.
    const UNITS: [(&str, i64, bool, u8); 6] = [
        ("bytes", 10 * 1024, false, 0),
        ("kB", 20 * 1024 - 1, true, 10),
        ("MB", 20 * 1024 - 1, true, 20),
        ("GB", 20 * 1024 - 1, true, 30),
        ("TB", 20 * 1024 - 1, true, 40),
        ("PB", 20 * 1024 - 1, true, 50),
    ];
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    let mut size = bytes;
    for (i, (name, limit, round, bits)) in UNITS.iter().enumerate() {
        let Some((_, _, next_round, next_bits)) = UNITS.get(i + 1) else {
            let size = if *round { half_rounded(size) } else { size };
            return format!("{size} {name}");
        };
        if size.abs() < *limit {
            let size = if *round { half_rounded(size) } else { size };
            return format!("{size} {name}");
        }
        // One bit more where the next unit rounds, one less where this one did.
        let shift = next_bits - bits - u8::from(*next_round) + u8::from(*round);
        size /= 1 << shift;
    }
    unreachable!("the last unit answers")
}

/// A function of any of `arities` arguments of any type whose answer is
/// always `value`.
fn constant(name: &str, arities: &[usize], value: ScalarValue) -> ScalarUDF {
    let return_type = value.data_type();
    let arities = arities
        .iter()
        .map(|&n| match n {
            0 => TypeSignature::Nullary,
            n => TypeSignature::Any(n),
        })
        .collect();
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        name,
        Signature::one_of(arities, Volatility::Stable),
        return_type,
        Arc::new(move |_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(value.clone()))),
    ))
}

/// `current_setting(name [, missing_ok])` and `set_config(name, value,
/// is_local)` over one session's parameters.
/// `session_user`, `current_user`, `current_role` and `user`: the role the
/// session logged in as (Quiver has no `SET ROLE`, so all four agree).
pub(crate) fn identity_functions(user: &str) -> Vec<ScalarUDF> {
    ["session_user", "current_user", "current_role", "user"]
        .into_iter()
        .map(|name| constant(name, &[0], ScalarValue::Utf8(Some(user.to_string()))))
        .collect()
}

/// A hook told of each parameter `set_config` changes, with its new value.
pub(crate) type SettingChanged = Arc<dyn Fn(&str, &str) + Send + Sync>;

pub(crate) fn session_functions(
    settings: Arc<Mutex<Settings>>,
    changed: SettingChanged,
) -> Vec<ScalarUDF> {
    let read = settings.clone();
    let current = move |args: &[ColumnarValue]| {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let missing_ok = arrays
            .get(1)
            .and_then(|a| a.as_boolean_opt())
            .is_some_and(|a| !a.is_empty() && a.value(0));
        let settings = read.lock().unwrap_or_else(|p| p.into_inner());
        let values = arrays[0]
            .as_string::<i32>()
            .iter()
            .map(|name| match name {
                None => Ok(None),
                Some(name) => match settings.get(name) {
                    Ok(value) => Ok(Some(value)),
                    Err(_) if missing_ok => Ok(None),
                    Err(e) => Err(DataFusionError::External(Box::new(e))),
                },
            })
            .collect::<DfResult<StringArray>>()?;
        Ok(ColumnarValue::Array(Arc::new(values) as ArrayRef))
    };
    let current: ScalarFunctionImplementation = Arc::new(current);
    let write = settings;
    let set = move |args: &[ColumnarValue]| {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let mut settings = write.lock().unwrap_or_else(|p| p.into_inner());
        let values = arrays[0]
            .as_string::<i32>()
            .iter()
            .zip(arrays[1].as_string::<i32>().iter())
            .map(|(name, value)| match (name, value) {
                (Some(name), Some(value)) => {
                    settings
                        .set(name, value.to_string())
                        .map_err(|e| DataFusionError::External(Box::new(e)))?;
                    changed(name, value);
                    Ok(Some(value.to_string()))
                }
                _ => Ok(None),
            })
            .collect::<DfResult<StringArray>>()?;
        Ok(ColumnarValue::Array(Arc::new(values) as ArrayRef))
    };
    vec![
        ScalarUDF::from(SimpleScalarUDF::new_with_signature(
            "current_setting",
            Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
                ],
                Volatility::Stable,
            ),
            DataType::Utf8,
            current,
        )),
        create_udf(
            "set_config",
            vec![DataType::Utf8, DataType::Utf8, DataType::Boolean],
            DataType::Utf8,
            Volatility::Volatile,
            Arc::new(set),
        ),
    ]
}

/// A catalog function `name(oid)` giving text (`pg_get_userbyid`,
/// `pg_get_function_result`, ...): for each call, `snapshot` takes what the
/// catalog holds now, and `describe` the text for one oid (`None`: NULL).
pub(crate) fn oid_text<S: 'static>(
    name: &str,
    snapshot: impl Fn() -> S + Send + Sync + 'static,
    describe: impl Fn(&S, i32) -> Option<String> + Send + Sync + 'static,
) -> ScalarUDF {
    // An oid column (int4 in Quiver's catalogs) or a literal oid, which
    // clients write as an integer (psql's `\sf`: `pg_get_functiondef(16384)`).
    let signature = Signature::uniform(
        1,
        vec![DataType::Int32, DataType::Int64],
        Volatility::Stable,
    );
    ScalarUDF::new_from_impl(SimpleScalarUDF::new_with_signature(
        name,
        signature,
        DataType::Utf8,
        Arc::new(move |args: &[ColumnarValue]| {
            let oids = datafusion::arrow::compute::cast(&args[0].to_array(1)?, &DataType::Int32)?;
            let now = snapshot();
            let texts: StringArray = oids
                .as_primitive::<Int32Type>()
                .iter()
                .map(|oid| describe(&now, oid?))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(texts) as ArrayRef))
        }),
    ))
}

/// `parse_ident(text [, strict])` over arrays.
fn parse_ident_udf(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let texts = arrays[0].as_string::<i32>();
    let strict = arrays.get(1).map(|a| a.as_boolean().clone());
    let mut list = ListBuilder::new(StringBuilder::new());
    for i in 0..texts.len() {
        let strict = strict.as_ref().is_none_or(|s| s.is_null(i) || s.value(i));
        if texts.is_null(i) {
            list.append_null();
            continue;
        }
        let parts = parse_ident(texts.value(i), strict).map_err(|e| {
            DataFusionError::Execution(format!(
                "string is not a valid identifier: \"{}\": {e}",
                texts.value(i)
            ))
        })?;
        for part in parts {
            list.values().append_value(part);
        }
        list.append(true);
    }
    Ok(ColumnarValue::Array(Arc::new(list.finish())))
}

/// The names of a qualified identifier, as PostgreSQL's `parse_ident`
/// splits it: at dots outside double quotes, blanks around them skipped,
/// unquoted names lower-cased, `""` a quote inside quotes. Not `strict`, it
/// stops at the first character that ends no name (`a.b(c)` is `{a,b}`).
fn parse_ident(text: &str, strict: bool) -> std::result::Result<Vec<String>, &'static str> {
    let mut chars = text.chars().peekable();
    let mut parts = Vec::new();
    let skip_blanks = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
    };
    skip_blanks(&mut chars);
    loop {
        let mut part = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted identifier"),
                    Some('"') if chars.next_if_eq(&'"').is_some() => part.push('"'),
                    Some('"') => break,
                    Some(c) => part.push(c),
                }
            }
            if part.is_empty() {
                return Err("quoted identifier must not be empty");
            }
        } else {
            while let Some(c) = chars.next_if(|c| c.is_alphanumeric() || *c == '_' || *c == '$') {
                part.extend(c.to_lowercase());
            }
            if part.is_empty() {
                return Err(if parts.is_empty() {
                    "no valid identifier before \".\""
                } else {
                    "no valid identifier after \".\""
                });
            }
        }
        parts.push(part);
        skip_blanks(&mut chars);
        if chars.next_if_eq(&'.').is_some() {
            skip_blanks(&mut chars);
            continue;
        }
        if strict && chars.peek().is_some() {
            return Err("invalid characters after the identifier");
        }
        return Ok(parts);
    }
}

fn map_strings(
    args: &[ColumnarValue],
    f: impl Fn(Option<&str>) -> Option<i32>,
) -> DfResult<Int32Array> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    Ok(arrays[0].as_string::<i32>().iter().map(f).collect())
}

/// The OID of a type name as `to_regtype` resolves it (`None`: no such type).
fn type_oid(name: &str) -> Option<i32> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    if let Some(element) = name.strip_suffix("[]") {
        return array_oid(type_oid(element)?);
    }
    if let Some(element) = name.strip_prefix('_') {
        return array_oid(type_oid(element)?);
    }
    Some(match name {
        "bool" | "boolean" => 16,
        "bytea" => 17,
        "char" | "\"char\"" => 18,
        "name" => 19,
        "int8" | "bigint" => 20,
        "int2" | "smallint" => 21,
        "int4" | "integer" | "int" => 23,
        "text" => 25,
        "oid" => 26,
        "json" => 114,
        "xml" => 142,
        "float4" | "real" => 700,
        "float8" | "double precision" => 701,
        "unknown" => 705,
        "bpchar" | "character" => 1042,
        "varchar" | "character varying" => 1043,
        "date" => 1082,
        "time" | "time without time zone" => 1083,
        "timestamp" | "timestamp without time zone" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "interval" => 1186,
        "timetz" | "time with time zone" => 1266,
        "numeric" | "decimal" => 1700,
        "regproc" => 24,
        "regclass" => 2205,
        "regtype" => 2206,
        "uuid" => 2950,
        "jsonb" => 3802,
        "record" => 2249,
        "void" => 2278,
        _ => return None,
    })
}

/// The array type of an element type's OID.
fn array_oid(element: i32) -> Option<i32> {
    Some(match element {
        16 => 1000,
        17 => 1001,
        18 => 1002,
        19 => 1003,
        20 => 1016,
        21 => 1005,
        23 => 1007,
        25 => 1009,
        26 => 1028,
        114 => 199,
        700 => 1021,
        701 => 1022,
        1042 => 1014,
        1043 => 1015,
        1082 => 1182,
        1083 => 1183,
        1114 => 1115,
        1184 => 1185,
        1186 => 1187,
        1700 => 1231,
        2950 => 2951,
        3802 => 3807,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_resolve_like_postgresql() {
        assert_eq!(type_oid("int8"), Some(20));
        assert_eq!(type_oid("BIGINT"), Some(20));
        assert_eq!(type_oid("pg_catalog.text"), Some(25));
        assert_eq!(type_oid("text[]"), Some(1009));
        assert_eq!(type_oid("_int4"), Some(1007));
        assert_eq!(type_oid("character varying"), Some(1043));
        assert_eq!(type_oid("hstore"), None);
    }

    #[test]
    fn sizes_are_pretty_as_postgresql_writes_them() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10 * 1024 - 1), "10239 bytes");
        assert_eq!(size_pretty(10 * 1024), "10 kB");
        assert_eq!(size_pretty(1_000_000), "977 kB");
        assert_eq!(size_pretty(123_456_789), "118 MB");
        assert_eq!(size_pretty(-123_456_789), "-118 MB");
        assert_eq!(size_pretty(i64::MAX), "8192 PB");
    }

    #[test]
    fn identifiers_split_like_postgresql() {
        let parsed = |text| parse_ident(text, true);
        assert_eq!(
            parsed(r#""public" . "adbc_t""#),
            Ok(vec!["public".into(), "adbc_t".into()])
        );
        assert_eq!(parsed(" Public.T "), Ok(vec!["public".into(), "t".into()]));
        assert_eq!(
            parsed(r#""Mixed ""Q"".x""#),
            Ok(vec![r#"Mixed "Q".x"#.into()])
        );
        assert!(parsed("a..b").is_err());
        assert!(parsed(r#""""#).is_err());
        assert!(parsed("a.b(c)").is_err());
        assert_eq!(
            parse_ident("a.b(c)", false),
            Ok(vec!["a".into(), "b".into()])
        );
    }
}
