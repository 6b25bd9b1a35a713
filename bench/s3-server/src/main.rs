//! An S3 server over a directory for `bench/object_store.py`: s3s-fs's
//! storage behind a listener that sets `TCP_NODELAY`.
//!
//! The `s3s-fs` binary does not set it, so the last small segment of every
//! response waits for the client's delayed ACK: about 40 ms per request on
//! loopback, which made ranged Parquet reads 8.9x slower than local files
//! (geomean of TPC-H SF1) for a reason no real S3 endpoint has.
//!
//! Usage: s3-server ADDRESS ROOT ACCESS_KEY SECRET_KEY

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, root, access_key, secret_key] = args.as_slice() else {
        eprintln!("usage: s3-server ADDRESS ROOT ACCESS_KEY SECRET_KEY");
        std::process::exit(2);
    };
    let mut service =
        S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).map_err(|e| format!("{root}: {e:?}"))?);
    service.set_auth(SimpleAuth::from_single(
        access_key.as_str(),
        secret_key.as_str(),
    ));
    let service = service.build();
    let listener = TcpListener::bind(address.as_str()).await?;
    loop {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let connection = Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}
