//! A table written a row at a time keeps a bounded number of files (its
//! small files are merged in the background), and statements running
//! meanwhile see every committed row exactly once: on the frontend, as
//! Ballista jobs, and through prepared statements planned before a merge.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use crate::support::{QuiverServer, one};

const WRITERS: i64 = 4;
const ROWS_EACH: i64 = 60;
/// Files merge eight at a time (`quiver_catalog::FANOUT`), a level per
/// merge; a file of level `n` holds at least 8^n rows, so the table's
/// 240 rows sit in levels 0 to 2, fewer than 8 files each once merged.
const MOST_FILES: usize = 3 * 7;

/// The Parquet files of the only table in `data_dir`.
fn table_files(data_dir: &Path) -> usize {
    let tables: Vec<_> = std::fs::read_dir(data_dir.join("tables"))
        .expect("tables directory")
        .map(|e| e.expect("entry").path())
        .collect();
    let [table] = tables.as_slice() else {
        panic!("one table directory: {tables:?}")
    };
    std::fs::read_dir(table)
        .expect("table directory")
        .filter(|e| {
            e.as_ref()
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .ends_with(".parquet")
        })
        .count()
}

/// Reads `count(*)` and `count(DISTINCT k)` until `done`, checking each
/// answer against the rows whose `INSERT` had completed before it was
/// asked (all must be there) and after it came (no more may be, but for
/// inserts in flight), and that no row is seen twice or disappears.
async fn read_until(
    client: tokio_postgres::Client,
    prepared: bool,
    written: Arc<AtomicI64>,
    done: Arc<AtomicBool>,
) -> usize {
    const QUERY: &str = "SELECT count(*), count(DISTINCT k) FROM log";
    let statement = client.prepare(QUERY).await.expect("prepare");
    let (mut last, mut reads) = (0, 0);
    while !done.load(Ordering::SeqCst) {
        let before = written.load(Ordering::SeqCst);
        let (count, distinct): (i64, i64) = if prepared {
            let row = client.query_one(&statement, &[]).await.expect("count");
            (row.get(0), row.get(1))
        } else {
            let row = client.query_one(QUERY, &[]).await.expect("count");
            (row.get(0), row.get(1))
        };
        let after = written.load(Ordering::SeqCst);
        assert_eq!(count, distinct, "a row seen twice");
        assert!(
            count >= before,
            "{count} rows seen, {before} committed before"
        );
        assert!(
            count <= after + WRITERS,
            "{count} rows seen, {after} committed"
        );
        assert!(count >= last, "rows disappeared: {last} then {count}");
        (last, reads) = (count, reads + 1);
    }
    reads
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_written_row_by_row_keeps_few_files_and_every_row() {
    let (data, server) = QuiverServer::start_fresh();
    let setup = server.connect().await;
    setup
        .batch_execute("CREATE TABLE log (k BIGINT, v TEXT)")
        .await
        .expect("create");

    let written = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let readers = [
        // On the frontend, planned once.
        (server.connect().await, true),
        // As Ballista jobs, planned at each run.
        (server.connect().await, false),
    ]
    .map(|(client, prepared)| {
        let (written, done) = (written.clone(), done.clone());
        tokio::spawn(async move {
            if !prepared {
                client
                    .batch_execute("SET quiver.local_read_limit = 0")
                    .await
                    .expect("every read a Ballista job");
            }
            read_until(client, prepared, written, done).await
        })
    });
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = server.connect().await;
        let written = written.clone();
        writers.push(tokio::spawn(async move {
            for k in w * ROWS_EACH..(w + 1) * ROWS_EACH {
                client
                    .execute("INSERT INTO log VALUES ($1, 'x')", &[&k])
                    .await
                    .expect("insert");
                written.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        let reads = reader.await.expect("reader");
        assert!(reads > 0, "the reader ran");
    }

    let rows = WRITERS * ROWS_EACH;
    let deadline = Instant::now() + Duration::from_secs(60);
    while table_files(data.path()) > MOST_FILES {
        assert!(
            Instant::now() < deadline,
            "{} files after {rows} one-row inserts",
            table_files(data.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expected = format!("{rows} {}", rows * (rows - 1) / 2);
    const TOTALS: &str = "SELECT count(*) || ' ' || sum(k) FROM log";
    assert_eq!(
        one(&setup, TOTALS).await.as_deref(),
        Some(expected.as_str())
    );

    // The merged files are what a restart finds.
    drop(setup);
    server.stop();
    let server = QuiverServer::start(data.path());
    let client = server.connect().await;
    assert_eq!(
        one(&client, TOTALS).await.as_deref(),
        Some(expected.as_str())
    );
}
