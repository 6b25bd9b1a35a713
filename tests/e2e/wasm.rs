//! Wasm functions against a real server: hostile guests fail alone and in
//! bounded time, functions survive a restart, and a running query keeps the
//! version of a function it was planned with.

use std::time::{Duration, Instant};

use crate::support::{QuiverServer, one, rows};

const EXAMPLES: &str = "quiver_example_functions.wasm";
const HOSTILE: &str = "quiver_example_hostile.wasm";

/// Runs `sql`, which must fail; returns its SQLSTATE, message and duration.
async fn failure(client: &tokio_postgres::Client, sql: &str) -> (String, String, Duration) {
    let started = Instant::now();
    let error = client
        .simple_query(sql)
        .await
        .expect_err(&format!("{sql} fails"));
    let db = error
        .as_db_error()
        .unwrap_or_else(|| panic!("{sql}: not a server error: {error}"));
    (
        db.code().code().to_string(),
        db.message().to_string(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_functions_fail_alone_and_in_bounded_time() {
    let (_data, server) = QuiverServer::start_fresh();
    let attacker = server.connect().await;
    attacker
        .batch_execute("CREATE TABLE t (v BIGINT, s TEXT); INSERT INTO t VALUES (1, '/etc/passwd'), (2, 'x'), (3, 'y')")
        .await
        .expect("setup");
    let setup = [
        format!("CREATE FUNCTION spin(bigint) RETURNS bigint LANGUAGE wasm SET quiver.wasm.time_limit = '500ms' AS '{HOSTILE}', 'spin'"),
        format!("CREATE FUNCTION hog(bigint) RETURNS bigint LANGUAGE wasm SET quiver.wasm.max_memory = '32MB' AS '{HOSTILE}', 'hog'"),
        format!("CREATE FUNCTION recurse(bigint) RETURNS bigint LANGUAGE wasm AS '{HOSTILE}', 'recurse'"),
        format!("CREATE FUNCTION boom(bigint) RETURNS bigint LANGUAGE wasm AS '{HOSTILE}', 'boom'"),
        format!("CREATE FUNCTION chatter(bigint) RETURNS bigint LANGUAGE wasm AS '{HOSTILE}', 'chatter'"),
        format!("CREATE FUNCTION read_file(text) RETURNS text LANGUAGE wasm AS '{HOSTILE}', 'read_file'"),
        format!("CREATE FUNCTION connect_to(integer) RETURNS text LANGUAGE wasm AS '{HOSTILE}', 'connect'"),
        format!("CREATE FUNCTION env_count(bigint) RETURNS bigint LANGUAGE wasm AS '{HOSTILE}', 'env_count'"),
        "CREATE FUNCTION core_loop(bigint) RETURNS bigint LANGUAGE wasm SET quiver.wasm.time_limit = '300ms' AS '(module (func (export \"core_loop\") (param i64) (result i64) (loop br 0) local.get 0))'".to_string(),
        "CREATE FUNCTION core_grow(bigint) RETURNS bigint LANGUAGE wasm SET quiver.wasm.max_memory = '8MB' AS '(module (memory 1) (func (export \"core_grow\") (param i64) (result i64) (loop (drop (memory.grow (i32.const 16))) br 0) local.get 0))'".to_string(),
        "CREATE FUNCTION core_recurse(bigint) RETURNS bigint LANGUAGE wasm AS '(module (func $f (export \"core_recurse\") (param i64) (result i64) local.get 0 i64.const 1 i64.add call $f))'".to_string(),
    ];
    for sql in &setup {
        attacker
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    // A second session queries all along and must never notice.
    let bystander = server.connect().await;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(async move {
        let mut answered = 0u32;
        loop {
            let started = Instant::now();
            assert_eq!(
                one(&bystander, "SELECT sum(v) FROM t").await.as_deref(),
                Some("6")
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "bystander query stalled"
            );
            answered += 1;
            if stopped.try_recv().is_ok() {
                return answered;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    let cases: &[(&str, &str, &str)] = &[
        ("SELECT spin(v) FROM t", "57014", "time limit"),
        ("SELECT hog(v) FROM t", "53200", "memory limit"),
        ("SELECT recurse(v) FROM t", "54001", "stack depth"),
        ("SELECT boom(v) FROM t", "38000", "boom at"),
        ("SELECT chatter(v) FROM t", "38000", "chatter"),
        (
            "SELECT read_file(s) FROM t",
            "38000",
            "cannot read /etc/passwd",
        ),
        ("SELECT connect_to(5433)", "38000", "access-denied"),
        ("SELECT core_loop(v) FROM t", "57014", "time limit"),
        ("SELECT core_grow(v) FROM t", "53200", "memory limit"),
        ("SELECT core_recurse(v) FROM t", "54001", "stack depth"),
    ];
    for (sql, code, text) in cases {
        let (got_code, message, elapsed) = failure(&attacker, sql).await;
        assert_eq!(&got_code, code, "{sql}: {message}");
        assert!(
            message.contains(text),
            "{sql}: message {message:?} lacks {text:?}"
        );
        assert!(elapsed < Duration::from_secs(20), "{sql} took {elapsed:?}");
    }
    // The sandbox has no environment; the attacker's session still works.
    assert_eq!(
        one(&attacker, "SELECT env_count(0)").await.as_deref(),
        Some("0")
    );
    assert_eq!(
        one(&attacker, "SELECT count(*) FROM t").await.as_deref(),
        Some("3")
    );

    stop.send(()).expect("watcher runs");
    let answered = watcher.await.expect("bystander never failed");
    assert!(answered > 0);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_looping_function_delays_no_other_sessions_calls() {
    let (_data, server) = QuiverServer::start_fresh();
    let setup = server.connect().await;
    setup
        .batch_execute(
            "CREATE TABLE t (v BIGINT); INSERT INTO t VALUES (1), (2); INSERT INTO t VALUES (3);
             CREATE FUNCTION looping(bigint) RETURNS bigint LANGUAGE wasm SET quiver.wasm.time_limit = '10s' AS '(module (func (export \"looping\") (param i64) (result i64) (loop br 0) local.get 0))';
             CREATE FUNCTION add1(bigint) RETURNS bigint LANGUAGE wasm AS '(module (func (export \"add1\") (param i64) (result i64) local.get 0 i64.const 1 i64.add))';",
        )
        .await
        .expect("setup");
    let looper = server.connect().await;
    let looping = tokio::spawn(async move { failure(&looper, "SELECT looping(v) FROM t").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = server.connect().await;
    for (sql, answer) in [
        ("SELECT add1(10)", "11"),
        ("SELECT sum(add1(v)) FROM t", "9"),
        ("SELECT count(*) FROM t", "3"),
    ] {
        let started = Instant::now();
        assert_eq!(one(&other, sql).await.as_deref(), Some(answer), "{sql}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{sql} waited {:?} behind a looping function",
            started.elapsed()
        );
    }
    let still_running = !looping.is_finished();
    let (code, message, took) = looping.await.expect("looper");
    assert_eq!(code, "57014", "{message}");
    assert!(
        still_running,
        "the looping function ran all along ({took:?})"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn functions_and_their_compiled_code_survive_a_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    // Its own compiled-code cache, not the one the test run shares.
    let cache = data.path().join("wasm-cache");
    let cache = cache.to_str().expect("UTF-8 path");
    let start = || QuiverServer::start_with(data.path(), &["--wasm-cache-dir", cache]);
    let server = start();
    let client = server.connect().await;
    client
        .batch_execute(&format!(
            "CREATE FUNCTION add1(bigint) RETURNS bigint LANGUAGE wasm AS '(module (func (export \"add1\") (param i64) (result i64) local.get 0 i64.const 1 i64.add))';
             CREATE FUNCTION wasm_gcd(bigint, bigint) RETURNS bigint LANGUAGE wasm STRICT AS '{EXAMPLES}', 'gcd';
             CREATE FUNCTION shout(text) RETURNS text LANGUAGE wasm AS '{EXAMPLES}', 'upper';
             CREATE OR REPLACE FUNCTION shout(text) RETURNS text LANGUAGE wasm AS '{EXAMPLES}', 'upper';"
        ))
        .await
        .expect("create");
    let before = rows(
        &client,
        "SELECT name, module_sha256, version FROM quiver.functions ORDER BY name",
    )
    .await;
    drop(client);
    server.stop();

    let cached = std::fs::read_dir(data.path().join("wasm-cache"))
        .expect("compiled-code cache exists")
        .count();
    assert_eq!(cached, 2, "one compiled file per module");

    let server = start();
    let client = server.connect().await;
    assert_eq!(
        rows(
            &client,
            "SELECT name, module_sha256, version FROM quiver.functions ORDER BY name"
        )
        .await,
        before
    );
    assert_eq!(
        rows(&client, "SELECT add1(1), wasm_gcd(12, 18), shout('abc')").await,
        vec![vec![Some("2".into()), Some("6".into()), Some("ABC".into())]]
    );
    drop(client);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_query_keeps_the_version_it_was_planned_with() {
    let (_data, server) = QuiverServer::start_fresh();
    keeps_version_while_replaced(&server).await;
    server.stop();
}

/// `CREATE OR REPLACE FUNCTION` while a query runs: the query finishes with
/// the version it was planned with; the next one uses the new version.
pub(crate) async fn keeps_version_while_replaced(server: &QuiverServer) {
    let client = server.connect().await;
    // slow(x) = x + 1 after a busy loop of a few milliseconds.
    let slow = |add: u32| {
        format!(
            "CREATE OR REPLACE FUNCTION slow(bigint) RETURNS bigint LANGUAGE wasm SET quiver.wasm.time_limit = '10s' AS '(module (func (export \"slow\") (param i64) (result i64) (local i32) (local.set 1 (i32.const 2000000)) (block (loop (local.set 1 (i32.sub (local.get 1) (i32.const 1))) (br_if 1 (i32.eqz (local.get 1))) (br 0))) (i64.add (local.get 0) (i64.const {add}))))'"
        )
    };
    client
        .batch_execute(
            "CREATE TABLE t (x BIGINT); INSERT INTO t SELECT g FROM generate_series(1, 400) g",
        )
        .await
        .expect("setup");
    client.batch_execute(&slow(1)).await.expect("v1");

    let runner = server.connect().await;
    let running = tokio::spawn(async move { one(&runner, "SELECT sum(slow(x)) FROM t").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    client.batch_execute(&slow(2)).await.expect("v2");
    let sum: i64 = (1..=400).sum();
    assert_eq!(
        running.await.expect("query runs"),
        Some((sum + 400).to_string()),
        "the running query used version 1 throughout"
    );
    assert_eq!(
        one(&client, "SELECT sum(slow(x)) FROM t").await,
        Some((sum + 800).to_string())
    );
}

/// A function granted the log (`SET quiver.wasm.log = on`) writes its
/// stdout and stderr lines to the server's log, tagged with the function
/// and the stream; the same function without the grant writes nothing
/// there.
#[tokio::test(flavor = "multi_thread")]
async fn a_function_granted_the_log_writes_its_lines_there() {
    let data = tempfile::tempdir().expect("tempdir");
    let log = data.path().join("server.log");
    let server =
        QuiverServer::start_logged(&data.path().join("db"), "warn,quiver::guest=info", &log);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE FUNCTION say(text) RETURNS text LANGUAGE wasm SET quiver.wasm.log = on AS 'quiver_example_keyvalue.wasm', 'say';
             CREATE FUNCTION say_quietly(text) RETURNS text LANGUAGE wasm AS 'quiver_example_keyvalue.wasm', 'say'",
        )
        .await
        .expect("create");
    assert_eq!(
        one(&client, "SELECT say('a granted line')")
            .await
            .as_deref(),
        Some("a granted line")
    );
    assert_eq!(
        one(&client, "SELECT say_quietly('a quiet line')")
            .await
            .as_deref(),
        Some("a quiet line")
    );
    drop(client);
    server.stop();

    let text = std::fs::read_to_string(&log).expect("the server's log");
    let line = |needle: &str| text.lines().find(|l| l.contains(needle));
    let stdout = line("a granted line").unwrap_or_else(|| panic!("no stdout line in:\n{text}"));
    assert!(
        stdout.contains("say(text)") && stdout.contains("stdout"),
        "{stdout}"
    );
    let stderr = line("said 14 bytes").unwrap_or_else(|| panic!("no stderr line in:\n{text}"));
    assert!(stderr.contains("stderr"), "{stderr}");
    assert!(
        line("a quiet line").is_none() && line("said 12 bytes").is_none(),
        "an ungranted function's output reached the log:\n{text}"
    );
}
