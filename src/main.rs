//! `quiver`: the command-line entry point. Parses flags and hands over to the
//! library crates.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use quiver_sql_frontend::{Server, ServerConfig};
use tracing_subscriber::EnvFilter;

/// Quiver: distributed SQL with WebAssembly functions, over the PostgreSQL protocol.
#[derive(Debug, Parser)]
#[command(name = "quiver", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the embedded server: PostgreSQL frontend, catalog, and an in-process
    /// Ballista scheduler and executor. Connect with `psql -h 127.0.0.1 -p 5433`.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to accept PostgreSQL connections on.
    #[arg(long, env = "QUIVER_LISTEN", default_value = "127.0.0.1:5433")]
    listen: SocketAddr,
    /// Directory holding tables (Parquet) and the catalog (RocksDB); created if missing.
    #[arg(long, env = "QUIVER_DATA_DIR", default_value = "./quiver-data")]
    data_dir: PathBuf,
    /// Task slots of the embedded executor (default: the number of CPUs).
    #[arg(long, env = "QUIVER_EXECUTOR_SLOTS")]
    executor_slots: Option<usize>,
    /// Directory `CREATE FUNCTION ... AS 'file.wasm', 'name'` reads Wasm modules
    /// from (never outside it). Without it, modules can only be given inline.
    #[arg(long, env = "QUIVER_FUNCTION_DIR")]
    function_dir: Option<PathBuf>,
    /// Default memory limit of one Wasm function instance, in MiB
    /// (per function: `SET quiver.wasm.max_memory = '64MB'`).
    #[arg(long, env = "QUIVER_WASM_MAX_MEMORY_MB", default_value_t = 128)]
    wasm_max_memory_mb: u64,
    /// Default time limit of one Wasm function call (one batch of rows), in
    /// milliseconds (per function: `SET quiver.wasm.time_limit = '2s'`).
    #[arg(long, env = "QUIVER_WASM_TIME_LIMIT_MS", default_value_t = 10_000)]
    wasm_time_limit_ms: u64,
}

impl From<ServeArgs> for ServerConfig {
    fn from(args: ServeArgs) -> Self {
        ServerConfig {
            listen: args.listen,
            data_dir: args.data_dir,
            executor_slots: args.executor_slots.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            }),
            function_dir: args.function_dir,
            wasm_max_memory: args.wasm_max_memory_mb.saturating_mul(1 << 20),
            wasm_time_limit: std::time::Duration::from_millis(args.wasm_time_limit_ms.max(1)),
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("QUIVER_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,ballista=warn,datafusion=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("quiver: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => {
                let server = Server::start(args.into()).await?;
                if let Ok(addr) = server.local_addr() {
                    // Scripts and tests wait for this line.
                    println!("quiver: listening on {addr}");
                }
                server.run(shutdown_signal()).await
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("quiver: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
