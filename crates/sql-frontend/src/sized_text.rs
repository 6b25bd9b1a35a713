//! `character(n)` and `character varying(n)` in statements: what a column
//! declared so holds, and where a `character(n)` value's padding shows.
//!
//! Values are kept as `quiver_udf_registry::SizedText` describes (a
//! `character(n)` value without its trailing spaces), so DataFusion compares,
//! measures, concatenates and casts them to text as PostgreSQL does. This
//! module adds the rest of PostgreSQL's rules:
//! - a column declared `char(n)` or `varchar(n)` is marked with its type
//!   ([`declared_types`]), and every value stored in it — by `INSERT`,
//!   `UPDATE` or `COPY` — is coerced to the type, too long ones failing with
//!   22001 ([`assign`], [`assign_batch`]);
//! - `LIKE`, `octet_length` and `concat` read a `character(n)` value padded
//!   (`'ab'::char(4) LIKE 'ab'` is false, `octet_length` 4);
//! - a string literal compared with a `character(n)` value is one too: its
//!   trailing spaces do not count (`c = 'ab  '` holds for `ab`);
//! - a cast of a `character(n)` value to another string type is plain text,
//!   written unpadded (DataFusion's cast kept the column's marker).
//!
//! The wire encoder pads a marked result column (`crate::encode`).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::expr::{InList, Like, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    BinaryExpr, Cast, DmlStatement, Expr, ExprSchemable, LogicalPlan, Operator, Projection,
    WriteOp, lit,
};
use datafusion::sql::sqlparser::ast::{CharacterLength, ColumnDef, DataType as SqlType};
use quiver_udf_registry::{MAX_LENGTH, SizedText, SizedTextCast};

use datafusion::common::Result;

use crate::Error;

/// A SQL `char(n)` (`padded`) or `varchar(n)` type as written: whether it
/// is padded, and its length as written (`char` alone is `char(1)`);
/// `None` for other types and for `varchar` without a length.
pub(crate) fn written_type(data_type: &SqlType) -> Option<(bool, u64)> {
    let (length, padded) = match data_type {
        SqlType::Char(length) | SqlType::Character(length) => (length.as_ref(), true),
        SqlType::Varchar(Some(length)) | SqlType::CharacterVarying(Some(length)) => {
            (Some(length), false)
        }
        _ => return None,
    };
    match length {
        None => Some((padded, 1)),
        Some(CharacterLength::IntegerLength { length, .. }) => Some((padded, *length)),
        Some(CharacterLength::Max) => None,
    }
}

/// The sized text types of the columns `CREATE TABLE` declares, by name.
pub(crate) fn declared_types(columns: &[ColumnDef]) -> crate::Result<HashMap<String, SizedText>> {
    let mut declared = HashMap::new();
    for column in columns {
        let Some((padded, length)) = written_type(&column.data_type) else {
            continue;
        };
        let type_name = if padded { "char" } else { "varchar" };
        let length = usize::try_from(length)
            .ok()
            .filter(|length| (1..=MAX_LENGTH).contains(length))
            .ok_or_else(|| {
                Error::InvalidParameterValue(format!(
                    "length for type {type_name} must be between 1 and {MAX_LENGTH}"
                ))
            })?;
        declared.insert(
            crate::names::folded(&column.name),
            SizedText { padded, length },
        );
    }
    Ok(declared)
}

/// The schema of a table `CREATE TABLE` makes from `input` (its rows, or
/// an empty relation of the declared columns), each column of a sized text
/// type marked with it: the type `declared` for it, or the type of the
/// values `input` puts in it (`CREATE TABLE t AS SELECT c, max(c) ...`).
pub(crate) fn table_schema(input: &LogicalPlan, declared: &HashMap<String, SizedText>) -> Schema {
    let schema = input.schema().as_arrow();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let sized = declared
                .get(field.name())
                .copied()
                .or_else(|| result_type(input, index));
            match sized {
                Some(sized) => sized.mark(field.as_ref().clone()),
                None => field.as_ref().clone(),
            }
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// The sized text type of the values of `plan`'s `index`th output column,
/// followed back to the columns they come from (`max(c)`, `CASE ... THEN c`
/// are of `c`'s type; a `coalesce` of columns of different types is of
/// none).
pub(crate) fn result_type(plan: &LogicalPlan, index: usize) -> Option<SizedText> {
    crate::lineage::traced(&SizedTypes, plan, index)
}

struct SizedTypes;

impl crate::lineage::Mark for SizedTypes {
    type Value = SizedText;

    fn of(&self, field: &Field) -> Option<SizedText> {
        SizedText::of(field)
    }

    fn any_source(&self) -> bool {
        false
    }
}

/// `plan` with PostgreSQL's rules for sized text applied (see the module
/// docs).
pub(crate) fn sized_text_semantics(plan: LogicalPlan) -> Result<LogicalPlan> {
    let rewritten = plan.transform_up_with_subqueries(|node| {
        let node = match node {
            LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_) | WriteOp::Update) => {
                let input = assign(dml.input.as_ref().clone(), dml.target.schema().as_ref())?;
                LogicalPlan::Dml(DmlStatement {
                    input: Arc::new(input),
                    ..dml
                })
            }
            node => node,
        };
        let schema = crate::integers::expression_schema(&node);
        let names = NamePreserver::new(&node);
        node.map_expressions(|expr| {
            crate::integers::keeping_name(expr, &names, |expr| {
                expr.transform_up(|expr| padding_rules(expr, &schema))
            })
        })?
        .map_data(LogicalPlan::recompute_schema)
    })?;
    Ok(rewritten.data)
}

/// `input`, the rows a statement stores in a table of `target` columns,
/// with each value of a sized text column coerced to its type (an error
/// when it is too long).
pub(crate) fn assign(input: LogicalPlan, target: &Schema) -> Result<LogicalPlan> {
    let sized = |name: &str| target.field_with_name(name).ok().and_then(SizedText::of);
    if !input
        .schema()
        .fields()
        .iter()
        .any(|f| sized(f.name()).is_some())
    {
        return Ok(input);
    }
    let values = input
        .schema()
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(Column::from((qualifier, field)));
            match sized(field.name()) {
                Some(sized) => Expr::ScalarFunction(ScalarFunction::new_udf(
                    SizedTextCast::udf(sized.padded),
                    vec![column, lit(sized.length as i64), lit(false)],
                ))
                .alias(field.name()),
                None => column,
            }
        })
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        values,
        Arc::new(input),
    )?))
}

/// `batch`, rows `COPY` stores in a table of `target` columns, with each
/// value of a sized text column coerced to its type.
pub(crate) fn assign_batch(batch: RecordBatch, target: &Schema) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    let mut changed = false;
    for (column, field) in columns.iter_mut().zip(target.fields()) {
        if let Some(sized) = SizedText::of(field) {
            let coerced = sized.coerce_array(column, false)?;
            *column = datafusion::arrow::compute::cast(&coerced, column.data_type())?;
            changed = true;
        }
    }
    if !changed {
        return Ok(batch);
    }
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// One expression with the rules of the module docs for `character(n)`
/// operands; `schema` is what its columns refer to.
fn padding_rules(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    // The length of a `character(n)` operand.
    let padded = |expr: &Expr| {
        let (_, field) = expr.to_field(schema).ok()?;
        SizedText::of(&field).filter(|sized| sized.padded)
    };
    let pad = |expr: Expr| match padded(&expr) {
        Some(sized) => {
            datafusion::functions::unicode::rpad().call(vec![expr, lit(sized.length as i64)])
        }
        None => expr,
    };
    Ok(match expr {
        Expr::Cast(Cast { expr, field })
            if is_string(field.data_type())
                && field.name().is_empty()
                && padded(&expr).is_some() =>
        {
            // A target field with a name is explicit: the cast's result
            // takes its (empty) metadata instead of the operand's.
            let field = Arc::new(Field::new("text", field.data_type().clone(), true));
            Transformed::yes(Expr::Cast(Cast { expr, field }))
        }
        Expr::Like(like) if padded(&like.expr).is_some() => Transformed::yes(Expr::Like(Like {
            expr: Box::new(pad(*like.expr)),
            ..like
        })),
        Expr::SimilarTo(like) if padded(&like.expr).is_some() => {
            Transformed::yes(Expr::SimilarTo(Like {
                expr: Box::new(pad(*like.expr)),
                ..like
            }))
        }
        Expr::ScalarFunction(call)
            if matches!(call.name(), "octet_length" | "concat" | "concat_ws")
                && call.args.iter().any(|arg| padded(arg).is_some()) =>
        {
            Transformed::yes(Expr::ScalarFunction(ScalarFunction {
                args: call.args.into_iter().map(pad).collect(),
                ..call
            }))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if is_comparison(op) && (padded(&left).is_some() || padded(&right).is_some()) =>
        {
            Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                left: Box::new(unpadded_literal(*left)),
                op,
                right: Box::new(unpadded_literal(*right)),
            }))
        }
        Expr::InList(in_list) if padded(&in_list.expr).is_some() => {
            Transformed::yes(Expr::InList(InList {
                list: in_list.list.into_iter().map(unpadded_literal).collect(),
                ..in_list
            }))
        }
        other => Transformed::no(other),
    })
}

/// A string literal without its trailing spaces; any other expression as it is.
fn unpadded_literal(expr: Expr) -> Expr {
    let unpadded = |s: String| Some(s.trim_end_matches(' ').to_string());
    match expr {
        Expr::Literal(value, metadata) => Expr::Literal(
            match value {
                ScalarValue::Utf8(Some(s)) => ScalarValue::Utf8(unpadded(s)),
                ScalarValue::Utf8View(Some(s)) => ScalarValue::Utf8View(unpadded(s)),
                ScalarValue::LargeUtf8(Some(s)) => ScalarValue::LargeUtf8(unpadded(s)),
                other => other,
            },
            metadata,
        ),
        other => other,
    }
}

/// Whether `op` compares its operands (`=`, `<`, `IS DISTINCT FROM`, ...).
pub(crate) fn is_comparison(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
    )
}

fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    )
}
