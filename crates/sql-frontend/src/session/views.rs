//! Views: how a session plans the views its statements read, and
//! `CREATE VIEW`/`DROP VIEW`.
//!
//! A view is stored as its `CREATE VIEW` statement (see
//! [`quiver_catalog::TableKind::View`]). A statement that reads it plans
//! that statement's query again, in the reading session
//! ([`SessionRelations`]), and DataFusion's planner puts the view's plan in
//! place of the view where the statement names it; the rest of Quiver's
//! planning (see `Session::plan`) then treats it as part of the
//! statement. So a view reads the tables as they are when it is read, and
//! a plan with a view in it runs as any other: on the frontend or as a
//! Ballista job.
//!
//! Unlike PostgreSQL, which binds a view to the tables it read when it was
//! created, a view here names tables: dropping one of them is allowed (a
//! later read of the view fails with the missing table's error), and
//! recreating it brings the view back. Privileges are checked on the
//! tables the view reads, for the role reading it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::{DFSchema, exec_err, internal_err};
use datafusion::error::Result as DfResult;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{CreateView, DdlStatement, EmptyRelation, Expr, LogicalPlan};
use datafusion::prelude::SessionContext;
use quiver_catalog::RelationPlanner;

use super::{Completion, Outcome, Session, parse_one};
use crate::{Error, Result};

/// How deep views may read views: deeper means a view reads itself
/// (`CREATE OR REPLACE VIEW` can make it so).
const MAX_VIEW_DEPTH: usize = 32;

tokio::task_local! {
    /// While a statement is planned: how many views deep its planning is.
    static VIEW_DEPTH: usize;
}

/// Plans views and columns' defaults in one session.
pub(super) struct SessionRelations {
    /// The session's state as it is now; `None` once the session ended.
    /// (Not the context itself: its state holds the session's schema,
    /// which holds this.)
    state: Box<dyn Fn() -> Option<SessionState> + Send + Sync>,
}

impl SessionRelations {
    pub(super) fn new(ctx: &SessionContext) -> Self {
        let state = Arc::downgrade(&ctx.state_ref());
        Self {
            state: Box::new(move || state.upgrade().map(|state| state.read().clone())),
        }
    }
}

/// Runs `planning`, the planning of a statement: the views it reads must
/// plan (see [`SessionRelations::plan_view`]).
pub(super) async fn planning<F: Future>(planning: F) -> F::Output {
    VIEW_DEPTH.scope(0, planning).await
}

impl SessionRelations {
    /// The plan of the query of `definition`, read `depth` views deep.
    async fn plan(&self, definition: &str, depth: usize) -> DfResult<LogicalPlan> {
        if depth >= MAX_VIEW_DEPTH {
            return exec_err!(
                "views read views more than {MAX_VIEW_DEPTH} deep: does a view read itself?"
            );
        }
        let Some(state) = (self.state)() else {
            return exec_err!("the session reading the view has ended");
        };
        let statement = parse_one(definition)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let plan = VIEW_DEPTH
            .scope(depth + 1, state.statement_to_plan(statement))
            .await?;
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateView(view)) => Ok(view.input.as_ref().clone()),
            other => internal_err!(
                "a view's definition planned as {}, not CREATE VIEW",
                other.display()
            ),
        }
    }
}

#[async_trait]
impl RelationPlanner for SessionRelations {
    async fn plan_view(&self, definition: &str) -> DfResult<LogicalPlan> {
        match VIEW_DEPTH.try_with(|depth| *depth) {
            Ok(depth) => self.plan(definition, depth).await,
            // Read by a catalog listing (pg_class, information_schema) as
            // it runs: a view that does not plan (a table it reads was
            // dropped) is listed without columns rather than failing it.
            Err(_) => Ok(self.plan(definition, 0).await.unwrap_or_else(|_| {
                LogicalPlan::EmptyRelation(EmptyRelation {
                    produce_one_row: false,
                    schema: Arc::new(DFSchema::empty()),
                })
            })),
        }
    }

    fn plan_default(&self, sql: &str) -> DfResult<Expr> {
        let Some(state) = (self.state)() else {
            return exec_err!("the session writing the table has ended");
        };
        state.create_logical_expr(sql, &DFSchema::empty())
    }
}

impl Session {
    /// `CREATE [OR REPLACE] VIEW`, planned (its query checked) by
    /// DataFusion.
    pub(super) async fn create_view(&self, create: CreateView) -> Result<Outcome> {
        if create.temporary {
            return Err(Error::FeatureNotSupported(
                "temporary views are not supported yet".into(),
            ));
        }
        let name = self.creation_name(&create.name)?;
        let definition = create
            .definition
            .ok_or_else(|| Error::Internal("CREATE VIEW without its statement".into()))?;
        self.check_privileges(&create.input)?;
        if create.or_replace {
            self.check_owner(&name)?;
        }
        let schema = self.produced_schema(&create.input);
        self.relations
            .create_view(
                &name,
                definition,
                &schema,
                create.or_replace,
                &self.user().unwrap_or_default(),
            )
            .await?;
        Ok(Completion::tag("CREATE VIEW").into())
    }

    /// `DROP VIEW [IF EXISTS] name`, by its owner.
    pub(super) async fn drop_view(
        &self,
        name: &datafusion::common::TableReference,
        if_exists: bool,
    ) -> Result<Outcome> {
        let reference = name;
        let name = self.stored_name(reference)?;
        self.check_owner(&name)?;
        let dropped = self.relations.drop_view(&name, if_exists).await?;
        Ok(Completion::tag("DROP VIEW")
            .with_notice(
                (!dropped).then(|| format!("view \"{reference}\" does not exist, skipping")),
            )
            .into())
    }
}
