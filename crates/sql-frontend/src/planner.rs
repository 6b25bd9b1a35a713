//! Where a query runs: on the frontend, or as a Ballista job.
//!
//! Plans that read or write stored tables (Parquet/CSV listing tables, which
//! every executor can resolve) run through Ballista, unless the files they
//! read are small: a Ballista job costs tens of milliseconds however little
//! it reads (submission, two rounds of gRPC per stage, the result fetched
//! over Flight), and it waits for a free task slot behind other sessions'
//! jobs. A statement that reads at most `quiver.local_read_limit` bytes of
//! stored files (8 MiB unless set; a point lookup, a few-MB table, an
//! `INSERT ... VALUES`) runs on the frontend, which reads the same files.
//! `EXPLAIN` shows the choice (`route`, or Ballista's `distributed_plan`).
//!
//! Everything else — constant expressions, `pg_catalog` and
//! `information_schema`, table functions, `nextval` — runs right here:
//! those tables describe this frontend's catalog and cannot be
//! serialized, and the sequence functions count in this process. A plan that
//! combines both (`INSERT INTO t SELECT * FROM generate_series(..)`, a
//! stored table joined with `pg_catalog`) cannot be shipped to executors,
//! so it runs on the frontend too. So does a statement calling a Wasm
//! function whose definition may write to a bucket: its writes are made
//! where the catalog is, once (a Ballista task may run again).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::{Expr, LogicalPlan, TableSource};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::explain::ExplainExec;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use futures::TryStreamExt;
use quiver_scheduler::QuiverOptions;
use quiver_udf_registry::{
    FoldedAggregateUdf, WasmAggregateUdf, WasmApplyNode, WasmFunction, WasmScalarUdf,
    WasmTransformNode, transform_physical_planner,
};

use crate::session::SequenceFunction;

/// Where a plan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// On the frontend, in this process.
    Local,
    /// As a Ballista job.
    Distributed,
}

/// Where a plan runs, and why (the `route` row of `EXPLAIN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub route: Route,
    pub reason: String,
}

/// A stored table: one every executor can reach.
fn stored_table(source: &Arc<dyn TableSource>) -> Option<Arc<dyn TableProvider>> {
    source_as_provider(source)
        .ok()
        .filter(|provider| provider.is::<ListingTable>())
}

/// Whether one of `functions` may write to a bucket.
fn any_writes<'a>(functions: impl IntoIterator<Item = &'a Arc<WasmFunction>>) -> bool {
    functions.into_iter().any(|f| f.def().grants.writes())
}

/// Whether `node` calls a function only the frontend can run: one only
/// its session can (`nextval`: see `crate::session::sequences`), or a Wasm
/// function that may write to a bucket.
fn calls_frontend_function(node: &LogicalPlan) -> Result<bool> {
    if let LogicalPlan::Extension(extension) = node {
        let node = extension.node.as_any();
        if let Some(transform) = node.downcast_ref::<WasmTransformNode>() {
            return Ok(any_writes([&transform.call.function]));
        }
        if let Some(apply) = node.downcast_ref::<WasmApplyNode>() {
            return Ok(any_writes([&apply.apply.function]));
        }
    }
    let mut found = false;
    node.apply_expressions(|expr| {
        expr.apply(|expr| {
            found = match expr {
                Expr::ScalarFunction(call) => {
                    let inner = call.func.inner();
                    inner.is::<SequenceFunction>()
                        || inner
                            .downcast_ref::<WasmScalarUdf>()
                            .is_some_and(|f| any_writes(f.overloads()))
                }
                Expr::AggregateFunction(call) => {
                    let inner = call.func.inner();
                    inner
                        .downcast_ref::<WasmAggregateUdf>()
                        .is_some_and(|f| any_writes(f.overloads()))
                        || inner.downcast_ref::<FoldedAggregateUdf>().is_some_and(|f| {
                            f.overloads().iter().any(|p| {
                                any_writes(
                                    [&p.sfunc, &p.combinefunc].into_iter().chain(&p.finalfunc),
                                )
                            })
                        })
                }
                _ => false,
            };
            Ok(match found {
                true => TreeNodeRecursion::Stop,
                false => TreeNodeRecursion::Continue,
            })
        })
    })?;
    Ok(found)
}

/// Decides where `plan` runs (see the module docs).
pub async fn route(plan: &LogicalPlan, session: &dyn Session) -> Result<Decision> {
    let (mut read, mut stored, mut local) = (Vec::new(), false, false);
    plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => match stored_table(&scan.source) {
                Some(table) => {
                    stored = true;
                    read.push(table);
                }
                None => local = true,
            },
            LogicalPlan::Dml(dml) => match stored_table(&dml.target) {
                Some(_) => stored = true,
                None => local = true,
            },
            _ => {}
        }
        if !local {
            local = calls_frontend_function(node)?;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let decision = |route, reason: String| Ok(Decision { route, reason });
    if !stored {
        return decision(Route::Local, "frontend: no stored table".into());
    }
    if local {
        return decision(
            Route::Local,
            "frontend: stored tables with tables or functions only the frontend has".into(),
        );
    }
    let limit = session
        .config_options()
        .extensions
        .get::<QuiverOptions>()
        .map_or(quiver_scheduler::DEFAULT_LOCAL_READ_LIMIT, |o| {
            o.local_read_limit
        });
    if limit == 0 {
        return decision(
            Route::Distributed,
            "Ballista: quiver.local_read_limit is 0".into(),
        );
    }
    match bytes_read(&read, session, limit).await? {
        Some(bytes) => decision(
            Route::Local,
            format!(
                "frontend: reads {bytes} bytes of stored tables, within quiver.local_read_limit ({limit})"
            ),
        ),
        None => decision(
            Route::Distributed,
            format!(
                "Ballista: reads more than quiver.local_read_limit ({limit} bytes) of stored tables"
            ),
        ),
    }
}

/// The bytes of the files of `tables`, or `None` once they pass `limit`.
async fn bytes_read(
    tables: &[Arc<dyn TableProvider>],
    session: &dyn Session,
    limit: u64,
) -> Result<Option<u64>> {
    let mut total = 0u64;
    for provider in tables {
        let Some(table) = provider.downcast_ref::<ListingTable>() else {
            continue;
        };
        let extension = &table.options().file_extension;
        for url in table.table_paths() {
            let store = session.runtime_env().object_store(url)?;
            let mut files = url
                .list_all_files(session, store.as_ref(), extension)
                .await?;
            while let Some(file) = files.try_next().await? {
                total = total.saturating_add(file.size);
                if total > limit {
                    return Ok(None);
                }
            }
        }
    }
    Ok(Some(total))
}

/// `explain`'s rows with a `route` row after them saying where the plan
/// runs.
fn with_route(explain: &ExplainExec, decision: &Decision) -> Result<Arc<dyn ExecutionPlan>> {
    let shown: Vec<_> = explain
        .stringified_plans()
        .iter()
        .filter(|plan| plan.should_display(explain.verbose()))
        .collect();
    let types = shown
        .iter()
        .map(|plan| plan.plan_type.to_string())
        .chain(["route".to_string()]);
    let plans = shown
        .iter()
        .map(|plan| plan.plan.as_str().to_string())
        .chain([decision.reason.clone()]);
    let schema = explain.schema();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(types.map(Some).collect::<StringArray>()),
            Arc::new(plans.map(Some).collect::<StringArray>()),
        ],
    )?;
    let source = MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None)?;
    Ok(source)
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
            local: transform_physical_planner(),
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
        let decision = route(plan, session_state).await?;
        match decision.route {
            Route::Local => {
                let physical = self.local.create_physical_plan(plan, session_state).await?;
                match physical.downcast_ref::<ExplainExec>() {
                    Some(explain) => with_route(explain, &decision),
                    None => Ok(physical),
                }
            }
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
