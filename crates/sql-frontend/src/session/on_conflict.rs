//! `INSERT ... ON CONFLICT [(columns) | ON CONSTRAINT name] DO NOTHING |
//! DO UPDATE SET ... [WHERE ...]`.
//!
//! The rows the `INSERT` would write are computed once; their keys of the
//! arbiter indexes (the unique index the conflict target names, or every
//! unique index of the table for `DO NOTHING` without one) are looked up
//! among the table's rows as the session sees them. A row whose key is
//! there, or is an earlier row's of the statement, conflicts: `DO NOTHING`
//! leaves it out; `DO UPDATE` changes the table's row of that key as the
//! `UPDATE t SET ... FROM (conflicting rows) AS excluded WHERE t.key =
//! excluded.key [AND condition]` it amounts to would (see
//! `crate::update_from`), and fails with `21000` when two rows of the
//! statement have one key, as PostgreSQL does. The other rows are
//! inserted. All of it is one statement's write: staged and checked as any
//! write to a table with keys (see `super::unique_keys`), so a row another
//! session commits meanwhile with the same key makes this statement fail
//! with `23505` at its commit (PostgreSQL would wait for that session and
//! then take its row as the conflicting one).

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DataFusionError, JoinType, NullEquality, Result as DfResult};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::{
    DmlStatement, LogicalPlan, LogicalPlanBuilder, SubqueryAlias, WriteOp,
};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    ConflictTarget, Expr, Ident, Insert, OnConflict, OnConflictAction, OnInsert, Statement, Value,
    visit_expressions,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use quiver_catalog::{IndexEntry, Target};

use super::in_place::rows_of;
use super::{Completion, Outcome, Session};
use crate::names::folded;
use crate::{Error, Result};

/// The alias of the rows proposed for insertion, as `DO UPDATE` names them.
const EXCLUDED: &str = "excluded";

/// An `INSERT`'s `ON CONFLICT` clause, taken out of it, and what `DO
/// UPDATE` needs of the statement: the table as written and its alias.
#[derive(Debug, Clone)]
pub(crate) struct Conflict {
    clause: OnConflict,
    table: String,
    alias: Option<Ident>,
}

/// Takes the `ON CONFLICT` clause out of `statement`, an `INSERT`.
pub(crate) fn take_on_conflict(statement: &mut Statement) -> Result<Option<Conflict>> {
    let Statement::Insert(insert) = statement else {
        return Ok(None);
    };
    match insert.on.take() {
        None => Ok(None),
        Some(OnInsert::OnConflict(clause)) => {
            if insert.returning.is_some() {
                return Err(Error::FeatureNotSupported(
                    "INSERT ... ON CONFLICT ... RETURNING is not supported yet".into(),
                ));
            }
            let parameters = visit_expressions(&clause, |expr| match expr {
                Expr::Value(value) if matches!(value.value, Value::Placeholder(_)) => {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            });
            if parameters.is_break() {
                return Err(Error::FeatureNotSupported(
                    "parameters in ON CONFLICT ... DO UPDATE are not supported yet: refer to the proposed row's values as excluded.column".into(),
                ));
            }
            // The alias names the table in the clause only (DataFusion
            // plans no INSERT with one).
            Ok(Some(Conflict {
                clause,
                table: insert.table.to_string(),
                alias: insert.table_alias.take().map(|a| a.alias),
            }))
        }
        Some(other) => Err(Error::FeatureNotSupported(format!(
            "INSERT ...{other} is not supported"
        ))),
    }
}

impl Session {
    /// `insert` with its `ON CONFLICT` clause (simple query protocol).
    pub(super) async fn insert_on_conflict(&self, insert: Insert) -> Result<Outcome> {
        let mut statement = Statement::Insert(insert);
        let conflict = take_on_conflict(&mut statement)?
            .ok_or_else(|| Error::Internal("an INSERT without ON CONFLICT".into()))?;
        let plan = self
            .plan(DfStatement::Statement(Box::new(statement)))
            .await?;
        self.run_on_conflict_unchecked(plan, &conflict).await
    }

    /// Runs `plan`, an `INSERT` planned without its `ON CONFLICT` clause
    /// `conflict` (extended query protocol).
    pub(crate) async fn run_on_conflict(
        &self,
        plan: LogicalPlan,
        conflict: &Conflict,
    ) -> Result<Outcome> {
        self.check_block()?;
        let result = self.run_on_conflict_unchecked(plan, conflict).await;
        self.note_failure(result)
    }

    async fn run_on_conflict_unchecked(
        &self,
        plan: LogicalPlan,
        conflict: &Conflict,
    ) -> Result<Outcome> {
        self.admit(&plan)?;
        let LogicalPlan::Dml(dml) = &plan else {
            return Err(Error::Internal(format!(
                "an INSERT ... ON CONFLICT planned as {}",
                plan.display()
            )));
        };
        let target = self.target(&dml.table_name)?;
        let arbiters = self.arbiters(&target, &conflict.clause)?;
        let count = self
            .keeping_keys(&target, async {
                let rows = self.collect(dml.input.as_ref().clone()).await?;
                let table = source_as_provider(&dml.target)?;
                let rows: Vec<RecordBatch> = rows
                    .iter()
                    .map(|batch| RecordBatch::try_new(table.schema(), batch.columns().to_vec()))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| Error::Internal(format!("rows of {}: {e}", dml.table_name)))?;
                let sorted = self.sort_out(dml, &rows, &arbiters).await?;
                let updated = match &conflict.clause.action {
                    OnConflictAction::DoNothing => 0,
                    OnConflictAction::DoUpdate(_) if sorted.repeated => {
                        return Err(Error::CardinalityViolation(
                            "ON CONFLICT DO UPDATE command cannot affect row a second time".into(),
                        ));
                    }
                    OnConflictAction::DoUpdate(_) if sorted.conflicting.is_empty() => 0,
                    OnConflictAction::DoUpdate(_) => {
                        let update = self
                            .conflict_update(dml, conflict, &arbiters[0], &sorted.conflicting)
                            .await?;
                        self.change_in_place(&update, false).await?.0
                    }
                };
                let inserted = match sorted.fresh.iter().all(|b| b.num_rows() == 0) {
                    true => 0,
                    false => {
                        let input = rows_of(&dml.table_name, table.schema(), &sorted.fresh)?;
                        let staged = self.relations.staged_target(&target, table)?;
                        let insert = LogicalPlan::Dml(DmlStatement::new(
                            dml.table_name.clone(),
                            provider_as_source(staged.clone()),
                            dml.op.clone(),
                            Arc::new(input),
                        ));
                        let count = self.run_counting(insert).await?;
                        self.catalog.written(staged.as_ref());
                        count
                    }
                };
                Ok(updated + inserted)
            })
            .await?;
        Ok(Completion::tag(format!("INSERT 0 {count}")).into())
    }

    /// The unique indexes of `target` a row may conflict on.
    fn arbiters(&self, target: &Target, clause: &OnConflict) -> Result<Vec<IndexEntry>> {
        let unique: Vec<IndexEntry> = match target {
            Target::Stored(name) => self
                .relations
                .entry(name)
                .map(|entry| {
                    entry
                        .indexes
                        .into_iter()
                        .filter(|i| i.is_unique())
                        .collect()
                })
                .unwrap_or_default(),
            Target::Temp(_) => Vec::new(),
        };
        let no_match = || {
            Error::InvalidColumnReference(
                "there is no unique or exclusion constraint matching the ON CONFLICT specification"
                    .into(),
            )
        };
        match &clause.conflict_target {
            None => match clause.action {
                OnConflictAction::DoNothing => Ok(unique),
                OnConflictAction::DoUpdate(_) => Err(Error::Syntax(
                    "ON CONFLICT DO UPDATE requires inference specification or constraint name"
                        .into(),
                )),
            },
            Some(ConflictTarget::Columns(columns)) => {
                let mut wanted: Vec<String> = columns.iter().map(folded).collect();
                wanted.sort();
                let index = unique.into_iter().find(|index| {
                    let mut keys = index.keys.clone();
                    keys.sort();
                    keys == wanted
                });
                index.map(|index| vec![index]).ok_or_else(no_match)
            }
            Some(ConflictTarget::OnConstraint(name)) => {
                let name = crate::names::folded_parts(name).pop().unwrap_or_default();
                let index = unique
                    .into_iter()
                    .find(|index| index.name == name && index.constraint_type().is_some());
                index.map(|index| vec![index]).ok_or_else(|| {
                    Error::UndefinedObject(format!(
                        "constraint \"{name}\" for table \"{}\" does not exist",
                        target_table(target)
                    ))
                })
            }
        }
    }

    /// `rows`, the rows `dml` proposes, sorted into those whose key of an
    /// arbiter the table or an earlier row of them has, and the others.
    async fn sort_out(
        &self,
        dml: &DmlStatement,
        rows: &[RecordBatch],
        arbiters: &[IndexEntry],
    ) -> Result<Sorted> {
        let table = source_as_provider(&dml.target)?;
        let schema = table.schema();
        let mut keys = Vec::new();
        for index in arbiters {
            let columns: Vec<usize> = index
                .keys
                .iter()
                .map(|key| schema.index_of(key))
                .collect::<std::result::Result<_, _>>()
                .map_err(DataFusionError::from)?;
            let converter = RowConverter::new(
                columns
                    .iter()
                    .map(|&c| SortField::new(schema.field(c).data_type().clone()))
                    .collect(),
            )
            .map_err(DataFusionError::from)?;
            let present = self.present_keys(dml, rows, index, &converter).await?;
            keys.push(Arbiter {
                columns,
                converter,
                present,
                seen: HashSet::new(),
            });
        }
        Ok(sort(rows, &mut keys)?)
    }

    /// The keys of `index` among the table's rows (as the session sees
    /// them) that some row of `rows` has.
    async fn present_keys(
        &self,
        dml: &DmlStatement,
        rows: &[RecordBatch],
        index: &IndexEntry,
        converter: &RowConverter,
    ) -> Result<HashSet<OwnedRow>> {
        let table = source_as_provider(&dml.target)?;
        let keys: Vec<Column> = index
            .keys
            .iter()
            .map(|k| Column::new(Some(dml.table_name.clone()), k))
            .collect();
        let proposed = rows_of(&dml.table_name, table.schema(), rows)?;
        let proposed = LogicalPlanBuilder::from(proposed)
            .alias("__quiver_proposed")?
            .build()?;
        let theirs: Vec<Column> = index
            .keys
            .iter()
            .map(|k| Column::new(Some("__quiver_proposed"), k))
            .collect();
        let present = LogicalPlanBuilder::scan(dml.table_name.clone(), dml.target.clone(), None)?
            .join_detailed(
                proposed,
                JoinType::LeftSemi,
                (keys.clone(), theirs),
                None,
                NullEquality::NullEqualsNothing,
            )?
            .project(keys.into_iter().map(datafusion::logical_expr::Expr::Column))?
            .build()?;
        let batches = self.collect(present).await?;
        let mut present = HashSet::new();
        for batch in batches {
            let converted = converter
                .convert_columns(batch.columns())
                .map_err(DataFusionError::from)?;
            for row in converted.iter() {
                present.insert(row.owned());
            }
        }
        Ok(present)
    }

    /// The `UPDATE` a `DO UPDATE` amounts to for the `conflicting` rows
    /// (keys of `index`), planned.
    async fn conflict_update(
        &self,
        dml: &DmlStatement,
        conflict: &Conflict,
        index: &IndexEntry,
        conflicting: &[RecordBatch],
    ) -> Result<DmlStatement> {
        let OnConflictAction::DoUpdate(update) = &conflict.clause.action else {
            return Err(Error::Internal("DO NOTHING has no UPDATE".into()));
        };
        let target = match &conflict.alias {
            Some(alias) => format!("{} AS {alias}", conflict.table),
            None => conflict.table.clone(),
        };
        let reference = match &conflict.alias {
            Some(alias) => alias.to_string(),
            None => conflict.table.clone(),
        };
        let mut condition: Vec<String> = index
            .keys
            .iter()
            .map(|key| {
                let key = quiver_udf_registry::quote_ident(key);
                format!("{reference}.{key} = {EXCLUDED}.{key}")
            })
            .collect();
        if let Some(selection) = &update.selection {
            condition.push(format!("({selection})"));
        }
        let assignments: Vec<String> = update.assignments.iter().map(|a| a.to_string()).collect();
        let sql = format!(
            "UPDATE {target} SET {} FROM {} AS {EXCLUDED} WHERE {}",
            assignments.join(", "),
            conflict.table,
            condition.join(" AND ")
        );
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, &sql)
            .ok()
            .and_then(|mut parsed| parsed.pop())
            .ok_or_else(|| Error::Internal(format!("ON CONFLICT DO UPDATE as {sql}")))?;
        crate::rewrite::rewrite(&mut statement);
        let plan = self
            .plan(DfStatement::Statement(Box::new(statement)))
            .await?;
        self.admit(&plan)?;
        // `excluded`: the conflicting rows, in place of the table.
        let table = source_as_provider(&dml.target)?;
        let proposed = rows_of(&dml.table_name, table.schema(), conflicting)?;
        let plan = plan
            .transform_up_with_subqueries(|node| match node {
                LogicalPlan::SubqueryAlias(alias)
                    if alias.alias.table() == EXCLUDED
                        && matches!(alias.input.as_ref(), LogicalPlan::TableScan(_)) =>
                {
                    let replaced = SubqueryAlias::try_new(Arc::new(proposed.clone()), EXCLUDED)?;
                    Ok(Transformed::yes(LogicalPlan::SubqueryAlias(replaced)))
                }
                other => Ok(Transformed::no(other)),
            })?
            .data;
        match plan {
            LogicalPlan::Dml(update) if update.op == WriteOp::Update => Ok(update),
            other => Err(Error::Internal(format!(
                "ON CONFLICT DO UPDATE planned as {}",
                other.display()
            ))),
        }
    }
}

/// `rows` sorted out by the keys of `arbiters` (see [`Session::sort_out`]).
fn sort(rows: &[RecordBatch], keys: &mut [Arbiter]) -> DfResult<Sorted> {
    let mut sorted = Sorted::default();
    for batch in rows {
        let mut conflicting = Vec::with_capacity(batch.num_rows());
        let converted: Vec<_> = keys
            .iter()
            .map(|arbiter| {
                let columns: Vec<ArrayRef> = arbiter
                    .columns
                    .iter()
                    .map(|&c| batch.column(c).clone())
                    .collect();
                arbiter.converter.convert_columns(&columns)
            })
            .collect::<std::result::Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            let mut conflicts = false;
            for (arbiter, rows) in keys.iter_mut().zip(&converted) {
                let has_null = arbiter
                    .columns
                    .iter()
                    .any(|&c| batch.column(c).is_null(row));
                if has_null {
                    continue;
                }
                let key = rows.row(row).owned();
                if arbiter.present.contains(&key) {
                    conflicts = true;
                    if !arbiter.seen.insert(key) {
                        sorted.repeated = true;
                    }
                } else if !arbiter.seen.insert(key) {
                    conflicts = true;
                    sorted.repeated = true;
                }
            }
            conflicting.push(conflicts);
        }
        let mask = BooleanArray::from(conflicting);
        let fresh = datafusion::arrow::compute::not(&mask)?;
        sorted.conflicting.push(filter_record_batch(batch, &mask)?);
        sorted.fresh.push(filter_record_batch(batch, &fresh)?);
    }
    Ok(sorted)
}

/// One arbiter index's keys: where they are in a row, and those met.
struct Arbiter {
    columns: Vec<usize>,
    converter: RowConverter,
    /// Of the table's rows.
    present: HashSet<OwnedRow>,
    /// Of the statement's rows so far.
    seen: HashSet<OwnedRow>,
}

/// The rows an `INSERT ... ON CONFLICT` proposes, sorted out.
#[derive(Default)]
struct Sorted {
    conflicting: Vec<RecordBatch>,
    fresh: Vec<RecordBatch>,
    /// Two rows of the statement have one key.
    repeated: bool,
}

fn target_table(target: &Target) -> String {
    match target {
        Target::Temp(name) => name.clone(),
        Target::Stored(name) => name.name.clone(),
    }
}
