//! Starts real `quiver serve` processes for the end-to-end tests.

#![allow(dead_code)]

pub mod netns;
pub mod postgres;
pub mod s3;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The directory holding the example Wasm functions (built once per test
/// process by `./dev guests`; cargo's lock makes concurrent builds safe).
/// `tests/data`: files tests read as external tables and through functions.
pub fn test_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
}

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

/// The compiled-Wasm cache the tests' processes share, beside (not in) the
/// function directory.
pub fn shared_wasm_cache() -> PathBuf {
    let guests = guest_dir().ancestors().nth(2).unwrap_or(guest_dir());
    guests.join("wasm-cache")
}

/// A `quiver serve` child process listening on a free loopback port.
pub struct QuiverServer {
    child: Option<Child>,
    pub addr: String,
    pub data_dir: PathBuf,
}

/// `quiver ARGS`, with the test log level, stdout piped, and one
/// compiled-Wasm cache for every server and executor of the test run: the
/// Python and JavaScript examples (CPython, SpiderMonkey inside) take
/// seconds each to compile.
pub fn quiver(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quiver"));
    command
        .args(args)
        .env("QUIVER_WASM_CACHE_DIR", shared_wasm_cache())
        .env(
            "QUIVER_LOG",
            std::env::var("QUIVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .envs(s3::environment())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// Spawns `command` and waits for the stdout line starting with `prefix`;
/// returns the child and the rest of that line.
fn spawn_until(mut command: Command, prefix: &str) -> (Child, String) {
    let mut child = command.spawn().expect("quiver binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.strip_prefix(prefix) {
                    // Keep draining stdout so the child never blocks on it.
                    std::thread::spawn(move || lines.for_each(drop));
                    return (child, rest.trim().to_string());
                }
            }
            _ => {
                let status = child.wait().expect("wait for quiver");
                panic!("quiver exited before printing \"{prefix}\": {status}");
            }
        }
    }
}

impl QuiverServer {
    /// Starts an embedded server on `data_dir` and waits until it accepts
    /// connections.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Starts a server with extra `quiver serve` flags.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        Self::spawn(Self::command(data_dir, extra), data_dir)
    }

    /// Starts a server whose log (filtered by `filter`, `QUIVER_LOG`'s
    /// syntax) goes to the file `log`.
    pub fn start_logged(data_dir: &Path, filter: &str, log: &Path) -> Self {
        let mut command = Self::command(data_dir, &[]);
        command
            .env("QUIVER_LOG", filter)
            .stderr(std::fs::File::create(log).expect("log file"));
        Self::spawn(command, data_dir)
    }

    fn command(data_dir: &Path, extra: &[&str]) -> Command {
        Self::command_on("127.0.0.1:0", data_dir, extra)
    }

    /// `quiver serve` listening on `listen`.
    fn command_on(listen: &str, data_dir: &Path, extra: &[&str]) -> Command {
        let mut command = quiver(&["serve", "--listen", listen]);
        // Unless the extra flags give another data directory (an object
        // store's URL, with `--catalog-dir`).
        if !extra.contains(&"--data-dir") {
            command.arg("--data-dir").arg(data_dir);
        }
        command
            .arg("--function-dir")
            .arg(guest_dir())
            .arg("--external-dir")
            .arg(test_data())
            // Functions granted `testdata` read the same files.
            .arg("--wasm-files")
            .arg(format!("testdata={}", test_data().display()))
            .args(extra);
        command
    }

    fn spawn(command: Command, data_dir: &Path) -> Self {
        // The server prints one line once it accepts connections:
        // "quiver: listening on 127.0.0.1:PORT".
        let (child, addr) = spawn_until(command, "quiver: listening on ");
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

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
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
        self.conninfo_as("quiver")
    }

    /// A tokio-postgres connection string for this server, as `user`.
    pub fn conninfo_as(&self, user: &str) -> String {
        format!(
            "host={} port={} user={user} dbname=quiver",
            self.host(),
            self.port()
        )
    }

    /// Connects with tokio-postgres; the connection task runs on the current runtime.
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect_to(&self.conninfo())
            .await
            .expect("connects to quiver")
    }

    /// Stops the server with SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        terminate(self.child.take().expect("running"));
    }
}

/// Starts `quiver executor` for the scheduler at `scheduler`, its Flight
/// service on `port`, and returns once it says it is joining (before it
/// has registered).
pub fn start_executor(scheduler: &str, port: u16, work: &Path) -> Child {
    let mut command = quiver(&[
        "executor",
        "--scheduler",
        scheduler,
        "--port",
        &port.to_string(),
        "--grpc-port",
        &free_port().to_string(),
        "--slots",
        "1",
        "--heartbeat",
        "1",
    ]);
    command.arg("--work-dir").arg(work);
    spawn_until(command, "quiver: executor ").0
}

/// SIGTERM, then waits for a clean exit.
pub fn terminate(mut child: Child) {
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

/// A free loopback port (for executors, which bind the ports they are given).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A cluster of separate processes on loopback: `quiver scheduler`, some
/// `quiver executor`s and a `quiver serve --scheduler` frontend. Its
/// frontend sends every statement over stored tables to the cluster;
/// with no executor left, it fails queries 10 s later.
///
/// Executors send a heartbeat a second. How long the scheduler waits for
/// one before it declares an executor lost is [`Loss`]: tests that kill or
/// pause executors want it short; the others must not lose healthy
/// executors when the machine running the tests is busy (on a 2-core CI
/// machine running two tests at once, both executors of a cluster once
/// missed 10 s of heartbeats, and the query running then failed).
pub struct Cluster {
    scheduler: Option<Child>,
    pub scheduler_addr: String,
    executors: Vec<Option<Child>>,
    work: tempfile::TempDir,
    pub frontend: QuiverServer,
    /// More `quiver serve` flags for the frontend.
    frontend_extra: Vec<String>,
}

/// How soon a [`Cluster`]'s scheduler declares an executor lost.
#[derive(Clone, Copy, Debug)]
pub enum Loss {
    /// After 60 s without a heartbeat: no test loses an executor by the
    /// machine being busy.
    Patient,
    /// After 10 s (the default of `quiver scheduler`), for tests that kill
    /// or pause executors and wait for the scheduler to notice.
    Quick,
}

impl Loss {
    /// Seconds without a heartbeat before an executor is lost, which are
    /// also the seconds the scheduler keeps jobs waiting for an executor
    /// when none is left (less, and an executor the scheduler dropped may
    /// not be back before its jobs fail).
    fn seconds(self) -> &'static str {
        match self {
            Loss::Patient => "60",
            Loss::Quick => "10",
        }
    }
}

impl Cluster {
    /// Starts a scheduler, `executors` executors (one slot each) and a
    /// frontend on `data_dir`.
    pub fn start(data_dir: &Path, executors: usize, loss: Loss) -> Self {
        Self::start_with(data_dir, executors, loss, &[])
    }

    /// [`Cluster::start`], with more `quiver serve` flags for the frontend.
    pub fn start_with(data_dir: &Path, executors: usize, loss: Loss, extra: &[&str]) -> Self {
        let (scheduler, scheduler_addr) = spawn_until(
            quiver(&[
                "scheduler",
                "--listen",
                "127.0.0.1:0",
                "--executor-timeout",
                loss.seconds(),
                "--no-executors-grace",
                loss.seconds(),
            ]),
            "quiver: scheduler listening on ",
        );
        let mut cluster = Self {
            scheduler: Some(scheduler),
            scheduler_addr,
            executors: Vec::new(),
            work: tempfile::tempdir().expect("tempdir"),
            frontend: QuiverServer {
                child: None,
                addr: String::new(),
                data_dir: data_dir.to_path_buf(),
            },
            frontend_extra: extra.iter().map(|flag| flag.to_string()).collect(),
        };
        for _ in 0..executors {
            cluster.add_executor();
        }
        cluster.frontend = QuiverServer::start_with(data_dir, &cluster.frontend_flags());
        cluster
    }

    /// A cluster on a fresh temporary data directory, which lives as long
    /// as the returned guard.
    pub fn start_fresh(executors: usize, loss: Loss) -> (tempfile::TempDir, Self) {
        let data = tempfile::tempdir().expect("tempdir");
        let cluster = Self::start(data.path(), executors, loss);
        (data, cluster)
    }

    /// Starts one more executor and waits until it has registered (its
    /// Flight port opens after registration). Returns its index.
    pub fn add_executor(&mut self) -> usize {
        let index = self.executors.len();
        let port = free_port();
        let work = self.work.path().join(format!("executor-{index}"));
        let child = start_executor(&self.scheduler_addr, port, &work);
        // Its Flight port opens once it has registered.
        wait_for_port(&format!("127.0.0.1:{port}"));
        self.executors.push(Some(child));
        index
    }

    /// Kills the frontend with SIGKILL and starts it again on its data
    /// directory.
    pub fn restart_frontend(&mut self) {
        let data_dir = self.frontend.data_dir.clone();
        if let Some(mut child) = self.frontend.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
        self.frontend = QuiverServer::start_with(&data_dir, &self.frontend_flags());
    }

    /// The frontend's flags: this cluster's scheduler, and every statement
    /// over stored tables run by it, however small (the tests' tables are
    /// tiny, and a cluster is there to test Ballista).
    fn frontend_flags(&self) -> Vec<&str> {
        let mut flags = vec![
            "--scheduler",
            &self.scheduler_addr,
            "--local-read-limit-kb",
            "0",
        ];
        flags.extend(self.frontend_extra.iter().map(String::as_str));
        flags
    }

    /// Executor `index`'s process id.
    pub fn executor_pid(&self, index: usize) -> u32 {
        self.executors[index]
            .as_ref()
            .expect("executor running")
            .id()
    }

    /// Kills executor `index` with SIGKILL: no goodbye to the scheduler.
    pub fn kill_executor(&mut self, index: usize) {
        let mut child = self.executors[index].take().expect("executor running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    /// Stops every process with SIGTERM, frontend first.
    pub fn stop(mut self) {
        stop_cluster(&mut self.frontend, &mut self.executors, &mut self.scheduler);
    }
}

/// Stops a cluster's processes with SIGTERM, frontend first, and waits for
/// each to exit cleanly.
fn stop_cluster(
    frontend: &mut QuiverServer,
    executors: &mut [Option<Child>],
    scheduler: &mut Option<Child>,
) {
    if let Some(child) = frontend.child.take() {
        terminate(child);
    }
    for executor in executors.iter_mut().filter_map(Option::take) {
        terminate(executor);
    }
    if let Some(scheduler) = scheduler.take() {
        terminate(scheduler);
    }
}

/// Kills (SIGKILL) and reaps the processes still in `children`.
fn kill_all<'a>(children: impl IntoIterator<Item = &'a mut Option<Child>>) {
    for mut child in children.into_iter().filter_map(Option::take) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Waits (at most 60 s) until `addr` accepts connections.
fn wait_for_port(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} did not open within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        kill_all(self.executors.iter_mut().chain([&mut self.scheduler]));
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
pub async fn rows(
    client: &impl tokio_postgres::GenericClient,
    sql: &str,
) -> Vec<Vec<Option<String>>> {
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

/// Connects to `conninfo` with tokio-postgres; the connection task runs on
/// the current runtime.
pub async fn connect_to(conninfo: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The first column of the first row of `sql`, as text.
pub async fn one(client: &impl tokio_postgres::GenericClient, sql: &str) -> Option<String> {
    rows(client, sql)
        .await
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next().flatten())
}

/// Stops process `pid` (SIGSTOP) for `pause`, then lets it go on
/// (SIGCONT): a machine too busy to schedule it, or a debugger.
pub fn pause(pid: u32, pause: Duration) {
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([name, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {name} {pid}");
    };
    signal("-STOP");
    std::thread::sleep(pause);
    signal("-CONT");
}
