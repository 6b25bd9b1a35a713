//! Wasm aggregates and table functions against a real server: hostile ones
//! (a state that grows without bound, a table function that never ends or
//! never produces a row) fail alone and in bounded time, and both kinds
//! survive a restart.

use std::time::{Duration, Instant};

use crate::support::{QuiverServer, one, rows};

const EXAMPLES: &str = "quiver_example_functions.wasm";
const HOSTILE: &str = "quiver_example_hostile.wasm";

#[tokio::test(flavor = "multi_thread")]
async fn hostile_aggregates_and_table_functions_fail_alone() {
    let (_data, server) = QuiverServer::start_fresh();
    let client = server.connect().await;
    client
        .batch_execute(&format!(
            "CREATE FUNCTION series(bigint, bigint, bigint) RETURNS TABLE (n bigint) LANGUAGE wasm AS '{EXAMPLES}', 'series';
             CREATE AGGREGATE hoard(bigint) (MODULE = '{HOSTILE}', MAX_MEMORY = '32MB');
             CREATE FUNCTION forever() RETURNS TABLE (n bigint) LANGUAGE wasm AS '{HOSTILE}', 'forever';
             CREATE FUNCTION stuck() RETURNS TABLE (n bigint) LANGUAGE wasm SET quiver.wasm.time_limit = '500ms' AS '{HOSTILE}', 'stuck';"
        ))
        .await
        .expect("setup");

    // 64 KiB of state per row: the instance's memory limit stops it.
    let started = Instant::now();
    let error = client
        .simple_query("SELECT hoard(n) FROM series(1, 100000, 1)")
        .await
        .expect_err("the state outgrows its memory");
    let db = error.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "53200", "{}", db.message());
    assert!(db.message().contains("hoard"), "{}", db.message());
    assert!(started.elapsed() < Duration::from_secs(30));
    // Within the limit it works (and the failed instance was not reused).
    assert_eq!(
        one(&client, "SELECT hoard(n) FROM series(1, 10, 1)")
            .await
            .as_deref(),
        Some("10")
    );

    // An endless table function: a LIMIT stops it.
    let started = Instant::now();
    assert_eq!(
        rows(&client, "SELECT n FROM forever() LIMIT 3").await,
        vec![
            vec![Some("0".into())],
            vec![Some("1".into())],
            vec![Some("2".into())]
        ]
    );
    assert_eq!(
        one(
            &client,
            "SELECT count(*) FROM (SELECT n FROM forever() LIMIT 50000) v"
        )
        .await
        .as_deref(),
        Some("50000")
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // One that never yields a row: its time limit per batch stops it.
    let started = Instant::now();
    let error = client
        .simple_query("SELECT * FROM stuck()")
        .await
        .expect_err("the time limit stops it");
    let db = error.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "57014", "{}", db.message());
    assert!(started.elapsed() < Duration::from_secs(30));

    // The session and the server carry on.
    assert_eq!(
        one(&client, "SELECT sum(n) FROM series(1, 100, 1)")
            .await
            .as_deref(),
        Some("5050")
    );
    let other = server.connect().await;
    assert_eq!(one(&other, "SELECT 1").await.as_deref(), Some("1"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregates_and_table_functions_survive_a_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = QuiverServer::start(data.path());
    let client = server.connect().await;
    client
        .batch_execute(&format!(
            "CREATE FUNCTION series(bigint, bigint, bigint) RETURNS TABLE (n bigint) LANGUAGE wasm AS '{EXAMPLES}', 'series';
             CREATE AGGREGATE median_sketch(double precision) (MODULE = '{EXAMPLES}');
             CREATE AGGREGATE total(bigint) (MODULE = '{EXAMPLES}', SYMBOL = 'wasm_sum');"
        ))
        .await
        .expect("create");
    let query = "SELECT total(n), median_sketch(n::double) FROM series(1, 1000, 1)";
    let before = rows(&client, query).await;
    assert_eq!(
        before,
        vec![vec![Some("500500".into()), Some("500.5".into())]]
    );
    drop(client);
    server.stop();

    let server = QuiverServer::start(data.path());
    let client = server.connect().await;
    assert_eq!(rows(&client, query).await, before);
    assert_eq!(
        rows(
            &client,
            "SELECT name, kind FROM quiver.functions ORDER BY name"
        )
        .await,
        vec![
            vec![Some("median_sketch".into()), Some("aggregate".into())],
            vec![Some("series".into()), Some("table".into())],
            vec![Some("total".into()), Some("aggregate".into())],
        ]
    );
    drop(client);
    server.stop();
}
