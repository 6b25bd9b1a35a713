//! A real cluster — `quiver scheduler`, `quiver executor`s and `quiver serve
//! --scheduler`, separate processes on loopback — running Wasm functions,
//! losing executors and gaining new ones.

use std::time::{Duration, Instant};

use crate::support::{self, Cluster, Loss, QuiverServer, one, rows};

/// `slow(x)` = x + 1 after a busy loop of a few milliseconds (a core module).
pub(crate) const SLOW: &str = "CREATE FUNCTION slow(bigint) RETURNS bigint LANGUAGE wasm IMMUTABLE SET quiver.wasm.time_limit = '10s' AS '(module (func (export \"slow\") (param i64) (result i64) (local i32) (local.set 1 (i32.const 1500000)) (block (loop (local.set 1 (i32.sub (local.get 1) (i32.const 1))) (br_if 1 (i32.eqz (local.get 1))) (br 0))) (i64.add (local.get 0) (i64.const 1))))'";

/// `wgcd(a, b)`: a component from the example guests, fetched by executors
/// from the module directory.
const WGCD: &str = "CREATE FUNCTION wgcd(bigint, bigint) RETURNS bigint LANGUAGE wasm IMMUTABLE AS 'quiver_example_functions.wasm', 'gcd'";

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs()
}

/// A table of `files` Parquet files of `per_file` rows each: x = 1..=n.
pub(crate) async fn numbers(client: &tokio_postgres::Client, files: i64, per_file: i64) {
    client
        .batch_execute("CREATE TABLE t (x BIGINT)")
        .await
        .expect("create");
    for f in 0..files {
        client
            .batch_execute(&format!(
                "INSERT INTO t SELECT g FROM generate_series({}, {}) g",
                f * per_file + 1,
                (f + 1) * per_file
            ))
            .await
            .expect("insert");
    }
}

/// `sql` running on a new connection (after `setup`, if any), caught
/// before it ends. It took `undisturbed` alone; on a loaded machine one run
/// can be much faster than the one measured: a run already done when
/// looked at must have given `expected`, and the next is looked at sooner.
pub(crate) async fn still_running(
    frontend: &QuiverServer,
    setup: &str,
    sql: &'static str,
    expected: &[Vec<Option<String>>],
    undisturbed: Duration,
) -> tokio::task::JoinHandle<Vec<Vec<Option<String>>>> {
    let mut delay = undisturbed / 3;
    loop {
        let runner = frontend.connect().await;
        if !setup.is_empty() {
            runner.batch_execute(setup).await.expect("setup");
        }
        let running = tokio::spawn(async move { rows(&runner, sql).await });
        tokio::time::sleep(delay).await;
        if !running.is_finished() {
            return running;
        }
        assert_eq!(running.await.expect("query task"), expected);
        assert!(
            delay > Duration::from_millis(10),
            "the query never ran long enough to be interrupted (undisturbed: {undisturbed:?})"
        );
        delay /= 2;
    }
}

/// The query reads a key-value bucket too (every task the version it was
/// planned with), and a statement counting hits in another bucket runs at the
/// same time: it runs on the frontend (its function may write), so the lost
/// executor neither loses nor doubles one of its writes.
#[tokio::test(flavor = "multi_thread")]
async fn a_query_survives_a_killed_executor_with_exact_results() {
    let (_data, mut cluster) = Cluster::start_fresh(2, Loss::Quick);
    let client = cluster.frontend.connect().await;
    numbers(&client, 8, 400).await;
    client.batch_execute(SLOW).await.expect("slow");
    client.batch_execute(WGCD).await.expect("wgcd");
    client
        .batch_execute(
            "CREATE BUCKET rates; CREATE BUCKET hits;
             CREATE FUNCTION kv_put(text, text, text) RETURNS boolean LANGUAGE wasm SET quiver.wasm.keyvalue = 'rates:read-write' AS 'quiver_example_keyvalue.wasm', 'put';
             SELECT kv_put('rates', 'TWO', '2');
             CREATE FUNCTION to_usd(double precision, text) RETURNS double precision LANGUAGE wasm SET quiver.wasm.keyvalue = 'rates:read' AS 'quiver_example_keyvalue.wasm', 'to_usd';
             CREATE FUNCTION hit(text) RETURNS bigint LANGUAGE wasm SET quiver.wasm.keyvalue = 'hits:read-write' AS 'quiver_example_keyvalue.wasm', 'hit'",
        )
        .await
        .expect("buckets");
    let sql = "SELECT count(*), sum(slow(x)), sum(wgcd(slow(x), 6)), \
               CAST(sum(to_usd(CAST(x AS double precision), 'TWO')) AS bigint) FROM t";
    let n = 3200i64;
    let expected = vec![vec![
        Some(n.to_string()),
        Some((1..=n).map(|x| x + 1).sum::<i64>().to_string()),
        Some((1..=n).map(|x| gcd(x + 1, 6)).sum::<i64>().to_string()),
        Some((1..=n).map(|x| 2 * x).sum::<i64>().to_string()),
    ]];
    // Once undisturbed: both executors compile the modules.
    assert_eq!(rows(&client, sql).await, expected);
    let started = Instant::now();
    assert_eq!(rows(&client, sql).await, expected);
    let undisturbed = started.elapsed();

    // Kill an executor while the query runs.
    let running = still_running(&cluster.frontend, "", sql, &expected, undisturbed).await;
    let hits = "SELECT count(hit(CAST(x % 10 AS text))) FROM t WHERE x <= 200";
    let counting = {
        let counter = cluster.frontend.connect().await;
        tokio::spawn(async move { one(&counter, hits).await })
    };
    cluster.kill_executor(0);
    let killed = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(120), running)
        .await
        .expect("the query finishes after losing an executor")
        .expect("query task");
    assert_eq!(result, expected, "no row lost or counted twice");
    let counted = tokio::time::timeout(Duration::from_secs(120), counting)
        .await
        .expect("the counting statement finishes")
        .expect("counting task");
    assert_eq!(counted.as_deref(), Some("200"));
    assert_eq!(
        one(
            &client,
            "SELECT sum(CAST(CAST(value AS text) AS bigint)) FROM quiver.bucket('hits')"
        )
        .await
        .as_deref(),
        Some("200"),
        "each hit written once"
    );
    eprintln!(
        "undisturbed {undisturbed:?}; finished {:?} after the kill",
        killed.elapsed()
    );

    // The cluster keeps serving on the executor that is left.
    assert_eq!(rows(&client, sql).await, expected);
    drop(client);
    cluster.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_executor_that_joins_later_runs_functions_created_before_it() {
    let (_data, mut cluster) = Cluster::start_fresh(1, Loss::Quick);
    let client = cluster.frontend.connect().await;
    numbers(&client, 2, 50).await;
    client.batch_execute(WGCD).await.expect("wgcd");
    let sql = "SELECT sum(wgcd(x, 12)) FROM t";
    let expected = Some((1..=100).map(|x| gcd(x, 12)).sum::<i64>().to_string());
    assert_eq!(one(&client, sql).await, expected);

    // A new executor joins and the first one goes away: only the newcomer,
    // which never saw CREATE FUNCTION, is left to run the function.
    cluster.add_executor();
    cluster.kill_executor(0);
    assert_eq!(one(&client, sql).await, expected);
    assert_eq!(
        one(&client, "SELECT count(*) FROM quiver.executors").await,
        Some("1".into())
    );

    // With no executor at all, queries fail with a clear error, not a hang.
    cluster.kill_executor(1);
    let started = Instant::now();
    let error = client
        .simple_query(sql)
        .await
        .expect_err("no executor can run it");
    let db = error.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "57P03", "{}", db.message());
    assert!(db.message().contains("executors"), "{}", db.message());
    assert!(started.elapsed() < Duration::from_secs(60));

    // A new executor brings the cluster back.
    cluster.add_executor();
    assert_eq!(one(&client, sql).await, expected);
    drop(client);
    cluster.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_query_keeps_the_version_it_was_planned_with_on_a_cluster() {
    let (_data, cluster) = Cluster::start_fresh(2, Loss::Patient);
    crate::wasm::keeps_version_while_replaced(&cluster.frontend).await;
    cluster.stop();
}

/// How many sessions have temporary tables staged (a directory each).
fn temp_sessions(data: &std::path::Path) -> usize {
    std::fs::read_dir(data.join("temp")).map_or(0, |entries| entries.count())
}

#[tokio::test(flavor = "multi_thread")]
async fn temporary_tables_belong_to_their_session() {
    let (data, mut cluster) = Cluster::start_fresh(2, Loss::Patient);
    let setup = cluster.frontend.connect().await;
    numbers(&setup, 4, 25).await;
    client_sees(&setup, "SELECT count(*) FROM t", "100").await;

    // Two sessions at once, each with its own `picked` from the same query
    // shape, and a persistent table neither of them shadows.
    let first = cluster.frontend.connect().await;
    let second = cluster.frontend.connect().await;
    let (a, b) = tokio::join!(
        first.batch_execute("CREATE TEMP TABLE picked AS SELECT x FROM t WHERE x % 2 = 0"),
        second.batch_execute("CREATE TEMP TABLE picked AS SELECT x FROM t WHERE x % 5 = 0"),
    );
    a.expect("first session's temp table");
    b.expect("second session's temp table");
    client_sees(&first, "SELECT count(*) FROM picked", "50").await;
    client_sees(&second, "SELECT count(*) FROM picked", "20").await;
    client_sees(
        &first,
        "SELECT count(*) FROM t JOIN picked p ON t.x = p.x WHERE t.x > 90",
        "5",
    )
    .await;
    let error = setup
        .simple_query("SELECT * FROM picked")
        .await
        .expect_err("other sessions do not see it");
    assert_eq!(error.code().map(|c| c.code()), Some("42P01"));
    assert_eq!(temp_sessions(data.path()), 2, "staged as files");
    // A table with a SERIAL key whose defaults the session planned (they
    // call its `nextval`) does not keep the session alive after it ends.
    second
        .batch_execute(
            "CREATE TABLE keyed (id SERIAL, v TEXT); INSERT INTO keyed (v) VALUES ('a'), ('b')",
        )
        .await
        .expect("a SERIAL table");
    client_sees(&second, "SELECT max(id) FROM keyed", "2").await;

    // The session ends: its staged files go with it.
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(10);
    while temp_sessions(data.path()) > 1 {
        assert!(
            Instant::now() < deadline,
            "a closed session's temp files remain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client_sees(&first, "SELECT count(*) FROM picked", "50").await;

    // The frontend crashes (SIGKILL) with a session holding a temporary
    // table: the next start removes the orphaned files.
    assert_eq!(temp_sessions(data.path()), 1);
    cluster.restart_frontend();
    assert_eq!(temp_sessions(data.path()), 0, "removed at start-up");
    let client = cluster.frontend.connect().await;
    client_sees(&client, "SELECT count(*) FROM t", "100").await;
    drop((first, setup, client));
    cluster.stop();
}

async fn client_sees(client: &tokio_postgres::Client, sql: &str, expected: &str) {
    assert_eq!(one(client, sql).await.as_deref(), Some(expected), "{sql}");
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_analyze_shows_the_stages_the_executors_ran() {
    let (_data, cluster) = Cluster::start_fresh(2, Loss::Patient);
    let client = cluster.frontend.connect().await;
    numbers(&client, 2, 50).await;
    client.batch_execute(WGCD).await.expect("wgcd");
    let plan: String = rows(
        &client,
        "EXPLAIN ANALYZE SELECT x % 3, sum(wgcd(x, 4)) FROM t GROUP BY 1",
    )
    .await
    .into_iter()
    .flatten()
    .flatten()
    .collect::<Vec<_>>()
    .join("\n");
    for expected in [
        "SuccessfulStage[stage_id=1",
        "output_rows=",
        "elapsed_compute=",
        "wgcd(",
    ] {
        assert!(plan.contains(expected), "{expected} missing from:\n{plan}");
    }
    assert_eq!(
        plan.matches("WasmMetricsExec").count(),
        1,
        "only the operator that calls the function is measured:\n{plan}"
    );
    drop(client);
    cluster.stop();
}

/// A transform keyed by `PARTITION BY` loses an executor mid-query: Ballista
/// runs the lost tasks again, and every output row is produced exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_transform_survives_a_killed_executor_with_exact_results() {
    let (_data, mut cluster) = Cluster::start_fresh(2, Loss::Quick);
    let client = cluster.frontend.connect().await;
    numbers(&client, 8, 400).await;
    client.batch_execute(SLOW).await.expect("slow");
    client
        .batch_execute(
            "CREATE FUNCTION sessionize(TABLE, bigint) RETURNS TABLE LANGUAGE wasm \
             AS 'quiver_example_transforms.wasm', 'sessionize'",
        )
        .await
        .expect("sessionize");
    // Keys 0..49, a click every 100 s per key but a 20 000 s pause after
    // each 16th: sessions of 16 clicks (the input is slow to compute, so
    // the query runs long enough to be interrupted).
    let sql = "SELECT count(*), count(DISTINCT x), sum(session), max(session) FROM sessionize(TABLE \
               (SELECT slow(x) - 1 AS x, (x - 1) % 50 AS k, CAST(to_timestamp(((x - 1) / 50) * 100 + ((x - 1) / 800) * 20000) AS timestamp) AS ts FROM t) \
               PARTITION BY k ORDER BY ts, 1000)";
    let n = 3200i64;
    // Each key has 64 clicks ((x - 1) / 50 = 0..63), in 4 sessions of 16.
    let per_key: i64 = (0..64).map(|i| i / 16 + 1).sum();
    let expected = vec![vec![
        Some(n.to_string()),
        Some(n.to_string()),
        Some((50 * per_key).to_string()),
        Some("4".to_string()),
    ]];
    client
        .batch_execute("SET quiver.local_read_limit = 0")
        .await
        .expect("set");
    assert_eq!(rows(&client, sql).await, expected);
    let started = Instant::now();
    assert_eq!(rows(&client, sql).await, expected);
    let undisturbed = started.elapsed();

    let running = still_running(
        &cluster.frontend,
        "SET quiver.local_read_limit = 0",
        sql,
        &expected,
        undisturbed,
    )
    .await;
    cluster.kill_executor(0);
    let result = tokio::time::timeout(Duration::from_secs(120), running)
        .await
        .expect("the query finishes after losing an executor")
        .expect("query task");
    assert_eq!(result, expected, "no row lost or produced twice");
    drop(client);
    cluster.stop();
}

/// SIGTERM stops an executor that has not reached its scheduler yet (here:
/// no scheduler listens), as it does one that serves. Ballista's executor
/// listens for the signal only once it serves; the signal used to be lost
/// in between, and the process served on, or failed once its connection
/// attempts ran out.
#[test]
fn an_executor_that_has_not_joined_yet_stops_on_sigterm() {
    let work = tempfile::tempdir().expect("tempdir");
    let nowhere = format!("127.0.0.1:{}", support::free_port());
    let executor = support::start_executor(&nowhere, support::free_port(), work.path());
    support::terminate(executor);
}
