//! Bad input on one connection never reaches the others.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{QuiverServer, one};

#[tokio::test(flavor = "multi_thread")]
async fn garbage_and_dropped_connections_leave_other_sessions_working() {
    let (_data, server) = QuiverServer::start_fresh();
    let bystander = server.connect().await;
    bystander
        .batch_execute("CREATE TABLE t (v BIGINT); INSERT INTO t VALUES (1), (2), (3)")
        .await
        .expect("setup");

    // Garbage instead of a startup message, and garbage after a valid startup.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for prefix in [&b""[..], &b"\x00\x00\x00\x08\x04\xd2\x16\x2f"[..]] {
        let mut socket = tokio::net::TcpStream::connect(&server.addr)
            .await
            .expect("connect");
        let _ = socket.write_all(prefix).await;
        let _ = socket.write_all(&garbage).await;
        let mut sink = Vec::new();
        // The server answers with an error or closes the connection; it must not hang.
        let read =
            tokio::time::timeout(Duration::from_secs(15), socket.read_to_end(&mut sink)).await;
        assert!(
            read.is_ok(),
            "the server closes a connection that sends garbage"
        );
    }

    // A client that disappears in the middle of a query.
    {
        let quitter = server.connect().await;
        let query = quitter.simple_query("SELECT count(*) FROM t a, t b, t c, t d");
        let _ = tokio::time::timeout(Duration::from_millis(50), query).await;
    }

    assert_eq!(
        one(&bystander, "SELECT sum(v) FROM t").await.as_deref(),
        Some("6")
    );
    let newcomer = server.connect().await;
    assert_eq!(
        one(&newcomer, "SELECT count(*) FROM t").await.as_deref(),
        Some("3")
    );
    drop((bystander, newcomer));
    server.stop();
}
