//! Tables in an object store: external tables at `s3://` locations in an
//! S3-compatible server (moto's), read and written by the embedded server
//! and by a cluster's executors, within the prefixes the operator allows.

use futures::SinkExt;

use crate::support::s3::{S3, s3};
use crate::support::{Cluster, Loss, QuiverServer, rows};

pub(crate) const BUCKET: &str = "quiver-lake";

/// `--external-dir` for `prefix` of the bucket.
pub(crate) fn allowed(prefix: &str) -> String {
    format!("s3://{BUCKET}/{prefix}")
}

/// Puts a CSV and a JSON file under `prefix`, then reads them, writes a
/// Parquet table there (`INSERT`, `COPY FROM STDIN`) and reads it back,
/// joined with the CSV.
pub(crate) async fn lake(client: &tokio_postgres::Client, s3: &S3, prefix: &str) {
    s3.put(
        BUCKET,
        &format!("{prefix}/people.csv"),
        b"id,name\n0,zero\n1,one\n2,two\n",
    );
    s3.put(
        BUCKET,
        &format!("{prefix}/logs/day1.json"),
        b"{\"level\":\"warn\",\"n\":3}\n{\"level\":\"info\",\"n\":4}\n",
    );
    s3.put(
        BUCKET,
        &format!("{prefix}/logs/day2.json"),
        b"{\"level\":\"warn\",\"n\":5}\n",
    );
    let root = allowed(prefix);
    client
        .batch_execute(&format!(
            "CREATE EXTERNAL TABLE people (id BIGINT, name TEXT) STORED AS CSV \
               LOCATION '{root}/people.csv' OPTIONS ('format.has_header' 'true');
             CREATE EXTERNAL TABLE logs (level TEXT, n BIGINT) STORED AS JSON LOCATION '{root}/logs/';
             CREATE EXTERNAL TABLE events (id BIGINT, kind BIGINT) STORED AS PARQUET LOCATION '{root}/events/';"
        ))
        .await
        .expect("external tables in the bucket");
    assert_eq!(
        rows(client, "SELECT id, name FROM people ORDER BY id").await,
        [["0", "zero"], ["1", "one"], ["2", "two"]]
            .map(|row| row.map(|v| Some(v.to_string())).to_vec())
            .to_vec()
    );
    assert_eq!(
        rows(
            client,
            "SELECT level, sum(n), count(*) FROM logs GROUP BY level ORDER BY level"
        )
        .await,
        [["info", "4", "1"], ["warn", "8", "2"]]
            .map(|row| row.map(|v| Some(v.to_string())).to_vec())
            .to_vec()
    );
    client
        .batch_execute(
            "INSERT INTO events SELECT x, x % 3 FROM generate_series(1, 3000) g(x);
             INSERT INTO events SELECT x, x % 3 FROM generate_series(3001, 4500) g(x)",
        )
        .await
        .expect("INSERT writes Parquet files into the bucket");
    // COPY FROM STDIN writes there too.
    let sink = client
        .copy_in("COPY events FROM STDIN WITH (FORMAT csv)")
        .await
        .expect("COPY starts");
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"4501,0\n4502,1\n"))
        .await
        .expect("COPY data");
    sink.finish().await.expect("COPY completes");
    let written = s3.keys(BUCKET, &format!("{prefix}/events/"));
    assert!(
        !written.is_empty() && written.iter().all(|key| key.ends_with(".parquet")),
        "{written:?}"
    );
    assert_eq!(
        rows(
            client,
            "SELECT p.name, count(*), sum(e.id) FROM events e JOIN people p ON p.id = e.kind \
             GROUP BY p.name ORDER BY p.name"
        )
        .await,
        [
            ["one", "1501", "3378752"],
            ["two", "1500", "3375750"],
            ["zero", "1501", "3381751"]
        ]
        .map(|row| row.map(|v| Some(v.to_string())).to_vec())
        .to_vec()
    );
    // Outside the allowed prefix, in another bucket, or a prefix that only
    // starts alike: refused before anything is read.
    for location in [
        format!("s3://{BUCKET}/secret/x.csv"),
        format!("s3://other-bucket/{prefix}/x.csv"),
        format!("s3://{BUCKET}/{prefix}-not/x.csv"),
    ] {
        let error = client
            .batch_execute(&format!(
                "CREATE EXTERNAL TABLE refused (a TEXT) STORED AS CSV LOCATION '{location}'"
            ))
            .await
            .expect_err("outside the allowed prefix");
        assert_eq!(
            error.code().map(|c| c.code()),
            Some("42501"),
            "{location}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn external_tables_in_an_s3_bucket_embedded() {
    s3().create_bucket(BUCKET);
    let data = tempfile::tempdir().expect("tempdir");
    let server = QuiverServer::start_with(data.path(), &["--external-dir", &allowed("embedded")]);
    let client = server.connect().await;
    lake(&client, s3(), "embedded").await;
    server.stop();
}

/// Executors read and write the bucket themselves: the frontend runs every
/// statement over stored tables as a job (`--local-read-limit-kb 0`).
#[tokio::test(flavor = "multi_thread")]
async fn external_tables_in_an_s3_bucket_on_a_cluster() {
    s3().create_bucket(BUCKET);
    let data = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start_with(
        data.path(),
        2,
        Loss::Patient,
        &["--external-dir", &allowed("cluster")],
    );
    let client = cluster.frontend.connect().await;
    lake(&client, s3(), "cluster").await;
    let plan = rows(
        &client,
        "EXPLAIN SELECT kind, count(*) FROM events GROUP BY kind",
    )
    .await;
    let distributed = plan
        .iter()
        .find(|row| row[0].as_deref() == Some("distributed_plan"))
        .and_then(|row| row[1].clone())
        .unwrap_or_else(|| panic!("planned by Ballista: {plan:?}"));
    // The stage that reads the bucket runs on the executors.
    assert!(
        distributed.contains("DataSourceExec: file_groups={3 groups: [[cluster/events/"),
        "{distributed}"
    );
    cluster.stop();
}

/// With `--module-store` in the bucket, the frontend publishes modules and
/// the bucket versions plans pin there, executors read them from there and
/// write their usage counts back there: nothing goes through the data
/// directory's `modules`, which is never made.
#[tokio::test(flavor = "multi_thread")]
async fn wasm_modules_reach_executors_through_the_bucket() {
    s3().create_bucket(BUCKET);
    let data = tempfile::tempdir().expect("tempdir");
    let modules = format!("s3://{BUCKET}/cluster-modules");
    let cluster = Cluster::start_with(data.path(), 2, Loss::Patient, &["--module-store", &modules]);
    let client = cluster.frontend.connect().await;
    crate::cluster::numbers(&client, 4, 100).await;
    client
        .batch_execute(
            "CREATE FUNCTION wgcd(bigint, bigint) RETURNS bigint LANGUAGE wasm IMMUTABLE AS 'quiver_example_functions.wasm', 'gcd';
             CREATE BUCKET rates;
             CREATE FUNCTION kv_put(text, text, text) RETURNS boolean LANGUAGE wasm SET quiver.wasm.keyvalue = 'rates:read-write' AS 'quiver_example_keyvalue.wasm', 'put';
             SELECT kv_put('rates', 'TWO', '2');
             CREATE FUNCTION to_usd(double precision, text) RETURNS double precision LANGUAGE wasm SET quiver.wasm.keyvalue = 'rates:read' AS 'quiver_example_keyvalue.wasm', 'to_usd'",
        )
        .await
        .expect("functions");
    let sql = "SELECT sum(wgcd(x, 6)), CAST(sum(to_usd(CAST(x AS double precision), 'TWO')) AS bigint) FROM t";
    let gcd = |mut a: i64, mut b: i64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let expected = vec![vec![
        Some((1..=400).map(|x| gcd(x, 6)).sum::<i64>().to_string()),
        Some((1..=400).map(|x| 2 * x).sum::<i64>().to_string()),
    ]];
    assert_eq!(rows(&client, sql).await, expected);
    let plan = rows(&client, &format!("EXPLAIN {sql}")).await;
    assert!(
        plan.iter()
            .any(|row| row[0].as_deref() == Some("distributed_plan")),
        "the executors ran it: {plan:?}"
    );

    let published = s3().keys(BUCKET, "cluster-modules/");
    assert_eq!(
        published
            .iter()
            .filter(|key| key.ends_with(".wasm"))
            .count(),
        2,
        "both modules: {published:?}"
    );
    assert!(
        published
            .iter()
            .any(|key| key.starts_with("cluster-modules/bucket-rates@") && key.ends_with(".arrow")),
        "the version of rates the plan pinned: {published:?}"
    );
    assert!(!data.path().join("modules").exists());

    // The executors' counts come back through the bucket (about once a
    // second) and are gathered into the frontend's totals.
    let stats = "SELECT name, rows FROM quiver.function_stats WHERE name IN ('wgcd', 'to_usd') ORDER BY name";
    let counted = vec![
        vec![Some("to_usd".to_string()), Some("400".to_string())],
        vec![Some("wgcd".to_string()), Some("400".to_string())],
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while rows(&client, stats).await != counted {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            rows(&client, stats).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        s3().keys(BUCKET, "cluster-modules/usage-"),
        Vec::<String>::new(),
        "usage files are removed once gathered"
    );
    cluster.stop();
}

/// With `--data-dir s3://…`, managed tables live in the bucket: written a
/// row at a time they are compacted there, rewritten by `UPDATE` and
/// `DELETE`, staged by transaction blocks, and kept across a restart;
/// temporary tables are there while their session lasts. The catalog
/// directory holds the catalog only.
#[tokio::test(flavor = "multi_thread")]
async fn a_data_directory_in_a_bucket_keeps_its_tables_across_a_restart() {
    s3().create_bucket(BUCKET);
    let catalog = tempfile::tempdir().expect("tempdir");
    let data = format!("s3://{BUCKET}/embedded-data");
    let catalog_dir = catalog.path().display().to_string();
    let flags = ["--data-dir", &data, "--catalog-dir", &catalog_dir];
    let server = QuiverServer::start_with(catalog.path(), &flags);
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (k bigint PRIMARY KEY, v text)")
        .await
        .expect("table");
    // Sixteen files of one row: two merges' worth (FANOUT is 8).
    for k in 0..16 {
        client
            .batch_execute(&format!("INSERT INTO t VALUES ({k}, 'v{k}')"))
            .await
            .expect("insert");
    }
    // Merged in the background, in the bucket.
    let table_files = || {
        s3().keys(BUCKET, "embedded-data/tables/")
            .into_iter()
            .filter(|key| key.ends_with(".parquet"))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while table_files() >= 16 {
        assert!(std::time::Instant::now() < deadline, "no merge");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    client
        .batch_execute(
            "UPDATE t SET v = 'even' WHERE k % 2 = 0;
             DELETE FROM t WHERE k = 1;
             BEGIN; INSERT INTO t VALUES (100, 'block'); UPDATE t SET v = 'zero' WHERE k = 0; COMMIT;
             BEGIN; INSERT INTO t VALUES (200, 'rolled back'); ROLLBACK;
             CREATE TEMP TABLE scratch AS SELECT * FROM t WHERE k < 4",
        )
        .await
        .expect("changes");
    let duplicate = client
        .batch_execute("INSERT INTO t VALUES (3, 'again')")
        .await
        .expect_err("a repeated key");
    assert_eq!(
        duplicate.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );
    let table = "SELECT k, v FROM t ORDER BY k";
    let expected: Vec<Vec<Option<String>>> = (0..16)
        .filter(|k| *k != 1)
        .map(|k| match k {
            0 => (k, "zero".to_string()),
            k if k % 2 == 0 => (k, "even".to_string()),
            k => (k, format!("v{k}")),
        })
        .chain([(100, "block".to_string())])
        .map(|(k, v)| vec![Some(k.to_string()), Some(v)])
        .collect();
    assert_eq!(rows(&client, table).await, expected);
    assert_eq!(
        rows(&client, "SELECT count(*) FROM scratch").await,
        [[Some("3".to_string())]]
    );
    let keys = s3().keys(BUCKET, "embedded-data/");
    assert!(
        keys.iter()
            .any(|key| key.starts_with("embedded-data/temp/") && key.ends_with(".parquet")),
        "the temporary table is in the bucket: {keys:?}"
    );
    assert!(
        !catalog.path().join("tables").exists() && !catalog.path().join("temp").exists(),
        "no table file is local"
    );
    drop(client);
    server.stop();

    let server = QuiverServer::start_with(catalog.path(), &flags);
    let client = server.connect().await;
    assert_eq!(rows(&client, table).await, expected);
    let keys = s3().keys(BUCKET, "embedded-data/");
    let tables: Vec<_> = keys
        .iter()
        .filter(|key| key.starts_with("embedded-data/tables/"))
        .collect();
    assert!(
        tables.iter().all(|key| key.ends_with(".parquet")),
        "no partial file or switch record is left: {tables:?}"
    );
    assert!(
        !keys
            .iter()
            .any(|key| key.starts_with("embedded-data/temp/")),
        "the ended session's temporary files are gone: {keys:?}"
    );
    client.batch_execute("DROP TABLE t").await.expect("drop");
    assert_eq!(
        s3().keys(BUCKET, "embedded-data/tables/"),
        Vec::<String>::new(),
        "a dropped table's files are removed"
    );
    server.stop();
}

/// An object-store data directory needs a local directory for the catalog.
#[test]
fn an_object_store_data_directory_needs_a_catalog_directory() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["serve", "--data-dir", "s3://quiver-lake/data"])
        .output()
        .expect("quiver runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("give --catalog-dir"), "{stderr}");
}
