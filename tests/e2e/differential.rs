//! Differential testing against PostgreSQL: random queries (see
//! [`generator`]) run on Quiver — embedded as users start it (the small
//! tables are read on the frontend), and on a cluster of a scheduler and
//! two executors (every statement a Ballista job) — and on a real
//! PostgreSQL started by the test; their results must agree.
//!
//! Then the same random changes — `UPDATE`, `DELETE` (`USING` too),
//! `INSERT ... SELECT`, `TRUNCATE` — are made to a copy of `t1` in both:
//! each must change as many rows (or fail in both), and leave the same rows.
//!
//! A disagreement of a query is reduced to a minimal query that still disagrees (and
//! that PostgreSQL accepts) before it is reported. Differences Quiver
//! keeps on purpose, and ones known and not yet fixed, are listed with
//! their reasons in `differential/differences.txt`.
//!
//! `QUIVER_DIFF_SEED` (default a fixed seed) and `QUIVER_DIFF_QUERIES`
//! choose the queries: `QUIVER_DIFF_SEED=$RANDOM QUIVER_DIFF_QUERIES=5000
//! cargo nextest run --test e2e differential`, and `QUIVER_DIFF_CHANGES`
//! how many changes are made; with `QUIVER_DIFF_VERBOSE` set, each query and
//! change is written to stderr as it runs.

mod generator;

use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::support::postgres::PostgresServer;
use crate::support::{Cluster, Loss, QuiverServer, connect_to};
use generator::{Generator, Query};

/// The tables every query reads: the same rows in both databases, written
/// by several statements so Quiver's tables have several files (and
/// Ballista several partitions).
const SETUP: &[&str] = &[
    "CREATE TABLE t1 (a int, b int, c text)",
    "CREATE TABLE t2 (a int, b int, c text)",
    "CREATE TABLE t3 (a int, b int, c text)",
    "INSERT INTO t1 VALUES (1, 1, 'a'), (2, 1, 'b'), (3, NULL, 'c')",
    "INSERT INTO t1 VALUES (4, 2, 'a'), (NULL, 2, NULL), (2, 1, 'b')",
    "INSERT INTO t1 VALUES (5, -1, 'ab'), (0, 3, '')",
    "INSERT INTO t2 VALUES (1, 2, 'a'), (3, 3, 'b'), (NULL, NULL, 'c')",
    "INSERT INTO t2 VALUES (2, 0, 'a'), (6, 1, NULL), (3, 3, 'b')",
    "INSERT INTO t3 VALUES (2, 1, 'b'), (4, NULL, 'x')",
    "INSERT INTO t3 VALUES (NULL, 5, 'a')",
];

/// The table the changes are made to, and how it is filled again.
const CHANGED: &str = "m";
const REFILL: &str = "TRUNCATE m; INSERT INTO m SELECT a, b, c FROM t1";

/// How Quiver plans joins for the next query: each query runs under one of
/// these (Quiver's defaults half of the time), and none may change an
/// answer. (Quiver refuses `datafusion.optimizer.repartition_joins =
/// false`, under which answers did change.)
fn plan_settings() -> [String; 3] {
    // Whether joins are hash joins, the bytes and rows under which a build
    // side is collected, and the bytes over which one makes a hash join a
    // sort-merge join.
    let joins = |hash: bool, (bytes, rows): (u64, u64), max_build: u64| {
        format!(
            "SET datafusion.optimizer.prefer_hash_join = {hash}; \
             SET datafusion.optimizer.hash_join_single_partition_threshold = {bytes}; \
             SET datafusion.optimizer.hash_join_single_partition_threshold_rows = {rows}; \
             SET ballista.optimizer.hash_join_max_build_partition_bytes = {max_build}"
        )
    };
    let collected = (128 << 20, 1_000_000);
    [
        // Quiver's defaults: hash joins, small build sides collected.
        joins(true, collected, 64 << 20),
        // Sort-merge joins everywhere, as Ballista plans them.
        joins(false, collected, 64 << 20),
        // No build side collected, and every one "too large" to hold: the
        // hash joins Quiver turns into sort-merge joins
        // (`DistributedHashJoins`).
        joins(true, (0, 0), 1),
    ]
}

/// What one database made of a query.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Rows as normalized text, in the order received.
    Rows(Vec<Vec<String>>),
    /// An error, with its SQLSTATE and message.
    Error(String),
}

/// A value as text, numbers in one form (PostgreSQL's `avg` is `numeric`
/// and prints `2.5000000000000000`, Quiver's is `double precision`).
fn normalize(value: Option<&str>) -> String {
    let Some(value) = value else {
        return "NULL".to_string();
    };
    let numeric = !value.is_empty()
        && value
            .trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == 'e' || c == '+' || c == '-');
    match value.parse::<f64>() {
        Ok(number) if numeric => format!("{number:.9e}"),
        _ => format!("'{value}'"),
    }
}

async fn outcome(client: &Client, sql: &str) -> Outcome {
    let messages =
        match tokio::time::timeout(Duration::from_secs(60), client.simple_query(sql)).await {
            Err(_) => return Outcome::Error("no answer within 60 s".into()),
            Ok(Err(e)) => {
                return Outcome::Error(match e.as_db_error() {
                    Some(db) => format!("{}: {}", db.code().code(), db.message()),
                    None => e.to_string(),
                });
            }
            Ok(Ok(messages)) => messages,
        };
    Outcome::Rows(
        messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => {
                    Some((0..row.len()).map(|i| normalize(row.get(i))).collect())
                }
                _ => None,
            })
            .collect(),
    )
}

/// Whether two outcomes agree: the same rows (in the same order if
/// `ordered`: the query orders its output), or both an error.
fn agree(ordered: bool, postgres: &Outcome, quiver: &Outcome) -> bool {
    match (postgres, quiver) {
        (Outcome::Rows(expected), Outcome::Rows(actual)) => {
            if ordered {
                expected == actual
            } else {
                let (mut expected, mut actual) = (expected.clone(), actual.clone());
                expected.sort();
                actual.sort();
                expected == actual
            }
        }
        (Outcome::Error(_), Outcome::Error(_)) => true,
        _ => false,
    }
}

/// A known difference: a reduced query containing `pattern` may disagree,
/// or (`error: ` patterns) Quiver may fail with a message containing it.
struct Difference {
    pattern: String,
    error: bool,
}

impl Difference {
    fn matches(&self, sql: &str, quiver: &Outcome) -> bool {
        match (self.error, quiver) {
            (false, _) => sql.contains(&self.pattern),
            (true, Outcome::Error(message)) => message.contains(&self.pattern),
            (true, Outcome::Rows(_)) => false,
        }
    }
}

/// The entries of `differential/differences.txt`: `pattern  # reason`
/// lines, with `#` comment lines between them.
fn differences() -> Vec<Difference> {
    include_str!("differential/differences.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let pattern = line.split(" #").next().unwrap_or(line).trim();
            match pattern.strip_prefix("error: ") {
                Some(message) => Difference {
                    pattern: message.to_string(),
                    error: true,
                },
                None => Difference {
                    pattern: pattern.to_string(),
                    error: false,
                },
            }
        })
        .collect()
}

struct Databases {
    postgres: Client,
    quiver: Client,
}

impl Databases {
    async fn disagree(&self, query: &Query) -> Option<(Outcome, Outcome)> {
        let sql = query.to_string();
        let expected = outcome(&self.postgres, &sql).await;
        let actual = outcome(&self.quiver, &sql).await;
        (!agree(query.ordered(), &expected, &actual)).then_some((expected, actual))
    }

    /// The smallest variant of `query` found that PostgreSQL answers and
    /// Quiver still answers differently.
    async fn reduce(&self, mut query: Query) -> Query {
        'smaller: for _ in 0..100 {
            for candidate in generator::smaller(&query) {
                let Some((Outcome::Rows(_), _)) = self.disagree(&candidate).await else {
                    continue;
                };
                query = candidate;
                continue 'smaller;
            }
            break;
        }
        query
    }
}

/// How many rows a statement changed, or its error.
async fn changed(client: &Client, sql: &str) -> Result<u64, String> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        })?;
    Ok(messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(rows) => Some(*rows),
            _ => None,
        })
        .unwrap_or_default())
}

impl Databases {
    /// Makes `count` random changes to [`CHANGED`] in both databases;
    /// returns the reports of those that disagreed (the statements since the
    /// table was last refilled, then the two answers).
    async fn changes(
        &self,
        generator: &mut Generator<ChaCha8Rng>,
        count: usize,
        known: &[Difference],
        verbose: bool,
    ) -> Vec<String> {
        let contents = format!("SELECT a, b, c FROM {CHANGED}");
        let mut failures = Vec::new();
        let mut history: Vec<String> = Vec::new();
        for _ in 0..count {
            let sql = generator.change(CHANGED);
            if verbose {
                eprintln!("differential change: {sql}");
            }
            history.push(sql.clone());
            let expected = changed(&self.postgres, &sql).await;
            let actual = changed(&self.quiver, &sql).await;
            let counts_agree = match (&expected, &actual) {
                (Ok(a), Ok(b)) => a == b,
                (Err(_), Err(_)) => true,
                _ => false,
            };
            let rows_expected = outcome(&self.postgres, &contents).await;
            let rows_actual = outcome(&self.quiver, &contents).await;
            let rows_agree = agree(false, &rows_expected, &rows_actual);
            if counts_agree && rows_agree {
                continue;
            }
            let error = Outcome::Error(actual.clone().err().unwrap_or_default());
            if !known.iter().any(|d| d.matches(&sql, &error)) {
                failures.push(format!(
                    "{}\n  PostgreSQL: {expected:?}, then {rows_expected:?}\n  Quiver:     {actual:?}, then {rows_actual:?}",
                    history.join(";\n")
                ));
            }
            history.clear();
            for client in [&self.postgres, &self.quiver] {
                client.batch_execute(REFILL).await.expect("refill");
            }
        }
        failures
    }
}

async fn connect_when_ready(conninfo: &str) -> Client {
    for _ in 0..100 {
        if let Ok(client) = connect_to(conninfo).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("cannot connect to {conninfo}");
}

async fn compare(quiver_conninfo: &str) {
    let postgres_server = PostgresServer::start();
    let databases = Databases {
        postgres: connect_when_ready(&postgres_server.conninfo()).await,
        quiver: connect_when_ready(quiver_conninfo).await,
    };
    for statement in SETUP {
        for client in [&databases.postgres, &databases.quiver] {
            client
                .batch_execute(statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }
    let seed: u64 = std::env::var("QUIVER_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_203);
    let count: usize = std::env::var("QUIVER_DIFF_QUERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let known = differences();
    let mut generator = Generator::new(ChaCha8Rng::seed_from_u64(seed));
    let (mut tolerated, mut failures) = (0, Vec::<String>::new());
    let verbose = std::env::var_os("QUIVER_DIFF_VERBOSE").is_some();
    let plans = plan_settings();
    for _ in 0..count {
        let query = generator.query();
        let settings = &plans[generator.plan_settings(plans.len())];
        databases
            .quiver
            .batch_execute(settings)
            .await
            .unwrap_or_else(|e| panic!("{settings}: {e}"));
        if verbose {
            eprintln!("differential query: {query}\n  (Quiver under: {settings})");
        }
        if databases.disagree(&query).await.is_none() {
            continue;
        }
        let reduced = databases.reduce(query.clone()).await;
        let sql = reduced.to_string();
        let (expected, actual) = databases.disagree(&reduced).await.unwrap_or((
            Outcome::Error("agrees when run again".into()),
            Outcome::Rows(vec![]),
        ));
        if known.iter().any(|d| d.matches(&sql, &actual)) {
            tolerated += 1;
            continue;
        }
        let report = format!(
            "{sql}\n  PostgreSQL: {expected:?}\n  Quiver:     {actual:?}\n  (from {query})\n  (Quiver under: {settings})"
        );
        if !failures.iter().any(|f| f.starts_with(&format!("{sql}\n"))) {
            failures.push(report);
        }
    }
    eprintln!(
        "differential: seed {seed}, {count} queries, {} disagreements ({tolerated} known)",
        failures.len() + tolerated
    );
    for client in [&databases.postgres, &databases.quiver] {
        client
            .batch_execute(&format!(
                "CREATE TABLE {CHANGED} (a int, b int, c text); {REFILL}"
            ))
            .await
            .expect("the table to change");
    }
    let changes: usize = std::env::var("QUIVER_DIFF_CHANGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    let changed = databases
        .changes(&mut generator, changes, &known, verbose)
        .await;
    eprintln!(
        "differential: {changes} changes, {} disagreements",
        changed.len()
    );
    failures.extend(changed);
    assert!(
        failures.is_empty(),
        "{} queries disagree with PostgreSQL (seed {seed}):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_agrees_with_postgres() {
    let (_data, server) = QuiverServer::start_fresh();
    compare(&server.conninfo()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_agrees_with_postgres() {
    let (_data, cluster) = Cluster::start_fresh(2, Loss::Patient);
    compare(&cluster.frontend.conninfo()).await;
}
