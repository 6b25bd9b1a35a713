//! `quiver backup` of a data directory into a bucket (moto's S3 server),
//! and `quiver restore` of it into a new data directory that a server then
//! serves: the tables, Wasm functions, key-value buckets and roles are all
//! there.

use std::path::Path;
use std::process::{Output, Stdio};

use crate::object_stores::BUCKET;
use crate::support::s3::s3;
use crate::support::{QuiverServer, one, quiver, rows};

fn run(args: &[&str]) -> Output {
    quiver(args)
        .stderr(Stdio::piped())
        .output()
        .expect("quiver runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn backup(data: &Path, to: &str) -> Output {
    run(&["backup", "--data-dir", data.to_str().expect("utf-8"), to])
}

fn restore(from: &str, data: &Path) -> Output {
    run(&["restore", from, "--data-dir", data.to_str().expect("utf-8")])
}

const CHECKS: [&str; 4] = [
    "SELECT count(*), sum(x), count(DISTINCT note) FROM t",
    "SELECT sum(wgcd(x, 6)) FROM t",
    "SELECT CAST(CAST(value AS text) AS bigint) FROM quiver.bucket('rates') WHERE key = 'TWO'",
    "SELECT rolname FROM pg_roles WHERE rolname = 'analyst'",
];

async fn answers(server: &QuiverServer) -> Vec<Vec<Vec<Option<String>>>> {
    let client = server.connect().await;
    let mut answers = Vec::new();
    for sql in CHECKS {
        answers.push(rows(&client, sql).await);
    }
    answers
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_in_a_bucket_restores_into_a_new_data_directory() {
    s3().create_bucket(BUCKET);
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let server = QuiverServer::start(&data);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE t (x BIGINT, note TEXT);
             INSERT INTO t SELECT x, 'n' || (x % 7) FROM generate_series(1, 1000) g(x);
             INSERT INTO t SELECT x, 'n' || (x % 7) FROM generate_series(1001, 2500) g(x);
             DELETE FROM t WHERE x % 100 = 0;
             CREATE FUNCTION wgcd(bigint, bigint) RETURNS bigint LANGUAGE wasm IMMUTABLE AS 'quiver_example_functions.wasm', 'gcd';
             CREATE BUCKET rates;
             CREATE FUNCTION kv_put(text, text, text) RETURNS boolean LANGUAGE wasm SET quiver.wasm.keyvalue = 'rates:read-write' AS 'quiver_example_keyvalue.wasm', 'put';
             SELECT kv_put('rates', 'TWO', '2');
             CREATE ROLE analyst LOGIN",
        )
        .await
        .expect("a data directory worth keeping");
    let before = answers(&server).await;
    assert_eq!(
        before[0],
        [[
            Some("2475".into()),
            Some("3093750".into()),
            Some("7".into())
        ]]
    );
    assert_eq!(one(&client, CHECKS[2]).await.as_deref(), Some("2"));
    drop(client);

    // The server holds the catalog: no backup while it runs.
    let location = format!("s3://{BUCKET}/backups/first");
    let refused = backup(&data, &location);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("stop the server"),
        "{}",
        text(&refused)
    );
    assert!(s3().keys(BUCKET, "backups/first/").is_empty());
    server.stop();

    let taken = backup(&data, &location);
    assert!(taken.status.success(), "{}", text(&taken));
    assert!(
        text(&taken).contains("quiver: backed up"),
        "{}",
        text(&taken)
    );
    let keys = s3().keys(BUCKET, "backups/first/");
    for expected in [
        "backups/first/MANIFEST.json",
        "backups/first/catalog/CURRENT",
    ] {
        assert!(keys.iter().any(|k| k == expected), "{expected}: {keys:?}");
    }
    assert!(
        keys.iter()
            .any(|k| k.starts_with("backups/first/tables/") && k.ends_with(".parquet")),
        "{keys:?}"
    );
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("/temp/") || k.contains("/modules/"))
    );
    let again = backup(&data, &location);
    assert!(
        text(&again).contains("already holds a backup"),
        "{}",
        text(&again)
    );

    // On a new data directory (another machine would do as well).
    let restored = root.path().join("restored");
    let done = restore(&location, &restored);
    assert!(done.status.success(), "{}", text(&done));
    let server = QuiverServer::start(&restored);
    assert_eq!(answers(&server).await, before);
    server.stop();

    let occupied = restore(&location, &restored);
    assert!(text(&occupied).contains("not empty"), "{}", text(&occupied));
    let nowhere = restore(
        &format!("s3://{BUCKET}/backups/none"),
        &root.path().join("x"),
    );
    assert!(
        text(&nowhere).contains("no complete backup"),
        "{}",
        text(&nowhere)
    );
    assert!(!root.path().join("x").exists());
}
