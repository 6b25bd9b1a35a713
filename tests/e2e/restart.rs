//! Tables, their rows, external tables and views survive a clean
//! restart; what a rolled-back block created does not.

use crate::support::{QuiverServer, rows};

fn strings(rows: &[&[Option<&str>]]) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|r| r.iter().map(|v| v.map(str::to_string)).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_and_rows_survive_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    // The data directory's `import` area is where external tables may point.
    let import = data.path().join("db").join("import");
    std::fs::create_dir_all(&import).expect("import directory");
    let csv = import.join("cities.csv");
    std::fs::write(&csv, "city,population\nLisbon,545000\nPorto,232000\n").expect("write csv");

    let server = QuiverServer::start(&data.path().join("db"));
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE t (id BIGINT, name TEXT, score DOUBLE PRECISION, ts TIMESTAMP);
             INSERT INTO t VALUES (1, 'ada', 9.5, '2024-01-02 03:04:05'), (2, NULL, NULL, NULL);
             INSERT INTO t SELECT id + 10, upper(name), score * 2, ts FROM t;
             CREATE TABLE dropped (x INT);
             DROP TABLE dropped;
             CREATE TABLE renamed_from (x INT);
             INSERT INTO renamed_from VALUES (1), (2);
             INSERT INTO renamed_from VALUES (3);
             ALTER TABLE renamed_from RENAME TO renamed;
             DELETE FROM renamed WHERE x = 2;
             UPDATE renamed SET x = x * 10 WHERE x = 3;
             CREATE VIEW t_names AS SELECT id, upper(name) AS shout FROM t WHERE name IS NOT NULL;
             CREATE TABLE keyed (id SERIAL, v TEXT DEFAULT 'd');
             INSERT INTO keyed (v) VALUES ('a'), ('b');
             CREATE SEQUENCE counter START 5;
             SELECT setval('counter', 50);
             CREATE SCHEMA analytics;
             CREATE TABLE analytics.t (x INT);
             INSERT INTO analytics.t VALUES (42);
             CREATE SCHEMA gone;
             CREATE TABLE gone.t (x INT);
             DROP SCHEMA gone CASCADE;
             BEGIN;
             CREATE TABLE made_in_block (x INT);
             INSERT INTO made_in_block VALUES (7);
             COMMIT;
             BEGIN;
             CREATE TABLE rolled_back (x INT);
             INSERT INTO rolled_back VALUES (1);
             ROLLBACK;",
        )
        .await
        .expect("create and fill");
    // One directory per managed table: none left by the dropped table or
    // the rolled-back one.
    let dirs = std::fs::read_dir(data.path().join("db").join("tables"))
        .expect("tables directory")
        .count();
    assert_eq!(dirs, 5, "t, renamed, keyed, made_in_block, analytics.t");
    client
        .batch_execute(&format!(
            "CREATE EXTERNAL TABLE cities STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')",
            csv.display()
        ))
        .await
        .expect("external table");
    let before = rows(&client, "SELECT * FROM t ORDER BY id").await;
    assert_eq!(before.len(), 4);
    drop(client);
    server.stop();

    let server = QuiverServer::start(&data.path().join("db"));
    let client = server.connect().await;
    assert_eq!(rows(&client, "SELECT * FROM t ORDER BY id").await, before);
    assert_eq!(
        rows(&client, "SELECT name, score FROM t WHERE id = 11").await,
        strings(&[&[Some("ADA"), Some("19")]])
    );
    assert_eq!(
        rows(&client, "SELECT city FROM cities ORDER BY population DESC").await,
        strings(&[&[Some("Lisbon")], &[Some("Porto")]])
    );
    let error = client
        .simple_query("SELECT * FROM dropped")
        .await
        .expect_err("dropped table stays dropped");
    assert_eq!(error.code().map(|c| c.code()), Some("42P01"));
    // Renamed, and changed in place: as left.
    assert_eq!(
        rows(&client, "SELECT x FROM renamed ORDER BY x").await,
        strings(&[&[Some("1")], &[Some("30")]])
    );
    let error = client
        .simple_query("SELECT * FROM renamed_from")
        .await
        .expect_err("the old name is gone");
    assert_eq!(error.code().map(|c| c.code()), Some("42P01"));

    assert_eq!(
        rows(&client, "SELECT shout FROM t_names ORDER BY id").await,
        strings(&[&[Some("ADA")], &[Some("ADA")]])
    );
    assert_eq!(
        rows(&client, "SELECT x FROM made_in_block").await,
        strings(&[&[Some("7")]])
    );
    let error = client
        .simple_query("SELECT * FROM rolled_back")
        .await
        .expect_err("a table created in a rolled-back block is gone");
    assert_eq!(error.code().map(|c| c.code()), Some("42P01"));

    // Schemas stay, with their tables; a dropped one stays dropped.
    assert_eq!(
        rows(&client, "SELECT x FROM analytics.t").await,
        strings(&[&[Some("42")]])
    );
    let error = client
        .simple_query("CREATE TABLE gone.t (x INT)")
        .await
        .expect_err("a dropped schema stays dropped");
    assert_eq!(error.code().map(|c| c.code()), Some("3F000"));

    // Sequences go on from where they were, never giving a value twice
    // (nextval stores its counter some values ahead; setval at once);
    // columns keep their defaults.
    client
        .batch_execute("INSERT INTO keyed DEFAULT VALUES")
        .await
        .expect("insert with defaults");
    let keyed = rows(&client, "SELECT id, v FROM keyed ORDER BY id").await;
    assert_eq!(keyed.len(), 3);
    let new_id: i64 = keyed[2][0]
        .as_deref()
        .and_then(|id| id.parse().ok())
        .expect("an id");
    assert!(new_id > 2, "{keyed:?}");
    assert_eq!(keyed[2][1].as_deref(), Some("d"));
    assert_eq!(
        rows(&client, "SELECT nextval('counter')").await,
        strings(&[&[Some("51")]])
    );

    // The restarted server still writes: a new insert lands next to the old files.
    client
        .batch_execute("INSERT INTO t VALUES (3, 'new', 1, NULL)")
        .await
        .expect("insert");
    assert_eq!(
        rows(&client, "SELECT count(*) FROM t").await,
        strings(&[&[Some("5")]])
    );
    drop(client);
    server.stop();
}
