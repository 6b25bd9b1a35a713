//! Statements nested too deep to plan.
//!
//! sqlparser builds chains of infix and postfix operators (`1 + 1 + ...`,
//! `x::int::int...`, `a UNION ALL b UNION ALL ...`) in a loop, so its
//! recursion limit does not bound them; everything after the parser —
//! Quiver's rewrites, DataFusion's planner, the derived `Clone`, `Hash` and
//! `Drop` of expression trees — recurses once per level, and a statement of
//! a few hundred kilobytes overflowed the stack and ended the process.
//! [`check_depth`] measures a parsed statement before anything else sees
//! it, with a visitor that stops at the limit (so its own recursion is
//! bounded), and refuses deeper statements with 54001, as PostgreSQL does
//! when its stack limit is reached. A refused statement is taken apart
//! piece by piece, each piece shallow, so that even dropping it cannot
//! recurse without bound.

use std::mem;
use std::ops::ControlFlow;

use datafusion::sql::parser::{CopyToSource, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    Expr, Query, SetExpr, Value, Values, Visit, VisitMut, Visitor, VisitorMut,
};

use crate::{Error, Result};

/// The deepest expression nesting Quiver plans: an operand of an operator
/// of an operand ... counts one level each. Executors run plans on
/// Ballista's task threads, whose stacks are 2 MiB; a debug build's
/// executor overflowed one at about 500 levels of `a + a + ...`.
pub(crate) const MAX_EXPRESSION_DEPTH: usize = 256;

/// The most set operations (`UNION`, `INTERSECT`, `EXCEPT`) one query
/// chains.
pub(crate) const MAX_SET_OPERATIONS: usize = 1000;

/// `statement`, or 54001 if it nests deeper than Quiver plans (see the
/// module docs).
pub(crate) fn check_depth(statement: DfStatement) -> Result<DfStatement> {
    let mut measure = Measure::default();
    let Some(refusal) = visit_statement(&statement, &mut measure).break_value() else {
        return Ok(statement);
    };
    dismantle(statement);
    Err(Error::TooComplex(refusal))
}

fn visit_statement<V: Visitor>(statement: &DfStatement, visitor: &mut V) -> ControlFlow<V::Break> {
    match statement {
        DfStatement::Statement(statement) => statement.visit(visitor),
        DfStatement::Explain(explain) => visit_statement(&explain.statement, visitor),
        DfStatement::CopyTo(copy) => match &copy.source {
            CopyToSource::Query(query) => query.visit(visitor),
            CopyToSource::Relation(_) => ControlFlow::Continue(()),
        },
        // Names, a location and options: nothing nested.
        DfStatement::CreateExternalTable(_) | DfStatement::Reset(_) => ControlFlow::Continue(()),
    }
}

/// Set operations chained by `query`'s body, counted without recursion:
/// sqlparser chains them to the left.
fn set_operations(query: &Query) -> usize {
    let mut count = 0;
    let mut body = query.body.as_ref();
    while let SetExpr::SetOperation { left, .. } = body {
        count += 1;
        body = left;
    }
    count
}

/// Stops, with the message to refuse with, at the first level past a
/// limit.
#[derive(Default)]
struct Measure {
    depth: usize,
}

impl Visitor for Measure {
    type Break = String;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        if set_operations(query) > MAX_SET_OPERATIONS {
            return ControlFlow::Break(format!(
                "statement too complex: a query chains more than {MAX_SET_OPERATIONS} \
                 UNION, INTERSECT or EXCEPT operations"
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<String> {
        self.depth += 1;
        if self.depth > MAX_EXPRESSION_DEPTH {
            return ControlFlow::Break(format!(
                "statement too complex: expressions nest more than {MAX_EXPRESSION_DEPTH} levels deep"
            ));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<String> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// A part cut out of a statement being taken apart.
enum Piece {
    Expr(Box<Expr>),
    Set(Box<SetExpr>),
}

/// How deep a piece may be before the part below is cut off.
const CUT_DEPTH: usize = 64;

/// Drops `statement` without recursing more than [`CUT_DEPTH`] expression
/// levels or one set operation at a time.
fn dismantle(mut statement: DfStatement) {
    let mut cutter = Cutter::default();
    visit_statement_mut(&mut statement, &mut cutter);
    drop(statement);
    while let Some(piece) = cutter.pieces.pop() {
        match piece {
            Piece::Expr(mut expr) => {
                let _ = VisitMut::visit(expr.as_mut(), &mut cutter);
            }
            Piece::Set(set) => match *set {
                SetExpr::SetOperation { left, right, .. } => {
                    cutter.pieces.push(Piece::Set(left));
                    cutter.pieces.push(Piece::Set(right));
                }
                mut set => {
                    let _ = VisitMut::visit(&mut set, &mut cutter);
                }
            },
        }
    }
}

fn visit_statement_mut(statement: &mut DfStatement, cutter: &mut Cutter) {
    match statement {
        DfStatement::Statement(statement) => {
            let _ = VisitMut::visit(statement.as_mut(), cutter);
        }
        DfStatement::Explain(explain) => visit_statement_mut(&mut explain.statement, cutter),
        DfStatement::CopyTo(copy) => {
            if let CopyToSource::Query(query) = &mut copy.source {
                let _ = VisitMut::visit(query.as_mut(), cutter);
            }
        }
        DfStatement::CreateExternalTable(_) | DfStatement::Reset(_) => {}
    }
}

/// Replaces every expression [`CUT_DEPTH`] levels down, and every chain
/// of set operations, by a leaf, and keeps what it cut out.
#[derive(Default)]
struct Cutter {
    depth: usize,
    pieces: Vec<Piece>,
}

impl VisitorMut for Cutter {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if matches!(query.body.as_ref(), SetExpr::SetOperation { .. }) {
            let empty = SetExpr::Values(Values {
                explicit_row: false,
                value_keyword: false,
                rows: Vec::new(),
            });
            self.pieces
                .push(Piece::Set(mem::replace(&mut query.body, Box::new(empty))));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth >= CUT_DEPTH {
            let leaf = Expr::Value(Value::Null.into());
            self.pieces
                .push(Piece::Expr(Box::new(mem::replace(expr, leaf))));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &mut Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}
