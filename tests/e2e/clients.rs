//! The Python client suite (`clients/python`: psycopg 3, psycopg2, pg8000,
//! asyncpg, SQLAlchemy, pandas, and a JupySQL notebook run headless with
//! nbclient) against a fresh server. `./dev test` creates the virtual
//! environment and names its interpreter in `QUIVER_CLIENTS_PYTHON`.

use std::path::Path;
use std::process::Command;

use crate::support::QuiverServer;

#[test]
fn python_clients() {
    let python = std::env::var("QUIVER_CLIENTS_PYTHON").unwrap_or_else(|_| {
        panic!(
            "QUIVER_CLIENTS_PYTHON is not set: run the tests with ./dev test, which installs the Python clients"
        )
    });
    let (_data, server) = QuiverServer::start_fresh();
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python");
    let output = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEX"])
        .arg(&suite)
        .current_dir(&suite)
        .env("QUIVER_HOST", server.host())
        .env("QUIVER_PORT", server.port().to_string())
        // The notebook's kernel must not try to reach the network.
        .env("MPLBACKEND", "Agg")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client suite failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
}
