//! What the scheduler knows about its executors, read over its REST API
//! (`GET /api/executors`, served on the scheduler's gRPC port).

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::{Error, Result};

/// One executor registered with the scheduler.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorStatus {
    pub id: String,
    pub host: String,
    /// Arrow Flight port.
    pub port: u16,
    /// Task slots.
    pub slots: u32,
    /// Last heartbeat, milliseconds since the Unix epoch.
    pub last_seen_ms: Option<u64>,
}

/// The executors registered with the scheduler at `scheduler` (`HOST:PORT`).
pub async fn executors(scheduler: &str) -> Result<Vec<ExecutorStatus>> {
    let body = tokio::time::timeout(Duration::from_secs(5), get(scheduler, "/api/executors"))
        .await
        .map_err(|_| {
            Error::Status(format!(
                "the scheduler at {scheduler} did not answer within 5 s"
            ))
        })??;
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        Error::Status(format!(
            "the scheduler sent unreadable executor status: {e}"
        ))
    })?;
    let list = value
        .as_array()
        .ok_or_else(|| Error::Status("the scheduler's executor status is not a list".into()))?;
    Ok(list
        .iter()
        .map(|e| ExecutorStatus {
            id: e["id"].as_str().unwrap_or_default().to_string(),
            host: e["host"].as_str().unwrap_or_default().to_string(),
            port: e["port"].as_u64().unwrap_or_default() as u16,
            slots: e["specification"]["vcores"].as_u64().unwrap_or_default() as u32,
            last_seen_ms: e["last_seen"].as_u64(),
        })
        .collect())
}

async fn get(scheduler: &str, path: &str) -> Result<Bytes> {
    let failed = |e: &dyn std::fmt::Display| {
        Error::Status(format!(
            "cannot read {path} from the scheduler at {scheduler}: {e}"
        ))
    };
    let stream = tokio::net::TcpStream::connect(scheduler)
        .await
        .map_err(|e| failed(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, scheduler)
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed(&e))?;
    let response = sender.send_request(request).await.map_err(|e| failed(&e))?;
    if !response.status().is_success() {
        return Err(failed(&response.status()));
    }
    Ok(response
        .into_body()
        .collect()
        .await
        .map_err(|e| failed(&e))?
        .to_bytes())
}

/// Asks the scheduler at `scheduler` (`HOST:PORT`) to cancel job `job_id`:
/// it stops scheduling the job's tasks and tells executors to abort theirs.
pub async fn cancel_job(scheduler: &str, job_id: &str) -> Result<()> {
    use ballista_core::serde::protobuf::CancelJobParams;
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    let failed =
        |e: &dyn std::fmt::Display| Error::Status(format!("cannot cancel job {job_id}: {e}"));
    let request = async {
        let mut client = SchedulerGrpcClient::connect(format!("http://{scheduler}"))
            .await
            .map_err(|e| failed(&e))?;
        client
            .cancel_job(CancelJobParams {
                job_id: job_id.to_string(),
            })
            .await
            .map_err(|e| failed(&e))?;
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .map_err(|_| failed(&"the scheduler did not answer within 5 s"))?
}
