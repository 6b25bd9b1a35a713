//! `INSERT`, `UPDATE` and `DELETE` with `RETURNING`.
//!
//! DataFusion plans no `RETURNING`, so the statement runs without it, its
//! rows kept as it writes them: the rows an `INSERT` adds (computed once,
//! then written), the rows an `UPDATE` changed as they are afterwards, the
//! rows a `DELETE` deleted as they were. The `RETURNING` list is then
//! planned as the select list of `SELECT ... FROM <table>`, with every
//! Quiver rule a query has (result column names, types), and runs over
//! those rows in place of the table's. The command tag is the statement's
//! (`INSERT 0 1`), as PostgreSQL sends it.

use std::sync::Arc;

use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::{DmlStatement, LogicalPlan, WriteOp};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    FromTable, Ident, ObjectName, SelectItem, Statement, TableAlias, TableFactor, TableObject,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::in_place::{reading, rows_of, rows_source};
use super::{Outcome, Session};
use crate::{Error, Result};

/// Takes the `RETURNING` list out of `statement`; `None` if it has none.
pub(crate) fn take_returning(statement: &mut Statement) -> Option<Vec<SelectItem>> {
    match statement {
        Statement::Insert(insert) => insert.returning.take(),
        Statement::Update(update) => update.returning.take(),
        Statement::Delete(delete) => delete.returning.take(),
        _ => None,
    }
}

/// The table `statement` writes to, and its alias.
fn target(statement: &Statement) -> Option<(ObjectName, Option<Ident>)> {
    let relation = match statement {
        Statement::Insert(insert) => {
            let TableObject::TableName(name) = &insert.table else {
                return None;
            };
            let alias = insert.table_alias.as_ref().map(|a| a.alias.clone());
            return Some((name.clone(), alias));
        }
        Statement::Update(update) => &update.table.relation,
        Statement::Delete(delete) => {
            let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
            &from.first()?.relation
        }
        _ => return None,
    };
    match relation {
        TableFactor::Table { name, alias, .. } => Some((
            name.clone(),
            alias.as_ref().map(|TableAlias { name, .. }| name.clone()),
        )),
        _ => None,
    }
}

/// The `RETURNING` list of a statement, planned as a query of its table.
#[derive(Debug, Clone)]
pub(crate) struct Returned {
    plan: LogicalPlan,
    /// The names of its columns, as PostgreSQL names them.
    pub(crate) names: Option<Vec<Option<String>>>,
}

impl Returned {
    /// The query the `RETURNING` list is planned as.
    pub(crate) fn plan(&self) -> &LogicalPlan {
        &self.plan
    }
}

impl Session {
    /// Runs `statement`, an `INSERT`, `UPDATE` or `DELETE`, and returns the
    /// rows `items` (its `RETURNING` list, taken out of it) make of the
    /// rows it wrote or deleted.
    pub(super) async fn run_returning(
        &self,
        statement: Statement,
        items: Vec<SelectItem>,
    ) -> Result<Outcome> {
        // Planned first: a RETURNING list in error writes nothing.
        let returned = self.plan_returning(&statement, &items).await?;
        let plan = self
            .plan(DfStatement::Statement(Box::new(statement)))
            .await?;
        self.run_returned_unchecked(plan, &returned).await
    }

    /// Runs `plan`, an `INSERT`, `UPDATE` or `DELETE` planned without its
    /// `RETURNING` list, then `returned` (that list, from
    /// [`Session::plan_returning`]) over the rows it wrote or deleted.
    pub(crate) async fn run_returned(
        &self,
        plan: LogicalPlan,
        returned: &Returned,
    ) -> Result<Outcome> {
        self.check_block()?;
        let result = self.run_returned_unchecked(plan, returned).await;
        self.note_failure(result)
    }

    async fn run_returned_unchecked(
        &self,
        plan: LogicalPlan,
        returned: &Returned,
    ) -> Result<Outcome> {
        self.admit(&plan)?;
        let LogicalPlan::Dml(dml) = &plan else {
            return Err(Error::Internal(format!(
                "a statement with RETURNING planned as {}",
                plan.display()
            )));
        };
        let (command, rows) = match dml.op {
            WriteOp::Insert(_) => ("INSERT 0", self.insert_keeping_rows(dml).await?),
            WriteOp::Update => ("UPDATE", self.change_in_place(dml, true).await?.1),
            WriteOp::Delete => ("DELETE", self.change_in_place(dml, true).await?.1),
            _ => {
                return Err(Error::FeatureNotSupported(format!(
                    "RETURNING is not supported in {}",
                    dml.op
                )));
            }
        };
        // The RETURNING list over the rows written, in place of the table's.
        let target = source_as_provider(&dml.target)?;
        let written = rows_source(&dml.table_name, target.schema(), &rows)?;
        let plan = reading(returned.plan.clone(), &target, &written)?;
        let mut outcome = self.query(plan, None, returned.names.clone()).await?;
        if let Outcome::Rows { command: tag, .. } = &mut outcome {
            *tag = command;
        }
        Ok(outcome)
    }

    /// `items`, the `RETURNING` list of `statement` (an `INSERT`, `UPDATE`
    /// or `DELETE`, without it), as the select list of a query of its table.
    pub(crate) async fn plan_returning(
        &self,
        statement: &Statement,
        items: &[SelectItem],
    ) -> Result<Returned> {
        let (table, alias) = target(statement).ok_or_else(|| {
            Error::FeatureNotSupported(format!("RETURNING is not supported in {statement}"))
        })?;
        let items: Vec<String> = items.iter().map(ToString::to_string).collect();
        let alias = alias.map(|a| format!(" AS {a}")).unwrap_or_default();
        let sql = format!("SELECT {} FROM {table}{alias}", items.join(", "));
        let query = Parser::parse_sql(&PostgreSqlDialect {}, &sql)
            .ok()
            .and_then(|mut parsed| parsed.pop())
            .ok_or_else(|| Error::Internal(format!("RETURNING as {sql}")))?;
        let query = DfStatement::Statement(Box::new(query));
        let names = crate::names::statement_names(&query);
        let plan = self.plan(query).await?;
        self.check_privileges(&plan)?;
        Ok(Returned { plan, names })
    }

    /// Runs an `INSERT` whose rows are computed once and kept.
    async fn insert_keeping_rows(
        &self,
        dml: &DmlStatement,
    ) -> Result<Vec<datafusion::arrow::array::RecordBatch>> {
        let table = self.target(&dml.table_name)?;
        self.keeping_keys(&table, async {
            let rows = self.collect(dml.input.as_ref().clone()).await?;
            let target = source_as_provider(&dml.target)?;
            let input = rows_of(&dml.table_name, target.schema(), &rows)?;
            let target = self.relations.staged_target(&table, target)?;
            let insert = LogicalPlan::Dml(DmlStatement::new(
                dml.table_name.clone(),
                provider_as_source(target.clone()),
                dml.op.clone(),
                Arc::new(input),
            ));
            self.run_counting(insert).await?;
            self.catalog.written(target.as_ref());
            Ok(rows)
        })
        .await
    }
}
