//! A cluster spread over machines: the scheduler, two executors, the
//! frontend and an S3-compatible server (moto's) each in a network namespace
//! of its own, joined by veth links to one switch — every address is a
//! host's own, nothing listens on a shared loopback. The data directory is
//! in the bucket (`--data-dir s3://…`, the catalog in the frontend's
//! `--catalog-dir`): managed tables and Wasm modules reach the executors
//! only through it. One executor's cable is pulled while a query runs, and
//! the answer is still exact.
//!
//! Made and removed by the test itself (`ip netns`, which needs
//! CAP_NET_ADMIN); skipped, saying why, where the machine forbids it.

use std::time::{Duration, Instant};

use crate::cluster::{SLOW, numbers, still_running};
use crate::object_stores::{BUCKET, allowed, lake};
use crate::support::netns::{HostedCluster, Network};
use crate::support::rows;
use crate::support::s3::S3;

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_over_hosts_reads_s3_and_survives_a_cut_link() {
    let mut network = match Network::create() {
        Ok(network) => network,
        Err(why) => {
            eprintln!("SKIPPED: this machine allows no network namespaces ({why})");
            return;
        }
    };
    let s3_host = network.host("s3");
    let s3 = S3::start_on(Some(&s3_host));
    s3.create_bucket(BUCKET);
    let data = format!("s3://{BUCKET}/hosts-data");
    let mut cluster = HostedCluster::start(
        &mut network,
        2,
        10,
        &s3.environment(),
        &data,
        &[
            "--external-dir",
            &allowed("hosts"),
            "--wasm-time-limit-ms",
            "60000",
        ],
    );
    let client = cluster.frontend.connect().await;

    // External tables in the bucket, read and written by the executors.
    lake(&client, &s3, "hosts").await;

    // Wasm functions on the executors, one of which loses its link. A call
    // of `slow` (one batch, up to all 3,200 rows) takes about 2 s here
    // alone: a minute's limit keeps a busy machine from failing it.
    numbers(&client, 8, 400).await;
    client
        .batch_execute(&SLOW.replace("'10s'", "'60s'"))
        .await
        .expect("slow");
    let sql = "SELECT count(*), sum(slow(x)) FROM t";
    let n = 3200i64;
    let expected = vec![vec![
        Some(n.to_string()),
        Some((1..=n).map(|x| x + 1).sum::<i64>().to_string()),
    ]];
    assert_eq!(rows(&client, sql).await, expected);
    let keys = s3.keys(BUCKET, "hosts-data/");
    assert!(
        keys.iter()
            .any(|key| key.starts_with("hosts-data/modules/") && key.ends_with(".wasm")),
        "the module is in the bucket: {keys:?}"
    );
    assert!(
        keys.iter()
            .any(|key| key.starts_with("hosts-data/tables/") && key.ends_with(".parquet")),
        "the table's files are in the bucket: {keys:?}"
    );
    let started = Instant::now();
    assert_eq!(rows(&client, sql).await, expected);
    let undisturbed = started.elapsed();
    let running = still_running(&cluster.frontend, "", sql, &expected, undisturbed).await;
    network.cut(&cluster.executor_hosts[0]);
    let cut = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(180), running)
        .await
        .expect("the query finishes after an executor's link is cut")
        .expect("query task");
    assert_eq!(result, expected, "no row lost or counted twice");
    eprintln!(
        "undisturbed {undisturbed:?}; finished {:?} after the cut",
        cut.elapsed()
    );
    // The cluster keeps serving on the executor that is left.
    assert_eq!(rows(&client, sql).await, expected);
    drop(client);
    cluster.kill_executor(0);
    cluster.stop();
}
