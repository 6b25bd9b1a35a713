//! Values too large to make.
//!
//! `repeat('x', 2147483647)` and `lpad('x', 2000000000)` asked for a value
//! of gigabytes in one allocation: the process could end before any error
//! was raised. PostgreSQL refuses a value over 1 GB before it allocates it
//! (`requested length too large`, 54000), and so does Quiver, for the calls
//! whose size the statement fixes: a `repeat` of a constant string a
//! constant number of times, and `lpad`/`rpad` to a constant length (which
//! PostgreSQL sizes at four bytes a character, whatever the text).

use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};

use crate::{Error, Result};

/// PostgreSQL's largest value, in bytes (`MaxAllocSize`).
pub(crate) const MAX_VALUE_BYTES: u64 = (1 << 30) - 1;

/// The most bytes a character takes in UTF-8.
const MAX_CHAR_BYTES: u64 = 4;

/// Fails with 54000 if `plan` calls a function with constant arguments
/// whose value would be larger than [`MAX_VALUE_BYTES`].
pub(crate) fn refuse_oversized_values(plan: &LogicalPlan) -> Result<()> {
    let mut oversized = None;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(call) = e
                    && let Some(bytes) = value_bytes(call.name(), &call.args)
                    && bytes > MAX_VALUE_BYTES
                {
                    oversized = Some(call.name().to_string());
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    match oversized {
        Some(function) => Err(Error::ProgramLimitExceeded(format!(
            "requested length too large: {function} would make a value over {MAX_VALUE_BYTES} bytes"
        ))),
        None => Ok(()),
    }
}

/// The size a call of `function` makes, when its arguments fix it.
fn value_bytes(function: &str, args: &[Expr]) -> Option<u64> {
    match (function, args) {
        ("repeat", [text, count]) => {
            let length = text_length(text)?;
            Some(length.saturating_mul(integer(count)?))
        }
        ("lpad" | "rpad", [_, length, ..]) => Some(integer(length)?.saturating_mul(MAX_CHAR_BYTES)),
        _ => None,
    }
}

/// A constant integer, negatives as zero.
fn integer(expr: &Expr) -> Option<u64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    let n = match value {
        ScalarValue::Int8(Some(n)) => i64::from(*n),
        ScalarValue::Int16(Some(n)) => i64::from(*n),
        ScalarValue::Int32(Some(n)) => i64::from(*n),
        ScalarValue::Int64(Some(n)) => *n,
        _ => return None,
    };
    Some(u64::try_from(n).unwrap_or(0))
}

/// A constant string's length in bytes.
fn text_length(expr: &Expr) -> Option<u64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.len() as u64),
        _ => None,
    }
}
