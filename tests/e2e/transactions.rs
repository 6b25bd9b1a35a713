//! Transaction blocks across sessions: a block's writes are invisible to
//! other sessions until COMMIT (read committed), discarded by ROLLBACK or by
//! the connection ending; COPY inside a block is staged too.

use futures::SinkExt;
use tokio_postgres::Transaction;

use crate::support::{QuiverServer, one};

async fn count(client: &tokio_postgres::Client) -> String {
    one(client, "SELECT count(*) FROM accounts")
        .await
        .expect("a count")
}

async fn copy_rows(tx: &Transaction<'_>, rows: &str) {
    let sink = tx
        .copy_in("COPY accounts FROM STDIN WITH (FORMAT csv)")
        .await
        .expect("COPY starts");
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from(rows.to_string()))
        .await
        .expect("COPY data");
    sink.finish().await.expect("COPY completes");
}

#[tokio::test(flavor = "multi_thread")]
async fn blocks_are_isolated_until_commit() {
    let (_data, server) = QuiverServer::start_fresh();
    let mut writer = server.connect().await;
    let reader = server.connect().await;
    writer
        .batch_execute("CREATE TABLE accounts (id BIGINT, balance BIGINT); INSERT INTO accounts VALUES (1, 100)")
        .await
        .expect("setup");

    // Uncommitted writes: the writer sees them, the reader does not.
    writer
        .batch_execute("BEGIN; INSERT INTO accounts VALUES (2, 50), (3, 25)")
        .await
        .expect("writes in a block");
    assert_eq!(count(&writer).await, "3");
    assert_eq!(count(&reader).await, "1", "uncommitted rows are invisible");
    writer.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(count(&reader).await, "3", "committed rows are visible");

    // The driver's transaction API; COPY inside it; rolled back by drop.
    {
        let tx = writer.transaction().await.expect("BEGIN");
        copy_rows(&tx, "4,10\n5,20\n").await;
        assert_eq!(
            one(&tx, "SELECT sum(balance) FROM accounts")
                .await
                .as_deref(),
            Some("205")
        );
        // Dropped without commit: tokio-postgres sends ROLLBACK.
    }
    assert_eq!(count(&writer).await, "3");
    assert_eq!(count(&reader).await, "3");

    // Committed through the API, COPY included.
    let tx = writer.transaction().await.expect("BEGIN");
    copy_rows(&tx, "4,10\n").await;
    tx.commit().await.expect("COMMIT");
    assert_eq!(count(&reader).await, "4");

    // A failed statement aborts the block with 25P02 until ROLLBACK.
    let tx = writer.transaction().await.expect("BEGIN");
    tx.execute("INSERT INTO accounts VALUES (9, 9)", &[])
        .await
        .expect("insert");
    let error = tx
        .execute("SELECT * FROM missing", &[])
        .await
        .expect_err("no such table");
    assert_eq!(error.code().map(|c| c.code()), Some("42P01"));
    let error = tx
        .query("SELECT 1", &[])
        .await
        .expect_err("the block is aborted");
    assert_eq!(error.code().map(|c| c.code()), Some("25P02"));
    tx.rollback().await.expect("ROLLBACK");
    assert_eq!(count(&writer).await, "4");

    // A connection that ends inside a block loses its writes.
    let quitter = server.connect().await;
    quitter
        .batch_execute("BEGIN; INSERT INTO accounts VALUES (7, 7)")
        .await
        .expect("writes in a block");
    drop(quitter);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(count(&reader).await, "4");
}
