//! Starts real `quiver serve` processes for the end-to-end tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The directory holding the example Wasm functions (built once per test
/// process by `./dev guests`; cargo's lock makes concurrent builds safe).
pub fn guest_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let output = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("dev"))
            .arg("guests")
            .stderr(Stdio::inherit())
            .output()
            .expect("./dev guests runs");
        assert!(
            output.status.success(),
            "building the example Wasm functions failed (./dev guests)"
        );
        let dir = String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .map(|l| PathBuf::from(l.trim()))
            .expect("./dev guests prints the guest directory");
        assert!(dir.is_dir(), "{} is not a directory", dir.display());
        dir
    })
}

/// A `quiver serve` child process listening on a free loopback port.
pub struct QuiverServer {
    child: Option<Child>,
    pub addr: String,
    pub data_dir: PathBuf,
}

impl QuiverServer {
    /// Starts a server on `data_dir` and waits until it accepts connections.
    pub fn start(data_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--function-dir")
            .arg(guest_dir())
            .env(
                "QUIVER_LOG",
                std::env::var("QUIVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("quiver binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        // The server prints one line once it accepts connections:
        // "quiver: listening on 127.0.0.1:PORT".
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix("quiver: listening on ") {
                        break addr.trim().to_string();
                    }
                }
                _ => {
                    let status = child.wait().expect("wait for quiver");
                    panic!("quiver exited before listening: {status}");
                }
            }
        };
        Self {
            child: Some(child),
            addr,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Starts a server on a fresh temporary data directory, which lives as
    /// long as the returned guard.
    pub fn start_fresh() -> (tempfile::TempDir, Self) {
        let data = tempfile::tempdir().expect("tempdir");
        let server = Self::start(data.path());
        (data, server)
    }

    pub fn host(&self) -> &str {
        self.addr
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or("127.0.0.1")
    }

    pub fn port(&self) -> u16 {
        self.addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("address has a port")
    }

    /// A tokio-postgres connection string for this server.
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} user=quiver dbname=quiver",
            self.host(),
            self.port()
        )
    }

    /// Connects with tokio-postgres; the connection task runs on the current runtime.
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.conninfo(), tokio_postgres::NoTls)
            .await
            .expect("connects to quiver");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// Stops the server with SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM delivered");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(
                    status.success(),
                    "quiver exits cleanly on SIGTERM: {status}"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "quiver did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for QuiverServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The rows of `sql` (simple query protocol: values as PostgreSQL's text).
pub async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The first column of the first row of `sql`, as text.
pub async fn one(client: &tokio_postgres::Client, sql: &str) -> Option<String> {
    rows(client, sql)
        .await
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next().flatten())
}
