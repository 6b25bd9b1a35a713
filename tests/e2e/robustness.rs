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

/// Statements far past the depth limit (a few hundred kilobytes of
/// `1 + 1 + ...`, thousands of `UNION ALL`s, both over prepared statements
/// too) fail with 54001, and the session and server go on.
#[tokio::test(flavor = "multi_thread")]
async fn statements_too_deep_fail_alone() {
    let (_data, server) = QuiverServer::start_fresh();
    let client = server.connect().await;
    let terms = |n: usize, term: &str, op: &str| vec![term; n].join(op);
    let statements = [
        format!("SELECT {}", terms(100_000, "1", " + ")),
        format!("SELECT 'x' {}", terms(30_000, "|| 'x'", " ")),
        terms(5_000, "SELECT 1", " UNION ALL "),
        format!("SELECT ({})", terms(3_000, "SELECT 2", " UNION ALL ")),
    ];
    for sql in &statements {
        let simple = client.simple_query(sql).await.expect_err("too deep");
        assert_eq!(simple.code().map(|c| c.code()), Some("54001"), "{simple}");
        let prepared = client.prepare(sql).await.expect_err("too deep");
        assert_eq!(
            prepared.code().map(|c| c.code()),
            Some("54001"),
            "{prepared}"
        );
        assert_eq!(one(&client, "SELECT 1").await.as_deref(), Some("1"));
    }
    drop(client);
    server.stop();
}

/// Under a small memory budget, a sort spills and answers, an aggregate
/// that cannot spill fails with 53200 — on the frontend and on the embedded
/// executor — and the server goes on.
#[tokio::test(flavor = "multi_thread")]
async fn queries_over_the_memory_budget_spill_or_fail_alone() {
    let data = tempfile::tempdir().expect("tempdir");
    // Statements over the stored table run on the embedded executor.
    let server = QuiverServer::start_with(
        data.path(),
        &["--memory-limit-mb", "24", "--local-read-limit-kb", "0"],
    );
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE big AS SELECT x FROM generate_series(1, 2000000) g(x)")
        .await
        .expect("table");
    assert_eq!(
        one(
            &client,
            "SELECT sum(y) FROM (SELECT x % 1000 AS y FROM big ORDER BY x DESC) s"
        )
        .await
        .as_deref(),
        Some("999000000"),
        "the sort spills and answers"
    );
    for sql in [
        "SELECT array_length(array_agg(x), 1) FROM generate_series(1, 5000000) g(x)",
        "SELECT array_length(array_agg(x), 1) FROM big",
    ] {
        let error = client.simple_query(sql).await.expect_err("over the budget");
        assert_eq!(
            error.code().map(|c| c.code()),
            Some("53200"),
            "{sql}: {error}"
        );
        assert_eq!(
            one(&client, "SELECT count(*) FROM big").await.as_deref(),
            Some("2000000")
        );
    }
    drop(client);
    server.stop();
}

/// Without authentication, the server listens on other machines' reach only
/// when told to.
#[test]
fn refuses_to_listen_beyond_loopback_without_auth() {
    let data = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(data.path())
        .output()
        .expect("quiver runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0")
            && stderr.contains("--trust-remote-clients"),
        "{stderr}"
    );

    // Told to, it listens.
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--trust-remote-clients",
            "--data-dir",
        ])
        .arg(data.path().join("trusting"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("quiver runs");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("a line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("quiver: listening on 0.0.0.0:"), "{line}");
}
