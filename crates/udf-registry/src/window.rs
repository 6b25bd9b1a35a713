//! Window functions whose evaluation order and null treatment survive a
//! plan's trip to the executors.
//!
//! DataFusion's optimizer may evaluate a window function over its input in
//! reverse order rather than sort again: `lag(k) OVER (ORDER BY k)` over
//! rows sorted by `k DESC` runs as `lag` with a *reversed* flag, which
//! negates its offset (`nth_value` negates `n` the same way). That flag, and
//! `IGNORE NULLS`, live in DataFusion's physical window expression, and
//! `datafusion-proto` 55 writes neither: an executor that decodes the plan
//! runs plain `lag` over the reversed order and returns `lead`'s answer.
//!
//! [`PortableWindowUdf`] carries both flags in the function itself: the
//! frontend wraps every window function whose result depends on them
//! (see [`PortableWindowUdf::wrap`]), the optimizer reverses the wrapper
//! through [`WindowUDFImpl::reverse_expr`] (which flips the wrapper's own
//! flag), and Quiver's codecs write the flags beside the function's name.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, exec_datafusion_err};
use datafusion::logical_expr::function::{
    ExpressionArgs, PartitionEvaluatorArgs, WindowUDFFieldArgs,
};
use datafusion::logical_expr::{
    Documentation, LimitEffect, PartitionEvaluator, ReversedUDWF, Signature, WindowUDF,
    WindowUDFImpl,
};
use datafusion::physical_expr::PhysicalExpr;

/// Marks a [`PortableWindowUdf`] written by Quiver's codecs; the two bytes
/// after it are its flags (`reversed`, `ignore_nulls`, `0` or `1`).
const MAGIC: &[u8] = b"quiver-window/1\n";

/// A built-in window function with its evaluation direction and null
/// treatment made part of the function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PortableWindowUdf {
    inner: Arc<WindowUDF>,
    /// Evaluated over its input in reverse order (see the module docs).
    reversed: bool,
    /// `IGNORE NULLS`.
    ignore_nulls: bool,
}

impl PortableWindowUdf {
    /// `function` with `IGNORE NULLS` when `ignore_nulls`, if its result can
    /// depend on either flag; `None` for the others (`row_number`, `rank`,
    /// ...), which need no wrapper.
    pub fn wrap(function: &Arc<WindowUDF>, ignore_nulls: bool) -> Option<Arc<WindowUDF>> {
        if function.inner().is::<PortableWindowUdf>() {
            return None;
        }
        let reversible = matches!(function.reverse_expr(), ReversedUDWF::Reversed(_));
        (reversible || ignore_nulls).then(|| {
            Arc::new(WindowUDF::new_from_impl(PortableWindowUdf {
                inner: function.clone(),
                reversed: false,
                ignore_nulls,
            }))
        })
    }

    /// The encoding of `function` if it is a [`PortableWindowUdf`]; its
    /// name travels beside it.
    pub(crate) fn encode(function: &WindowUDF, buf: &mut Vec<u8>) -> bool {
        let Some(portable) = function.inner().downcast_ref::<PortableWindowUdf>() else {
            return false;
        };
        buf.extend_from_slice(MAGIC);
        buf.extend([u8::from(portable.reversed), u8::from(portable.ignore_nulls)]);
        true
    }

    /// The function `name` encoded as `buf` by [`Self::encode`]; `None` if
    /// `buf` is not such an encoding.
    pub(crate) fn decode(name: &str, buf: &[u8]) -> Option<Result<Arc<WindowUDF>>> {
        let flags = buf.strip_prefix(MAGIC)?;
        Some((|| {
            let &[reversed, ignore_nulls] = flags else {
                return Err(exec_datafusion_err!("malformed window function {name}"));
            };
            let inner = datafusion::functions_window::all_default_window_functions()
                .into_iter()
                .find(|f| f.name() == name)
                .ok_or_else(|| exec_datafusion_err!("unknown window function {name}"))?;
            Ok(Arc::new(WindowUDF::new_from_impl(PortableWindowUdf {
                inner,
                reversed: reversed != 0,
                ignore_nulls: ignore_nulls != 0,
            })))
        })())
    }
}

impl WindowUDFImpl for PortableWindowUdf {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn expressions(&self, expr_args: ExpressionArgs) -> Vec<Arc<dyn PhysicalExpr>> {
        self.inner.expressions(expr_args)
    }

    fn partition_evaluator(
        &self,
        args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        // The wrapper's flags, not the physical expression's: those are
        // lost when the plan is decoded on an executor.
        self.inner
            .partition_evaluator_factory(PartitionEvaluatorArgs::new(
                args.input_exprs(),
                args.input_fields(),
                self.reversed,
                self.ignore_nulls || args.ignore_nulls(),
            ))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        self.inner.field(field_args)
    }

    fn sort_options(&self) -> Option<SortOptions> {
        self.inner.sort_options()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn reverse_expr(&self) -> ReversedUDWF {
        match self.inner.reverse_expr() {
            ReversedUDWF::Reversed(inner) => {
                ReversedUDWF::Reversed(Arc::new(WindowUDF::new_from_impl(PortableWindowUdf {
                    inner,
                    reversed: !self.reversed,
                    ignore_nulls: self.ignore_nulls,
                })))
            }
            other => other,
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn limit_effect(&self, args: &[Arc<dyn PhysicalExpr>]) -> LimitEffect {
        self.inner.inner().limit_effect(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::functions_window::lead_lag::lag_udwf;

    #[test]
    fn flags_survive_encoding_and_reversal() {
        let lag = PortableWindowUdf::wrap(&lag_udwf(), true).expect("lag is reversible");
        let ReversedUDWF::Reversed(reversed) = lag.reverse_expr() else {
            panic!("a wrapped lag reverses");
        };
        let mut buf = Vec::new();
        assert!(PortableWindowUdf::encode(&reversed, &mut buf));
        let decoded = PortableWindowUdf::decode("lag", &buf)
            .expect("a portable encoding")
            .expect("decodes");
        assert_eq!(decoded, reversed);
        assert_ne!(decoded, lag);
        assert!(PortableWindowUdf::decode("lag", b"other").is_none());
    }
}
