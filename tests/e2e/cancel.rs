//! CancelRequest (psql's Ctrl-C, a driver's `cancel()`): a running statement
//! stops within a second — streaming rows, stuck in a Wasm call on the
//! frontend, or running as a Ballista job with a Wasm call that never
//! returns — and the session stays usable.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{QuiverServer, one};

const HOSTILE: &str = "quiver_example_hostile.wasm";

/// Runs `sql` on `client`, cancels it from a second connection after
/// `delay`, and returns the error and how long the statement took to stop
/// after the cancel was sent.
async fn cancel_after(
    client: &tokio_postgres::Client,
    sql: &str,
    delay: Duration,
) -> (tokio_postgres::Error, Duration) {
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let sent = Instant::now();
        token
            .cancel_query(tokio_postgres::NoTls)
            .await
            .expect("the cancel request is delivered");
        sent
    });
    let error = client
        .simple_query(sql)
        .await
        .expect_err("the statement is cancelled");
    let stopped = Instant::now();
    let sent = canceller.await.expect("canceller");
    (error, stopped.saturating_duration_since(sent))
}

fn assert_cancelled(sql: &str, error: &tokio_postgres::Error, took: Duration) {
    let db = error
        .as_db_error()
        .unwrap_or_else(|| panic!("{sql}: not a server error: {error}"));
    assert_eq!(db.code().code(), "57014", "{sql}: {}", db.message());
    assert!(
        db.message()
            .contains("canceling statement due to user request"),
        "{sql}: {}",
        db.message()
    );
    assert!(
        took < Duration::from_secs(1),
        "{sql}: stopped {took:?} after the cancel"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_streaming_stuck_and_distributed_statements() {
    // One task slot: a task left running would hold up the next query;
    // statements over tables run as Ballista jobs, however small.
    let data = tempfile::tempdir().expect("tempdir");
    let server = QuiverServer::start_with(
        data.path(),
        &["--executor-slots", "1", "--local-read-limit-kb", "0"],
    );
    let client = server.connect().await;
    client
        .batch_execute(&format!(
            "CREATE FUNCTION forever() RETURNS TABLE (n bigint) LANGUAGE wasm AS '{HOSTILE}', 'forever';
             CREATE FUNCTION stuck() RETURNS TABLE (n bigint) LANGUAGE wasm AS '{HOSTILE}', 'stuck';
             CREATE FUNCTION spin(bigint) RETURNS bigint LANGUAGE wasm AS '{HOSTILE}', 'spin';
             CREATE TABLE t (id BIGINT);
             INSERT INTO t VALUES (1), (2), (3);"
        ))
        .await
        .expect("setup");

    let cases = [
        // Rows streaming to the client without end.
        "SELECT n FROM forever()",
        // A query computing without end over a Wasm table function.
        "SELECT count(*) FROM forever()",
        // A Wasm call that never returns, on the frontend (the time limit
        // is the default 10 s: only the cancel can stop it this soon).
        "SELECT * FROM stuck()",
        // A Ballista job whose Wasm call never returns, on the executor.
        "SELECT spin(id) FROM t",
    ];
    for sql in cases {
        let (error, took) = cancel_after(&client, sql, Duration::from_millis(700)).await;
        assert_cancelled(sql, &error, took);
        // The session carries on, and the next statement is not cancelled;
        // on the executor, nothing of the cancelled job still runs (the next
        // job needs its one slot well before a 10 s time limit would free it).
        let next = Instant::now();
        assert_eq!(
            one(&client, "SELECT count(*) FROM t").await.as_deref(),
            Some("3"),
            "after cancelling {sql}"
        );
        assert!(
            next.elapsed() < Duration::from_secs(5),
            "the next query after cancelling {sql} took {:?}",
            next.elapsed()
        );
    }

    // A cancelled CREATE TABLE AS leaves no table, as any failed one.
    let sql = "CREATE TABLE spun AS SELECT spin(id) AS s FROM t";
    let (error, took) = cancel_after(&client, sql, Duration::from_millis(700)).await;
    assert_cancelled(sql, &error, took);
    let error = client
        .simple_query("SELECT * FROM spun")
        .await
        .expect_err("no table");
    assert_eq!(error.code().map(|c| c.code()), Some("42P01"), "{error}");

    // A cancel with no statement running does nothing.
    client
        .cancel_token()
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("delivered");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(one(&client, "SELECT 41 + 1").await.as_deref(), Some("42"));

    // Cancelling one session leaves another's statement alone.
    let other = server.connect().await;
    let long = tokio::spawn(async move {
        other
            .simple_query("SELECT count(*) FROM (SELECT n FROM forever() LIMIT 3000000) v")
            .await
            .map(|_| ())
    });
    let (error, took) =
        cancel_after(&client, "SELECT * FROM stuck()", Duration::from_millis(300)).await;
    assert_cancelled("stuck() beside another session", &error, took);
    long.await
        .expect("task")
        .expect("the other session's statement completes");
}

#[test]
fn psql_ctrl_c_cancels_the_running_query() {
    let (_data, server) = QuiverServer::start_fresh();
    let port = server.port().to_string();
    let psql = |sql: &str| {
        let mut command = Command::new("psql");
        command
            .args(["-X", "-h", server.host(), "-p", &port, "-U", "quiver"])
            .args(["-d", "quiver", "-c", sql])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    let setup = psql(&format!(
        "CREATE FUNCTION forever() RETURNS TABLE (n bigint) LANGUAGE wasm AS '{HOSTILE}', 'forever'"
    ))
    .output()
    .expect("psql runs");
    assert!(setup.status.success(), "{setup:?}");

    let child = psql("SELECT count(*) FROM forever()")
        .spawn()
        .expect("psql runs");
    std::thread::sleep(Duration::from_millis(1000));
    // What Ctrl-C does in a terminal: SIGINT to psql, which sends a CancelRequest.
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = child.wait_with_output().expect("psql exits");
    let took = sent.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("canceling statement due to user request"),
        "psql said: {stderr}"
    );
    assert!(
        took < Duration::from_secs(2),
        "psql ended {took:?} after Ctrl-C"
    );
}
