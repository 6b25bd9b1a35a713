//! `UPDATE`, `DELETE` and `TRUNCATE`: a table's rows changed in place.
//!
//! The catalog rewrites the table's files (see `quiver_catalog::Rewrite`):
//! the statement reads a snapshot of them and writes the rows they are to
//! hold afterwards, which then replace them at once. Those rows are
//! DataFusion's plan of the statement turned into queries of the snapshot,
//! written as an `INSERT ... SELECT` is (on the frontend, or as a Ballista
//! job when the table is large):
//!
//! - `DELETE FROM t WHERE c` keeps the rows for which `c` is not true;
//!   without `WHERE` it keeps none. Its count is the rows read less the
//!   rows kept.
//! - `UPDATE t SET ... WHERE c` writes the rows for which `c` is not true
//!   as they are, then those for which it is with their new values (the
//!   count).
//! - `TRUNCATE t` keeps nothing, and reads nothing.
//!
//! For `RETURNING` (see `super::returning`), the rows a `DELETE` deletes are
//! read once more, and the changed rows of an `UPDATE` are computed once,
//! kept, and written from memory.
//!
//! A condition with a subquery (`WHERE k IN (SELECT ...)`, or `DELETE ...
//! USING`, which becomes `WHERE EXISTS (...)`) cannot be negated as an
//! expression — DataFusion turns such subqueries into joins only where they
//! filter — so the rows kept are those of the table with no equal among
//! the rows it matches (an anti join on every column, NULLs equal).
//! Equal rows are either all matched or none, so that is the same rows.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, NullEquality, TableReference};
use datafusion::datasource::MemTable;
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    DmlStatement, Expr, JoinType, LogicalPlan, LogicalPlanBuilder, TableScan, TableSource, WriteOp,
};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    CascadeOption, Ident, ObjectName, Statement, Truncate, TruncateTableTarget,
};
use futures::TryStreamExt;
use quiver_catalog::{QualifiedName, Rewrite, Target};

use super::{Completion, Outcome, Session};
use crate::{Error, Result};

/// How many times an autocommitted change is tried.
const ATTEMPTS: usize = 5;

/// The alias of the rows a condition matched, in an anti join with the
/// table.
const MATCHED: &str = "__quiver_matched";

impl Session {
    /// `TRUNCATE` of one table or several: all of them, or, if one fails,
    /// none (outside a transaction block, in a block of its own).
    pub(super) async fn truncate_tables(&self, truncate: Truncate) -> Result<Outcome> {
        let mut names = Vec::new();
        for target in &truncate.table_names {
            if let Target::Stored(name) =
                self.target(&crate::names::table_reference(&target.name))?
            {
                names.push(name);
            }
        }
        // With CASCADE, the tables referencing them too, and theirs.
        let mut targets = truncate.table_names.clone();
        let mut notices = Vec::new();
        if truncate.cascade == Some(CascadeOption::Cascade) {
            let mut next = 0;
            while next < names.len() {
                for (child, _) in self.relations.referencing(&names[next]) {
                    let child = child.qualified();
                    if !names.contains(&child) {
                        notices.push(format!("truncate cascades to table \"{}\"", child.name));
                        targets.push(TruncateTableTarget {
                            name: ObjectName::from(vec![
                                Ident::new(&child.schema),
                                Ident::new(&child.name),
                            ]),
                            only: false,
                            has_asterisk: false,
                        });
                        names.push(child);
                    }
                }
                next += 1;
            }
        }
        self.check_truncatable(&names)?;
        self.atomically(async {
            for target in targets {
                let one = Truncate {
                    table_names: vec![target],
                    cascade: None,
                    ..truncate.clone()
                };
                let statement = DfStatement::Statement(Box::new(Statement::Truncate(one)));
                self.plan_and_run(statement).await?;
            }
            Ok(())
        })
        .await?;
        Ok(Completion::tag("TRUNCATE TABLE")
            .with_notice((!notices.is_empty()).then(|| notices.join("\n")))
            .into())
    }

    /// As in PostgreSQL, a table a foreign key references is truncated
    /// only with the tables that reference it (`names`, the tables one
    /// `TRUNCATE` empties): then no key can break.
    fn check_truncatable(&self, names: &[QualifiedName]) -> Result<()> {
        for name in names {
            for (child, key) in self.relations.referencing(name) {
                if !names.contains(&child.qualified()) {
                    return Err(Error::FeatureNotSupported(format!(
                        "cannot truncate a table referenced in a foreign key constraint: table \"{}\" references \"{}\" ({}); truncate table \"{}\" at the same time",
                        child.name, name.name, key.name, child.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Runs `dml`, an `UPDATE`, `DELETE` or `TRUNCATE`; returns how many
    /// rows it changed (none for `TRUNCATE`). Outside a transaction block,
    /// a statement whose files another statement replaced first (see
    /// `quiver_catalog::Rewrite`) runs again on the table as that one left
    /// it, as PostgreSQL's `UPDATE` finds the latest version of a row it
    /// waited for; it fails with 40001 only after [`ATTEMPTS`] tries.
    ///
    /// With `returning`, also returns the rows changed: as they are after
    /// an `UPDATE`, as they were before a `DELETE`.
    pub(super) async fn change_in_place(
        &self,
        dml: &DmlStatement,
        returning: bool,
    ) -> Result<(u64, Vec<RecordBatch>)> {
        let mut attempt = 1;
        let target = self.target(&dml.table_name)?;
        let changed = loop {
            // A DELETE or TRUNCATE breaks no key but those referencing
            // the table; a DELETE makes the changes their `ON DELETE`
            // actions say first.
            let referenced = match &target {
                Target::Stored(name) => Some(name).filter(|n| self.relations.is_referenced(n)),
                Target::Temp(_) => None,
            };
            let changing = async {
                let changed = self.change_once(dml, returning).await?;
                // (A table referencing itself cascades until a DELETE
                // deletes nothing.)
                if let (WriteOp::Delete, Some(name)) = (&dml.op, referenced)
                    && changed.0 > 0
                {
                    self.cascade_deletes(name).await?;
                }
                Ok(changed)
            };
            let referenced = referenced.is_some();
            let changed = match dml.op {
                WriteOp::Update => self.keeping_keys(&target, changing).await,
                WriteOp::Delete if referenced => self.keeping_keys(&target, changing).await,
                _ => changing.await,
            };
            match changed {
                Err(Error::Catalog(quiver_catalog::Error::SerializationFailure(_)))
                    if attempt < ATTEMPTS && !self.staging.is_open() =>
                {
                    // Two statements that keep replacing each other's files
                    // would keep doing so if both tried again at once: each
                    // waits a random while, longer at each attempt.
                    let jitter = uuid::Uuid::new_v4().as_u128() % 50;
                    let wait = (attempt as u64) * 20 + jitter as u64;
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                    attempt += 1;
                }
                done => break done,
            }
        };
        // Inside a block, the table's view is another now (and may be
        // even when the change failed): plans made before are stale.
        self.generation.fetch_add(1, Ordering::AcqRel);
        changed
    }

    async fn change_once(
        &self,
        dml: &DmlStatement,
        returning: bool,
    ) -> Result<(u64, Vec<RecordBatch>)> {
        let target = self.target(&dml.table_name)?;
        let rewrite = self.relations.begin_rewrite(&target).await?;
        let original = source_as_provider(&dml.target)?;
        let snapshot = provider_as_source(rewrite.source().clone());
        let input = reading(dml.input.as_ref().clone(), &original, &snapshot)?;
        let table = &dml.table_name;
        let mut changed = Vec::new();
        let count = match dml.op {
            WriteOp::Truncate => 0,
            WriteOp::Delete => {
                let matched = matched_rows(&input);
                if returning {
                    changed = self.collect(matched.unwrap_or(&input).clone()).await?;
                }
                let kept = match matched {
                    None => 0,
                    Some(matched) => self.write(&rewrite, table, kept(matched)?).await?,
                };
                rewrite.rows_read()?.saturating_sub(kept)
            }
            WriteOp::Update => {
                if let Some(matched) = matched_rows(&input) {
                    self.write(&rewrite, table, kept(matched)?).await?;
                }
                if returning {
                    changed = self.collect(input).await?;
                    let rows = rows_of(table, rewrite.target().schema(), &changed)?;
                    self.write(&rewrite, table, rows).await?
                } else {
                    self.write(&rewrite, table, input).await?
                }
            }
            _ => {
                return Err(Error::Internal(format!(
                    "{} is not a change in place",
                    dml.op
                )));
            }
        };
        rewrite.finish().await?;
        Ok((count, changed))
    }

    /// The rows of `plan`, all of them.
    pub(super) async fn collect(&self, plan: LogicalPlan) -> Result<Vec<RecordBatch>> {
        let stream = self.stream(plan, false).await?;
        Ok(stream.try_collect().await?)
    }

    /// Writes the rows of `rows` (with the table's columns) to `rewrite`'s
    /// new files; returns how many there were.
    pub(super) async fn write(
        &self,
        rewrite: &Rewrite,
        table: &TableReference,
        rows: LogicalPlan,
    ) -> Result<u64> {
        let insert = LogicalPlan::Dml(DmlStatement::new(
            table.clone(),
            provider_as_source(rewrite.target().clone()),
            WriteOp::Insert(InsertOp::Append),
            Arc::new(rows),
        ));
        self.run_counting(insert).await
    }
}

/// `plan` reading `replacement` wherever it reads the table `original`,
/// subqueries included.
pub(super) fn reading(
    plan: LogicalPlan,
    original: &Arc<dyn TableProvider>,
    replacement: &Arc<dyn TableSource>,
) -> Result<LogicalPlan> {
    let is_original = |scan: &TableScan| {
        source_as_provider(&scan.source)
            .is_ok_and(|provider| std::ptr::addr_eq(Arc::as_ptr(&provider), Arc::as_ptr(original)))
    };
    let plan = plan.transform_up_with_subqueries(|node| match node {
        LogicalPlan::TableScan(mut scan) if is_original(&scan) => {
            scan.source = replacement.clone();
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        }
        other => Ok(Transformed::no(other)),
    })?;
    Ok(plan.data)
}

/// A scan of `batches` as rows of the table `table` (whose columns are
/// `schema`'s).
pub(super) fn rows_of(
    table: &TableReference,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<LogicalPlan> {
    let rows = rows_source(table, schema, batches)?;
    Ok(LogicalPlanBuilder::scan(table.clone(), rows, None)?.build()?)
}

/// `batches`, as rows of the table `table` (whose columns are `schema`'s),
/// for a scan to read.
pub(super) fn rows_source(
    table: &TableReference,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<Arc<dyn TableSource>> {
    for batch in batches {
        super::refuse_nulls(&schema, batch.columns(), table.table())?;
    }
    let batches = batches
        .iter()
        .map(|batch| RecordBatch::try_new(schema.clone(), batch.columns().to_vec()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Internal(format!("rows of {table}: {e}")))?;
    let rows = MemTable::try_new(schema, vec![batches])?;
    Ok(provider_as_source(Arc::new(rows)))
}

/// The filter of the table's rows a `DELETE` deletes or an `UPDATE`
/// changes (its `WHERE`), under the projections of an `UPDATE`'s new
/// values; `None` when every row is meant.
fn matched_rows(rows: &LogicalPlan) -> Option<&LogicalPlan> {
    match rows {
        LogicalPlan::Projection(projection) => matched_rows(&projection.input),
        LogicalPlan::Filter(_) => Some(rows),
        _ => None,
    }
}

/// The rows of the table the condition of `matched` (a filter of the
/// table) is not true of.
fn kept(matched: &LogicalPlan) -> Result<LogicalPlan> {
    let LogicalPlan::Filter(filter) = matched else {
        return Err(Error::Internal(format!(
            "the rows of a change in place planned as {}",
            matched.display()
        )));
    };
    if !filter.predicate.contains_outer() && !has_subquery(&filter.predicate) {
        let kept = LogicalPlanBuilder::from(filter.input.as_ref().clone())
            .filter(Expr::IsNotTrue(Box::new(filter.predicate.clone())))?
            .build()?;
        return Ok(kept);
    }
    let table = filter.input.as_ref().clone();
    let columns: Vec<Column> = table.schema().columns();
    let matched = LogicalPlanBuilder::from(matched.clone())
        .distinct()?
        .alias(MATCHED)?
        .build()?;
    let theirs: Vec<Column> = columns
        .iter()
        .map(|c| Column::new(Some(MATCHED), c.name()))
        .collect();
    let kept = LogicalPlanBuilder::from(table)
        .join_detailed(
            matched,
            JoinType::LeftAnti,
            (columns, theirs),
            None,
            NullEquality::NullEqualsNull,
        )?
        .build()?;
    Ok(kept)
}

/// Whether `expr` has a subquery in it.
fn has_subquery(expr: &Expr) -> bool {
    expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
        ))
    })
    .unwrap_or(true)
}
