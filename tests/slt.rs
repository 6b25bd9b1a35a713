//! Runs every `sql/**/*.slt` file over the PostgreSQL wire protocol three
//! times (the files under `sql/languages/` three times for each guest
//! language): against a real embedded `quiver serve` process as users start
//! it (`embedded/...`: the files' small tables are read on the frontend);
//! against a cluster of separate processes — a scheduler, two executors and
//! a frontend that sends every statement over stored tables to Ballista
//! (`cluster/...`); and against such a cluster spread over machines whose
//! data directory is in an S3 server (`object-store/...`): the scheduler,
//! each executor, the frontend and moto's S3 server in network namespaces
//! of their own (`support::netns`), the frontend with `--data-dir s3://…`
//! and its catalog in a local `--catalog-dir`, so tables, temporary tables,
//! staged writes and modules reach the executors only through the object
//! store. Where the machine allows no network namespaces, that cluster runs
//! on the loopback address instead (and says so). Each run gets fresh
//! processes and a fresh data directory. Each file and mode is one test (`cargo nextest run --test slt -- FILTER`);
//! with `QUIVER_SLT_COMPLETE=1` the selected files' expected output is
//! rewritten from what the server returns (review the diff before committing).

mod support;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use support::netns::{HostedCluster, Network};
use support::s3::S3;
use support::{Cluster, Loss, QuiverServer};
use tokio_postgres::SimpleQueryMessage;

/// A sqllogictest connection speaking the simple query protocol, so values
/// arrive as PostgreSQL's text output.
///
/// Every connection logs in as `quiver` (the bootstrap superuser, under
/// trust authentication). The statement `\connect ROLE` — psql's
/// meta-command — logs the connection in again, as `ROLE`: with
/// sqllogictest's named connections a file runs statements as several
/// roles at once (`connection alice`, then `statement ok` `\connect alice`;
/// in files with `control substitution on`, where a backslash escapes,
/// `\\connect alice`).
struct Postgres {
    conninfo: String,
    client: tokio_postgres::Client,
}

impl Postgres {
    async fn connect(conninfo: String) -> Result<Self, DbError> {
        let client = support::connect_to(&conninfo).await?;
        Ok(Postgres { conninfo, client })
    }

    /// Logs in again as `role` (a later `user=` in a connection string
    /// wins over an earlier one).
    async fn reconnect(&mut self, role: &str) -> Result<(), DbError> {
        let conninfo = format!("{} user={role}", self.conninfo);
        self.client = support::connect_to(&conninfo).await?;
        Ok(())
    }
}

/// A statement error with its SQLSTATE, for `statement error (42P01)`.
#[derive(Debug)]
struct DbError {
    sqlstate: Option<String>,
    message: String,
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for DbError {}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => DbError {
                sqlstate: Some(db.code().code().to_string()),
                message: db.message().to_string(),
            },
            None => DbError {
                sqlstate: None,
                message: e.to_string(),
            },
        }
    }
}

#[async_trait]
impl AsyncDB for Postgres {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        if let Some(role) = sql.trim().strip_prefix("\\connect ") {
            self.reconnect(role.trim()).await?;
            return Ok(DBOutput::StatementComplete(0));
        }
        let messages = self.client.simple_query(sql).await?;
        let mut columns = None;
        let mut rows = Vec::new();
        let mut affected = 0;
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(description) => {
                    columns = Some(description.len())
                }
                SimpleQueryMessage::Row(row) => rows.push(
                    (0..row.len())
                        .map(|i| match row.get(i) {
                            None => "NULL".to_string(),
                            Some("") => "(empty)".to_string(),
                            Some(value) => value.to_string(),
                        })
                        .collect(),
                ),
                SimpleQueryMessage::CommandComplete(n) => affected = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(affected),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "quiver"
    }

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await
    }

    fn error_sql_state(e: &DbError) -> Option<String> {
        e.sqlstate.clone()
    }
}

fn slt_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            slt_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "slt") {
            out.push(path);
        }
    }
}

/// Where a file runs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// `quiver serve`: scheduler and executor inside the server.
    Embedded,
    /// `quiver scheduler`, two `quiver executor`s, `quiver serve --scheduler`.
    Cluster,
    /// A cluster with `--data-dir` in an S3 server, over network
    /// namespaces where the machine allows them.
    ObjectStore,
}

/// The bucket the object-store runs keep their data directories in.
const BUCKET: &str = "quiver-slt";

enum Deployment {
    Embedded(QuiverServer),
    Cluster(Cluster),
    /// The network is removed after the cluster stops; the S3 server ends
    /// with the test process.
    Hosted(HostedCluster, Network, S3),
}

impl Deployment {
    fn frontend(&self) -> &QuiverServer {
        match self {
            Deployment::Embedded(server) => server,
            Deployment::Cluster(cluster) => &cluster.frontend,
            Deployment::Hosted(cluster, ..) => &cluster.frontend,
        }
    }

    fn stop(self) {
        match self {
            Deployment::Embedded(server) => server.stop(),
            Deployment::Cluster(cluster) => cluster.stop(),
            Deployment::Hosted(cluster, network, _s3) => {
                cluster.stop();
                drop(network);
            }
        }
    }
}

/// A cluster whose data directory is in an S3 server: over network
/// namespaces, or on the loopback address where there are none.
fn object_store_cluster(data: &Path) -> Deployment {
    match Network::create() {
        Ok(mut network) => {
            let s3 = S3::start_on(Some(&network.host("s3")));
            s3.create_bucket(BUCKET);
            let url = format!("s3://{BUCKET}/data");
            let cluster = HostedCluster::start(&mut network, 2, 60, &s3.environment(), &url, &[]);
            Deployment::Hosted(cluster, network, s3)
        }
        Err(why) => {
            eprintln!(
                "object-store cluster on the loopback address: this machine allows no network namespaces ({why})"
            );
            static BUCKET_MADE: std::sync::Once = std::sync::Once::new();
            BUCKET_MADE.call_once(|| support::s3::s3().create_bucket(BUCKET));
            // The temporary directory's name is unique; the bucket is the
            // test process's.
            let name = data.file_name().unwrap_or_default().to_string_lossy();
            let url = format!("s3://{BUCKET}/{}", name.trim_start_matches('.'));
            let catalog = data.display().to_string();
            let flags = ["--data-dir", &url, "--catalog-dir", &catalog];
            Deployment::Cluster(Cluster::start_with(data, 2, Loss::Patient, &flags))
        }
    }
}

/// The guest languages whose examples run every file under `sql/languages/`
/// (files under `sql/languages/<language>/` run with that language's only),
/// with `$GUEST_MODULE` the module the example builds to (see `./dev guests`).
const LANGUAGES: &[(&str, &str)] = &[
    ("rust", "quiver_example_functions.wasm"),
    ("c", "quiver_example_c.wasm"),
    ("python", "quiver_example_python.wasm"),
    ("js", "quiver_example_js.wasm"),
];

async fn run_file(
    path: &Path,
    mode: Mode,
    complete: bool,
    guest_module: Option<&str>,
) -> Result<(), String> {
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let deployment = match mode {
        Mode::Embedded => Deployment::Embedded(QuiverServer::start(data.path())),
        Mode::Cluster => Deployment::Cluster(Cluster::start(data.path(), 2, Loss::Patient)),
        Mode::ObjectStore => object_store_cluster(data.path()),
    };
    let conninfo = deployment.frontend().conninfo();
    let mut runner = sqllogictest::Runner::new(move || Postgres::connect(conninfo.clone()));
    // With `control substitution on`, files refer to the server's data
    // directory as $DATA_DIR and to the repository's test data as $TEST_DATA.
    runner.set_var(
        "DATA_DIR".into(),
        deployment.frontend().data_dir.display().to_string(),
    );
    let test_data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data");
    runner.set_var("TEST_DATA".into(), test_data.display().to_string());
    // Files under sql/languages/ run once per guest language, with that
    // language's module as $GUEST_MODULE.
    if let Some(module) = guest_module {
        runner.set_var("GUEST_MODULE".into(), module.to_string());
    }
    let result = if complete {
        runner
            .update_test_file(
                path,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::default_column_validator,
            )
            .await
            .map_err(|e| e.to_string())
    } else {
        runner
            .run_file_async(path)
            .await
            .map_err(|e| e.display(true).to_string())
    };
    deployment.stop();
    result
}

fn main() {
    let arguments = libtest_mimic::Arguments::from_args();
    let complete = std::env::var_os("QUIVER_SLT_COMPLETE").is_some();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut files = Vec::new();
    slt_files(&root, &mut files);
    assert!(!files.is_empty(), "no .slt files under {}", root.display());
    let trials = [
        (Mode::Embedded, "embedded"),
        (Mode::Cluster, "cluster"),
        (Mode::ObjectStore, "object-store"),
    ]
    .into_iter()
    // Completing expectations once (embedded) is enough.
    .filter(|(mode, _)| !complete || *mode == Mode::Embedded)
    .flat_map(|(mode, prefix)| {
        let root = &root;
        files.iter().flat_map(move |file| {
            let relative = file.strip_prefix(root).unwrap_or(file);
            let runs: Vec<(String, Option<&str>)> = match relative.strip_prefix("languages") {
                Ok(rest) => LANGUAGES
                    .iter()
                    .filter_map(|(language, module)| {
                        // languages/<language>/...: that language's only.
                        let rest = match rest.strip_prefix(language) {
                            Ok(own) => own,
                            Err(_) if LANGUAGES.iter().any(|(l, _)| rest.starts_with(l)) => {
                                return None;
                            }
                            Err(_) => rest,
                        };
                        Some((
                            format!("{prefix}/languages/{language}/{}", rest.display()),
                            Some(*module),
                        ))
                    })
                    .collect(),
                Err(_) => vec![(format!("{prefix}/{}", relative.display()), None)],
            };
            runs.into_iter().map(move |(name, module)| {
                let file = file.clone();
                libtest_mimic::Trial::test(name, move || {
                    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
                    runtime
                        .block_on(run_file(&file, mode, complete, module))
                        .map_err(Into::into)
                })
            })
        })
    })
    .collect();
    libtest_mimic::run(&arguments, trials).exit();
}
