#![doc = include_str!("../README.md")]

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::serde::BallistaCodec;
use ballista_core::utils::default_session_builder;
use ballista_scheduler::standalone::new_standalone_scheduler_with_builder;
use datafusion::prelude::SessionConfig;

/// Errors of the scheduler crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Ballista could not start the scheduler.
    #[error("could not start the Ballista scheduler: {0}")]
    Start(#[from] ballista_core::error::BallistaError),
}

/// Result of scheduler operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Starts a Ballista scheduler on a free loopback port inside this process and
/// returns its address. Every job it plans gets a fresh session built from
/// `config` (plus the settings the client sends with the job); plans are
/// decoded and encoded with `codec` (Quiver's, wrapping Ballista's).
pub async fn start_embedded(config: SessionConfig, codec: BallistaCodec) -> Result<SocketAddr> {
    let addr = new_standalone_scheduler_with_builder(
        Arc::new(default_session_builder),
        Arc::new(move || config.clone()),
        codec,
    )
    .await?;
    tracing::info!(%addr, "embedded Ballista scheduler listening");
    Ok(addr)
}
