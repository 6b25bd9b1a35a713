//! Client suites in other languages against a fresh server each:
//! - Python (`clients/python`): psycopg 3, psycopg2, pg8000, asyncpg,
//!   SQLAlchemy, pandas, and a JupySQL notebook run headless with nbclient,
//!   in the virtual environment `./dev test` creates (`QUIVER_CLIENTS_PYTHON`);
//! - Node (`clients/node`): node-postgres, installed by `./dev test` with npm;
//! - Java (`clients/jdbc`): pgjdbc from Debian's libpostgresql-jdbc-java.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::QuiverServer;

/// Where Debian's libpostgresql-jdbc-java puts the driver.
const PGJDBC: &str = "/usr/share/java/postgresql.jar";

fn clients_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(name)
}

/// Runs `command` (a client suite) in `dir` against a fresh server; it
/// must succeed.
fn run_suite(what: &str, dir: &Path, mut command: Command) {
    let (_data, server) = QuiverServer::start_fresh();
    let output = command
        .current_dir(dir)
        .env("QUIVER_HOST", server.host())
        .env("QUIVER_PORT", server.port().to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run the {what} suite: {e} (./dev test installs it)"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the {what} suite failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
}

#[test]
fn python_clients() {
    let python = std::env::var("QUIVER_CLIENTS_PYTHON").unwrap_or_else(|_| {
        panic!(
            "QUIVER_CLIENTS_PYTHON is not set: run the tests with ./dev test, which installs the Python clients"
        )
    });
    let mut command = Command::new(python);
    command
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEX"])
        .env("MPLBACKEND", "Agg");
    run_suite("Python client", &clients_dir("python"), command);
}

#[test]
fn node_postgres() {
    let dir = clients_dir("node");
    assert!(
        dir.join("node_modules/pg").is_dir(),
        "node-postgres is not installed: run the tests with ./dev test"
    );
    let mut command = Command::new("node");
    command.arg("--test");
    run_suite("node-postgres", &dir, command);
}

#[test]
fn pgjdbc() {
    assert!(
        Path::new(PGJDBC).exists(),
        "{PGJDBC} is missing: run the tests with ./dev test (installs libpostgresql-jdbc-java)"
    );
    let mut command = Command::new("java");
    command.args(["-cp", PGJDBC, "QuiverJdbcTest.java"]);
    run_suite("pgjdbc", &clients_dir("jdbc"), command);
}
