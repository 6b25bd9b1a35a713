//! Where a query runs: on the frontend, or as a Ballista job.
//!
//! Plans that read or write user tables (Parquet/CSV listing tables, which every
//! executor can resolve) run through Ballista. Everything else — constant
//! expressions, `pg_catalog` and `information_schema`, table functions — runs
//! right here: those tables describe this frontend's catalog and cannot be
//! serialized, and a round trip through the scheduler would only add latency.
//! A plan that combines both (`INSERT INTO t SELECT * FROM generate_series(..)`,
//! a user table joined with `pg_catalog`) cannot be shipped to executors, so it
//! runs on the frontend, which reads the same table files.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::{LogicalPlan, TableSource};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};

/// Where a plan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// On the frontend, in this process.
    Local,
    /// As a Ballista job.
    Distributed,
}

/// The plan reads or writes tables every executor can reach.
fn is_user_table(source: &Arc<dyn TableSource>) -> bool {
    source_as_provider(source)
        .map(|provider| provider.is::<ListingTable>())
        .unwrap_or(false)
}

/// Decides where `plan` runs: distributed when it touches user tables and
/// nothing that only exists on the frontend.
pub fn route(plan: &LogicalPlan) -> Result<Route> {
    let (mut user, mut local) = (false, false);
    plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                if is_user_table(&scan.source) {
                    user = true
                } else {
                    local = true
                }
            }
            LogicalPlan::Dml(dml) => {
                if is_user_table(&dml.target) {
                    user = true
                } else {
                    local = true
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(if user && !local {
        Route::Distributed
    } else {
        Route::Local
    })
}

/// Quiver's query planner: routes each plan with [`route`] to DataFusion's
/// local planner or to Ballista's distributed one.
pub struct QuiverQueryPlanner {
    distributed: Arc<dyn QueryPlanner + Send + Sync>,
    local: DefaultPhysicalPlanner,
}

impl std::fmt::Debug for QuiverQueryPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuiverQueryPlanner")
            .field("distributed", &self.distributed)
            .finish_non_exhaustive()
    }
}

impl QuiverQueryPlanner {
    /// Wraps Ballista's planner (`distributed`).
    pub fn new(distributed: Arc<dyn QueryPlanner + Send + Sync>) -> Self {
        Self {
            distributed,
            local: DefaultPhysicalPlanner::default(),
        }
    }
}

#[async_trait]
impl QueryPlanner for QuiverQueryPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match route(plan)? {
            Route::Local => self.local.create_physical_plan(plan, session_state).await,
            Route::Distributed => {
                tracing::debug!(
                    session = session_state.session_id(),
                    "planning a Ballista job"
                );
                self.distributed
                    .create_physical_plan(plan, session_state)
                    .await
            }
        }
    }
}
