#![doc = include_str!("../README.md")]

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::serde::BallistaCodec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_executor::new_standalone_executor_from_builder;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionConfig;

/// Errors of the executor crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scheduler could not be reached.
    #[error("could not connect to the Ballista scheduler at {addr}: {message}")]
    Connect { addr: SocketAddr, message: String },
    /// Ballista could not start the executor.
    #[error("could not start the Ballista executor: {0}")]
    Start(#[from] ballista_core::error::BallistaError),
}

/// Result of executor operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Starts a Ballista executor inside this process, offering `vcores` task
/// slots to the scheduler at `scheduler`. Tasks run with sessions built from
/// `config` on the shared `runtime` (memory pool, disk manager, object stores);
/// task plans are decoded with `codec` (Quiver's, wrapping Ballista's).
pub async fn start_embedded(
    scheduler: SocketAddr,
    vcores: usize,
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
    codec: BallistaCodec,
) -> Result<()> {
    let url = format!("http://{scheduler}");
    let client = SchedulerGrpcClient::connect(url)
        .await
        .map_err(|e| Error::Connect {
            addr: scheduler,
            message: e.to_string(),
        })?;
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config.clone())
        .with_runtime_env(runtime.clone())
        .build();
    new_standalone_executor_from_builder(
        client,
        vcores,
        Arc::new(move || config.clone()),
        Arc::new(move |_| Ok(runtime.clone())),
        codec,
        (&state).into(),
    )
    .await?;
    tracing::info!(vcores, "embedded Ballista executor started");
    Ok(())
}
