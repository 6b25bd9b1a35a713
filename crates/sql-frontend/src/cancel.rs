//! Cancelling a running statement: PostgreSQL's CancelRequest, which psql
//! sends on Ctrl-C and drivers send from `cancel()`.
//!
//! A CancelRequest arrives on a new connection carrying the process id and
//! secret key the server gave the session at startup. [`Cancels`] finds the
//! session's [`Canceller`] by them and fires the token of the statement it is
//! running. That ends the statement however far it got:
//! - every plan a statement runs — rows streaming to the client, a write, a
//!   `CREATE TABLE AS` — reads its rows through a [`CancellableStream`],
//!   which ends with `57014`; the statement fails as it would on any error
//!   (a `CREATE TABLE AS` leaves no table, a transaction block is aborted),
//! - a Ballista job still running is cancelled at the scheduler, which tells
//!   executors to abort its tasks,
//! - a Wasm call in progress in this process (the frontend's or the embedded
//!   executor's) is interrupted at its next epoch tick
//!   ([`quiver_udf_registry::interrupt`]).
//!
//! The same stream bounds how long a Ballista job waits for executors: the
//! scheduler keeps a job queued until one registers, however long that
//! takes, so a job the scheduler has had no executor for during the grace
//! period is cancelled and fails with `57P03`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ballista_core::execution_plans::DistributedQueryExec;
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::protobuf::LogicalPlanNode;
use futures::{FutureExt, Stream};
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use quiver_udf_registry::interrupt;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::Error;

/// Every connection that can be cancelled, by process id and secret key.
#[derive(Default)]
pub(crate) struct Cancels {
    connections: Mutex<HashMap<(i32, Bytes), Weak<Canceller>>>,
}

impl Cancels {
    fn connections(&self) -> std::sync::MutexGuard<'_, HashMap<(i32, Bytes), Weak<Canceller>>> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `canceller` reachable with the keys its client was given.
    pub(crate) fn register(&self, pid: i32, secret: &SecretKey, canceller: &Arc<Canceller>) {
        let mut connections = self.connections();
        // Forget connections that ended.
        connections.retain(|_, c| c.strong_count() > 0);
        connections.insert((pid, secret.to_bytes()), Arc::downgrade(canceller));
    }
}

#[async_trait]
impl CancelHandler for Cancels {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes());
        let canceller = self.connections().get(&key).and_then(Weak::upgrade);
        match canceller {
            Some(canceller) => {
                tracing::debug!(pid = request.pid, "cancel request");
                canceller.cancel();
            }
            // As PostgreSQL does, say nothing to a request that names no session.
            None => tracing::debug!(pid = request.pid, "cancel request for no session"),
        }
    }
}

/// The Ballista scheduler sessions send jobs to.
#[derive(Debug, Clone)]
pub(crate) struct JobScheduler {
    /// `HOST:PORT`.
    pub(crate) addr: String,
    /// How long a job waits while the scheduler has no executor.
    pub(crate) no_executors_grace: Duration,
}

/// One connection's cancel switch.
pub(crate) struct Canceller {
    session_id: Arc<str>,
    scheduler: JobScheduler,
    token: Mutex<CancellationToken>,
}

impl Canceller {
    pub(crate) fn new(session_id: &str, scheduler: JobScheduler) -> Self {
        Self {
            session_id: Arc::from(session_id),
            scheduler,
            token: Mutex::new(CancellationToken::new()),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, CancellationToken> {
        self.token.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A statement (a simple query string, or an Execute) begins: a cancel
    /// from now on stops it, and only it.
    pub(crate) fn begin(&self) {
        *self.slot() = CancellationToken::new();
    }

    fn cancel(&self) {
        self.slot().cancel();
        interrupt::cancel_session(&self.session_id);
    }

    /// `stream`, produced by `plan`, ending with `57014` once the statement
    /// is cancelled; dropping it early cancels the Ballista job behind it.
    pub(crate) fn stream(
        &self,
        stream: SendableRecordBatchStream,
        plan: &Arc<dyn ExecutionPlan>,
    ) -> SendableRecordBatchStream {
        let token = self.slot().clone();
        let job = distributed_job(plan).map(|plan| Job {
            plan,
            scheduler: self.scheduler.addr.clone(),
        });
        let stranded = job.as_ref().map(|_| {
            Box::pin(stranded(self.scheduler.clone()))
                as Pin<Box<dyn Future<Output = Error> + Send>>
        });
        Box::pin(CancellableStream {
            input: stream,
            cancelled: Box::pin(token.cancelled_owned()),
            stranded,
            session: self.session_id.clone(),
            job,
            done: false,
        })
    }
}

impl Drop for Canceller {
    fn drop(&mut self) {
        interrupt::end_session(&self.session_id);
    }
}

/// The Ballista job node of a physical plan, if it runs as one.
fn distributed_job(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let mut found = None;
    let _ = plan.apply(|node| {
        if node.is::<DistributedQueryExec<LogicalPlanNode>>() {
            found = Some(node.clone());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// How often a running job checks that the scheduler has an executor.
const EXECUTOR_CHECK: Duration = Duration::from_secs(1);

/// Resolves, with the error to fail with, once `scheduler` has had no
/// executor registered for its grace period; never while it has one (or
/// cannot be asked: the job's own stream reports that).
async fn stranded(scheduler: JobScheduler) -> Error {
    let grace = scheduler.no_executors_grace;
    let mut empty_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(EXECUTOR_CHECK).await;
        match quiver_scheduler::executors(&scheduler.addr).await {
            Ok(executors) if executors.is_empty() => {
                let since = *empty_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= grace {
                    return Error::NoExecutors(format!(
                        "no executors remain to run the query: the scheduler has had none for {} s",
                        grace.as_secs()
                    ));
                }
            }
            Ok(_) => empty_since = None,
            Err(e) => tracing::debug!(error = %e, "cannot read the scheduler's executors"),
        }
    }
}

/// A Ballista job whose results a stream reads.
struct Job {
    plan: Arc<dyn ExecutionPlan>,
    scheduler: String,
}

impl Job {
    /// Cancels the job at the scheduler (in the background), if it started.
    fn cancel(&self) {
        let Some(job_id) = self
            .plan
            .downcast_ref::<DistributedQueryExec<LogicalPlanNode>>()
            .and_then(|exec| exec.job_id())
        else {
            return;
        };
        let job_id = job_id.to_string();
        let scheduler = self.scheduler.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            match quiver_scheduler::cancel_job(&scheduler, &job_id).await {
                Ok(()) => tracing::debug!(job = %job_id, "cancelled an abandoned job"),
                Err(e) => {
                    tracing::warn!(job = %job_id, error = %e, "could not cancel an abandoned job")
                }
            }
        });
    }
}

struct CancellableStream {
    input: SendableRecordBatchStream,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    /// For a Ballista job: resolves when no executor is left to run it.
    stranded: Option<Pin<Box<dyn Future<Output = Error> + Send>>>,
    session: Arc<str>,
    job: Option<Job>,
    /// The input ended (or the stream ended it): nothing is left to cancel.
    done: bool,
}

impl Stream for CancellableStream {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.cancelled.poll_unpin(cx).is_ready() {
            self.done = true;
            if let Some(job) = &self.job {
                job.cancel();
            }
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(
                Error::QueryCanceled,
            )))));
        }
        if let Some(stranded) = self.stranded.as_mut()
            && let Poll::Ready(error) = stranded.poll_unpin(cx)
        {
            self.done = true;
            if let Some(job) = &self.job {
                job.cancel();
            }
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(error)))));
        }
        let session = self.session.clone();
        let polled = interrupt::in_session(&session, || self.input.as_mut().poll_next(cx));
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.done = true;
        }
        polled
    }
}

impl RecordBatchStream for CancellableStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}

impl Drop for CancellableStream {
    fn drop(&mut self) {
        // A client that stops reading (an error, a closed portal, a dropped
        // connection) leaves the job running otherwise.
        if !self.done
            && let Some(job) = &self.job
        {
            job.cancel();
        }
    }
}
