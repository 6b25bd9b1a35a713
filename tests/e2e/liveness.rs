//! No query waits without bound: a paused server or executor comes back by
//! itself, and a query with no executor to run it fails with 57P03.

use std::time::{Duration, Instant};

use crate::support::{Cluster, Loss, QuiverServer, pause, rows};

/// Longer than the scheduler's executor timeout (10 s in these tests and by
/// default).
const PAUSE: Duration = Duration::from_secs(14);

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_embedded_server_answers_table_queries_after() {
    let (_data, server) = QuiverServer::start_fresh();
    let client = server.connect().await;
    // Through the embedded executor, however small the table.
    client
        .batch_execute("SET quiver.local_read_limit = 0; CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2)")
        .await
        .expect("table");
    let pid = server.pid();
    tokio::task::spawn_blocking(move || pause(pid, PAUSE))
        .await
        .expect("paused");
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        rows(&client, "SELECT sum(a) FROM t"),
    )
    .await
    .expect("a table query answers after the pause");
    assert_eq!(answer, vec![vec![Some("3".to_string())]]);
    drop(client);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_cluster_executor_rejoins() {
    let (_data, cluster) = Cluster::start_fresh(1, Loss::Quick);
    let client = cluster.frontend.connect().await;
    client
        .batch_execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2)")
        .await
        .expect("table");
    let pid = cluster.executor_pid(0);
    tokio::task::spawn_blocking(move || pause(pid, PAUSE))
        .await
        .expect("paused");
    // The scheduler expired the executor while it was stopped; it joins
    // again by itself, and queries wait for it (within the grace period).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.simple_query("SELECT sum(a) FROM t").await {
            Ok(_) => break,
            Err(e) => {
                let code = e.code().map(|c| c.code().to_string());
                assert_eq!(
                    code.as_deref(),
                    Some("57P03"),
                    "only 57P03 while it rejoins: {e}"
                );
                assert!(
                    Instant::now() < deadline,
                    "the executor never rejoined: {e}"
                );
            }
        }
    }
    assert_eq!(
        rows(&client, "SELECT sum(a) FROM t").await,
        vec![vec![Some("3".to_string())]]
    );
    assert_eq!(
        rows(&client, "SELECT count(*) FROM quiver.executors").await,
        vec![vec![Some("1".to_string())]],
        "one executor: the one that rejoined"
    );
    drop(client);
    cluster.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_with_no_executor_fails_with_57p03() {
    let (_data, mut cluster) = Cluster::start_fresh(1, Loss::Quick);
    let client = cluster.frontend.connect().await;
    client
        .batch_execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2)")
        .await
        .expect("table");
    cluster.kill_executor(0);
    // Once the scheduler has noticed the loss, it queues new jobs until an
    // executor registers, however long that takes; the frontend gives up
    // after the grace period.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rows(&client, "SELECT count(*) FROM quiver.executors").await != [[Some("0".to_string())]]
    {
        assert!(
            Instant::now() < deadline,
            "the scheduler never noticed the loss"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let error = tokio::time::timeout(
        Duration::from_secs(90),
        client.simple_query("SELECT sum(a) FROM t"),
    )
    .await
    .expect("the query does not wait without bound")
    .expect_err("no executor can run it");
    assert_eq!(error.code().map(|c| c.code()), Some("57P03"), "{error}");
    // The session goes on: catalog queries run on the frontend.
    assert_eq!(
        rows(&client, "SELECT 1").await,
        vec![vec![Some("1".to_string())]]
    );
    // An executor that joins later runs queries again.
    cluster.add_executor();
    assert_eq!(
        rows(&client, "SELECT sum(a) FROM t").await,
        vec![vec![Some("3".to_string())]]
    );
    drop(client);
    cluster.stop();
}
