//! The real `psql` binary: `\dt`, `\d t`, `\copy` in and out.

use std::process::{Command, Output};

use crate::support::QuiverServer;

/// Runs `psql -c` for each of `commands`, stopping at the first error.
fn run_psql(server: &QuiverServer, commands: &[&str]) -> Output {
    let port = server.port().to_string();
    let mut command = Command::new("psql");
    command
        .args([
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            server.host(),
            "-p",
            &port,
        ])
        .args(["-U", "quiver", "-d", "quiver"])
        .env("PGCONNECT_TIMEOUT", "10");
    for c in commands {
        command.args(["-c", c]);
    }
    command
        .output()
        .expect("psql is installed (the README test command installs postgresql-client)")
}

/// Like [`run_psql`], and the commands must succeed; returns what psql printed.
fn psql(server: &QuiverServer, commands: &[&str]) -> String {
    let output = run_psql(server, commands);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "psql {commands:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout
}

#[test]
fn psql_describes_tables_and_copies_in_and_out() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = QuiverServer::start(&data.path().join("db"));
    let input = data.path().join("in.csv");
    std::fs::write(
        &input,
        "id,name,score,ts\n1,ada,9.5,2024-01-02 03:04:05\n2,\"grace, hopper\",7.25,\n3,,,2024-03-01 00:00:00\n",
    )
    .expect("write csv");
    let output = data.path().join("out.csv");

    let out = psql(
        &server,
        &[
            "CREATE TABLE t (id BIGINT, name TEXT, score DOUBLE PRECISION, ts TIMESTAMP)",
            &format!("\\copy t FROM '{}' CSV HEADER", input.display()),
            &format!(
                "\\copy (SELECT id, name, score FROM t ORDER BY id) TO '{}' CSV HEADER",
                output.display()
            ),
        ],
    );
    assert!(out.contains("COPY 3"), "copy in reports its rows: {out}");
    assert_eq!(
        std::fs::read_to_string(&output).expect("copy out wrote the file"),
        "id,name,score\n1,ada,9.5\n2,\"grace, hopper\",7.25\n3,,\n"
    );

    let tables = psql(&server, &["\\dt"]);
    assert!(
        tables
            .lines()
            .any(|l| l.contains("public") && l.contains("| t ") && l.contains("table")),
        "\\dt lists t:\n{tables}"
    );

    let described = psql(&server, &["\\d t"]);
    for (column, ty) in [
        ("id", "bigint"),
        ("name", "text"),
        ("score", "double precision"),
        ("ts", "timestamp without time zone"),
    ] {
        assert!(
            described
                .lines()
                .any(|l| l.contains(column) && l.contains(ty)),
            "\\d t shows {column} {ty}:\n{described}"
        );
    }

    // A bad row appends nothing and the session goes on.
    let bad = data.path().join("bad.csv");
    std::fs::write(&bad, "id,name,score,ts\n4,x,1,\nnot-a-number,y,2,\n").expect("write csv");
    let failed = run_psql(
        &server,
        &[&format!("\\copy t FROM '{}' CSV HEADER", bad.display())],
    );
    assert!(!failed.status.success(), "a bad row fails the copy");
    let count = psql(&server, &["SELECT count(*) FROM t"]);
    assert!(
        count.contains(" 3\n"),
        "no row of the failed copy was appended: {count}"
    );
    server.stop();
}

#[test]
fn psql_lists_wasm_functions_with_df() {
    let (_data, server) = QuiverServer::start_fresh();
    let out = psql(
        &server,
        &[
            "CREATE FUNCTION add1(bigint) RETURNS bigint LANGUAGE wasm AS '(module (func (export \"add1\") (param i64) (result i64) local.get 0 i64.const 1 i64.add))'",
            "CREATE FUNCTION wasm_gcd(bigint, bigint) RETURNS bigint LANGUAGE wasm AS 'quiver_example_functions.wasm', 'gcd'",
            "\\df",
            "\\df add1",
        ],
    );
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(
        lines.contains(&"public | add1     | bigint           | bigint              | func"),
        "{out}"
    );
    assert!(
        lines.contains(&"public | wasm_gcd | bigint           | bigint, bigint      | func"),
        "{out}"
    );
    assert!(
        lines.contains(&"public | add1 | bigint           | bigint              | func"),
        "{out}"
    );
    server.stop();
}
