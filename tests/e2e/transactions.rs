//! Transaction blocks across sessions: a block's writes are invisible to
//! other sessions until COMMIT (read committed), discarded by ROLLBACK or by
//! the connection ending; COPY inside a block is staged too. Of two blocks
//! whose changes together would lose values (a column renamed under rows
//! written meanwhile) or break a foreign key, the second to commit fails.

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

/// `id:balance` of every account, by id.
async fn balances(client: &tokio_postgres::Client) -> String {
    one(
        client,
        "SELECT string_agg(id || ':' || balance, ' ' ORDER BY id) FROM accounts",
    )
    .await
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_in_place_are_isolated_and_never_lost() {
    let (_data, server) = QuiverServer::start_fresh();
    let writer = server.connect().await;
    let other = server.connect().await;
    writer
        .batch_execute(
            "CREATE TABLE accounts (id BIGINT, balance BIGINT); \
             INSERT INTO accounts VALUES (1, 100), (2, 50); INSERT INTO accounts VALUES (3, 25)",
        )
        .await
        .expect("setup");

    // A block's UPDATE and DELETE are its own until COMMIT; rows another
    // session adds meanwhile are kept.
    writer
        .batch_execute("BEGIN; DELETE FROM accounts WHERE id = 1; UPDATE accounts SET balance = balance * 2 WHERE id = 2")
        .await
        .expect("changes in a block");
    assert_eq!(balances(&writer).await, "2:100 3:25");
    assert_eq!(balances(&other).await, "1:100 2:50 3:25");
    other
        .batch_execute("INSERT INTO accounts VALUES (4, 10)")
        .await
        .expect("an insert beside the block");
    writer.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(balances(&other).await, "2:100 3:25 4:10");

    // An UPDATE outside a block waits for a block that changed the table,
    // then changes the rows as the block left them.
    writer
        .batch_execute("BEGIN; DELETE FROM accounts WHERE id = 3")
        .await
        .expect("a change in a block");
    let waiting = tokio::spawn(async move {
        let updated = other
            .execute("UPDATE accounts SET balance = balance + 1", &[])
            .await
            .expect("the update after the block");
        (updated, other)
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    writer.batch_execute("COMMIT").await.expect("commit");
    let (updated, other) = waiting.await.expect("the update's task");
    assert_eq!(updated, 2, "the rows the block left");
    assert_eq!(balances(&other).await, "2:101 4:11");

    // Concurrent UPDATEs from two sessions: none is lost.
    let increments = |client: tokio_postgres::Client| {
        tokio::spawn(async move {
            for _ in 0..8 {
                client
                    .execute(
                        "UPDATE accounts SET balance = balance + 1 WHERE id = 2",
                        &[],
                    )
                    .await
                    .expect("an increment");
            }
            client
        })
    };
    let (a, b) = (increments(writer), increments(other));
    let (writer, _other) = (a.await.expect("task"), b.await.expect("task"));
    assert_eq!(balances(&writer).await, "2:117 4:11");

    // Prepared, with parameters.
    let delete = writer
        .prepare("DELETE FROM accounts WHERE id = $1")
        .await
        .expect("prepare");
    assert_eq!(writer.execute(&delete, &[&4i64]).await.expect("delete"), 1);
    assert_eq!(writer.execute(&delete, &[&4i64]).await.expect("delete"), 0);
    let update = writer
        .prepare("UPDATE accounts SET balance = $1 WHERE id = $2")
        .await
        .expect("prepare");
    assert_eq!(
        writer
            .execute(&update, &[&7i64, &2i64])
            .await
            .expect("update"),
        1
    );
    assert_eq!(balances(&writer).await, "2:7");
}

/// The SQLSTATE of a failed statement.
fn code(result: Result<(), tokio_postgres::Error>) -> Option<String> {
    result
        .err()
        .and_then(|e| e.code().map(|c| c.code().to_string()))
}

#[tokio::test(flavor = "multi_thread")]
async fn column_changes_and_concurrent_writes_never_lose_values() {
    // A rename rewrites the table's files with the new columns: rows another
    // session writes meanwhile have the old ones, so one of the two must
    // fail (40001), never leave a row whose renamed column reads NULL.
    let (_data, server) = QuiverServer::start_fresh();
    let alter = server.connect().await;
    let write = server.connect().await;
    alter
        .batch_execute("CREATE TABLE c (a int, b text); INSERT INTO c VALUES (1, 'x')")
        .await
        .expect("setup");

    // The ALTER's block commits after another session's rows: it fails.
    alter
        .batch_execute("BEGIN; ALTER TABLE c RENAME COLUMN b TO d")
        .await
        .expect("rename in a block");
    write
        .batch_execute("INSERT INTO c VALUES (2, 'y')")
        .await
        .expect("an insert meanwhile");
    assert_eq!(
        code(alter.batch_execute("COMMIT").await).as_deref(),
        Some("40001")
    );
    assert_eq!(
        one(&write, "SELECT string_agg(b, ',' ORDER BY a) FROM c").await,
        Some("x,y".to_string())
    );

    // A block that wrote before the ALTER committed: it fails at COMMIT.
    write
        .batch_execute("BEGIN; INSERT INTO c VALUES (3, 'z')")
        .await
        .expect("an insert in a block");
    alter
        .batch_execute("ALTER TABLE c RENAME COLUMN b TO d")
        .await
        .expect("rename");
    assert_eq!(
        code(write.batch_execute("COMMIT").await).as_deref(),
        Some("40001")
    );
    assert_eq!(
        one(&alter, "SELECT string_agg(d, ',' ORDER BY a) FROM c").await,
        Some("x,y".to_string())
    );
    // Retried, the insert goes in with the new columns.
    write
        .batch_execute("INSERT INTO c (a, d) VALUES (3, 'z')")
        .await
        .expect("the retry");
    assert_eq!(
        one(&alter, "SELECT count(*) FROM c WHERE d IS NULL").await,
        Some("0".to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_key_holds_across_sessions() {
    // One session adds a row referencing a key while another deletes the
    // key: whichever commits second fails (23503), so no row is left
    // referencing nothing.
    let (_data, server) = QuiverServer::start_fresh();
    let child = server.connect().await;
    let parent = server.connect().await;
    child
        .batch_execute(
            "CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (pid int REFERENCES p); \
             INSERT INTO p VALUES (1), (2)",
        )
        .await
        .expect("setup");
    child
        .batch_execute("BEGIN; INSERT INTO c VALUES (1)")
        .await
        .expect("a referencing row in a block");
    parent
        .batch_execute("DELETE FROM p WHERE id = 1")
        .await
        .expect("the key goes first");
    assert_eq!(
        code(child.batch_execute("COMMIT").await).as_deref(),
        Some("23503")
    );
    // Both in blocks, neither seeing the other's change: the referencing
    // row commits first, and the delete then fails at its COMMIT.
    child
        .batch_execute("BEGIN; INSERT INTO c VALUES (2)")
        .await
        .expect("a referencing row in a block");
    parent
        .batch_execute("BEGIN; DELETE FROM p WHERE id = 2")
        .await
        .expect("the delete sees no row referencing the key");
    child
        .batch_execute("COMMIT")
        .await
        .expect("the row commits");
    assert_eq!(
        code(parent.batch_execute("COMMIT").await).as_deref(),
        Some("23503")
    );
    assert_eq!(
        one(&child, "SELECT count(*) FROM c JOIN p ON c.pid = p.id").await,
        Some("1".to_string())
    );
    assert_eq!(
        one(&child, "SELECT count(*) FROM c").await,
        Some("1".to_string())
    );
}
