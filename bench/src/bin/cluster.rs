//! Embedded mode against real clusters, through the PostgreSQL protocol:
//! a CPU-heavy Wasm query, and the latency of a small query.
//!
//! Starts the `quiver` binary built next to this one (release: `cargo build
//! --release --workspace`) as `quiver serve` (embedded, with 1 and with 2
//! slots), then as a cluster (`quiver scheduler`, N × `quiver executor
//! --slots 1`, `quiver serve --scheduler`) with 1 and 2 executors, on
//! loopback, and prints how much faster the heavy query runs on two slots
//! of one process than on one.
//!
//! Usage: `target/release/cluster [GUEST_DIR] [ROWS]`
//! (GUEST_DIR defaults to what `./dev guests` prints; ROWS to 2,000,000).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 3;
const SMALL_RUNS: usize = 30;

struct Deployment {
    name: String,
    children: Vec<Child>,
    addr: String,
    _data: tempfile::TempDir,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

fn quiver() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().expect("bin dir").join("quiver")
}

/// Spawns `quiver ARGS` and waits for the stdout line starting with `prefix`.
fn spawn(args: &[&str], prefix: &str) -> (Child, String) {
    let mut child = Command::new(quiver())
        .args(args)
        .env("QUIVER_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("quiver starts (build it: cargo build --release --workspace)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.strip_prefix(prefix) {
                    std::thread::spawn(move || lines.for_each(drop));
                    return (child, rest.trim().to_string());
                }
            }
            _ => {
                let status = child.wait();
                panic!("quiver {args:?} exited before printing {prefix:?}: {status:?}")
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

fn embedded(guests: &Path, slots: usize) -> Deployment {
    let data = tempfile::tempdir().expect("tempdir");
    let (child, addr) = spawn(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--executor-slots",
            &slots.to_string(),
            "--data-dir",
            &data.path().display().to_string(),
            "--function-dir",
            &guests.display().to_string(),
        ],
        "quiver: listening on ",
    );
    Deployment {
        name: format!("embedded (1 process, {slots} slot(s))"),
        children: vec![child],
        addr,
        _data: data,
    }
}

fn cluster(guests: &Path, executors: usize) -> Deployment {
    let data = tempfile::tempdir().expect("tempdir");
    let (scheduler, scheduler_addr) = spawn(
        &["scheduler", "--listen", "127.0.0.1:0"],
        "quiver: scheduler listening on ",
    );
    let mut children = vec![scheduler];
    for i in 0..executors {
        let port = free_port();
        let work = data.path().join(format!("executor-{i}"));
        let (executor, _) = spawn(
            &[
                "executor",
                "--scheduler",
                &scheduler_addr,
                "--port",
                &port.to_string(),
                "--grpc-port",
                &free_port().to_string(),
                "--slots",
                "1",
                "--work-dir",
                &work.display().to_string(),
            ],
            "quiver: executor ",
        );
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(20));
        }
        children.push(executor);
    }
    let (frontend, addr) = spawn(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--scheduler",
            &scheduler_addr,
            "--data-dir",
            &data.path().join("frontend").display().to_string(),
            "--function-dir",
            &guests.display().to_string(),
        ],
        "quiver: listening on ",
    );
    children.push(frontend);
    Deployment {
        name: format!("cluster, {executors} executor(s) × 1 slot"),
        children,
        addr,
        _data: data,
    }
}

async fn connect(addr: &str) -> tokio_postgres::Client {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let (client, connection) = tokio_postgres::connect(
        &format!("host={host} port={port} user=quiver dbname=quiver"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(connection);
    client
}

async fn time(client: &tokio_postgres::Client, sql: &str) -> Duration {
    let started = Instant::now();
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    started.elapsed()
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let guests = args.next().map(PathBuf::from).unwrap_or_else(|| {
        let out = Command::new("bash")
            .args(["dev", "guests"])
            .output()
            .expect("./dev guests");
        PathBuf::from(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or("")
                .trim(),
        )
    });
    let rows: u64 = args
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2_000_000);
    let heavy = "SELECT sum(length(sha(x::text))) FROM t";
    println!(
        "rows: {rows}; heavy query: `{heavy}` as a Ballista job (best of {RUNS}, after one warm-up run)"
    );
    println!("small query: `SELECT count(*) FROM small` over 1,000 rows, {SMALL_RUNS} runs");
    println!();
    println!(
        "| deployment | heavy (ms) | small: median (ms) | small: min (ms) | `SELECT 1` median (ms) |"
    );
    println!("|---|---:|---:|---:|---:|");
    let mut embedded_heavy = Vec::new();
    for which in 0..4 {
        let deployment = match which {
            0 | 1 => embedded(&guests, which + 1),
            n => cluster(&guests, n - 1),
        };
        let client = connect(&deployment.addr).await;
        // The heavy query runs as a Ballista job whatever the table's size
        // (a small one would run on the frontend, outside the slots).
        client
            .batch_execute(&format!(
                "SET quiver.local_read_limit = 0;
                 CREATE TABLE t AS SELECT g AS x FROM generate_series(1, {rows}) g;
                 CREATE TABLE small AS SELECT g AS x FROM generate_series(1, 1000) g;
                 CREATE FUNCTION sha(text) RETURNS text LANGUAGE wasm IMMUTABLE AS 'quiver_example_functions.wasm', 'sha256_hex';"
            ))
            .await
            .expect("setup");
        time(&client, heavy).await;
        let mut heavy_times = Vec::new();
        for _ in 0..RUNS {
            heavy_times.push(time(&client, heavy).await);
        }
        let mut small = Vec::new();
        let mut trivial = Vec::new();
        for _ in 0..SMALL_RUNS {
            small.push(time(&client, "SELECT count(*) FROM small").await);
            trivial.push(time(&client, "SELECT 1").await);
        }
        small.sort();
        trivial.sort();
        let best = *heavy_times.iter().min().expect("runs");
        if which < 2 {
            embedded_heavy.push(best);
        }
        println!(
            "| {} | {} | {} | {} | {} |",
            deployment.name,
            ms(best),
            ms(small[SMALL_RUNS / 2]),
            ms(small[0]),
            ms(trivial[SMALL_RUNS / 2]),
        );
    }
    println!();
    println!(
        "heavy query, 2 slots vs 1 in one process: {:.2}x faster (target: >= 1.8x)",
        embedded_heavy[0].as_secs_f64() / embedded_heavy[1].as_secs_f64()
    );
}
