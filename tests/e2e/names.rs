//! Result columns are named as PostgreSQL names them.

use tokio_postgres::SimpleQueryMessage;

use crate::support::QuiverServer;

#[tokio::test(flavor = "multi_thread")]
async fn unaliased_columns_have_postgresql_names() {
    let (_data, server) = QuiverServer::start_fresh();
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (id BIGINT, name TEXT); INSERT INTO t VALUES (1, 'a')")
        .await
        .expect("setup");
    let messages = client
        .simple_query("SELECT id, t.name, count(*), 1 + 1, upper(name), '7'::int, 'x' AS alias FROM t GROUP BY id, name")
        .await
        .expect("query");
    let columns: Vec<String> = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::RowDescription(columns) => {
                Some(columns.iter().map(|c| c.name().to_string()).collect())
            }
            _ => None,
        })
        .expect("a row description");
    assert_eq!(
        columns,
        ["id", "name", "count", "?column?", "upper", "int4", "alias"]
    );
    drop(client);
    server.stop();
}
